"""Stopping a training run early and keeping what it did (Ctrl-C in ``sidra train``).

Each trainer takes a ``stop`` event and looks at it where its state is whole (an
SPSA step's boundary, the end of an epoch): set, the run ends there and is finished
as a complete run would be (evaluated, counted, its weights kept), its record saying
where it stopped.
"""

from __future__ import annotations

import threading

from sidra.training.records import TrainingRecord

__all__ = ["stopped"]


def stopped(stop: threading.Event | None, record: TrainingRecord, epoch: int, last: int) -> bool:
    """Whether the run ends after ``epoch`` because ``stop`` is set before its ``last``
    epoch; if so, ``record.settings["stopped_at_epoch"]`` says after which."""
    if stop is None or not stop.is_set() or epoch >= last:
        return False
    record.settings["stopped_at_epoch"] = epoch
    return True
