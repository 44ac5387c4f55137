"""Converter codes (board.proto, "Converter codes"): MVM and TransposeMVM given DAC codes
and answering ADC codes.

An input code k drives k · dac_step_v volts (dac_step_v = read_voltage_max_v / L); an
output code m stands for m · adc_step_ua µA (adc_full_scale_ua / L times the tile's
calibration gain), L = 2^(bits-1) - 1. On any board with converters: a pass given codes
is the pass of the voltages they drive (within the MVM contract of board_checks.py), the
currents of a response are exactly its codes times its step, codes come as the ADC's
narrowest integer type within ±L, and the steps are the documented ones (the gain after
a Calibrate included). A board with an ideal converter refuses codes naming the field.
Bad code requests over gRPC get the documented status and BadRequest path and leave
the board unchanged.

The default targets are ideal boards, which have no codes: beside each target these tests
open a board with converters on the same transport (``open_with_converters``, conftest.py:
the sidra-y1 preset; a target named by URL is used itself), and run on its local driver
and through gRPC (``codes_board``). The ideal targets themselves must refuse codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from bad_requests import bad_request_details, f32, raw
from board_checks import DRIVEN_ROWS, assert_currents_close, mid_range_g

from sidra.client import connect
from sidra.drivers import Board, BoardInfo, InvalidArgument, OutOfRange, Region
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server

I8 = npt.NDArray[np.int8]


def levels(bits: int) -> int:
    return (1 << (bits - 1)) - 1 if bits > 1 else 1


def has_codes(info: BoardInfo) -> bool:
    return info.dac_bits > 0 and info.adc_bits > 0 and info.adc_full_scale_ua > 0.0


def code_type(bits: int) -> np.dtype[np.signedinteger[object]]:
    return np.dtype(np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32)


def sparse_codes(info: BoardInfo, rng: np.random.Generator, batch: int, width: int) -> I8:
    """Codes 0 .. L/2 on DRIVEN_ROWS inputs from input 3 (as sparse_voltages: no output
    saturates; moved back on a narrower input, every input on fewer than DRIVEN_ROWS)."""
    k = np.zeros((batch, width), code_type(info.dac_bits))
    top = max(levels(info.dac_bits) // 2, 1)
    driven = min(DRIVEN_ROWS, width)
    start = min(3, width - driven)
    k[:, start : start + driven] = rng.integers(0, top + 1, (batch, driven))
    return k


@pytest.fixture(scope="module")
def converter_served(
    board_target: Any, request: pytest.FixtureRequest
) -> Iterator[tuple[Board, int]]:
    """A board with converters on the target's transport, served on a loopback port: a
    board this run builds (the default boards, emu:// URLs) is opened again with
    converters; a board named by URL is the session's board itself, since a second host
    on one board's link would fight the first (the tests for converters skip an ideal
    one)."""
    if board_target.opens_fresh:
        opened = board_target.open_with_converters()
    else:
        opened = contextlib.nullcontext(request.getfixturevalue("shared_board"))
    with opened as driver:
        server, port = create_server(driver, "127.0.0.1:0")
        server.start()
        try:
            yield driver, port
        finally:
            server.stop(grace=None)


@pytest.fixture(scope="module")
def converter_remote(converter_served: tuple[Board, int]) -> Iterator[Board]:
    with connect(f"127.0.0.1:{converter_served[1]}") as client:
        yield client


@pytest.fixture(params=["local", "grpc"])
def codes_board(request: pytest.FixtureRequest, converter_served: tuple[Board, int]) -> Board:
    """The board with converters through its local driver, then through gRPC."""
    if request.param == "local":
        return converter_served[0]
    found: Board = request.getfixturevalue("converter_remote")
    return found


@pytest.fixture
def converter_stub(converter_served: tuple[Board, int]) -> Iterator[pb_grpc.BoardServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{converter_served[1]}") as channel:
        yield pb_grpc.BoardServiceStub(channel)


@pytest.fixture
def programmed(codes_board: Board) -> tuple[Board, npt.NDArray[np.float32]]:
    board = codes_board
    info = board.info
    if not has_codes(info):
        pytest.skip("the board has an ideal converter: codes are refused (tested below)")
    g = mid_range_g(info, np.random.default_rng(13), (info.rows, info.cols))
    board.program(2 % info.tile_count, g)
    # The reference is G as read back: stuck cells hold their bound whatever the target.
    return board, board.read_conductance(2 % info.tile_count).conductances


def test_mvm_given_codes_is_the_pass_of_their_voltages(programmed: tuple[Board, object]) -> None:
    board, g = programmed
    info, tile = board.info, 2 % board.info.tile_count
    k = sparse_codes(info, np.random.default_rng(1), 16, info.rows)
    result = board.mvm(tile, input_codes=k)
    step_v = info.read_voltage_max_v / levels(info.dac_bits)
    assert result.dac_step_v == pytest.approx(step_v, rel=1e-15)
    assert result.output_codes is None
    assert_currents_close(result.currents, k.astype(np.float32) * np.float32(step_v), g, info)


def test_output_codes_are_the_adc_codes_behind_the_currents(
    programmed: tuple[Board, object],
) -> None:
    board, g = programmed
    info, tile = board.info, 2 % board.info.tile_count
    k = sparse_codes(info, np.random.default_rng(2), 16, info.rows)
    result = board.mvm(tile, input_codes=k, output_codes=True)
    codes = result.output_codes
    assert codes is not None
    assert codes.dtype == code_type(info.adc_bits)
    assert codes.shape == (16, info.cols)
    assert int(np.abs(codes.astype(np.int64)).max()) <= levels(info.adc_bits)
    assert result.adc_step_ua > 0.0
    # Exactly the codes times the step, as the board scaled them.
    np.testing.assert_array_equal(
        result.currents, codes.astype(np.float32) * np.float32(result.adc_step_ua)
    )
    step_v = info.read_voltage_max_v / levels(info.dac_bits)
    assert_currents_close(result.currents, k.astype(np.float32) * np.float32(step_v), g, info)


def test_voltages_in_codes_out(programmed: tuple[Board, object]) -> None:
    board, g = programmed
    info, tile = board.info, 2 % board.info.tile_count
    step_v = info.read_voltage_max_v / levels(info.dac_bits)
    v = sparse_codes(info, np.random.default_rng(3), 4, info.rows).astype(np.float32) * step_v
    result = board.mvm(tile, v, output_codes=True)
    assert result.output_codes is not None
    np.testing.assert_array_equal(
        result.currents, result.output_codes.astype(np.float32) * np.float32(result.adc_step_ua)
    )
    assert_currents_close(result.currents, v, g, info)


def test_transpose_and_region_passes_take_codes(programmed: tuple[Board, object]) -> None:
    board, g = programmed
    info, tile = board.info, 2 % board.info.tile_count
    step_v = info.read_voltage_max_v / levels(info.dac_bits)
    k = sparse_codes(info, np.random.default_rng(4), 8, info.cols)
    back = board.transpose_mvm(tile, input_codes=k, output_codes=True)
    assert back.output_codes is not None and back.output_codes.shape == (8, info.rows)
    gt = np.asarray(g).T
    assert_currents_close(back.currents, k.astype(np.float32) * np.float32(step_v), gt, info)
    region = Region(1, 2, min(20, info.rows - 1), min(12, info.cols - 2))
    k = sparse_codes(info, np.random.default_rng(5), 8, region.rows)
    part = board.mvm(tile, input_codes=k, region=region, output_codes=True)
    assert part.output_codes is not None and part.output_codes.shape == (8, region.cols)
    assert_currents_close(
        part.currents, k.astype(np.float32) * np.float32(step_v), np.asarray(g)[region.slices], info
    )


def test_adc_step_includes_the_calibration_gain(codes_board: Board) -> None:
    fresh_board = codes_board  # tile 1 is this test's own
    info = fresh_board.info
    if not has_codes(info):
        pytest.skip("the board has an ideal converter")
    if info.tile_count < 2:  # a calibration rescales its tile for good
        pytest.skip("the calibration needs a tile no other test reads: the board has one")
    fresh_board.program(1, mid_range_g(info, np.random.default_rng(6), (info.rows, info.cols)))
    k = sparse_codes(info, np.random.default_rng(7), 4, info.rows)
    lsb = info.adc_full_scale_ua / levels(info.adc_bits)
    fresh_board.restore(1)  # calibrate with no perturbation active
    gain = fresh_board.calibrate(1).gain
    after = fresh_board.mvm(1, input_codes=k, output_codes=True)
    assert after.adc_step_ua == pytest.approx(lsb * gain, rel=1e-6)
    assert after.output_codes is not None
    np.testing.assert_array_equal(
        after.currents, after.output_codes.astype(np.float32) * np.float32(after.adc_step_ua)
    )
    # A Program into the tile sets its gain back to 1: the step is the ADC's own again.
    fresh_board.program(1, mid_range_g(info, np.random.default_rng(8), (2, 2)))
    again = fresh_board.mvm(1, input_codes=k, output_codes=True)
    assert again.adc_step_ua == pytest.approx(lsb, rel=1e-9)


@pytest.mark.parametrize("which", ["target", "converters"])
def test_codes_or_a_clear_refusal(board: Board, codes_board: Board, which: str) -> None:
    """The ideal targets refuse codes naming the field; boards with converters take them."""
    board = board if which == "target" else codes_board
    info = board.info
    k = np.zeros((1, info.rows), np.int8)
    if info.dac_bits == 0:
        with pytest.raises(InvalidArgument) as err:
            board.mvm(0, input_codes=k)
        assert err.value.field == "input_codes"
    if info.adc_bits == 0 or info.adc_full_scale_ua == 0.0:
        with pytest.raises(InvalidArgument) as err:
            board.mvm(0, np.zeros((1, info.rows), np.float32), output_codes=True)
        assert err.value.field == "output_codes"
    if has_codes(info):
        result = board.mvm(0, input_codes=k, output_codes=True)
        assert result.output_codes is not None


def test_typed_code_errors(codes_board: Board) -> None:
    board = codes_board
    info = board.info
    if info.dac_bits == 0:
        pytest.skip("the board has an ideal DAC")
    top = levels(info.dac_bits)
    over = np.zeros((2, info.rows), np.int32)
    over[1, 5] = top + 1
    with pytest.raises(OutOfRange) as err:
        board.mvm(0, input_codes=over)
    assert (err.value.field, str(top + 1)) == ("input_codes", str(top + 1))
    with pytest.raises(InvalidArgument) as err:
        board.mvm(0, input_codes=np.zeros((2, info.rows + 1), np.int8))
    assert err.value.field == "input_codes.shape"
    # A shape of the wrong rank or with a size 0: the same words locally and over gRPC,
    # whose server leaves the shape to the request's checks.
    expected = f"[batch >= 1, {info.rows}] (tile rows)"
    for wrong in ((info.rows,), (0, info.rows), (2, 0), (1, 1, info.rows)):
        with pytest.raises(InvalidArgument) as err:
            board.mvm(0, input_codes=np.zeros(wrong, np.int8))
        assert str(err.value) == f"input_codes.shape: got {list(wrong)}, expected {expected}"
        assert (err.value.value, err.value.allowed) == (list(wrong), expected)
    with pytest.raises(InvalidArgument) as err:
        board.mvm(0, input_codes=np.zeros((2, info.rows), np.float32))
    assert err.value.field == "input_codes.dtype"
    with pytest.raises(InvalidArgument) as err:
        board.mvm(
            0, np.zeros((2, info.rows), np.float32), input_codes=np.zeros((2, info.rows), np.int8)
        )
    assert err.value.field == "input_codes"


def _raw_cases(info: BoardInfo) -> dict[str, tuple[pb.MVMRequest, grpc.StatusCode, str]]:
    rows, top = info.rows, levels(info.dac_bits)
    over = np.zeros((1, rows), np.int16)
    over[0, 0] = -(top + 1)
    return {
        "float-codes": (
            pb.MVMRequest(input_codes=raw(pb.DTYPE_FLOAT32, [1, rows], 4 * rows)),
            grpc.StatusCode.INVALID_ARGUMENT, "input_codes.dtype",
        ),
        "uint8-codes": (
            pb.MVMRequest(input_codes=raw(pb.DTYPE_UINT8, [1, rows], rows)),
            grpc.StatusCode.INVALID_ARGUMENT, "input_codes.dtype",
        ),
        "short-codes": (
            pb.MVMRequest(input_codes=raw(pb.DTYPE_INT8, [1, rows], rows - 1)),
            grpc.StatusCode.INVALID_ARGUMENT, "input_codes.data",
        ),
        "codes-width": (
            pb.MVMRequest(input_codes=raw(pb.DTYPE_INT8, [1, rows + 1], rows + 1)),
            grpc.StatusCode.INVALID_ARGUMENT, "input_codes.shape",
        ),
        "codes-1d": (
            pb.MVMRequest(input_codes=raw(pb.DTYPE_INT8, [rows], rows)),
            grpc.StatusCode.INVALID_ARGUMENT, "input_codes.shape",
        ),
        "codes-and-voltages": (
            pb.MVMRequest(
                voltages=f32(np.zeros((1, rows))),
                input_codes=raw(pb.DTYPE_INT8, [1, rows], rows),
            ),
            grpc.StatusCode.INVALID_ARGUMENT, "input_codes",
        ),
        "code-over-range": (
            pb.MVMRequest(
                input_codes=pb.Tensor(dtype=pb.DTYPE_INT16, shape=[1, rows], data=over.tobytes())
            ),
            grpc.StatusCode.OUT_OF_RANGE, "input_codes",
        ),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["float-codes", "uint8-codes", "short-codes", "codes-width", "codes-1d",
     "codes-and-voltages", "code-over-range"],
)  # fmt: skip
def test_bad_code_requests_over_grpc(
    case: str, converter_stub: pb_grpc.BoardServiceStub, converter_remote: Board
) -> None:
    stub, remote = converter_stub, converter_remote
    info = remote.info
    if info.dac_bits == 0:
        pytest.skip("the board has an ideal DAC: every code request is refused as input_codes")
    request, code, field = _raw_cases(info)[case]
    before = remote.stats()
    with pytest.raises(grpc.RpcError) as err:
        stub.MVM(request, timeout=10)
    assert err.value.code() == code, err.value.details()
    bad, error_info = bad_request_details(err.value)
    assert [v.field for v in bad.field_violations] == [field]
    assert error_info.metadata["field"] == field
    after = remote.stats()
    assert (after.mvm_passes, after.cell_writes) == (before.mvm_passes, before.cell_writes)
