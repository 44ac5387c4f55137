"""What a conformance test may assume of a board, and the tolerances it compares with.

Everything comes from the board's :class:`~sidra.drivers.BoardInfo`: geometry,
conductance window, read voltage and converter bits. On an ideal board
(``emulator_preset == "ideal"``) results are exact and the ``ideal_only`` tests
check them bit for bit; every other test compares with the tolerances below,
which are the conformance contract of a usable board (docs/conformance.md), not
the emulator's own figures. Each states its derivation; the reference board for
the margins is the emulator's ``sidra-y1`` preset (2.5 % of g_max read noise per
cell and pass, write-verify to 0.2 µS, 8-bit DAC, 12-bit ADC over ±160 µA,
0.1 % stuck cells).

Not a test module: nothing is collected here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, BoardInfo, Region

F32 = npt.NDArray[np.float32]

OPENED_URLS = "sidra_opened_board_urls"
"""The attribute of the pytest session naming the --board-url boards this run holds open
(conftest's shared driver): a second host of theirs (test_wire_refusals) would share the
line."""

READ_RMS_OF_SPAN = 0.05
"""Programmed cells read back within 5 % of (g_max - g_min) rms. sidra-y1: read noise
σ = 2.5 % of g_max = 1.0 µS per read (2.6 % of its 39 µS span) on top of the 0.2 µS
write-verify tolerance, so about 2.6 %: a margin of ~2."""

READ_CELL_OF_SPAN = 0.15
"""Each programmed cell reads back within 15 % of the span (~6σ of that noise) ..."""

OUTLIER_FRACTION = 0.01
"""... except at most 1 % of the cells (+1): stuck cells are 0.1 % on sidra-y1."""

MVM_OF_SCALE = 0.10
"""MVM outputs follow V·G_read within 10 % of the input's full scale max Σ|V|·|G|. With the
test's 8 equal driven rows, sidra-y1's output noise σ_g·‖V‖ is 2.5 %·g_max·√8·v against
8·v·ḡ ≈ 8·v·20 µS: ≈ 1.8 % of scale, and the read-back reference carries as much again
(≈ 2.5 % together): 10 % is ~4σ."""

DRIVEN_ROWS = 8
"""Rows (or columns) a tolerance test drives, at most v_max/2 each: outputs stay below
8 · v_max/2 · g_max (32 µA on a 0.2 V, 40 µS board), which any ADC full scale must hold."""

SMALLEST_TILE = (DRIVEN_ROWS, DRIVEN_ROWS)
"""Rows and columns of the smallest tile the suite runs on (docs/conformance.md): its tests
drive DRIVEN_ROWS inputs and place regions of up to 8 lines inside a tile. On a board of
smaller tiles every test of the shared board skips, naming this size and the board's."""


def too_small(info: BoardInfo) -> str | None:
    """Why the suite cannot run on ``info``'s tiles (None: it can)."""
    rows, cols = SMALLEST_TILE
    if info.rows >= rows and info.cols >= cols:
        return None
    return (
        f"the suite needs tiles of {rows} x {cols} or more ({DRIVEN_ROWS} driven inputs, "
        f"regions of up to 8 lines); the board's are {info.rows} x {info.cols}"
    )


def is_ideal(info: BoardInfo) -> bool:
    """The SIDRA emulator's ideal preset, as the exact ("ideal-only") checks know it: exact
    arithmetic on 4 tiles of 256 x 256 (their data are sized for it). Any other board,
    however exact, takes the tolerance checks (a board's own firmware saying "ideal" too)."""
    return (
        info.emulator_preset == "ideal"
        and info.emulated
        and (info.tile_count, info.rows, info.cols) == (4, 256, 256)
    )


def span(info: BoardInfo) -> float:
    return info.g_max_us - info.g_min_us


def dac_step_v(info: BoardInfo) -> float:
    """One DAC code (V): read_voltage_max_v over the codes per polarity (0: no DAC)."""
    if info.dac_bits <= 0:
        return 0.0
    return info.read_voltage_max_v / max((1 << (info.dac_bits - 1)) - 1, 1)


def mid_range_g(info: BoardInfo, rng: np.random.Generator, shape: tuple[int, int]) -> F32:
    """Conductances in the middle 40 % of the window: ±20 % of span never clips."""
    lo = info.g_min_us + 0.3 * span(info)
    hi = info.g_max_us - 0.3 * span(info)
    return rng.uniform(lo, hi, shape).astype(np.float32)


def assert_reads_back(read: F32, target: npt.ArrayLike, info: BoardInfo) -> None:
    """``read`` holds the programmed ``target`` within the read-back contract."""
    t = np.asarray(target, dtype=np.float32).astype(np.float64)  # the board gets float32
    assert read.dtype == np.float32
    assert read.shape == t.shape
    err = np.abs(read.astype(np.float64) - t)
    if is_ideal(info):
        assert err.max() == 0.0, f"ideal board read back off by {err.max()} µS"
        return
    s = span(info)
    outliers = int(np.count_nonzero(err > READ_CELL_OF_SPAN * s))
    allowed = int(OUTLIER_FRACTION * err.size) + 1
    assert outliers <= allowed, f"{outliers} cells off by > {READ_CELL_OF_SPAN * s:.3g} µS"
    rms = float(np.sqrt(np.mean(err[err <= READ_CELL_OF_SPAN * s] ** 2)))
    assert rms < READ_RMS_OF_SPAN * s, f"rms read-back error {rms:.3g} µS (outliers aside)"


def mvm_bound(v: F32, g: npt.ArrayLike, info: BoardInfo) -> float:
    """Largest allowed |I - V·G| (µA) for inputs ``v`` on conductances ``g``.

    MVM_OF_SCALE of the full scale plus the DAC's rounding: half a code on every
    driven input, Σ_i (step/2)·|G_ij| at most."""
    g64 = np.abs(np.asarray(g, dtype=np.float64))
    scale = float((np.abs(v.astype(np.float64)) @ g64).max())
    dac = 0.5 * dac_step_v(info) * float((np.abs(v) > 0).astype(np.float64).sum(axis=1).max())
    return MVM_OF_SCALE * scale + dac * float(g64.max())


def assert_currents_close(got: F32, v: F32, g: npt.ArrayLike, info: BoardInfo) -> None:
    """``got`` is V·G within the MVM contract (float32 accumulation on an ideal board)."""
    ref = v.astype(np.float64) @ np.asarray(g, dtype=np.float64)
    assert got.dtype == np.float32
    assert got.shape == ref.shape
    if is_ideal(info):
        # float32 accumulation over the driven inputs: relative 1e-5 of |V|·|G|.
        scale = float((np.abs(v.astype(np.float64)) @ np.abs(np.asarray(g, np.float64))).max())
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * scale)
        return
    worst = float(np.abs(got - ref).max())
    assert worst <= mvm_bound(v, g, info), f"MVM off by {worst:.3g} µA"


