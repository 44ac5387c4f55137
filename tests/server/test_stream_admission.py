"""StreamService through a real server: roles, leases, limits and metrics apply to every
item of a stream and to a chunked transfer as to the unary call each one is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from security_support import served, tokens_for_every_role
from test_limits import serving

from sidra.client import connect
from sidra.drivers.errors import LeaseHeld, ResourceExhausted
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import stream_pb2 as spb
from sidra.hil.v1 import stream_pb2_grpc
from sidra.server.security import RPC_ROLES, STREAM_ROLES, Role, required_role
from sidra.server.settings import LimitsSettings
from sidra.server.streams import STREAM_SERVICE_NAME

STREAM_RPCS = [m.name for m in spb.DESCRIPTOR.services_by_name["StreamService"].methods]
ROWS = COLS = 256  # the ideal preset's tiles


def _item(sequence: int, tile: int, batch: int) -> spb.MVMStreamRequest:
    item = spb.MVMStreamRequest(sequence=sequence)
    item.mvm.tile = tile
    tensors.encode_into(item.mvm.voltages, np.full((batch, ROWS), 0.01, np.float32))
    return item


def _chunks(tile: int, value: float) -> list[spb.ProgramChunk]:
    first = spb.ProgramChunk(tile=tile, shape=[4, 4])
    tensors.encode_into(first.conductances, np.full((2, 4), value, np.float32))
    second = spb.ProgramChunk()
    tensors.encode_into(second.conductances, np.full((2, 4), value, np.float32))
    return [first, second]


def test_every_stream_rpc_needs_the_role_of_the_rpc_it_carries() -> None:
    assert set(STREAM_ROLES) == set(STREAM_RPCS)
    assert STREAM_ROLES["MVMStream"] == RPC_ROLES["MVM"] == RPC_ROLES["TransposeMVM"]
    assert STREAM_ROLES["ProgramChunked"] == RPC_ROLES["Program"] == Role.PROGRAMMER
    assert STREAM_ROLES["ReadConductanceChunked"] == RPC_ROLES["ReadConductance"]
    for rpc in STREAM_RPCS:
        assert required_role(f"/{STREAM_SERVICE_NAME}/{rpc}") == STREAM_ROLES[rpc]


def _code(action: object) -> grpc.StatusCode:
    try:
        action()  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_roles_refuse_streams_as_they_refuse_the_calls_they_carry(tmp_path: Path) -> None:
    """A viewer may not stream passes; an operator may stream passes and read in bands but
    not Program in bands; a programmer may."""
    tokens = tokens_for_every_role(tmp_path / "tokens.toml")
    with (
        served(tokens_file=tmp_path / "tokens.toml") as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = stream_pb2_grpc.StreamServiceStub(channel)

        def as_role(role: Role) -> list[tuple[str, str]]:
            return [("authorization", f"Bearer {tokens[role]}")]

        def stream(role: Role) -> object:
            return lambda: list(stub.MVMStream(iter([_item(0, 0, 1)]), metadata=as_role(role)))

        def program(role: Role) -> object:
            return lambda: stub.ProgramChunked(iter(_chunks(0, 20.0)), metadata=as_role(role))

        def read(role: Role) -> object:
            request = spb.ReadConductanceChunkedRequest(read=pb.ReadConductanceRequest(tile=0))
            return lambda: list(stub.ReadConductanceChunked(request, metadata=as_role(role)))

        denied = grpc.StatusCode.PERMISSION_DENIED
        assert _code(stream(Role.VIEWER)) == denied
        assert _code(read(Role.VIEWER)) == denied
        assert _code(stream(Role.OPERATOR)) == grpc.StatusCode.OK
        assert _code(read(Role.OPERATOR)) == grpc.StatusCode.OK
        assert _code(program(Role.OPERATOR)) == denied
        assert _code(program(Role.PROGRAMMER)) == grpc.StatusCode.OK


def test_a_chunked_program_of_a_tile_leased_elsewhere_is_refused_and_writes_nothing() -> None:
    """Bob programs Alice's leased tile in bands: LeaseHeld, the tile unchanged; his stream
    of passes on it is served (reads are shared by default), item by item."""
    with served() as port, connect(f"127.0.0.1:{port}") as alice:
        alice.program(0, np.full((4, 4), 10.0, np.float32))
        with (
            connect(f"127.0.0.1:{port}") as bob,
            alice.session(label="held") as session,
            session.lease([0]),
        ):
            bob.chunk_bytes = 32  # two rows of 4 per band
            bob.message_limit_bytes = 0x10000 + 16  # 4 x 4 targets pass it: bands
            with pytest.raises(LeaseHeld, match="session 'held'"):
                bob.program(0, np.full((4, 4), 30.0, np.float32))
            read = alice.read_conductance(0).conductances[:4, :4]
            np.testing.assert_array_equal(read, np.full((4, 4), 10.0, np.float32))
            v = np.full((1, ROWS), 0.01, np.float32)
            results = list(bob.mvm_stream(0, [v, v]))
            assert len(results) == 2


def test_each_item_is_held_to_max_batch_and_max_message_mb() -> None:
    """Under max_batch = 8 and max_message_mb = 1: items of 4, 16, 4 and 2048 vectors (2
    MiB, within the server's 8 MiB): the second and the fourth are answered with their
    limit's error, the others with currents; each refusal is counted."""
    limits = LimitsSettings(max_batch=8, max_message_mb=1)
    with serving(limits) as server, grpc.insecure_channel(server.address) as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        items = [_item(0, 0, 4), _item(1, 0, 16), _item(2, 0, 4), _item(3, 0, 2048)]
        answers = list(stub.MVMStream(iter(items)))
        kinds = [a.WhichOneof("result") for a in answers]
        assert kinds == ["mvm", "error", "mvm", "error"]
        assert answers[1].error.field == "limits.max_batch"
        assert answers[1].error.code == "RESOURCE_EXHAUSTED"
        assert answers[3].error.field == "limits.max_message_mb"
        assert server.refusals("max_batch") >= 1
        assert server.refusals("max_message_mb") == 1


def test_an_open_stream_is_one_call_in_flight_and_a_cancelled_one_gives_it_back(
    tmp_path: Path,
) -> None:
    """Under max_in_flight = 1 alice's open stream holds her one place: her unary call is
    refused while it is open; once she cancels it, the place comes back (the server
    noticed the cancellation) and her calls are served."""
    tokens_file = tmp_path / "tokens.toml"
    tokens = tokens_for_every_role(tokens_file)
    with (
        serving(LimitsSettings(max_in_flight=1), tokens_file=tokens_file) as server,
        grpc.insecure_channel(server.address) as channel,
        # A refusal for max_in_flight is sent again within the client's timeout (places
        # it cannot see): a short one, or the refusal below waits 30 s, and the board's
        # description asked first, not behind the stream.
        connect(server.address, token=tokens[Role.OPERATOR], timeout_s=3.0) as client,
    ):
        assert client.info.rows == ROWS
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        auth = [("authorization", f"Bearer {tokens[Role.OPERATOR]}")]

        def forever() -> Iterator[spb.MVMStreamRequest]:
            k = 0
            while True:
                yield _item(k, 0, 1)
                k += 1

        call = stub.MVMStream(forever(), metadata=auth)
        assert next(call).WhichOneof("result") == "mvm"
        v = np.full((1, ROWS), 0.01, np.float32)
        with pytest.raises(ResourceExhausted) as caught:
            client.mvm(0, v)
        assert caught.value.field == "limits.max_in_flight"
        call.cancel()
        for _ in range(200):  # the server learns of the cancellation asynchronously
            try:
                client.mvm(0, v)
                break
            except ResourceExhausted:
                time.sleep(0.05)
        else:
            pytest.fail("the cancelled stream kept its place in flight")


def test_stream_items_and_chunked_transfers_count_as_their_operations() -> None:
    """sidra_board_operations_total grows by one MVM per streamed item, one Program per chunked
    Program and one ReadConductance per chunked read."""
    with serving(LimitsSettings()) as server, grpc.insecure_channel(server.address) as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)

        def count(rpc: str) -> float:
            value = server.metrics.registry.get_sample_value(
                "sidra_board_operations_total", {"operation": rpc}
            )
            return value or 0.0

        list(stub.MVMStream(iter([_item(k, 0, 1) for k in range(3)])))
        stub.ProgramChunked(iter(_chunks(1, 20.0)))
        list(
            stub.ReadConductanceChunked(
                spb.ReadConductanceChunkedRequest(read=pb.ReadConductanceRequest(tile=1))
            )
        )
        assert (count("MVM"), count("Program"), count("ReadConductance")) == (3.0, 1.0, 1.0)
