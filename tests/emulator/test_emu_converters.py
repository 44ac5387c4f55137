"""Input DAC and output ADC, each alone on an otherwise ideal (noise-free) board.

DAC: inputs become one of 2^(bits−1) − 1 levels per polarity over
±read_voltage_max_v, so MVM(V) = (round(V/step)·step) @ G. ADC: outputs are
rounded to LSB = full_scale/(2^(bits−1) − 1), clipped at ±full_scale, and the
number of clipped outputs is reported. bits = 0 means ideal.
"""

from __future__ import annotations

import numpy as np
import pytest
from board_data import G_MAX, V_MAX, dyadic_g, uniform_v
from emu_support import make_driver, make_profile, matmul64

from sidra.emulator.config import ConductanceRange, Converters, Geometry
from sidra.emulator.driver import EmulatorDriver

ROWS, COLS = 64, 32


def _levels(bits: int) -> int:
    return int(2 ** (bits - 1) - 1)


# -- DAC ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 4, 8, 12])
def test_dac_has_2_pow_bits_minus_1_minus_1_levels_per_polarity(bits: int) -> None:
    """Sweeping one input across ±V_max yields exactly 2L + 1 distinct input levels,
    k·step for k = −L … L, each the nearest level to the requested voltage."""
    levels = _levels(bits)
    step = V_MAX / levels
    board = make_driver(make_profile(converters=Converters(dac_bits=bits)))
    g = np.full((ROWS, COLS), G_MAX, np.float32)
    g[0, :] = 1.0  # row 0 at 1 µS: the output of a row-0-only input is its DAC level in V
    board.program(0, g)
    # 3.5 requests per step, spaced 2/7 step apart: never exactly on a rounding tie.
    sweep = np.linspace(-V_MAX, V_MAX, 7 * levels + 1, dtype=np.float32)
    v = np.zeros((sweep.size, ROWS), np.float32)
    v[:, 0] = sweep
    out = board.mvm(0, v).currents.astype(np.float64)

    assert np.ptp(out, axis=1).max() == 0.0  # every column sees the same input level
    codes = out[:, 0] / step
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-4)  # on the grid k·step
    codes = np.rint(codes).astype(np.int64)
    assert set(codes.tolist()) == set(range(-levels, levels + 1))
    # The nearest level (float32 requests may land a hair from the 2/7 grid: allow 0.1 %).
    exact = sweep.astype(np.float64) / step
    clear = np.abs(exact - np.floor(exact) - 0.5) > 1e-3
    assert clear.all()
    np.testing.assert_array_equal(codes[clear], np.rint(exact[clear]).astype(np.int64))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_dac_quantises_every_row_of_an_mvm(bits: int) -> None:
    """MVM(V) = (round(V/step)·step) @ G for a random matrix, both directions, and the
    quantisation error has the uniform-rounding variance step²/12 per input.

    The error of output j is Σ_i e_i·G_ij with e_i ~ U(±step/2), so its variance is
    step²/12·Σ_i G_ij². The outputs of one pass share the e_i and are strongly
    correlated (positive G), so count only n = 8192 independent passes: the mean of
    error²/variance has SE ≈ √(2/n) = 1.6 % (sums of uniforms are near Gaussian);
    tolerance 8 % (5 SE).
    """
    levels = _levels(bits)
    step = V_MAX / levels
    rng = np.random.default_rng(100 + bits)
    board = make_driver(make_profile(converters=Converters(dac_bits=bits)))
    g = dyadic_g(rng, (ROWS, COLS))
    board.program(0, g)
    for v, mat, run in (
        (uniform_v(rng, (8192, ROWS)), g, board.mvm),
        (uniform_v(rng, (8192, COLS)), g.T, board.transpose_mvm),
    ):
        out = run(0, v).currents
        quantised = np.rint(v.astype(np.float64) / step) * step
        expected = matmul64(quantised, mat)
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6 * scale)

        error = matmul64(v, mat) - out
        predicted = step**2 / 12 * (mat.astype(np.float64) ** 2).sum(axis=0)
        ratio = float(np.mean(error**2 / predicted))
        assert ratio == pytest.approx(1.0, rel=0.08)


