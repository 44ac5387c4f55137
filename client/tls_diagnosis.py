"""Why a TLS connection to a server that accepts TCP connections never became ready,
found by one handshake of Python's own with the client's CA, certificate and key.

gRPC reports every failed handshake alike: the channel just never becomes ready. The
causes differ in who must act: the server's certificate expired or signed by another
CA (the server's admin, or the client's CA file), the server asking for a client
certificate this client lacks or does not accept the one it has, or a server that
does not speak TLS at all (a plaintext sidra serve, an HTTP server). The reverse
mistake, a plaintext client at a TLS server, looks the same from gRPC and is found the
same way (:func:`plaintext_problem`).
"""

from __future__ import annotations

import os
import socket
import ssl

from sidra.client.reachability import host_port

__all__ = ["HANDSHAKE_S", "handshake_problem", "plaintext_problem"]

HANDSHAKE_S = 2.0
"""How long the diagnosing handshake, and the plaintext probe after it, may take, s."""

_UNKNOWN_ISSUER = {18, 19, 20, 21}
"""OpenSSL's verify codes of a certificate chain no trusted CA signed."""

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
"""What an HTTP/2 client sends first (its preface and an empty SETTINGS frame)."""


def handshake_problem(
    address: str,
    root_ca: str | os.PathLike[str] | None,
    cert: str | os.PathLike[str] | None,
    key: str | os.PathLike[str] | None,
) -> str | None:
    """What one TLS handshake with these files finds wrong at ``address``, in words for
    an error message; None when it succeeds, or nothing can be said (no ``HOST:PORT``,
    no connection)."""
    target = host_port(address)
    if target is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:  # checked before connecting (sidra.client.tls_files): this is for safety only
        if root_ca is None:
            context.load_default_certs()
        else:
            context.load_verify_locations(root_ca)
        if cert is not None and key is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ValueError):
        return None
    context.set_alpn_protocols(["h2"])
    host = target[0]
    try:
        with (
            socket.create_connection(target, timeout=HANDSHAKE_S) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            # TLS 1.3 ends the client's handshake before the server has judged its
            # certificate: the server's verdict is in what it sends next.
            try:
                answered = tls.recv(1)
            except TimeoutError:  # the handshake went through; silence after it is
                return None  # no TLS matter
    except ssl.SSLCertVerificationError as exc:
        return _server_certificate(exc, host, root_ca is not None)
    except ssl.SSLError as exc:
        if "ALERT" in (exc.reason or "") or "EOF" in (exc.reason or ""):
            return _client_certificate(cert is not None, exc.reason)
        return _not_tls(target, exc.reason)
    except (ConnectionResetError, BrokenPipeError):
        return _client_certificate(cert is not None, None)
    except TimeoutError:
        return f"the server did not finish a TLS handshake within {HANDSHAKE_S:g} s"
    except OSError:
        return None
    return None if answered else _client_certificate(cert is not None, None)


def plaintext_problem(address: str, within_s: float = HANDSHAKE_S) -> str | None:
    """What a plaintext client finds wrong at ``address``, in words for an error message:
    a server that speaks TLS, or an HTTP server; None when a plaintext gRPC server
    answers there (the trouble is elsewhere), or nothing can be said. Each of its two
    connections may take ``within_s`` (at most :data:`HANDSHAKE_S`)."""
    target = host_port(address)
    if target is None:
        return None
    timeout_s = max(min(within_s, HANDSHAKE_S), 0.01)
    first = _first_answer(target, timeout_s)
    if first is None or _is_settings(first):
        return None
    if _is_http1(first):
        return _HTTP_SERVER
    # Not gRPC in plaintext: a TLS server closes on the preface without a word. One
    # handshake that trusts any certificate tells it from anything else.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection(target, timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=target[0]),
        ):
            pass
    except ssl.SSLError as exc:
        # A server that asks for a client certificate may end the handshake with an
        # alert: still a TLS server. Anything else answered with no TLS at all.
        if "ALERT" not in (exc.reason or ""):
            return None
    except OSError:
        return None
    return (
        "the server there speaks TLS, which this plaintext client cannot reach: give "
        "tls=TlsCredentials(root_ca=...) (the CA that signed the server's certificate), "
        "or a grpcs://HOST:PORT?ca=PATH URL"
    )


def _first_answer(target: tuple[str, int], timeout_s: float = HANDSHAKE_S) -> bytes | None:
    """The first bytes a server at ``target`` sends an HTTP/2 client's preface (empty
    when it closes the connection); None when no connection opens or nothing comes."""
    try:
        with socket.create_connection(target, timeout=timeout_s) as raw:
            raw.sendall(_H2_PREFACE)
            return raw.recv(64)
    except OSError:
        return None


def _is_settings(first: bytes) -> bool:
    """Whether ``first`` opens with an HTTP/2 SETTINGS frame: gRPC in plaintext."""
    return len(first) >= 9 and first[3] == 4


def _is_http1(first: bytes) -> bool:
    return first.startswith(b"HTTP/") or b"<html" in first.lower()


_HTTP_SERVER = "an HTTP server answered, not a SIDRA server: check the port"


def _server_certificate(exc: ssl.SSLCertVerificationError, host: str, own_ca: bool) -> str:
    said = exc.verify_message
    if exc.verify_code == 10:
        return (
            f"the server's certificate has expired ({said}): its admin must renew it "
            "(sidra serve refuses to start with one)"
        )
    if exc.verify_code in _UNKNOWN_ISSUER:
        trusted = "the CA in root_ca (ca=)" if own_ca else "a CA this system trusts"
        return (
            f"the server's certificate is not signed by {trusted} (unknown issuer: {said}); "
            "give the CA that signed the server's certificate"
        )
    if exc.verify_code == 62:
        return f"the server's certificate is not for {host} ({said}); connect by a name it holds"
    return f"the client refused the server's certificate ({said})"


def _client_certificate(sent: bool, reason: str | None) -> str:
    how = f" ({reason})" if reason else ""
    if sent:
        return (
            f"the server refused this client's certificate{how}: it is not signed by a CA "
            "the server's [tls] client_ca names; ask its admin for one that is"
        )
    return (
        f"the server asked for a client certificate (mutual TLS) and this client sent "
        f"none{how}: give cert and key (TlsCredentials(cert=..., key=...), or &cert=...&key=... "
        "in a grpcs:// URL)"
    )


def _not_tls(target: tuple[str, int], reason: str | None) -> str:
    """What answered a TLS handshake with something else: the first bytes it sends an
    HTTP/2 client tell a plaintext gRPC server from an HTTP/1 server."""
    first = _first_answer(target) or b""
    if _is_settings(first):
        return (
            "the server answered in plaintext, not TLS (a sidra serve without [tls]?): "
            "connect without tls (a grpc:// URL), or give the server a [tls] section"
        )
    if _is_http1(first):
        return _HTTP_SERVER
    return f"the server does not speak TLS ({reason or 'no TLS answer'}): check the port"
