"""The HTTP endpoint Prometheus scrapes: ``GET /metrics`` on ``[metrics] listen``.

It has a port of its own, apart from gRPC: a scraper needs no gRPC, no token and
no client certificate, and a busy gRPC server does not delay a scrape. It speaks
plain HTTP without authentication and tells only counts and the board's identity
(no principal, no data): bind it to loopback, or to an interface only the
monitoring host reaches.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from sidra.server.address import split_address

__all__ = ["MetricsEndpoint"]


class MetricsEndpoint:
    """A running metrics endpoint serving one registry; :meth:`close` stops it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @classmethod
    def start(cls, registry: CollectorRegistry, address: str) -> MetricsEndpoint:
        """Serves ``registry`` on ``address`` (``host:port``; port 0 picks a free one).

        Raises OSError naming ``metrics.listen`` when the address cannot be bound
        (in use, not an address of this host), ValueError when it is not host:port.
        """
        host, port = split_address(address)
        try:
            server, thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise OSError(
                f"metrics.listen: cannot bind {address!r} ({exc.strerror or exc})"
            ) from exc
        return cls(server, thread)

    @property
    def port(self) -> int:
        """The port bound (the free one picked for port 0)."""
        return int(self._server.server_port)

    def close(self) -> None:
        """Stops serving and releases the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
