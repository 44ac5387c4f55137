"""``host:port`` listen addresses: splitting them and telling loopback from the network."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket

__all__ = [
    "bind_problem",
    "insecure_exposure",
    "is_loopback",
    "metrics_exposure",
    "split_address",
]

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
"""Host names that resolve to loopback on every system the service runs on."""


def split_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` or ``[v6]:port``; ValueError naming what is wrong."""
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdecimal() or int(port) > 65535:
        raise ValueError(f"{address!r} is not host:port (port 0-65535; 0 picks a free one)")
    return host, int(port)


def is_loopback(address: str) -> bool:
    """True for ``127.0.0.1:port``, ``[::1]:port``, ``localhost:port``.

    Any other name is taken as reachable from the network: a host name may
    resolve to anything, and ``0.0.0.0`` / ``[::]`` listen on every interface.
    """
    host = address.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_exposure(address: str) -> str | None:
    """A warning when the metrics endpoint's ``address`` listens on every interface
    (``0.0.0.0``, ``[::]``): its plain HTTP answers anyone who reaches the host. None for
    loopback or one interface's address, which the admin picked for the monitoring host."""
    host = address.rpartition(":")[0].removeprefix("[").removesuffix("]")
    try:
        every = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return None
    if not every:
        return None
    return (
        f"metrics.listen: {address} listens on every interface: its plain HTTP, with no "
        "token, tells whoever reaches this host the board's identity, deployment names and "
        "call counts; bind it to 127.0.0.1 or to the monitoring network's address"
    )


def insecure_exposure(address: str, tls: bool, auth: bool) -> list[str]:
    """What serving on ``address`` without TLS or without [auth] lays open (nothing on
    loopback, where a start needs neither): the warnings a start logs and --check
    prints for ``allow_insecure``."""
    if is_loopback(address):
        return []
    warnings = []
    if not tls:
        warnings.append(f"serving without TLS on {address}: traffic and tokens travel in clear")
    if not auth:
        warnings.append(f"serving without [auth] on {address}: every client may do everything")
    return warnings


def bind_problem(address: str) -> str | None:
    """Why ``host:port`` cannot be listened on, as the system says it (``Address already
    in use``: another process listens there); None when a plain socket binds it, or the
    address does not even split or resolve (the caller's own error says so)."""
    try:
        host, port = split_address(address)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (ValueError, OSError):
        return None
    for family, kind, proto, _, where in infos:
        with contextlib.closing(socket.socket(family, kind, proto)) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a listener does
            try:
                probe.bind(where)
            except OSError as exc:
                in_use = " (another process listens there: a sidra serve already running?)"
                return f"{exc.strerror or exc}" + (in_use if exc.errno == errno.EADDRINUSE else "")
    return None
