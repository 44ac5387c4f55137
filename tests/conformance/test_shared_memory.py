"""Shared-memory tensors (session.proto, "Shared memory"; board.proto, SharedTensor) over gRPC.

A client on the server's host registers a POSIX shared-memory object in its session and
names tensors inside it in MVM / TransposeMVM requests: the server reads the inputs and
writes the outputs in place. On every target, through a real server with shared memory
enabled in front of the target's board: a pass through shared memory equals the pass
with the tensors in the messages (bit for bit on an ideal board), codes go through it
too, and every refusal is the documented one, leaving the board's counters unchanged:
another session's registration (PERMISSION_DENIED), an unregistered one or one whose
session ended (FAILED_PRECONDITION), a tensor past the registration's end (OUT_OF_RANGE),
misaligned, of the wrong dtype or shape, or beside voltages (INVALID_ARGUMENT), an object
truncated after registering, even while a call copies (FAILED_PRECONDITION), and a server
that does not enable it (the suite's ``served`` server: PERMISSION_DENIED). Shared memory
applies only over gRPC.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from board_checks import assert_currents_close, is_ideal, mid_range_g, within
from grpc import StatusCode as SC

from sidra.client import RemoteBoard, connect
from sidra.drivers import (
    Board,
    BoardInfo,
    FailedPrecondition,
    InvalidArgument,
    Region,
    SidraError,
)
from sidra.hil.metadata import SESSION_ID_KEY
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.hil.v1 import session_pb2
from sidra.server import create_server
from sidra.server.settings import SharedMemorySettings

TILE = 3
BATCH = 64
DRIVEN = 8
"""Inputs a pass drives (2 .. 10, moved back on a narrower input: :func:`voltages`)."""


def region(info: BoardInfo) -> Region:
    """The region of the TransposeMVM tests: 20 x 12 from row 4, column 6 (board_checks.within
    on a smaller tile)."""
    return within(info, Region(4, 6, 20, 12))


def pair_bytes(info: BoardInfo) -> int:
    """A batch of float32 inputs and its outputs: BATCH x (rows + cols) x 4 bytes."""
    return BATCH * (info.rows + info.cols) * 4


@pytest.fixture(scope="module")
def shm_port(shared_board: Board) -> Iterator[int]:
    """The target's board behind a server that enables shared memory."""
    server, port = create_server(
        shared_board, "127.0.0.1:0", shared_memory=SharedMemorySettings(enabled=True)
    )
    server.start()
    yield port
    server.stop(grace=None)


@pytest.fixture
def client(shm_port: int) -> Iterator[RemoteBoard]:
    with connect(f"127.0.0.1:{shm_port}") as board, board.session():
        yield board


@pytest.fixture(scope="module")
def g(shared_board: Board) -> Any:
    info = shared_board.info
    shared_board.program(
        TILE % info.tile_count, mid_range_g(info, np.random.default_rng(8), (info.rows, info.cols))
    )
    return shared_board.read_conductance(TILE % info.tile_count).conductances


def driven(width: int) -> slice:
    """The DRIVEN inputs of a pass: 2 .. 10, moved back to end at the last of ``width``."""
    start = max(min(2, width - DRIVEN), 0)
    return slice(start, min(start + DRIVEN, width))


def voltages(board: Board, width: int, seed: int) -> Any:
    v = np.zeros((BATCH, width), np.float32)
    lines = driven(width)
    v[:, lines] = np.random.default_rng(seed).uniform(
        0, board.info.read_voltage_max_v / 2, (BATCH, lines.stop - lines.start)
    )
    return v


def passes(board: Board) -> int:
    return board.stats().mvm_passes


def test_a_pass_through_shared_memory_is_the_pass(client: RemoteBoard, g: Any) -> None:
    info, tile = client.info, TILE % client.info.tile_count
    v = voltages(client, info.rows, 1)
    end = pair_bytes(info)  # the inputs, then the outputs
    with client.shared_memory(end + 8192) as shm:
        inputs = shm.array(v.shape)
        outputs = shm.array((BATCH, info.cols), offset_bytes=v.nbytes)
        inputs.array[:] = v
        result = client.mvm_shared(tile, inputs, outputs)
        assert result.currents is outputs.array
        assert result.cost.time_ns > 0
        if is_ideal(info):  # the same float32 inputs, the same deterministic pass
            np.testing.assert_array_equal(outputs.array, client.mvm(tile, v).currents)
        assert_currents_close(outputs.array, v, g, info)
        # TransposeMVM and a region, at offsets further in.
        part = region(info)
        vt = voltages(client, part.cols, 2)
        back_in = shm.array(vt.shape, offset_bytes=end - vt.nbytes)
        back_out = shm.array((BATCH, part.rows), offset_bytes=end)
        back_in.array[:] = vt
        client.mvm_shared(tile, back_in, back_out, part, transpose=True)
        assert_currents_close(back_out.array, vt, np.asarray(g)[part.slices].T, info)


