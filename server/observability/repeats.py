"""Refusals of the caller's own fault, logged once per burst.

A client past its ``[limits]`` retries as told: 16 threads against ``max_in_flight = 4``
made 304 RESOURCE_EXHAUSTED lines at INFO in a few seconds, burying every other line of
the log. The same refusal (method, status code, principal) within :data:`WINDOW_S` of
the last one logged is counted instead, and the next line logged for it says how many
it stood for. A burst that ends before the window does (the client gave up, or went
on in the limits) has no next line: with ``on_window_end`` its count is handed over
when the window closes, so the log still says how many were refused. The counts per
code are in the metrics either way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["WINDOW_S", "RepeatedRefusals"]

WINDOW_S = 10.0
"""Seconds a refusal logged stands for the same ones after it."""

_KEPT = 1024
"""Refusals remembered at most; past it, those whose window is over are forgotten."""


class RepeatedRefusals:
    """Which refusals to log: the first of a kind, then one a window (thread-safe)."""

    def __init__(
        self,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        on_window_end: Callable[[Hashable, int, float], None] | None = None,
    ) -> None:
        """``on_window_end(kind, held, window_s)``: called from a timer thread when a
        window in which refusals were held back closes with none logged after them (the
        burst is over)."""
        self.window_s, self.clock, self.on_window_end = window_s, clock, on_window_end
        self._lock = threading.Lock()
        self._seen: dict[Hashable, tuple[float, int]] = {}  # kind -> (logged at, held back)

    def to_log(self, kind: Hashable) -> int | None:
        """None: a repeat within the window, held back (counted). Otherwise log it,
        saying it stands for that many held back since the last line of its kind."""
        now = self.clock()
        with self._lock:
            logged_at, held = self._seen.get(kind, (-self.window_s, 0))
            if now - logged_at < self.window_s:
                self._seen[kind] = (logged_at, held + 1)
                if held == 0 and self.on_window_end is not None:  # the first held back
                    left_s = logged_at + self.window_s - now
                    timer = threading.Timer(left_s, self._window_ended, (kind, logged_at))
                    timer.daemon = True
                    timer.start()
                return None
            self._seen[kind] = (now, 0)
            if len(self._seen) > _KEPT:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            return held

    def _window_ended(self, kind: Hashable, logged_at: float) -> None:
        """Hands over what the window of the line logged at ``logged_at`` held back, unless
        a line logged since has said it."""
        with self._lock:
            seen = self._seen.get(kind)
            if seen is None or seen[0] != logged_at or seen[1] == 0:
                return
            self._seen[kind] = (logged_at, 0)
        if self.on_window_end is not None:
            self.on_window_end(kind, seen[1], self.window_s)
