"""Calls the service refused for its ``max_in_flight``, sent again once there is room.

A client keeps its own calls under the service's ``max_in_flight`` (its places,
sidra.client.places), but the service counts a principal's calls over all of its
connections, and a call this client gave up on (a timeout, a cancelled task) until the
service has finished it: another program of the same principal, or calls abandoned a
moment ago, can hold places this client does not see. Such a refusal touches nothing
(the limit is checked before the board), so the call is sent again after a short wait,
doubling from :data:`FIRST_WAIT_S` up to :data:`LONGEST_WAIT_S`, for as long as the call's
timeout leaves; past it the refusal is raised as it came.
"""

from __future__ import annotations

import time

from sidra.drivers import ResourceExhausted, SidraError

__all__ = ["FIRST_WAIT_S", "IN_FLIGHT_FIELD", "LONGEST_WAIT_S", "PlaceWaits"]

IN_FLIGHT_FIELD = "limits.max_in_flight"
FIRST_WAIT_S = 0.002
"""The first wait before sending a refused call again, s."""
LONGEST_WAIT_S = 0.1
"""The longest wait between two sendings, s: a place that frees is found within it."""


class PlaceWaits:
    """The waits of one call refused for ``max_in_flight``, within its ``timeout_s``."""

    __slots__ = ("_deadline", "_wait_s")

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s
        self._wait_s = FIRST_WAIT_S

    def wait_s(self, error: SidraError) -> float | None:
        """How long to wait before sending the call refused with ``error`` again; None
        when ``error`` is another refusal, or the call's timeout leaves no time."""
        if not isinstance(error, ResourceExhausted) or error.field != IN_FLIGHT_FIELD:
            return None
        wait_s = self._wait_s
        if time.monotonic() + wait_s >= self._deadline:
            return None
        self._wait_s = min(2 * wait_s, LONGEST_WAIT_S)
        return wait_s

    def left_s(self) -> float:
        """The call's timeout left, s (the next sending's timeout)."""
        return max(self._deadline - time.monotonic(), 0.0)
