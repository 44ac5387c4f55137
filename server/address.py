"""``host:port`` listen addresses: splitting them and telling loopback from the network."""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback", "split_address"]

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
