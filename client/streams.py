"""StreamService calls of the clients (stream.proto): pipelined MVM batches, chunked
Program and ReadConductance.

:class:`~sidra.client.RemoteBoard` uses these: ``mvm_stream`` keeps a few batches in
flight on one MVMStream; ``run`` sends a Program, or asks for a ReadConductance,
as row bands when its one message would pass the server's message size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

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
    "program_chunks",
    "read_from_chunks",
    "transfer_bytes",
]

STREAM_SERVICE_NAME: str = spb.DESCRIPTOR.services_by_name["StreamService"].full_name

DEFAULT_STREAM_DEPTH = 4
"""Batches an MVM stream keeps sent and not yet answered: enough to hide the round trip,
no more than the server's default max_in_flight reads ahead."""

_OPS: dict[str, Operation] = {op.rpc: op for op in OPERATIONS}


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


class MVMStreamFeed:
    """The request side of one MVMStream: ``batches`` as items, at most ``depth`` sent and
    not yet answered (:meth:`answered` frees a place). A batch the wire cannot carry
    ends the feed; :attr:`failure` keeps why, raised once the answers before it are in."""

    def __init__(
        self,
        tile: int,
        batches: Iterable[Any],
        region: Region | None,
        transpose: bool,
        depth: int,
        message: Callable[[Request, Operation], Any],
    ) -> None:
        self._tile, self._batches, self._region = tile, batches, region
        self._transpose = transpose
        self._window = threading.Semaphore(max(depth, 1))
        self._stopped = threading.Event()
        self._message = message
        """A request's RPC message, or the SIDRA error of a request the wire cannot carry."""
        self.failure: BaseException | None = None
        self.op = _OPS["TransposeMVM" if transpose else "MVM"]

    def __iter__(self) -> Iterator[spb.MVMStreamRequest]:
        member = "transpose_mvm" if self._transpose else "mvm"
        request_type = TransposeMVMRequest if self._transpose else MVMRequest
        try:
            for sequence, voltages in enumerate(self._batches):
                while not self._window.acquire(timeout=0.1):
                    if self._stopped.is_set():
                        return
                if self._stopped.is_set():
                    return
                request = request_type(self._tile, voltages, self._region)
                item = spb.MVMStreamRequest(sequence=sequence)
                getattr(item, member).CopyFrom(self._message(request, self.op))
                yield item
        except Exception as exc:  # noqa: BLE001 - raised to the caller after the answers
            self.failure = exc

    def answered(self) -> None:
        self._window.release()

    def stop(self) -> None:
        self._stopped.set()


def mvm_stream_calls(call: Any, feed: MVMStreamFeed) -> Iterator[MVMResult]:
    """The results of ``call`` (an MVMStream call fed by ``feed``), in order; an item's
    error raised as its SIDRA exception (the stream is cancelled then)."""
    try:
        for response in call:
            feed.answered()
            member = response.WhichOneof("result")
            if member == "error":
                raise from_item_error(response.error)
            result: MVMResult = convert.result_from_pb(getattr(response, member), feed.op)
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
