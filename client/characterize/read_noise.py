"""Read noise: conductance-referred (which model, how large) and output-referred.

Conductance-referred: the block is programmed to four levels (one per column
group) and read ``reads`` times. Each healthy cell's sample variance over its
reads is pooled per level: σ²(level) with SE σ²·√(2/(n(reads−1))). Two models are
fitted by weighted least squares and the one with the smaller χ² is kept:

- constant: σ(G) = σ_g, written as sigma_g_fraction = σ_g / g_max;
- PCM flicker: σ(G) = k·G·Q(G/g_max)·√ln((t0 + t_read)/(2·t_read)) with
  Q(x) = min(0.0088/max(x^0.65, 10⁻³), 0.2), read right after programming
  (age 0), t_read = 250 ns and t0 the drift time scale (20 s unless measured):
  k is flicker_scale.

Output-referred σ_out: one row at a time is driven at a small voltage, each input
repeated ``repeats`` times, so every output (column) is one group of repeated
reads with a known conductance-referred variance σ(G)²·V² (µA²). Through an ADC
σ_out is the marginal-likelihood estimate of :func:`quantised_noise_sigma`
(valid far below one LSB); with an ideal ADC it is mean(s² − σ(G)²·V²).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.blocks import program_block, read_repeated
from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate
from sidra.characterize.statistics import quantised_noise_sigma
from sidra.drivers import Region

__all__ = [
    "ConductanceNoiseFinding",
    "OutputNoiseFinding",
    "flicker_shape",
    "measure_conductance_noise",
    "measure_output_noise",
]

F64 = npt.NDArray[np.float64]
LEVELS = (0.15, 0.4, 0.65, 0.9)
"""Programmed levels, as fractions of the window from g_min."""
T_READ_S = 250e-9
DEFAULT_T0_S = 20.0


def flicker_shape(g_us: F64, g_max_us: float, t0_s: float = DEFAULT_T0_S) -> F64:
    """σ of the PCM flicker model at flicker_scale 1, age 0 (µS)."""
    x = np.clip(g_us / g_max_us, 0.0, None)
    q = np.minimum(0.0088 / np.maximum(np.power(x, 0.65), 1e-3), 0.2)
    out: F64 = np.abs(g_us) * q * np.sqrt(np.log((t0_s + T_READ_S) / (2.0 * T_READ_S)))
    return out


@dataclass(frozen=True, slots=True)
class ConductanceNoiseFinding:
    model: str
    """``constant`` or ``pcm-flicker``."""
    sigma_g_fraction: Estimate
    flicker_scale: Estimate
    level_g_us: tuple[float, ...]
    level_sigma_us: tuple[float, ...]
    cell_means_us: F64
    """Mean read per cell of the block (µS), at the levels programmed."""
    budget: Budget
    g_max_us: float

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.sigma_g_fraction, self.flicker_scale)

    def sigma_us(self, g_us: F64) -> F64:
        """Conductance-referred read-noise σ (µS) of cells at ``g_us`` under the model."""
        if self.model == "pcm-flicker":
            out: F64 = self.flicker_scale.value * flicker_shape(g_us, self.g_max_us)
            return out
        return np.full_like(g_us, self.sigma_g_fraction.value * self.g_max_us)


def measure_conductance_noise(
    board: MeteredBoard, tile: int, block: Region, stuck: npt.NDArray[np.bool_], reads: int = 8
) -> ConductanceNoiseFinding:
    """Conductance-referred read noise at four levels and its model (module docstring).
    Leaves the block programmed at the four levels (columns cycling through them)."""
    info = board.info
    span = info.g_max_us - info.g_min_us
    column_level = np.arange(block.cols) % len(LEVELS)
    targets = info.g_min_us + span * np.asarray(LEVELS)[column_level]
    with board.spend() as spent:
        program_block(board, tile, block, np.broadcast_to(targets, block.shape))
        samples = read_repeated(board, tile, block, reads)
    healthy = ~stuck[block.slices]
    means, variances = samples.mean(axis=0), samples.var(axis=0, ddof=1)
    g_levels, var_levels, se_levels = [], [], []
    for k in range(len(LEVELS)):
        cells = healthy & (column_level[None, :] == k)
        n = int(cells.sum())
        v = float(variances[cells].mean())
        g_levels.append(float(means[cells].mean()))
        var_levels.append(v)
        se_levels.append(max(v * np.sqrt(2.0 / (n * (reads - 1))), 1e-30))
    g, var, se = np.array(g_levels), np.array(var_levels), np.array(se_levels)
    w = 1.0 / se**2
    constant_var = float(np.sum(w * var) / np.sum(w))
    shape2 = flicker_shape(g, info.g_max_us) ** 2
    scale2 = float(np.sum(w * var * shape2) / np.sum(w * shape2**2))
    chi_constant = float(np.sum(w * (var - constant_var) ** 2))
    chi_flicker = float(np.sum(w * (var - scale2 * shape2) ** 2))
    model = "pcm-flicker" if chi_flicker < chi_constant and constant_var > 0 else "constant"
    note = (
        f"{reads} reads at {len(LEVELS)} levels; χ² constant {chi_constant:.3g}, "
        f"PCM flicker {chi_flicker:.3g}: {model}"
    )
    se_constant = float(1.0 / np.sqrt(np.sum(w)))
    sigma_c = float(np.sqrt(constant_var))
    fraction = Estimate(
        "read_noise.sigma_g_fraction",
        sigma_c / info.g_max_us if model == "constant" else 0.0,
        se_constant / (2 * max(sigma_c, 1e-12) * info.g_max_us) if model == "constant" else 0.0,
        "",
        note,
    )
    se_scale2 = float(1.0 / np.sqrt(np.sum(w * shape2**2)))
    scale = float(np.sqrt(max(scale2, 0.0)))
    flicker = Estimate(
        "read_noise.flicker_scale",
        scale if model == "pcm-flicker" else 1.0,
        se_scale2 / (2 * max(scale, 1e-12)) if model == "pcm-flicker" else 0.0,
        "",
        note if model == "pcm-flicker" else "not the PCM flicker model: default kept",
        measured=model == "pcm-flicker",
    )
    return ConductanceNoiseFinding(
        model, fraction, flicker, tuple(g_levels), tuple(np.sqrt(var)), means, spent[0],
        info.g_max_us,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class OutputNoiseFinding:
    output_noise_ua: Estimate
    budget: Budget

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.output_noise_ua,)


def measure_output_noise(
    board: MeteredBoard,
    tile: int,
    block: Region,
    conductance: ConductanceNoiseFinding,
    dac_step_v: float,
    adc_lsb_ua: float,
    rng: np.random.Generator,
    inputs: int = 16,
    repeats: int = 48,
) -> OutputNoiseFinding:
    """Output-referred read noise from repeated one-row passes (module docstring).
    Expects the block as :func:`measure_conductance_noise` left it."""
    info = board.info
    span = info.g_max_us - info.g_min_us
    # Largest drive: enough for the outputs' means to cover a few LSB across columns,
    # small enough that conductance noise does not swamp the output noise.
    u_max = 3.0 * adc_lsb_ua / span if adc_lsb_ua > 0 else 0.05 * info.read_voltage_max_v
    u_max = float(np.clip(u_max, dac_step_v, info.read_voltage_max_v))
    u = rng.uniform(u_max / 4, u_max, inputs)
    if dac_step_v > 0:
        u = np.maximum(np.rint(u / dac_step_v), 1.0) * dac_step_v
    rows = rng.choice(block.rows, inputs, replace=block.rows < inputs)
    drive = np.zeros((inputs, block.rows), np.float32)
    drive[np.arange(inputs), rows] = u
    with board.spend() as spent:
        passes = board.mvm(tile, np.repeat(drive, repeats, axis=0), block).currents
    y = passes.astype(np.float64).reshape(inputs, repeats, block.cols)
    groups = np.transpose(y, (0, 2, 1)).reshape(inputs * block.cols, repeats)
    g_cells = conductance.cell_means_us[rows]  # [inputs, cols]: the driven cells
    extra = (conductance.sigma_us(g_cells) * u[:, None]) ** 2  # µA²
    extra = extra.reshape(-1)
    if adc_lsb_ua > 0:
        codes = np.rint(groups / adc_lsb_ua).astype(np.int64)
        found = quantised_noise_sigma(codes, extra / adc_lsb_ua**2)
        sigma, se = found.sigma_lsb * adc_lsb_ua, found.se_lsb * adc_lsb_ua
        note = (
            f"{inputs} one-row inputs × {repeats} repeats, drive ≤ {u_max:.3g} V; "
            f"marginal likelihood through the ADC ({found.groups} groups spread over codes)"
        )
    else:
        excess = groups.var(axis=1, ddof=1) - extra
        var = max(float(excess.mean()), 0.0)
        sigma = float(np.sqrt(var))
        se_var = float(groups.var(axis=1, ddof=1).mean()) * np.sqrt(2.0 / groups.size)
        se = se_var / (2 * sigma) if sigma > 0 else float(np.sqrt(se_var))
        note = f"{inputs} one-row inputs × {repeats} repeats: mean(s² − σ(G)²V²)"
    return OutputNoiseFinding(
        Estimate("read_noise.output_noise_ua", sigma, se, "µA", note), spent[0]
    )
