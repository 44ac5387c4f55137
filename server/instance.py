"""Every BoardService response names the board instance it ended on.

A board's state lives as long as one instance of it (``Board.instance_id``: one
power-up, one emulator run). :class:`InstanceMetadata` is a server interceptor
that adds the instance id to the trailing metadata of every BoardService
response, OK or not, under :data:`~sidra.hil.metadata.INSTANCE_ID_KEY`, so each
client can compare it with the one it saw before and learn of a reset on its
own next call, whoever's call met the reset (board.proto, "Board instance").

The id is read after the call ended, so it is never older than the state the
call saw; a reset right after the call can make it newer, and the client then
hears of that reset one call early. Registered after the access control
(``interceptors=(AccessControl(tokens), InstanceMetadata(board))``), calls it
refuses never reach this one and carry no id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from sidra.drivers import Board, SidraError
from sidra.drivers.base import INSTANCE_ID_LIMIT, printable_ascii
from sidra.hil.metadata import INSTANCE_ID_KEY
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import stream_pb2
from sidra.server.wrapped import WrappedHandlers

__all__ = ["INSTANCE_ID_KEY", "InstanceMetadata", "instance_metadata"]

log = logging.getLogger(__name__)

_SERVICE_PREFIXES = tuple(
    "/" + module.DESCRIPTOR.services_by_name[name].full_name + "/"
    for module, name in ((pb, "BoardService"), (stream_pb2, "StreamService"))
)
"""The services whose responses are about the board's state (streams carry its calls)."""

Metadata = tuple[tuple[str, str], ...]


def instance_metadata(board: Board) -> Metadata:
    """The trailing metadata that names ``board``'s current instance.

    ``Board.instance_id`` is printable ASCII already (it is built that way), and is
    sent as it is, so the trailer and GetBoardInfo's ``instance_id`` always agree.
    Only a board that breaks that contract has its id escaped (gRPC refuses anything
    else in a text metadata value, and would fail the call for it): escaping a valid
    id again would turn its ``%XX`` into ``%25XX``.
    """
    value = board.instance_id
    if not (value.isascii() and value.isprintable() and len(value) <= INSTANCE_ID_LIMIT):
        value = printable_ascii(value)
    return ((INSTANCE_ID_KEY, value),)


class InstanceMetadata(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Adds :func:`instance_metadata` of ``board`` to every BoardService and StreamService
    response."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self._wrapped = WrappedHandlers()
        self._last: tuple[str, Metadata] = ("", ())

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None or not details.method.startswith(_SERVICE_PREFIXES):
            return handler  # health, reflection: not about the board's state
        return self._wrapped.get(handler, self._wrap)

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(handler.unary_unary))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._unary(handler.stream_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._streaming(handler.unary_stream))
        return handler._replace(stream_stream=self._streaming(handler.stream_stream))

    def _unary(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behavior(request, context)
            finally:  # an aborted call too: its status trailer is kept, the id added
                self._attach(context)

        return run

    def _streaming(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        # Trailing metadata goes out when the response stream ends: attach it then.
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from behavior(request, context)
            finally:
                self._attach(context)

        return run

    def _attach(self, context: grpc.ServicerContext) -> None:
        try:
            ours = self._metadata()
        except SidraError as exc:  # a board that must ask someone (a proxied remote board)
            log.warning("no %s on this response: %s", INSTANCE_ID_KEY, exc)
            return
        trailers = context.trailing_metadata()
        if not trailers:  # an answered call: nothing else to keep
            context.set_trailing_metadata(ours)
            return
        # abort_with_status() set the status details trailer: keep it, and anything else.
        kept = tuple((k, v) for k, v in trailers if k != INSTANCE_ID_KEY)
        context.set_trailing_metadata(kept + ours)

    def _metadata(self) -> Metadata:
        """:func:`instance_metadata`, checked and built again only when the id changes."""
        value = self.board.instance_id
        last = self._last
        if last[0] == value and value:
            return last[1]
        ours = instance_metadata(self.board)
        self._last = (value, ours)
        return ours
