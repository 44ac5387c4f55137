"""Which board instance a client has been talking to, and when that changes.

Every BoardService response names the board instance it ended on (the
``sidra-instance-id`` trailer, board.proto "Board instance"). An
:class:`InstanceTracker` remembers the first id it is shown; a later, different
one means the board lost its state since this client's previous call, and the
call that shows it raises :class:`~sidra.client.errors.BoardInstanceChanged`
(the tracker then adopts the new id, so the next call is OK). Each client
tracks on its own: every holder of a board hears of a reset on its next call,
not only the one whose call met it.

A call the server already failed with ABORTED (its board driver saw the reset)
is that client's report: the tracker adopts the id it carries, or, when the
driver did not know the new boot yet, the next id it sees, so the same reset is
never reported twice. An id once replaced is never adopted again: instances do
not come back, and a response carrying one is an older call that finished late
on another thread.
"""

from __future__ import annotations

import threading

from sidra.client.errors import BoardInstanceChanged
from sidra.drivers.errors import BoardReset, SidraError

__all__ = ["InstanceTracker"]


class InstanceTracker:
    """The instance id one client saw last; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: str | None = None
        self._reported = False  # a server-reported reset waits for its new id
        self._retired: set[str] = set()

    @property
    def current(self) -> str | None:
        """The id of the last instance seen (None before the first response)."""
        return self._current

    def succeeded(self, instance_id: str | None, what: str) -> None:
        """After a call that returned OK; raises BoardInstanceChanged if the id changed."""
        if instance_id and instance_id == self._current:
            return  # the same instance again, every call's case: nothing to adopt or retire
        with self._lock:
            previous = self._adopt(instance_id)
        if previous is not None and instance_id is not None:
            raise BoardInstanceChanged(previous, instance_id, f"noticed by {what}")

    def failed(self, instance_id: str | None, error: SidraError, what: str) -> SidraError:
        """After a call that failed with ``error``: the exception to raise for it, ``error``
        itself or, when the call shows a new instance, BoardInstanceChanged (raise it from
        ``error``: the reset is the news)."""
        with self._lock:
            if isinstance(error, BoardReset):
                # The server told this client of the reset: no second report of it.
                fresh = bool(instance_id) and instance_id != self._current
                if fresh and instance_id not in self._retired:
                    self._reported = False
                    self._adopt(instance_id)
                else:  # the new id comes with a later response: adopt that one quietly
                    self._reported = True
                return error
            previous = self._adopt(instance_id)
        if previous is None or instance_id is None:
            return error
        return BoardInstanceChanged(previous, instance_id, f"noticed by {what}: {error}")

    def _adopt(self, instance_id: str | None) -> str | None:
        """Takes ``instance_id`` as the current one; the id it replaced, if that change is
        news to this client (None: first id, same id, a late answer, or already reported)."""
        if not instance_id or instance_id == self._current or instance_id in self._retired:
            return None
        previous, self._current = self._current, instance_id
        if previous is None:
            return None
        self._retired.add(previous)
        if self._reported:
            self._reported = False
            return None
        return previous
