"""The board contract with stated tolerances: holds on any board, noisy hardware included.

Shapes, dtypes, ranges, write and pass counting, reproducible regeneration of
Δ(seed), the clock and calibration, and analog results compared with the
tolerances of board_checks.py (derived from the board's info). Every test runs
on the local driver and through gRPC (``board``), on a board that earlier tests
have used: it programs what it reads and counts as differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from board_checks import (
    DRIVEN_ROWS,
    assert_currents_close,
    assert_reads_back,
    is_ideal,
    mid_range_g,
    region_of,
    span,
    sparse_voltages,
    tile_of,
    within,
    write_counts,
)

from sidra.client import RemoteBoard
from sidra.drivers import Board, InvalidArgument, OutOfRange, Region, Unsupported, rademacher


def program_block(board: Board, tile: int, region: Region, g: np.ndarray) -> None:
    board.program(tile, g, row_offset=region.row_offset, col_offset=region.col_offset)


# -- info -------------------------------------------------------------------------------------


def test_info_is_consistent(board: Board) -> None:
    """Geometry, window, read range, converters and timing are sane and named."""
    info = board.info
    assert info.tile_count >= 1 and info.rows >= 1 and info.cols >= 1
    assert 0 <= info.g_min_us < info.g_max_us
    assert info.read_voltage_max_v > 0
    assert info.dac_bits >= 0 and info.adc_bits >= 0
    assert info.model and info.serial_number and info.firmware_version
    if info.emulator_preset:  # an emulator standing in for hardware may keep it to itself
        assert info.emulated, "only an emulator names a preset"
    timing = info.timing
    for value in (timing.mvm_pass_ns, timing.write_pass_ns, timing.verify_read_ns):
        assert value >= 0 and math.isfinite(value)
    assert timing.board_power_w >= 0


def test_remote_info_equals_local_info(served: tuple[Board, int], remote: RemoteBoard) -> None:
    """GetBoardInfo carries every field of the board's info unchanged."""
    assert remote.info == served[0].info


# -- Program and ReadConductance --------------------------------------------------------------


def test_program_reads_back_within_tolerance(board: Board) -> None:
    """Programmed targets read back within the read-back contract; the report is consistent:
    every cell written, pulses are the write counters' increase, errors non-negative."""
    info = board.info
    region = within(info, Region(1, 2, 8, 12))
    g = mid_range_g(info, np.random.default_rng(7), region.shape)
    # Start from another state: a cell already on target may take no pulse at all.
    program_block(board, 0, region, np.full(region.shape, info.g_min_us, np.float32))
    counts = write_counts(board, 0, region)
    report = board.program(0, g, row_offset=region.row_offset, col_offset=region.col_offset)
    assert report.cells_written == g.size
    assert report.verify_iterations >= 1 and report.pulses >= 1
    assert report.pulses >= 0 and 0 <= report.unconverged_cells <= g.size
    assert 0.0 <= report.rms_error_us <= report.max_error_us + 1e-12
    assert int((write_counts(board, 0, region) - counts).sum()) == report.pulses
    read = board.read_conductance(0, region).conductances
    assert_reads_back(read, g, info)


def test_program_writes_only_its_region(board: Board) -> None:
    """A patch inside a programmed block changes the patch; the rest of the block keeps its
    targets and its write counters."""
    info = board.info
    block = region_of(info, 8, 8)
    rng = np.random.default_rng(8)
    base = mid_range_g(info, rng, block.shape)
    board.program(tile_of(info, 1), base, row_offset=block.row_offset, col_offset=block.col_offset)
    patch = np.full((2, 3), info.g_min_us + 0.75 * span(info), np.float32)
    counts = write_counts(board, tile_of(info, 1), block)
    board.program(
        tile_of(info, 1),
        patch,
        row_offset=block.row_offset + 2,
        col_offset=block.col_offset + 4,
    )
    expected = base.copy()
    expected[2:4, 4:7] = patch
    assert_reads_back(board.read_conductance(tile_of(info, 1), block).conductances, expected, info)
    grown = write_counts(board, tile_of(info, 1), block) - counts
    outside = np.ones(block.shape, bool)
    outside[2:4, 4:7] = False
    assert not grown[outside].any(), "cells outside the programmed region were written"
    assert grown[~outside].min() >= 1


