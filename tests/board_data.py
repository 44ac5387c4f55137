"""Conductance and voltage matrices for tests: continuous ones, and dyadic ones whose
float32 arithmetic is exact (not a test module: nothing is collected here)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

V_MAX = 0.2
"""read_voltage_max_v of the default and ideal profiles, V."""
G_MIN, G_MAX = 1.0, 40.0
"""Default conductance window, µS."""


def uniform_g(
    rng: np.random.Generator, shape: tuple[int, int], lo: float = G_MIN, hi: float = G_MAX
) -> F32:
    """Continuous conductances in [lo, hi] µS."""
    return rng.uniform(lo, hi, shape).astype(np.float32)


def dyadic_g(
    rng: np.random.Generator, shape: tuple[int, int], lo: float = G_MIN, hi: float = G_MAX
) -> F32:
    """Conductances on a 1/16 µS grid in [lo, hi]: sums and ±0.5 steps are exact in float32."""
    return (rng.integers(int(lo * 16), int(hi * 16) + 1, shape) / 16).astype(np.float32)


def uniform_v(rng: np.random.Generator, shape: tuple[int, int], vmax: float = V_MAX) -> F32:
    """Continuous voltages within ±vmax, V."""
    return rng.uniform(-vmax, vmax, shape).astype(np.float32)


def dyadic_v(rng: np.random.Generator, shape: tuple[int, int], vmax: float = V_MAX) -> F32:
    """Voltages on a 1/256 V grid within ±vmax: V·G over 256 rows is exact in float32."""
    k = int(vmax * 256)
    return (rng.integers(-k, k + 1, shape) / 256).astype(np.float32)
