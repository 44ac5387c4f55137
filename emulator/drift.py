"""Conductance drift and the PCM state-dependent statistics (Nandakumar et al. 2019).

G(t) = G_prog·((t + t0)/t0)^(−ν), t = time since the cell was last written.
Formulas follow aihwkit's PCMLikeNoiseModel (``inference/noise/pcm.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sidra.emulator.config import BoardProfile, DriftModel

__all__ = ["draw_nu", "drift_factor", "pcm_flicker_q"]

Array = npt.NDArray[np.float32]


def draw_nu(profile: BoardProfile, conductances: Array, rng: np.random.Generator) -> Array:
    """Drift exponents for freshly programmed cells with ``conductances`` (µS)."""
    d = profile.drift
    if d.model is DriftModel.NONE:
        return np.zeros_like(conductances)
    if d.model is DriftModel.CONSTANT:
        mean = np.full_like(conductances, d.nu_mean)
        std = np.full_like(conductances, d.nu_std)
    else:
        log_x = np.log(np.clip(conductances / profile.conductance.g_max_us, 1e-6, None))
        mean = np.clip(-0.0155 * log_x + 0.0244, 0.049, 0.1)
        std = np.clip(-0.0125 * log_x - 0.0059, 0.008, 0.045)
    nu = np.abs(mean + std * rng.standard_normal(conductances.shape, dtype=np.float32))
    return nu.astype(np.float32)


def drift_factor(nu: Array, age_s: Array, t0_s: float) -> Array:
    """((t + t0)/t0)^(−ν) per cell."""
    factor: Array = np.power((age_s + t0_s) / t0_s, -nu, dtype=np.float32)
    return factor


def pcm_flicker_q(g: Array, g_max_us: float) -> Array:
    """Q_s = min(0.0088 / max(x^0.65, 1e-3), 0.2), x = G/g_max."""
    x = np.clip(g / g_max_us, 0.0, None)
    q: Array = np.minimum(0.0088 / np.maximum(np.power(x, 0.65), 1e-3), 0.2).astype(np.float32)
    return q
