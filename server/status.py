"""The one place where SIDRA errors become gRPC status codes.

Which code an exception gets is not decided here: it is read from
:data:`sidra.drivers.errors.GRPC_STATUS`, the table the client reads the other
way round. Each servicer method is wrapped by :func:`map_errors`. A
:class:`SidraError` becomes its status code with rich details in the
``grpc-status-details-bin`` trailer: google.rpc.ErrorInfo always, with ``field``,
``value`` and ``allowed`` for argument errors and refused limits; google.rpc.BadRequest
for argument errors whose field is a path into the request. Anything else is a bug,
logged with its traceback and reported as INTERNAL without crashing the server.

What is logged here is the service's own faults, once each, with a traceback:
an unexpected exception, or a SidraError whose code is a service fault
(:data:`SERVICE_FAULT_CODES`: a board fault, INTERNAL). A caller's bad input
(:data:`CALLER_CODES`) and the board's conditions (UNAVAILABLE, ABORTED) are
not: the client was told, and the call's one RPC log line
(:mod:`sidra.server.observability.logs`) records its code without a traceback.

Echoed values are capped (:data:`sidra.drivers.errors.ECHO_LIMIT`) so an error
never outgrows the request that caused it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidra.drivers import errors
from sidra.hil.convert import link_down_to_pb
from sidra.hil.error_values import VALUE_JSON_KEY, value_json

__all__ = [
    "CALLER_CODES",
    "DOMAIN",
    "MESSAGE_LIMIT",
    "SERVICE_FAULT_CODES",
    "code_for",
    "is_request_path",
    "map_errors",
    "refusal_status",
    "to_status",
]

log = logging.getLogger(__name__)

DOMAIN = "sidra.hil"
"""ErrorInfo domain of every error this service reports."""

MESSAGE_LIMIT = 1024
"""Most characters of a status message. Argument errors cap their echoed value
and allowed text on their own; this bounds every other message (an internal
error's repr) too."""


CALLER_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.CANCELLED,
    }
)
"""Codes of a call refused for what the caller sent or is: its own fault, logged
without a traceback (a hostile client must not fill the log with them)."""

SERVICE_FAULT_CODES = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)
"""Codes of the service's (or the board's) own faults: logged with a traceback, once."""


def code_for(exc: errors.SidraError) -> grpc.StatusCode:
    """The gRPC status code of ``exc``, from the table the client reads back."""
    return grpc.StatusCode[errors.status_for(exc, errors.GRPC_STATUS)]


_INDEX = re.compile(r"\[\d+\]$")


def is_request_path(descriptor: Descriptor, path: str) -> bool:
    """True when the dotted ``path`` names a field of ``descriptor``, nested messages
    followed (``region.rows``, ``conductances.shape``; an element of a repeated message
    field by its index, ``points[1].sign``)."""
    message: Descriptor | None = descriptor
    *parents, leaf = (_INDEX.sub("", part) for part in path.split("."))
    for name in parents:
        field = message.fields_by_name.get(name) if message else None
        message = field.message_type if field else None
    return message is not None and leaf in message.fields_by_name


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(exc: errors.SidraError, request_type: Descriptor | None = None) -> grpc.Status:
    """``exc`` as a gRPC status with ErrorInfo and, where it applies, BadRequest; a
    BoardUnavailable that met the board's link down also carries its LinkDown.

    With ``request_type`` (the request message's descriptor) a BadRequest is sent
    only for a field of that message; an argument error about something else (a
    cell's write budget, field "endurance") travels in ErrorInfo alone, so a
    client never gets a field path its request does not have.
    """
    code = code_for(exc)
    message = errors.capped(str(exc), MESSAGE_LIMIT)
    metadata = {"exception": type(exc).__name__}
    details = []
    if isinstance(exc, (errors.InvalidArgument, errors.ResourceExhausted)):
        value, allowed = errors.capped(str(exc.value)), errors.capped(exc.allowed)
        metadata |= {"field": exc.field, "value": value, "allowed": allowed}
        typed = value_json(exc.value)
        if typed is not None:  # the value as the check raised it, for a client to compare
            metadata[VALUE_JSON_KEY] = typed
    # A limit's field (limits.max_batch) is the service's, not a path into the request.
    if isinstance(exc, errors.InvalidArgument) and (
        request_type is None or is_request_path(request_type, exc.field)
    ):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=message
        )
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    details.append(
        _pack(error_details_pb2.ErrorInfo(reason=code.name, domain=DOMAIN, metadata=metadata))
    )
    if isinstance(exc, errors.BoardUnavailable) and exc.link_down is not None:
        details.append(_pack(link_down_to_pb(exc.link_down)))
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    return rpc_status.to_status(status)


