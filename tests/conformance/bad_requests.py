"""Hostile requests and the board state a refusal must leave alone, for any board.

The tables of ``test_bad_requests.py`` (and of the emulator comparisons in
tests/test_bad_input.py, which import them): raw protobuf requests the client
library would never send (``CASES``) and calls of the typed client (``TYPED``).
Every geometry and limit in them comes from the board's :class:`BoardInfo`
(rows, cols, tile_count, g_min_us, g_max_us, read_voltage_max_v): a case is a
function of the info that builds the request, and the texts the error must show
are functions of it too. The comment beside a case gives its value on the
256 x 256, 4-tile, 1 .. 40 µS, 0.2 V boards (ideal and sidra-y1).

A refused request must leave the board unchanged: stats (passes, writes, cost,
clock) and write counters are compared exactly, conductances exactly on an ideal
board and within twice the read-back contract elsewhere (:func:`assert_unchanged`).

Not a test module: nothing is collected here. Imports nothing from the emulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from board_checks import (
    OUTLIER_FRACTION,
    READ_CELL_OF_SPAN,
    READ_RMS_OF_SPAN,
    assert_currents_close,
    is_ideal,
    mid_range_g,
    span,
    sparse_voltages,
)
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidra.drivers import (
    Board,
    BoardInfo,
    BoardStats,
    InvalidArgument,
    OutOfRange,
    PerturbationPoint,
    Region,
)
from sidra.drivers.requests import MVMRequest, ReadConductanceRequest, SequenceRequest
from sidra.drivers.validation import CLOCK_LIMIT_S
from sidra.hil import tensors
from sidra.hil.error_values import value_json
from sidra.hil.v1 import board_pb2 as pb

F32 = npt.NDArray[np.float32]

Text = str | Callable[[BoardInfo], str]
"""What an error must show: fixed text, or text derived from the board's info."""


def text(expected: Text, info: BoardInfo) -> str:
    return expected if isinstance(expected, str) else expected(info)


# -- board state before / after -----------------------------------------------------------


@dataclass
class Baseline:
    """What the board holds before a bad request: every tile programmed (mid-window
    conductances), tile ``perturbed`` holding a pending perturbation of ``region``."""

    read: list[F32]
    """Each tile as read back once the baseline was set (``perturbed`` after its APPLY)."""
    perturbed: int
    mark: tuple[int, float]
    """(stats.cell_writes, stats.clock_s) once set: if either moved, another test wrote to
    the shared board (or aged it) and the baseline must be set again."""


def establish(board: Board) -> Baseline:
    """Programs every tile, perturbs a region of tile 1 (APPLY, not restored)."""
    info = board.info
    rng = np.random.default_rng(2024)
    for tile in range(info.tile_count):
        board.program(tile, mid_range_g(info, rng, (info.rows, info.cols)))
    perturbed = min(1, info.tile_count - 1)
    region = Region(3, 4, min(20, info.rows - 3), min(30, info.cols - 4))
    board.perturb(perturbed, seed=11, amplitude_us=0.1 * span(info), sign=1, region=region)
    stats = board.stats()
    return Baseline(snapshot(board), perturbed, (stats.cell_writes, stats.clock_s))


class BaselineKeeper:
    """The baseline of one shared board, set again only when something else wrote to it."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.current: Baseline | None = None

    def get(self) -> Baseline:
        stats = self.board.stats()
        if self.current is None or (stats.cell_writes, stats.clock_s) != self.current.mark:
            self.current = establish(self.board)
        return self.current


def snapshot(board: Board) -> list[F32]:
    return [board.read_conductance(t).conductances for t in range(board.info.tile_count)]


def write_counts(board: Board) -> bytes:
    """Every cell's write counter, every tile (exact on any board)."""
    counts = [board.read_write_counts(t).counts for t in range(board.info.tile_count)]
    return np.stack(counts).tobytes()


SAME_CELL_OF_SPAN = 2 * READ_CELL_OF_SPAN
SAME_RMS_OF_SPAN = 2 * READ_RMS_OF_SPAN
SAME_OUTLIER_FRACTION = 2 * OUTLIER_FRACTION
"""Two reads of an unchanged cell: each is within the read-back contract of the cell's
value (board_checks: 15 % of the span per cell but 1 % of the cells, 5 % rms), so they
differ by at most twice that (30 % per cell but 2 % + 2 cells, 10 % rms). sidra-y1: the
difference of two reads has σ = √2 · 1.0 µS = 3.6 % of its 39 µS span."""


def assert_same_conductances(before: F32, after: F32, info: BoardInfo, what: str) -> None:
    """``after`` reads the same cells as ``before``: bit for bit on an ideal board, within
    twice the read-back contract elsewhere (and finite: a NaN clock or drift shows here)."""
    assert after.shape == before.shape, what
    assert np.isfinite(after).all(), f"{what}: NaN/Inf conductances"
    if is_ideal(info):
        assert np.array_equal(before, after), f"{what}: changed"
        return
    s = span(info)
    diff = np.abs(after.astype(np.float64) - before.astype(np.float64))
    moved = diff > SAME_CELL_OF_SPAN * s
    allowed = int(SAME_OUTLIER_FRACTION * diff.size) + 2
    assert int(moved.sum()) <= allowed, f"{what}: {int(moved.sum())} cells moved"
    rms = float(np.sqrt(np.mean(diff[~moved] ** 2)))
    assert rms < SAME_RMS_OF_SPAN * s, f"{what}: rms change {rms:.3g} µS"


def assert_unchanged(board: Board, before: list[F32]) -> None:
    after = snapshot(board)
    for tile, (a, b) in enumerate(zip(before, after, strict=True)):
        assert_same_conductances(a, b, board.info, f"tile {tile} after a rejected request")


def assert_holds_baseline(board: Board, before: list[F32], base: Baseline) -> None:
    """The board read ``before`` still holds the baseline (tile 1 still perturbed)."""
    for tile, (a, b) in enumerate(zip(base.read, before, strict=True)):
        assert_same_conductances(a, b, board.info, f"tile {tile} against the baseline")