def sparse_voltages(
    info: BoardInfo, rng: np.random.Generator, batch: int, width: int, start: int
) -> F32:
    """``batch`` vectors driving DRIVEN_ROWS inputs from ``start`` with 0 .. v_max/2. On
    inputs narrower than ``start + DRIVEN_ROWS`` the driven block moves back to end at the
    last input (every input, on fewer than DRIVEN_ROWS)."""
    driven = min(DRIVEN_ROWS, width)
    start = max(min(start, width - driven), 0)
    v = np.zeros((batch, width), np.float32)
    v[:, start : start + driven] = rng.uniform(0.0, info.read_voltage_max_v / 2, (batch, driven))
    return v


def tile_of(info: BoardInfo, k: int) -> int:
    """Tile ``k`` of the suite: tests spread over tiles 0-3 so that one test's writes
    rarely meet another's, and on a board of fewer tiles share them (k modulo the count)."""
    return k % info.tile_count


def region_of(info: BoardInfo, rows: int, cols: int) -> Region:
    """A rows × cols region in the middle of a tile (clamped to the tile)."""
    rows, cols = min(rows, info.rows), min(cols, info.cols)
    return Region((info.rows - rows) // 2, (info.cols - cols) // 2, rows, cols)


def within(info: BoardInfo, region: Region) -> Region:
    """``region`` (sizes given, not 0) inside ``info``'s tiles: each size cut to the tile's,
    then the offset moved back as far as the size needs. A region that fits is unchanged;
    a tile too small for it gets a region as large as it holds, not a thinner one."""
    rows, cols = min(region.rows, info.rows), min(region.cols, info.cols)
    r0 = min(region.row_offset, info.rows - rows)
    c0 = min(region.col_offset, info.cols - cols)
    return Region(r0, c0, rows, cols)


def write_counts(board: Board, tile: int, region: Region) -> npt.NDArray[np.int64]:
    return board.read_write_counts(tile, region).counts.astype(np.int64)