def test_dac_bits_zero_means_no_quantisation() -> None:
    """dac_bits = 0: the output is V @ G to float32 accuracy, far inside what even a
    12-bit DAC would change (≈ V_max/2047/√12 per input)."""
    rng = np.random.default_rng(7)
    board = make_driver(make_profile(converters=Converters(dac_bits=0)))
    g = dyadic_g(rng, (ROWS, COLS))
    board.program(0, g)
    v = uniform_v(rng, (256, ROWS))
    out = board.mvm(0, v).currents
    expected = matmul64(v, g)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6 * float(np.abs(expected).max()))
    sweep = np.linspace(-V_MAX, V_MAX, 4001, dtype=np.float32)
    one_row = np.zeros((sweep.size, ROWS), np.float32)
    one_row[:, 0] = sweep
    assert np.unique(board.mvm(0, one_row).currents[:, 0]).size == sweep.size


# -- ADC ----------------------------------------------------------------------------------


def _diagonal_board(bits: int, full_scale: float) -> tuple[EmulatorDriver, np.ndarray]:
    """A 32 × 32 board with g_min = 0 and G = diag(g): output j = V_j·g_j, nothing else.

    That lets a test choose every ideal output exactly.
    """
    n = 32
    profile = make_profile(
        geometry=Geometry(tiles=1, rows=n, cols=n),
        conductance=ConductanceRange(g_min_us=0.0, g_max_us=G_MAX),
        converters=Converters(adc_bits=bits, adc_full_scale_ua=full_scale),
    )
    board = make_driver(profile)
    diag = np.linspace(20.0, 40.0, n).astype(np.float32)
    board.program(0, np.diag(diag))
    return board, diag


@pytest.mark.parametrize("bits", [3, 6, 10])
@pytest.mark.parametrize("direction", ["mvm", "transpose"])
def test_adc_rounds_to_lsb_clips_and_counts_saturation(bits: int, direction: str) -> None:
    """Outputs are rounded to LSB = FS/(2^(bits−1) − 1), clipped at ±FS, and
    saturated_outputs counts exactly the outputs whose ideal value is beyond ±FS.

    Ideal outputs are chosen as (k + δ)·LSB with |δ| ≤ 0.4 (no rounding ties) and
    |k| ≠ L (nothing within an LSB of full scale), |k| < 2L: up to twice full scale.
    """
    full_scale = 1.9  # µA: 2·FS is reachable with |V| ≤ 0.2 V since every g_j ≥ 20 µS
    levels = _levels(bits)
    lsb = full_scale / levels
    board, diag = _diagonal_board(bits, full_scale)
    rng = np.random.default_rng(bits)
    batch, n = 64, diag.size
    k = rng.integers(-(2 * levels - 1), 2 * levels, (batch, n))
    k[k == levels] += 1  # nowhere near the full-scale boundary
    k[k == -levels] -= 1
    wanted = (k + rng.uniform(-0.4, 0.4, k.shape)) * lsb
    v = (wanted / diag).astype(np.float32)
    assert np.abs(v).max() <= V_MAX
    ideal = v.astype(np.float64) * diag  # what the analog array delivers (V_j·g_j)

    run = board.mvm if direction == "mvm" else board.transpose_mvm
    result = run(0, v)
    codes = np.clip(np.rint(ideal / lsb), -levels, levels)
    np.testing.assert_allclose(result.currents, codes * lsb, rtol=1e-6, atol=0)
    beyond = int(np.count_nonzero(np.abs(ideal) > full_scale))
    assert 0 < beyond < ideal.size
    assert np.count_nonzero(ideal > full_scale) and np.count_nonzero(ideal < -full_scale)
    assert result.saturated_outputs == beyond
    assert np.abs(result.currents).max() == pytest.approx(full_scale, rel=1e-6)


def test_adc_bits_zero_neither_rounds_nor_clips() -> None:
    """adc_bits = 0: outputs beyond adc_full_scale_ua pass unclipped and nothing saturates."""
    board, diag = _diagonal_board(0, 1.9)
    v = np.full((1, diag.size), V_MAX, np.float32)
    result = board.mvm(0, v)
    np.testing.assert_allclose(result.currents[0], V_MAX * diag, rtol=1e-6)
    assert result.currents.min() > 2 * 1.9
    assert result.saturated_outputs == 0
