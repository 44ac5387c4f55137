"""``sidra.hil.v1.StreamService`` (stream.proto): board operations carried as streams.

Nothing here is a board operation of its own. Each MVMStream item is an MVM or
TransposeMVM call (its tensors in the item or in the caller's registered shared
memory), a ProgramChunked stream one Program call, a
ReadConductanceChunked answer one ReadConductance call, and each goes through
:meth:`BoardServicer.run_in_turn` as the unary RPC would: the caller's turn on
the board, the leases, the state store. What is added is transport: items read
ahead of the board (at most the caller's ``max_in_flight``) and row bands.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import Message

from sidra.drivers import InvalidArgument, OutOfRange, ResourceExhausted, SidraError
from sidra.drivers.errors import capped
from sidra.drivers.operations import OPERATIONS, Operation
from sidra.drivers.requests import ProgramRequest
from sidra.hil import convert, tensors
from sidra.hil.chunks import CHUNK_FRAMING_BYTES, DEFAULT_CHUNK_BYTES
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import stream_pb2 as spb
from sidra.server.limits import caller_key
from sidra.server.parsing import parse_request
from sidra.server.servicer import BoardServicer, _session_of, answer_of
from sidra.server.shared_memory import names_shared_memory
from sidra.server.status import MESSAGE_LIMIT, SERVICE_FAULT_CODES, code_for, map_errors

__all__ = [
    "STREAM_SERVICE_NAME",
    "StreamServicer",
    "stream_service_handler",
]

log = logging.getLogger(__name__)

STREAM_SERVICE_NAME: str = spb.DESCRIPTOR.services_by_name["StreamService"].full_name

_OPS: dict[str, Operation] = {op.rpc: op for op in OPERATIONS}
_PASS_OPS = {"mvm": _OPS["MVM"], "transpose_mvm": _OPS["TransposeMVM"]}
"""An MVMStreamRequest's pass field -> the operation it is."""

_END = object()
"""What the read-ahead queue holds once the client has sent its last item."""


