"""How a client proves itself to a secured ``sidra serve``: TLS and a bearer token.

:class:`TlsCredentials` names the CA that signed the server's certificate and,
for a server that asks for client certificates (mutual TLS), the client's own
certificate and key. A bearer token travels as ``authorization: Bearer <token>``
metadata on every call; :func:`token_from_env` reads it from ``SIDRA_TOKEN`` so
scripts and training jobs keep it out of their command lines.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from sidra.client.reachability import Hopeless, tcp_hopeless, tcp_refusal
from sidra.client.tls_diagnosis import handshake_problem, plaintext_problem
from sidra.client.tls_files import checked_tls_files
from sidra.drivers import BoardUnavailable, InvalidArgument

__all__ = [
    "TOKEN_ENV",
    "BearerToken",
    "TlsCredentials",
    "plaintext_hopeless",
    "tls_hopeless",
    "aio_bearer_token",
    "bearer_token",
    "check_token_transport",
    "token_from_env",
    "unanswered",
]

TOKEN_ENV = "SIDRA_TOKEN"
"""Environment variable holding the bearer token when none is passed."""


@dataclass(frozen=True, slots=True)
class TlsCredentials:
    """TLS to the server; with ``cert`` and ``key`` also a client certificate (mutual TLS)."""

    root_ca: str | os.PathLike[str] | None = None
    """PEM CA certificate(s) that signed the server's certificate (a path); None: the
    system's roots."""
    cert: str | os.PathLike[str] | None = None
    """PEM client certificate (a path), for a server with ``[tls] client_ca``."""
    key: str | os.PathLike[str] | None = None
    """PEM private key of ``cert`` (a path)."""

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials; InvalidArgument naming a file that cannot be read, is
        not PEM of its kind, or (the key) is not the certificate's (sidra.client.tls_files)."""
        if (self.cert is None) != (self.key is None):
            given = "cert" if self.cert is not None else "key"
            raise InvalidArgument(f"tls.{given}", "without its pair", "cert and key together")
        root_ca, cert, key = checked_tls_files(self.root_ca, self.cert, self.key)
        return grpc.ssl_channel_credentials(
            root_certificates=root_ca, private_key=key, certificate_chain=cert
        )


def token_from_env() -> str | None:
    """The token in ``SIDRA_TOKEN``, without surrounding whitespace; None when unset or
    blank."""
    return (os.environ.get(TOKEN_ENV) or "").strip() or None


TOKEN_ALLOWED = "printable ASCII without spaces"
"""What a bearer token may hold: what gRPC metadata carries after ``Bearer ``, and what
``sidra token add`` makes (URL-safe base64)."""


def bearer_token(given: str | None) -> str | None:
    """The token to send: ``given``, else ``SIDRA_TOKEN``, without surrounding whitespace
    (``Path(f).read_text()`` and many ways of setting a variable keep a trailing newline,
    which gRPC refused at the first call as "Invalid metadata"); None when there is none.
    InvalidArgument for any other character metadata cannot carry, describing it without
    the token itself."""
    token = token_from_env() if given is None else given.strip()
    if not token:
        return None
    for place, character in enumerate(token):
        if not "!" <= character <= "~":
            where = "" if given is not None else f" (from {TOKEN_ENV})"
            raise InvalidArgument(
                "token",
                f"a token of {len(token)} characters{where} with {_named(character)} at "
                f"position {place + 1}",
                TOKEN_ALLOWED,
            )
    return token


def _named(character: str) -> str:
    """A character a token may not hold, named without showing the token around it."""
    if character == " ":
        return "a space"
    if character.isspace():
        return f"whitespace (U+{ord(character):04X})"
    return f"U+{ord(character):04X}" + (" (not ASCII)" if ord(character) > 0x7E else "")


def plaintext_hopeless(address: str, within_s: float) -> bool:
    """For a plaintext client's wait: no server can answer at an address whose port
    refuses, whose host is unknown, or where a TLS or an HTTP server answers
    (sidra.client.tls_diagnosis.plaintext_problem): no wait mends those either."""
    return tcp_hopeless(address, within_s) or plaintext_problem(address, within_s) is not None


