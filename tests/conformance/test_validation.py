"""Bad requests are refused before the board: the exact class, the field, the value and what
would have been accepted (limits taken from the board's info), and nothing written or charged.

Runs on the local driver and through gRPC (``board``): the remote client raises the same
classes with the same field as a local driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from board_checks import tile_of, within

from sidra.drivers import Board, BoardInfo, InvalidArgument, OutOfRange, Region

Call = Callable[[Board, BoardInfo], Any]


@dataclass(frozen=True)
class Bad:
    call: Call
    cls: type[InvalidArgument]
    field: str
    value: Callable[[BoardInfo], str]
    """Text the error's value shows (compared as text: gRPC carries it as a string)."""
    allowed: Callable[[BoardInfo], str]
    """Substring of what would have been accepted."""
    exact: bool = True
    """False: a subclass of ``cls`` is accepted too (the contract names no code yet)."""


def vmat(info: BoardInfo, value: float, width: int | None = None) -> np.ndarray:
    v = np.zeros((2, width or info.rows), np.float32)
    v[1, 3] = value
    return v


def tiles(info: BoardInfo) -> str:
    return f"0 .. {info.tile_count - 1}"


def window(info: BoardInfo) -> str:
    return f"[{info.g_min_us:g}, {info.g_max_us:g}] µS"


def amplitude(info: BoardInfo) -> str:
    return f"(0, {info.g_max_us - info.g_min_us:g}] µS"


def const(text: str) -> Callable[[BoardInfo], str]:
    return lambda _: text


