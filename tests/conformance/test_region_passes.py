"""Region-scoped MVM and TransposeMVM: a pass over part of a tile is the whole-tile pass of
the same voltages (0 V on every other driven line) cut to the region's outputs.

MVM over a region takes [batch, region rows] and gives [batch, region cols]; TransposeMVM
takes [batch, region cols] and gives [batch, region rows]; either costs one pass per
vector, as a whole-tile pass does. On an ideal board the ``ideal_only`` tests compare
bit for bit: with dyadic values every float32 evaluation order gives the same bits, so
the region result *equals* the whole-tile result's slice; with continuous values the two
products sum different numbers of terms in different orders and agree within float32
rounding (relative 1e-5 of Σ|V|·|G|). Every other board is held to the MVM contract of
board_checks.py. Every test runs on the local driver and through gRPC (``board``).
Bad regions are in bad_requests.py (over gRPC, board unchanged) and test_validation.py
(typed errors, nothing charged).
"""

from __future__ import annotations

import numpy as np
import pytest
from board_checks import (
    DRIVEN_ROWS,
    assert_currents_close,
    is_ideal,
    mid_range_g,
    sparse_voltages,
    tile_of,
    within,
)
from board_data import F32, dyadic_g, dyadic_v, uniform_g, uniform_v

from sidra.drivers import Board, BoardInfo, Region

REGIONS = {
    "65x10-layer": Region(3, 5, 65, 10),
    "one-cell": Region(17, 200, 1, 1),
    "to-the-edges": Region(200, 250),  # rows = cols = 0: to the tile's last row and column
    "full-height-strip": Region(0, 40, 0, 17),
    "full-width-strip": Region(90, 0, 3, 0),
}
"""Regions of a 256 × 256 tile (those of given size moved and cut to smaller tiles by
board_checks.within, open extents resolved)."""


def padded(v: F32, width: int, start: int) -> F32:
    """``v`` placed at lines ``start ..`` of a whole-tile input, 0 V elsewhere."""
    whole = np.zeros((len(v), width), np.float32)
    whole[:, start : start + v.shape[1]] = v
    return whole


def region_args(info: BoardInfo, name: str) -> tuple[Region, Region]:
    """(region as sent, region resolved): open extents are sent as given."""
    sent = REGIONS[name]
    if sent.rows == 0 or sent.cols == 0:
        return sent, sent.resolve(info.rows, info.cols)
    resolved = within(info, sent)
    return resolved, resolved


# -- exact on an ideal board ------------------------------------------------------------------


@pytest.mark.ideal_only
@pytest.mark.parametrize("name", list(REGIONS))
def test_region_pass_equals_the_whole_tile_slice_exactly(board: Board, name: str) -> None:
    """Dyadic G and V: MVM and TransposeMVM over the region equal, bit for bit, the
    whole-tile result of the same voltages (0 V elsewhere) cut to the region, and V·G."""
    info = board.info
    sent, region = region_args(info, name)
    rows, cols = region.slices
    rng = np.random.default_rng(900)
    g = dyadic_g(rng, (info.rows, info.cols))
    board.program(tile_of(info, 2), g)

    v = dyadic_v(rng, (6, region.rows))
    got = board.mvm(tile_of(info, 2), v, sent).currents
    whole = board.mvm(tile_of(info, 2), padded(v, info.rows, region.row_offset)).currents
    assert got.dtype == np.float32 and got.shape == (6, region.cols)
    assert np.array_equal(got, whole[:, cols])
    exact = (v.astype(np.float64) @ g[rows, cols].astype(np.float64)).astype(np.float32)
    assert np.array_equal(got, exact)

    vt = dyadic_v(rng, (5, region.cols))
    got_t = board.transpose_mvm(tile_of(info, 2), vt, sent).currents
    whole_t = board.transpose_mvm(
        tile_of(info, 2), padded(vt, info.cols, region.col_offset)
    ).currents
    assert got_t.dtype == np.float32 and got_t.shape == (5, region.rows)
    assert np.array_equal(got_t, whole_t[:, rows])
    exact_t = (vt.astype(np.float64) @ g[rows, cols].T.astype(np.float64)).astype(np.float32)
    assert np.array_equal(got_t, exact_t)


