"""Numerical differentiation on the host (reference for board-side estimators)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["cosine", "cosine_measures", "numerical_gradient", "numerical_jacobian"]

Array = npt.NDArray[np.float64]


def numerical_gradient(f: Callable[[Array], float], x: npt.ArrayLike, h: float = 1e-5) -> Array:
    """Central-difference gradient of scalar ``f`` at ``x``: (f(x+h·e_i) − f(x−h·e_i)) / 2h.

    Costs 2·x.size evaluations of ``f``; the error is O(h²).
    """

    def scalar(v: Array) -> Array:
        value = np.asarray(f(v), dtype=np.float64)
        if value.size != 1:  # a vector f has a Jacobian, not a gradient
            raise ValueError(f"f: returned shape {list(value.shape)}, expected a scalar")
        return value.reshape(1)

    jacobian = numerical_jacobian(scalar, x, h)
    gradient: Array = jacobian[0, :]
    return gradient


def numerical_jacobian(
    f: Callable[[Array], npt.ArrayLike], x: npt.ArrayLike, h: float = 1e-5
) -> Array:
    """Central-difference Jacobian J[i, j] = ∂f_i/∂x_j of vector ``f`` at ``x``."""
    if not h > 0.0:
        raise ValueError(f"h: got {h}, expected a positive step")
    x0 = np.asarray(x, dtype=np.float64)
    if x0.ndim != 1 or x0.size == 0:
        raise ValueError(f"x: got shape {list(x0.shape)}, expected a 1-D vector of >= 1 values")
    columns = []
    for j in range(x0.size):
        step = np.zeros_like(x0)
        step[j] = h
        plus = np.asarray(f(x0 + step), dtype=np.float64)
        minus = np.asarray(f(x0 - step), dtype=np.float64)
        columns.append((plus - minus) / (2.0 * h))
    return np.stack(columns, axis=-1)


def cosine(a: npt.ArrayLike | None, b: npt.ArrayLike) -> float:
    """Cosine of the angle between ``a`` and ``b`` flattened (0 if either is zero): how
    well a board-side gradient points along the exact one."""
    u, v = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    norm = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(u @ v) / norm if norm > 0.0 else 0.0


def cosine_measures(cosines: Sequence[Sequence[float]], layers: int) -> dict[str, Any]:
    """The record's gradient-cosine figures of a run that measured ``cosines`` (a row per
    measurement, the cosine of each of its ``layers``, NaN for a frozen one):
    ``gradient_cosine``, each layer's mean over the run, and ``gradient_cosine_last``,
    over its last tenth; None where nothing was measured."""
    table = np.array(cosines, np.float64).reshape(-1, layers)
    if not len(table):  # a run that measured none (a checkpoint's own rows are kept)
        table = np.full((1, layers), np.nan)
    tail = table[-max(1, len(table) // 10) :]

    def rounded(value: float) -> float | None:
        return None if np.isnan(value) else round(float(value), 4)

    return {
        "gradient_cosine": [rounded(c) for c in table.mean(axis=0)],
        "gradient_cosine_last": [rounded(c) for c in tail.mean(axis=0)],
    }
