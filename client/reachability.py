"""What a plain TCP connection finds at a server's address, for the error of a connect
that waited in vain.

gRPC says only that a channel never became ready. The usual causes differ in what
the user should do: nothing listens on that port (a typo, a server not started), the
host name is unknown, the host does not answer at all (a firewall, the wrong host),
or a connection opens and the gRPC handshake fails (TLS on one side only, a wrong
CA, something else on that port). One connection attempt, made once the wait is
over, tells the first three from the last.
"""

from __future__ import annotations

import socket

__all__ = ["PROBE_S", "host_port", "tcp_refusal"]

PROBE_S = 1.0
"""How long the probe's connection attempt may take, s."""


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
    target = host_port(address)
    if target is None:
        return None
    host, port = target
    try:
        with socket.create_connection(target, timeout=timeout_s):
            return None
    except ConnectionRefusedError:
        return (
            f"the connection was refused: nothing listens on port {port} of {host} "
            "(is sidra serve running, and on that port?)"
        )
    except socket.gaierror as exc:
        return f"the host name {host!r} is not known ({exc.strerror})"
    except TimeoutError:
        return f"{host} did not answer a connection to port {port} within {timeout_s:g} s"
    except OSError as exc:
        return f"no connection to port {port} of {host} ({exc.strerror or exc})"