def test_conductance_window_bounds_are_programmable(board: Board) -> None:
    """g_min_us and g_max_us themselves are accepted and read back."""
    info = board.info
    g = np.array([[info.g_min_us, info.g_max_us], [info.g_max_us, info.g_min_us]], np.float32)
    at = within(info, Region(10, 10, 2, 2))
    board.program(0, g, row_offset=at.row_offset, col_offset=at.col_offset)
    assert_reads_back(board.read_conductance(0, at).conductances, g, info)


def test_read_regions_with_open_extent(board: Board) -> None:
    """Region rows/cols = 0 mean "to the tile edge"; reads return exactly that shape."""
    info = board.info
    rows, cols = min(6, info.rows), min(16, info.cols)
    got = board.read_conductance(0, Region(info.rows - rows, info.cols - cols)).conductances
    assert (got.dtype, got.shape) == (np.float32, (rows, cols))
    got = board.read_conductance(0, Region(row_offset=info.rows - 1, rows=1)).conductances
    assert got.shape == (1, info.cols)
    assert board.read_conductance(0).conductances.shape == (info.rows, info.cols)


def test_tiles_are_independent(board: Board) -> None:
    """The same block on every tile, programmed to a different level per tile, reads back
    per tile: programming one tile does not write another."""
    info = board.info
    block = region_of(info, 4, 4)
    levels = [
        info.g_min_us + (t + 1) / (info.tile_count + 1) * span(info) for t in range(info.tile_count)
    ]
    for tile, level in enumerate(levels):
        program_block(board, tile, block, np.full(block.shape, level, np.float32))
    before = [write_counts(board, t, block) for t in range(info.tile_count)]
    program_block(board, 0, block, np.full(block.shape, levels[-1], np.float32))
    for tile in range(1, info.tile_count):
        assert np.array_equal(write_counts(board, tile, block), before[tile])
        got = board.read_conductance(tile, block).conductances
        assert_reads_back(got, np.full(block.shape, levels[tile]), info)


# -- MVM and TransposeMVM -----------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 16])
def test_mvm_follows_v_times_g(board: Board, batch: int) -> None:
    """MVM currents[b, j] = Σ_i V[b, i]·G[i, j] within the MVM contract, G as read back; one
    pass per vector, none saturated at these currents."""
    info = board.info
    block = region_of(info, DRIVEN_ROWS, 12)
    rng = np.random.default_rng(20 + batch)
    program_block(board, tile_of(info, 2), block, mid_range_g(info, rng, block.shape))
    g = board.read_conductance(tile_of(info, 2), Region(0, block.col_offset, info.rows, block.cols))
    v = sparse_voltages(info, rng, batch, info.rows, block.row_offset)
    passes = board.stats().mvm_passes
    result = board.mvm(tile_of(info, 2), v)
    assert result.currents.shape == (batch, info.cols)
    assert result.saturated_outputs == 0
    assert board.stats().mvm_passes - passes == batch
    cols = slice(block.col_offset, block.col_offset + block.cols)
    assert_currents_close(result.currents[:, cols], v, g.conductances, info)
    assert result.cost.time_ns == pytest.approx(batch * info.timing.mvm_pass_ns)


@pytest.mark.parametrize("batch", [1, 16])
def test_transpose_mvm_follows_v_times_g_transposed(board: Board, batch: int) -> None:
    """TransposeMVM currents[b, i] = Σ_j V[b, j]·G[i, j] within the MVM contract: column
    voltages in, row currents out (a block that is not symmetric tells them apart)."""
    info = board.info
    block = region_of(info, 12, DRIVEN_ROWS)
    rng = np.random.default_rng(30 + batch)
    program_block(board, tile_of(info, 3), block, mid_range_g(info, rng, block.shape))
    g = board.read_conductance(tile_of(info, 3), Region(block.row_offset, 0, block.rows, info.cols))
    v = sparse_voltages(info, rng, batch, info.cols, block.col_offset)
    result = board.transpose_mvm(tile_of(info, 3), v)
    assert result.currents.shape == (batch, info.rows)
    assert result.saturated_outputs == 0
    rows = slice(block.row_offset, block.row_offset + block.rows)
    assert_currents_close(result.currents[:, rows], v, g.conductances.T, info)


