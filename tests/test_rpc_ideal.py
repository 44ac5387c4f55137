"""Every BoardService RPC over real loopback gRPC, checked against numpy on the `ideal` preset.

The ideal preset has no noise and programs every target exactly, so the board
must reproduce the contract's arithmetic: I = V·G, I = V·Gᵀ, and
G_prog + sign·c·Δ(seed) for perturbations. Where a test asserts exact
equality its values are dyadic (multiples of powers of two) so every legal
float32 evaluation order gives the same bits.
"""

from __future__ import annotations

import json

import numpy as np
import numpy.typing as npt
import pytest
from board_data import F32, G_MAX, G_MIN, V_MAX, dyadic_g, dyadic_v, uniform_g, uniform_v

from sidra.client import Region, RemoteBoard, rademacher
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.training.gradients import numerical_jacobian

ROWS = COLS = 256
MVM_PASS_NS = 10.0
WRITE_PASS_NS = 100.0
VERIFY_READ_NS = 10.0
POWER_W = 3.0


def assert_currents(got: F32, v: F32, g: npt.NDArray[np.floating]) -> None:
    """got == v @ g within float32 accumulation error (reference computed in float64)."""
    v64, g64 = v.astype(np.float64), np.asarray(g, dtype=np.float64)
    ref = v64 @ g64
    scale = float((np.abs(v64) @ np.abs(g64)).max())
    assert got.dtype == np.float32
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * scale)


def read_tile(board: RemoteBoard, tile: int) -> F32:
    return board.read_conductance(tile).conductances


# -- GetBoardInfo --------------------------------------------------------------------------


def test_board_info_describes_ideal_preset(remote: RemoteBoard) -> None:
    """GetBoardInfo reports the ideal geometry, ranges, preset and a versioned profile."""
    info = remote.info
    assert info.tile_count == 4
    assert (info.rows, info.cols) == (ROWS, COLS)
    assert (info.g_min_us, info.g_max_us) == (G_MIN, G_MAX)
    assert info.read_voltage_max_v == pytest.approx(V_MAX, abs=0)
    assert info.emulated is True
    assert info.emulator_preset == "ideal"
    assert (info.dac_bits, info.adc_bits) == (0, 0)
    assert info.serial_number == "EMU-1"  # conftest opens seed=1
    assert info.model and info.firmware_version
    assert isinstance(info.profile, dict)
    assert info.profile["schema_version"] == 1
    assert info.profile["preset"] == "ideal"
    assert info.profile["geometry"] == {"tiles": 4, "rows": ROWS, "cols": COLS}


def test_board_info_profile_json_on_the_wire(stub: pb_grpc.BoardServiceStub) -> None:
    """The raw profile_json field is a JSON object carrying schema_version."""
    reply = stub.GetBoardInfo(pb.GetBoardInfoRequest())
    profile = json.loads(reply.info.profile_json)
    assert profile["schema_version"] == 1
    assert profile["conductance"] == {"g_min_us": G_MIN, "g_max_us": G_MAX}
    assert reply.info.tile_count == 4


def test_stats_count_passes_writes_and_modeled_cost(remote: RemoteBoard) -> None:
    """mvm_passes counts batch vectors (both directions), cell_writes counts written cells,
    total_cost adds each operation's modeled time and energy (ns × W = nJ)."""
    s0 = remote.stats()
    assert (s0.mvm_passes, s0.cell_writes) == (0, 0)
    assert s0.total_cost.time_ns == 0.0

    remote.mvm(0, np.zeros((5, ROWS), np.float32))
    remote.transpose_mvm(1, np.zeros((3, COLS), np.float32))
    s1 = remote.stats()
    assert s1.mvm_passes == 8
    assert s1.cell_writes == 0
    assert s1.total_cost.time_ns == pytest.approx(8 * MVM_PASS_NS)

    remote.program(2, np.full((4, 6), 7.0, np.float32), row_offset=3, col_offset=9)
    s2 = remote.stats()
    assert s2.cell_writes == 24  # one pulse per cell on the ideal preset
    assert s2.mvm_passes == 8

    remote.perturb(2, seed=5, amplitude_us=1.0, region=Region(0, 0, 3, 5))
    remote.restore(3)
    s3 = remote.stats()
    assert s3.cell_writes == 24 + 15 + ROWS * COLS
    expected_ns = 8 * MVM_PASS_NS + (WRITE_PASS_NS + VERIFY_READ_NS) + 2 * WRITE_PASS_NS
    assert s3.total_cost.time_ns == pytest.approx(expected_ns)
    assert s3.total_cost.energy_nj == pytest.approx(expected_ns * POWER_W)

    remote.read_conductance(0, Region(0, 0, 4, 4))
    s4 = remote.stats()
    assert (s4.mvm_passes, s4.cell_writes) == (8, s3.cell_writes)  # reads write nothing


