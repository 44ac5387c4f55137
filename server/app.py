"""Building and running the gRPC server for one board."""

from __future__ import annotations

import ipaddress
import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sidra.drivers import Board
from sidra.drivers.monitor import LinkMonitored
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server.link_watch import LinkWatcher
from sidra.server.servicer import SERVICE_NAME, BoardServicer

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "create_server", "is_loopback"]

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""64 MiB: a batch of 1024 float32 vectors on a 256×256 tile is 1 MiB each way,
with room for full conductance maps of large tiles."""


def create_server(
    board: Board,
    address: str = "127.0.0.1:0",
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_workers: int = 8,
    reflection_enabled: bool = True,
    health_servicer: health.HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """A ready-to-start server for ``board`` bound to ``address``, and its port.

    Bind ``127.0.0.1:0`` to get a free port (tests do). The standard health
    service reports ``""`` and ``sidra.hil.v1.BoardService`` as SERVING (for a board
    behind a link, NOT_SERVING while the link is down: ``LinkWatcher``); server
    reflection lets grpcurl and other tools discover the API without the proto.
    """
    limits = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    server = grpc.server(ThreadPoolExecutor(max_workers=max_workers), options=limits)
    pb_grpc.add_BoardServiceServicer_to_server(BoardServicer(board), server)

    health_servicer = health_servicer or health.HealthServicer()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if isinstance(board, LinkMonitored):  # a serial board: health follows its link
        LinkWatcher(board, health_servicer, ("", SERVICE_NAME)).start()

    if reflection_enabled:
        names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)

    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"listen: cannot bind {address!r} ({exc})") from exc
    if not is_loopback(address):
        log.warning("serving without TLS on non-loopback address %s", address)
    return server, port


def is_loopback(address: str) -> bool:
    """True for ``127.0.0.1:port``, ``[::1]:port``, ``localhost:port``."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
