"""Streams (stream.proto): pipelined MVM batches and transfers larger than one message.

On every board target. ``mvm_stream`` locally (the driver runs the batches one
after another) and through gRPC (one MVMStream with batches in flight) answers
each batch exactly as its unary pass does, in order; a refused batch raises its
error at its place. Over gRPC alone: an error item answers that item and the
stream goes on; a cancelled stream leaves no pass half done and the server
serving; a Program and a read larger than the server's message size travel as
row bands and round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from board_checks import assert_currents_close, is_ideal, mid_range_g, tile_of, within

from sidra.client import connect
from sidra.drivers import Board, BoardInfo, InvalidArgument, OutOfRange, Region
from sidra.drivers.operations import OPERATIONS
from sidra.drivers.requests import ReadConductanceRequest
from sidra.hil import convert, tensors
from sidra.hil.chunks import CHUNK_FRAMING_BYTES
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import stream_pb2 as spb
from sidra.hil.v1 import stream_pb2_grpc
from sidra.server import create_server

READ = next(op for op in OPERATIONS if op.rpc == "ReadConductance")
SMALL_MESSAGE_BYTES = 96 * 2**10
"""A server message size below one 256 x 256 tile of float32 (256 KiB): a whole-tile
Program and read must go as row bands."""


def banded_message_bytes(info: BoardInfo) -> int:
    """The message size a client of the SMALL_MESSAGE_BYTES server is told: that size, or
    on a tile whose targets fit one such message, the framing and half the tile's data,
    so that a whole-tile Program still goes as row bands (two, or more)."""
    return min(SMALL_MESSAGE_BYTES, CHUNK_FRAMING_BYTES + 2 * info.rows * info.cols)


@pytest.fixture
def tile(shared_board: Board) -> int:
    """The tile the stream tests pass through (the suite's tile 3)."""
    return tile_of(shared_board.info, 3)


def _volts(board: Board, batch: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v_max = board.info.read_voltage_max_v
    return rng.uniform(-v_max / 2, v_max / 2, (batch, width)).astype(np.float32)


def _programmed(board: Board, seed: int) -> np.ndarray:
    info = board.info
    g = mid_range_g(info, np.random.default_rng(seed), (info.rows, info.cols))
    board.program(tile_of(info, 3), g)
    return g


@pytest.mark.ideal_only
def test_a_stream_answers_each_batch_as_its_unary_pass_in_order(tile: int, board: Board) -> None:
    """Twelve batches of different sizes, forward then transpose: each result equals the
    unary pass of the same batch, exactly (ideal board), in the order sent."""
    _programmed(board, seed=300)
    rows, cols = board.info.rows, board.info.cols
    forward = [_volts(board, 1 + k % 5, rows, seed=310 + k) for k in range(12)]
    backward = [_volts(board, 1 + k % 3, cols, seed=330 + k) for k in range(12)]
    streamed = list(board.mvm_stream(tile, forward))
    streamed_t = list(board.mvm_stream(tile, backward, transpose=True))
    assert len(streamed) == len(streamed_t) == 12
    for v, result in zip(forward, streamed, strict=True):
        np.testing.assert_array_equal(result.currents, board.mvm(tile, v).currents)
    for v, result in zip(backward, streamed_t, strict=True):
        np.testing.assert_array_equal(result.currents, board.transpose_mvm(tile, v).currents)


def test_a_stream_over_a_region_passes_only_the_region(tile: int, board: Board) -> None:
    """Region batches stream as region passes: [batch, region rows] -> [batch, region cols]."""
    region = within(board.info, Region(4, 8, 6, 5))
    batches = [_volts(board, 2, region.rows, seed=340 + k) for k in range(3)]
    shapes = [r.currents.shape for r in board.mvm_stream(tile, batches, region)]
    assert shapes == [(2, region.cols)] * 3


def test_a_refused_batch_raises_at_its_place_after_the_results_before_it(
    tile: int, board: Board
) -> None:
    """Batch 2 of 4 is out of range: batches 0 and 1 are answered, then OutOfRange names
    the voltages; the board is as it was (passes do not write)."""
    rows = board.info.rows
    bad = np.full((1, rows), 10 * board.info.read_voltage_max_v, np.float32)
    batches = [_volts(board, 2, rows, 350), _volts(board, 2, rows, 351), bad]
    batches.append(_volts(board, 2, rows, 352))
    results = []
    with pytest.raises(OutOfRange) as caught:
        for result in board.mvm_stream(tile, batches):
            results.append(result)
    assert len(results) == 2
    assert caught.value.field == "voltages"


def test_a_batch_of_the_wrong_shape_is_refused_as_its_unary_pass_is(
    tile: int, board: Board
) -> None:
    """A batch of one dimension, of no vector or of vectors of no input: refused naming
    voltages.shape with the words of the local driver, through gRPC as locally (the
    server leaves a tensor's shape to the request's checks)."""
    rows = board.info.rows
    width = f"[batch >= 1, {rows}] (tile rows)"
    for wrong, allowed in (((rows,), "a 2-D array"), ((0, rows), width), ((2, 0), width)):
        with pytest.raises(InvalidArgument) as caught:
            list(board.mvm_stream(tile, [_volts(board, 1, rows, 353), np.zeros(wrong)]))
        assert type(caught.value) is InvalidArgument
        assert str(caught.value) == f"voltages.shape: got {list(wrong)}, expected {allowed}"


def test_an_empty_stream_answers_nothing(tile: int, board: Board) -> None:
    assert list(board.mvm_stream(tile, [])) == []


# -- over gRPC: the stream itself ----------------------------------------------------------


@pytest.fixture
def streams(served: tuple[Board, int]) -> Iterator[stream_pb2_grpc.StreamServiceStub]:
    """A raw StreamService stub of the served board."""
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        yield stream_pb2_grpc.StreamServiceStub(channel)


def _item(sequence: int, tile: int, voltages: np.ndarray) -> spb.MVMStreamRequest:
    item = spb.MVMStreamRequest(sequence=sequence)
    item.mvm.tile = tile
    tensors.encode_into(item.mvm.voltages, voltages)
    return item


def test_an_error_item_answers_that_item_and_the_stream_goes_on(
    tile: int, served: tuple[Board, int], streams: stream_pb2_grpc.StreamServiceStub
) -> None:
    """Items 0..4, item 2 naming a tile that does not exist: item 2 is answered with its
    error (code, field, value, allowed), items 3 and 4 with their currents; sequence
    numbers are echoed in order."""
    board = served[0]
    rows = board.info.rows
    tiles = [tile, tile, board.info.tile_count, tile, tile]
    items = [_item(100 + k, t, _volts(board, 1, rows, 360 + k)) for k, t in enumerate(tiles)]
    answers = list(streams.MVMStream(iter(items)))
    assert [a.sequence for a in answers] == [100, 101, 102, 103, 104]
    kinds = [a.WhichOneof("result") for a in answers]
    assert kinds == ["mvm", "mvm", "error", "mvm", "mvm"]
    error = answers[2].error
    assert (error.code, error.field, error.exception) == ("OUT_OF_RANGE", "tile", "OutOfRange")
    assert error.value == str(board.info.tile_count) and error.allowed
    assert "tile" in error.message
    assert answers[3].mvm.currents.shape == [1, board.info.cols]


def test_an_item_of_a_malformed_tensor_is_answered_with_its_request_s_error(
    tile: int, served: tuple[Board, int], streams: stream_pb2_grpc.StreamServiceStub
) -> None:
    """Raw items the client never sends: voltages of one dimension and of an empty batch
    are answered with the error of the request's checks (a local driver's words), bytes
    that do not make up the shape with the decoder's, naming the numbers; the stream goes
    on and its last item is answered with its currents."""
    board = served[0]
    rows = board.info.rows
    shapes = [([rows], 4 * rows), ([0, rows], 0), ([1, rows], 4 * rows - 4)]
    items = []
    for k, (shape, nbytes) in enumerate(shapes):
        item = spb.MVMStreamRequest(sequence=k)
        item.mvm.tile = tile
        item.mvm.voltages.dtype = pb.DTYPE_FLOAT32
        item.mvm.voltages.shape.extend(shape)
        item.mvm.voltages.data = bytes(nbytes)
        items.append(item)
    items.append(_item(3, tile, _volts(board, 1, rows, 354)))
    answers = list(streams.MVMStream(iter(items)))
    errors = [(a.error.code, a.error.field, a.error.value, a.error.allowed) for a in answers[:3]]
    assert errors == [
        ("INVALID_ARGUMENT", "voltages.shape", f"[{rows}]", "a 2-D array"),
        ("INVALID_ARGUMENT", "voltages.shape", f"[0, {rows}]", f"[batch >= 1, {rows}] (tile rows)"),
        (
            "INVALID_ARGUMENT", "voltages.data", f"{4 * rows - 4} bytes",
            f"{4 * rows} bytes (shape [1, {rows}] x 4 bytes per element)",
        ),
    ]  # fmt: skip
    assert answers[3].mvm.currents.shape == [1, board.info.cols]


def test_an_item_that_sets_no_pass_ends_the_stream_with_invalid_argument(
    streams: stream_pb2_grpc.StreamServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(streams.MVMStream(iter([spb.MVMStreamRequest(sequence=7)])))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sequence 7" in (caught.value.details() or "")


def test_a_stream_cancelled_mid_way_leaves_whole_passes_and_the_server_serving(
    tile: int, served: tuple[Board, int], streams: stream_pb2_grpc.StreamServiceStub
) -> None:
    """A client sends items forever and cancels after three answers: every pass that ran
    ran whole (the board's pass count grew by whole batches of 4), and the server answers
    the next call."""
    board, port = served
    rows = board.info.rows
    v = _volts(board, 4, rows, seed=370)
    before = board.stats().mvm_passes

    def forever() -> Iterator[spb.MVMStreamRequest]:
        k = 0
        while True:
            yield _item(k, tile, v)
            k += 1

    call = streams.MVMStream(forever())
    answered = [next(call) for _ in range(3)]
    call.cancel()
    assert [a.sequence for a in answered] == [0, 1, 2]
    with connect(f"127.0.0.1:{port}") as client:
        served_again = client.mvm(tile, v).currents
    passes = board.stats().mvm_passes - before
    if is_ideal(board.info):
        np.testing.assert_array_equal(served_again, _currents(answered[0]))
    else:  # a noisy board: both within the MVM contract of the tile as read
        g = board.read_conductance(tile).conductances
        for currents in (served_again, _currents(answered[0])):
            assert_currents_close(currents, v, g, board.info)
    assert passes >= 4 * 4 and passes % 4 == 0


def _currents(answer: spb.MVMStreamResponse) -> Any:
    return tensors.decode(answer.mvm.currents, "currents")


# -- over gRPC: chunked Program and ReadConductance ----------------------------------------


@pytest.fixture
def small_messages(shared_board: Board) -> Iterator[int]:
    """The shared board behind a server taking messages of SMALL_MESSAGE_BYTES; its port."""
    server, port = create_server(shared_board, "127.0.0.1:0", max_message_bytes=SMALL_MESSAGE_BYTES)
    server.start()
    yield port
    server.stop(grace=None)


@pytest.mark.ideal_only
def test_a_program_larger_than_one_message_round_trips_exactly(
    tile: int, small_messages: int
) -> None:
    """A whole tile (256 KiB of targets) through a server of 96 KiB messages: Program goes
    as row bands, the read comes back as row bands, both equal to the targets; the report
    is the one a unary Program gives (every cell written)."""
    with connect(f"127.0.0.1:{small_messages}", server_max_message_bytes=SMALL_MESSAGE_BYTES) as c:
        info = c.info
        assert 4 * info.rows * info.cols > SMALL_MESSAGE_BYTES
        g = mid_range_g(info, np.random.default_rng(380), (info.rows, info.cols))
        report = c.program(tile, g)
        assert report.cells_written == info.rows * info.cols
        np.testing.assert_array_equal(c.read_conductance(tile).conductances, g)


def test_a_chunked_program_with_one_bad_value_writes_nothing(
    tile: int, small_messages: int, shared_board: Board
) -> None:
    """The last band holds one target above g_max_us: OutOfRange naming conductances, and
    no cell of the tile was written (write counts unchanged)."""
    bands = banded_message_bytes(shared_board.info)
    with connect(f"127.0.0.1:{small_messages}", server_max_message_bytes=bands) as c:
        info = c.info
        g = mid_range_g(info, np.random.default_rng(381), (info.rows, info.cols))
        g[-1, -1] = info.g_max_us * 2
        before = shared_board.read_write_counts(tile).counts.copy()
        with pytest.raises(OutOfRange) as caught:
            c.program(tile, g)
        assert caught.value.field == "conductances"
        np.testing.assert_array_equal(shared_board.read_write_counts(tile).counts, before)


def test_bands_that_do_not_make_up_the_declared_shape_are_refused(
    tile: int, small_messages: int
) -> None:
    """A first chunk declaring 4 rows followed by bands of 2 and 1 rows: INVALID_ARGUMENT
    naming the chunks, and nothing ran."""
    with grpc.insecure_channel(f"127.0.0.1:{small_messages}") as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        g = np.full((2, 8), 20.0, np.float32)
        first = spb.ProgramChunk(tile=tile, shape=[4, 8])
        tensors.encode_into(first.conductances, g)
        second = spb.ProgramChunk()
        tensors.encode_into(second.conductances, g[:1])
        with pytest.raises(grpc.RpcError) as caught:
            stub.ProgramChunked(iter([first, second]))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "3 rows sent" in (caught.value.details() or "")
        whole = spb.ProgramChunk(tile=tile, shape=[2, 8])
        tensors.encode_into(whole.conductances, g)
        with pytest.raises(grpc.RpcError) as past:  # a band after the last row
            stub.ProgramChunked(iter([whole, second]))
        assert "no more chunks: the 2 rows declared are all sent" in (past.value.details() or "")


def test_a_chunked_read_names_its_fields_under_read(tile: int, small_messages: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{small_messages}") as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        request = spb.ReadConductanceChunkedRequest(read=pb.ReadConductanceRequest(tile=99))
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.ReadConductanceChunked(request))
        assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "read.tile" in (caught.value.details() or "")
        too_big = spb.ReadConductanceChunkedRequest(
            read=pb.ReadConductanceRequest(tile=tile), chunk_bytes=SMALL_MESSAGE_BYTES
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.ReadConductanceChunked(too_big))
        assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "chunk_bytes" in (caught.value.details() or "")


def test_a_chunked_read_has_one_reads_cost(
    tile: int, small_messages: int, shared_board: Board
) -> None:
    """The bands of a chunked read are one ReadConductance: the same cost as a unary read
    of the region, carried by the first band."""
    info = shared_board.info
    # 16 KiB chunks, whatever the geometry, but on a tile of less than 64 KiB a quarter of it
    chunk_bytes = min(16 * 1024, 4 * info.cols * max(info.rows // 4, 1))
    band = chunk_bytes // (4 * info.cols)
    rows = min(info.rows, 4 * band)
    region = Region(0, 0, rows, info.cols)
    unary = shared_board.read_conductance(tile, region)
    with grpc.insecure_channel(f"127.0.0.1:{small_messages}") as channel:
        stub = stream_pb2_grpc.StreamServiceStub(channel)
        read = convert.request_to_pb(ReadConductanceRequest(tile, region), READ)
        request = spb.ReadConductanceChunkedRequest(read=read, chunk_bytes=chunk_bytes)
        chunks = list(stub.ReadConductanceChunked(request))
    assert [c.row_start for c in chunks] == list(range(0, rows, band))
    assert list(chunks[0].shape) == [rows, info.cols]
    assert chunks[0].cost.time_ns == pytest.approx(unary.cost.time_ns)


def test_a_chunked_program_the_client_cancels_is_no_service_fault(
    tile: int, small_messages: int, shared_board: Board, caplog: pytest.LogCaptureFixture
) -> None:
    """The client gives up mid-stream: nothing is written, and the server logs no
    failure with a traceback (it counted an INTERNAL error for every such cancel)."""
    import threading

    g = np.full((2, 8), 20.0, np.float32)
    first = spb.ProgramChunk(tile=tile, shape=[4, 8])
    tensors.encode_into(first.conductances, g)
    sent = threading.Event()

    def chunks() -> Iterator[spb.ProgramChunk]:
        yield first
        sent.set()
        threading.Event().wait(5)  # the second band never comes: the client cancels
        yield first

    before = shared_board.read_write_counts(tile).counts.copy()
    with grpc.insecure_channel(f"127.0.0.1:{small_messages}") as channel:
        call = stream_pb2_grpc.StreamServiceStub(channel).ProgramChunked.future(chunks())
        assert sent.wait(5)
        threading.Event().wait(0.2)  # the server reads the first band and waits
        call.cancel()
        threading.Event().wait(0.5)  # the server sees the stream end
    np.testing.assert_array_equal(shared_board.read_write_counts(tile).counts, before)
    failed = [r for r in caplog.records if "ProgramChunked failed" in r.getMessage()]
    assert failed == [], [r.getMessage() for r in failed]
