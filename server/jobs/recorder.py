"""Records a job's board writes in the state store behind the job, in order.

A client's Program is recorded before it is answered: the answer promises it is
stored. A job's Programs are answered to no one, and one SPSA step programs the
layer once; recording it in the job's turn would put the store's transaction and
fsync (milliseconds) into every step. :class:`BehindRecorder` runs the recordings
on a thread of its own, in the order the board ran them, so the job's next step
overlaps the store's write. It wakes at most every :data:`GATHER_S` and hands
everything queued meanwhile to its ``run`` at once (the service's stores each run
of Programs in one transaction: sidra.server.recording), so the thread is busy, and
takes the GIL from the job, a few times a second rather than at every step. Every
recording is done before the job's final state is announced
(:meth:`BehindRecorder.drain`), and before a job registers a deployment again
(:meth:`BehindRecorder.flush`: its digests are of the targets the store holds); a
recording that fails fails the job at its next board call, with the store's error
(``ProgramNotRecorded``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

__all__ = ["GATHER_S", "BehindRecorder"]

GATHER_S = 0.05
"""After a recording arrives, the recorder waits this long for more before it runs
them, s: how far the store may lag a running job's board writes."""

_STOP = None

Recordings = Callable[[Sequence[Callable[[], None]]], None]
"""Runs a list of recordings in order (raising the first failure)."""


def _one_by_one(recordings: Sequence[Callable[[], None]]) -> None:
    for recording in recordings:
        recording()


class BehindRecorder:
    """Runs recordings handed to :meth:`record` on one thread, first in first out, those
    queued together through one call of ``run`` (default: one after the other)."""

    def __init__(
        self, name: str, run: Recordings = _one_by_one, gather_s: float = GATHER_S
    ) -> None:
        self._run_all = run
        self._gather_s = gather_s
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._draining = threading.Event()
        self._error: BaseException | None = None
        self.batches = 0
        """Calls of ``run`` so far."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def record(self, recording: Callable[[], None]) -> None:
        """Queues ``recording`` (a board call's store write)."""
        self._queue.put(recording)

    def check(self) -> None:
        """Raises the error of a recording that failed, if any."""
        if self._error is not None:
            raise self._error

    def flush(self) -> None:
        """Waits until every recording queued so far has run (the thread goes on);
        raises the first recording error."""
        done = threading.Event()
        self.record(done.set)
        # A recording that failed skips the rest, the marker with them: no wait for ever.
        while not done.wait(self._gather_s):
            if self._error is not None or not self._thread.is_alive():
                break
        self.check()

    def drain(self) -> None:
        """Runs every queued recording now, stops the thread; raises the first
        recording error."""
        self._queue.put(_STOP)
        self._draining.set()
        self._thread.join()
        self.check()

    def _run(self) -> None:
        stopped = False
        while not stopped:
            first = self._queue.get()
            if first is _STOP:
                return
            # Gathering: a drain ends the wait at once.
            self._draining.wait(self._gather_s)
            batch = [first]
            while not self._queue.empty():
                item = self._queue.get()
                if item is _STOP:
                    stopped = True
                    break
                batch.append(item)
            if self._error is not None:
                continue  # the job fails with the first error; later writes are moot
            self.batches += 1
            try:
                self._run_all(batch)
            except BaseException as exc:  # handed to the job's thread
                self._error = exc
