"""When a deployed model's tiles count as holding it: one rule for the training layer
(``DeployedModel``'s ``held=True``), ``sidra model check``, ``sidra model list`` and
``sidra status``. It imports nothing, so the commands that only ask a server for a
deployment's last check do not load the training code."""

from __future__ import annotations

__all__ = ["MIN_HELD_CORRELATION", "holds"]

MIN_HELD_CORRELATION = 0.5
"""Least correlation between the conductances a layer's tiles hold and the model's targets
for them for the tiles to count as holding the model (``held=True``). Drift, read noise
and stuck cells move the cells but keep most of their order (0.92–0.98 on sidra-y1 right
after programming and a year later, one read per cell); tiles holding another model or
nothing correlate near 0 (within about 1/√cells: ±0.04 for the smallest layer here,
65 × 10)."""


def holds(correlation: float) -> bool:
    """Whether tiles whose conductances correlate by ``correlation`` with the model's
    targets hold it (NaN, as from tiles read all alike: they do not)."""
    return correlation >= MIN_HELD_CORRELATION