def assert_still_serving(board: Board, base: Baseline) -> None:
    """A valid MVM right after the rejection returns V·G (G as read for the baseline):
    every input driven on an ideal board; elsewhere 8 inputs at most v_max/2, so the
    outputs stay within any ADC's range (board_checks.DRIVEN_ROWS)."""
    info = board.info
    rng = np.random.default_rng(7)
    if is_ideal(info):
        vmax = info.read_voltage_max_v
        v = rng.uniform(-vmax, vmax, (3, info.rows)).astype(np.float32)
    else:
        v = sparse_voltages(info, rng, 3, info.rows, (info.rows - 8) // 2)
    assert_currents_close(board.mvm(0, v).currents, v, base.read[0], info)


def stats_equal(a: BoardStats, b: BoardStats) -> bool:
    return (a.mvm_passes, a.cell_writes, a.total_cost, a.clock_s) == (
        b.mvm_passes,
        b.cell_writes,
        b.total_cost,
        b.clock_s,
    )


def bad_request_details(
    err: grpc.RpcError,
) -> tuple[error_details_pb2.BadRequest, error_details_pb2.ErrorInfo]:
    status = rpc_status.from_call(err)
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == err.code().value[0]
    found: dict[str, Any] = {}
    for detail in status.details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                found[cls.__name__] = msg
    assert set(found) == {"BadRequest", "ErrorInfo"}
    return found["BadRequest"], found["ErrorInfo"]


# -- request builders ---------------------------------------------------------------------


def f32(array: Any) -> pb.Tensor:
    return tensors.encode(np.asarray(array, dtype=np.float32))


def raw(dtype: int, shape: list[int], nbytes: int) -> pb.Tensor:
    """A Tensor exactly as given, however inconsistent (zero-filled data)."""
    tensor = pb.Tensor(shape=shape, data=b"\x00" * nbytes)
    tensor.dtype = dtype  # type: ignore[assignment]  # any enum number, valid or not
    return tensor


def vrow(info: BoardInfo, value: float, width: int | None = None, batch: int = 2) -> F32:
    """A valid batch of zeros (``width``: tile rows by default) with one bad value at
    [batch - 1, 5]."""
    v = np.zeros((batch, width or info.rows), np.float32)
    v[batch - 1, 5] = value
    return v


def gmat(info: BoardInfo, value: float, shape: tuple[int, int] = (3, 4)) -> F32:
    """Mid-window conductances with one value at [1, 2]."""
    g = np.full(shape, (info.g_min_us + info.g_max_us) / 2, np.float32)
    g[1, 2] = value
    return g


def apply(**kw: Any) -> pb.PerturbRequest:
    fields = {
        "tile": 0,
        "mode": pb.PERTURB_MODE_APPLY,
        "seed": 1,
        "amplitude_us": 1.0,
        "sign": 1,
    } | kw
    return pb.PerturbRequest(**fields)


def pmvm_rows(info: BoardInfo) -> int:
    """Rows of :func:`perturbed`'s region: 8, fewer on a tile of fewer than 10 rows."""
    return min(8, info.rows - 2)


def perturbed(info: BoardInfo, **kw: Any) -> pb.PerturbedMVMRequest:
    """A valid PerturbedMVM on an 8 x 4 region from row 2, column 3 (two points) but for
    ``kw``; on a smaller tile the region is cut to fit (:func:`pmvm_rows`, cols - 3)."""
    point = {"seed": 7, "amplitude_us": 1.0, "sign": 1}
    rows, cols = pmvm_rows(info), min(4, info.cols - 3)
    fields = {
        "tile": 0,
        "region": pb.Region(row_offset=2, col_offset=3, rows=rows, cols=cols),
        "voltages": f32(np.zeros((2, rows), np.float32)),
        "points": [pb.PerturbationPoint(**point), pb.PerturbationPoint(**point | {"sign": -1})],
    } | kw
    return pb.PerturbedMVMRequest(**fields)


def read_step() -> pb.SequenceStep:
    """A valid sequence step: read one cell of tile 0."""
    return pb.SequenceStep(
        read_conductance=pb.ReadConductanceRequest(region=pb.Region(rows=1, cols=1))
    )


def point(**kw: Any) -> pb.PerturbationPoint:
    return pb.PerturbationPoint(**{"seed": 7, "amplitude_us": 1.0, "sign": 1} | kw)


def half_at_most(n: int, k: int) -> int:
    """``k`` lines, or half of a tile of ``n`` lines if that is fewer: an offset (or the
    lines left before the edge) a case takes on a 256-line tile, kept inside a small one."""
    return min(k, n // 2)


def other_width(n: int) -> int:
    """A width that is not ``n`` (100 on a 256-wide tile)."""
    return 100 if n != 100 else 101


# What the errors show, from the board's info.


def tiles(info: BoardInfo) -> str:
    return f"0 .. {info.tile_count - 1}"


def window(info: BoardInfo) -> str:
    return f"[{info.g_min_us:g}, {info.g_max_us:g}] µS"


def volts(info: BoardInfo) -> str:
    return f"[-{info.read_voltage_max_v:g}, +{info.read_voltage_max_v:g}] V"


def amplitudes(info: BoardInfo) -> str:
    return f"(0, {span(info):g}] µS"


def as_float32(x: float) -> str:
    """How an error shows a tensor value: the float32 the board received, 9 digits."""
    return f"{float(np.float32(x)):.9g}"


def over_v(info: BoardInfo, factor: float) -> float:
    """``factor`` x read_voltage_max_v (factors chosen to be exact in float32)."""
    return factor * info.read_voltage_max_v


INVALID = grpc.StatusCode.INVALID_ARGUMENT
RANGE = grpc.StatusCode.OUT_OF_RANGE
NAN, INF = float("nan"), float("inf")
CLOCK = f"seconds in [0, {CLOCK_LIMIT_S:.9g}]"
"""AdvanceClock's allowed range as a request check states it (the documented clock limit)."""


@dataclass(frozen=True)
class Bad:
    """One bad request: expected code and substrings of field, value and allowed range."""

    rpc: str
    request: Callable[[BoardInfo], Any]
    code: grpc.StatusCode
    field: str
    value: Text
    allowed: Text


CASES: dict[str, Bad] = {
    # MVM ---------------------------------------------------------------------------------
    "mvm-wrong-width": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=f32(np.zeros((2, other_width(i.rows))))),
        INVALID,
        "voltages.shape",
        lambda i: f"[2, {other_width(i.rows)}]",
        lambda i: f"[batch >= 1, {i.rows}] (tile rows)",
    ),
    "mvm-float64": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT64, [1, i.rows], 8 * i.rows)),
        INVALID,
        "voltages.dtype",
        "DTYPE_FLOAT64",
        "DTYPE_FLOAT32",
    ),
    "mvm-int32": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_INT32, [1, i.rows], 4 * i.rows)),
        INVALID,
        "voltages.dtype",
        "DTYPE_INT32",
        "DTYPE_FLOAT32",
    ),
    "mvm-dtype-unspecified": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_UNSPECIFIED, [1, i.rows], 4 * i.rows)),
        INVALID,
        "voltages.dtype",
        "DTYPE_UNSPECIFIED",
        "DTYPE_FLOAT32",
    ),
    "mvm-dtype-unknown-number": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(99, [1, i.rows], 4 * i.rows)),
        INVALID,
        "voltages.dtype",
        "got 99",
        "DTYPE_FLOAT32",
    ),
    "mvm-voltages-unset": Bad(
        "MVM",
        lambda i: pb.MVMRequest(tile=0),
        INVALID,
        "voltages.dtype",
        "DTYPE_UNSPECIFIED",
        "DTYPE_FLOAT32",
    ),
    "mvm-bytes-short": Bad(  # 1020 bytes for 1024
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [1, i.rows], 4 * i.rows - 4)),
        INVALID,
        "voltages.data",
        lambda i: f"{4 * i.rows - 4} bytes",
        lambda i: f"{4 * i.rows} bytes",
    ),
    "mvm-bytes-long": Bad(  # 2048 bytes for 1024
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [1, i.rows], 8 * i.rows)),
        INVALID,
        "voltages.data",
        lambda i: f"{8 * i.rows} bytes",
        lambda i: f"{4 * i.rows} bytes",
    ),
    # A shape of the wrong rank or with a size 0 is judged by the request's own checks, in
    # the words a local driver gives the same array (not by the server's tensor decoder).
    "mvm-3d": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [1, 1, i.rows], 4 * i.rows)),
        INVALID,
        "voltages.shape",
        lambda i: f"[1, 1, {i.rows}]",
        "expected a 2-D array",
    ),
    "mvm-1d": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [i.rows], 4 * i.rows)),
        INVALID,
        "voltages.shape",
        lambda i: f"[{i.rows}]",
        "expected a 2-D array",
    ),
    "mvm-no-dimensions": Bad(  # a scalar's shape: one element, no dimension
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [], 4)),
        INVALID,
        "voltages.shape",
        "got []",
        "expected a 2-D array",
    ),
    "mvm-empty-batch": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [0, i.rows], 0)),
        INVALID,
        "voltages.shape",
        lambda i: f"[0, {i.rows}]",
        lambda i: f"expected [batch >= 1, {i.rows}] (tile rows)",
    ),
    "mvm-empty-width": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [2, 0], 0)),
        INVALID,
        "voltages.shape",
        "got [2, 0]",
        lambda i: f"expected [batch >= 1, {i.rows}] (tile rows)",
    ),
    "mvm-1d-tile": Bad(  # the tile is checked first, as a local driver checks it
        "MVM",
        lambda i: pb.MVMRequest(
            tile=i.tile_count, voltages=raw(pb.DTYPE_FLOAT32, [i.rows], 4 * i.rows)
        ),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count}",
        tiles,
    ),
    # What no array can be, and only the wire can carry: refused by the tensor decoder.
    "mvm-65-dimensions": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [1] * 65, 4)),
        INVALID,
        "voltages.shape",
        "(65 dimensions)",
        "at most 64 dimensions",
    ),
    "mvm-empty-too-big": Bad(  # no elements, but sizes past what an array addresses
        "MVM",
        lambda i: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [0] + [2**32 - 1] * 3, 0)),
        INVALID,
        "voltages.shape",
        "got [0, 4294967295, 4294967295, 4294967295]",
        "(the most an array addresses)",
    ),
    "mvm-nan": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=f32(vrow(i, NAN))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "mvm-inf": Bad(
        "MVM",
        lambda i: pb.MVMRequest(voltages=f32(vrow(i, -INF))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "mvm-over-voltage": Bad(  # 0.25 V
        "MVM",
        lambda i: pb.MVMRequest(voltages=f32(vrow(i, over_v(i, 1.25)))),
        RANGE,
        "voltages",
        lambda i: f"{as_float32(over_v(i, 1.25))} V at [1, 5]",
        volts,
    ),
    "mvm-under-voltage": Bad(  # -0.375 V
        "MVM",
        lambda i: pb.MVMRequest(voltages=f32(vrow(i, over_v(i, -1.875)))),
        RANGE,
        "voltages",
        lambda i: f"{as_float32(over_v(i, -1.875))} V at [1, 5]",
        volts,
    ),
    "mvm-tile": Bad(
        "MVM",
        lambda i: pb.MVMRequest(tile=i.tile_count, voltages=f32(np.zeros((1, i.rows)))),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count}",
        tiles,
    ),
    "mvm-tile-max": Bad(
        "MVM",
        lambda i: pb.MVMRequest(tile=2**32 - 1, voltages=f32(np.zeros((1, i.rows)))),
        RANGE,
        "tile",
        "got 4294967295",
        tiles,
    ),
    "mvm-region-rows": Bad(  # 10 rows from row 250 of 256
        "MVM",
        lambda i: pb.MVMRequest(
            voltages=f32(np.zeros((1, 10))), region=pb.Region(row_offset=i.rows - 6, rows=10)
        ),
        RANGE,
        "region.rows",
        "got 10",
        "1 .. 6",
    ),
    "mvm-region-col-offset": Bad(  # column 256 of 256
        "MVM",
        lambda i: pb.MVMRequest(
            voltages=f32(np.zeros((1, 4))), region=pb.Region(col_offset=i.cols, rows=4)
        ),
        RANGE,
        "region.col_offset",
        lambda i: f"got {i.cols}",
        lambda i: f"0 .. {i.cols - 1}",
    ),
    "mvm-region-tile-width": Bad(  # whole-tile voltages for a 65-row region
        "MVM",
        lambda i: pb.MVMRequest(
            voltages=f32(np.zeros((2, i.rows))), region=pb.Region(rows=min(65, i.rows - 1))
        ),
        INVALID,
        "voltages.shape",
        lambda i: f"[2, {i.rows}]",
        lambda i: f"[batch >= 1, {min(65, i.rows - 1)}] (region rows)",
    ),
    "mvm-region-over-voltage": Bad(  # 0.25 V inside a region pass
        "MVM",
        lambda i: pb.MVMRequest(
            voltages=f32(vrow(i, over_v(i, 1.25), width=min(10, i.rows))),
            region=pb.Region(rows=min(10, i.rows), cols=3),
        ),
        RANGE,
        "voltages",
        lambda i: f"{as_float32(over_v(i, 1.25))} V at [1, 5]",
        volts,
    ),
    # TransposeMVM --------------------------------------------------------------------------
    "tmvm-wrong-width": Bad(
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=f32(np.zeros((1, other_width(i.cols))))),
        INVALID,
        "voltages.shape",
        lambda i: f"[1, {other_width(i.cols)}]",
        lambda i: f"[batch >= 1, {i.cols}] (tile columns)",
    ),
    "tmvm-float64": Bad(
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=raw(pb.DTYPE_FLOAT64, [1, i.cols], 8 * i.cols)),
        INVALID,
        "voltages.dtype",
        "DTYPE_FLOAT64",
        "DTYPE_FLOAT32",
    ),
    "tmvm-bytes": Bad(  # 1024 bytes for 2048
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [2, i.cols], 4 * i.cols)),
        INVALID,
        "voltages.data",
        lambda i: f"{4 * i.cols} bytes",
        lambda i: f"{8 * i.cols} bytes",
    ),
    "tmvm-empty-batch": Bad(
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [0, i.cols], 0)),
        INVALID,
        "voltages.shape",
        lambda i: f"[0, {i.cols}]",
        lambda i: f"expected [batch >= 1, {i.cols}] (tile columns)",
    ),
    "tmvm-1d": Bad(
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [i.cols], 4 * i.cols)),
        INVALID,
        "voltages.shape",
        lambda i: f"got [{i.cols}]",
        "expected a 2-D array",
    ),
    "tmvm-nan": Bad(
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=f32(vrow(i, NAN, i.cols))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "tmvm-inf": Bad(
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=f32(vrow(i, INF, i.cols))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "tmvm-over-voltage": Bad(  # 0.2109375 V, just past the limit
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(voltages=f32(vrow(i, over_v(i, 1.0546875), i.cols))),
        RANGE,
        "voltages",
        lambda i: f"{as_float32(over_v(i, 1.0546875))} V at [1, 5]",
        volts,
    ),
    "tmvm-tile": Bad(  # tile 7 of 4
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(
            tile=i.tile_count + 3, voltages=f32(np.zeros((1, i.cols)))
        ),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count + 3}",
        tiles,
    ),
    "tmvm-region-cols": Bad(  # 7 columns from column 250 of 256
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(
            voltages=f32(np.zeros((1, 7))), region=pb.Region(col_offset=i.cols - 6, cols=7)
        ),
        RANGE,
        "region.cols",
        "got 7",
        "1 .. 6",
    ),
    "tmvm-region-row-offset": Bad(  # row 300 of 256
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(
            voltages=f32(np.zeros((1, i.cols))), region=pb.Region(row_offset=i.rows + 44)
        ),
        RANGE,
        "region.row_offset",
        lambda i: f"got {i.rows + 44}",
        lambda i: f"0 .. {i.rows - 1}",
    ),
    "tmvm-region-width": Bad(  # 9 voltages for a 10-column region (fewer on narrow tiles)
        "TransposeMVM",
        lambda i: pb.TransposeMVMRequest(
            voltages=f32(np.zeros((3, min(10, i.cols) - 1))),
            region=pb.Region(row_offset=2, rows=5, cols=min(10, i.cols)),
        ),
        INVALID,
        "voltages.shape",
        lambda i: f"[3, {min(10, i.cols) - 1}]",
        lambda i: f"[batch >= 1, {min(10, i.cols)}] (region columns)",
    ),
    # Program -------------------------------------------------------------------------------
    "program-float64": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT64, [2, 2], 32)),
        INVALID,
        "conductances.dtype",
        "DTYPE_FLOAT64",
        "DTYPE_FLOAT32",
    ),
    "program-int32": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=raw(pb.DTYPE_INT32, [2, 2], 16)),
        INVALID,
        "conductances.dtype",
        "DTYPE_INT32",
        "DTYPE_FLOAT32",
    ),
    "program-bytes": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, [2, 3], 20)),
        INVALID,
        "conductances.data",
        "20 bytes",
        "24 bytes",
    ),
    "program-3d": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, [2, 2, 2], 32)),
        INVALID,
        "conductances.shape",
        "[2, 2, 2]",
        "expected a 2-D array",
    ),
    "program-empty": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, [0, 4], 0)),
        INVALID,
        "conductances.shape",
        "[0, 4]",
        "expected [rows >= 1, cols >= 1]",
    ),
    "program-nan": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=f32(gmat(i, NAN))),
        INVALID,
        "conductances",
        "NaN/Inf",
        "finite",
    ),
    "program-inf": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=f32(gmat(i, INF))),
        INVALID,
        "conductances",
        "NaN/Inf",
        "finite",
    ),
    "program-below-gmin": Bad(  # 0.5 µS
        "Program",
        lambda i: pb.ProgramRequest(conductances=f32(gmat(i, i.g_min_us - 0.5))),
        RANGE,
        "conductances",
        lambda i: f"{as_float32(i.g_min_us - 0.5)} µS at [1, 2]",
        window,
    ),
    "program-above-gmax": Bad(  # 40.5 µS
        "Program",
        lambda i: pb.ProgramRequest(conductances=f32(gmat(i, i.g_max_us + 0.5))),
        RANGE,
        "conductances",
        lambda i: f"{as_float32(i.g_max_us + 0.5)} µS at [1, 2]",
        window,
    ),
    "program-negative": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=f32(gmat(i, -3.0))),
        RANGE,
        "conductances",
        "-3 µS",
        window,
    ),
    "program-tile": Bad(
        "Program",
        lambda i: pb.ProgramRequest(tile=i.tile_count, conductances=f32(gmat(i, i.g_min_us))),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count}",
        tiles,
    ),
    "program-offset-rows": Bad(  # 10 rows from row 250 of 256
        "Program",
        lambda i: pb.ProgramRequest(
            row_offset=i.rows - 6, conductances=f32(np.full((10, 4), i.g_min_us))
        ),
        RANGE,
        "conductances.shape",
        "got [10, 4]",
        "rows in 1 .. 6",
    ),
    "program-offset-cols": Bad(  # 2 columns from column 255 of 256
        "Program",
        lambda i: pb.ProgramRequest(
            row_offset=3, col_offset=i.cols - 1, conductances=f32(np.full((2, 2), i.g_min_us))
        ),
        RANGE,
        "conductances.shape",
        "got [2, 2]",
        "cols in 1 .. 1",
    ),
    "program-row-offset-outside": Bad(
        "Program",
        lambda i: pb.ProgramRequest(
            row_offset=i.rows, conductances=f32(np.full((1, 1), i.g_min_us))
        ),
        RANGE,
        "row_offset",
        lambda i: f"got {i.rows}",
        lambda i: f"0 .. {i.rows - 1}",
    ),
    "program-col-offset-outside": Bad(  # column 1024 of 256
        "Program",
        lambda i: pb.ProgramRequest(
            col_offset=4 * i.cols, conductances=f32(np.full((1, 1), i.g_min_us))
        ),
        RANGE,
        "col_offset",
        lambda i: f"got {4 * i.cols}",
        lambda i: f"0 .. {i.cols - 1}",
    ),
    "program-too-tall": Bad(
        "Program",
        lambda i: pb.ProgramRequest(conductances=f32(np.full((i.rows + 1, 1), i.g_min_us))),
        RANGE,
        "conductances.shape",
        lambda i: f"got [{i.rows + 1}, 1]",
        lambda i: f"rows in 1 .. {i.rows}",
    ),
    # ReadConductance -----------------------------------------------------------------------
    "read-tile": Bad(
        "ReadConductance",
        lambda i: pb.ReadConductanceRequest(tile=i.tile_count),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count}",
        tiles,
    ),
    "read-row-offset": Bad(
        "ReadConductance",
        lambda i: pb.ReadConductanceRequest(region=pb.Region(row_offset=i.rows)),
        RANGE,
        "region.row_offset",
        lambda i: f"got {i.rows}",
        lambda i: f"0 .. {i.rows - 1}",
    ),
    "read-rows": Bad(  # 57 rows from row 200 of 256
        "ReadConductance",
        lambda i: pb.ReadConductanceRequest(
            region=pb.Region(
                row_offset=i.rows - half_at_most(i.rows, 56), rows=half_at_most(i.rows, 56) + 1
            )
        ),
        RANGE,
        "region.rows",
        lambda i: f"got {half_at_most(i.rows, 56) + 1}",
        lambda i: f"1 .. {half_at_most(i.rows, 56)}",
    ),
    "read-cols": Bad(  # 247 columns from column 10 of 256
        "ReadConductance",
        lambda i: pb.ReadConductanceRequest(
            region=pb.Region(
                col_offset=half_at_most(i.cols, 10), cols=i.cols - half_at_most(i.cols, 10) + 1
            )
        ),
        RANGE,
        "region.cols",
        lambda i: f"got {i.cols - half_at_most(i.cols, 10) + 1}",
        lambda i: f"1 .. {i.cols - half_at_most(i.cols, 10)}",
    ),
    # Perturb -------------------------------------------------------------------------------
    "perturb-mode-unspecified": Bad(
        "Perturb",
        lambda i: apply(mode=pb.PERTURB_MODE_UNSPECIFIED),
        INVALID,
        "mode",
        "PERTURB_MODE_UNSPECIFIED",
        "PERTURB_MODE_APPLY or PERTURB_MODE_RESTORE",
    ),
    "perturb-mode-unknown": Bad(
        "Perturb",
        lambda i: apply(mode=7),
        INVALID,
        "mode",
        "got 7",
        "PERTURB_MODE_APPLY or PERTURB_MODE_RESTORE",
    ),
    "perturb-sign-0": Bad("Perturb", lambda i: apply(sign=0), INVALID, "sign", "got 0", "+1 or -1"),
    "perturb-sign-2": Bad("Perturb", lambda i: apply(sign=2), INVALID, "sign", "got 2", "+1 or -1"),
    "perturb-sign-minus-2": Bad(
        "Perturb", lambda i: apply(sign=-2), INVALID, "sign", "got -2", "+1 or -1"
    ),
    "perturb-amplitude-nan": Bad(
        "Perturb",
        lambda i: apply(amplitude_us=NAN),
        INVALID,
        "amplitude_us",
        "got nan",
        lambda i: f"finite value in (0, {span(i):g}]",
    ),
    "perturb-amplitude-inf": Bad(
        "Perturb",
        lambda i: apply(amplitude_us=INF),
        INVALID,
        "amplitude_us",
        "got inf",
        lambda i: f"finite value in (0, {span(i):g}]",
    ),
    "perturb-amplitude-negative": Bad(
        "Perturb",
        lambda i: apply(amplitude_us=-1.0),
        RANGE,
        "amplitude_us",
        "got -1.0",
        amplitudes,
    ),
    "perturb-amplitude-zero": Bad(
        "Perturb", lambda i: apply(amplitude_us=0.0), RANGE, "amplitude_us", "got 0.0", amplitudes
    ),
    "perturb-amplitude-too-large": Bad(  # 39.5 µS on a 39 µS span
        "Perturb",
        lambda i: apply(amplitude_us=span(i) + 0.5),
        RANGE,
        "amplitude_us",
        lambda i: f"got {span(i) + 0.5}",
        amplitudes,
    ),
    "perturb-apply-tile": Bad(
        "Perturb",
        lambda i: apply(tile=i.tile_count),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count}",
        tiles,
    ),
    "perturb-restore-tile": Bad(  # tile 100 of 4
        "Perturb",
        lambda i: pb.PerturbRequest(tile=25 * i.tile_count, mode=pb.PERTURB_MODE_RESTORE),
        RANGE,
        "tile",
        lambda i: f"got {25 * i.tile_count}",
        tiles,
    ),
    "perturb-apply-region": Bad(  # row 300 of 256
        "Perturb",
        lambda i: apply(region=pb.Region(row_offset=i.rows + 44)),
        RANGE,
        "region.row_offset",
        lambda i: f"got {i.rows + 44}",
        lambda i: f"0 .. {i.rows - 1}",
    ),
    "perturb-apply-region-cols": Bad(  # 7 columns from column 250 of 256
        "Perturb",
        lambda i: apply(region=pb.Region(col_offset=i.cols - 6, cols=7)),
        RANGE,
        "region.cols",
        "got 7",
        "1 .. 6",
    ),
    "perturb-restore-region": Bad(  # 2 rows from the last row
        "Perturb",
        lambda i: pb.PerturbRequest(
            mode=pb.PERTURB_MODE_RESTORE, region=pb.Region(row_offset=i.rows - 1, rows=2)
        ),
        RANGE,
        "region.rows",
        "got 2",
        "1 .. 1",
    ),
    # ReadWriteCounts -----------------------------------------------------------------------
    "counts-tile": Bad(
        "ReadWriteCounts",
        lambda i: pb.ReadWriteCountsRequest(tile=i.tile_count),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count}",
        tiles,
    ),
    "counts-region": Bad(
        "ReadWriteCounts",
        lambda i: pb.ReadWriteCountsRequest(region=pb.Region(col_offset=i.cols)),
        RANGE,
        "region.col_offset",
        lambda i: f"got {i.cols}",
        lambda i: f"0 .. {i.cols - 1}",
    ),
    # Calibrate -----------------------------------------------------------------------------
    "calibrate-tile": Bad(  # tile 5 of 4
        "Calibrate",
        lambda i: pb.CalibrateRequest(tile=i.tile_count + 1),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count + 1}",
        tiles,
    ),
    # AdvanceClock: NaN/Inf is malformed, a finite number outside [0, headroom] out of range.
    # Checked before the board is asked, so every board answers so (emulated or not). --------
    "clock-nan": Bad(
        "AdvanceClock",
        lambda i: pb.AdvanceClockRequest(seconds=NAN),
        INVALID,
        "seconds",
        "got nan",
        f"finite {CLOCK}",
    ),
    "clock-inf": Bad(
        "AdvanceClock",
        lambda i: pb.AdvanceClockRequest(seconds=INF),
        INVALID,
        "seconds",
        "got inf",
        f"finite {CLOCK}",
    ),
    "clock-negative": Bad(
        "AdvanceClock",
        lambda i: pb.AdvanceClockRequest(seconds=-1.0),
        RANGE,
        "seconds",
        "got -1.0",
        CLOCK,
    ),
    # PerturbedMVM ------------------------------------------------------------------------
    "pmvm-no-points": Bad(
        "PerturbedMVM",
        lambda i: perturbed(i, points=[]),
        INVALID,
        "points",
        "got 0,",
        "1 .. 64 perturbation points",
    ),
    "pmvm-65-points": Bad(
        "PerturbedMVM",
        lambda i: perturbed(i, points=[point(seed=k) for k in range(65)]),
        INVALID,
        "points",
        "got 65,",
        "1 .. 64 perturbation points",
    ),
    "pmvm-sign-0": Bad(
        "PerturbedMVM",
        lambda i: perturbed(i, points=[point(), point(sign=0)]),
        INVALID,
        "points[1].sign",
        "got 0",
        "+1 or -1",
    ),
    "pmvm-amplitude-nan": Bad(
        "PerturbedMVM",
        lambda i: perturbed(i, points=[point(amplitude_us=NAN)]),
        INVALID,
        "points[0].amplitude_us",
        "got nan",
        "a finite value",
    ),
    "pmvm-amplitude-too-large": Bad(  # 39.5 µS on a 39 µS span
        "PerturbedMVM",
        lambda i: perturbed(i, points=[point(), point(amplitude_us=span(i) + 0.5)]),
        RANGE,
        "points[1].amplitude_us",
        lambda i: f"got {span(i) + 0.5}",
        amplitudes,
    ),
    "pmvm-width-not-region-rows": Bad(  # a whole-tile row on an 8-row region
        "PerturbedMVM",
        lambda i: perturbed(i, voltages=f32(np.zeros((2, i.rows), np.float32))),
        INVALID,
        "voltages.shape",
        lambda i: f"[2, {i.rows}]",
        lambda i: f"[batch >= 1, {pmvm_rows(i)}] (the region's rows)",
    ),
    "pmvm-1d": Bad(
        "PerturbedMVM",
        lambda i: perturbed(i, voltages=raw(pb.DTYPE_FLOAT32, [pmvm_rows(i)], 4 * pmvm_rows(i))),
        INVALID,
        "voltages.shape",
        lambda i: f"got [{pmvm_rows(i)}]",
        "expected a 2-D array",
    ),
    "pmvm-empty-batch": Bad(
        "PerturbedMVM",
        lambda i: perturbed(i, voltages=raw(pb.DTYPE_FLOAT32, [0, pmvm_rows(i)], 0)),
        INVALID,
        "voltages.shape",
        lambda i: f"got [0, {pmvm_rows(i)}]",
        lambda i: f"expected [batch >= 1, {pmvm_rows(i)}] (the region's rows)",
    ),
    "pmvm-bytes": Bad(
        "PerturbedMVM",
        lambda i: perturbed(i, voltages=raw(pb.DTYPE_FLOAT32, [2, pmvm_rows(i)], 4)),
        INVALID,
        "voltages.data",
        "got '4 bytes'",
        lambda i: f"expected {8 * pmvm_rows(i)} bytes (shape [2, {pmvm_rows(i)}] x 4 bytes",
    ),
    "pmvm-over-voltage": Bad(  # 0.5 V
        "PerturbedMVM",
        lambda i: perturbed(i, voltages=f32(vrow(i, over_v(i, 2.5), width=pmvm_rows(i)))),
        RANGE,
        "voltages",
        lambda i: f"{as_float32(over_v(i, 2.5))} V",
        volts,
    ),
    "pmvm-region-past-edge": Bad(  # 8 rows from row 252 of 256
        "PerturbedMVM",
        lambda i: perturbed(
            i,
            region=pb.Region(row_offset=i.rows - 4, rows=8, cols=4),
            voltages=f32(np.zeros((2, 8), np.float32)),
        ),
        RANGE,
        "region.rows",
        "got 8",
        "1 .. 4",
    ),
    "pmvm-tile": Bad(  # tile 9 of 4
        "PerturbedMVM",
        lambda i: perturbed(i, tile=i.tile_count + 5),
        RANGE,
        "tile",
        lambda i: f"got {i.tile_count + 5}",
        tiles,
    ),
    # RunSequence -------------------------------------------------------------------------
    "seq-no-steps": Bad(
        "RunSequence",
        lambda i: pb.RunSequenceRequest(),
        INVALID,
        "steps",
        "got 0,",
        "1 .. 16 steps",
    ),
    "seq-17-steps": Bad(
        "RunSequence",
        lambda i: pb.RunSequenceRequest(steps=[read_step()] * 17),
        INVALID,
        "steps",
        "got 17,",
        "1 .. 16 steps",
    ),
    "seq-step-without-operation": Bad(
        "RunSequence",
        lambda i: pb.RunSequenceRequest(steps=[read_step(), pb.SequenceStep()]),
        INVALID,
        "steps[1]",
        "no operation set",
        "one of program, read_conductance, mvm",
    ),
    "seq-bad-point-sign": Bad(
        "RunSequence",
        lambda i: pb.RunSequenceRequest(
            steps=[read_step(), pb.SequenceStep(perturbed_mvm=perturbed(i, points=[point(sign=0)]))]
        ),
        INVALID,
        "steps[1].perturbed_mvm.points[0].sign",
        "got 0",
        "+1 or -1",
    ),
    "seq-step-1d": Bad(  # named as a path into the sequence, as a local driver names it
        "RunSequence",
        lambda i: pb.RunSequenceRequest(
            steps=[
                read_step(),
                pb.SequenceStep(
                    mvm=pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [i.rows], 4 * i.rows))
                ),
            ]
        ),
        INVALID,
        "steps[1].mvm.voltages.shape",
        lambda i: f"got [{i.rows}]",
        "expected a 2-D array",
    ),
    "seq-step-bytes": Bad(
        "RunSequence",
        lambda i: pb.RunSequenceRequest(
            steps=[
                pb.SequenceStep(
                    program=pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, [2, 3], 20))
                )
            ]
        ),
        INVALID,
        "steps[0].program.conductances.data",
        "got '20 bytes'",
        "expected 24 bytes (shape [2, 3] x 4 bytes per element)",
    ),
    "seq-step-tile": Bad(  # tile 9 of 4
        "RunSequence",
        lambda i: pb.RunSequenceRequest(
            steps=[
                pb.SequenceStep(
                    mvm=pb.MVMRequest(
                        tile=i.tile_count + 5, voltages=f32(np.zeros((1, i.rows), np.float32))
                    )
                )
            ]
        ),
        RANGE,
        "steps[0].mvm.tile",
        lambda i: f"got {i.tile_count + 5}",
        tiles,
    ),
    "clock-past-limit": Bad(
        "AdvanceClock",
        lambda i: pb.AdvanceClockRequest(seconds=1.7e308),
        RANGE,
        "seconds",
        "got 1.7e+308",
        f"may not pass {CLOCK_LIMIT_S:g} s",
    ),
}