def test_codes_through_shared_memory(client: RemoteBoard, g: Any) -> None:
    info, tile = client.info, TILE % client.info.tile_count
    with client.shared_memory(BATCH * (info.rows + 4 * info.cols)) as shm:
        k = shm.array((BATCH, info.rows), np.int8)
        k.array[:] = 0
        lines = driven(info.rows)
        k.array[:, lines] = np.random.default_rng(3).integers(
            0, 20, (BATCH, lines.stop - lines.start)
        )
        out = shm.array((BATCH, info.cols), np.float32, offset_bytes=BATCH * info.rows)
        if info.dac_bits == 0:
            with pytest.raises(InvalidArgument) as err:
                client.mvm_shared(tile, k, out)
            assert err.value.field == "input_codes"
            return
        result = client.mvm_shared(tile, k, out)
        step_v = info.read_voltage_max_v / ((1 << (info.dac_bits - 1)) - 1)
        assert_currents_close(result.currents, k.array * np.float32(step_v), g, info)


def test_a_stream_of_shared_memory_passes_is_the_passes(client: RemoteBoard, g: Any) -> None:
    """Seven passes over one MVMStream, two in flight, through three (inputs, outputs)
    pairs given in turn (depth + 1), each pair's inputs filled as the stream draws it:
    every result is its pair's outputs, written in place, and equals the pass of its
    own inputs; then TransposeMVM over a region, with codes in and out on a board with
    converters."""
    info, tile = client.info, TILE % client.info.tile_count
    v = [voltages(client, info.rows, 20 + k) for k in range(7)]
    depth, slot = 2, BATCH * 4 * (info.rows + info.cols)
    with client.shared_memory(3 * slot) as shm:
        pairs = [
            (shm.array((BATCH, info.rows), offset_bytes=k * slot),
             shm.array((BATCH, info.cols), offset_bytes=k * slot + BATCH * 4 * info.rows))
            for k in range(3)
        ]  # fmt: skip
        drawn = []

        def fill() -> Iterator[tuple[Any, Any]]:
            for k, batch in enumerate(v):
                inputs, outputs = pairs[k % 3]
                inputs.array[:] = batch
                drawn.append(k)
                yield inputs, outputs

        stream = client.mvm_shared_stream(tile, fill(), depth=depth)
        for k, result in enumerate(stream):
            assert result.currents is pairs[k % 3][1].array
            assert max(drawn) <= k + depth  # no pair drawn again before its result was used
            if is_ideal(info):
                np.testing.assert_array_equal(result.currents, client.mvm(tile, v[k]).currents)
            assert_currents_close(result.currents, v[k], g, info)
        assert drawn == list(range(7))
        part = region(info)
        vt = voltages(client, part.cols, 30)
        back_in, back_out = shm.array(vt.shape), shm.array((BATCH, part.rows), offset_bytes=slot)
        back_in.array[:] = vt
        (back,) = client.mvm_shared_stream(tile, [(back_in, back_out)], part, transpose=True)
        assert back.currents is back_out.array
        assert_currents_close(back.currents, vt, np.asarray(g)[part.slices].T, info)
        if info.dac_bits and info.adc_bits:
            codes_in = shm.array((BATCH, info.rows), np.int8, offset_bytes=2 * slot)
            codes_out = shm.array(
                (BATCH, info.cols), np.int16, offset_bytes=2 * slot + BATCH * 4 * info.rows
            )  # the third pair's place: the codes are smaller than its float32s
            codes_in.array[:] = 3
            (coded,) = client.mvm_shared_stream(tile, [(codes_in, codes_out)], output_codes=True)
            assert coded.output_codes is codes_out.array
            unary = client.mvm_shared(tile, codes_in, codes_out, output_codes=True)
            if is_ideal(info):
                np.testing.assert_array_equal(coded.currents, unary.currents)
        pairs.clear()
        del back_in, back_out


