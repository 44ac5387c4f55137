"""Refusals of the caller's own fault, logged once per burst.

A client past its ``[limits]`` retries as told: 16 threads against ``max_in_flight = 4``
made 304 RESOURCE_EXHAUSTED lines at INFO in a few seconds, burying every other line of
the log. The same refusal (method, status code, principal) within :data:`WINDOW_S` of
the last one logged is counted instead, and the next line logged for it says how many
it stood for. The counts per code are in the metrics either way.
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
        self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s, self.clock = window_s, clock
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
                return None
            self._seen[kind] = (now, 0)
            if len(self._seen) > _KEPT:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            return held
