"""Gain schedules as small generator factories (Spall's power series and constants).

A schedule is a zero-argument callable returning a fresh iterator, so an
optimizer can restart it (e.g. on resume) without sharing state.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

__all__ = ["Schedule", "constant", "powerseries", "spall_gains"]

Schedule = Callable[[], Iterator[float]]

SPALL_ALPHA = 0.602
"""Spall's practical learning-rate decay exponent (IEEE TAES 1998)."""
SPALL_GAMMA = 0.101
"""Spall's practical perturbation decay exponent (IEEE TAES 1998)."""


def powerseries(eta: float, power: float, offset: float = 0.0) -> Schedule:
    """Yields eta / (k + offset)^power for k = 1, 2, 3, ... (Spall's form)."""

    def series() -> Iterator[float]:
        for k in itertools.count(1):
            yield eta / (k + offset) ** power

    return series


def constant(value: float) -> Schedule:
    """Yields ``value`` forever."""
    return lambda: itertools.repeat(value)


def spall_gains(
    a: float,
    c: float,
    steps: int,
    *,
    alpha: float = SPALL_ALPHA,
    gamma: float = SPALL_GAMMA,
    stability: float | None = None,
) -> tuple[Schedule, Schedule]:
    """Learning rate a_k = a/(A + k)^α and perturbation c_k = c/k^γ, k = 1, 2, ...

    ``stability`` is Spall's A; by default 10 % of ``steps`` (his rule).
    """
    big_a = 0.1 * steps if stability is None else stability
    return powerseries(a, alpha, big_a), powerseries(c, gamma)
