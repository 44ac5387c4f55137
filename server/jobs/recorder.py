"""Records a job's board writes in the state store behind the job, in order.

A client's Program is recorded before it is answered: the answer promises it is
stored. A job's Programs are answered to no one, and one SPSA step programs the
layer once; recording it in the job's turn would put the store's transaction and
fsync (milliseconds) into every step. :class:`BehindRecorder` runs the recordings
on a thread of its own, in the order the board ran them, so the job's next step
overlaps the store's write. Every recording is done before the job's final state
is announced (:meth:`BehindRecorder.drain`); a recording that fails fails the job
at its next board call, with the store's error (``ProgramNotRecorded``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["BehindRecorder"]

_STOP = None


class BehindRecorder:
    """Runs recordings handed to :meth:`record` on one thread, first in first out."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def record(self, recording: Callable[[], None]) -> None:
        """Queues ``recording`` (a board call's store write)."""
        self._queue.put(recording)

    def check(self) -> None:
        """Raises the error of a recording that failed, if any."""
        if self._error is not None:
            raise self._error

    def drain(self) -> None:
        """Waits for every queued recording and stops the thread; raises the first
        recording error."""
        self._queue.put(_STOP)
        self._thread.join()
        self.check()

    def _run(self) -> None:
        while (recording := self._queue.get()) is not _STOP:
            if self._error is not None:
                continue  # the job fails with the first error; later writes are moot
            try:
                recording()
            except BaseException as exc:  # handed to the job's thread
                self._error = exc
