"""StreamService calls of the clients (stream.proto): pipelined MVM batches, chunked
Program and ReadConductance.

:class:`~sidra.client.RemoteBoard` uses these: ``mvm_stream`` keeps a few batches in
flight on one MVMStream; ``run`` sends a Program, or asks for a ReadConductance,
as row bands when its one message would pass the server's message size.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import numpy as np

from sidra.client.batches import joined, parts
from sidra.client.options import checked_count
from sidra.drivers import errors
from sidra.drivers.operations import OPERATIONS, Operation
from sidra.drivers.requests import (
    MVMRequest,
    ProgramRequest,
    ReadConductanceRequest,
    Request,
    TransposeMVMRequest,
)
from sidra.drivers.types import BoardInfo, MVMResult, ProgramReport, ReadResult, Region
from sidra.hil import convert, tensors
from sidra.hil.chunks import rows_per_band
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import stream_pb2 as spb

__all__ = [
    "DEFAULT_STREAM_DEPTH",
    "STREAM_SERVICE_NAME",
    "from_item_error",
    "mvm_stream_calls",
    "needs_geometry",
    "pass_messages",
    "pass_operation",
    "program_chunks",
    "read_from_chunks",
    "transfer_bytes",
    "WholeBatches",
]

STREAM_SERVICE_NAME: str = spb.DESCRIPTOR.services_by_name["StreamService"].full_name

DEFAULT_STREAM_DEPTH = 4
"""Batches an MVM stream keeps sent and not yet answered: enough to hide the round trip,
no more than the server's default max_in_flight reads ahead."""

_OPS: dict[str, Operation] = {op.rpc: op for op in OPERATIONS}

Kept = TypeVar("Kept")
"""What a stream keeps of an item until its answer (None for a pass in the message)."""


def from_item_error(error: spb.StreamItemError) -> errors.SidraError:
    """The SIDRA exception a stream item's error stands for (as ``from_rpc_error``)."""
    cls = errors.exception_for(error.code, errors.GRPC_STATUS)
    for refined in errors.REFINED:
        if refined.__name__ == error.exception and issubclass(refined, cls):
            cls = refined
    if issubclass(cls, errors.InvalidArgument | errors.ResourceExhausted) and error.field:
        exc = cls(error.field, error.value, error.allowed)
        exc.args = (error.message,)
        return exc
    return cls(f"{error.code}: {error.message}")


def pass_operation(transpose: bool) -> Operation:
    """The MVM operation, or with ``transpose`` TransposeMVM's."""
    return _OPS["TransposeMVM" if transpose else "MVM"]


def pass_messages(
    tile: int,
    batches: Iterable[Any],
    region: Region | None,
    transpose: bool,
    message: Callable[[Request, Operation], Any],
    sizes: Callable[[], tuple[int, int, Callable[[], BoardInfo]]],
) -> Iterator[tuple[Any, int]]:
    """Each batch of voltages as its pass's RPC messages (``message``: a request's message,
    or the SIDRA error of one the wire cannot carry), drawn as the stream sends them. A
    batch larger than one call carries (``sizes()``: max_batch, the message size and how to
    get the board's info; sidra.client.batches) is checked whole, then goes as consecutive items,
    as a unary call's does; each item keeps how many items of its batch follow it (0: its
    last), which :class:`WholeBatches` joins by."""
    request_type = TransposeMVMRequest if transpose else MVMRequest
    op = pass_operation(transpose)
    for voltages in batches:
        request = request_type(tile, voltages, region)
        max_batch, message_bytes, info = sizes()
        cut = parts(request, max_batch, message_bytes, info)
        if cut is None:
            yield message(request, op), 0
            continue
        request.checked(info())  # a bad vector anywhere: no part is sent
        for k, part in enumerate(cut):
            yield message(part, op), len(cut) - 1 - k


class WholeBatches:
    """Joins the items' results of an MVM stream into their batches' (both clients):
    :meth:`kept` is the stream's ``result_of``, :meth:`whole` gives each batch's result
    once its last item's is in."""

    def __init__(self, op: Operation) -> None:
        self._op = op
        self._following: collections.deque[int] = collections.deque()
        self._held: list[MVMResult] = []

    def kept(self, answer: Any, following: int) -> MVMResult:
        """An item's answer as its result; notes how many items of its batch follow."""
        self._following.append(following)
        result: MVMResult = convert.result_from_pb(answer, self._op)
        return result

    def whole(self, result: MVMResult) -> MVMResult | None:
        """The batch's result once ``result`` (the next item's) completes it, else None."""
        self._held.append(result)
        if self._following.popleft():
            return None
        held, self._held = self._held, []
        return held[0] if len(held) == 1 else joined(held)


class MVMStreamFeed(Generic[Kept]):
    """The request side of one MVMStream: ``passes`` (each pass's RPC message, and what
    its answer needs kept, e.g. the shared-memory array its outputs go to) as items, at
    most ``depth`` sent and not yet answered (:meth:`answered` frees a place and hands
    back what was kept for that item). A pass that cannot be made (``passes`` raising
    while drawn) ends the feed; :attr:`failure` keeps why, raised once the answers
    before it are in."""

    def __init__(self, passes: Iterable[tuple[Any, Kept]], transpose: bool, depth: int) -> None:
        self._passes = passes
        self._member = "transpose_mvm" if transpose else "mvm"
        self._window = threading.Semaphore(checked_count("depth", depth, 1, "items in flight"))
        self._stopped = threading.Event()
        self._kept: collections.deque[Kept] = collections.deque()
        self.failure: BaseException | None = None
        self.op = pass_operation(transpose)

    def __iter__(self) -> Iterator[spb.MVMStreamRequest]:
        try:
            passes = iter(self._passes)
            for sequence in itertools.count():
                while not self._window.acquire(timeout=0.1):
                    if self._stopped.is_set():
                        return
                if self._stopped.is_set():
                    return
                drawn = next(passes, None)
                if drawn is None:
                    return
                message, kept = drawn
                item = spb.MVMStreamRequest(sequence=sequence)
                getattr(item, self._member).CopyFrom(message)
                self._kept.append(kept)
                yield item
        except Exception as exc:  # noqa: BLE001 - raised to the caller after the answers
            self.failure = exc

    def answered(self) -> Kept:
        """Frees the answered item's place; what was kept for it."""
        self._window.release()
        return self._kept.popleft()

    def stop(self) -> None:
        self._stopped.set()


