"""The operation set is declared once; every layer is checked against the declaration.

An RPC of BoardService without a declaration, a board method, a server route, a
client call, a wire entry or an emulator implementation fails here, as does a
request or result type whose fields drift from board.proto's. A fake board
written against the one transport seam (``_handle``) runs behind the real gRPC
server, which shows how little a new transport needs.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sidra.client import connect
from sidra.client.remote import RemoteBoard
from sidra.drivers import (
    BoardDriver,
    BoardInfo,
    InvalidArgument,
    MVMResult,
    PerturbationPoint,
    ProgramReport,
    ReadResult,
    Region,
    Unsupported,
    open_board,
)
from sidra.drivers.operations import OPERATIONS, BoardMethods, operation_of
from sidra.drivers.requests import (
    GetBoardInfoRequest,
    MVMRequest,
    PerturbedMVMRequest,
    PerturbMode,
    PerturbRequest,
    ProgramRequest,
    ReadConductanceRequest,
    Request,
    SequenceRequest,
    TransposeMVMRequest,
)
from sidra.drivers.types import BoardDescription, BoardStats
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.operations import ENTRIES, entry_for_message, entry_of
from sidra.hil import convert
from sidra.hil.v1 import board_pb2 as pb
from sidra.server import create_server
from sidra.server.servicer import BoardServicer, board_service_handler

SERVICE = pb.DESCRIPTOR.services_by_name["BoardService"]
RPCS = [method.name for method in SERVICE.methods]
BY_RPC = {op.rpc: op for op in OPERATIONS}


def test_every_rpc_is_declared_once_in_proto_order() -> None:
    assert [op.rpc for op in OPERATIONS] == RPCS


@pytest.mark.parametrize("rpc", RPCS)
def test_messages_of_each_rpc_match_its_declaration(rpc: str) -> None:
    method = SERVICE.methods_by_name[rpc]
    assert method.input_type.name == f"{rpc}Request"
    assert method.output_type.name == f"{rpc}Response"
    op = BY_RPC[rpc]
    # Request and result types carry the proto's field names (converted by name).
    request_fields = {f.name for f in dataclasses.fields(op.request)}
    proto_fields = set(method.input_type.fields_by_name) - convert.SERVER_RESOLVED_FIELDS
    assert request_fields == proto_fields
    result_fields = {f.name for f in dataclasses.fields(op.result)}
    assert result_fields == set(method.output_type.fields_by_name) - convert.SERVICE_ADDED_FIELDS


SAMPLES = 12
"""How many requests sample_requests yields (a test checks it)."""


def sample_requests(info: BoardInfo) -> Iterator[Request]:
    """One valid request of every operation (both Perturb modes)."""
    rng = np.random.default_rng(0)
    g = rng.uniform(info.g_min_us, info.g_max_us, (3, 5)).astype(np.float32)
    v = rng.uniform(-0.1, 0.1, (2, info.rows)).astype(np.float32)
    yield GetBoardInfoRequest()
    yield ProgramRequest(1, g, row_offset=4, col_offset=7)
    yield ReadConductanceRequest(1, Region(4, 7, 3, 5))
    yield MVMRequest(1, v)
    yield TransposeMVMRequest(1, v[:, : info.cols])
    yield PerturbRequest(1, PerturbMode.APPLY, 2**64 - 1, 0.5, -1, Region(4, 7, 3, 5))
    yield PerturbRequest(1, PerturbMode.RESTORE, region=Region(4, 7, 3, 5))
    yield from (op.request(1) for op in OPERATIONS if op.rpc in ("ReadWriteCounts", "Calibrate"))
    yield from (op.request(2.5) for op in OPERATIONS if op.rpc == "AdvanceClock")
    points = (PerturbationPoint(2**64 - 1, 0.5, -1), PerturbationPoint(3, 1.5, 1))
    yield PerturbedMVMRequest(1, v[:, :3], points, Region(4, 7, 3, 5))
    yield SequenceRequest(
        (ProgramRequest(2, g), MVMRequest(2, v[:, :3], Region(0, 0, 3, 5)), MVMRequest(2, v))
    )


@pytest.fixture
def emulator() -> Iterator[BoardDriver]:
    with open_board("emu://?preset=ideal&seed=1") as board:
        assert isinstance(board, BoardDriver)
        yield board


def test_samples_cover_every_operation(emulator: BoardDriver) -> None:
    samples = list(sample_requests(emulator.info))
    assert len(samples) == SAMPLES
    assert {operation_of(r).rpc for r in samples} == set(RPCS)


def test_every_board_method_builds_a_declared_request() -> None:
    """Each public method of BoardMethods sends exactly one declared request type."""
    sent: list[Request] = []

    class Recorder(BoardMethods):
        info = BoardInfo("m", "s", "f", 4, 8, 8, 1.0, 40.0, 0, 0, 0.2)

        def run(self, request: Any) -> Any:
            sent.append(request)
            op = operation_of(request)
            if op.rpc == "GetBoardInfo":
                return BoardDescription(self.info, BoardStats())
            if op.rpc == "AdvanceClock":
                return op.result(1.0)
            return None

    board = Recorder()
    names = [n for n, f in inspect.getmembers(BoardMethods, inspect.isfunction) if n[0] != "_"]
    arguments = {
        "program": (0, np.ones((1, 1))),
        "perturb": (0, 1, 0.5),
        "mvm": (0, np.zeros((1, 8))),
        "transpose_mvm": (0, np.zeros((1, 8))),
        "perturbed_mvm": (0, np.zeros((1, 8)), [PerturbationPoint(1, 0.5)]),
        "run_sequence": ([MVMRequest(0, np.zeros((1, 8)))],),
        "advance_clock": (1.0,),
        "stats": (),
        "run": None,
    }
    streamed = {"mvm_stream": (0, [np.zeros((1, 8))])}  # a stream of an operation's calls
    for name in names:
        if arguments.get(name, ()) is None:
            continue
        if name in streamed:
            count = len(sent)
            results = list(getattr(board, name)(*streamed[name]))
            assert len(results) == 1 and [operation_of(r).rpc for r in sent[count:]] == ["MVM"]
            continue
        getattr(board, name)(*arguments.get(name, (0,)))
    assert {operation_of(r).rpc for r in sent} == set(RPCS)


def test_every_operation_has_a_server_route() -> None:
    servicer = BoardServicer(open_board("emu://?preset=ideal"))
    handler = board_service_handler(servicer)

    class Details:
        def __init__(self, rpc: str) -> None:
            self.method = f"/{SERVICE.full_name}/{rpc}"

    for rpc in RPCS:
        assert handler.service(Details(rpc)) is not None, rpc  # type: ignore[arg-type]


def test_every_operation_has_a_client_call() -> None:
    import grpc

    with grpc.insecure_channel("127.0.0.1:1") as channel:
        board = RemoteBoard(channel)
        assert set(board._calls) == {op.request for op in OPERATIONS}


def test_every_operation_has_one_wire_entry_and_every_entry_a_message() -> None:
    # A sequence has no message of its own: a driver runs its steps one by one.
    assert [e.request_type for e in ENTRIES] == [
        op.request for op in OPERATIONS if not op.composite
    ]
    messages = [msg for e in ENTRIES for msg in e.messages]
    assert len(messages) == len(set(messages)), "a message id handled by two entries"
    for msg in messages:
        assert entry_for_message(msg) is not None
    assert entry_for_message(m.Msg.HELLO) is None  # a protocol message, not an operation


@pytest.mark.parametrize("index", range(SAMPLES))
def test_request_round_trips_through_proto_and_wire(emulator: BoardDriver, index: int) -> None:
    request = list(sample_requests(emulator.info))[index].checked(emulator.info)
    op = operation_of(request)
    back = convert.request_from_pb(convert.request_to_pb(request, op), op)
    assert _same(back, request)
    if op.composite:
        return  # no wire message: its steps travel as themselves

    entry = entry_of(request)
    data = entry.data(request)

    class Stage:
        info = emulator.info

        def verified(self, stage_id: int, crc: int, size: int) -> bytes:
            assert (stage_id, crc, size) == (9, 1234, len(data))
            return data

    from sidra.drivers.wire.operations import StagedData

    for staged in (None, StagedData(9, 1234)) if data else (None,):
        if entry.always_staged and staged is None:
            continue
        payload = entry.pack_request(request, staged)
        assert _same(entry.unpack_request(entry.msg(request), payload, Stage()), request)


@pytest.mark.parametrize("index", range(SAMPLES))
def test_result_round_trips_through_proto_and_wire(emulator: BoardDriver, index: int) -> None:
    """Each result as the emulator produced it survives both encodings unchanged."""
    request = list(sample_requests(emulator.info))[index]
    result = emulator.run(request)
    op = operation_of(request)
    message = convert.result_to_pb(result, op, request.checked(emulator.info))
    assert _same(convert.result_from_pb(message, op), result)
    if op.composite:
        return

    entry = entry_of(request)
    head, data = entry.pack_result(result)
    decoded = entry.unpack_result(request.checked(emulator.info), head, data)
    if op.rpc == "GetBoardInfo":  # the wire carries the totals; HELLO the description
        assert decoded == result.stats
    else:
        assert _same(decoded, result)


def test_writes_array_says_which_operations_write_cells(emulator: BoardDriver) -> None:
    """The declaration's writes_array is what the board does: every sample of a writing
    operation writes cells (Perturb RESTORE rewrites its region too), no other does."""
    for request in sample_requests(emulator.info):
        before = emulator.stats().cell_writes
        emulator.run(request)
        wrote = emulator.stats().cell_writes != before
        assert wrote == operation_of(request).writes_array, request


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):  # a sequence's steps and results
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b)) and np.asarray(a).dtype == np.asarray(b).dtype
    return bool(a == b)


# -- a fake board in a page: the transport seam is one method -------------------------------


class IdealCrossbar(BoardDriver):
    """An exact crossbar with no noise: what a new transport needs to implement."""

    def __init__(self) -> None:
        self._info = BoardInfo("FAKE", "F-1", "fake-1", 2, 8, 6, 1.0, 40.0, 0, 0, 0.2)
        self.g = np.ones((2, 8, 6), np.float32)

    @property
    def info(self) -> BoardInfo:
        return self._info

    def close(self) -> None:
        pass

    def _handle(self, request: Request) -> Any:
        match request:
            case GetBoardInfoRequest():
                return BoardDescription(self.info, BoardStats())
            case ProgramRequest(tile=tile, conductances=g):
                self.g[(tile, *request.region.slices)] = g
                return ProgramReport(g.size, 1, g.size, 0.0, 0.0, 0)
            case ReadConductanceRequest(tile=tile, region=Region() as region):
                return ReadResult(self.g[(tile, *region.slices)].copy())
            case MVMRequest(tile=tile, voltages=v):
                return MVMResult(v @ self.g[tile])
            case TransposeMVMRequest(tile=tile, voltages=v):
                return MVMResult(v @ self.g[tile].T)
        raise Unsupported(f"{operation_of(request).rpc}: not on this fake board")


def test_a_fake_board_serves_over_grpc_with_validation_and_errors() -> None:
    server, port = create_server(IdealCrossbar(), "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as board:
            assert board.info.model == "FAKE"
            g = np.arange(1, 49, dtype=np.float32).reshape(8, 6) * 0.5 + 1
            board.program(1, g)
            v = np.linspace(-0.2, 0.2, 16, dtype=np.float32).reshape(2, 8)
            np.testing.assert_allclose(board.mvm(1, v).currents, v @ g, rtol=1e-6)
            np.testing.assert_allclose(
                board.read_conductance(1, Region(2, 1, 3, 2)).conductances, g[2:5, 1:3]
            )
            with pytest.raises(Unsupported, match="Calibrate"):
                board.calibrate(0)
            with pytest.raises(Exception) as caught:  # validated by the shared base
                board.mvm(2, v)
            assert getattr(caught.value, "field", None) == "tile"
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize("rpc", RPCS)
def test_bytes_that_do_not_parse_get_invalid_argument(rpc: str) -> None:
    """Not a protobuf message at all: the caller's fault, answered INVALID_ARGUMENT (gRPC's
    own deserializer would answer INTERNAL and log a traceback), the board untouched."""
    import grpc

    board = open_board("emu://?preset=ideal&seed=1")
    server, port = create_server(board, "127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(f"/{SERVICE.full_name}/{rpc}")
            # Field 1 declared length-delimited with a length past the end of the bytes.
            with pytest.raises(grpc.RpcError) as caught:
                call(b"\x0a\xff\xff\xff\x0f\x01", timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"sidra.hil.v1.{rpc}Request" in (caught.value.details() or "")
        assert board.stats().cell_writes == 0
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize("url", [None, 123, b"emu://", ["emu://"]])
def test_a_board_url_that_is_no_string_is_refused_naming_it(url: object) -> None:
    with pytest.raises(InvalidArgument) as refused:
        open_board(url)  # type: ignore[arg-type]
    assert refused.value.field == "board url"
    assert "a URL (str)" in refused.value.allowed
