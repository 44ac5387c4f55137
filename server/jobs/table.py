"""The jobs one server holds in memory, and the one condition they change under.

A job is held from its submission until its end is in the state store: queued,
running, or ended with an end the store refused (what only this process then knows);
every other job is read from the store. Every change to a held job, and every event it
adds, is made with :attr:`JobTable.changed` held, and wakes the job's watchers waiting
on it. The condition's lock is reentrant: a CancelJob holds it while it ends a queued
job, so the queue cannot start that job meanwhile.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from sidra.server.jobs.live import LiveJob
from sidra.server.state.jobs import JobEventRow, JobRecords, JobRow

__all__ = ["JobTable", "snapshot"]


class JobTable:
    """The jobs held in memory (:attr:`live`, by id), the store they are kept in and
    the clock their times are read from."""

    def __init__(self, records: JobRecords | None, clock: Callable[[], float]) -> None:
        self.records = records
        """Where jobs are kept (None: a server without a state store runs none)."""
        self.clock = clock
        """Unix time, s, of submissions, starts, ends and events."""
        self.changed = threading.Condition(threading.RLock())
        """Held for every change to a held job; notified at every new event."""
        self.live: dict[str, LiveJob] = {}
        """The jobs held in memory, by id."""

    def event(self, live: LiveJob, kind: str, **fields: Any) -> None:
        """Adds the next event of ``live`` and wakes its watchers (:attr:`changed` held)."""
        live.events.append(JobEventRow(len(live.events), self.clock(), kind, **fields))
        live.row.events = len(live.events)
        self.changed.notify_all()

    def held(self, job_id: str) -> LiveJob | None:
        """The job of that id if it is held in memory."""
        with self.changed:
            return self.live.get(job_id)

    def ids(self, state: str | None = None) -> list[str]:
        """Ids of the held jobs, only those in ``state`` when given."""
        with self.changed:
            return [i for i, j in self.live.items() if state is None or j.row.state == state]

    def count(self, principal: str, state: str) -> int:
        """How many of ``principal``'s held jobs are in ``state``."""
        with self.changed:
            return sum(
                1
                for j in self.live.values()
                if j.row.principal == principal and j.row.state == state
            )

    def running_by_principal(self) -> Counter[str]:
        """How many jobs each principal runs now."""
        with self.changed:
            return Counter(j.row.principal for j in self.live.values() if j.row.state == "running")


def snapshot(live: LiveJob) -> JobRow:
    """The job's row as it is now, a copy the caller may keep (without record files)."""
    return dataclasses.replace(live.row, files={})