# -- Program and ReadConductance -------------------------------------------------------------


def test_program_whole_tile_reads_back_exactly(remote: RemoteBoard) -> None:
    """Programming a whole tile reports a perfect write and reads back bit-identical."""
    g = uniform_g(np.random.default_rng(101), (ROWS, COLS))
    report = remote.program(1, g)
    assert report.cells_written == ROWS * COLS
    assert report.pulses == ROWS * COLS
    assert report.verify_iterations == 1
    assert report.rms_error_us == 0.0
    assert report.max_error_us == 0.0
    assert report.unconverged_cells == 0
    assert report.cost.time_ns == pytest.approx(WRITE_PASS_NS + VERIFY_READ_NS)
    assert report.cost.energy_nj == pytest.approx((WRITE_PASS_NS + VERIFY_READ_NS) * POWER_W)

    read = remote.read_conductance(1)
    assert read.conductances.dtype == np.float32
    assert np.array_equal(read.conductances, g)
    assert read.cost.time_ns == pytest.approx(ROWS * MVM_PASS_NS)


@pytest.mark.parametrize(
    ("row_offset", "col_offset", "rows", "cols"),
    [(0, 0, 1, 1), (100, 200, 7, 11), (ROWS - 9, COLS - 13, 9, 13), (5, 0, 3, COLS)],
)
def test_program_region_at_offset(
    remote: RemoteBoard, row_offset: int, col_offset: int, rows: int, cols: int
) -> None:
    """A rectangular Program writes only its region; every other cell keeps its value."""
    rng = np.random.default_rng(202)
    base = uniform_g(rng, (ROWS, COLS))
    remote.program(0, base)
    patch = uniform_g(rng, (rows, cols))

    report = remote.program(0, patch, row_offset=row_offset, col_offset=col_offset)
    assert report.cells_written == rows * cols
    assert (report.rms_error_us, report.max_error_us, report.unconverged_cells) == (0.0, 0.0, 0)

    region = Region(row_offset, col_offset, rows, cols)
    assert np.array_equal(remote.read_conductance(0, region).conductances, patch)
    expected = base.copy()
    expected[region.slices] = patch
    assert np.array_equal(read_tile(remote, 0), expected)


def test_read_region_with_open_extent(remote: RemoteBoard) -> None:
    """Region rows/cols = 0 mean "to the tile edge"; reads return exactly that sub-array."""
    g = uniform_g(np.random.default_rng(303), (ROWS, COLS))
    remote.program(3, g)
    got = remote.read_conductance(3, Region(row_offset=250, col_offset=240)).conductances
    assert got.shape == (6, 16)
    assert np.array_equal(got, g[250:, 240:])
    got = remote.read_conductance(3, Region(row_offset=17, rows=2)).conductances
    assert np.array_equal(got, g[17:19, :])


def test_tiles_are_independent(remote: RemoteBoard) -> None:
    """Programming one tile leaves the other tiles untouched."""
    rng = np.random.default_rng(404)
    gs = [uniform_g(rng, (ROWS, COLS)) for _ in range(4)]
    for tile, g in enumerate(gs):
        remote.program(tile, g)
    remote.program(2, np.full((ROWS, COLS), 9.5, np.float32))
    for tile in (0, 1, 3):
        assert np.array_equal(read_tile(remote, tile), gs[tile])


def test_power_up_state_is_g_min(remote: RemoteBoard) -> None:
    """A fresh board holds g_min_us in every cell, and that is G_prog: RESTORE after an APPLY
    on a never-programmed tile returns to g_min; APPLY +c lands on g_min ± c, clipped below."""
    for tile in range(4):
        assert np.array_equal(read_tile(remote, tile), np.full((ROWS, COLS), G_MIN, np.float32))
    delta = rademacher(SEED, (ROWS, COLS))
    report = remote.perturb(1, seed=SEED, amplitude_us=C, sign=+1)
    assert report.clipped_cells == int(np.count_nonzero(delta < 0))
    assert np.array_equal(read_tile(remote, 1), np.where(delta > 0, G_MIN + C, G_MIN))
    remote.restore(1)
    assert np.array_equal(read_tile(remote, 1), np.full((ROWS, COLS), G_MIN, np.float32))
    v = uniform_v(np.random.default_rng(305), (2, ROWS))
    assert_currents(remote.mvm(1, v).currents, v, np.full((ROWS, COLS), G_MIN))


