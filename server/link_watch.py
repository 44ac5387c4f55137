"""gRPC health that follows a board's link: NOT_SERVING while it is down.

A serial board can be unplugged or power-cycled under a running server. The
watcher listens to the driver's link state (changed by every call) and, from a
background thread, asks the driver to ping an idle link and to reconnect a
lost one, so health turns back to SERVING when the board returns even if no
client is calling.

While the link is down the watcher keeps the server's account of it
(:meth:`LinkWatcher.link_down`: since when, why, what it retries), which its log line
says and a call the link refused carries to its client (board.proto LinkDown).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2

from sidra.drivers import Board, LinkDown, LinkStats
from sidra.drivers.monitor import LinkMonitored

__all__ = ["PROBE_INTERVAL_S", "LinkWatcher"]

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 0.5
"""How often an idle link is pinged and a lost one retried."""


class LinkWatcher:
    """Mirrors ``board.link_up`` into the health status of ``services``."""

    def __init__(
        self,
        board: LinkMonitored,
        health_servicer: health.HealthServicer,
        services: Sequence[str],
        interval_s: float = PROBE_INTERVAL_S,
    ) -> None:
        self.board = board
        self.health = health_servicer
        self.services = tuple(services)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-watch", daemon=True)
        self._up: bool | None = None
        """The link state last published (None: none yet), so each change is logged once."""
        self._instance = board.instance_id if isinstance(board, Board) else None
        """The board instance the link last reached: one it comes back with otherwise
        restarted and lost its cells."""
        self._down: LinkDown | None = None
        """Since when and why the link is down, and what is retried (None while up)."""
        board.add_link_listener(self._publish)
        self._publish(board.link_up)

    def start(self) -> LinkWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def link_down(self) -> LinkDown | None:
        """The link's outage now, with the link's counters as they stand (None while it
        is up): what a call the link refused tells its client."""
        down = self._down
        if down is None:
            return None
        return dataclasses.replace(down, link=_link_stats(self.board))

    def _publish(self, up: bool) -> None:
        if up:
            self._down = None
        elif self._down is None:  # the listener runs as the link goes down: now is when
            reason = getattr(self.board, "link_down_reason", None) or "the board stopped answering"
            self._down = LinkDown(time.time(), reason, self._recovery())
        if self._up is not None and up != self._up:  # the server log says what health says
            if up:
                log.warning("board link up: %s", self._came_back())
            else:
                down = self._down
                assert down is not None
                log.warning(
                    "board link down: %s: %s; health NOT_SERVING until it answers again; %s",
                    self._named(), down.reason, down.recovery,
                )  # fmt: skip
        self._up = up
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if up
            else (health_pb2.HealthCheckResponse.NOT_SERVING)
        )
        for name in self.services:
            self.health.set(name, status)

    def _recovery(self) -> str:
        """What the watcher does to get the board back: ``retrying /dev/ttyUSB0 every
        0.5 s`` (where the driver looks for it, when it says: the ports searched for a
        board named by serial number)."""
        where = getattr(self.board, "reconnects_at", None) or getattr(self.board, "name", None)
        return f"retrying {where or 'the board'} every {self.interval_s:g} s"

    def _named(self) -> str:
        """``serial:///dev/ttyUSB0 (serial number Y1-0042)``: where, and which board."""
        name = getattr(self.board, "name", None) or "the board"
        if isinstance(self.board, Board):
            return f"{name} (serial number {self.board.info.serial_number})"
        return str(name)

    def _came_back(self) -> str:
        """The board that answers again, where when its URL does not say (a board searched
        by serial number, found on a new device), and whether it restarted meanwhile."""
        name = str(getattr(self.board, "name", None) or "")
        device = getattr(self.board, "device", None)
        at = f" at {device}" if isinstance(device, str) and device not in name else ""
        said = f"{self._named()} answers again{at}; health SERVING"
        if not isinstance(self.board, Board):
            return said
        before, self._instance = self._instance, self.board.instance_id
        if before is None or before == self._instance:
            return f"{said}; the same instance {self._instance}, its cells as they were"
        return (
            f"{said}; it restarted meanwhile (instance {before} -> {self._instance}) and "
            "lost its programmed cells: program them again, or restart the server with "
            "sidra serve --restore to program back what the state store holds"
        )

    def _run(self) -> None:
        # The probe takes the link only when no call holds it, so RPCs never wait on it.
        while not self._stop.wait(self.interval_s) and not self.board.closed:
            self.board.probe_link()


def _link_stats(board: object) -> LinkStats | None:
    """The driver's counters of its link (the serial driver keeps them), else None."""
    stats = getattr(board, "link_stats", None)
    counted = stats() if callable(stats) else None
    return counted if isinstance(counted, LinkStats) else None