def test_a_refused_item_of_a_shared_memory_stream_raises_where_its_result_would_be(
    client: RemoteBoard, shm_port: int, shared_board: Board
) -> None:
    """Another session's registration in the third item: the first two results come, the
    third raises the unary call's refusal, and the board ran the first two alone (nothing
    is sent after a refused item)."""
    info, tile = client.info, TILE % client.info.tile_count
    slot = BATCH * 4 * (info.rows + info.cols)

    def pair(shm: Any, k: int = 0) -> tuple[Any, Any]:
        inputs = shm.array((BATCH, info.rows), offset_bytes=k * slot)
        inputs.array[:] = voltages(client, info.rows, 40 + k)
        return inputs, shm.array((BATCH, info.cols), offset_bytes=k * slot + 4 * BATCH * info.rows)

    with client.shared_memory(2 * slot) as shm, connect(f"127.0.0.1:{shm_port}") as other:
        mine = [pair(shm, 0), pair(shm, 1)]
        with other.session(), other.shared_memory(slot) as theirs:
            items = [mine[0], mine[1], pair(theirs), mine[0]]
            before = passes(shared_board)
            got = []
            with pytest.raises(SidraError) as err:
                for result in client.mvm_shared_stream(tile, items, depth=1):
                    got.append(result.saturated_outputs)
            assert len(got) == 2
            assert "PERMISSION_DENIED" in str(err.value) and "another session" in str(err.value)
            assert passes(shared_board) == before + 2 * BATCH
            del items
        del mine


def test_another_sessions_registration_is_refused(
    client: RemoteBoard, shm_port: int, shared_board: Board
) -> None:
    info = client.info
    with client.shared_memory(pair_bytes(info), name="mine") as shm:
        inputs, outputs = (
            shm.array((BATCH, info.rows)),
            shm.array((BATCH, info.cols), offset_bytes=BATCH * info.rows * 4),
        )
        with connect(f"127.0.0.1:{shm_port}") as other, other.session():
            before = passes(shared_board)
            with pytest.raises(SidraError) as err:
                other.mvm_shared(0, inputs, outputs)
            assert "another session" in str(err.value)
            assert passes(shared_board) == before
        # The same name without any session.
        with grpc.insecure_channel(f"127.0.0.1:{shm_port}") as channel:
            stub = pb_grpc.BoardServiceStub(channel)
            request = pb.MVMRequest(shared_inputs=inputs.to_pb(), shared_outputs=outputs.to_pb())
            with pytest.raises(grpc.RpcError) as rpc:
                stub.MVM(request, timeout=10)
            assert rpc.value.code() == SC.PERMISSION_DENIED


def test_unregistered_or_ended_registrations_are_refused(
    client: RemoteBoard, shm_port: int
) -> None:
    info = client.info
    shm = client.shared_memory(pair_bytes(info))
    inputs, outputs = (
        shm.array((BATCH, info.rows)),
        shm.array((BATCH, info.cols), offset_bytes=BATCH * info.rows * 4),
    )
    ghost = pb.SharedTensor(
        region="never-registered", dtype=pb.DTYPE_FLOAT32, shape=[BATCH, info.rows]
    )
    with grpc.insecure_channel(f"127.0.0.1:{shm_port}") as channel:
        stub = pb_grpc.BoardServiceStub(channel)
        metadata = ((SESSION_ID_KEY, shm.session_id),)
        with pytest.raises(grpc.RpcError) as rpc:
            stub.MVM(pb.MVMRequest(shared_inputs=ghost), metadata=metadata, timeout=10)
        assert rpc.value.code() == SC.FAILED_PRECONDITION
        shm.close()  # unregistered and unlinked
        with pytest.raises(grpc.RpcError) as rpc:
            request = pb.MVMRequest(shared_inputs=inputs.to_pb(), shared_outputs=outputs.to_pb())
            stub.MVM(request, metadata=metadata, timeout=10)
        assert rpc.value.code() == SC.FAILED_PRECONDITION
    # A registration ends with its session, and the client unlinks the object then.
    with connect(f"127.0.0.1:{shm_port}") as board:
        session = board.session()
        memory = board.shared_memory(pair_bytes(info))
        path = Path("/dev/shm") / memory.key.lstrip("/")
        assert path.exists()
        a, b = (
            memory.array((BATCH, info.rows)),
            memory.array((BATCH, info.cols), offset_bytes=BATCH * info.rows * 4),
        )
        board.mvm_shared(0, a, b)
        session_id = session.id
        session.close()
        with grpc.insecure_channel(f"127.0.0.1:{shm_port}") as channel:
            stub = pb_grpc.BoardServiceStub(channel)
            with pytest.raises(grpc.RpcError) as rpc:
                stub.MVM(
                    pb.MVMRequest(shared_inputs=a.to_pb(), shared_outputs=b.to_pb()),
                    metadata=((SESSION_ID_KEY, session_id),), timeout=10,
                )  # fmt: skip
            assert rpc.value.code() == SC.FAILED_PRECONDITION
        assert not path.exists()  # not left behind (it was until the process ended)
        board.session()
        kept = board.shared_memory(4096)
        path = Path("/dev/shm") / kept.key.lstrip("/")
    assert not path.exists()  # the client closed: its session, and the object with it


