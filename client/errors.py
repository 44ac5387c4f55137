"""The one place where gRPC status codes become SIDRA exceptions again.

The class comes from :data:`sidra.drivers.errors.GRPC_STATUS`, the table the
server reads the other way round. The server packs an ErrorInfo (and, for
argument errors, a BadRequest) into the status details; they are read back here
so a remote ``OutOfRange`` (or ``ResourceExhausted``) carries the same ``field``,
``value`` and ``allowed`` as a local one, and a ``BoardUnavailable`` from a server whose
board link is down the server's account of it (``link_down``: since when, why, what it
does about it). A trailer that is missing, garbled or
disagrees with the call's own code and message is ignored: the code and message
alone still give the class.

:class:`BoardInstanceChanged` is the client's own :class:`BoardReset`: raised when
a response names another board instance than this client saw before (the
``sidra-instance-id`` trailer), whoever's call met the reset.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidra.drivers import errors
from sidra.drivers.types import LinkDown
from sidra.hil.convert import link_down_from_pb
from sidra.hil.error_values import value_from
from sidra.hil.v1 import board_pb2 as pb

__all__ = ["BoardInstanceChanged", "exception_class", "from_rpc_error"]


class BoardInstanceChanged(errors.BoardReset):
    """The board instance changed since this client's previous call: the board restarted
    (or a server came back on a fresh emulator) and the state this client left on it is
    gone. The call that noticed ran on the new instance; its result is not returned."""

    def __init__(self, previous_id: str, instance_id: str, what: str) -> None:
        self.previous_id = previous_id
        self.instance_id = instance_id
        self.what = what
        super().__init__(
            f"board instance changed from {previous_id!r} to {instance_id!r} since this "
            f"client's previous call ({what}): the board's state (conductances, write "
            "counts, clock) was lost; program it again"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.previous_id, self.instance_id, self.what))


def exception_class(code: grpc.StatusCode) -> type[errors.SidraError]:
    """The SIDRA exception class of a status code; SidraError for codes the server
    never sends on purpose (CANCELLED, NOT_FOUND, ...)."""
    return errors.exception_for(code.name, errors.GRPC_STATUS)


SERVER_ENDED = (
    "the server ended the call unanswered: it is stopping or restarting (whether the call "
    "ran on the board is not known)"
)
"""What a call the server cancelled says: this client never cancels a call it waits for."""


def from_rpc_error(
    exc: grpc.RpcError, call: str = "", timeout_s: float | None = None
) -> errors.SidraError:
    """The SIDRA exception for a failed call (raise it ``from exc``).

    CANCELLED, which the service never answers on purpose, is what gRPC gives a call a
    stopping server cancels (one arriving after its stop, or still running at the end of
    its grace): :class:`~sidra.drivers.errors.BoardUnavailable`, as a server gone is.
    UNAVAILABLE and DEADLINE_EXCEEDED that no server made (no ErrorInfo: the connection
    failed, or the client's deadline passed) say so in the client's words, naming
    ``call`` (e.g. "MVM to 127.0.0.1:50051") and ``timeout_s`` when given, gRPC's own
    words after them."""
    code: grpc.StatusCode = exc.code()
    message: str = exc.details() or code.name
    if code == grpc.StatusCode.CANCELLED:
        detail = "" if message == code.name else f" ({message})"
        return errors.BoardUnavailable(f"CANCELLED: {SERVER_ENDED}{detail}")
    if code in _TRANSPORT and _error_info(exc) is None:
        return _TRANSPORT[code](call or "the call", timeout_s, message)
    cls = exception_class(code)
    if issubclass(cls, (errors.InvalidArgument, errors.ResourceExhausted)):
        info = _error_info(exc)
        if info is not None and {"field", "value", "allowed"} <= info.metadata.keys():
            meta = info.metadata
            error = cls(meta["field"], value_from(meta), meta["allowed"])
            error.args = (message,)  # the server's wording, verbatim
            return error
        if issubclass(cls, errors.ResourceExhausted):
            # gRPC's own refusal (a message over a receive limit) comes without details.
            error = cls("request", message, "a request within the server's limits")
            error.args = (f"{code.name}: {message}",)
            return error
        return cls("request", message, "a valid request")
    failure = _refined(cls, exc)(f"{code.name}: {message}")
    if isinstance(failure, errors.Unauthenticated | errors.PermissionDenied):
        info = _error_info(exc)  # why the token or the role was refused, to act on
        failure.refusal = info.metadata.get("refusal") if info is not None else None
    if isinstance(failure, errors.BoardUnavailable):
        failure.link_down = _link_down(exc)
    return failure


def _unreachable(call: str, timeout_s: float | None, said: str) -> errors.SidraError:
    return errors.BoardUnavailable(
        f"UNAVAILABLE: {call}: the server cannot be reached, or the connection to it broke "
        f"(is sidra serve running there? whether the call ran is not known) [gRPC: {said}]"
    )


def _too_late(call: str, timeout_s: float | None, said: str) -> errors.SidraError:
    within = "the client's deadline" if timeout_s is None else f"{timeout_s:g} s"
    return errors.DeadlineExceeded(
        f"DEADLINE_EXCEEDED: {call}: no answer within {within} (the client's timeout_s: "
        f"connect(..., timeout_s=...) sets it; whether the call ran is not known) "
        f"[gRPC: {said}]"
    )


_TRANSPORT = {
    grpc.StatusCode.UNAVAILABLE: _unreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: _too_late,
}
"""The client's own wording of the codes gRPC makes without a server's answer."""


def _refined(cls: type[errors.SidraError], exc: grpc.RpcError) -> type[errors.SidraError]:
    """The subclass of ``cls`` the server named in ErrorInfo ("exception"), when it is one
    of the classes that share their parent's code (:data:`~sidra.drivers.errors.REFINED`)."""
    info = _error_info(exc)
    named = info.metadata.get("exception") if info is not None else None
    for refined in errors.REFINED:
        if refined.__name__ == named and issubclass(refined, cls):
            return refined
    return cls


def _rich_status(exc: grpc.RpcError) -> status_pb2.Status | None:
    # from_call raises ValueError when the trailer's code or message disagree with
    # the call's (a proxy rewrote one of them), DecodeError when it is not a Status.
    try:
        return rpc_status.from_call(exc)
    except (ValueError, DecodeError):
        return None


def _error_info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    status = _rich_status(exc)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def _link_down(exc: grpc.RpcError) -> LinkDown | None:
    """The server's account of its board's link being down (board.proto LinkDown), when
    the status carries one."""
    status = _rich_status(exc)
    for detail in status.details if status is not None else ():
        if detail.Is(pb.LinkDown.DESCRIPTOR):
            down = pb.LinkDown()
            detail.Unpack(down)
            return link_down_from_pb(down)
    return None
