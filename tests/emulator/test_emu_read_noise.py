"""Read noise, one model at a time: output-referred, conductance-referred CONSTANT, PCM flicker.

Tolerances come from the sample sizes: for n Gaussian samples the sample std has
standard error σ/√(2n) and the sample mean σ/√n; each assertion allows about
five standard errors (``emu_support.std_bound`` / ``z_bound``), so a correct
emulator fails with probability < 10⁻⁶ per check while a wrong σ, a missing
factor or a reused noise draw fails by tens of standard errors. Seeds are fixed,
so every run is in fact deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
from board_data import G_MAX, V_MAX, uniform_g, uniform_v
from emu_support import F64, make_driver, make_profile, matmul64, std_bound, z_bound

from sidra.drivers import Board
from sidra.emulator.config import (
    ConductanceNoiseModel,
    ConductanceRange,
    Converters,
    Drift,
    ReadNoise,
)

ROWS, COLS = 64, 32

# A DAC and ADC fine enough to add no measurable noise (16-bit DAC: 1.8e-6 V rms
# per input; 20-bit ADC over ±400 µA: 2.2e-4 µA rms), so a read-noise σ applied in
# the wrong unit (volts vs DAC codes, µA vs ADC LSBs) shows.
FINE_CONVERTERS = Converters(dac_bits=16, adc_bits=20, adc_full_scale_ua=400.0)
CONVERTERS = {"ideal": Converters(), "fine-dac-adc": FINE_CONVERTERS}


def _applied(board: Board, v: np.ndarray) -> F64:
    """The input the array sees: V, rounded to the DAC grid when the board has a DAC."""
    info = board.info
    if not info.dac_bits:
        return v.astype(np.float64)
    step = info.read_voltage_max_v / (2 ** (info.dac_bits - 1) - 1)
    applied: F64 = np.rint(v.astype(np.float64) / step) * step
    return applied


def _ideal_output(board: Board, v: np.ndarray, g: np.ndarray, transpose: bool) -> F64:
    """The noise-free output: the applied input times G (or Gᵀ)."""
    return matmul64(_applied(board, v), g.T if transpose else g)


# -- output-referred ------------------------------------------------------------------------


@pytest.mark.parametrize("converters", CONVERTERS.values(), ids=CONVERTERS.keys())
@pytest.mark.parametrize("direction", ["mvm", "transpose"])
def test_output_noise_has_configured_std_zero_mean_and_is_fresh_each_pass(
    converters: Converters, direction: str
) -> None:
    """MVM − V·G is N(0, output_noise_ua²) per output, independent between passes.

    n = 4096 passes × outputs ≥ 131072 samples: SE of the sample std 0.2 %
    (tolerance 1 %), SE of the mean σ/√n, SE of a correlation 1/√n.
    """
    sigma = 0.5
    transpose = direction == "transpose"
    board = make_driver(
        make_profile(read_noise=ReadNoise(output_noise_ua=sigma), converters=converters)
    )
    rng = np.random.default_rng(3)
    g = uniform_g(rng, (ROWS, COLS))
    board.program(0, g)
    v = uniform_v(rng, (4096, COLS if transpose else ROWS))
    run = board.transpose_mvm if transpose else board.mvm
    ideal = _ideal_output(board, v, g, transpose)
    e1 = run(0, v).currents - ideal
    e2 = run(0, v).currents - ideal
    n = e1.size

    assert float(e1.std()) == pytest.approx(sigma, rel=std_bound(n))
    assert float(e2.std()) == pytest.approx(sigma, rel=std_bound(n))
    assert abs(float(e1.mean())) < sigma * z_bound(n)
    # Fresh draw every pass: the same input twice gives uncorrelated noise...
    assert abs(float(np.corrcoef(e1.ravel(), e2.ravel())[0, 1])) < z_bound(n)
    # ...and the outputs of one pass are independent of each other.
    assert abs(float(np.corrcoef(e1[:, 0], e1[:, 1])[0, 1])) < z_bound(len(e1))
    # Gaussian shape: P(|ξ| < σ) = 0.6827, binomial SE √(p(1 − p)/n).
    inside = float(np.mean(np.abs(e1) < sigma))
    assert inside == pytest.approx(0.6827, abs=5 * np.sqrt(0.6827 * 0.3173 / n))


# -- conductance-referred, CONSTANT -------------------------------------------------------


@pytest.mark.parametrize("converters", CONVERTERS.values(), ids=CONVERTERS.keys())
def test_constant_conductance_noise_scales_with_input_norm(converters: Converters) -> None:
    """Output noise std = σ_g·g_max·‖V‖₂ for inputs of very different norms, both directions.

    Each input family gives 1024 passes × 32 or 64 outputs ≥ 32768 samples of
    (MVM − V·G)/(σ_g·g_max·‖V‖): SE of their std 0.39 %, tolerance 2 %.
    """
    frac = 0.02
    sigma_g = frac * G_MAX  # 0.8 µS per cell
    board = make_driver(
        make_profile(read_noise=ReadNoise(sigma_g_fraction=frac), converters=converters)
    )
    rng = np.random.default_rng(4)
    g = uniform_g(rng, (ROWS, COLS))
    board.program(0, g)

    for transpose, inputs in ((False, ROWS), (True, COLS)):
        batch = 1024
        signs = rng.choice([-1.0, 1.0], (batch, inputs))
        one_hot = np.zeros((batch, inputs))
        one_hot[np.arange(batch), rng.integers(0, inputs, batch)] = V_MAX
        families = {
            "all rows at +V_max": np.full((batch, inputs), V_MAX),
            "all rows ±V_max/4": signs * V_MAX / 4,
            "one row at V_max": one_hot,
            "uniform": rng.uniform(-V_MAX, V_MAX, (batch, inputs)),
        }
        run = board.transpose_mvm if transpose else board.mvm
        for name, family in families.items():
            v = family.astype(np.float32)
            ideal = _ideal_output(board, v, g, transpose)
            norms = np.linalg.norm(_applied(board, v), axis=1, keepdims=True)
            z = (run(0, v).currents - ideal) / (sigma_g * norms)
            assert float(z.std()) == pytest.approx(1.0, rel=std_bound(z.size)), (transpose, name)
            assert abs(float(z.mean())) < z_bound(z.size), (transpose, name)


def test_constant_conductance_noise_on_read_conductance() -> None:
    """ReadConductance sees every cell at G + σ_g·g_max·ξ, a fresh ξ per read.

    64 reads of 2048 cells = 131072 samples: SE of the std 0.2 %, tolerance 1 %.
    """
    frac = 0.02
    board = make_driver(make_profile(read_noise=ReadNoise(sigma_g_fraction=frac)))
    rng = np.random.default_rng(5)
    g = uniform_g(rng, (ROWS, COLS))
    board.program(0, g)
    errors = np.stack([board.read_conductance(0).conductances - g for _ in range(64)])
    assert float(errors.std()) == pytest.approx(frac * G_MAX, rel=std_bound(errors.size))
    assert abs(float(errors.mean())) < frac * G_MAX * z_bound(errors.size)
    corr = np.corrcoef(errors[0].ravel(), errors[1].ravel())[0, 1]
    assert abs(float(corr)) < z_bound(errors[0].size)


# -- PCM flicker ------------------------------------------------------------------------------

PCM_RANGE = ConductanceRange(g_min_us=0.25, g_max_us=25.0)
T_READ = 250e-9
T0 = 20.0


def _flicker_sigma(g: np.ndarray, age_s: float) -> F64:
    """σ = G·Q_s·sqrt(ln((t + t0 + t_read)/(2·t_read))), Q_s = min(0.0088/x^0.65, 0.2)."""
    x = g.astype(np.float64) / PCM_RANGE.g_max_us
    q = np.minimum(0.0088 / x**0.65, 0.2)
    sigma: F64 = g * q * np.sqrt(np.log((age_s + T0 + T_READ) / (2 * T_READ)))
    return sigma


def test_pcm_flicker_read_noise_matches_formula_and_grows_with_time() -> None:
    """ReadConductance noise of each cell is σ(G, t) of the PCM 1/f model at t = 0
    and at t = 10⁴ s after programming (AdvanceClock), and grows by the predicted
    factor sqrt(ln(10⁴ + t0 + t_read)/(2 t_read)) / ln((t0 + t_read)/(2 t_read))) ≈ 1.16.

    64 reads × 2048 cells: residuals standardised by each cell's own σ pool to
    n = 131072 (SE of their std 0.2 %, tolerance 1 %); per quartile of G,
    n = 32768 (tolerance 2 %). The growth ratio of two such stds: tolerance 1.5 %.
    """
    profile = make_profile(
        conductance=PCM_RANGE,
        read_noise=ReadNoise(conductance_model=ConductanceNoiseModel.PCM_FLICKER, t_read_s=T_READ),
        drift=Drift(t0_s=T0),  # model NONE: t0 only enters the flicker formula
    )
    board = make_driver(profile)
    rng = np.random.default_rng(6)
    g = uniform_g(rng, (ROWS, COLS), 0.5, 25.0)
    board.program(0, g)
    quartile = np.digitize(g, np.quantile(g, [0.25, 0.5, 0.75]))

    raw_std = []
    for age in (0.0, 1e4):
        board.advance_clock(age - board.stats().clock_s)
        sigma = _flicker_sigma(g, age)
        reads = np.stack([board.read_conductance(0).conductances for _ in range(64)])
        residual = reads.astype(np.float64) - g
        z = residual / sigma
        assert float(z.std()) == pytest.approx(1.0, rel=std_bound(z.size)), age
        assert abs(float(z.mean())) < z_bound(z.size), age
        for q in range(4):
            zq = z[:, quartile == q]
            assert float(zq.std()) == pytest.approx(1.0, rel=std_bound(zq.size)), (age, q)
        raw_std.append(float(np.sqrt(np.mean(residual**2))))

    grows = np.sqrt(
        np.log((1e4 + T0 + T_READ) / (2 * T_READ)) / np.log((T0 + T_READ) / (2 * T_READ))
    )
    assert raw_std[1] / raw_std[0] == pytest.approx(grows, rel=1.5 * std_bound(131072))
    assert raw_std[1] > raw_std[0]


@pytest.mark.parametrize("converters", CONVERTERS.values(), ids=CONVERTERS.keys())
def test_pcm_flicker_noise_on_mvm_outputs(converters: Converters) -> None:
    """On an MVM output the flicker noise of the cells adds up: std = sqrt(Σ_i V_i²·σ_ij²).

    2048 passes × 32 outputs = 65536 standardised samples: SE 0.28 %, tolerance 1.4 %.
    """
    profile = make_profile(
        conductance=PCM_RANGE,
        read_noise=ReadNoise(conductance_model=ConductanceNoiseModel.PCM_FLICKER),
        drift=Drift(t0_s=T0),
        converters=converters,
    )
    board = make_driver(profile)
    rng = np.random.default_rng(8)
    g = uniform_g(rng, (ROWS, COLS), 0.5, 25.0)
    board.program(0, g)
    board.advance_clock(100.0)
    v = uniform_v(rng, (2048, ROWS))
    ideal = _ideal_output(board, v, g, transpose=False)
    expected_std = np.sqrt(matmul64(_applied(board, v) ** 2, _flicker_sigma(g, 100.0) ** 2))
    z = (board.mvm(0, v).currents - ideal) / expected_std
    assert float(z.std()) == pytest.approx(1.0, rel=std_bound(z.size))
    assert abs(float(z.mean())) < z_bound(z.size)
