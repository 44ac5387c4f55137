"""The one place where SIDRA errors become gRPC status codes.

Each servicer method is wrapped by :func:`map_errors`. A :class:`SidraError`
becomes its status code with rich details (google.rpc.BadRequest for argument
errors, google.rpc.ErrorInfo always) in the ``grpc-status-details-bin``
trailer; anything else is a bug, logged with its traceback and reported as
INTERNAL without crashing the server.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidra.drivers import errors

__all__ = ["DOMAIN", "STATUS_CODES", "map_errors", "to_status"]

log = logging.getLogger(__name__)

DOMAIN = "sidra.hil"
"""ErrorInfo domain of every error this service reports."""

# Most specific class first: OutOfRange is an InvalidArgument.
STATUS_CODES: list[tuple[type[errors.SidraError], grpc.StatusCode]] = [
    (errors.OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.BoardUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.BoardReset, grpc.StatusCode.ABORTED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unsupported, grpc.StatusCode.UNIMPLEMENTED),
    (errors.BoardFault, grpc.StatusCode.INTERNAL),
    (errors.SidraError, grpc.StatusCode.UNKNOWN),
]


def _code_of(exc: errors.SidraError) -> grpc.StatusCode:
    return next(code for cls, code in STATUS_CODES if isinstance(exc, cls))


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(exc: errors.SidraError) -> grpc.Status:
    """``exc`` as a gRPC status with BadRequest/ErrorInfo details."""
    code = _code_of(exc)
    metadata = {"exception": type(exc).__name__}
    details = []
    if isinstance(exc, errors.InvalidArgument):
        metadata |= {"field": exc.field, "value": str(exc.value), "allowed": exc.allowed}
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=str(exc)
        )
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
    details.append(
        _pack(error_details_pb2.ErrorInfo(reason=code.name, domain=DOMAIN, metadata=metadata))
    )
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=str(exc), details=details)
    return rpc_status.to_status(status)


F = TypeVar("F", bound=Callable[..., Any])


def map_errors(method: F) -> F:
    """Wraps a servicer method so every failure leaves as a proper gRPC status."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except errors.SidraError as exc:
            context.abort_with_status(to_status(exc))
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            fault = errors.BoardFault(f"internal error in {method.__name__}: {exc!r}")
            context.abort_with_status(to_status(fault))

    return wrapper  # type: ignore[return-value]
