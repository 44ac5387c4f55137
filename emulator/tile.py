"""One crossbar tile: conductance state and the physics of every operation on it.

State per cell: ``g_prog`` (what the last Program left, µS), ``g`` (the
written conductance: g_prog plus any perturbation), the drift exponent ν, the
virtual time of the last write and a write counter; per tile, static defects
(stuck cells, gain variation) drawn once from the tile's own random stream.

Everything an analog pass needs that depends only on the state and the clock
(drift, defects, IR drop, DAC/ADC scaling) is folded into one cached matrix,
so a pass costs one float32 matmul plus its per-pass effects: DAC rounding,
read noise and ADC rounding/saturation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.drivers.rademacher import rademacher
from sidra.drivers.types import Region
from sidra.emulator import drift
from sidra.emulator.config import BoardProfile, ConductanceNoiseModel, DriftModel
from sidra.emulator.gaussian import gaussian
from sidra.emulator.kernel import PassKernel

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class WriteVerifyOutcome:
    """Raw result of a write-verify loop over a region."""

    iterations: int
    pulses: int
    rms_error_us: float
    max_error_us: float
    unconverged: int


@dataclass(frozen=True, slots=True)
class PassResult:
    """Output of analog passes: currents (µA) and saturated ADC outputs."""

    currents: FloatArray
    saturated: int


PARALLEL_MIN_BATCH = 128
"""Batches at least this large finish their passes on two threads."""
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sidra-pass")


def _rows(std: FloatArray | None, rows: slice) -> FloatArray | None:
    return None if std is None else std[rows]


def _cells(
    matrix: FloatArray, variance: FloatArray | None, region: Region | None
) -> tuple[FloatArray, FloatArray | None]:
    """The pass matrix and cell variance over ``region`` (resolved; None: the whole tile).
    Views, never copies: a small region costs a small product."""
    if region is None:
        return matrix, variance
    cells = region.slices
    return matrix[cells], None if variance is None else variance[cells]


def _mask(shape: tuple[int, int], cells: tuple[tuple[int, int], ...]) -> npt.NDArray[np.bool_]:
    """A boolean map of ``shape`` true at ``cells`` (row, column)."""
    mask = np.zeros(shape, bool)
    if cells:
        rows, cols = zip(*cells, strict=True)
        mask[list(rows), list(cols)] = True
    return mask


def _levels(bits: int) -> int:
    """Codes per polarity of a signed converter."""
    return (1 << (bits - 1)) - 1 if bits > 1 else 1


class CrossbarTile:
    """A rows × cols crossbar with its own random stream."""

    def __init__(self, profile: BoardProfile, rng: np.random.Generator, index: int = 0) -> None:
        """``index``: the tile's place on the board (which stuck map applies)."""
        self._p = profile
        self._rng = rng
        self._noise_rngs = rng.spawn(2)
        shape = (profile.geometry.rows, profile.geometry.cols)
        lo = profile.conductance.g_min_us
        # A fresh tile sits in its high-resistance state, "programmed" there at t = 0.
        self.g_prog: FloatArray = np.full(shape, lo, np.float32)
        self.g: FloatArray = self.g_prog.copy()
        self.nu: FloatArray = np.zeros(shape, np.float32)
        self.written_at_s = np.zeros(shape, np.float64)
        self.writes = np.zeros(shape, np.uint32)
        var = profile.variation
        self.gain: FloatArray = (
            1.0 + var.gain_spread * rng.standard_normal(shape, dtype=np.float32)
            if var.gain_spread > 0.0
            else np.ones(shape, np.float32)
        )
        u = rng.random(shape, dtype=np.float32)
        self.stuck_min = u < var.stuck_at_min_fraction
        self.stuck_max = (u >= var.stuck_at_min_fraction) & (
            u < var.stuck_at_min_fraction + var.stuck_at_max_fraction
        )
        stuck = var.stuck_map(index)
        if stuck is not None:  # a measured map replaces the draw (made anyway: same streams)
            self.stuck_min = _mask(shape, stuck.at_min)
            self.stuck_max = _mask(shape, stuck.at_max)
        gains = var.gain_map(index)
        if gains is not None:  # likewise the measured gains
            self.gain = gains.gains(*shape)
        self.compensation = 1.0

        dac, adc = profile.converters.dac_bits, profile.converters.adc_bits
        self.dac_step_v = profile.read_voltage_max_v / _levels(dac) if dac else 0.0
        self.adc_levels = _levels(adc) if adc else 0
        self.adc_lsb_ua = profile.converters.adc_full_scale_ua / self.adc_levels if adc else 0.0
        self._kernel = PassKernel(self, (self.dac_step_v or 1.0) / (self.adc_lsb_ua or 1.0))
        # Read noise in converter units, fixed by the profile (worked out once: every
        # pass needs it). Output variance in LSB², conductance sigma per input step.
        rn, out_unit = profile.read_noise, self.adc_lsb_ua or 1.0
        g_sigma = rn.sigma_g_fraction * profile.conductance.g_max_us
        self._read_noise = (
            (rn.output_noise_ua / out_unit) ** 2,
            g_sigma * (self.dac_step_v or 1.0) / out_unit,
            rn.conductance_model is ConductanceNoiseModel.CONSTANT,
        )

    @property
    def profile(self) -> BoardProfile:
        return self._p

    # -- state-dependent kernel -----------------------------------------------

    def kernel(self, now_s: float) -> PassKernel:
        """The pass kernel, brought up to date with the state and the clock."""
        return self._kernel.refresh(now_s)

    # -- analog reads -------------------------------------------------------

    def mvm(
        self,
        voltages: FloatArray,
        now_s: float,
        out: FloatArray | None = None,
        region: Region | None = None,
    ) -> PassResult:
        """Row-driven passes: currents[b, j] = Σ_i V[b, i]·G_eff[i, j] + noise (µA), i and j
        over ``region``'s rows and columns (None: the whole tile). Undriven rows are 0 V
        and unread columns unconverted, so only the region's cells enter the product.
        ``out``: a float32 [batch, outputs] array the currents are computed in (else new)."""
        k = self.kernel(now_s)
        matrix, variance = _cells(k.matrix, k.cell_variance, region)
        return self._pass(voltages, matrix, variance, out)

    def transpose_mvm(
        self,
        voltages: FloatArray,
        now_s: float,
        out: FloatArray | None = None,
        region: Region | None = None,
    ) -> PassResult:
        """Column-driven passes: currents[b, i] = Σ_j V[b, j]·G_eff[i, j] + noise (µA), over
        ``region`` as :meth:`mvm`. ``out``: a float32 [batch, outputs] array (else new)."""
        k = self.kernel(now_s)
        matrix, variance = _cells(k.matrix, k.cell_variance, region)
        return self._pass(voltages, matrix.T, None if variance is None else variance.T, out)

    def _pass(
        self,
        voltages: FloatArray,
        matrix: FloatArray,
        cell_variance: FloatArray | None,
        out: FloatArray | None,
    ) -> PassResult:
        # Inputs become DAC codes; the step is folded into `matrix`.
        x: FloatArray = voltages
        if self.dac_step_v:
            x = voltages * np.float32(1.0 / self.dac_step_v)
            np.rint(x, out=x)
        # In ADC LSBs when there is an ADC, else µA; everything after works in place.
        y: FloatArray = x @ matrix if out is None else np.matmul(x, matrix, out=out)
        std = self._noise_std(x, cell_variance)
        # The per-output work (noise, ADC) runs on two halves of the batch, each
        # with its own random stream: in parallel for large batches, inline for
        # small ones, with identical results either way.
        if std is None and len(y) < PARALLEL_MIN_BATCH:  # no noise: no streams to split
            return PassResult(y, self._finish(y, None, self._noise_rngs[0]))
        half = len(y) // 2
        if not half:  # one vector: the second half is all of it (the first draws nothing)
            return PassResult(y, self._finish(y, std, self._noise_rngs[1]))
        chunks = [(slice(0, half), self._noise_rngs[0]), (slice(half, None), self._noise_rngs[1])]
        if len(y) >= PARALLEL_MIN_BATCH:
            saturated = sum(
                _POOL.map(lambda c: self._finish(y[c[0]], _rows(std, c[0]), c[1]), chunks)
            )
        else:
            saturated = sum(self._finish(y[sl], _rows(std, sl), rng) for sl, rng in chunks)
        return PassResult(y, saturated)

    def _finish(self, y: FloatArray, std: FloatArray | None, rng: np.random.Generator) -> int:
        """Read noise, ADC and unit conversion of a block of outputs, in place."""
        if std is not None and len(y):
            noise = gaussian(rng, y.shape)
            noise *= std
            y += noise
        saturated = 0
        if self.adc_levels and len(y):
            np.rint(y, out=y)
            top = float(self.adc_levels)
            # An output saturates when its code reaches full scale. That is rare:
            # two cheap reductions decide whether to count and clip at all.
            if float(y.max()) >= top or float(y.min()) <= -top:
                saturated = int(np.count_nonzero(y >= top)) + int(np.count_nonzero(y <= -top))
                np.clip(y, -top, top, out=y)
        unit = (self.adc_lsb_ua or 1.0) * self.compensation
        if unit != 1.0:
            y *= np.float32(unit)
        return saturated

    def _noise_std(self, x: FloatArray, cell_variance: FloatArray | None) -> FloatArray | None:
        """Std of the read noise of each output, [batch, 1] or [batch, outputs]; None if 0."""
        out_var, g_sigma, constant_g = self._read_noise
        if out_var == 0.0 and (g_sigma == 0.0 or not constant_g) and cell_variance is None:
            return None
        # Per-row variance σ_out² + σ_g²·‖V‖² and, for state-dependent noise,
        # per-output variance V² @ σ_ij².
        variance: FloatArray = np.full((len(x), 1), out_var, np.float32)
        if constant_g and g_sigma > 0.0:
            norms: FloatArray = np.einsum("bi,bi->b", x, x)
            variance += np.float32(g_sigma**2) * norms[:, None]
        if cell_variance is not None:
            variance = variance + np.asarray((x * x) @ cell_variance, dtype=np.float32)
        return np.sqrt(variance, dtype=np.float32)

    def read(self, region: Region, now_s: float) -> FloatArray:
        """Measured conductances of a region, one noisy read per cell (µS)."""
        k = self.kernel(now_s)
        g = k.measured[region.slices].copy()
        if k.cell_sigma_us is not None:
            g += k.cell_sigma_us[region.slices] * gaussian(self._rng, g.shape)
        elif self._p.read_noise.conductance_model is ConductanceNoiseModel.CONSTANT:
            sigma = self._p.read_noise.sigma_g_fraction * self._p.conductance.g_max_us
            if sigma > 0.0:
                g += np.float32(sigma) * gaussian(self._rng, g.shape)
        return g

    # -- writes -------------------------------------------------------------

    def program(
        self, region: Region, targets: FloatArray, now_s: float, pulse_budget: npt.NDArray[np.int64]
    ) -> WriteVerifyOutcome:
        """Write-verify the region towards ``targets`` (µS); clears its perturbation and
        sets the tile's calibration gain back to 1.

        ``pulse_budget`` caps the pulses each cell may take (endurance).
        """
        cfg = self._p.programming
        lo, hi = self._p.conductance.g_min_us, self._p.conductance.g_max_us
        sl = region.slices
        # Verify reads the device as it is now: perturbation and drift included
        # (gain variation is outside the verify path, see Variation).
        present = self.g[sl] * self._drift_factor(sl, now_s)
        g = present.copy()
        stuck = self.stuck_min[sl] | self.stuck_max[sl]
        stuck_value = np.where(self.stuck_max[sl], hi, lo).astype(np.float32)
        pulses = np.zeros(region.shape, np.int64)
        iterations = 0
        for _ in range(cfg.max_iterations):
            # Verify first: a cell already within tolerance takes no pulse, so
            # re-programming unchanged targets costs no endurance.
            seen = np.where(stuck, stuck_value, g)
            active = np.abs(targets - seen) > cfg.tolerance_us
            active &= pulses < pulse_budget
            if not active.any():
                break
            iterations += 1
            pulses += active
            n = int(active.sum())
            if self._exact_pulses:
                # g + (target - g) is not always target in float32: write it as is.
                g[active] = targets[active]
                continue
            step = (targets - g)[active] * self._pulse_gain(n)
            if cfg.pulse_noise_us > 0.0:
                step += cfg.pulse_noise_us * self._rng.standard_normal(n, dtype=np.float32)
            g[active] = np.clip(g[active] + step, lo, hi)
        written = pulses > 0
        if cfg.relaxation_poly_us and written.any():
            sigma = np.polynomial.polynomial.polyval(targets / hi, cfg.relaxation_poly_us)
            noise = sigma.astype(np.float32) * self._rng.standard_normal(g.shape, dtype=np.float32)
            g = np.where(written, np.clip(g + noise, lo, hi), g)
        # Pulsed cells start afresh (new state, age 0, new ν); untouched cells keep
        # their state and age. Either way the region's programmed state is what
        # the cell holds now, so a later RESTORE returns here.
        base = np.where(written, g, self.g[sl])
        self.g[sl] = base
        self.g_prog[sl] = base
        self.nu[sl] = np.where(written, drift.draw_nu(self._p, g, self._rng), self.nu[sl])
        self.written_at_s[sl] = np.where(written, now_s, self.written_at_s[sl])
        self.writes[sl] += pulses.astype(np.uint32)
        self._kernel.mark_dirty(region)
        # A Calibrate's gain was measured for the state this Program replaced: kept, it
        # scales fresh cells by the old cells' drift (a model deployed over a calibrated
        # one read at 23 % instead of 85 %). aihwkit's program_weights resets it alike.
        self.compensation = 1.0
        residual = np.where(stuck, stuck_value, np.where(written, g, present)) - targets
        return WriteVerifyOutcome(
            iterations=iterations,
            pulses=int(pulses.sum()),
            rms_error_us=float(np.sqrt(np.mean(residual.astype(np.float64) ** 2))),
            max_error_us=float(np.max(np.abs(residual))),
            unconverged=int(np.count_nonzero(np.abs(residual) > cfg.tolerance_us)),
        )

    def _drift_factor(self, sl: tuple[slice, slice], now_s: float) -> FloatArray:
        d = self._p.drift
        if d.model is DriftModel.NONE:
            return np.ones(self.g[sl].shape, np.float32)
        age = (now_s - self.written_at_s[sl]).astype(np.float32)
        return drift.drift_factor(self.nu[sl], age, d.t0_s)

    @property
    def _exact_pulses(self) -> bool:
        cfg = self._p.programming
        return cfg.pulse_gain == 1.0 and cfg.pulse_gain_spread == 0.0 and cfg.pulse_noise_us == 0.0

    def _pulse_gain(self, n: int) -> FloatArray | float:
        cfg = self._p.programming
        if cfg.pulse_gain_spread == 0.0:
            return cfg.pulse_gain
        spread = self._rng.standard_normal(n, dtype=np.float32)
        return cfg.pulse_gain * (1.0 + cfg.pulse_gain_spread * spread)

    def perturb(
        self, region: Region, seed: int, amplitude_us: float, sign: int, now_s: float
    ) -> int:
        """Sets the region to g_prog + sign·amplitude·Δ(seed); returns clipped cells."""
        delta = rademacher(seed, region.shape)
        g = self.g_prog[region.slices] + np.float32(sign * amplitude_us) * delta
        noise = self._p.perturbation.write_noise_us
        if noise > 0.0:
            g += noise * self._rng.standard_normal(g.shape, dtype=np.float32)
        lo, hi = self._p.conductance.g_min_us, self._p.conductance.g_max_us
        clipped = int(np.count_nonzero((g < lo) | (g > hi)))
        self._write(region, np.clip(g, lo, hi), now_s)
        return clipped

    def restore(self, region: Region, now_s: float) -> None:
        """Returns the region to its programmed state."""
        self._write(region, self.g_prog[region.slices], now_s)

    def _write(self, region: Region, g: FloatArray, now_s: float) -> None:
        # A single-pulse write of every cell of the region.
        self.g[region.slices] = g
        self.written_at_s[region.slices] = now_s
        self.writes[region.slices] += 1
        self._kernel.mark_dirty(region)

    # -- drift compensation ---------------------------------------------------

    def calibrate(self, now_s: float, passes: int) -> float:
        """Global drift compensation; returns the new output gain.

        The reference is the noise-free response of the programmed state
        (g_prog with the tile's static defects, no drift) to a probe; the
        measurement averages ``passes`` real passes of the same probe. Outputs
        are scaled by reference / measurement from then on (aihwkit
        GlobalDriftCompensationWithExactReference). The probe drives evenly
        spread rows at one voltage (at most half the read range, on a DAC
        level), few enough that no output should pass half the ADC's full
        scale, so only drift, read noise and IR drop separate measurement from
        reference. Calibrate with no perturbation active.
        """
        p = self._p
        programmed = self.g_prog * self.gain
        programmed[self.stuck_min] = p.conductance.g_min_us
        programmed[self.stuck_max] = p.conductance.g_max_us
        rows = p.geometry.rows
        volts, driven = p.read_voltage_max_v / 2.0, rows
        if self.adc_levels:
            # Mean conductance per row of the fullest column bounds every output.
            per_row_us = max(float(programmed.sum(axis=0).max()) / rows, 1e-12)
            half_scale = 0.5 * p.converters.adc_full_scale_ua
            driven = int(min(rows, max(1.0, half_scale / (volts * per_row_us))))
            volts = min(volts, half_scale / (driven * per_row_us))
        if self.dac_step_v:
            volts = max(np.floor(volts / self.dac_step_v), 1.0) * self.dac_step_v
        probe = np.zeros((passes, rows), np.float32)
        probe[:, np.unique(np.linspace(0, rows - 1, driven).round().astype(int))] = volts
        # Reference and measurement over the same batch, averaged in float64: an
        # ideal tile then measures exactly its reference (gain 1, outputs unchanged)
        # instead of differing by float32 summation order.
        reference = float(np.mean(np.abs(probe @ programmed), dtype=np.float64))
        self.compensation = 1.0
        measured = float(np.mean(np.abs(self.mvm(probe, now_s).currents), dtype=np.float64))
        self.compensation = reference / measured if measured > 0.0 else 1.0
        return self.compensation
