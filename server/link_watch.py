"""gRPC health that follows a board's link: NOT_SERVING while it is down.

A serial board can be unplugged or power-cycled under a running server. The
watcher listens to the driver's link state (changed by every call) and, from a
background thread, asks the driver to ping an idle link and to reconnect a
lost one, so health turns back to SERVING when the board returns even if no
client is calling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2

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
        board.add_link_listener(self._publish)
        self._publish(board.link_up)

    def start(self) -> LinkWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _publish(self, up: bool) -> None:
        if self._up is not None and up != self._up:  # the server log says what health says
            name = getattr(self.board, "name", "the board")
            if up:
                log.warning("board link up: %s answers again; health SERVING", name)
            else:
                log.warning("board link down: %s; health NOT_SERVING", name)
        self._up = up
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if up
            else (health_pb2.HealthCheckResponse.NOT_SERVING)
        )
        for name in self.services:
            self.health.set(name, status)

    def _run(self) -> None:
        # The probe takes the link only when no call holds it, so RPCs never wait on it.
        while not self._stop.wait(self.interval_s) and not self.board.closed:
            self.board.probe_link()