def test_conductance_bounds_are_inclusive(remote: RemoteBoard) -> None:
    """g_min_us and g_max_us themselves are programmable."""
    g = np.array([[G_MIN, G_MAX], [G_MAX, G_MIN]], np.float32)
    remote.program(0, g, row_offset=10, col_offset=10)
    assert np.array_equal(remote.read_conductance(0, Region(10, 10, 2, 2)).conductances, g)


# -- MVM and TransposeMVM ----------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 64])
def test_mvm_equals_v_times_g(remote: RemoteBoard, batch: int) -> None:
    """MVM currents[b, j] = Σ_i V[b, i]·G[i, j] (µA = V × µS), one pass per vector."""
    rng = np.random.default_rng(500 + batch)
    g = uniform_g(rng, (ROWS, COLS))
    v = uniform_v(rng, (batch, ROWS))
    remote.program(2, g)
    result = remote.mvm(2, v)
    assert_currents(result.currents, v, g)
    assert result.saturated_outputs == 0
    assert result.cost.time_ns == pytest.approx(batch * MVM_PASS_NS)


@pytest.mark.parametrize("batch", [1, 64])
def test_transpose_mvm_equals_v_times_g_transposed(remote: RemoteBoard, batch: int) -> None:
    """TransposeMVM currents[b, i] = Σ_j V[b, j]·G[i, j], i.e. V·Gᵀ (G is not symmetric)."""
    rng = np.random.default_rng(600 + batch)
    g = uniform_g(rng, (ROWS, COLS))
    v = uniform_v(rng, (batch, COLS))
    remote.program(1, g)
    result = remote.transpose_mvm(1, v)
    assert_currents(result.currents, v, g.T)
    assert result.saturated_outputs == 0
    assert result.cost.time_ns == pytest.approx(batch * MVM_PASS_NS)
    # Guard against a test that cannot tell the two directions apart.
    assert not np.allclose(v @ g, v @ g.T, rtol=1e-3)


def test_mvm_at_full_scale_voltage(remote: RemoteBoard) -> None:
    """±read_voltage_max_v exactly is allowed and gives exact results on dyadic G."""
    g = dyadic_g(np.random.default_rng(700), (ROWS, COLS))
    remote.program(0, g)
    v = np.where(np.random.default_rng(701).random((4, ROWS)) < 0.5, -V_MAX, V_MAX)
    v = v.astype(np.float32)
    assert_currents(remote.mvm(0, v).currents, v, g)
    assert_currents(remote.transpose_mvm(0, v).currents, v, g.T)


def test_mvm_exact_on_dyadic_values(remote: RemoteBoard) -> None:
    """With every product and partial sum representable in float32 the result is bit-exact."""
    rng = np.random.default_rng(702)
    g, v = dyadic_g(rng, (ROWS, COLS)), dyadic_v(rng, (8, ROWS))
    remote.program(3, g)
    ref = (v.astype(np.float64) @ g.astype(np.float64)).astype(np.float32)
    assert np.array_equal(remote.mvm(3, v).currents, ref)
    ref_t = (v.astype(np.float64) @ g.T.astype(np.float64)).astype(np.float32)
    assert np.array_equal(remote.transpose_mvm(3, v).currents, ref_t)


# -- "The Jacobian of an MVM is the matrix itself" -------------------------------------------

JAC_ROW0, JAC_COL0, JAC_ROWS, JAC_COLS = 40, 100, 8, 6
JAC_H = 2.0**-7  # exact in float32; x0 ± h stays inside ±0.2 V


def _jacobian_setup(remote: RemoteBoard) -> tuple[F32, F32]:
    rng = np.random.default_rng(800)
    remote.program(1, uniform_g(rng, (ROWS, COLS)))
    block = dyadic_g(rng, (JAC_ROWS, JAC_COLS))
    remote.program(1, block, row_offset=JAC_ROW0, col_offset=JAC_COL0)
    x0 = (rng.integers(-20, 21, JAC_ROWS) / 256).astype(np.float32)  # |x0| ≤ 0.079 V
    return block, x0


