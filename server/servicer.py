"""``sidra.hil.v1.BoardService`` over any :class:`~sidra.drivers.Board`.

One route per declared operation (``sidra.drivers.operations.OPERATIONS``):
parse the request bytes, convert to the driver's request, run it on the board
under the board lock, convert the result back. The driver validates;
``sidra.server.status`` maps errors. Bytes that do not parse as the request
message are the caller's fault (INVALID_ARGUMENT), so requests arrive as raw
bytes and are parsed here rather than by gRPC's deserializer, which would
answer INTERNAL.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from sidra.drivers import Board, InvalidArgument
from sidra.drivers.operations import OPERATIONS, Operation
from sidra.hil import convert
from sidra.hil.v1 import board_pb2 as pb
from sidra.server.status import map_errors

__all__ = ["SERVICE_NAME", "BoardServicer", "board_service_handler"]

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["BoardService"].full_name


class BoardServicer:
    """Serves one board; one lock per board so calls never interleave on it."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.lock = threading.Lock()

    def call(self, op: Operation, data: bytes) -> Message:
        """Runs one RPC of ``op`` on the board: request bytes in, response message out."""
        request = convert.request_from_pb(_parse(op, data), op)
        with self.lock:
            result = self.board.run(request)
        return convert.result_to_pb(result, op)


class _Route:
    """The handler of one RPC: ``op`` on ``servicer``, errors mapped to gRPC status."""

    def __init__(self, servicer: BoardServicer, op: Operation) -> None:
        self.servicer = servicer
        self.op = op
        # Raw bytes arrive, so map_errors learns the request type here to check
        # that each BadRequest field path exists in it.
        self.request_type = getattr(pb, f"{op.rpc}Request").DESCRIPTOR

    @map_errors
    def __call__(self, data: bytes, context: grpc.ServicerContext) -> Message:
        return self.servicer.call(self.op, data)


def board_service_handler(servicer: BoardServicer) -> grpc.GenericRpcHandler:
    """Every BoardService RPC, routed to ``servicer`` (register with add_generic_rpc_handlers)."""
    handlers: dict[str, Any] = {
        op.rpc: grpc.unary_unary_rpc_method_handler(
            _Route(servicer, op),
            request_deserializer=None,  # raw bytes: parsed in BoardServicer.call
            response_serializer=getattr(pb, f"{op.rpc}Response").SerializeToString,
        )
        for op in OPERATIONS
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _parse(op: Operation, data: bytes) -> Message:
    message_type = getattr(pb, f"{op.rpc}Request")
    try:
        message: Message = message_type.FromString(data)
    except DecodeError as exc:
        raise InvalidArgument(
            "request",
            f"{len(data)} bytes that do not parse ({exc})",
            f"a serialized {message_type.DESCRIPTOR.full_name}",
        ) from exc
    return message