# -- typed exceptions on the client --------------------------------------------------------

Call = Callable[[Board, BoardInfo], Any]


@dataclass(frozen=True)
class Typed:
    """A bad call of the typed client: the class it raises, its field, text of its value."""

    call: Call
    cls: type[InvalidArgument]
    field: str
    value: Text


TYPED: dict[str, Typed] = {
    "mvm-width": Typed(
        lambda b, i: b.mvm(0, np.zeros((1, other_width(i.rows)))),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[1, {other_width(i.rows)}]",
    ),
    "mvm-3d": Typed(
        lambda b, i: b.mvm(0, np.zeros((2, 2, i.rows))),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[2, 2, {i.rows}]",
    ),
    "mvm-1d": Typed(
        lambda b, i: b.mvm(0, np.zeros(i.rows, np.float32)),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[{i.rows}]",
    ),
    "mvm-scalar": Typed(
        lambda b, i: b.mvm(0, np.float32(0.0)), InvalidArgument, "voltages.shape", "[]"
    ),
    "mvm-empty-batch": Typed(
        lambda b, i: b.mvm(0, np.zeros((0, i.rows), np.float32)),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[0, {i.rows}]",
    ),
    "mvm-empty-width": Typed(
        lambda b, i: b.mvm(0, np.zeros((2, 0), np.float32)),
        InvalidArgument,
        "voltages.shape",
        "[2, 0]",
    ),
    "mvm-1d-tile": Typed(  # the tile first, then the voltages
        lambda b, i: b.mvm(i.tile_count, np.zeros(i.rows, np.float32)),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count),
    ),
    "mvm-nan": Typed(lambda b, i: b.mvm(0, vrow(i, NAN)), InvalidArgument, "voltages", "NaN"),
    "mvm-over-voltage": Typed(  # 0.5 V
        lambda b, i: b.mvm(0, vrow(i, over_v(i, 2.5))),
        OutOfRange,
        "voltages",
        lambda i: f"{as_float32(over_v(i, 2.5))} V",
    ),
    "mvm-region": Typed(  # 3 rows from the last row
        lambda b, i: b.mvm(0, np.zeros((1, 3)), Region(i.rows - 1, 0, 3, 2)),
        OutOfRange,
        "region.rows",
        "3",
    ),
    "tmvm-region-width": Typed(
        lambda b, i: b.transpose_mvm(0, np.zeros((1, i.cols)), Region(0, 0, 4, 6)),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[1, {i.cols}]",
    ),
    "tmvm-1d": Typed(
        lambda b, i: b.transpose_mvm(0, np.zeros(i.cols, np.float32)),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[{i.cols}]",
    ),
    "tmvm-tile": Typed(  # tile 9 of 4
        lambda b, i: b.transpose_mvm(i.tile_count + 5, np.zeros((1, i.cols))),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count + 5),
    ),
    "program-above-gmax": Typed(  # 50 µS
        lambda b, i: b.program(0, np.full((2, 2), i.g_max_us + 10.0)),
        OutOfRange,
        "conductances",
        lambda i: f"{as_float32(i.g_max_us + 10.0)} µS",
    ),
    "program-empty": Typed(
        lambda b, i: b.program(0, np.zeros((0, 3))),
        InvalidArgument,
        "conductances.shape",
        "[0, 3]",
    ),
    "program-1d": Typed(
        lambda b, i: b.program(0, np.full(4, i.g_min_us, np.float32)),
        InvalidArgument,
        "conductances.shape",
        "[4]",
    ),
    "program-3d": Typed(
        lambda b, i: b.program(0, np.full((2, 2, 2), i.g_min_us, np.float32)),
        InvalidArgument,
        "conductances.shape",
        "[2, 2, 2]",
    ),
    "program-inf": Typed(
        lambda b, i: b.program(0, gmat(i, INF)), InvalidArgument, "conductances", "Inf"
    ),
    "program-offset": Typed(
        lambda b, i: b.program(0, np.full((3, 3), i.g_min_us), row_offset=i.rows - 1),
        OutOfRange,
        "conductances.shape",
        "[3, 3]",
    ),
    "perturbed-mvm-1d": Typed(
        lambda b, i: b.perturbed_mvm(
            0, np.zeros(i.rows, np.float32), [PerturbationPoint(1, 1.0, 1)]
        ),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[{i.rows}]",
    ),
    "perturbed-mvm-empty-batch": Typed(
        lambda b, i: b.perturbed_mvm(
            0, np.zeros((0, i.rows), np.float32), [PerturbationPoint(1, 1.0, 1)]
        ),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[0, {i.rows}]",
    ),
    "sequence-step-1d": Typed(  # a path into the sequence, its step before it not run
        lambda b, i: b.run(
            SequenceRequest(
                (ReadConductanceRequest(0), MVMRequest(0, np.zeros(i.rows, np.float32)))
            )
        ),
        InvalidArgument,
        "steps[1].mvm.voltages.shape",
        lambda i: f"[{i.rows}]",
    ),
    "read-region": Typed(  # column 300 of 256
        lambda b, i: b.read_conductance(0, Region(0, i.cols + 44)),
        OutOfRange,
        "region.col_offset",
        lambda i: str(i.cols + 44),
    ),
    "read-tile": Typed(
        lambda b, i: b.read_conductance(i.tile_count),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count),
    ),
    "perturb-amplitude": Typed(  # 100 µS (or twice the span, if more)
        lambda b, i: b.perturb(0, seed=1, amplitude_us=max(100.0, 2 * span(i))),
        OutOfRange,
        "amplitude_us",
        lambda i: f"{max(100.0, 2 * span(i)):g}",
    ),
    "perturb-amplitude-nan": Typed(
        lambda b, i: b.perturb(0, seed=1, amplitude_us=NAN),
        InvalidArgument,
        "amplitude_us",
        "nan",
    ),
    "perturb-sign": Typed(
        lambda b, i: b.perturb(0, seed=1, amplitude_us=1.0, sign=0),
        InvalidArgument,
        "sign",
        "0",
    ),
    "restore-tile": Typed(
        lambda b, i: b.restore(i.tile_count),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count),
    ),
    "mvm-tile-negative": Typed(  # a value the wire's uint32 cannot carry
        lambda b, i: b.mvm(-1, np.zeros((1, i.rows))), OutOfRange, "tile", "-1"
    ),
    "mvm-ragged": Typed(  # nested lists of different lengths: no array at all
        lambda b, i: b.mvm(0, [[0.0] * i.rows, [0.0]]),
        InvalidArgument,
        "voltages.shape",
        "rows of different lengths",
    ),
    "program-ragged": Typed(
        lambda b, i: b.program(0, [[i.g_min_us] * 3, [i.g_min_us]]),
        InvalidArgument,
        "conductances.shape",
        "rows of different lengths",
    ),
    "mvm-region-tuple": Typed(  # four numbers, not a Region: which is which is not said
        lambda b, i: b.mvm(0, np.zeros((1, 2)), (0, 0, 2, 2)),  # type: ignore[arg-type]
        InvalidArgument,
        "region",
        "(0, 0, 2, 2)",
    ),
    "read-region-tuple": Typed(
        lambda b, i: b.read_conductance(0, (0, 0, 1, 1)),  # type: ignore[arg-type]
        InvalidArgument,
        "region",
        "(0, 0, 1, 1)",
    ),
    # None where the wire has a scalar: the client must not send it as the wire's 0 (a
    # pass on tile 0, a perturbation of seed 0).
    "mvm-tile-none": Typed(
        lambda b, i: b.mvm(None, np.zeros((1, i.rows))),  # type: ignore[arg-type]
        InvalidArgument,
        "tile",
        "None",
    ),
    "perturb-seed-none": Typed(
        lambda b, i: b.perturb(0, seed=None, amplitude_us=1.0),  # type: ignore[arg-type]
        InvalidArgument,
        "seed",
        "None",
    ),
    "perturbed-point-seed-none": Typed(
        lambda b, i: b.perturbed_mvm(
            0,
            np.zeros((1, i.rows)),
            [PerturbationPoint(None, 1.0, 1)],  # type: ignore[arg-type]
        ),
        InvalidArgument,
        "points[0].seed",
        "None",
    ),
    "program-offset-none": Typed(
        lambda b, i: b.program(0, gmat(i, 10.0), row_offset=None),  # type: ignore[arg-type]
        InvalidArgument,
        "row_offset",
        "None",
    ),
    # Arrays that are no numbers: refused naming the dtype, not a numpy ValueError.
    "mvm-voltages-text": Typed(
        lambda b, i: b.mvm(0, np.full((1, i.rows), "a")),
        InvalidArgument,
        "voltages.dtype",
        "<U1",
    ),
    "program-none": Typed(
        lambda b, i: b.program(0, None),  # type: ignore[arg-type]
        InvalidArgument,
        "conductances.dtype",
        "object",
    ),
    "run-not-a-request": Typed(
        lambda b, i: b.run("MVM"),  # type: ignore[arg-type]
        InvalidArgument,
        "request",
        "str",
    ),
}


