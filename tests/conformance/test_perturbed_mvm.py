"""PerturbedMVM: the fused Perturb / MVM / Restore sequence, on any board.

One input batch through a tile region at each of a list of seeded perturbations,
the region restored at the end. Checked against the sequence it replaces (bit for
bit on an ideal board), against V·(G + sign·c·Δ) within the contract's tolerances
on any board, and for what it leaves behind: the region at its programmed
conductances, one write per point and one for the restore in the region and none
outside it, one pass per vector and point.
"""

from __future__ import annotations

import numpy as np
import pytest
from board_checks import (
    DRIVEN_ROWS,
    assert_currents_close,
    assert_reads_back,
    mid_range_g,
    region_of,
    span,
    tile_of,
    write_counts,
)

from sidra.drivers import Board, PerturbationPoint, Region, rademacher

AMPLITUDE_OF_SPAN = 0.1
"""Perturbation amplitude c as a fraction of the window: 3.9 µS on 1 .. 40 µS, far above
the write-verify tolerance and far from clipping for mid-range targets."""


def _points(info_span: float) -> tuple[PerturbationPoint, ...]:
    c = AMPLITUDE_OF_SPAN * info_span
    return (
        PerturbationPoint(seed=71, amplitude_us=c, sign=+1),
        PerturbationPoint(seed=71, amplitude_us=c, sign=-1),
        PerturbationPoint(seed=2**64 - 1, amplitude_us=c / 2, sign=+1),
    )


def _inputs(rows: int, batch: int, v_max: float, seed: int) -> np.ndarray:
    """0 .. v_max/2 on each of ``rows`` (at most 13 here: outputs stay far below any
    ADC full scale, as DRIVEN_ROWS explains)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, v_max / 2, (batch, rows)).astype(np.float32)


def _programmed(board: Board, tile: int, region: Region, seed: int) -> np.ndarray:
    g = mid_range_g(board.info, np.random.default_rng(seed), region.shape)
    board.program(tile, g, row_offset=region.row_offset, col_offset=region.col_offset)
    return g


def _sequence(board: Board, tile: int, region: Region, v: np.ndarray, points: tuple) -> np.ndarray:
    """What PerturbedMVM replaces: Perturb and a region MVM per point, then Restore."""
    outputs = []
    for p in points:
        board.perturb(tile, p.seed, p.amplitude_us, p.sign, region)
        outputs.append(board.mvm(tile, v, region).currents)
    board.restore(tile, region)
    return np.stack(outputs)


@pytest.mark.ideal_only
def test_equals_the_sequence_it_replaces_bit_for_bit(board: Board) -> None:
    info = board.info
    region = Region(5, 9, 13, 7)
    _programmed(board, tile_of(info, 2), region, seed=70)
    v = _inputs(region.rows, 4, info.read_voltage_max_v, seed=72)
    points = _points(span(info))
    fused = board.perturbed_mvm(tile_of(info, 2), v, points, region)
    sequence = _sequence(board, tile_of(info, 2), region, v, points)
    assert fused.currents.shape == (len(points), len(v), region.cols)
    assert fused.currents.dtype == np.float32
    assert np.array_equal(fused.currents, sequence)


def test_follows_v_times_the_perturbed_conductances(board: Board) -> None:
    """currents[k] = V·(G + sign_k·c_k·Δ(seed_k)) on the region, within the MVM tolerance,
    Δ regenerated here from each seed."""
    info = board.info
    region = region_of(info, DRIVEN_ROWS, 6)
    _programmed(board, tile_of(info, 3), region, seed=73)
    g = board.read_conductance(tile_of(info, 3), region).conductances.astype(np.float64)
    v = _inputs(region.rows, 3, info.read_voltage_max_v, seed=74)
    points = _points(span(info))
    result = board.perturbed_mvm(tile_of(info, 3), v, points, region)
    for k, p in enumerate(points):
        perturbed = g + p.sign * np.float32(p.amplitude_us) * rademacher(p.seed, region.shape)
        assert_currents_close(result.currents[k], v, perturbed, info)


def test_leaves_the_region_restored_and_counts_every_write(board: Board) -> None:
    """Afterwards the region reads back as programmed; each of its cells took one write per
    point and one for the restore, the cells around it none; the passes are points × batch."""
    info = board.info
    outer = region_of(info, 12, 12)
    region = Region(outer.row_offset + 2, outer.col_offset + 3, 6, 5)
    g = _programmed(board, tile_of(info, 1), region, seed=75)
    before_counts = write_counts(board, tile_of(info, 1), outer)
    before = board.stats()
    v = _inputs(region.rows, 5, info.read_voltage_max_v, seed=76)
    points = _points(span(info))
    result = board.perturbed_mvm(tile_of(info, 1), v, points, region)
    after = board.stats()
    cells = region.rows * region.cols
    assert result.cells_written == cells * (len(points) + 1)
    assert after.mvm_passes - before.mvm_passes == len(points) * len(v)
    assert after.cell_writes - before.cell_writes == cells * (len(points) + 1)
    assert result.cost.time_ns > 0.0 and result.cost.energy_nj > 0.0
    grown = write_counts(board, tile_of(info, 1), outer) - before_counts
    expected = np.zeros(outer.shape, np.int64)
    expected[2:8, 3:8] = len(points) + 1
    assert np.array_equal(grown, expected)
    assert_reads_back(board.read_conductance(tile_of(info, 1), region).conductances, g, info)


def test_whole_tile_when_no_region_is_given(board: Board) -> None:
    """No region: every row driven, every column read, the whole tile perturbed."""
    info = board.info
    whole = Region(0, 0, info.rows, info.cols)
    g = mid_range_g(info, np.random.default_rng(77), whole.shape)
    board.program(0, g)
    v = np.zeros((2, info.rows), np.float32)
    v[:, :4] = info.read_voltage_max_v / 4
    point = PerturbationPoint(seed=78, amplitude_us=AMPLITUDE_OF_SPAN * span(info), sign=1)
    result = board.perturbed_mvm(0, v, [point])
    assert result.currents.shape == (1, 2, info.cols)
    assert result.cells_written == 2 * info.rows * info.cols
    assert_reads_back(board.read_conductance(0).conductances, g, info)