class StreamServicer:
    """Serves StreamService for ``board`` (a :class:`BoardServicer`: its limits, turns,
    leases and store); ``max_message_bytes`` is the server-wide message size."""

    def __init__(self, board: BoardServicer, max_message_bytes: int) -> None:
        self.board = board
        self.max_message_bytes = max_message_bytes

    # -- MVMStream ------------------------------------------------------------------------

    def mvm_stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        """Each item's pass, run in the caller's turn, answered in order."""
        board = self.board
        principal = board.principal_of(context)
        caller = caller_key(principal, context.peer())
        session = _session_of(context)
        admin = board.admin_of(context) if board.leases is not None else False
        peer = context.peer()
        # The stream: one of the server's stream places and one call in flight.
        with board.limits.stream("MVMStream"), board.limits.admitted(caller, 0):
            ahead = _ReadAhead(requests, board.limits.max_in_flight)
            context.add_callback(ahead.stop)  # a cancelled stream stops reading at once
            try:
                for data in ahead:
                    yield self._item(data, principal, caller, session, admin, peer)
            finally:
                ahead.stop()

    def _item(
        self,
        data: bytes,
        principal: str,
        caller: str,
        session: str | None,
        admin: bool,
        peer: str,
    ) -> spb.MVMStreamResponse:
        message = parse_request(spb.MVMStreamRequest, data)  # unparsable: ends the stream
        member = message.WhichOneof("pass")
        if member is None:
            raise InvalidArgument(
                "request",
                f"an MVMStreamRequest (sequence {message.sequence}) with no pass set",
                "mvm or transpose_mvm set",
            )
        op = _PASS_OPS[member]
        response = spb.MVMStreamResponse(sequence=message.sequence)
        try:
            limits = self.board.limits
            limits.check_size(caller, len(data))
            passed = getattr(message, member)
            limits.check_batch(caller, passed)
            request = convert.request_from_pb(passed, op)
            outputs = None
            if names_shared_memory(passed):  # its inputs are read now, as it runs
                request, outputs = self.board.shared_request(
                    passed, request, principal, session, peer
                )
            del message, passed  # the request holds its own copy of the voltages
            result = self.board.run_in_turn(
                op.rpc, request, principal, caller, session, admin=admin
            )
            answer = answer_of(result, op, request, outputs)  # outputs written before it
        except SidraError as exc:
            if code_for(exc) in SERVICE_FAULT_CODES:
                log.error("MVMStream item %d failed: %s", response.sequence, exc, exc_info=True)
            _fill_error(response.error, exc)
            return response
        getattr(response, member).CopyFrom(answer)
        return response

    # -- ProgramChunked -------------------------------------------------------------------

    def program_chunked(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> Message:
        """The whole target set received and assembled, then one Program."""
        board = self.board
        principal = board.principal_of(context)
        caller = caller_key(principal, context.peer())
        with board.limits.stream("ProgramChunked"), board.limits.admitted(caller, 0):
            request = self._assembled(chunks, caller)
            admin = board.admin_of(context) if board.leases is not None else False
            op = _OPS["Program"]
            result = board.run_in_turn(
                op.rpc, request, principal, caller, _session_of(context), admin=admin
            )
            return convert.result_to_pb(result, op, request)

    def _assembled(self, chunks: Iterator[bytes], caller: str) -> ProgramRequest:
        """The Program the chunks make up; every chunk checked before the next is read."""
        info = self.board.board.info
        limits = self.board.limits
        first: spb.ProgramChunk | None = None
        targets = np.empty((0, 0), np.float32)
        filled = 0
        for k, data in enumerate(chunks):
            limits.check_size(caller, len(data))
            chunk = parse_request(spb.ProgramChunk, data)
            if first is None:
                first = chunk
                targets = np.empty(_declared_shape(chunk, info.rows * info.cols), np.float32)
            elif chunk.tile or chunk.row_offset or chunk.col_offset or chunk.shape:
                raise InvalidArgument(
                    "chunks", f"chunk {k} sets tile, row_offset, col_offset or shape",
                    "those in the first chunk only",
                )  # fmt: skip
            band = tensors.decode(chunk.conductances, "conductances")
            rows, cols = targets.shape
            if band.shape[1] != cols or filled + band.shape[0] > rows:
                allowed = (
                    f"[1 .. {rows - filled}, {cols}]: the next rows, full width"
                    if filled < rows
                    else f"no more chunks: the {rows} rows declared are all sent"
                )
                raise InvalidArgument(
                    "chunks",
                    f"chunk {k} of shape {list(band.shape)} after {filled} of {rows} rows",
                    allowed,
                )
            targets[filled : filled + band.shape[0]] = band
            filled += band.shape[0]
        if first is None:
            raise InvalidArgument("chunks", "no chunk", "at least one ProgramChunk")
        if filled != targets.shape[0]:
            raise InvalidArgument(
                "chunks", f"{filled} rows sent", f"{targets.shape[0]} rows, as the shape says"
            )
        return ProgramRequest(first.tile, targets, first.row_offset, first.col_offset)

    # -- ReadConductanceChunked -----------------------------------------------------------

    def read_conductance_chunked(self, data: bytes, context: grpc.ServicerContext) -> Any:
        """One read of the region, answered as row bands of at most chunk_bytes each; one
        of the server's stream places held until the last band is sent."""
        with self.board.limits.stream("ReadConductanceChunked"):
            yield from self._read_in_bands(data, context)

    def _read_in_bands(self, data: bytes, context: grpc.ServicerContext) -> Iterator[Message]:
        board = self.board
        principal = board.principal_of(context)
        caller = caller_key(principal, context.peer())
        with board.limits.admitted(caller, len(data)):
            message = parse_request(spb.ReadConductanceChunkedRequest, data)
            chunk_bytes = self._chunk_bytes(message.chunk_bytes)
            op = _OPS["ReadConductance"]
            try:
                request = convert.request_from_pb(message.read, op)
                admin = board.admin_of(context) if board.leases is not None else False
                result = board.run_in_turn(
                    op.rpc, request, principal, caller, _session_of(context), admin=admin
                )
            except InvalidArgument as exc:  # a path into the request: under "read"
                raise type(exc)(f"read.{exc.field}", exc.value, exc.allowed) from exc
        g = np.ascontiguousarray(result.conductances, np.float32)
        row_bytes = 4 * g.shape[1]
        if chunk_bytes < row_bytes:
            raise OutOfRange(
                "chunk_bytes", chunk_bytes, f"at least one row of the region ({row_bytes} bytes)"
            )
        reply = convert.result_to_pb(result, op, request)
        assert isinstance(reply, pb.ReadConductanceResponse)
        yield from _bands(g, chunk_bytes // row_bytes, reply.cost)

    def _chunk_bytes(self, asked: int) -> int:
        most = self.max_message_bytes - CHUNK_FRAMING_BYTES
        if asked > most:
            raise OutOfRange(
                "chunk_bytes", asked, f"at most {most} (the server's message size less framing)"
            )
        return asked or min(DEFAULT_CHUNK_BYTES, most)


def _declared_shape(first: spb.ProgramChunk, most_cells: int) -> tuple[int, int]:
    shape = list(first.shape)
    if len(shape) != 2 or 0 in shape:
        raise InvalidArgument("chunks.shape", shape, "[rows >= 1, cols >= 1] in the first chunk")
    if shape[0] * shape[1] > most_cells:
        raise OutOfRange("chunks.shape", shape, f"at most one tile ({most_cells} cells) of targets")
    return shape[0], shape[1]


def _bands(g: np.ndarray, rows_per_band: int, cost: pb.OperationCost) -> Iterator[Message]:
    rows = g.shape[0]
    for start in range(0, rows, rows_per_band):
        chunk = spb.ConductanceChunk(row_start=start)
        tensors.encode_into(chunk.conductances, g[start : start + rows_per_band])
        if start == 0:
            chunk.shape.extend(g.shape)
            chunk.cost.CopyFrom(cost)
        yield chunk


def _fill_error(error: spb.StreamItemError, exc: SidraError) -> None:
    """``exc`` as a stream item's error: what its status and ErrorInfo would say."""
    error.code = code_for(exc).name
    error.message = capped(str(exc), MESSAGE_LIMIT)
    error.exception = type(exc).__name__
    if isinstance(exc, InvalidArgument | ResourceExhausted):
        error.field = exc.field
        error.value = capped(str(exc.value))
        error.allowed = capped(exc.allowed)


class _ReadAhead:
    """A stream's items read by a thread of their own, at most ``depth`` ahead of the one
    being run: the board never waits for the network between items, and once ``depth``
    wait the thread stops reading, so gRPC's flow control holds the client back."""

    def __init__(self, requests: Iterator[bytes], depth: int) -> None:
        self._items: queue.Queue[Any] = queue.Queue(maxsize=max(depth, 1))
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(requests,), name="mvm-stream-read", daemon=True
        )
        self._thread.start()

    def _read(self, requests: Iterator[bytes]) -> None:
        end: Any = _END
        try:
            for data in requests:
                if not self._put(data):
                    return
        except Exception as exc:  # noqa: BLE001 - the client went away: the stream ends
            end = exc
        self._put(end)

    def _put(self, item: Any) -> bool:
        while not self._stopped.is_set():
            try:
                self._items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                item = self._items.get(timeout=0.1)
            except queue.Empty:
                if self._stopped.is_set():  # cancelled while the client sent nothing
                    return
                continue
            if item is _END or isinstance(item, Exception):
                return
            yield item

    def stop(self) -> None:
        """Stops reading (the stream ended or was cancelled)."""
        self._stopped.set()


class _StreamRoute:
    """A streaming handler whose failures leave as a gRPC status (map_errors, for
    methods that return an iterator: errors raised while it is iterated too)."""

    def __init__(self, rpc: str, method: Callable[..., Any], request_type: Any) -> None:
        self.rpc = rpc
        self.method = method
        self.request_type = request_type.DESCRIPTOR

    @map_errors
    def _start(self, request: Any, context: grpc.ServicerContext) -> Any:
        return iter(self.method(request, context))

    def __call__(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        responses = self._start(request, context)
        while (item := self._next(responses, context)) is not _END:
            yield item

    @map_errors
    def _next(self, responses: Iterator[Any], context: grpc.ServicerContext) -> Any:
        return next(responses, _END)


class _UnaryRoute:
    """A stream-in, message-out handler with map_errors."""

    def __init__(self, rpc: str, method: Callable[..., Any], request_type: Any) -> None:
        self.rpc = rpc
        self.method = method
        self.request_type = request_type.DESCRIPTOR

    @map_errors
    def __call__(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.method(request, context)


def stream_service_handler(servicer: StreamServicer) -> grpc.GenericRpcHandler:
    """Every StreamService RPC, routed to ``servicer`` (register with add_generic_rpc_handlers).
    Requests arrive as raw bytes, parsed by the servicer (unparsable: INVALID_ARGUMENT)."""
    handlers = {
        "MVMStream": grpc.stream_stream_rpc_method_handler(
            _StreamRoute("MVMStream", servicer.mvm_stream, spb.MVMStreamRequest),
            response_serializer=spb.MVMStreamResponse.SerializeToString,
        ),
        "ProgramChunked": grpc.stream_unary_rpc_method_handler(
            _UnaryRoute("ProgramChunked", servicer.program_chunked, spb.ProgramChunk),
            response_serializer=pb.ProgramResponse.SerializeToString,
        ),
        "ReadConductanceChunked": grpc.unary_stream_rpc_method_handler(
            _StreamRoute(
                "ReadConductanceChunked",
                servicer.read_conductance_chunked,
                spb.ReadConductanceChunkedRequest,
            ),
            response_serializer=spb.ConductanceChunk.SerializeToString,
        ),
    }
    return grpc.method_handlers_generic_handler(STREAM_SERVICE_NAME, handlers)