def _bad_room(info: BoardInfo) -> int:
    """Bytes registered past a pair in test_bad_shared_tensors: 4 KiB, less than the
    inputs (half of them on a tile of fewer than 32 rows), so inputs placed after the pair
    pass the end."""
    return min(4096, BATCH * info.rows * 2)


def _bad(info: Any, name: str) -> dict[str, tuple[pb.MVMRequest, grpc.StatusCode, str]]:
    rows, cols = info.rows, info.cols
    size = BATCH * rows * 4  # the inputs; the outputs follow them

    def t(
        offset: int = 0, dtype: int = pb.DTYPE_FLOAT32, shape: tuple[int, ...] = (BATCH, rows)
    ) -> pb.SharedTensor:
        return pb.SharedTensor(region=name, offset_bytes=offset, dtype=dtype, shape=shape)

    out = t(size, shape=(BATCH, cols))
    return {
        "past-the-end": (
            pb.MVMRequest(shared_inputs=t(pair_bytes(info)), shared_outputs=out),
            SC.OUT_OF_RANGE,
            "shared_inputs.offset_bytes",
        ),
        "misaligned": (
            pb.MVMRequest(shared_inputs=t(2), shared_outputs=out),
            SC.INVALID_ARGUMENT,
            "shared_inputs.offset_bytes",
        ),
        "float64": (
            pb.MVMRequest(shared_inputs=t(dtype=pb.DTYPE_FLOAT64), shared_outputs=out),
            SC.INVALID_ARGUMENT,
            "shared_inputs.dtype",
        ),
        "3-d": (
            pb.MVMRequest(shared_inputs=t(shape=(1, BATCH, rows)), shared_outputs=out),
            SC.INVALID_ARGUMENT,
            "shared_inputs.shape",
        ),
        "output-shape": (
            pb.MVMRequest(shared_inputs=t(), shared_outputs=t(size, shape=(BATCH, cols + 1))),
            SC.INVALID_ARGUMENT,
            "shared_outputs.shape",
        ),
        "output-dtype": (
            pb.MVMRequest(shared_inputs=t(), shared_outputs=t(size, pb.DTYPE_INT16, (BATCH, cols))),
            SC.INVALID_ARGUMENT,
            "shared_outputs.dtype",
        ),
        "beside-voltages": (
            pb.MVMRequest(
                voltages=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[1, rows], data=bytes(4 * rows)),
                shared_inputs=t(),
                shared_outputs=out,
            ),
            SC.INVALID_ARGUMENT,
            "shared_inputs",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "past-the-end",
        "misaligned",
        "float64",
        "3-d",
        "output-shape",
        "output-dtype",
        "beside-voltages",
    ],
)
def test_bad_shared_tensors(
    case: str, client: RemoteBoard, shm_port: int, shared_board: Board
) -> None:
    info = client.info
    with client.shared_memory(pair_bytes(info) + _bad_room(info), name="bad") as shm:
        request, code, field = _bad(info, shm.name)[case]
        before = passes(shared_board)
        with grpc.insecure_channel(f"127.0.0.1:{shm_port}") as channel:
            stub = pb_grpc.BoardServiceStub(channel)
            with pytest.raises(grpc.RpcError) as rpc:
                stub.MVM(request, metadata=((SESSION_ID_KEY, shm.session_id),), timeout=10)
        assert rpc.value.code() == code, rpc.value.details()
        assert rpc.value.details().startswith(field), rpc.value.details()
        assert passes(shared_board) == before


