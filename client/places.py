"""Places for the calls a synchronous client has in flight (``max_in_flight``).

A thread takes a place before it sends a call and gives it back when the call has
ended, waiting while none is free, so a client's threads never send the service more
calls at once than it admits. ``threading.BoundedSemaphore`` does this in Python (a
condition around a lock: some fourteen interpreted calls on every RPC); a
``queue.SimpleQueue`` holding one token per place does it in two C calls.
"""

from __future__ import annotations

import queue
from types import TracebackType

__all__ = ["Places"]


class Places:
    """``count`` places; ``with places:`` holds one for the block (or :meth:`acquire`,
    then :meth:`release` once)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"count: got {count}, expected at least 1 place")
        self.count = count
        self._free: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(None)

    def acquire(self) -> None:
        """Takes a place, waiting while none is free."""
        self._free.get()

    def release(self) -> None:
        """Gives back a place taken with :meth:`acquire`."""
        self._free.put(None)

    def __enter__(self) -> Places:
        self._free.get()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._free.put(None)
