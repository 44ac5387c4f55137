"""The jobs' queue: which waiting job may try to start, in which order, and when.

Policy (jobs.proto, "The queue"). Jobs are tried in submission order. A job that waits
for tiles keeps them from every later job, so a job of the whole board is not starved
by a stream of small ones that each find their tiles free; a later job whose tiles no
earlier waiting job needs may start first. A job that waits only for its principal's
``max_jobs`` keeps no tiles (one principal's backlog does not hold up the others).

:class:`JobQueue` runs passes: when asked (:meth:`JobQueue.kick`: a job ended, one was
queued or cancelled) and every :data:`QUEUE_POLL_S` while jobs wait (a lease a client
releases frees its tiles without telling the jobs' manager), one pass at a time, on a
thread that ends when none wait. How a job starts, and what it waits for, is the
caller's (``try_start``): this module knows only order and tiles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["QUEUE_POLL_S", "TILES", "JobQueue", "Waiting", "queue_pass"]

QUEUE_POLL_S = 1.0
"""How often, at most, the queue tries its waiting jobs when no job ends, s."""

TILES = "tiles"
"""How a reason ``try_start`` gives begins when the job waits for tiles (which it then
keeps from later jobs)."""

BEHIND = "an earlier queued job waits for its tiles"
"""The reason of a job that waits behind an earlier one needing some of its tiles."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A job in the queue, as a pass sees it."""

    job_id: str
    submitted_unix_s: float
    tiles: frozenset[int]
    """Every tile it needs (all of them for a job of the whole board)."""


def queue_pass(waiting: Sequence[Waiting], try_start: Callable[[Waiting], str]) -> dict[str, str]:
    """One pass: ``try_start`` each job whose tiles no earlier waiting job keeps, in
    submission order (it returns "" once started, else what the job waits for); returns
    what each job not started waits for, by id, as "queued, N ahead: reason"."""
    ordered = sorted(waiting, key=lambda job: (job.submitted_unix_s, job.job_id))
    kept: set[int] = set()
    reasons: dict[str, str] = {}
    ahead = 0
    for job in ordered:
        if job.tiles & kept:
            why = BEHIND
        else:
            why = try_start(job)
            if not why:
                continue
        if why.startswith(TILES) or why == BEHIND:
            kept |= job.tiles
        reasons[job.job_id] = f"queued, {ahead} ahead: {why}"
        ahead += 1
    return reasons


class JobQueue:
    """Runs :func:`queue_pass` over ``waiting()`` (empty, or ``stopping()``: nothing to
    do) with ``try_start``, telling ``waits(reasons)`` what the jobs left wait for."""

    def __init__(
        self,
        waiting: Callable[[], list[Waiting]],
        try_start: Callable[[Waiting], str],
        waits: Callable[[dict[str, str]], None],
        stopping: Callable[[], bool],
    ) -> None:
        self._waiting = waiting
        self._try_start = try_start
        self._waits = waits
        self._stopping = stopping
        self._passing = threading.Lock()  # one pass at a time
        self._kicked = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run_pass(self) -> None:
        """One pass now, in the caller's thread (after the one under way, if any)."""
        with self._passing:
            if self._stopping():
                return
            waiting = self._waiting()
            if waiting:
                self._waits(queue_pass(waiting, self._try_start))

    def kick(self) -> None:
        """Something changed (a job ended, one was queued or cancelled): pass soon, and
        keep passing while jobs wait. (The callbacks are called outside this queue's
        lock: the caller may hold its own, which they take.)"""
        self._kicked.set()
        if self._stopping() or not self._waiting():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="sidra-job-queue", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            self._kicked.wait(QUEUE_POLL_S)
            self._kicked.clear()
            self.run_pass()
            done = self._stopping() or not self._waiting()
            with self._lock:
                if done and not self._kicked.is_set():  # a kick since: pass again
                    self._thread = None
                    return