def test_full_scale_voltages_are_accepted(board: Board) -> None:
    """±read_voltage_max_v exactly is a legal input, one step beyond it is OutOfRange."""
    info = board.info
    vmax = np.float32(info.read_voltage_max_v)
    v = np.zeros((2, info.rows), np.float32)
    v[0, :DRIVEN_ROWS], v[1, :DRIVEN_ROWS] = vmax, -vmax
    assert board.mvm(0, v).currents.shape == (2, info.cols)
    v[1, 0] = np.nextafter(-vmax, np.float32(-1.0))
    with pytest.raises(OutOfRange) as caught:
        board.mvm(0, v)
    assert caught.value.field == "voltages"


def test_zero_batch_shapes_and_dtype(board: Board) -> None:
    """Zero voltages give a float32 [batch, outputs] result in both directions."""
    info = board.info
    forward = board.mvm(tile_of(info, 1), np.zeros((3, info.rows), np.float32))
    backward = board.transpose_mvm(tile_of(info, 1), np.zeros((2, info.cols), np.float32))
    assert (forward.currents.dtype, forward.currents.shape) == (np.float32, (3, info.cols))
    assert (backward.currents.dtype, backward.currents.shape) == (np.float32, (2, info.rows))
    assert np.isfinite(forward.currents).all() and np.isfinite(backward.currents).all()


# -- Perturb ------------------------------------------------------------------------------------

# A perturbation of 10 % of the span stands clear of read noise: on sidra-y1 the read-to-read
# difference of a cell has σ = √2·1.0 µS, so 3.9 µS is 2.8σ and fewer than 1 % of cells move
# against sign·Δ; the test allows 10 %. No cell clips: mid-range G ± 10 % stays in the window.
AMPLITUDE_OF_SPAN = 0.1
AGREEMENT = 0.9


def assert_moved_by(before: np.ndarray, after: np.ndarray, step: np.ndarray, c: float) -> None:
    """after - before follows ``step`` (±c per cell): sign agreement and mean size."""
    diff = (after.astype(np.float64) - before) * np.sign(step)
    assert np.mean(diff > 0) >= AGREEMENT, f"only {np.mean(diff > 0):.0%} moved by sign·Δ"
    assert 0.5 * c <= float(np.mean(diff)) <= 1.5 * c, f"mean move {np.mean(diff):.3g} µS"


@pytest.mark.parametrize("sign", [+1, -1])
def test_perturb_applies_sign_times_delta_and_restore_undoes_it(board: Board, sign: int) -> None:
    """APPLY moves each cell by sign·c·Δ(seed), Δ regenerated here from the seed; RESTORE
    returns the programmed state; each writes every cell of the region once."""
    info = board.info
    region = region_of(info, 16, 16)
    g = mid_range_g(info, np.random.default_rng(40), region.shape)
    program_block(board, tile_of(info, 1), region, g)
    before = board.read_conductance(tile_of(info, 1), region).conductances
    counts = write_counts(board, tile_of(info, 1), region)
    c = AMPLITUDE_OF_SPAN * span(info)
    report = board.perturb(tile_of(info, 1), seed=41, amplitude_us=c, sign=sign, region=region)
    assert (report.cells_written, report.clipped_cells) == (region.rows * region.cols, 0)
    after = board.read_conductance(tile_of(info, 1), region).conductances
    assert_moved_by(before, after, sign * rademacher(41, region.shape), c)
    restored = board.restore(tile_of(info, 1), region)
    assert restored.cells_written == region.rows * region.cols
    assert_reads_back(board.read_conductance(tile_of(info, 1), region).conductances, g, info)
    assert np.array_equal(
        write_counts(board, tile_of(info, 1), region) - counts, np.full(region.shape, 2)
    )