def half_at_most(n: int, k: int) -> int:
    """``k`` lines, or half of a tile of ``n`` lines if that is fewer: an offset (or the
    lines left before the edge) a case takes on a 256-line tile, kept inside a small one."""
    return min(k, n // 2)


def short_region(info: BoardInfo) -> Region:
    """10 x 4 from row 3, column 5, inside the tile and fewer rows than it has (9 .. 7 on
    a tile of 10 .. 8 rows): whole-tile voltages do not fit it."""
    return within(info, Region(3, 5, min(10, info.rows - 1), 4))


CASES: dict[str, Bad] = {
    "tile-past-the-end": Bad(
        lambda b, i: b.mvm(i.tile_count, vmat(i, 0.0)),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count),
        tiles,
    ),
    "tile-negative": Bad(
        lambda b, i: b.read_conductance(-1), OutOfRange, "tile", const("-1"), tiles
    ),
    "sign-zero": Bad(
        lambda b, i: b.perturb(0, seed=1, amplitude_us=1.0, sign=0),
        InvalidArgument,
        "sign",
        const("0"),
        const("+1 or -1"),
    ),
    "mvm-width": Bad(
        lambda b, i: b.mvm(0, np.zeros((2, i.rows - 1))),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[2, {i.rows - 1}]",
        lambda i: f"{i.rows}] (tile rows)",
    ),
    "mvm-empty": Bad(
        lambda b, i: b.mvm(0, np.zeros((0, i.rows))),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[0, {i.rows}]",
        const(">= 1"),
    ),
    "mvm-nan": Bad(
        lambda b, i: b.mvm(0, vmat(i, np.nan)),
        InvalidArgument,
        "voltages",
        const("NaN"),
        const("finite"),
    ),
    "mvm-over": Bad(
        lambda b, i: b.mvm(0, vmat(i, 1.25 * i.read_voltage_max_v)),
        OutOfRange,
        "voltages",
        lambda i: f"{np.float32(1.25 * i.read_voltage_max_v):g} V at [1, 3]",
        lambda i: f"[-{i.read_voltage_max_v:g}, +{i.read_voltage_max_v:g}] V",
    ),
    "tmvm-width": Bad(
        lambda b, i: b.transpose_mvm(0, np.zeros((1, i.cols + 44))),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[1, {i.cols + 44}]",
        lambda i: f"{i.cols}] (tile columns)",
    ),
    "tmvm-inf": Bad(
        lambda b, i: b.transpose_mvm(0, vmat(i, -np.inf, i.cols)),
        InvalidArgument,
        "voltages",
        const("inf"),
        const("finite"),
    ),
    "mvm-region-width": Bad(
        lambda b, i: b.mvm(0, np.zeros((2, i.rows)), short_region(i)),
        InvalidArgument,
        "voltages.shape",
        lambda i: f"[2, {i.rows}]",
        lambda i: f"[batch >= 1, {short_region(i).rows}] (region rows)",
    ),
    "mvm-region-rows": Bad(  # 20 rows from 10 before the last (half the tile, if less)
        lambda b, i: b.mvm(
            0,
            np.zeros((1, 2 * half_at_most(i.rows, 10))),
            Region(i.rows - half_at_most(i.rows, 10), 0, 2 * half_at_most(i.rows, 10), 4),
        ),
        OutOfRange,
        "region.rows",
        lambda i: str(2 * half_at_most(i.rows, 10)),
        lambda i: (
            f"1 .. {half_at_most(i.rows, 10)} (tile has {i.rows} rows, region starts at row "
            f"{i.rows - half_at_most(i.rows, 10)})"
        ),
    ),
    "tmvm-region-width": Bad(
        lambda b, i: b.transpose_mvm(0, np.zeros((1, 5)), Region(0, 0, 3, 4)),
        InvalidArgument,
        "voltages.shape",
        const("[1, 5]"),
        const("[batch >= 1, 4] (region columns)"),
    ),
    "tmvm-region-col-offset": Bad(
        lambda b, i: b.transpose_mvm(0, np.zeros((1, 4)), Region(0, i.cols, 3, 4)),
        OutOfRange,
        "region.col_offset",
        lambda i: str(i.cols),
        lambda i: f"0 .. {i.cols - 1}",
    ),
    "program-above": Bad(
        lambda b, i: b.program(tile_of(b.info, 1), np.full((2, 2), i.g_max_us + 1.0)),
        OutOfRange,
        "conductances",
        lambda i: f"{np.float32(i.g_max_us + 1.0):g} µS at [0, 0]",
        window,
    ),
    "program-below": Bad(
        lambda b, i: b.program(tile_of(b.info, 1), np.full((2, 2), i.g_min_us - 0.25)),
        OutOfRange,
        "conductances",
        lambda i: f"{np.float32(i.g_min_us - 0.25):g} µS at [0, 0]",
        window,
    ),
    "program-inf": Bad(
        lambda b, i: b.program(tile_of(b.info, 1), np.full((2, 2), np.inf)),
        InvalidArgument,
        "conductances",
        const("inf"),
        const("finite"),
    ),
    "program-empty": Bad(
        lambda b, i: b.program(tile_of(b.info, 1), np.zeros((0, 2))),
        InvalidArgument,
        "conductances.shape",
        const("[0, 2]"),
        const(">= 1"),
    ),
    "read-region-rows": Bad(  # 250 rows from row 10 of 256: 4 past the edge
        lambda b, i: b.read_conductance(
            0, Region(half_at_most(i.rows, 10), 0, i.rows - half_at_most(i.rows, 10) + 4, 0)
        ),
        OutOfRange,
        "region.rows",
        lambda i: str(i.rows - half_at_most(i.rows, 10) + 4),
        lambda i: f"1 .. {i.rows - half_at_most(i.rows, 10)}",
    ),
    "read-region-col-offset": Bad(
        lambda b, i: b.read_conductance(0, Region(0, i.cols)),
        OutOfRange,
        "region.col_offset",
        lambda i: str(i.cols),
        lambda i: f"0 .. {i.cols - 1}",
    ),
    "perturb-seed-2**64": Bad(
        lambda b, i: b.perturb(0, seed=2**64, amplitude_us=1.0),
        InvalidArgument,
        "seed",
        const(str(2**64)),
        const("unsigned 64-bit"),
        exact=False,
    ),
    "perturb-seed-negative": Bad(
        lambda b, i: b.perturb(0, seed=-1, amplitude_us=1.0),
        InvalidArgument,
        "seed",
        const("-1"),
        const("unsigned 64-bit"),
        exact=False,
    ),
    "perturb-amplitude-zero": Bad(
        lambda b, i: b.perturb(0, seed=1, amplitude_us=0.0),
        OutOfRange,
        "amplitude_us",
        const("0"),
        amplitude,
    ),
    "perturb-amplitude-past-span": Bad(
        lambda b, i: b.perturb(0, seed=1, amplitude_us=2 * (i.g_max_us - i.g_min_us)),
        OutOfRange,
        "amplitude_us",
        lambda i: f"{2 * (i.g_max_us - i.g_min_us):g}",
        amplitude,
    ),
    "perturb-amplitude-nan": Bad(
        lambda b, i: b.perturb(0, seed=1, amplitude_us=float("nan")),
        InvalidArgument,
        "amplitude_us",
        const("nan"),
        const("finite"),
    ),
    "perturb-region": Bad(
        lambda b, i: b.perturb(0, seed=1, amplitude_us=1.0, region=Region(i.rows, 0)),
        OutOfRange,
        "region.row_offset",
        lambda i: str(i.rows),
        lambda i: f"0 .. {i.rows - 1}",
    ),
    "restore-region": Bad(
        lambda b, i: b.restore(tile_of(b.info, 2), Region(0, i.cols)),
        OutOfRange,
        "region.col_offset",
        lambda i: str(i.cols),
        lambda i: f"0 .. {i.cols - 1}",
    ),
    "restore-tile": Bad(
        lambda b, i: b.restore(i.tile_count + 3),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count + 3),
        tiles,
    ),
    "write-counts-tile": Bad(
        lambda b, i: b.read_write_counts(i.tile_count),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count),
        tiles,
    ),
    "calibrate-tile": Bad(
        lambda b, i: b.calibrate(i.tile_count),
        OutOfRange,
        "tile",
        lambda i: str(i.tile_count),
        tiles,
    ),
}


