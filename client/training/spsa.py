"""Simultaneous-perturbation stochastic approximation (SPSA, Spall 1992).

Each step perturbs every parameter at once by ±c_k·Δ (Δ Rademacher, drawn
from a seed with the board's own generator so Δ can be applied on the board
without crossing the wire), measures the two losses and moves

    x ← clip(x − a_k · (L⁺ − L⁻)/(2c_k) · Δ)       (1/Δ = Δ for ±1 entries)

The loss pair comes from a :class:`PairEvaluator`; on hardware it perturbs
the tile with the Perturb RPC, on the host it can be plain numpy. Every
evaluation is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sidra.client.training.schedules import Schedule
from sidra.drivers.rademacher import rademacher

__all__ = ["PairEvaluator", "SPSAResult", "SPSAStep", "minimize_spsa"]

Array = npt.NDArray[np.float32]


class PairEvaluator(Protocol):
    """Returns (L(x + cΔ), L(x − cΔ)) with Δ = rademacher(seed, x.shape)."""

    def __call__(self, x: Array, seed: int, c: float) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class SPSAStep:
    """What the callback sees after each step."""

    step: int
    """1-based step number."""
    x: Array
    """Parameters after the update."""
    loss_plus: float
    loss_minus: float
    learning_rate: float
    perturbation: float
    step_norm: float
    """‖x_k − x_(k−1)‖₂."""
    nfev: int
    """Loss evaluations so far."""


@dataclass(frozen=True, slots=True)
class SPSAResult:
    x: Array
    nit: int
    """Steps taken."""
    nfev: int
    """Loss evaluations (2 × resamplings per step)."""


def minimize_spsa(
    evaluate: PairEvaluator,
    x0: npt.ArrayLike,
    *,
    steps: int,
    learning_rate: Schedule,
    perturbation: Schedule,
    rng: np.random.Generator,
    resamplings: int = 1,
    bounds: tuple[float, float] | None = None,
    callback: Callable[[SPSAStep], bool | None] | None = None,
) -> SPSAResult:
    """Runs ``steps`` SPSA steps from ``x0``; a callback returning True stops early.

    Seeds of Δ come from ``rng``; ``resamplings`` gradient estimates (each a
    fresh Δ) are averaged per step; ``bounds`` clip x after every update.
    """
    if steps < 1 or resamplings < 1:
        raise ValueError(f"steps ({steps}) and resamplings ({resamplings}) must be >= 1")
    x = np.array(x0, dtype=np.float32)
    rates, perturbations = learning_rate(), perturbation()
    nfev = 0
    for k in range(1, steps + 1):
        a_k, c_k = next(rates), next(perturbations)
        gradient = np.zeros_like(x)
        last = (0.0, 0.0)
        for seed in rng.integers(0, 2**63, size=resamplings):
            last = evaluate(x, int(seed), c_k)
            nfev += 2
            gradient += np.float32((last[0] - last[1]) / (2.0 * c_k)) * rademacher(
                int(seed), x.shape
            )
        step = np.float32(a_k / resamplings) * gradient
        x = x - step
        if bounds is not None:
            np.clip(x, bounds[0], bounds[1], out=x)
        if callback is not None:
            report = SPSAStep(k, x, last[0], last[1], a_k, c_k, float(np.linalg.norm(step)), nfev)
            if callback(report):
                return SPSAResult(x, k, nfev)
    return SPSAResult(x, steps, nfev)