def test_numerical_jacobian_of_mvm_is_g(remote: RemoteBoard) -> None:
    """Central differences of v -> MVM(v) over 8 driven rows / 6 read columns give G[:8, :6]."""
    block, x0 = _jacobian_setup(remote)

    def forward(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        v = np.zeros((1, ROWS), np.float32)  # undriven rows are 0 V
        v[0, JAC_ROW0 : JAC_ROW0 + JAC_ROWS] = x
        return remote.mvm(1, v).currents[0, JAC_COL0 : JAC_COL0 + JAC_COLS]

    jac = numerical_jacobian(forward, x0, h=JAC_H)  # J[j, i] = ∂I_j / ∂v_i
    assert jac.shape == (JAC_COLS, JAC_ROWS)
    np.testing.assert_allclose(jac.T, block, rtol=1e-6, atol=0)


def test_numerical_jacobian_of_transpose_mvm_is_g_transposed(remote: RemoteBoard) -> None:
    """Central differences of u -> TransposeMVM(u) over 6 columns / 8 rows give Gᵀ's block."""
    block, _ = _jacobian_setup(remote)
    u0 = (np.random.default_rng(801).integers(-20, 21, JAC_COLS) / 256).astype(np.float32)

    def backward(u: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        v = np.zeros((1, COLS), np.float32)
        v[0, JAC_COL0 : JAC_COL0 + JAC_COLS] = u
        return remote.transpose_mvm(1, v).currents[0, JAC_ROW0 : JAC_ROW0 + JAC_ROWS]

    jac = numerical_jacobian(backward, u0, h=JAC_H)  # J[i, j] = ∂I_i / ∂u_j = G[i, j]
    assert jac.shape == (JAC_ROWS, JAC_COLS)
    np.testing.assert_allclose(jac, block, rtol=1e-6, atol=0)


# -- Perturb ---------------------------------------------------------------------------------

SEED = 0x5EED_1234_ABCD_0001
C = 0.5  # µS; dyadic, so G ± C is exact on the 1/16 grid


def test_perturb_apply_equals_client_regenerated_delta(remote: RemoteBoard) -> None:
    """APPLY +1 sets G_prog + c·Δ with Δ regenerated client-side from the seed; APPLY -1 sets
    G_prog − c·Δ (relative to the programmed state, not cumulative); RESTORE gives G_prog."""
    g = dyadic_g(np.random.default_rng(900), (ROWS, COLS), lo=2.0, hi=39.0)
    remote.program(0, g)
    delta = rademacher(SEED, (ROWS, COLS))

    plus = remote.perturb(0, seed=SEED, amplitude_us=C, sign=+1)
    assert (plus.cells_written, plus.clipped_cells) == (ROWS * COLS, 0)
    assert plus.cost.time_ns == pytest.approx(WRITE_PASS_NS)
    assert np.array_equal(read_tile(remote, 0), g + np.float32(C) * delta)

    minus = remote.perturb(0, seed=SEED, amplitude_us=C, sign=-1)
    assert (minus.cells_written, minus.clipped_cells) == (ROWS * COLS, 0)
    assert np.array_equal(read_tile(remote, 0), g - np.float32(C) * delta)

    restored = remote.restore(0)
    assert (restored.cells_written, restored.clipped_cells) == (ROWS * COLS, 0)
    assert np.array_equal(read_tile(remote, 0), g)


@pytest.mark.parametrize("seed", [0, 1, 2**63, 2**64 - 1])
def test_perturb_any_uint64_seed(remote: RemoteBoard, seed: int) -> None:
    """Every 64-bit seed crosses the wire intact: the board applies rademacher(seed) on an
    odd-shaped region (3 x 37, not a multiple of 64 cells)."""
    g = dyadic_g(np.random.default_rng(906), (ROWS, COLS), lo=2.0, hi=39.0)
    remote.program(1, g)
    region = Region(7, 50, 3, 37)
    remote.perturb(1, seed=seed, amplitude_us=C, sign=-1, region=region)
    got = remote.read_conductance(1, region).conductances
    assert np.array_equal(got, g[region.slices] - np.float32(C) * rademacher(seed, (3, 37)))


def test_perturb_region_uses_region_shaped_delta(remote: RemoteBoard) -> None:
    """A region perturbation uses Δ(seed, region shape) and leaves every other cell unchanged;
    restoring a disjoint region does not undo it, restoring the region does."""
    g = dyadic_g(np.random.default_rng(901), (ROWS, COLS), lo=2.0, hi=39.0)
    remote.program(2, g)
    region = Region(10, 20, 5, 37)
    delta = rademacher(SEED, (5, 37))

    report = remote.perturb(2, seed=SEED, amplitude_us=C, sign=+1, region=region)
    assert (report.cells_written, report.clipped_cells) == (5 * 37, 0)
    expected = g.copy()
    expected[region.slices] += np.float32(C) * delta
    assert np.array_equal(read_tile(remote, 2), expected)
    assert np.array_equal(
        remote.read_conductance(2, region).conductances, g[region.slices] + np.float32(C) * delta
    )

    other = Region(100, 100, 3, 3)
    assert remote.restore(2, other).cells_written == 9
    assert np.array_equal(read_tile(remote, 2), expected)

    assert remote.restore(2, region).cells_written == 5 * 37
    assert np.array_equal(read_tile(remote, 2), g)


@pytest.mark.parametrize("sign", [+1, -1])
def test_perturb_clips_at_conductance_bounds(remote: RemoteBoard, sign: int) -> None:
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
    remote.program(3, g)
    region = Region(0, 0, 4, 16)
    delta = rademacher(SEED, region.shape)

    raw = g[region.slices] + np.float32(sign * c) * delta
    expected_clipped = int(np.count_nonzero((raw < G_MIN) | (raw > G_MAX)))
    assert 0 < expected_clipped < 32  # the test exercises clipping in one direction only

    report = remote.perturb(3, seed=SEED, amplitude_us=c, sign=sign, region=region)
    assert report.cells_written == 64
    assert report.clipped_cells == expected_clipped
    expected = g.copy()
    expected[region.slices] = np.clip(raw, G_MIN, G_MAX)
    assert np.array_equal(read_tile(remote, 3), expected)

    remote.restore(3)
    assert np.array_equal(read_tile(remote, 3), g)


def test_mvm_under_perturbation(remote: RemoteBoard) -> None:
    """While perturbed, MVM = V·(G + cΔ) and TransposeMVM = V·(G + cΔ)ᵀ; after RESTORE, V·G."""
    rng = np.random.default_rng(903)
    g = uniform_g(rng, (ROWS, COLS), lo=3.0, hi=38.0)
    v = uniform_v(rng, (16, ROWS))
    c = 0.8
    remote.program(1, g)
    remote.perturb(1, seed=77, amplitude_us=c, sign=+1)
    perturbed = g.astype(np.float64) + c * rademacher(77, (ROWS, COLS))

    assert_currents(remote.mvm(1, v).currents, v, perturbed)
    assert_currents(remote.transpose_mvm(1, v).currents, v, perturbed.T)
    # The perturbation is large enough to be visible against float32 error.
    assert not np.allclose(remote.mvm(1, v).currents, v @ g, rtol=1e-4)

    remote.restore(1)
    assert_currents(remote.mvm(1, v).currents, v, g)


def test_program_clears_perturbation_in_its_region(remote: RemoteBoard) -> None:
    """Program writes new targets and clears the perturbation there; elsewhere it stays."""
    g = dyadic_g(np.random.default_rng(904), (ROWS, COLS), lo=2.0, hi=39.0)
    remote.program(0, g)
    remote.perturb(0, seed=3, amplitude_us=C, sign=+1)
    perturbed = g + np.float32(C) * rademacher(3, (ROWS, COLS))

    patch = np.full((4, 4), 12.5, np.float32)
    remote.program(0, patch, row_offset=8, col_offset=8)
    expected = perturbed.copy()
    expected[8:12, 8:12] = patch
    assert np.array_equal(read_tile(remote, 0), expected)

    remote.restore(0)
    expected = g.copy()
    expected[8:12, 8:12] = patch
    assert np.array_equal(read_tile(remote, 0), expected)


def test_restore_ignores_seed_amplitude_and_sign(
    stub: pb_grpc.BoardServiceStub, remote: RemoteBoard
) -> None:
    """RESTORE ignores seed, amplitude_us and sign, even values APPLY would reject."""
    g = dyadic_g(np.random.default_rng(905), (ROWS, COLS), lo=2.0, hi=39.0)
    remote.program(2, g)
    remote.perturb(2, seed=1, amplitude_us=C)
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
    assert np.array_equal(read_tile(remote, 2), g)
