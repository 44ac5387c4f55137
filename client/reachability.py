"""What a plain TCP connection finds at a server's address, for the error of a connect
that waited in vain.

gRPC says only that a channel never became ready. The usual causes differ in what
the user should do: nothing listens on that port (a typo, a server not started), the
host name is unknown, the host does not answer at all (a firewall, the wrong host),
or a connection opens and the gRPC handshake fails (TLS on one side only, a wrong
CA, something else on that port). One connection attempt, made once the wait is
over, tells the first three from the last.

A wait need not run its whole length when nothing can come of it: past
:data:`GIVE_UP_AFTER_S`, a port that refuses connections or a host name that is not
known ends it (:func:`wait_for_server`); a server started a moment before the client has
bound its port by then, and a typo in the address is said in seconds, not after the
whole wait. A host that does not answer at all keeps the whole wait (it may be a
network on its way up). A TLS client also ends it when a handshake of its own finds what
no wait mends (sidra.client.credentials.tls_hopeless): an expired or unknown
certificate, a plaintext server; a plaintext client when a TLS or an HTTP server
answers (sidra.client.credentials.plaintext_hopeless).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

__all__ = [
    "GIVE_UP_AFTER_S",
    "PROBE_S",
    "Hopeless",
    "host_port",
    "tcp_hopeless",
    "tcp_refusal",
    "wait_for_server",
    "wait_for_server_async",
]

PROBE_S = 1.0
"""How long the probe's connection attempt may take, s."""

GIVE_UP_AFTER_S = 2.0
"""After this long waiting for a server, s, a refused connection or an unknown host name
ends the wait."""


def host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` or ``[IPv6]:PORT`` address; None for any other
    gRPC target (``unix:``, ``dns:///``, ...), which the probe leaves alone."""
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdecimal() or not host or "/" in host:
        return None
    if host.startswith("["):
        if not host.endswith("]"):
            return None
        host = host[1:-1]
    elif ":" in host:  # a scheme (unix:..., ipv4:...) or a bare IPv6 address
        return None
    return host, int(port)


def tcp_refusal(address: str, timeout_s: float = PROBE_S) -> str | None:
    """Why no TCP connection opens to ``address``, in words for an error message; None
    when one opens (the trouble is above TCP) or ``address`` is no ``HOST:PORT``."""
    return _probe(address, timeout_s)[0]


def tcp_hopeless(address: str, within_s: float = PROBE_S) -> bool:
    """Whether no server can be at ``address`` now: its port refuses, or its host is not
    known (a host that does not answer may still). The probe waits at most ``within_s``
    (and :data:`PROBE_S`): a wait's probe does not outlast the wait."""
    return _probe(address, max(min(PROBE_S, within_s), 0.01))[1]


def _probe(address: str, timeout_s: float) -> tuple[str | None, bool]:
    """One TCP connection attempt to ``address``: why none opened (None: one did, or no
    ``HOST:PORT``), and whether that rules a server out (refused, unknown host)."""
    target = host_port(address)
    if target is None:
        return None, False
    host, port = target
    try:
        with socket.create_connection(target, timeout=timeout_s):
            return None, False
    except ConnectionRefusedError:
        return (
            f"the connection was refused: nothing listens on port {port} of {host} "
            "(is sidra serve running, and on that port?)"
        ), True
    except socket.gaierror as exc:
        return f"the host name {host!r} is not known ({exc.strerror})", True
    except TimeoutError:
        return f"{host} did not answer a connection to port {port} within {timeout_s:g} s", False
    except OSError as exc:
        return f"no connection to port {port} of {host} ({exc.strerror or exc})", False


Hopeless = Callable[[str, float], bool]
"""Whether no server can answer at an address now, finding out within the seconds given."""


def wait_for_server(
    ready: Callable[[float], bool], address: str, wait_s: float, hopeless: Hopeless | None = None
) -> float | None:
    """Waits up to ``wait_s`` for ``ready(timeout_s)`` (True once the channel is ready);
    None when it is, else how long was waited before giving up: the whole ``wait_s``, or
    less once :data:`GIVE_UP_AFTER_S` has passed and ``hopeless`` (default: a refused
    port or an unknown host, :func:`tcp_hopeless`) says so."""
    hopeless = hopeless or tcp_hopeless
    start = time.monotonic()
    if ready(min(wait_s, GIVE_UP_AFTER_S)):
        return None
    waited = time.monotonic() - start
    while waited < wait_s:
        if hopeless(address, wait_s - waited):
            return time.monotonic() - start
        waited = time.monotonic() - start  # a silent host took the probe's whole timeout
        if waited >= wait_s:
            break
        if ready(min(wait_s - waited, GIVE_UP_AFTER_S)):
            return None
        waited = time.monotonic() - start
    return wait_s


async def wait_for_server_async(
    ready: Callable[[float], Awaitable[bool]],
    address: str,
    wait_s: float,
    hopeless: Hopeless | None = None,
) -> float | None:
    """:func:`wait_for_server` for an asyncio channel (the probe runs in a thread)."""
    hopeless = hopeless or tcp_hopeless
    start = time.monotonic()
    if await ready(min(wait_s, GIVE_UP_AFTER_S)):
        return None
    waited = time.monotonic() - start
    while waited < wait_s:
        if await asyncio.to_thread(hopeless, address, wait_s - waited):
            return time.monotonic() - start
        waited = time.monotonic() - start
        if waited >= wait_s:
            break
        if await ready(min(wait_s - waited, GIVE_UP_AFTER_S)):
            return None
        waited = time.monotonic() - start
    return wait_s
