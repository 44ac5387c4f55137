"""Who is calling, and may they: the server interceptor and the current principal.

:class:`AccessControl` sits in front of every service. With a tokens file it
reads ``authorization: Bearer <token>`` from the call's metadata, finds the
principal and compares its role with the one the method needs
(:func:`~sidra.server.security.roles.required_role`): no, an unknown or an
expired token gets UNAUTHENTICATED, too little role PERMISSION_DENIED, each message naming
the RPC and the role it needs. Without a tokens file every call is
:data:`~sidra.server.security.tokens.LOCAL`'s (the service then listens on
loopback only, or was told ``allow_insecure``).

The handler then runs with its principal bound: :func:`current_principal`
tells any code under an RPC who made it, so writes can be attributed.

An ``on_refusal`` listener hears of each refused call (its code, a
:data:`REFUSAL_REASONS` reason and the principal when one was named), on the
thread serving the call just before the refusal is sent: the service's metrics
count auth failures through it (:mod:`sidra.server.observability`).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc

from sidra.server.security.roles import Role, required_role
from sidra.server.security.tokens import LOCAL, Principal, TokenEntry, TokensFile
from sidra.server.status import refusal_status
from sidra.server.wrapped import WrappedHandlers

__all__ = [
    "AUTHORIZATION",
    "REFUSAL_REASONS",
    "AccessControl",
    "CallerIdentity",
    "RefusalListener",
    "current_principal",
    "local_identity",
    "principal_name",
    "principal_of",
]

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
"""Metadata key of the bearer token (gRPC metadata keys are lowercase)."""

REFUSAL_REASONS = {
    "missing_token": grpc.StatusCode.UNAUTHENTICATED,
    "unknown_token": grpc.StatusCode.UNAUTHENTICATED,
    "expired_token": grpc.StatusCode.UNAUTHENTICATED,
    "insufficient_role": grpc.StatusCode.PERMISSION_DENIED,
}
"""Why a call was refused -> the code it gets (a bounded set: metrics label by it)."""

RefusalListener = Callable[[grpc.StatusCode, str, Principal | None], None]
"""``listener(code, reason, principal)`` of a refused call; ``principal`` None when the
call named nobody (no or an unknown token)."""

_PRINCIPAL: contextvars.ContextVar[Principal] = contextvars.ContextVar("sidra_principal")


def current_principal() -> Principal:
    """The principal of the RPC being served on this thread.

    ``local`` when the service runs without ``[auth]``. Raises LookupError
    outside an RPC, rather than guess whom to blame.
    """
    try:
        return _PRINCIPAL.get()
    except LookupError:
        raise LookupError("no principal: current_principal() is called outside an RPC") from None


def principal_of(context: grpc.ServicerContext) -> Principal:
    """The principal of the call ``context`` belongs to, for a handler serving it.

    The context itself carries no principal: the interceptor binds it to the
    thread serving the call, which is the one calling this.
    """
    return current_principal()


def principal_name(context: grpc.ServicerContext) -> str:
    """:func:`principal_of`'s name: how ``BoardServicer`` attributes a write."""
    return principal_of(context).name


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """Who a call is taken for, as SessionService.GetCaller tells it."""

    principal: Principal
    token: TokenEntry | None
    """The tokens file's entry of the call's bearer token (None without ``[auth]``)."""
    authenticated: bool
    """Whether the server checks tokens at all."""


def local_identity(context: grpc.ServicerContext) -> CallerIdentity:
    """Every call's identity on a service without ``[auth]``: local, admin."""
    return CallerIdentity(LOCAL, None, authenticated=False)


