"""Conductance drift G(t) = G_w·((t + t0)/t0)^(−ν) on the virtual clock, and Calibrate.

G_w is what the last write left in the cell and t the time since that write;
the clock moves only with AdvanceClock. No read noise here, so ReadConductance
shows G(t) itself.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from board_data import G_MAX, V_MAX, uniform_g, uniform_v
from emu_support import make_driver, make_profile, matmul64, read64, std_bound

from sidra.drivers import Region
from sidra.emulator.config import (
    ConductanceRange,
    Converters,
    Drift,
    DriftModel,
    Geometry,
    Programming,
)
from sidra.emulator.driver import EmulatorDriver

T0 = 20.0


def _factor(age_s: float, nu: float) -> float:
    return float(((age_s + T0) / T0) ** -nu)


def _constant_drift_board(nu: float, tolerance_us: float = 0.0) -> EmulatorDriver:
    return make_driver(
        make_profile(
            drift=Drift(model=DriftModel.CONSTANT, nu_mean=nu, nu_std=0.0, t0_s=T0),
            programming=Programming(tolerance_us=tolerance_us),
        )
    )


def test_constant_drift_follows_the_power_law_exactly() -> None:
    """CONSTANT model, nu_std = 0: every cell reads G_prog·((t + t0)/t0)^(−ν) at every
    clock time, and MVM sees the same drifted conductances."""
    nu = 0.1
    board = _constant_drift_board(nu)
    rng = np.random.default_rng(21)
    g = uniform_g(rng, (64, 32))
    board.program(0, g)
    v = uniform_v(rng, (16, 64))
    for clock in (0.0, 1.0, 1e3, 1e6):
        assert board.advance_clock(clock - board.stats().clock_s) == clock
        measured = read64(board)
        np.testing.assert_allclose(measured, g * _factor(clock, nu), rtol=2e-6)
        out = board.mvm(0, v).currents
        np.testing.assert_allclose(out, matmul64(v, measured), rtol=0, atol=1e-5 * 0.2 * 64 * 40)


@pytest.mark.parametrize("tolerance_us", [0.0, 0.5])
def test_reprogramming_a_drifted_region_restores_targets_and_restarts_its_clock(
    tolerance_us: float,
) -> None:
    """Program drives each cell until its read-back is within tolerance of the target. A
    region that has drifted ≈ 40 % (t = 10⁶ s, ν = 0.1) and is programmed again to the
    same targets must read those targets afterwards, pulse exactly the cells that had
    drifted beyond tolerance, and those drift from a fresh start; cells still within
    tolerance and the rest of the tile keep their age.

    Regression: the verify loop once compared targets with the undrifted programmed
    value, found every cell on target and pulsed none.
    """
    nu = 0.1
    board = _constant_drift_board(nu, tolerance_us)
    rng = np.random.default_rng(21)
    g = uniform_g(rng, (64, 32))
    board.program(0, g)
    never_written = board.read_write_counts(0).counts == 0  # targets within tol of g_min
    board.advance_clock(1e6)
    region = Region(8, 4, 16, 8)
    counts_before = board.read_write_counts(0, region).counts.copy()

    report = board.program(0, g[region.slices], row_offset=8, col_offset=4)
    now = board.read_conductance(0, region).conductances
    np.testing.assert_allclose(now, g[region.slices], rtol=0, atol=tolerance_us + 1e-5)
    assert report.unconverged_cells == 0
    drift_us = np.abs(g[region.slices] * (1 - _factor(1e6, nu)))
    pulsed = board.read_write_counts(0, region).counts > counts_before
    # Float32 ties at the threshold aside, and cells the first Program left alone (a
    # target within tolerance of the power-up g_min: never written, so no drift).
    clear = (np.abs(drift_us - tolerance_us) > 1e-3) & (counts_before > 0)
    np.testing.assert_array_equal(pulsed[clear], (drift_us > tolerance_us)[clear])
    assert pulsed.sum() > 0.9 * pulsed.size

    board.advance_clock(100.0)
    expected = g.astype(np.float64) * _factor(1e6 + 100.0, nu)
    fresh = now * _factor(100.0, nu)
    aged = g[region.slices] * _factor(1e6 + 100.0, nu)
    expected[region.slices] = np.where(pulsed, fresh, aged)
    expected[never_written] = board.info.g_min_us  # still at power-up, no drift
    np.testing.assert_allclose(read64(board), expected, rtol=2e-6)


def _folded_normal(mu: float, sigma: float) -> tuple[float, float]:
    """Mean and std of |N(μ, σ²)|."""
    a = mu / sigma
    nd = NormalDist()
    mean = sigma * np.sqrt(2 / np.pi) * np.exp(-(a**2) / 2) + mu * (1 - 2 * nd.cdf(-a))
    return float(mean), float(np.sqrt(mu**2 + sigma**2 - mean**2))


@pytest.mark.parametrize("x", [0.5, 0.1])
def test_pcm_drift_exponent_statistics(x: float) -> None:
    """PCM model: ν = |μ_ν + σ_ν·ξ| with μ_ν = clip(−0.0155·ln x + 0.0244, 0.049, 0.1) and
    σ_ν = clip(−0.0125·ln x − 0.0059, 0.008, 0.045). x = 0.5 hits the lower clip of both
    (0.049, 0.008); x = 0.1 does not (0.0601, 0.0229).

    ν of each cell is estimated from its log conductance ratio after 10⁶ s (exact: no read
    noise). 8192 cells: SE of the mean σ_ν/√n ≤ 0.4 % of μ_ν (tolerance 5 SE), SE of
    the std 0.78 % (tolerance 4 %). The expected values are those of the folded normal.
    """
    g_max = 25.0
    board = make_driver(
        make_profile(
            geometry=Geometry(tiles=1, rows=128, cols=64),
            conductance=ConductanceRange(g_min_us=0.25, g_max_us=g_max),
            drift=Drift(model=DriftModel.PCM, t0_s=T0),
        )
    )
    g = np.full((128, 64), x * g_max, np.float32)
    board.program(0, g)
    age = 1e6
    board.advance_clock(age)
    nu = -np.log(read64(board) / g) / np.log((age + T0) / T0)

    mu = float(np.clip(-0.0155 * np.log(x) + 0.0244, 0.049, 0.1))
    sigma = float(np.clip(-0.0125 * np.log(x) - 0.0059, 0.008, 0.045))
    mean, std = _folded_normal(mu, sigma)
    assert float(nu.mean()) == pytest.approx(mean, abs=5 * std / np.sqrt(nu.size))
    assert float(nu.std()) == pytest.approx(std, rel=std_bound(nu.size))
    assert nu.min() >= 0.0


def test_constant_drift_exponent_statistics() -> None:
    """CONSTANT model with spread: ν = |nu_mean + nu_std·ξ| (aihwkit StateIndependent 0.1 ± 0.05).

    8192 cells: SE of the mean nu_std/√n (tolerance 5 SE), of the std 0.78 % (tolerance 4 %).
    """
    nu_mean, nu_std = 0.1, 0.05
    board = make_driver(
        make_profile(
            geometry=Geometry(tiles=1, rows=128, cols=64),
            drift=Drift(model=DriftModel.CONSTANT, nu_mean=nu_mean, nu_std=nu_std, t0_s=T0),
        )
    )
    rng = np.random.default_rng(23)
    g = uniform_g(rng, (128, 64))
    board.program(0, g)
    age = 1e6
    board.advance_clock(age)
    nu = -np.log(read64(board) / g) / np.log((age + T0) / T0)
    mean, std = _folded_normal(nu_mean, nu_std)
    assert float(nu.mean()) == pytest.approx(mean, abs=5 * std / np.sqrt(nu.size))
    assert float(nu.std()) == pytest.approx(std, rel=std_bound(nu.size))
    # ν does not depend on the conductance in this model.
    assert abs(float(np.corrcoef(nu.ravel(), g.ravel())[0, 1])) < 5 / np.sqrt(nu.size)


def _drift_board(converters: Converters | None = None) -> EmulatorDriver:
    converters = converters or Converters()
    return make_driver(
        make_profile(
            drift=Drift(model=DriftModel.CONSTANT, nu_mean=0.05, nu_std=0.02, t0_s=T0),
            converters=converters,
        )
    )


def test_calibrate_after_drift_restores_mean_output() -> None:
    """After 10⁵ s of drift (outputs down ≈ 35 %) Calibrate returns a gain > 1 that brings
    the mean |output| of probe-like inputs back within 2 % of the undrifted value, in both
    directions (per-cell ν varies, so other inputs are only restored on average)."""
    board = _drift_board()
    rng = np.random.default_rng(22)
    g = uniform_g(rng, (64, 32))
    board.program(0, g)
    inputs = {
        "probe": (np.full((8, 64), V_MAX / 2, np.float32), board.mvm),
        "positive": (rng.uniform(0, V_MAX, (256, 64)).astype(np.float32), board.mvm),
        "probe-transpose": (np.full((8, 32), V_MAX / 2, np.float32), board.transpose_mvm),
    }
    before = {k: float(np.abs(run(0, v).currents).mean()) for k, (v, run) in inputs.items()}
    board.advance_clock(1e5)
    drifted = {k: float(np.abs(run(0, v).currents).mean()) for k, (v, run) in inputs.items()}
    assert all(drifted[k] < 0.8 * before[k] for k in inputs)

    report = board.calibrate(0)
    assert report.gain > 1.0
    assert report.gain == pytest.approx(before["probe"] / drifted["probe"], rel=1e-3)
    after = {k: float(np.abs(run(0, v).currents).mean()) for k, (v, run) in inputs.items()}
    for k in inputs:
        assert after[k] == pytest.approx(before[k], rel=0.02), k


def test_a_program_sets_the_calibration_gain_back_to_one() -> None:
    """A gain measured for drifted cells scaled the cells a later Program wrote fresh by
    the old cells' drift (a model deployed over a calibrated one read at 23 % instead of
    85 %): the Program sets the tile's gain back to 1, its outputs are the fresh cells'."""
    board = _drift_board()
    rng = np.random.default_rng(23)
    g = uniform_g(rng, (64, 32))
    v = rng.uniform(0, V_MAX, (16, 64)).astype(np.float32)
    board.program(0, g)
    fresh = board.mvm(0, v).currents
    board.advance_clock(1e5)
    assert board.calibrate(0).gain > 1.3
    board.program(0, g)  # the same targets again: every drifted cell pulsed back
    np.testing.assert_allclose(board.mvm(0, v).currents, fresh, rtol=1e-5, atol=1e-4)
    assert board.calibrate(0).gain == pytest.approx(1.0, abs=1e-3)  # nothing to compensate


CALIBRATE_UNDRIFTED = {
    # Undrifted board, so by board.proto "1 = no drift". Each case has one converter on.
    "dac-8": (Converters(dac_bits=8), 20.0),
    "dac-4": (Converters(dac_bits=4), 20.0),
    # Probe (every row at V_max/2 = 0.1 V) × 64 rows × 35 µS = 224 µA, beyond FS = 100 µA.
    "adc-12-probe-beyond-full-scale": (Converters(adc_bits=12, adc_full_scale_ua=100.0), 35.0),
}


@pytest.mark.parametrize("case", CALIBRATE_UNDRIFTED)
def test_calibrate_without_drift_returns_unity_gain(case: str) -> None:
    """Calibrate right after programming (no drift, no noise) must return gain 1 and leave
    MVM outputs unchanged, whatever the converters: the board's own probe is what it
    measures, so DAC rounding of the probe or ADC clipping must not be mistaken for drift.
    (A probe fixed at V_max/2 on every row gave 0.992 with an 8-bit DAC, 0.875 with a
    4-bit one and 2.24 here with the ADC, i.e. 3.3 on a freshly programmed sidra-y1.)
    """
    converters, g_value = CALIBRATE_UNDRIFTED[case]
    board = _drift_board(converters)
    board.program(0, np.full((64, 32), g_value, np.float32))
    v = np.full((4, 64), 0.05, np.float32)  # 0.05·64·35 = 112 µA: within every FS here
    before = board.mvm(0, v).currents
    gain = board.calibrate(0).gain
    after = board.mvm(0, v).currents
    assert gain == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(after, before, rtol=1e-3)


def test_calibrate_without_drift_on_ideal_converters_is_unity() -> None:
    """The control case of the test above: ideal converters give gain 1 exactly."""
    board = _drift_board()
    board.program(0, np.full((64, 32), G_MAX, np.float32))
    assert board.calibrate(0).gain == pytest.approx(1.0, abs=1e-6)