def assert_same_typed_error(case: Typed, remote: Board, local: Board) -> None:
    """``case`` raises the same class, field, value and allowed text through the gRPC
    client ``remote`` as on ``local`` (a driver for the same kind of board), and neither
    writes nor charges anything on the served board."""
    info = remote.info
    before = snapshot(remote)
    stats_before = remote.stats()
    with pytest.raises(case.cls) as remote_caught:
        case.call(remote, info)
    with pytest.raises(case.cls) as local_caught:
        case.call(local, local.info)
    for exc in (remote_caught.value, local_caught.value):
        assert type(exc) is case.cls  # InvalidArgument cases must not come back as OutOfRange
        assert isinstance(exc, ValueError)
        assert exc.field == case.field
        assert text(case.value, info) in str(exc.value)
        assert exc.allowed
        assert str(exc).startswith(f"{case.field}: got ")
    # Same check on both sides, a tensor's shape included (the server leaves it to the
    # request's checks, not its tensor decoder): the server's message reaches the caller
    # verbatim, and the value typed (ErrorInfo "value_json"; a tuple as a list, what JSON
    # cannot write as text).
    assert str(remote_caught.value) == str(local_caught.value)
    assert remote_caught.value.allowed == local_caught.value.allowed
    typed = value_json(local_caught.value.value)
    expected = str(local_caught.value.value) if typed is None else json.loads(typed)
    assert remote_caught.value.value == expected
    assert stats_equal(remote.stats(), stats_before)
    assert_unchanged(remote, before)
