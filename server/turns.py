"""The board lock, granted in turns: round robin over the principals waiting for it.

Calls on one board never interleave, so they queue for it. A plain lock lets any
waiter in next, and a client that keeps many calls waiting (a flood of large
batches) would mostly win; a FIFO queue would still serve all of its queued
calls before a newcomer's one. :class:`BoardTurns` instead rotates over the
principals that are waiting: each in turn gets one call on the board, in the
order its own calls arrived, then goes to the back of the rotation. A client
alone on the board is never slowed; two clients alternate whatever their rates.

What a lab admin graphs of it (sidra.server.observability): :meth:`BoardTurns.waiting`,
the calls queued behind the board now, and each queued call's wait for its turn, told
to ``on_wait`` (a call that found the board free and nobody waiting is not timed: the
path every call takes alone stays as it was).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from types import TracebackType

__all__ = ["BoardTurns", "Turn"]


class BoardTurns:
    """A lock for one board whose waiters are served round robin by principal;
    ``on_wait(seconds)`` hears how long each call that had to queue waited for its turn."""

    def __init__(self, on_wait: Callable[[float], None] | None = None) -> None:
        self.on_wait = on_wait
        self._changed = threading.Condition()
        self._busy = False
        # Principal -> its waiting calls, oldest first; the dict's order is the rotation.
        self._waiting: OrderedDict[str, deque[object]] = OrderedDict()

    def turn(self, principal: str) -> Turn:
        """Holds the board for one call of ``principal`` (blocks until its turn); use as
        ``with turns.turn(principal):``."""
        return Turn(self, principal)

    def _take(self, principal: str) -> None:
        with self._changed:
            if not self._busy and not self._waiting:
                self._busy = True  # a free board and nobody waiting: every call's case alone
                return
            queued = time.monotonic()
            self._queue(principal)
        if self.on_wait is not None:  # told outside the lock: no waiter waits on a listener
            try:
                self.on_wait(time.monotonic() - queued)
            except BaseException:
                self._give_back()  # a turn whose call never runs must not keep the board
                raise

    def _queue(self, principal: str) -> None:
        """Waits (lock held) until ``principal``'s call, queued now, has its turn."""
        ticket = object()
        self._waiting.setdefault(principal, deque()).append(ticket)
        while self._busy or not self._is_next(principal, ticket):
            self._changed.wait()
        calls = self._waiting[principal]
        calls.popleft()
        if calls:
            self._waiting.move_to_end(principal)  # the others go first next time
        else:
            del self._waiting[principal]
        self._busy = True

    def _give_back(self) -> None:
        with self._changed:
            self._busy = False
            if self._waiting:  # only queued calls wait on the condition
                self._changed.notify_all()

    def waiting(self) -> int:
        """Calls waiting for a turn now."""
        with self._changed:
            return sum(len(calls) for calls in self._waiting.values())

    def _is_next(self, principal: str, ticket: object) -> bool:
        first = next(iter(self._waiting))
        return first == principal and self._waiting[principal][0] is ticket


class Turn:
    """One call's turn on the board: taken on entry, given back on exit, error or not
    (a class rather than a generator: it is entered on every call)."""

    __slots__ = ("_principal", "_turns")

    def __init__(self, turns: BoardTurns, principal: str) -> None:
        self._turns = turns
        self._principal = principal

    def __enter__(self) -> None:
        self._turns._take(self._principal)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._turns._give_back()
