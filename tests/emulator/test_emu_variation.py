"""Static device-to-device variation: conductance gain spread, stuck cells, finite on/off ratio.

Defects are drawn once per board from its seed and stay put through every write.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from board_data import G_MAX, G_MIN, uniform_g, uniform_v
from emu_support import make_driver, make_profile, matmul64, read64, std_bound, z_bound

from sidra.drivers import Region
from sidra.emulator.config import (
    BoardProfile,
    ConductanceRange,
    Geometry,
    Programming,
    StuckCells,
    Variation,
)

BIG = Geometry(tiles=2, rows=128, cols=128)


def test_gain_spread_is_the_std_of_measured_over_programmed() -> None:
    """measured/programmed = 1 + s·ξ per cell: std s, mean 1, static, the same in MVM.

    16384 cells per tile: SE of the std 0.55 % (tolerance 3 %), of the mean s/128.
    """
    spread = 0.05
    board = make_driver(make_profile(geometry=BIG, variation=Variation(gain_spread=spread)))
    rng = np.random.default_rng(31)
    g = uniform_g(rng, (128, 128), 5.0, 35.0)
    ratios = []
    for tile in (0, 1):
        report = board.program(tile, g)
        # The verify loop does not see the mismatch: programming reports no error.
        assert report.unconverged_cells == 0 and report.max_error_us == 0.0
        ratio = read64(board, tile) / g
        assert float(ratio.std()) == pytest.approx(spread, rel=std_bound(ratio.size))
        assert abs(float(ratio.mean()) - 1.0) < spread * z_bound(ratio.size)
        ratios.append(ratio)

    # Static: reprogramming tile 0 to other values keeps each cell's gain.
    g2 = uniform_g(rng, (128, 128), 5.0, 35.0)
    board.program(0, g2)
    np.testing.assert_allclose(read64(board, 0) / g2, ratios[0], rtol=1e-6)
    # Each tile has its own cells: the gains of the two tiles are uncorrelated.
    corr = np.corrcoef(ratios[0].ravel(), ratios[1].ravel())[0, 1]
    assert abs(float(corr)) < z_bound(g.size)
    # MVM conducts through the same gains the read shows.
    v = uniform_v(rng, (64, 128))
    expected = matmul64(v, read64(board, 0))
    np.testing.assert_allclose(
        board.mvm(0, v).currents, expected, rtol=0, atol=2e-6 * 0.2 * 128 * 40
    )


def test_stuck_cells_fractions_and_behaviour() -> None:
    """Stuck-at-min / stuck-at-max cells occur at the configured fractions (binomial), read
    and conduct g_min / g_max whatever is written, and show as unconverged in Program.

    n = 32768 cells over two tiles; count k ~ Binomial(n, f): tolerance 5·√(n·f·(1 − f)).
    """
    f_min, f_max, max_iterations = 0.02, 0.03, 4
    board = make_driver(
        make_profile(
            geometry=BIG,
            variation=Variation(stuck_at_min_fraction=f_min, stuck_at_max_fraction=f_max),
            programming=Programming(max_iterations=max_iterations),
        )
    )
    target = np.full((128, 128), 20.0, np.float32)
    masks = []
    for tile in (0, 1):
        report = board.program(tile, target)
        measured = read64(board, tile)
        low, high = measured == G_MIN, measured == G_MAX
        assert np.all(low | high | (measured == 20.0))
        stuck = int(low.sum() + high.sum())
        assert report.unconverged_cells == stuck
        # Healthy cells converge on the first pulse; stuck ones are pulsed to the budget.
        assert report.pulses == target.size + (max_iterations - 1) * stuck
        assert report.verify_iterations == max_iterations
        assert report.max_error_us == pytest.approx(np.abs(measured - 20.0).max())
        assert report.max_error_us == pytest.approx(G_MAX - 20.0)  # some cell is stuck high
        masks.append((low, high))

    n = 2 * target.size
    for frac, k in (
        (f_min, sum(m[0].sum() for m in masks)),
        (f_max, sum(m[1].sum() for m in masks)),
    ):
        assert abs(int(k) - n * frac) < 5 * np.sqrt(n * frac * (1 - frac)), (frac, k)
    # The two tiles have different defect maps.
    assert not np.array_equal(masks[0][0], masks[1][0])

    low, high = masks[0]
    stuck_values = np.where(low, G_MIN, G_MAX)
    healthy = ~(low | high)
    # Perturb and a new Program leave stuck cells where they are.
    board.perturb(0, seed=9, amplitude_us=3.0)
    measured = read64(board, 0)
    np.testing.assert_array_equal(measured[~healthy], stuck_values[~healthy])
    assert np.all(np.abs(measured[healthy] - 20.0) == 3.0)
    board.program(0, np.full((128, 128), 10.0, np.float32))
    measured = read64(board, 0)
    np.testing.assert_array_equal(measured[~healthy], stuck_values[~healthy])
    np.testing.assert_array_equal(measured[healthy], 10.0)
    # They also conduct at their stuck value: a one-hot row input reads the row back.
    v = np.zeros((128, 128), np.float32)
    v[np.arange(128), np.arange(128)] = 0.125
    np.testing.assert_allclose(board.mvm(0, v).currents, 0.125 * measured, rtol=1e-6)
    # Defects survive a second Program of a sub-region too.
    board.program(0, np.full((8, 8), 30.0, np.float32), row_offset=0, col_offset=0)
    sub = board.read_conductance(0, Region(0, 0, 8, 8)).conductances
    np.testing.assert_array_equal(sub, np.where(healthy[:8, :8], 30.0, stuck_values[:8, :8]))


@pytest.mark.parametrize("g_min", [G_MIN, 0.25])
def test_finite_on_off_ratio_unprogrammed_tile_conducts_g_min(g_min: float) -> None:
    """A tile left at g_min (never programmed) is not an open circuit: I_j = g_min·Σ_i V_i,
    and the transpose I_i = g_min·Σ_j V_j."""
    board = make_driver(make_profile(conductance=ConductanceRange(g_min_us=g_min, g_max_us=G_MAX)))
    rng = np.random.default_rng(32)
    v = uniform_v(rng, (32, 64))
    expected = g_min * v.astype(np.float64).sum(axis=1, keepdims=True)
    out = board.mvm(1, v).currents
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), rtol=1e-5, atol=1e-6)
    vt = uniform_v(rng, (32, 32))
    out_t = board.transpose_mvm(1, vt).currents
    expected_t = g_min * vt.astype(np.float64).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        out_t, np.broadcast_to(expected_t, out_t.shape), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(board.read_conductance(1).conductances, g_min)


def test_stuck_maps_fix_exactly_the_listed_cells_and_leave_other_tiles_drawn() -> None:
    """A tile with a stuck map (schema 2) has exactly the listed stuck cells, whatever the
    fractions say; a tile without one keeps the cells its seed draws, and so does every
    other random number of the board (the draw is made either way)."""
    fractions = Variation(stuck_at_min_fraction=0.05, stuck_at_max_fraction=0.05)
    mapped = Variation(
        stuck_at_min_fraction=0.05,
        stuck_at_max_fraction=0.05,
        stuck_maps=(StuckCells(tile=0, at_min=((0, 1), (5, 7)), at_max=((3, 3),)),),
    )
    target = np.full((128, 128), 20.0, np.float32)
    boards = [make_driver(make_profile(geometry=BIG, variation=v)) for v in (fractions, mapped)]
    for board in boards:
        board.program(0, target)
        board.program(1, target)
    measured = read64(boards[1], 0)
    expected = np.full((128, 128), 20.0)
    expected[0, 1] = expected[5, 7] = G_MIN
    expected[3, 3] = G_MAX
    np.testing.assert_array_equal(measured, expected)
    np.testing.assert_array_equal(read64(boards[0], 1), read64(boards[1], 1))


@pytest.mark.parametrize(
    ("maps", "words"),
    [
        ((StuckCells(tile=2),), "tile: got 2"),
        ((StuckCells(tile=0), StuckCells(tile=0)), "listed once"),
        ((StuckCells(tile=0, at_max=((128, 0),)),), "cell [128, 0] outside"),
    ],
)
def test_stuck_maps_outside_the_board_are_refused(maps: tuple[StuckCells, ...], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        make_profile(geometry=BIG, variation=Variation(stuck_maps=maps))


def test_stuck_maps_need_schema_version_2_and_a_cell_at_one_bound() -> None:
    with pytest.raises(ValueError, match="stuck_maps needs schema_version >= 2, got 1"):
        BoardProfile(schema_version=1, variation=Variation(stuck_maps=(StuckCells(tile=0),)))
    with pytest.raises(ValueError, match=re.escape("cell [1, 2] listed both")):
        StuckCells(tile=0, at_min=((1, 2),), at_max=((1, 2),))
