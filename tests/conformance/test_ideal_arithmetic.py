"""Every board operation checked bit for bit against numpy on an ideal board.

The ideal preset has no noise and programs every target exactly, so the board
must reproduce the contract's arithmetic: I = V·G, I = V·Gᵀ, and
G_prog + sign·c·Δ(seed) for perturbations. Where a test asserts exact
equality its values are dyadic (multiples of powers of two) so every legal
float32 evaluation order gives the same bits. Every test runs on the local
driver and through gRPC (``board``), on a board that earlier tests have used:
each programs what it reads and counts as differences. On any other board these
are skipped as ideal-only; test_board_contract.py checks the same operations with
tolerances.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest
from board_data import F32, dyadic_g, dyadic_v, uniform_g, uniform_v

from sidra.client import Region, rademacher
from sidra.drivers import Board
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.training.gradients import numerical_jacobian

pytestmark = pytest.mark.ideal_only

# The ideal preset's geometry and window (checked by test_board_info_describes_ideal_preset).
ROWS = COLS = 256
TILES = 4
G_MIN, G_MAX = 1.0, 40.0
V_MAX = 0.2


def assert_currents(got: F32, v: F32, g: npt.NDArray[np.floating]) -> None:
    """got == v @ g within float32 accumulation error (reference computed in float64)."""
    v64, g64 = v.astype(np.float64), np.asarray(g, dtype=np.float64)
    ref = v64 @ g64
    scale = float((np.abs(v64) @ np.abs(g64)).max())
    assert got.dtype == np.float32
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * scale)


def read_tile(board: Board, tile: int) -> F32:
    return board.read_conductance(tile).conductances


# -- GetBoardInfo --------------------------------------------------------------------------


def test_board_info_describes_ideal_preset(board: Board) -> None:
    """GetBoardInfo reports the ideal geometry, ranges, preset and a versioned profile."""
    info = board.info
    assert info.tile_count == TILES
    assert (info.rows, info.cols) == (ROWS, COLS)
    assert (info.g_min_us, info.g_max_us) == (G_MIN, G_MAX)
    assert info.read_voltage_max_v == pytest.approx(V_MAX, abs=0)
    assert info.emulated is True
    assert info.emulator_preset == "ideal"
    assert (info.dac_bits, info.adc_bits) == (0, 0)
    assert info.serial_number.startswith("EMU-")  # the emulator's seed follows
    assert info.model and info.firmware_version
    assert isinstance(info.profile, dict)
    assert isinstance(info.profile["schema_version"], int) and info.profile["schema_version"] >= 1
    assert info.profile["preset"] == "ideal"
    assert info.profile["geometry"] == {"tiles": TILES, "rows": ROWS, "cols": COLS}
    timing = info.timing
    assert (timing.mvm_pass_ns, timing.write_pass_ns, timing.verify_read_ns) == (10, 100, 10)
    assert timing.board_power_w == 3.0


def test_board_info_profile_json_on_the_wire(stub: pb_grpc.BoardServiceStub) -> None:
    """The raw profile_json field is a JSON object carrying schema_version."""
    reply = stub.GetBoardInfo(pb.GetBoardInfoRequest())
    profile = json.loads(reply.info.profile_json)
    assert isinstance(profile["schema_version"], int) and profile["schema_version"] >= 1
    assert profile["conductance"] == {"g_min_us": G_MIN, "g_max_us": G_MAX}
    assert reply.info.tile_count == TILES


def cost_delta(after: float, before: float, expected: float) -> None:
    """after - before == expected, to the float64 rounding of a long-running total."""
    assert after - before == pytest.approx(expected, rel=1e-9, abs=1e-12 * abs(after))


def test_stats_count_passes_writes_and_modeled_cost(board: Board) -> None:
    """mvm_passes counts batch vectors (both directions), cell_writes counts written cells,
    total_cost adds each operation's modeled time and energy (ns × W = nJ); all as
    differences, the board having served earlier tests."""
    timing = board.info.timing
    # Cells already on target need no pulse: start the programmed block from another value.
    board.program(2, np.full((4, 6), 5.0, np.float32), row_offset=3, col_offset=9)
    s0 = board.stats()
    board.mvm(0, np.zeros((5, ROWS), np.float32))
    board.transpose_mvm(1, np.zeros((3, COLS), np.float32))
    s1 = board.stats()
    assert s1.mvm_passes - s0.mvm_passes == 8
    assert s1.cell_writes == s0.cell_writes
    cost_delta(s1.total_cost.time_ns, s0.total_cost.time_ns, 8 * timing.mvm_pass_ns)

    board.program(2, np.full((4, 6), 7.0, np.float32), row_offset=3, col_offset=9)
    s2 = board.stats()
    assert s2.cell_writes - s0.cell_writes == 24  # one pulse per cell on the ideal preset
    assert s2.mvm_passes == s1.mvm_passes

    board.perturb(2, seed=5, amplitude_us=1.0, region=Region(0, 0, 3, 5))
    board.restore(3)
    s3 = board.stats()
    assert s3.cell_writes - s0.cell_writes == 24 + 15 + ROWS * COLS
    expected_ns = (
        8 * timing.mvm_pass_ns
        + (timing.write_pass_ns + timing.verify_read_ns)
        + 2 * timing.write_pass_ns
    )
    cost_delta(s3.total_cost.time_ns, s0.total_cost.time_ns, expected_ns)
    cost_delta(s3.total_cost.energy_nj, s0.total_cost.energy_nj, expected_ns * timing.board_power_w)

    board.read_conductance(0, Region(0, 0, 4, 4))
    s4 = board.stats()
    assert (s4.mvm_passes, s4.cell_writes) == (s3.mvm_passes, s3.cell_writes)  # reads write nothing


# -- Program and ReadConductance -------------------------------------------------------------


def test_program_whole_tile_reads_back_exactly(board: Board) -> None:
    """Programming a whole tile reports a perfect write and reads back bit-identical."""
    g = uniform_g(np.random.default_rng(101), (ROWS, COLS))
    board.program(1, np.full((ROWS, COLS), G_MIN, np.float32))  # no cell on target yet
    report = board.program(1, g)
    assert report.cells_written == ROWS * COLS
    assert report.pulses == ROWS * COLS
    assert report.verify_iterations == 1
    assert report.rms_error_us == 0.0
    assert report.max_error_us == 0.0
    assert report.unconverged_cells == 0
    timing = board.info.timing
    assert report.cost.time_ns == pytest.approx(timing.write_pass_ns + timing.verify_read_ns)
    assert report.cost.energy_nj == pytest.approx(report.cost.time_ns * timing.board_power_w)

    read = board.read_conductance(1)
    assert read.conductances.dtype == np.float32
    assert np.array_equal(read.conductances, g)
    assert read.cost.time_ns == pytest.approx(ROWS * board.info.timing.mvm_pass_ns)


@pytest.mark.parametrize(
    ("row_offset", "col_offset", "rows", "cols"),
    [(0, 0, 1, 1), (100, 200, 7, 11), (ROWS - 9, COLS - 13, 9, 13), (5, 0, 3, COLS)],
)
def test_program_region_at_offset(
    board: Board, row_offset: int, col_offset: int, rows: int, cols: int
) -> None:
    """A rectangular Program writes only its region; every other cell keeps its value."""
    rng = np.random.default_rng(202)
    base = uniform_g(rng, (ROWS, COLS))
    board.program(0, base)
    patch = uniform_g(rng, (rows, cols))

    report = board.program(0, patch, row_offset=row_offset, col_offset=col_offset)
    assert report.cells_written == rows * cols
    assert (report.rms_error_us, report.max_error_us, report.unconverged_cells) == (0.0, 0.0, 0)

    region = Region(row_offset, col_offset, rows, cols)
    assert np.array_equal(board.read_conductance(0, region).conductances, patch)
    expected = base.copy()
    expected[region.slices] = patch
    assert np.array_equal(read_tile(board, 0), expected)


def test_read_region_with_open_extent(board: Board) -> None:
    """Region rows/cols = 0 mean "to the tile edge"; reads return exactly that sub-array."""
    g = uniform_g(np.random.default_rng(303), (ROWS, COLS))
    board.program(3, g)
    got = board.read_conductance(3, Region(row_offset=250, col_offset=240)).conductances
    assert got.shape == (6, 16)
    assert np.array_equal(got, g[250:, 240:])
    got = board.read_conductance(3, Region(row_offset=17, rows=2)).conductances
    assert np.array_equal(got, g[17:19, :])


def test_tiles_are_independent(board: Board) -> None:
    """Programming one tile leaves the other tiles untouched."""
    rng = np.random.default_rng(404)
    gs = [uniform_g(rng, (ROWS, COLS)) for _ in range(4)]
    for tile, g in enumerate(gs):
        board.program(tile, g)
    board.program(2, np.full((ROWS, COLS), 9.5, np.float32))
    for tile in (0, 1, 3):
        assert np.array_equal(read_tile(board, tile), gs[tile])


@pytest.mark.fresh_board
def test_power_up_state_is_g_min(fresh_board: Board) -> None:
    board = fresh_board
    """A fresh board holds g_min_us in every cell, and that is G_prog: RESTORE after an APPLY
    on a never-programmed tile returns to g_min; APPLY +c lands on g_min ± c, clipped below."""
    for tile in range(TILES):
        assert np.array_equal(read_tile(board, tile), np.full((ROWS, COLS), G_MIN, np.float32))
    delta = rademacher(SEED, (ROWS, COLS))
    report = board.perturb(1, seed=SEED, amplitude_us=C, sign=+1)
    assert report.clipped_cells == int(np.count_nonzero(delta < 0))
    assert np.array_equal(read_tile(board, 1), np.where(delta > 0, G_MIN + C, G_MIN))
    board.restore(1)
    assert np.array_equal(read_tile(board, 1), np.full((ROWS, COLS), G_MIN, np.float32))
    v = uniform_v(np.random.default_rng(305), (2, ROWS))
    assert_currents(board.mvm(1, v).currents, v, np.full((ROWS, COLS), G_MIN))


def test_conductance_bounds_are_inclusive(board: Board) -> None:
    """g_min_us and g_max_us themselves are programmable."""
    g = np.array([[G_MIN, G_MAX], [G_MAX, G_MIN]], np.float32)
    board.program(0, g, row_offset=10, col_offset=10)
    assert np.array_equal(board.read_conductance(0, Region(10, 10, 2, 2)).conductances, g)


# -- MVM and TransposeMVM ----------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 64])
def test_mvm_equals_v_times_g(board: Board, batch: int) -> None:
    """MVM currents[b, j] = Σ_i V[b, i]·G[i, j] (µA = V × µS), one pass per vector."""
    rng = np.random.default_rng(500 + batch)
    g = uniform_g(rng, (ROWS, COLS))
    v = uniform_v(rng, (batch, ROWS))
    board.program(2, g)
    result = board.mvm(2, v)
    assert_currents(result.currents, v, g)
    assert result.saturated_outputs == 0
    assert result.cost.time_ns == pytest.approx(batch * board.info.timing.mvm_pass_ns)


@pytest.mark.parametrize("batch", [1, 64])
def test_transpose_mvm_equals_v_times_g_transposed(board: Board, batch: int) -> None:
    """TransposeMVM currents[b, i] = Σ_j V[b, j]·G[i, j], i.e. V·Gᵀ (G is not symmetric)."""
    rng = np.random.default_rng(600 + batch)
    g = uniform_g(rng, (ROWS, COLS))
    v = uniform_v(rng, (batch, COLS))
    board.program(1, g)
    result = board.transpose_mvm(1, v)
    assert_currents(result.currents, v, g.T)
    assert result.saturated_outputs == 0
    assert result.cost.time_ns == pytest.approx(batch * board.info.timing.mvm_pass_ns)
    # Guard against a test that cannot tell the two directions apart.
    assert not np.allclose(v @ g, v @ g.T, rtol=1e-3)


def test_mvm_at_full_scale_voltage(board: Board) -> None:
    """±read_voltage_max_v exactly is allowed and gives exact results on dyadic G."""
    g = dyadic_g(np.random.default_rng(700), (ROWS, COLS))
    board.program(0, g)
    v = np.where(np.random.default_rng(701).random((4, ROWS)) < 0.5, -V_MAX, V_MAX)
    v = v.astype(np.float32)
    assert_currents(board.mvm(0, v).currents, v, g)
    assert_currents(board.transpose_mvm(0, v).currents, v, g.T)


def test_mvm_exact_on_dyadic_values(board: Board) -> None:
    """With every product and partial sum representable in float32 the result is bit-exact."""
    rng = np.random.default_rng(702)
    g, v = dyadic_g(rng, (ROWS, COLS)), dyadic_v(rng, (8, ROWS))
    board.program(3, g)
    ref = (v.astype(np.float64) @ g.astype(np.float64)).astype(np.float32)
    assert np.array_equal(board.mvm(3, v).currents, ref)
    ref_t = (v.astype(np.float64) @ g.T.astype(np.float64)).astype(np.float32)
    assert np.array_equal(board.transpose_mvm(3, v).currents, ref_t)


# -- "The Jacobian of an MVM is the matrix itself" -------------------------------------------

JAC_ROW0, JAC_COL0, JAC_ROWS, JAC_COLS = 40, 100, 8, 6
JAC_H = 2.0**-7  # exact in float32; x0 ± h stays inside ±0.2 V


def _jacobian_setup(board: Board) -> tuple[F32, F32]:
    rng = np.random.default_rng(800)
    board.program(1, uniform_g(rng, (ROWS, COLS)))
    block = dyadic_g(rng, (JAC_ROWS, JAC_COLS))
    board.program(1, block, row_offset=JAC_ROW0, col_offset=JAC_COL0)
    x0 = (rng.integers(-20, 21, JAC_ROWS) / 256).astype(np.float32)  # |x0| ≤ 0.079 V
    return block, x0


def test_numerical_jacobian_of_mvm_is_g(board: Board) -> None:
    """Central differences of v -> MVM(v) over 8 driven rows / 6 read columns give G[:8, :6]."""
    block, x0 = _jacobian_setup(board)

    def forward(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        v = np.zeros((1, ROWS), np.float32)  # undriven rows are 0 V
        v[0, JAC_ROW0 : JAC_ROW0 + JAC_ROWS] = x
        return board.mvm(1, v).currents[0, JAC_COL0 : JAC_COL0 + JAC_COLS]

    jac = numerical_jacobian(forward, x0, h=JAC_H)  # J[j, i] = ∂I_j / ∂v_i
    assert jac.shape == (JAC_COLS, JAC_ROWS)
    np.testing.assert_allclose(jac.T, block, rtol=1e-6, atol=0)


def test_numerical_jacobian_of_transpose_mvm_is_g_transposed(board: Board) -> None:
    """Central differences of u -> TransposeMVM(u) over 6 columns / 8 rows give Gᵀ's block."""
    block, _ = _jacobian_setup(board)
    u0 = (np.random.default_rng(801).integers(-20, 21, JAC_COLS) / 256).astype(np.float32)

    def backward(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        v = np.zeros((1, COLS), np.float32)
        v[0, JAC_COL0 : JAC_COL0 + JAC_COLS] = u
        return board.transpose_mvm(1, v).currents[0, JAC_ROW0 : JAC_ROW0 + JAC_ROWS]

    jac = numerical_jacobian(backward, u0, h=JAC_H)  # J[i, j] = ∂I_i / ∂u_j = G[i, j]
    assert jac.shape == (JAC_ROWS, JAC_COLS)
    np.testing.assert_allclose(jac, block, rtol=1e-6, atol=0)


# -- Perturb ---------------------------------------------------------------------------------

SEED = 0x5EED_1234_ABCD_0001
C = 0.5  # µS; dyadic, so G ± C is exact on the 1/16 grid


def test_perturb_apply_equals_client_regenerated_delta(board: Board) -> None:
    """APPLY +1 sets G_prog + c·Δ with Δ regenerated client-side from the seed; APPLY -1 sets
    G_prog − c·Δ (relative to the programmed state, not cumulative); RESTORE gives G_prog."""
    g = dyadic_g(np.random.default_rng(900), (ROWS, COLS), lo=2.0, hi=39.0)
    board.program(0, g)
    delta = rademacher(SEED, (ROWS, COLS))

    plus = board.perturb(0, seed=SEED, amplitude_us=C, sign=+1)
    assert (plus.cells_written, plus.clipped_cells) == (ROWS * COLS, 0)
    assert plus.cost.time_ns == pytest.approx(board.info.timing.write_pass_ns)
    assert np.array_equal(read_tile(board, 0), g + np.float32(C) * delta)

    minus = board.perturb(0, seed=SEED, amplitude_us=C, sign=-1)
    assert (minus.cells_written, minus.clipped_cells) == (ROWS * COLS, 0)
    assert np.array_equal(read_tile(board, 0), g - np.float32(C) * delta)

    restored = board.restore(0)
    assert (restored.cells_written, restored.clipped_cells) == (ROWS * COLS, 0)
    assert np.array_equal(read_tile(board, 0), g)


@pytest.mark.parametrize("seed", [0, 1, 2**63, 2**64 - 1])
def test_perturb_any_uint64_seed(board: Board, seed: int) -> None:
    """Every 64-bit seed crosses the wire intact: the board applies rademacher(seed) on an
    odd-shaped region (3 x 37, not a multiple of 64 cells)."""
    g = dyadic_g(np.random.default_rng(906), (ROWS, COLS), lo=2.0, hi=39.0)
    board.program(1, g)
    region = Region(7, 50, 3, 37)
    board.perturb(1, seed=seed, amplitude_us=C, sign=-1, region=region)
    got = board.read_conductance(1, region).conductances
    assert np.array_equal(got, g[region.slices] - np.float32(C) * rademacher(seed, (3, 37)))


def test_perturb_region_uses_region_shaped_delta(board: Board) -> None:
    """A region perturbation uses Δ(seed, region shape) and leaves every other cell unchanged;
    restoring a disjoint region does not undo it, restoring the region does."""
    g = dyadic_g(np.random.default_rng(901), (ROWS, COLS), lo=2.0, hi=39.0)
    board.program(2, g)
    region = Region(10, 20, 5, 37)
    delta = rademacher(SEED, (5, 37))

    report = board.perturb(2, seed=SEED, amplitude_us=C, sign=+1, region=region)
    assert (report.cells_written, report.clipped_cells) == (5 * 37, 0)
    expected = g.copy()
    expected[region.slices] += np.float32(C) * delta
    assert np.array_equal(read_tile(board, 2), expected)
    assert np.array_equal(
        board.read_conductance(2, region).conductances, g[region.slices] + np.float32(C) * delta
    )

    other = Region(100, 100, 3, 3)
    assert board.restore(2, other).cells_written == 9
    assert np.array_equal(read_tile(board, 2), expected)

    assert board.restore(2, region).cells_written == 5 * 37
    assert np.array_equal(read_tile(board, 2), g)


@pytest.mark.parametrize("sign", [+1, -1])
def test_perturb_clips_at_conductance_bounds(board: Board, sign: int) -> None:
    """Cells pushed outside [g_min, g_max] are clipped to the bound and counted exactly; cells
    landing exactly on a bound are not clipped; RESTORE brings back the unclipped targets."""
    c = 2.0
    rng = np.random.default_rng(902)
    g = dyadic_g(rng, (ROWS, COLS), lo=5.0, hi=35.0)
    # Top-left 4 x 16 block: rows near g_min, on g_min + c, near g_max, on g_max - c.
    g[0, :16] = 1.5
    g[1, :16] = G_MIN + c
    g[2, :16] = 39.0
    g[3, :16] = G_MAX - c
    board.program(3, g)
    region = Region(0, 0, 4, 16)
    delta = rademacher(SEED, region.shape)

    raw = g[region.slices] + np.float32(sign * c) * delta
    expected_clipped = int(np.count_nonzero((raw < G_MIN) | (raw > G_MAX)))
    assert 0 < expected_clipped < 32  # the test exercises clipping in one direction only

    report = board.perturb(3, seed=SEED, amplitude_us=c, sign=sign, region=region)
    assert report.cells_written == 64
    assert report.clipped_cells == expected_clipped
    expected = g.copy()
    expected[region.slices] = np.clip(raw, G_MIN, G_MAX)
    assert np.array_equal(read_tile(board, 3), expected)

    board.restore(3)
    assert np.array_equal(read_tile(board, 3), g)


def test_mvm_under_perturbation(board: Board) -> None:
    """While perturbed, MVM = V·(G + cΔ) and TransposeMVM = V·(G + cΔ)ᵀ; after RESTORE, V·G."""
    rng = np.random.default_rng(903)
    g = uniform_g(rng, (ROWS, COLS), lo=3.0, hi=38.0)
    v = uniform_v(rng, (16, ROWS))
    c = 0.8
    board.program(1, g)
    board.perturb(1, seed=77, amplitude_us=c, sign=+1)
    perturbed = g.astype(np.float64) + c * rademacher(77, (ROWS, COLS))

    assert_currents(board.mvm(1, v).currents, v, perturbed)
    assert_currents(board.transpose_mvm(1, v).currents, v, perturbed.T)
    # The perturbation is large enough to be visible against float32 error.
    assert not np.allclose(board.mvm(1, v).currents, v @ g, rtol=1e-4)

    board.restore(1)
    assert_currents(board.mvm(1, v).currents, v, g)


def test_program_clears_perturbation_in_its_region(board: Board) -> None:
    """Program writes new targets and clears the perturbation there; elsewhere it stays."""
    g = dyadic_g(np.random.default_rng(904), (ROWS, COLS), lo=2.0, hi=39.0)
    board.program(0, g)
    board.perturb(0, seed=3, amplitude_us=C, sign=+1)
    perturbed = g + np.float32(C) * rademacher(3, (ROWS, COLS))

    patch = np.full((4, 4), 12.5, np.float32)
    board.program(0, patch, row_offset=8, col_offset=8)
    expected = perturbed.copy()
    expected[8:12, 8:12] = patch
    assert np.array_equal(read_tile(board, 0), expected)

    board.restore(0)
    expected = g.copy()
    expected[8:12, 8:12] = patch
    assert np.array_equal(read_tile(board, 0), expected)


def test_restore_ignores_seed_amplitude_and_sign(
    stub: pb_grpc.BoardServiceStub, board: Board
) -> None:
    """RESTORE ignores seed, amplitude_us and sign, even values APPLY would reject."""
    g = dyadic_g(np.random.default_rng(905), (ROWS, COLS), lo=2.0, hi=39.0)
    board.program(2, g)
    board.perturb(2, seed=1, amplitude_us=C)
    reply = stub.Perturb(
        pb.PerturbRequest(
            tile=2,
            mode=pb.PERTURB_MODE_RESTORE,
            seed=9,
            amplitude_us=float("nan"),
            sign=0,
        )
    )
    assert reply.cells_written == ROWS * COLS
    assert reply.clipped_cells == 0
    assert np.array_equal(read_tile(board, 2), g)
