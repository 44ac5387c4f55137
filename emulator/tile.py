"""One crossbar tile: conductance state and the physics of every operation on it.

All device physics of the emulator lives here, so the full model grows in one
place. State per cell: ``g_prog`` (what the last Program left, µS) and ``g``
(the present conductance: g_prog plus any active perturbation). Arithmetic is
float32 end to end; each tile owns its random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.drivers.rademacher import rademacher
from sidra.drivers.types import Region
from sidra.emulator.config import BoardProfile

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class WriteVerifyOutcome:
    """Raw result of a write-verify loop over a region."""

    iterations: int
    pulses: int
    rms_error_us: float
    max_error_us: float
    unconverged: int


class CrossbarTile:
    """A rows × cols crossbar with its own random stream."""

    def __init__(self, profile: BoardProfile, rng: np.random.Generator) -> None:
        self._p = profile
        self._rng = rng
        shape = (profile.geometry.rows, profile.geometry.cols)
        # A fresh tile sits in its high-resistance state.
        self.g_prog: FloatArray = np.full(shape, profile.conductance.g_min_us, np.float32)
        self.g: FloatArray = self.g_prog.copy()

    # -- analog reads -------------------------------------------------------

    def mvm(self, voltages: FloatArray) -> FloatArray:
        """Row-driven pass: currents[b, j] = Σ_i V[b, i]·G[i, j] + read noise (µA)."""
        return self._with_read_noise(voltages @ self.g, voltages)

    def transpose_mvm(self, voltages: FloatArray) -> FloatArray:
        """Column-driven pass: currents[b, i] = Σ_j V[b, j]·G[i, j] + read noise (µA)."""
        return self._with_read_noise(voltages @ self.g.T, voltages)

    def read(self, region: Region) -> FloatArray:
        """Measured conductances of a region, one noisy read per cell (µS)."""
        g = self.g[region.slices].copy()
        sigma = self._read_sigma_us()
        if sigma > 0.0:
            g += sigma * self._rng.standard_normal(g.shape, dtype=np.float32)
        return g

    def _read_sigma_us(self) -> float:
        return self._p.read_noise.sigma_g_fraction * self._p.conductance.g_max_us

    def _with_read_noise(self, currents: FloatArray, voltages: FloatArray) -> FloatArray:
        sigma = self._read_sigma_us()
        if sigma > 0.0:
            # Independent per-cell noise σ·ξ_ij sums on each output to a Gaussian
            # with std σ·‖V_b‖₂: the same distribution at a fraction of the
            # random numbers (batch × outputs instead of batch × rows × cols).
            scale = sigma * np.sqrt(np.einsum("bi,bi->b", voltages, voltages))
            currents += scale[:, None] * self._rng.standard_normal(currents.shape, dtype=np.float32)
        return currents

    # -- writes -------------------------------------------------------------

    def program(self, region: Region, targets: FloatArray) -> WriteVerifyOutcome:
        """Write-verify the region towards ``targets`` (µS); clears its perturbation."""
        cfg = self._p.programming
        lo, hi = self._p.conductance.g_min_us, self._p.conductance.g_max_us
        g = self.g_prog[region.slices].copy()
        pulses = iterations = 0
        for _ in range(cfg.max_iterations):
            error = targets - g
            active = np.abs(error) > cfg.tolerance_us
            if iterations > 0 and not active.any():
                break
            if iterations == 0:
                # Every cell of the region is written at least once.
                active = np.ones_like(active)
            iterations += 1
            n = int(active.sum())
            pulses += n
            if self._exact_pulses:
                # g + (target - g) is not always target in float32: write it as is.
                g[active] = targets[active]
                continue
            step = error[active] * self._pulse_gain(n)
            if cfg.pulse_noise_us > 0.0:
                step += cfg.pulse_noise_us * self._rng.standard_normal(n, dtype=np.float32)
            g[active] = np.clip(g[active] + step, lo, hi)
        residual = g - targets
        self.g_prog[region.slices] = g
        self.g[region.slices] = g
        return WriteVerifyOutcome(
            iterations=iterations,
            pulses=pulses,
            rms_error_us=float(np.sqrt(np.mean(residual.astype(np.float64) ** 2))),
            max_error_us=float(np.max(np.abs(residual))),
            unconverged=int(np.count_nonzero(np.abs(residual) > cfg.tolerance_us)),
        )

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

    def perturb(self, region: Region, seed: int, amplitude_us: float, sign: int) -> int:
        """Sets the region to g_prog + sign·amplitude·Δ(seed); returns clipped cells."""
        delta = rademacher(seed, region.shape)
        g = self.g_prog[region.slices] + np.float32(sign * amplitude_us) * delta
        noise = self._p.perturbation.write_noise_us
        if noise > 0.0:
            g += noise * self._rng.standard_normal(g.shape, dtype=np.float32)
        lo, hi = self._p.conductance.g_min_us, self._p.conductance.g_max_us
        clipped = int(np.count_nonzero((g < lo) | (g > hi)))
        self.g[region.slices] = np.clip(g, lo, hi)
        return clipped

    def restore(self, region: Region) -> None:
        """Returns the region to its programmed state."""
        self.g[region.slices] = self.g_prog[region.slices]