def refusal_status(
    code: grpc.StatusCode,
    message: str,
    refusal: str,
    principal: str | None = None,
    role: str | None = None,
) -> grpc.Status:
    """An access refusal (the token or the role; sidra.server.security.access) as a
    status with ErrorInfo: metadata "exception" (Unauthenticated, PermissionDenied),
    "refusal" (why: missing_token, unknown_token, expired_token, insufficient_role) and,
    when the call named a principal, "principal" and "role". A client tells an expired
    token from an unknown one by it, not by the message."""
    exception = "Unauthenticated" if code is grpc.StatusCode.UNAUTHENTICATED else "PermissionDenied"
    metadata = {"exception": exception, "refusal": refusal}
    metadata |= {"principal": principal} if principal is not None else {}
    metadata |= {"role": role} if role is not None else {}
    info = error_details_pb2.ErrorInfo(reason=code.name, domain=DOMAIN, metadata=metadata)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=errors.capped(message, MESSAGE_LIMIT),
        details=[_pack(info)],
    )
    return rpc_status.to_status(status)


def _request_type(owner: Any, request: Any) -> Descriptor | None:
    # A parsed request names its own type; a route that takes raw bytes (to answer
    # unparsable ones itself) declares it as ``request_type``.
    if isinstance(request, Message):
        return cast(Descriptor, request.DESCRIPTOR)
    declared = getattr(owner, "request_type", None)
    return declared if isinstance(declared, Descriptor) else None


F = TypeVar("F", bound=Callable[..., Any])


def map_errors(method: F) -> F:
    """Wraps a servicer method so every failure leaves as a proper gRPC status.

    The method's owner may declare ``request_type`` (a message Descriptor) when
    the method receives raw bytes; BadRequest paths are then checked against it.
    """

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except errors.SidraError as exc:
            if code_for(exc) in SERVICE_FAULT_CODES:
                log.error("%s failed: %s", _name(self, method), exc, exc_info=True)
            context.abort_with_status(to_status(exc, _request_type(self, request)))
        except Exception as exc:
            if _aborted(context):
                raise  # the method aborted with a status of its own: gRPC sends it as is
            if isinstance(exc, grpc.RpcError) and not context.is_active():
                # The client cancelled a request stream mid-way (reading it raised): no
                # fault of the service, and nobody left to answer.
                log.info("%s: the client cancelled the call", _name(self, method))
                context.abort(grpc.StatusCode.CANCELLED, "the client cancelled the call")
            log.exception("%s failed", _name(self, method))
            fault = errors.BoardFault(f"internal error in {_name(self, method)}: {exc!r}")
            context.abort_with_status(to_status(fault))

    return wrapper  # type: ignore[return-value]


def _aborted(context: grpc.ServicerContext) -> bool:
    """True once ``context.abort`` set a status: the exception it raises is the way
    gRPC unwinds an aborted call, not a fault to log and report as INTERNAL."""
    code = context.code() if hasattr(context, "code") else None
    return code is not None and code != grpc.StatusCode.OK


def _name(owner: Any, method: Callable[..., Any]) -> str:
    """What failed, for the log: a route's RPC name (``Program``, from its ``op`` or its own
    ``rpc``) rather than ``__call__``."""
    rpc = getattr(getattr(owner, "op", owner), "rpc", None)
    return rpc if isinstance(rpc, str) else method.__name__
