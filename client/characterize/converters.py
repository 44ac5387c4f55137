"""Converter resolution and full scale, from what the passes answer.

ADC: outputs are integer multiples of one LSB and clip at ±full scale. Driving the
whole tile at g_max with all rows at ±read_voltage_max_v saturates every column:
the largest |output| is the full scale. Random inputs at several scales give
outputs over many neighbouring codes: the LSB is the smallest gap between
distinct unsaturated outputs (refined as the median of the gaps within 1.5 of
it). bits = 1 + log2(full_scale/LSB + 1), which must come out an integer.

DAC: inputs are rounded to a grid of read_voltage_max_v / L volts, L = 2^(b−1) − 1.
Every driven row of a block gets the same swept voltage v, so each output is
a + S·q_b(v) + noise with q_b the rounding of a b-bit DAC. For each candidate b
(0 = ideal, 1 … 16) the per-column least-squares line on q_b(v) is fitted; the
candidate with the least residual sum of squares is the DAC. The noise is the
same for every candidate, so the wrong grid loses by its mismatch (about
S²·step²/12 per sample) summed over thousands of samples: exact for
resolutions whose step is above the noise floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate, declared, not_measured
from sidra.drivers import Region

__all__ = ["AdcFinding", "DacFinding", "measure_adc", "measure_dac", "levels"]

F64 = npt.NDArray[np.float64]
MAX_DAC_BITS = 16
"""Highest DAC resolution tried; finer grids are indistinguishable from an ideal DAC."""


def levels(bits: int) -> int:
    """Codes per polarity of a signed converter (1 for one bit and below)."""
    return (1 << (bits - 1)) - 1 if bits > 1 else 1


@dataclass(frozen=True, slots=True)
class AdcFinding:
    bits: Estimate
    full_scale_ua: Estimate
    lsb_ua: float
    """One output code, µA (0 for an ideal ADC)."""
    budget: Budget

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.bits, self.full_scale_ua)


@dataclass(frozen=True, slots=True)
class DacFinding:
    bits: Estimate
    step_v: float
    """One input code, V (0 for an ideal DAC)."""
    budget: Budget

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.bits,)


def measure_adc(board: MeteredBoard, tile: int, rng: np.random.Generator) -> AdcFinding:
    """ADC bits and full scale (µA). Programs the whole ``tile`` to g_max."""
    info = board.info
    with board.spend() as spent:
        board.program(tile, np.full((info.rows, info.cols), info.g_max_us, np.float32))
        v_max = info.read_voltage_max_v
        drive = np.repeat(np.array([[v_max], [-v_max]], np.float32), info.rows, axis=1)
        full = board.mvm(tile, np.repeat(drive, 4, axis=0))
        peak = float(np.abs(full.currents).max())
        outputs = [full.currents.ravel()]
        for scale in (1.0, 0.1, 0.02):
            v = rng.uniform(-scale * v_max, scale * v_max, (128, info.rows)).astype(np.float32)
            outputs.append(board.mvm(tile, v).currents.ravel())
    values = np.unique(np.concatenate(outputs).astype(np.float64))
    saturated = full.saturated_outputs > 0
    inner = values[np.abs(values) < peak * (1 - 1e-6)] if saturated else values
    gaps = np.diff(inner)
    gaps = gaps[gaps > 0]
    smallest = float(gaps.min()) if len(gaps) else 0.0
    what = "adc"
    if len(gaps) == 0 or smallest < 1e-6 * peak:  # no code grid above float resolution
        return AdcFinding(
            Estimate("converters.adc_bits", 0, 0.0, "bits", "outputs take continuous values"),
            not_measured("converters.adc_full_scale_ua", 100.0, "µA", "ideal ADC (no clipping)"),
            0.0,
            spent[0],
        )
    lsb = float(np.median(gaps[gaps < 1.5 * smallest]))
    if not saturated:
        bits_note = (
            f"no output clipped at the largest drive ({peak:.4g} µA): the full scale is "
            "above what this board can drive, so the resolution is the board's declaration"
        )
        return AdcFinding(
            declared("converters.adc_bits", info.adc_bits, "bits", bits_note),
            not_measured("converters.adc_full_scale_ua", peak, "µA", bits_note),
            lsb,
            spent[0],
        )
    codes = peak / lsb
    bits = 1 + int(round(np.log2(codes + 1)))
    off_grid = abs(codes - levels(bits))
    note = (
        f"LSB {lsb:.6g} µA (smallest output step), full scale {peak:.6g} µA = "
        f"{codes:.2f} LSB (clipped outputs); {what} codes ±{levels(bits)}"
    )
    if off_grid > 0.5:
        note += f"; WARNING full scale is {off_grid:.2f} LSB off a {bits}-bit grid"
    return AdcFinding(
        Estimate("converters.adc_bits", bits, 0.0, "bits", note),
        Estimate("converters.adc_full_scale_ua", peak, lsb / 2.0, "µA", note),
        lsb,
        spent[0],
    )


def _dac_grid(v: F64, bits: int, v_max: float) -> F64:
    if bits == 0:
        return v
    step = v_max / levels(bits)
    out: F64 = np.rint(v / step) * step
    return out


def measure_dac(
    board: MeteredBoard,
    tile: int,
    block: Region,
    adc: AdcFinding,
    rng: np.random.Generator,
    sweeps: int = 2048,
) -> DacFinding:
    """DAC bits by model selection over the rounding grids (module docstring).

    Programs ``block`` mid-window and drives as many of its rows as keep outputs
    below 60 % of the ADC's full scale."""
    info = board.info
    v_max = info.read_voltage_max_v
    g_level = 0.5 * (info.g_min_us + info.g_max_us)
    rows = block.rows
    if adc.lsb_ua > 0.0 and adc.full_scale_ua.measured:
        rows = int(np.clip(0.6 * adc.full_scale_ua.value / (v_max * g_level), 1, block.rows))
    with board.spend() as spent:
        board.program(
            tile,
            np.full((block.rows, block.cols), g_level, np.float32),
            row_offset=block.row_offset,
            col_offset=block.col_offset,
        )
        v = rng.uniform(-v_max, v_max, sweeps)
        drive = np.zeros((sweeps, block.rows), np.float32)
        drive[:, :rows] = v[:, None]
        y = board.mvm(tile, drive, block).currents.astype(np.float64)
    keep = np.ones(y.shape, bool)
    if adc.lsb_ua > 0.0 and adc.full_scale_ua.measured:
        keep = np.abs(y) < adc.full_scale_ua.value - adc.lsb_ua
    v64 = v.astype(np.float32).astype(np.float64)  # the voltages as the board received them
    sse = []
    for bits in range(MAX_DAC_BITS + 1):
        q = _dac_grid(v64, bits, v_max)
        total = 0.0
        for j in range(y.shape[1]):
            k = keep[:, j]
            design = np.stack([np.ones(int(k.sum())), q[k]], axis=1)
            _, residual, _, _ = np.linalg.lstsq(design, y[k, j], rcond=None)
            total += float(residual[0]) if len(residual) else 0.0
        sse.append(total)
    order = np.argsort(sse)
    best, runner = int(order[0]), int(order[1])
    margin = (sse[runner] - sse[best]) / max(sse[best], 1e-30)
    note = (
        f"{rows} rows swept together over {sweeps} voltages; least residual of the rounding "
        f"grids (runner-up {runner} bits has {margin:.1%} more)"
    )
    step = v_max / levels(best) if best else 0.0
    return DacFinding(Estimate("converters.dac_bits", best, 0.0, "bits", note), step, spent[0])