def counters(board: Board) -> tuple[Any, ...]:
    """Everything a refused request must leave alone: passes, writes, cost, write counters."""
    stats = board.stats()
    counts = [board.read_write_counts(t).counts for t in range(board.info.tile_count)]
    return stats.mvm_passes, stats.cell_writes, stats.total_cost, np.stack(counts).tobytes()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_request_is_refused_before_the_board(board: Board, case: Bad) -> None:
    """The exact class with .field, .value and .allowed, a message "field: got value, expected
    allowed", and nothing written or charged."""
    info = board.info
    before = counters(board)
    with pytest.raises(case.cls) as caught:
        case.call(board, info)
    exc = caught.value
    # An InvalidArgument must not come back as OutOfRange, nor the other way round.
    assert type(exc) is case.cls or (not case.exact and isinstance(exc, case.cls))
    assert exc.field == case.field
    assert case.value(info) in str(exc), str(exc)
    assert case.allowed(info) in exc.allowed, exc.allowed
    assert str(exc).startswith(f"{case.field}: got "), str(exc)
    assert str(exc).endswith(f"expected {exc.allowed}")
    assert counters(board) == before


NEGATIVE = {
    "program-row-offset": (
        lambda b: b.program(tile_of(b.info, 1), np.full((2, 3), b.info.g_min_us), row_offset=-256),
        "row_offset",
    ),
    "program-col-offset": (
        lambda b: b.program(tile_of(b.info, 1), np.full((2, 3), b.info.g_min_us), col_offset=-1),
        "col_offset",
    ),
    "read-rows": (lambda b: b.read_conductance(0, Region(0, 0, -1, 2)), "region.rows"),
    "perturb-cols": (
        lambda b: b.perturb(0, seed=1, amplitude_us=1.0, region=Region(0, 0, 0, -300)),
        "region.cols",
    ),
    "restore-row-offset": (
        lambda b: b.restore(tile_of(b.info, 2), Region(-3, 0, 2, 2)),
        "region.row_offset",
    ),
    "mvm-region-rows": (
        lambda b: b.mvm(0, np.zeros((1, 2)), Region(0, 0, -1, 2)),
        "region.rows",
    ),
    "tmvm-region-col-offset": (
        lambda b: b.transpose_mvm(0, np.zeros((1, 2)), Region(0, -5, 2, 2)),
        "region.col_offset",
    ),
}


@pytest.mark.parametrize(("call", "field"), list(NEGATIVE.values()), ids=list(NEGATIVE))
def test_negative_offsets_and_sizes_refused(
    board: Board, call: Callable[[Board], Any], field: str
) -> None:
    """Negative region offsets or sizes (possible in Python, impossible on the uint32 wire)
    are refused naming the field, and nothing is written."""
    before = counters(board)
    with pytest.raises(InvalidArgument) as caught:
        call(board)
    assert caught.value.field == field
    assert counters(board) == before


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.mvm(0, np.full((1, b.info.rows), 1e39)), "voltages"),
        (lambda b: b.program(tile_of(b.info, 1), np.full((2, 2), -1e300)), "conductances"),
    ],
    ids=["voltage-1e39", "conductance-minus-1e300"],
)
def test_finite_float64_beyond_float32_is_out_of_range(
    board: Board, call: Callable[[Board], Any], field: str
) -> None:
    """A finite float64 too large for float32 is outside the board's limits: OutOfRange naming
    the field (not "NaN/Inf", and no numpy overflow warning escaping)."""
    with pytest.raises(OutOfRange) as caught:
        call(board)
    assert caught.value.field == field


def test_any_real_numeric_input_is_accepted(board: Board) -> None:
    """Nested lists, ints and float64 are converted to float32 on every transport."""
    info = board.info
    g = [[int(info.g_min_us) + 1, int(info.g_min_us) + 2], [int(info.g_min_us) + 3, 4]]
    g = [[min(x, info.g_max_us) for x in row] for row in g]
    board.program(tile_of(info, 3), g, row_offset=4, col_offset=5)
    got = board.read_conductance(tile_of(info, 3), Region(4, 5, 2, 2)).conductances
    assert got.dtype == np.float32 and got.shape == (2, 2)
    v = np.zeros((1, info.rows))  # float64
    v[0, 4] = info.read_voltage_max_v / 2
    currents = board.mvm(tile_of(info, 3), v).currents
    assert currents.dtype == np.float32 and currents.shape == (1, info.cols)
