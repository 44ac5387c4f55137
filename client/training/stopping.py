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
from pathlib import Path
from typing import Any

from sidra.drivers import SidraError
from sidra.training.records import STOPPED_AT

__all__ = ["RunInterrupted", "stopped"]


class RunInterrupted(Exception):
    """A run that lost its board (or was refused by it) mid-way, after ``steps`` steps:
    what it did is saved in ``checkpoint``, to resume from once the board is back.
    ``cause`` is the board's error (also ``__cause__``)."""

    def __init__(self, cause: SidraError, steps: int, checkpoint: Path) -> None:
        super().__init__(
            f"{type(cause).__name__}: {cause}; the {steps} steps made are kept in {checkpoint}"
        )
        self.cause, self.steps, self.checkpoint = cause, steps, checkpoint


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