@pytest.mark.ideal_only
@pytest.mark.parametrize("batch", [1, 64])
def test_region_pass_matches_the_whole_tile_within_float32_rounding(
    board: Board, batch: int
) -> None:
    """Continuous G and V: the region result and the whole-tile slice agree within float32
    accumulation error (they sum their terms in different orders), both directions."""
    info = board.info
    region = within(info, REGIONS["65x10-layer"])
    rows, cols = region.slices
    rng = np.random.default_rng(910 + batch)
    g = uniform_g(rng, (info.rows, info.cols))
    board.program(tile_of(info, 1), g)
    v = uniform_v(rng, (batch, region.rows))
    got = board.mvm(tile_of(info, 1), v, region).currents
    whole = board.mvm(tile_of(info, 1), padded(v, info.rows, region.row_offset)).currents[:, cols]
    _assert_float32_close(got, whole, v, g[rows, cols])
    vt = uniform_v(rng, (batch, region.cols))
    got_t = board.transpose_mvm(tile_of(info, 1), vt, region).currents
    whole_t = board.transpose_mvm(
        tile_of(info, 1), padded(vt, info.cols, region.col_offset)
    ).currents[:, rows]
    _assert_float32_close(got_t, whole_t, vt, g[rows, cols].T)


def _assert_float32_close(got: F32, whole: F32, v: F32, g: np.ndarray) -> None:
    scale = float((np.abs(v.astype(np.float64)) @ np.abs(g.astype(np.float64))).max())
    assert got.shape == whole.shape
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.ideal_only
def test_a_region_pass_costs_one_pass_per_vector(board: Board) -> None:
    """A small region is one analog pass per vector like the whole tile (the hardware drives
    a pass either way): mvm_passes and the modeled time count vectors, not cells."""
    info = board.info
    region = within(info, REGIONS["one-cell"])
    before = board.stats()
    forward = board.mvm(0, np.zeros((5, 1), np.float32), region)
    backward = board.transpose_mvm(0, np.zeros((3, 1), np.float32), region)
    after = board.stats()
    assert after.mvm_passes - before.mvm_passes == 8
    assert forward.cost.time_ns == pytest.approx(5 * info.timing.mvm_pass_ns)
    assert backward.cost.time_ns == pytest.approx(3 * info.timing.mvm_pass_ns)


# -- any board ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 16])
def test_region_mvm_follows_v_times_g(board: Board, batch: int) -> None:
    """Region MVM currents[b, j] = Σ_i V[b, i]·G[i, j] over the region's rows and columns
    (G as read back) within the MVM contract; shape [batch, region cols], nothing saturated,
    one pass per vector."""
    info = board.info
    region = within(info, Region(info.rows // 4, info.cols // 3, 3 * DRIVEN_ROWS, 12))
    rng = np.random.default_rng(920 + batch)
    board.program(tile_of(info, 2), mid_range_g(info, rng, region.shape), **_at(region))
    g = board.read_conductance(tile_of(info, 2), region).conductances
    v = sparse_voltages(info, rng, batch, region.rows, DRIVEN_ROWS)
    passes = board.stats().mvm_passes
    result = board.mvm(tile_of(info, 2), v, region)
    assert result.currents.shape == (batch, region.cols)
    assert result.saturated_outputs == 0
    assert board.stats().mvm_passes - passes == batch
    assert_currents_close(result.currents, v, g, info)


@pytest.mark.parametrize("batch", [1, 16])
def test_region_transpose_mvm_follows_v_times_g_transposed(board: Board, batch: int) -> None:
    """Region TransposeMVM currents[b, i] = Σ_j V[b, j]·G[i, j]: region columns in, region
    rows out (a region that is not square tells the directions apart)."""
    info = board.info
    region = within(info, Region(info.rows // 3, info.cols // 4, 12, 3 * DRIVEN_ROWS))
    rng = np.random.default_rng(930 + batch)
    board.program(tile_of(info, 3), mid_range_g(info, rng, region.shape), **_at(region))
    g = board.read_conductance(tile_of(info, 3), region).conductances
    v = sparse_voltages(info, rng, batch, region.cols, DRIVEN_ROWS)
    result = board.transpose_mvm(tile_of(info, 3), v, region)
    assert result.currents.shape == (batch, region.rows)
    assert result.saturated_outputs == 0
    assert_currents_close(result.currents, v, g.T, info)


def test_a_whole_tile_region_is_a_plain_pass(board: Board) -> None:
    """Region() and the tile's full extent take and give whole-tile shapes (bit for bit the
    plain pass on an ideal board)."""
    info = board.info
    v = np.zeros((2, info.rows), np.float32)
    v[:, :DRIVEN_ROWS] = info.read_voltage_max_v / 4
    plain = board.mvm(0, v).currents
    for region in (Region(), Region(0, 0, info.rows, info.cols)):
        got = board.mvm(0, v, region).currents
        assert got.shape == (2, info.cols)
        if is_ideal(info):
            assert np.array_equal(got, plain)
    vt = np.zeros((2, info.cols), np.float32)
    assert board.transpose_mvm(0, vt, Region()).currents.shape == (2, info.rows)


def _at(region: Region) -> dict[str, int]:
    return {"row_offset": region.row_offset, "col_offset": region.col_offset}