def test_perturb_is_relative_to_the_programmed_state(board: Board) -> None:
    """APPLY −1 after APPLY +1 lands on G − cΔ, not on G: perturbations do not accumulate."""
    info = board.info
    region = region_of(info, 16, 16)
    program_block(
        board,
        tile_of(info, 2),
        region,
        mid_range_g(info, np.random.default_rng(42), region.shape),
    )
    c = AMPLITUDE_OF_SPAN * span(info)
    board.perturb(tile_of(info, 2), seed=43, amplitude_us=c, sign=+1, region=region)
    plus = board.read_conductance(tile_of(info, 2), region).conductances
    board.perturb(tile_of(info, 2), seed=43, amplitude_us=c, sign=-1, region=region)
    minus = board.read_conductance(tile_of(info, 2), region).conductances
    board.restore(tile_of(info, 2), region)
    assert_moved_by(plus, minus, -2 * rademacher(43, region.shape), 2 * c)


@pytest.mark.parametrize("seed", [0, 1, 2**63, 2**64 - 1])
def test_perturb_any_uint64_seed(board: Board, seed: int) -> None:
    """Every 64-bit seed reaches the board intact: the board applies rademacher(seed) on an odd
    region (3 × 37, not a multiple of 64 cells)."""
    info = board.info
    region = region_of(info, 3, 37)
    program_block(
        board,
        tile_of(info, 3),
        region,
        mid_range_g(info, np.random.default_rng(44), region.shape),
    )
    before = board.read_conductance(tile_of(info, 3), region).conductances
    c = AMPLITUDE_OF_SPAN * span(info)
    board.perturb(tile_of(info, 3), seed=seed, amplitude_us=c, sign=-1, region=region)
    after = board.read_conductance(tile_of(info, 3), region).conductances
    board.restore(tile_of(info, 3), region)
    assert_moved_by(before, after, -rademacher(seed, region.shape), c)


def test_perturb_region_writes_only_the_region(board: Board) -> None:
    """A region APPLY/RESTORE writes each cell of the region once and nothing around it."""
    info = board.info
    outer = region_of(info, 12, 12)
    # 4 x 5 from (3, 4) of the 12 x 12 block; on a smaller block, cut to leave a line of it
    # unwritten on each side.
    rows, cols = min(4, outer.rows - 2), min(5, outer.cols - 2)
    r0, c0 = min(3, outer.rows - rows - 1), min(4, outer.cols - cols - 1)
    inner = Region(outer.row_offset + r0, outer.col_offset + c0, rows, cols)
    before = write_counts(board, 0, outer)
    assert board.perturb(0, seed=3, amplitude_us=0.5, region=inner).cells_written == rows * cols
    assert board.restore(0, inner).cells_written == rows * cols
    grown = write_counts(board, 0, outer) - before
    expected = np.zeros(outer.shape, np.int64)
    expected[r0 : r0 + rows, c0 : c0 + cols] = 2
    assert np.array_equal(grown, expected)


# -- counting, clock, calibration -----------------------------------------------------------------


def test_stats_count_passes_and_writes(board: Board) -> None:
    """mvm_passes grows by the batch (both directions); cell_writes by the cells written;
    reads and write-counter reads change neither; the modeled cost never decreases."""
    info = board.info
    region = region_of(info, 3, 5)
    s0 = board.stats()
    board.mvm(0, np.zeros((5, info.rows), np.float32))
    board.transpose_mvm(tile_of(info, 1), np.zeros((3, info.cols), np.float32))
    s1 = board.stats()
    assert (s1.mvm_passes - s0.mvm_passes, s1.cell_writes - s0.cell_writes) == (8, 0)
    assert s1.total_cost.time_ns >= s0.total_cost.time_ns
    board.perturb(tile_of(info, 2), seed=5, amplitude_us=0.5, region=region)
    board.restore(tile_of(info, 2), region)
    board.read_conductance(tile_of(info, 2), region)
    board.read_write_counts(tile_of(info, 2), region)
    s2 = board.stats()
    assert (s2.mvm_passes, s2.cell_writes - s1.cell_writes) == (
        s1.mvm_passes,
        2 * region.rows * region.cols,
    )
    assert s2.max_cell_writes >= 2
    assert s2.total_cost.energy_nj >= s1.total_cost.energy_nj


def test_write_counts_shape_dtype_and_budget(board: Board) -> None:
    """ReadWriteCounts gives uint32 counters of the region and a budget (0: unlimited)."""
    info = board.info
    counts = board.read_write_counts(tile_of(info, 1), Region(0, 0, 2, 3))
    assert (counts.counts.dtype, counts.counts.shape) == (np.uint32, (2, 3))
    assert counts.write_budget >= 0
    assert board.read_write_counts(tile_of(info, 1)).counts.shape == (info.rows, info.cols)