def mvm_stream_calls(
    call: Any,
    feed: MVMStreamFeed[Kept],
    result_of: Callable[[Any, Kept], MVMResult] | None = None,
) -> Iterator[MVMResult]:
    """The results of ``call`` (an MVMStream call fed by ``feed``), in order, each made by
    ``result_of(answer, kept)`` (default: the answer converted); an item's error raised
    as its SIDRA exception (the stream is cancelled then)."""
    try:
        for response in call:
            member = response.WhichOneof("result")
            if member == "error":
                feed.stop()  # no item is sent after a refused one
                raise from_item_error(response.error)
            kept = feed.answered()
            answer = getattr(response, member)
            if result_of is None:
                result: MVMResult = convert.result_from_pb(answer, feed.op)
            else:
                result = result_of(answer, kept)
            yield result
        if feed.failure is not None:
            raise feed.failure
    finally:
        feed.stop()
        call.cancel()  # a no-op once the stream has ended


def needs_geometry(request: object) -> bool:
    """Whether :func:`transfer_bytes` needs the board's geometry for ``request``: a read
    whose region runs to the tile's end (or the whole tile)."""
    if not isinstance(request, ReadConductanceRequest):
        return False
    region = request.region
    if region is not None and not isinstance(region, Region):
        return False  # no Region: refused when its message is built
    return region is None or not region.rows or not region.cols


def transfer_bytes(request: object, info: BoardInfo | None) -> int:
    """Data bytes a Program sends or a ReadConductance answers (0 for other requests);
    ``info`` (the board's geometry) when :func:`needs_geometry` says so."""
    if isinstance(request, ProgramRequest):
        return int(getattr(request.conductances, "nbytes", 0))
    if not isinstance(request, ReadConductanceRequest):
        return 0
    region = request.region or Region()
    if not isinstance(region, Region):
        return 0  # refused when its message is built
    rows, cols = region.rows, region.cols
    if info is not None:
        rows = rows or info.rows - region.row_offset
        cols = cols or info.cols - region.col_offset
    return 4 * max(rows, 0) * max(cols, 0)


def program_chunks(request: ProgramRequest, chunk_bytes: int) -> Iterator[spb.ProgramChunk]:
    """``request`` (float32 targets) as ProgramChunked's row bands."""
    g = np.ascontiguousarray(request.conductances, np.float32)
    if g.ndim != 2 or 0 in g.shape:  # the server names the field; one chunk carries it
        chunk = spb.ProgramChunk(
            tile=request.tile, row_offset=request.row_offset, col_offset=request.col_offset
        )
        chunk.shape.extend(g.shape[:2] if g.ndim >= 2 else g.shape)
        tensors.encode_into(chunk.conductances, g)
        yield chunk
        return
    band = rows_per_band(g.shape[1], chunk_bytes)
    for start in range(0, g.shape[0], band):
        chunk = spb.ProgramChunk()
        if start == 0:
            chunk.tile, chunk.row_offset, chunk.col_offset = (
                request.tile, request.row_offset, request.col_offset,
            )  # fmt: skip
            chunk.shape.extend(g.shape)
        tensors.encode_into(chunk.conductances, g[start : start + band])
        yield chunk


def program_report(reply: pb.ProgramResponse) -> ProgramReport:
    """A ProgramChunked answer as the report a Program gives."""
    report: ProgramReport = convert.result_from_pb(reply, _OPS["Program"])
    return report


def read_request(
    request: ReadConductanceRequest, chunk_bytes: int
) -> spb.ReadConductanceChunkedRequest:
    """``request`` as a ReadConductanceChunked request for bands of ``chunk_bytes``."""
    message = spb.ReadConductanceChunkedRequest(chunk_bytes=chunk_bytes)
    message.read.MergeFromString(
        convert.request_to_pb(request, _OPS["ReadConductance"]).SerializeToString()
    )
    return message


def read_from_chunks(chunks: Iterable[spb.ConductanceChunk]) -> ReadResult:
    """The ReadResult the bands of a ReadConductanceChunked answer make up."""
    g: np.ndarray | None = None
    cost = pb.OperationCost()
    for chunk in chunks:
        if g is None:
            g = np.empty(tuple(chunk.shape), np.float32)
            cost = chunk.cost
        band = tensors.decode(chunk.conductances, "conductances")
        g[chunk.row_start : chunk.row_start + band.shape[0]] = band
    if g is None:  # pragma: no cover - the server always sends a first band
        raise errors.BoardFault("ReadConductanceChunked answered no chunk")
    reply = pb.ReadConductanceResponse(cost=cost)
    tensors.encode_into(reply.conductances, g)
    result: ReadResult = convert.result_from_pb(reply, _OPS["ReadConductance"])
    return result
