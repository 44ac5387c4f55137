"""Stopping a training run early and keeping what it did (Ctrl-C in ``sidra train``).

Each trainer takes a ``stop`` event and looks at it where its state is whole (an
SPSA step's boundary, the end of an epoch): set, the run ends there and is finished
as a complete run would be (evaluated, counted, its weights kept), its record saying
where it stopped (``stopped_at_step`` or ``stopped_at_epoch`` in its settings and its
summary). A stop asked during the last step or epoch changes nothing: the run ends
there anyway. ``sidra train`` sets it on Ctrl-C, a job in ``sidra serve`` on CancelJob.
"""

from __future__ import annotations

import threading
from typing import Any

from sidra.training.records import STOPPED_AT

__all__ = ["stopped"]


def stopped(
    stop: threading.Event | None,
    settings: dict[str, Any],
    done: int,
    last: int,
    unit: str = "epoch",
) -> bool:
    """Whether the run ends after its ``done``-th ``unit`` (epoch, step, run) because
    ``stop`` is set before its ``last``; if so, ``settings["stopped_at_<unit>"]`` (its
    record's settings) says after which."""
    if stop is None or not stop.is_set() or done >= last:
        return False
    settings[f"{STOPPED_AT}{unit}"] = done
    return True
