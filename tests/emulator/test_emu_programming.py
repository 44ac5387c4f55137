"""Write-verify programming, relaxation after verify, and perturbation write noise.

The read path of these boards is noise-free and gain-exact, so ReadConductance
returns exactly what the writes left in each cell.
"""

from __future__ import annotations

import numpy as np
import pytest
from board_data import uniform_g
from emu_support import make_driver, make_profile, read64, std_bound, z_bound

from sidra.drivers import Region, rademacher
from sidra.emulator.config import (
    ConductanceRange,
    Geometry,
    PerturbationWrites,
    Programming,
)

NOISY_PULSES = {
    "tolerance_us": 0.25,
    "pulse_gain": 0.7,
    "pulse_gain_spread": 0.2,
    "pulse_noise_us": 0.2,
}


def test_write_verify_converges_every_cell_within_tolerance() -> None:
    """With noisy pulses and a generous budget every cell ends within tolerance_us of its
    target; the report's errors, iterations and pulses agree with what the board holds."""
    max_iterations = 100
    board = make_driver(
        make_profile(programming=Programming(max_iterations=max_iterations, **NOISY_PULSES))
    )
    rng = np.random.default_rng(11)
    targets = uniform_g(rng, (64, 32))
    report = board.program(0, targets)
    error = read64(board) - targets

    assert report.unconverged_cells == 0
    assert np.abs(error).max() <= NOISY_PULSES["tolerance_us"] + 1e-6
    # The verify loop really was noisy: cells land anywhere inside the tolerance band.
    assert error.std() > 0.05
    assert report.max_error_us == pytest.approx(np.abs(error).max(), rel=1e-5)
    assert report.rms_error_us == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-5)
    assert 1 < report.verify_iterations <= max_iterations
    counts = board.read_write_counts(0).counts
    # Every cell that started (at g_min) outside tolerance of its target took a pulse.
    assert np.all(counts[np.abs(targets - 1.0) > NOISY_PULSES["tolerance_us"]] >= 1)
    assert counts.max() == report.verify_iterations
    assert report.pulses == int(counts.sum()) == board.stats().cell_writes
    assert report.cells_written == targets.size


def test_write_verify_reports_unconverged_cells_when_the_budget_runs_out() -> None:
    """With max_iterations = 2 many cells stay outside tolerance; unconverged_cells counts
    exactly the cells whose read-back error exceeds tolerance_us."""
    board = make_driver(make_profile(programming=Programming(max_iterations=2, **NOISY_PULSES)))
    rng = np.random.default_rng(12)
    targets = uniform_g(rng, (64, 32))
    report = board.program(0, targets, row_offset=0, col_offset=0)
    error = np.abs(read64(board) - targets)
    outside = int(np.count_nonzero(error > NOISY_PULSES["tolerance_us"]))

    assert 0 < outside < targets.size
    assert report.unconverged_cells == outside
    assert report.verify_iterations == 2
    counts = board.read_write_counts(0).counts
    assert counts.max() <= 2
    assert report.pulses == int(counts.sum())
    # A cell is pulsed again only if the first pulse left it outside tolerance.
    assert int(np.count_nonzero(counts == 2)) >= outside


RELAXATION = {
    # PCM (Nandakumar 2019), g_max 25 µS, and RRAM (ReRamCMO) polynomials of the presets.
    "pcm": (ConductanceRange(g_min_us=0.25, g_max_us=25.0), (0.26348, 1.9650, -1.1731)),
    "rram": (ConductanceRange(g_min_us=9.0, g_max_us=88.2), (0.01122, 0.01129 * 88.2)),
}


@pytest.mark.parametrize("name", RELAXATION)
def test_relaxation_residual_std_matches_polynomial(name: str) -> None:
    """After write-verify (exact pulses here) each cell relaxes by N(0, σ(x)²),
    σ(x) = Σ c_k·x^k, x = target/g_max: checked at x = 0.2 and x = 0.8.

    8192 cells per level: SE of the std 0.78 %, tolerance 4 %; the mean within 5 σ/√n.
    Both levels sit ≥ 4.5 σ inside the window, so clipping is negligible.
    """
    window, poly = RELAXATION[name]
    board = make_driver(
        make_profile(
            geometry=Geometry(tiles=1, rows=128, cols=128),
            conductance=window,
            programming=Programming(relaxation_poly_us=poly),
        )
    )
    x_levels = (0.2, 0.8)
    targets = np.empty((128, 128), np.float32)
    targets[:, :64] = x_levels[0] * window.g_max_us
    targets[:, 64:] = x_levels[1] * window.g_max_us
    report = board.program(0, targets)
    error = read64(board) - targets
    for half, x in zip((np.s_[:, :64], np.s_[:, 64:]), x_levels, strict=True):
        sigma = float(np.polynomial.polynomial.polyval(x, poly))
        e = error[half]
        assert float(e.std()) == pytest.approx(sigma, rel=std_bound(e.size)), x
        assert abs(float(e.mean())) < sigma * z_bound(e.size), x
    # The verify loop cannot see relaxation: it reports the cells it leaves off target.
    assert report.unconverged_cells == targets.size
    assert report.rms_error_us == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-5)


def test_perturbation_write_noise_has_configured_std() -> None:
    """Perturb APPLY leaves G_prog ± c·Δ + N(0, write_noise_us²); RESTORE is exact.

    Both signs over 16384 cells = 32768 samples: SE of the std 0.39 %, tolerance 2 %.
    """
    noise, amplitude, seed = 0.3, 2.0, 42
    board = make_driver(
        make_profile(
            geometry=Geometry(tiles=1, rows=128, cols=128),
            perturbation=PerturbationWrites(write_noise_us=noise),
        )
    )
    rng = np.random.default_rng(13)
    g = uniform_g(rng, (128, 128), 5.0, 35.0)  # > 10 σ from both bounds: no clipping
    board.program(0, g)
    delta = rademacher(seed, g.shape)
    residuals = []
    for sign in (1, -1):
        report = board.perturb(0, seed=seed, amplitude_us=amplitude, sign=sign)
        assert report.clipped_cells == 0
        residuals.append(read64(board) - (g + sign * amplitude * delta.astype(np.float64)))
    e = np.stack(residuals)
    assert float(e.std()) == pytest.approx(noise, rel=std_bound(e.size))
    assert abs(float(e.mean())) < noise * z_bound(e.size)
    # Each APPLY is a fresh write: the two noise draws are uncorrelated.
    assert abs(float(np.corrcoef(e[0].ravel(), e[1].ravel())[0, 1])) < z_bound(g.size)
    board.restore(0, Region(0, 0, 64, 128))
    np.testing.assert_array_equal(
        board.read_conductance(0, Region(0, 0, 64, 128)).conductances, g[:64]
    )
