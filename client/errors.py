"""The one place where gRPC status codes become SIDRA exceptions again.

The server packs an ErrorInfo (and, for argument errors, a BadRequest) into
the status details; they are read back here so a remote ``OutOfRange`` carries
the same ``field``, ``value`` and ``allowed`` as a local one.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidra.drivers import errors

__all__ = ["from_rpc_error"]

_BY_CODE: dict[grpc.StatusCode, type[errors.SidraError]] = {
    grpc.StatusCode.OUT_OF_RANGE: errors.OutOfRange,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: errors.BoardUnavailable,
    grpc.StatusCode.ABORTED: errors.BoardReset,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: errors.Unsupported,
    grpc.StatusCode.INTERNAL: errors.BoardFault,
}


def from_rpc_error(exc: grpc.RpcError) -> errors.SidraError:
    """The SIDRA exception for a failed call (raise it ``from exc``)."""
    code: grpc.StatusCode = exc.code()
    message: str = exc.details() or code.name
    cls = _BY_CODE.get(code, errors.SidraError)
    if issubclass(cls, errors.InvalidArgument):
        info = _error_info(exc)
        if info is not None and "field" in info.metadata:
            meta = info.metadata
            error = cls(meta["field"], meta["value"], meta["allowed"])
            error.args = (message,)  # the server's wording, verbatim
            return error
        return cls("request", message, "a valid request")
    return cls(f"{code.name}: {message}")


def _error_info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    status = rpc_status.from_call(exc)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