def tls_hopeless(tls: TlsCredentials) -> Hopeless:
    """For a TLS client's wait: no server can answer at an address whose port refuses,
    whose host is unknown, or where one handshake with ``tls``'s files finds something
    wrong (an expired or unknown certificate, a plaintext server): no wait mends those,
    and the error came after the whole wait (10 s by default)."""

    def hopeless(address: str, within_s: float) -> bool:
        if tcp_hopeless(address, within_s):
            return True
        return handshake_problem(address, tls.root_ca, tls.cert, tls.key) is not None

    return hopeless


def unanswered(address: str, wait_s: float, tls: TlsCredentials | None) -> BoardUnavailable:
    """The error of a server that did not answer within ``wait_s``: why no connection
    opens there (refused, unknown host, no answer; sidra.client.reachability), or, when
    one does, what else it can be: a failed handshake says nothing more than silence."""
    head = f"no SIDRA server answered at {address} within {wait_s:g} s"
    refusal = tcp_refusal(address)
    if refusal is not None:
        return BoardUnavailable(f"{head}: {refusal}")
    if tls is None:
        found = plaintext_problem(address)
        if found is not None:
            return BoardUnavailable(f"{head}: {found}")
        return BoardUnavailable(
            f"{head} (or it serves TLS, which a plaintext client cannot reach: give "
            "tls=TlsCredentials(root_ca=...), or a grpcs:// URL)"
        )
    found = handshake_problem(address, tls.root_ca, tls.cert, tls.key)
    if found is not None:
        return BoardUnavailable(f"{head}: a TLS handshake there finds {found}")
    return BoardUnavailable(
        f"{head} (a TLS handshake with these files succeeds there: something past it "
        "failed; the server's log may say what)"
    )


def check_token_transport(address: str, tls: TlsCredentials | None) -> None:
    """Refuses to send a token in clear beyond loopback, where anyone on the path could
    read and reuse it; InvalidArgument saying what would carry it safely."""
    host = address.rpartition(":")[0].removeprefix("[").removesuffix("]")
    if tls is None and not _is_loopback(host):
        raise InvalidArgument(
            "token",
            f"a token for {address}",
            "a TLS connection (tls=TlsCredentials(...) or a grpcs:// URL) beyond loopback",
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc has no types
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``authorization: Bearer <token>`` to every call of a channel, whatever its
    shape: unary, server streaming (WatchJob, ReadConductanceChunked), client streaming
    (ProgramChunked) and bidirectional (MVMStream). A channel intercepts only the shapes
    its interceptor declares and sends the others bare, so this declares all four."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> _CallDetails:
        return _with_metadata(details, [*(details.metadata or ()), self._metadata])

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return continuation(self._details(details), requests)


class _AioBearerToken:
    """The token added to an asyncio call's details; one subclass per call shape, since
    an asyncio channel takes each interceptor for the one shape its base class names."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> grpc.aio.ClientCallDetails:
        metadata = [*(details.metadata or ()), self._metadata]
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _AioUnaryUnary(_AioBearerToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _AioUnaryStream(_AioBearerToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _AioStreamUnary(_AioBearerToken, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._details(details), requests)


class _AioStreamStream(_AioBearerToken, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self, continuation: Callable[[Any, Any], Any], details: Any, requests: Any
    ) -> Any:
        return await continuation(self._details(details), requests)


def aio_bearer_token(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding ``authorization: Bearer <token>`` to every call of an asyncio
    channel, one per call shape (see :class:`BearerToken`)."""
    shapes = (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    return [shape(token) for shape in shapes]


@dataclass(frozen=True, slots=True)
class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]  # grpc has no types
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


def _with_metadata(details: Any, metadata: list[tuple[str, str]]) -> _CallDetails:
    return _CallDetails(
        details.method,
        details.timeout,
        metadata,
        details.credentials,
        details.wait_for_ready,
        details.compression,
    )