def test_a_truncated_object_is_refused(client: RemoteBoard, shared_board: Board) -> None:
    info = client.info
    with client.shared_memory(pair_bytes(info)) as shm:
        inputs, outputs = (
            shm.array((BATCH, info.rows)),
            shm.array((BATCH, info.cols), offset_bytes=BATCH * info.rows * 4),
        )
        fd = os.open(f"/dev/shm/{shm.key.lstrip('/')}", os.O_RDWR)
        try:  # into the inputs (4 KiB of their 64 KiB on a 256-row tile): the read comes short
            os.ftruncate(fd, min(4096, inputs.array.nbytes // 2))
        finally:
            os.close(fd)
        before = passes(shared_board)
        with pytest.raises(FailedPrecondition) as err:
            client.mvm_shared(0, inputs, outputs)
        assert "shrank" in str(err.value)
        assert passes(shared_board) == before
        del inputs, outputs


def test_truncations_racing_the_calls_fail_those_calls_and_never_the_server(
    client: RemoteBoard, shared_board: Board, g: Any
) -> None:
    """The object shrinks and grows back again and again while calls read and write it:
    each call either answers or is refused as "shrank"; the server (this process) never
    faults, and answers a pass afterwards as before."""
    info = client.info
    tile = TILE % info.tile_count
    size = BATCH * info.rows * 4 + BATCH * info.cols * 4
    with client.shared_memory(size) as shm:
        inputs = shm.array((BATCH, info.rows))
        outputs = shm.array((BATCH, info.cols), offset_bytes=BATCH * info.rows * 4)
        inputs.array[:] = voltages(shared_board, info.rows, 11)
        fd = os.open(f"/dev/shm/{shm.key.lstrip('/')}", os.O_RDWR)
        stop = threading.Event()

        def shrink_and_grow() -> None:
            while not stop.is_set():
                os.ftruncate(fd, 64)
                os.ftruncate(fd, size)

        racer = threading.Thread(target=shrink_and_grow)
        racer.start()
        answered = refused = 0
        try:
            for _ in range(150):
                try:
                    client.mvm_shared(tile, inputs, outputs)
                    answered += 1
                except FailedPrecondition as exc:
                    assert "shrank" in str(exc)
                    refused += 1
        finally:
            stop.set()
            racer.join()
            os.ftruncate(fd, size)
            os.close(fd)
        assert answered + refused == 150
        # The object was zero-filled past 64 bytes by the shrinking: write the inputs again.
        inputs.array[:] = voltages(shared_board, info.rows, 11)
        done = client.mvm_shared(tile, inputs, outputs)
        expected = client.mvm(tile, voltages(shared_board, info.rows, 11))
        if is_ideal(info):
            np.testing.assert_array_equal(done.currents, expected.currents)
        del inputs, outputs


def test_registration_refusals(client: RemoteBoard, shm_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{shm_port}") as channel:
        register = channel.unary_unary(
            "/sidra.hil.v1.SessionService/RegisterSharedMemory",
            request_serializer=session_pb2.RegisterSharedMemoryRequest.SerializeToString,
            response_deserializer=session_pb2.SharedMemoryRegistration.FromString,
        )
        session_id = client._session.id  # noqa: SLF001
        memory = shared_memory.SharedMemory(create=True, size=4096)
        try:
            cases = {
                "no object": (
                    dict(key="sidra-no-such-object", size_bytes=16),
                    SC.FAILED_PRECONDITION,
                ),
                "bigger than the object": (
                    dict(key=memory.name, size_bytes=1 << 20),
                    SC.OUT_OF_RANGE,
                ),
                "a path": (dict(key="../etc/passwd", size_bytes=16), SC.INVALID_ARGUMENT),
                "a folder": (dict(key="..", size_bytes=16), SC.INVALID_ARGUMENT),
                "this folder": (dict(key="/.", size_bytes=16), SC.INVALID_ARGUMENT),
                "no session": (
                    dict(key=memory.name, size_bytes=16, session_id="0" * 32),
                    SC.FAILED_PRECONDITION,
                ),
            }
            for what, (fields, code) in cases.items():
                fields = {"session_id": session_id, "name": "r", **fields}
                with pytest.raises(grpc.RpcError) as rpc:
                    register(session_pb2.RegisterSharedMemoryRequest(**fields), timeout=10)
                assert rpc.value.code() == code, (what, rpc.value.details())
        finally:
            memory.close()
            memory.unlink()


def test_a_server_without_shared_memory_refuses_it(remote: RemoteBoard) -> None:
    with remote.session(), pytest.raises(SidraError) as err:
        remote.shared_memory(4096)
    assert "does not offer shared memory" in str(err.value)
