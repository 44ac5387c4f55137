"""Spall's rules for SPSA gains, measured on the objective itself.

- c ≈ the standard deviation of the loss measurement noise (rule 3), never
  below a floor that keeps the difference above the noise when it is small;
- A ≈ 10 % of the steps (rule 2);
- a such that the first step moves a typical weight by ``target_step``
  (rule 4: a/(A+1)^α·mean|ĝ₀| = target), averaged over several ĝ₀.

Every evaluation spent here is counted in the returned ``nfev``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.drivers.rademacher import rademacher
from sidra.training.schedules import SPALL_ALPHA, Schedule, spall_gains
from sidra.training.spsa import Evaluator

__all__ = ["Calibration", "calibrate", "noise_level"]


@dataclass(frozen=True, slots=True)
class Calibration:
    a: float
    c: float
    stability: float
    """Spall's A."""
    noise_std: float
    """Measured std of the loss at x0 (use 2× as blocking's allowed increase)."""
    mean_gradient: float
    """Mean |ĝ₀ component| over the calibration samples."""
    nfev: int
    """Evaluations spent calibrating."""

    def schedules(self, steps: int) -> tuple[Schedule, Schedule]:
        return spall_gains(self.a, self.c, steps, stability=self.stability)


def noise_level(evaluate: Evaluator, x0: npt.ArrayLike, samples: int = 10) -> float:
    """Std of the loss over ``samples`` repeated unperturbed evaluations at ``x0``."""
    x = np.asarray(x0, dtype=np.float32)
    losses = [evaluate(x, [()])[0] for _ in range(samples)]
    return float(np.std(losses, ddof=1)) if samples > 1 else 0.0


def calibrate(
    evaluate: Evaluator,
    x0: npt.ArrayLike,
    steps: int,
    rng: np.random.Generator,
    *,
    target_step: float = 0.02,
    c_floor: float = 0.1,
    samples: int = 25,
    noise_samples: int = 10,
) -> Calibration:
    """Gains for ``steps`` SPSA steps from x0 by Spall's rules (see module docstring)."""
    x = np.asarray(x0, dtype=np.float32)
    noise = noise_level(evaluate, x, noise_samples)
    c = max(c_floor, noise)
    magnitudes = []
    for seed in rng.integers(0, 2**63, size=samples):
        plus, minus = evaluate(x, [((int(seed), c),), ((int(seed), -c),)])
        gradient = (plus - minus) / (2.0 * c) * rademacher(int(seed), x.shape)
        magnitudes.append(float(np.mean(np.abs(gradient))))
    stability = 0.1 * steps
    mean_gradient = float(np.mean(magnitudes))
    a = target_step * (stability + 1) ** SPALL_ALPHA / mean_gradient if mean_gradient else 1.0
    return Calibration(a, c, stability, noise, mean_gradient, noise_samples + 2 * samples)