# A calibration rescales every later output of the tile for good: it runs on a board opened
# for it, not on the board the other tests share.
@pytest.mark.fresh_board
def test_calibrate_reports_a_finite_gain(fresh_board: Board) -> None:
    """Calibrate returns a finite positive output gain (1 on an ideal board, to float32
    rounding), and MVM still follows V·G afterwards."""
    board = fresh_board
    info = board.info
    block = region_of(info, DRIVEN_ROWS, 8)
    rng = np.random.default_rng(50)
    program_block(board, tile_of(info, 1), block, mid_range_g(info, rng, block.shape))
    board.restore(tile_of(info, 1))  # calibrate with no perturbation active
    report = board.calibrate(tile_of(info, 1))
    assert math.isfinite(report.gain) and report.gain > 0
    if is_ideal(info):
        assert report.gain == pytest.approx(1.0, abs=1e-5)
    g = board.read_conductance(tile_of(info, 1), Region(0, block.col_offset, info.rows, block.cols))
    v = sparse_voltages(info, rng, 4, info.rows, block.row_offset)
    cols = slice(block.col_offset, block.col_offset + block.cols)
    assert_currents_close(board.mvm(tile_of(info, 1), v).currents[:, cols], v, g.conductances, info)


def test_advance_clock_on_an_emulated_board_only(board: Board) -> None:
    """An emulated board's virtual clock moves by exactly the seconds asked (stats.clock_s
    follows); any other board refuses with Unsupported, as the contract allows."""
    start = board.stats().clock_s
    if not board.info.emulated:
        with pytest.raises(Unsupported):
            board.advance_clock(1.0)
        return
    # 1 s of drift ages nothing measurably (sidra-y1: ν = 0.005, t0 = 20 s), so later tests on
    # this board are unaffected.
    now = board.advance_clock(1.0)
    assert now == pytest.approx(start + 1.0)
    assert board.stats().clock_s == pytest.approx(now)
    assert board.advance_clock(0.0) == pytest.approx(now)


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_advance_clock_refuses_bad_seconds(board: Board, seconds: float) -> None:
    """Negative, NaN or infinite seconds are refused on every board (before Unsupported)."""
    start = board.stats().clock_s
    with pytest.raises(InvalidArgument) as caught:
        board.advance_clock(seconds)
    assert caught.value.field == "seconds"
    assert board.stats().clock_s == start


# -- refused requests and the link ----------------------------------------------------------------


def test_out_of_range_is_refused_before_the_board(board: Board) -> None:
    """Conductances above the window are OutOfRange naming the field; nothing is charged."""
    info = board.info
    stats = board.stats()
    with pytest.raises(OutOfRange) as caught:
        board.program(0, np.full((2, 2), info.g_max_us * 2, np.float32))
    assert caught.value.field == "conductances"
    after = board.stats()
    assert (after.cell_writes, after.mvm_passes, after.total_cost) == (
        stats.cell_writes,
        stats.mvm_passes,
        stats.total_cost,
    )


def test_link_stats_reach_grpc_clients(served: tuple[Board, int], remote: RemoteBoard) -> None:
    """GetBoardInfo's stats carry link counters for a board behind a link, none in process."""
    local = served[0].stats().link
    link = remote.stats().link
    if local is None:
        assert link is None
        return
    assert link is not None and link.up and link.exchanges > 0


@pytest.mark.ideal_only
@pytest.mark.fresh_board
def test_calibrate_keeps_an_ideal_board_exact(fresh_board: Board) -> None:
    """On an ideal board there is nothing to compensate: gain 1, and every MVM after a
    calibration is bit-identical to the same MVM before it (the tile at power-up)."""
    board = fresh_board
    info = board.info
    v = np.random.default_rng(51).uniform(-0.1, 0.1, (4, info.rows)).astype(np.float32)
    before = board.mvm(0, v).currents
    report = board.calibrate(0)
    assert np.array_equal(board.mvm(0, v).currents, before)
    assert report.gain == 1.0
