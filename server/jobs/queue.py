"""The jobs' queue: which waiting job may try to start, in which order, and when.

Policy (jobs.proto, "The queue"). A job of higher priority goes before every job of
lower priority. Among equals, principals take turns: a job's place is the number of
jobs its principal runs now plus those of its own queued before it; among equals, the
principal whose last job started longest ago (or never) goes first, then the earlier
submission. So a principal with nothing running goes before one that runs a job, one
who queued ten jobs does not keep everyone else's first job behind them, and when a
job ends the next principal in turn starts, not the same one again.

A job that waits for tiles keeps them from every job after it, so a job of the whole
board is not starved by a stream of small ones that each find their tiles free; a job
after it whose tiles no job ahead needs may start first. A job given no tiles whose
tiles a job ahead keeps (or another session leases) is placed again where a submission
now would place it, when that is on tiles nobody leases or waits for
(``place_again``), rather than wait behind for the tiles it happened to be given.
A job that waits only for its principal's ``max_jobs`` keeps no tiles (one
principal's backlog does not hold up the others).

:class:`JobQueue` runs passes: when asked (:meth:`JobQueue.kick`: a job ended, one was
queued or cancelled) and every :data:`QUEUE_POLL_S` while jobs wait (a lease a client
releases frees its tiles without telling the jobs' manager), one pass at a time, on a
thread that ends when none wait. How a job starts, and what it waits for, is the
caller's (``try_start``): this module knows only order and tiles.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "BEHIND",
    "QUEUE_POLL_S",
    "JobQueue",
    "Waiting",
    "WaitsForTiles",
    "queue_order",
    "queue_pass",
]

QUEUE_POLL_S = 1.0
"""How often, at most, the queue tries its waiting jobs when no job ends, s."""


class WaitsForTiles(str):
    """A reason ``try_start`` gives when the job waits for tiles (which it then keeps from
    later jobs)."""

    __slots__ = ()


BEHIND = "a job ahead in the queue waits for its tiles"
"""The reason of a job that waits behind one ahead of it needing some of its tiles."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A job in the queue, as a pass sees it."""

    job_id: str
    principal: str
    submitted_unix_s: float
    tiles: frozenset[int]
    """Every tile it needs (all of them for a job of the whole board)."""
    priority: int = 0
    """Higher goes first, before turns."""


def queue_order(
    waiting: Sequence[Waiting],
    running: Mapping[str, int],
    last_start: Mapping[str, float] | None = None,
) -> list[Waiting]:
    """``waiting`` in the order their turns come: higher priority first; then by the jobs
    their principal runs (``running``, by principal) plus its own queued before them that
    go first (of a priority no lower: one it gave way with comes after it anyway, and
    must not cost it a turn), then by when their principal last started a job
    (``last_start``, any one clock; absent: never), then by submission."""
    started = last_start or {}
    by_time = sorted(waiting, key=lambda job: (job.submitted_unix_s, job.job_id))
    before: dict[str, list[int]] = {}  # principal -> priorities of its jobs so far
    turns = {}
    for job in by_time:
        own = before.setdefault(job.principal, [])
        ahead_of_it = sum(1 for priority in own if priority >= job.priority)
        turns[job.job_id] = running.get(job.principal, 0) + ahead_of_it
        own.append(job.priority)
    return sorted(  # stable: submission breaks the remaining ties
        by_time,
        key=lambda job: (-job.priority, turns[job.job_id], started.get(job.principal, -math.inf)),
    )


def queue_pass(
    waiting: Sequence[Waiting],
    try_start: Callable[[Waiting], str],
    running: Mapping[str, int] | None = None,
    last_start: Mapping[str, float] | None = None,
    place_again: Callable[[Waiting], Waiting | None] | None = None,
) -> dict[str, str]:
    """One pass: ``try_start`` each job whose tiles no job ahead of it keeps, in the
    order of :func:`queue_order` (``try_start`` returns "" once started, else what the
    job waits for); returns what each job not started waits for, by id, as "queued, N
    ahead: reason". A job whose tiles one ahead keeps is tried on the tiles
    ``place_again`` gives it (none it waits for; None: it stays behind)."""
    ordered = queue_order(waiting, running or {}, last_start)
    kept: set[int] = set()
    reasons: dict[str, str] = {}
    ahead = 0
    for job in ordered:
        if job.tiles & kept and place_again is not None:
            moved = place_again(job)
            if moved is not None and not moved.tiles & kept:
                job = moved
        if job.tiles & kept:
            why = BEHIND
        else:
            why = try_start(job)
            if not why:
                continue
        if isinstance(why, WaitsForTiles) or why == BEHIND:
            kept |= job.tiles
        reasons[job.job_id] = f"queued, {ahead} ahead: {why}"
        ahead += 1
    return reasons


class JobQueue:
    """Runs :func:`queue_pass` over ``waiting()`` (empty, or ``stopping()``: nothing to
    do) with ``try_start``, ``running()`` (the jobs each principal runs) and
    ``last_start()`` (when each last started one), telling ``waits(reasons)`` what the
    jobs left wait for."""

    def __init__(
        self,
        waiting: Callable[[], list[Waiting]],
        try_start: Callable[[Waiting], str],
        waits: Callable[[dict[str, str]], None],
        stopping: Callable[[], bool],
        running: Callable[[], Mapping[str, int]] = dict,
        last_start: Callable[[], Mapping[str, float]] = dict,
        place_again: Callable[[Waiting], Waiting | None] | None = None,
    ) -> None:
        self._waiting = waiting
        self._running = running
        self._last_start = last_start
        self._try_start = try_start
        self._waits = waits
        self._stopping = stopping
        self._place_again = place_again
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
                turns = self._running(), self._last_start()
                reasons = queue_pass(waiting, self._try_start, *turns, self._place_again)
                self._waits(reasons)

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