class AccessControl(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Authenticates and authorises every call; ``tokens=None`` lets every call in as local."""

    def __init__(
        self, tokens: TokensFile | None, on_refusal: RefusalListener | None = None
    ) -> None:
        self.tokens = tokens
        self.on_refusal = on_refusal
        self._wrapped = WrappedHandlers()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if self.tokens is None:
            return self._bound(handler, LOCAL)
        needed = required_role(details.method)
        if needed is None:
            return self._bound(handler, _ANONYMOUS)
        rpc = details.method.rpartition("/")[2]
        token = _bearer_token(details.invocation_metadata or ())
        entry = self.tokens.entry_for(token) if token else None
        # The clock is read only for a token that can expire: most calls skip it.
        if entry is not None and entry.expires_utc and entry.expired(datetime.now(UTC)):
            expired = f"{entry.expires_utc:%Y-%m-%d %H:%M} UTC"
            return self._refusal(
                handler,
                "expired_token",
                entry.principal,
                f"{rpc}: the bearer token of principal {entry.principal.name!r} expired at "
                f"{expired}; ask the server's admin for a new one (sidra token add "
                f"{entry.principal.name} --replace)",
                f"refused {details.method}: {entry.principal.name}'s token expired at {expired}",
            )
        principal = None if entry is None else entry.principal
        if principal is None:
            why, advice = _unknown_caller(
                token, self.tokens.problem if token else None, needed, details
            )
            return self._refusal(
                handler,
                "unknown_token" if token else "missing_token",
                None,
                f"{rpc} needs a bearer token of role {needed.label} or above; the call {why}"
                + advice,
                f"refused {details.method}: the call {why}",
            )
        if principal.role < needed:
            return self._refusal(
                handler,
                "insufficient_role",
                principal,
                f"{rpc} needs role {needed.label} or above; principal {principal.name!r} "
                f"has {principal.role.label}",
                f"refused {details.method} to {principal.name} ({principal.role.label})",
            )
        return self._bound(handler, principal)

    def identify(self, context: grpc.ServicerContext) -> CallerIdentity:
        """The identity of the call ``context`` belongs to, for a handler serving it (the
        call was let in: its principal is bound)."""
        principal = current_principal()
        if self.tokens is None:
            return CallerIdentity(principal, None, authenticated=False)
        token = _bearer_token(context.invocation_metadata() or ())
        entry = self.tokens.entry_for(token) if token else None
        return CallerIdentity(principal, entry, authenticated=True)

    def _bound(
        self, handler: grpc.RpcMethodHandler | None, principal: Principal
    ) -> grpc.RpcMethodHandler | None:
        """:func:`_bound`, made once per handler and principal."""
        if handler is None:
            return None
        return self._wrapped.get(handler, lambda inner: _bound(inner, principal), principal)

    def _refusal(
        self,
        handler: grpc.RpcMethodHandler | None,
        reason: str,
        principal: Principal | None,
        message: str,
        logged: str,
    ) -> grpc.RpcMethodHandler:
        code = REFUSAL_REASONS[reason]
        listener = self.on_refusal
        named = () if principal is None else (principal.name, principal.role.label)

        def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
            # Where the call came from: an admin traces a guessing or misconfigured client.
            log.warning("%s (from %s)", logged, context.peer())
            if listener is not None:
                listener(code, reason, principal)
            context.abort_with_status(refusal_status(code, message, reason, *named))

        return _refusal(handler, refuse)


_ANONYMOUS = Principal("anonymous", Role.VIEWER)
"""Who calls an open method (health) on a service with auth: no token was asked for."""


def _unknown_caller(
    token: str | None, unreadable: str | None, needed: Role, details: grpc.HandlerCallDetails
) -> tuple[str, str]:
    """Why a call names no principal, and what its caller can do about it. The metadata
    hint helps only a call that sent no token (or not as ``Bearer <token>``): a token
    sent but unknown was most likely rotated or removed, which only an admin mends."""
    if unreadable is not None:  # not the caller's fault: say so, not "unknown"
        why = (
            "carries a token the server cannot check now: its tokens file is unusable "
            "(the server's log says why); ask the server's admin"
        )
        return why, ""
    if token:
        return "carries an unknown bearer token", (
            ": it is not in the server's tokens file (rotated or removed?); ask the "
            f"server's admin for a token (sidra token add NAME --role {needed.label})"
        )
    sent = any(key == AUTHORIZATION for key, _ in details.invocation_metadata or ())
    why = (
        f"carries an '{AUTHORIZATION}' header that is not 'Bearer <token>'"
        if sent
        else "carries no bearer token"
    )
    return why, f" (send metadata '{AUTHORIZATION}: Bearer <token>')"


def _bearer_token(metadata: Any) -> str | None:
    for key, value in metadata:
        if key == AUTHORIZATION and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _refusal(
    handler: grpc.RpcMethodHandler | None, refuse: Callable[[Any, grpc.ServicerContext], Any]
) -> grpc.RpcMethodHandler:
    """``refuse`` as a handler of the same kind (unary or streaming) as ``handler``,
    so gRPC reads the request the way the client sends it before the refusal."""
    if handler is None or not (handler.request_streaming or handler.response_streaming):
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    return grpc.unary_stream_rpc_method_handler(refuse)


def _bound(
    handler: grpc.RpcMethodHandler | None, principal: Principal
) -> grpc.RpcMethodHandler | None:
    """``handler`` running with ``principal`` bound for :func:`current_principal`.

    gRPC runs the handler on a worker thread, not the one that called this
    interceptor, so the principal is bound inside the behaviour itself.
    """
    if handler is None:
        return None
    if handler.unary_unary is not None:
        return handler._replace(unary_unary=_unary(handler.unary_unary, principal))
    if handler.stream_unary is not None:
        return handler._replace(stream_unary=_unary(handler.stream_unary, principal))
    if handler.unary_stream is not None:
        return handler._replace(unary_stream=_streaming(handler.unary_stream, principal))
    return handler._replace(stream_stream=_streaming(handler.stream_stream, principal))


def _unary(behavior: Callable[..., Any], principal: Principal) -> Callable[..., Any]:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        bound = _PRINCIPAL.set(principal)
        try:
            return behavior(request, context)
        finally:
            _PRINCIPAL.reset(bound)

    return run


def _streaming(behavior: Callable[..., Any], principal: Principal) -> Callable[..., Any]:
    # The response iterator runs after the behaviour returns, one item per next():
    # bind around each step so code inside the generator sees the principal too.
    def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        responses = _unary(behavior, principal)(request, context)
        while True:
            bound = _PRINCIPAL.set(principal)
            try:
                item = next(responses)
            except StopIteration:
                return
            finally:
                _PRINCIPAL.reset(bound)
            yield item

    return run
