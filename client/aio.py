"""``AsyncRemoteBoard``: the board behind ``sidra serve`` for asyncio (``grpc.aio``).

The same methods as :class:`~sidra.client.RemoteBoard`, as coroutines, so a loop can
keep several calls in flight (``asyncio.gather``) where its algorithm allows::

    async with await aio.connect("127.0.0.1:50051") as board:
        info = await board.info()
        plus, minus = await asyncio.gather(board.mvm(0, v1), board.mvm(1, v2))

What each method sends and returns is written once, in
:class:`~sidra.drivers.operations.BoardMethods`: a method here runs that one
twice, first to learn the request it builds, then to shape the result the server
answered (both runs only build dataclasses). Errors are the same SIDRA exceptions,
the ``sidra-instance-id`` trailer is followed the same way
(:class:`~sidra.client.BoardInstanceChanged`), and the board is described by
``await board.info()`` rather than a property, since asking may need the network.
Sessions and leases: ``await board.session()``, an :class:`AsyncSession` whose
``await session.lease(tiles)`` is an :class:`AsyncLease` (both importable from here);
shared memory in a session: ``async with await board.shared_memory(size) as shm``,
then ``mvm_shared`` and ``mvm_shared_stream`` (:mod:`sidra.client.shared_memory`);
training jobs inside the server: ``board.jobs`` (:mod:`sidra.client.aio_jobs`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio
import numpy.typing as npt
from grpc_health.v1 import health_pb2_grpc

from sidra.client import batches, streams
from sidra.client.aio_jobs import AsyncJobs
from sidra.client.aio_session import AsyncLease, AsyncSession, call_session, list_leases
from sidra.client.batches import parts as batches_of  # (mvm_stream has a parameter "batches")
from sidra.client.call_sizes import DEFAULT_MAX_IN_FLIGHT, CallSizes, SizedCalls
from sidra.client.credentials import (
    TlsCredentials,
    aio_bearer_token,
    bearer_token,
    check_token_transport,
    plaintext_hopeless,
    tls_hopeless,
    unanswered,
)
from sidra.client.deployments import AsyncDeployments
from sidra.client.errors import from_rpc_error
from sidra.client.instance import InstanceTracker
from sidra.client.options import check_connect_options, checked_count
from sidra.client.reachability import wait_for_server_async
from sidra.client.refused_places import PlaceWaits
from sidra.client.remote import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TIMEOUT_S,
    HEALTH_REQUEST,
    SERVICE_NAME,
    UNSENDABLE,
    channel_options,
    check_address,
    health_name,
    instance_in,
    refuse_unsendable,
    representable,
)
from sidra.client.session import (
    Caller,
    TileLease,
    board_repr,
    caller_of,
    session_state,
    tile_use_of,
    tiles_named,
)
from sidra.client.shared_memory import AsyncSharedRegion, SharedArray, pass_message, pass_result
from sidra.client.shared_memory import new_name as new_shm_name
from sidra.client.streams import (
    DEFAULT_STREAM_DEPTH,
    STREAM_SERVICE_NAME,
    Kept,
    from_item_error,
)
from sidra.drivers import (
    BoardInfo,
    BoardStats,
    BoardUnavailable,
    CalibrationReport,
    FailedPrecondition,
    MVMResult,
    PerturbationPoint,
    PerturbedMVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    SequenceResult,
    SidraError,
    TileUse,
    Unsupported,
    WriteCounts,
)
from sidra.drivers.operations import OPERATIONS, BoardMethods, Operation, operation_of
from sidra.drivers.requests import (
    GetBoardInfoRequest,
    MVMRequest,
    PerturbedMVMRequest,
    ProgramRequest,
    ReadConductanceRequest,
    Request,
    SequenceRequest,
    TransposeMVMRequest,
)
from sidra.drivers.types import BoardDescription
from sidra.hil import convert
from sidra.hil.chunks import CHUNK_FRAMING_BYTES
from sidra.hil.metadata import SESSION_ID_KEY
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import session_pb2, stream_pb2

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "AsyncLease",
    "AsyncRemoteBoard",
    "AsyncSession",
    "connect",
]


T = TypeVar("T")

log = logging.getLogger(__name__)

_MAY_SPLIT = MVMRequest | TransposeMVMRequest | PerturbedMVMRequest | SequenceRequest
"""Requests that may need several calls under the service's limits (sidra.client.batches)."""


class _Built(Exception):
    """Carries the request a BoardMethods method built out of it."""

    def __init__(self, request: Request) -> None:
        self.request = request


class _Builder(BoardMethods):
    """Runs a BoardMethods method up to its request, which it hands back as _Built."""

    @property
    def info(self) -> NoReturn:
        raise AssertionError("a board method asked for info while building its request")

    def run(self, request: Any) -> NoReturn:
        raise _Built(request)


class _Answered(BoardMethods):
    """Runs a BoardMethods method with the server's answer as what ``run`` returns."""

    def __init__(self, result: Any) -> None:
        self.result = result

    @property
    def info(self) -> NoReturn:
        raise AssertionError("a board method asked for info while shaping its result")

    def run(self, request: Any) -> Any:
        return self.result


class AsyncRemoteBoard(SizedCalls):
    """A board reached through ``sidra serve``, for asyncio; use ``async with``."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        address: str | None = None,
        max_in_flight: int | None = None,
        message_limit_bytes: int | None = None,
        max_batch: int | None = None,
        channel_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.channel = channel
        self._sizes = CallSizes(
            max_batch, message_limit_bytes, channel_message_bytes, max_in_flight
        )
        """How large a call may be (sidra.client.call_sizes): ``max_batch`` vectors per
        MVM, ``message_limit_bytes`` per message (None: what the service announces);
        ``channel_message_bytes``: the channel's own limit."""
        self.timeout_s = timeout_s
        """Deadline of each call, s."""
        self.address = address
        """``host:port`` of the server, when known."""
        self._info: BoardInfo | None = None
        self._calls = {
            op.request: channel.unary_unary(
                f"/{SERVICE_NAME}/{op.rpc}",
                request_serializer=getattr(pb, f"{op.rpc}Request").SerializeToString,
                response_deserializer=getattr(pb, f"{op.rpc}Response").FromString,
            )
            for op in OPERATIONS
        }
        self._program_chunked = channel.stream_unary(
            f"/{STREAM_SERVICE_NAME}/ProgramChunked",
            request_serializer=stream_pb2.ProgramChunk.SerializeToString,
            response_deserializer=pb.ProgramResponse.FromString,
        )
        self._read_chunked = channel.unary_stream(
            f"/{STREAM_SERVICE_NAME}/ReadConductanceChunked",
            request_serializer=stream_pb2.ReadConductanceChunkedRequest.SerializeToString,
            response_deserializer=stream_pb2.ConductanceChunk.FromString,
        )
        self._mvm_stream = channel.stream_stream(
            f"/{STREAM_SERVICE_NAME}/MVMStream",
            request_serializer=stream_pb2.MVMStreamRequest.SerializeToString,
            response_deserializer=stream_pb2.MVMStreamResponse.FromString,
        )
        self._instance = InstanceTracker()
        # Calls beyond the server's per-principal limit would be refused, not queued:
        # queue them here instead.
        self._slots = asyncio.Semaphore(self._sizes.max_in_flight)
        """A place per call sent (``max_in_flight`` of the call sizes): more wait here."""
        self._learning = asyncio.Lock()
        """Held while the service's limits are asked (sidra.client.call_sizes)."""
        self._session: AsyncSession | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        self._closed = False

    def _closed_error(self) -> BoardUnavailable:
        return BoardUnavailable(
            f"the client of {self.address or 'this server'} is closed (close() was called, "
            "or its async with block ended): connect again"
        )

    def _closed_instead(self, exc: BaseException) -> BoardUnavailable | None:
        """The client's closed error in place of what its own :meth:`close` made of a call
        under way in another task: gRPC's UsageError ("Channel is closed."), a CANCELLED
        status, or a CancelledError nobody asked for (the channel's close cancels its
        calls; a TaskGroup then took the call for cancelled). None when the client is
        open, or when the task itself is being cancelled (that stays a cancellation)."""
        if not self._closed:
            return None
        if isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            return None if task is None or task.cancelling() else self._closed_error()
        return self._closed_error()

    def __repr__(self) -> str:
        session = self._session.id if self._session is not None else None
        return board_repr("AsyncRemoteBoard", self.address, session, self._closed)

    async def close(self) -> None:
        """Ends this client's session (its leases) and its channel; a call after it raises
        BoardUnavailable saying so, and so does a call under way in another task."""
        session = self._session  # its close lets go of it: named from here
        if session is not None:  # before the client is closed: its CloseSession goes out
            try:
                await session.close()
            except SidraError as exc:  # the server is gone: its sessions with it
                log.warning("closing session %s: %s", session.id[:8], exc)
        self._closed = True
        await self.channel.close()

    async def session(
        self,
        ttl_s: float = 0.0,
        label: str = "",
        *,
        heartbeat: bool = True,
        lease_as_used: bool = False,
    ) -> AsyncSession:
        """Opens a session on the server: every later call of this board carries it, and
        :meth:`AsyncSession.lease` leases tiles to it (session.proto); ``heartbeat``
        renews it from a task every ``ttl_s / 3``; ``lease_as_used`` leases each tile a
        call names before the call, the first time. Use with ``async with``."""
        if self._session is not None:
            raise FailedPrecondition(
                f"this board already has session {self._session.id[:8]}... open; close it "
                "first or connect again for a second session"
            )
        request = session_pb2.OpenSessionRequest(ttl_s=ttl_s, label=label)
        reply = await call_session(self._open_channel, "OpenSession", request, self.timeout_s)
        self._session = AsyncSession(
            self, session_state(reply), heartbeat=heartbeat, lease_as_used=lease_as_used
        )
        self._metadata = ((SESSION_ID_KEY, self._session.id),)
        return self._session

    async def health(self) -> str:
        """The server's health for its board service, as the sync client's
        :meth:`~sidra.client.RemoteBoard.health`."""
        if self._closed:
            raise self._closed_error()
        try:
            reply = await health_pb2_grpc.HealthStub(self.channel).Check(
                HEALTH_REQUEST, timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"health check of {self.address}", self.timeout_s) from exc
        return health_name(reply)

    async def leases(self) -> list[TileLease]:
        """Every lease on the board now, ascending by tile."""
        return await list_leases(self._open_channel, self.timeout_s)

    async def tile_use(self) -> TileUse:
        """Which tiles others use now, as the sync client's
        :meth:`~sidra.client.RemoteBoard.tile_use`."""
        try:
            found = await self.deployments.list()
        except (FailedPrecondition, Unsupported):  # no store, or a server before deployments
            found = []
        own = None if self._session is None else self._session.id
        return tile_use_of(await self.leases(), found, own)

    async def claim_tiles(self, tiles: Sequence[int]) -> None:
        """Leases ``tiles`` now when the session leases tiles as used, as the sync
        client's :meth:`~sidra.client.RemoteBoard.claim_tiles`."""
        await self._lease_used(tuple(tiles))

    async def caller(self) -> Caller:
        """Who the server takes this client for, as the sync client's
        :meth:`~sidra.client.RemoteBoard.caller`."""
        request = session_pb2.GetCallerRequest()
        return caller_of(
            await call_session(self._open_channel, "GetCaller", request, self.timeout_s)
        )

    async def close_session(self, session_id: str) -> tuple[int, ...]:
        """Ends the session ``session_id`` and its leases, as the sync client's
        :meth:`~sidra.client.RemoteBoard.close_session`; the tiles restored."""
        request = session_pb2.CloseSessionRequest(session_id=session_id)
        reply = await call_session(self._open_channel, "CloseSession", request, self.timeout_s)
        return tuple(reply.restored_tiles)

    @property
    def current_session(self) -> AsyncSession | None:
        """The session :meth:`session` opened and not yet closed; None without one."""
        return self._session

    @property
    def _open_channel(self) -> grpc.aio.Channel:
        """The channel, or BoardUnavailable saying so once :meth:`close` was called."""
        if self._closed:
            raise self._closed_error()
        return self.channel

    def _left_session(self, session: AsyncSession) -> None:
        if self._session is session:
            self._session = None
            self._metadata = ()

    async def __aenter__(self) -> AsyncRemoteBoard:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def info(self) -> BoardInfo:
        """Board description (asked once, then cached: it does not change)."""
        if self._info is None:
            description: BoardDescription = await self.run(GetBoardInfoRequest())
            self._info = description.info
        return self._info

    async def instance_id(self) -> str:
        """The board instance the server named in its last response (asked with
        GetBoardInfo if this client has made no call yet)."""
        if self._instance.current is None:
            description: BoardDescription = await self.run(GetBoardInfoRequest())
            return self._instance.current or description.instance_id
        return self._instance.current

    async def _message(self, request: Request, op: Operation) -> Any:
        """``request``'s RPC message, or the SIDRA error a local driver would raise."""
        try:
            return convert.request_to_pb(request, op)
        except UNSENDABLE as exc:
            refuse_unsendable(request, op, await self.info(), exc)

    async def run(self, request: Request) -> Any:
        """Sends ``request`` as its RPC; returns the result or raises the SIDRA exception."""
        if self._closed:
            raise self._closed_error()
        op = operation_of(request)
        request = representable(request)
        if self._session is not None and self._session.lease_as_used:  # not on every call
            await self._lease_used(tiles_named(request))
        if self._sizes.wanted_for(request):  # once: the sizes the service takes
            async with self._learning:  # calls gathered at the start ask once, not each
                if self._sizes.wanted_for(request):
                    description: BoardDescription = await self.run(GetBoardInfoRequest())
                    self._info = self._info or description.info
        if isinstance(request, ProgramRequest | ReadConductanceRequest):
            info = await self.info() if streams.needs_geometry(request) else None
            if (
                streams.transfer_bytes(request, info)
                > self._sizes.message_limit_bytes - CHUNK_FRAMING_BYTES
            ):
                return await self._chunked(request, op)
        if isinstance(request, _MAY_SPLIT):
            # Cached when the sizes were learnt: no await on the way of every pass.
            described = self._info if self._info is not None else await self.info()
            sizes = self._sizes
            cut = batches.split(
                request, sizes.max_batch, sizes.message_limit_bytes, lambda: described
            )
            if cut is not None:  # checked whole first: a bad vector anywhere runs no part
                request.checked(described)
                # In order, not gathered: a noisy board's passes then draw their noise as
                # the sync client's do, so a seeded run gives the same currents through
                # either.
                return cut.join([await self.run(part) for part in cut.parts])
        reply, named = await self._unary(op, await self._message(request, op))
        if op.request is GetBoardInfoRequest:
            before = self._sizes.max_in_flight
            self._sizes.adopt(reply)
            if self._sizes.max_in_flight != before:  # the service's: more would be refused
                self._slots = asyncio.Semaphore(self._sizes.max_in_flight)
        result = convert.result_from_pb(reply, op)
        self._instance.succeeded(named or getattr(result, "instance_id", None), op.rpc)
        return result

    async def _lease_used(self, tiles: tuple[int, ...]) -> None:
        """The session's lease of ``tiles`` first, as the sync client's."""
        session = self._session
        if session is None or not session.lease_as_used or not tiles:
            return
        count = (await self.info()).tile_count
        await session.lease_used([t for t in tiles if 0 <= t < count])

    async def _unary(self, op: Operation, message: Any) -> tuple[Any, str | None]:
        """``message`` sent as ``op``'s RPC: the reply and the board instance its trailer
        names; a failure raised as the SIDRA exception (a changed instance reported)."""
        async with self._slots:
            timeout_s, waits = self.timeout_s, None
            while True:
                if self._closed:  # closed while this call waited for its place
                    raise self._closed_error()
                try:
                    call = self._calls[op.request](
                        message, timeout=timeout_s, metadata=self._metadata
                    )
                    reply = await call
                    trailers = await call.trailing_metadata()
                    return reply, instance_in(trailers)
                except (grpc.aio.UsageError, asyncio.CancelledError) as exc:
                    instead = self._closed_instead(exc)
                    if instead is None:
                        raise
                    raise instead from None
                except grpc.RpcError as exc:
                    if self._closed:
                        raise self._closed_error() from exc
                    error = from_rpc_error(exc, f"{op.rpc} to {self.address}", self.timeout_s)
                    waits = waits or PlaceWaits(self.timeout_s)
                    wait_s = waits.wait_s(error)  # places this client does not see
                    if wait_s is None:
                        named = instance_in(exc.trailing_metadata())
                        reported = self._instance.failed(named, error, op.rpc)
                        if reported is error:
                            raise error from exc
                        raise reported from error
                await asyncio.sleep(wait_s)
                timeout_s = waits.left_s()

    @property
    def jobs(self) -> AsyncJobs:
        """Training jobs run inside the server, next to the board (jobs.proto)."""
        return AsyncJobs(lambda: self._open_channel, self.timeout_s)

    @property
    def deployments(self) -> AsyncDeployments:
        """Trained networks on the board's tiles, by name (deployments.proto)."""
        return AsyncDeployments(lambda: self._open_channel, self.timeout_s)

    async def shared_memory(self, size_bytes: int, name: str = "") -> AsyncSharedRegion:
        """:meth:`RemoteBoard.shared_memory <sidra.client.RemoteBoard.shared_memory>`:
        a POSIX shared-memory region of ``size_bytes`` registered in this board's session
        (open one first) for :meth:`mvm_shared`; ``async with`` it."""
        if self._session is None:
            raise FailedPrecondition(
                "shared memory lives in a session: open one first (await board.session())"
            )
        region = await AsyncSharedRegion.open(
            self, self._session.id, size_bytes, name or new_shm_name()
        )
        self._session.at_close.append(region.unlink)  # not left in /dev/shm by a session
        return region

    async def mvm_shared(
        self,
        tile: int,
        inputs: SharedArray,
        outputs: SharedArray,
        region: Region | None = None,
        *,
        output_codes: bool = False,
        transpose: bool = False,
    ) -> MVMResult:
        """:meth:`RemoteBoard.mvm_shared <sidra.client.RemoteBoard.mvm_shared>`, as a
        coroutine: the result's ``currents`` (or ``output_codes``) is ``outputs.array``."""
        await self._lease_used((tile,))
        op = streams.pass_operation(transpose)
        message = pass_message(tile, inputs, outputs, region, output_codes, transpose)
        reply, named = await self._unary(op, message)
        self._instance.succeeded(named, op.rpc)
        return pass_result(reply, outputs, output_codes)

    async def _chunked(self, request: Request, op: Any) -> ProgramReport | ReadResult:
        """``request`` (a large Program or ReadConductance) as row bands over StreamService."""
        async with self._slots:
            if self._closed:  # closed while this call waited for its place
                raise self._closed_error()
            try:
                if isinstance(request, ProgramRequest):
                    chunks = streams.program_chunks(request, self._sizes.chunk_bytes)
                    call: Any = self._program_chunked(
                        chunks, timeout=self.timeout_s, metadata=self._metadata
                    )
                    result: ProgramReport | ReadResult = streams.program_report(await call)
                else:
                    assert isinstance(request, ReadConductanceRequest)
                    message = streams.read_request(request, self._sizes.chunk_bytes)
                    call = self._read_chunked(
                        message, timeout=self.timeout_s, metadata=self._metadata
                    )
                    result = streams.read_from_chunks([chunk async for chunk in call])
                trailers = await call.trailing_metadata()
            except (grpc.aio.UsageError, asyncio.CancelledError) as exc:
                instead = self._closed_instead(exc)
                if instead is None:
                    raise
                raise instead from None
            except grpc.RpcError as exc:
                if self._closed:
                    raise self._closed_error() from exc
                error = from_rpc_error(exc, f"{op.rpc} to {self.address}", self.timeout_s)
                reported = self._instance.failed(
                    instance_in(exc.trailing_metadata()), error, op.rpc
                )
                if reported is error:
                    raise error from exc
                raise reported from error
        self._instance.succeeded(instance_in(trailers), op.rpc)
        return result

    async def _via(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``method`` (a BoardMethods method) with its request sent over this channel."""
        try:
            method(_Builder(), *args, **kwargs)
        except _Built as built:
            request = built.request
        else:  # pragma: no cover - every board method runs one request
            raise AssertionError(f"{method.__name__} built no request")
        return method(_Answered(await self.run(request)), *args, **kwargs)

    # The methods of BoardMethods, as coroutines (tests check that none is missing).

    async def stats(self) -> BoardStats:
        """Running totals: modeled time and energy, MVM passes, cell writes, clock."""
        return await self._via(BoardMethods.stats)

    async def program(
        self, tile: int, conductances: npt.ArrayLike, *, row_offset: int = 0, col_offset: int = 0
    ) -> ProgramReport:
        """Write-verify ``conductances`` (µS, [rows, cols]) at (row_offset, col_offset)."""
        return await self._via(
            BoardMethods.program, tile, conductances, row_offset=row_offset, col_offset=col_offset
        )

    async def read_conductance(self, tile: int, region: Region | None = None) -> ReadResult:
        """Measured conductances (µS) of ``region`` (default: the whole tile)."""
        return await self._via(BoardMethods.read_conductance, tile, region)

    async def mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike | None = None,
        region: Region | None = None,
        *,
        input_codes: npt.ArrayLike | None = None,
        output_codes: bool = False,
    ) -> MVMResult:
        """Row voltages [batch, region rows] (V) -> column currents [batch, region cols]
        (µA); ``region`` None: the whole tile, [batch, rows] -> [batch, cols]. Converter
        codes (``input_codes``, ``output_codes``) as ``BoardMethods.mvm``."""
        return await self._via(
            BoardMethods.mvm, tile, voltages, region,
            input_codes=input_codes, output_codes=output_codes,
        )  # fmt: skip

    async def transpose_mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike | None = None,
        region: Region | None = None,
        *,
        input_codes: npt.ArrayLike | None = None,
        output_codes: bool = False,
    ) -> MVMResult:
        """Column voltages [batch, region cols] (V) -> row currents [batch, region rows]
        (µA); ``region`` None: the whole tile, [batch, cols] -> [batch, rows]. Converter
        codes as :meth:`mvm`."""
        return await self._via(
            BoardMethods.transpose_mvm, tile, voltages, region,
            input_codes=input_codes, output_codes=output_codes,
        )  # fmt: skip

    async def mvm_stream(
        self,
        tile: int,
        batches: Iterable[npt.ArrayLike] | AsyncIterable[npt.ArrayLike],
        region: Region | None = None,
        *,
        transpose: bool = False,
        depth: int = DEFAULT_STREAM_DEPTH,
    ) -> AsyncIterator[MVMResult]:
        """The results of each batch of ``batches`` (as :meth:`mvm`, or :meth:`transpose_mvm`
        with ``transpose``), in order, over one MVMStream with up to ``depth`` items in
        flight; a batch of more than :attr:`max_batch` vectors goes as several items,
        checked whole first, its result theirs joined. A batch the server refuses raises
        its error where its result would be."""
        op = streams.pass_operation(transpose)
        built = TransposeMVMRequest if transpose else MVMRequest
        info = await self.info()  # (and the service's max_batch: a larger batch goes as items)
        await self._lease_used((tile,))

        async def passes() -> AsyncIterator[tuple[Any, int]]:
            async for voltages in _aiter(batches):
                request = built(tile, voltages, region)
                cut = batches_of(request, self.max_batch, self.message_limit_bytes, lambda: info)
                if cut is None:
                    yield await self._message(representable(request), op), 0
                    continue
                request.checked(info)  # a bad vector anywhere: no part is sent
                for k, part in enumerate(cut):
                    yield await self._message(representable(part), op), len(cut) - 1 - k

        batched = streams.WholeBatches(op)
        async for result in self._stream(passes(), transpose, depth, batched.kept):
            whole = batched.whole(result)
            if whole is not None:
                yield whole

    async def mvm_shared_stream(
        self,
        tile: int,
        pairs: Iterable[tuple[SharedArray, SharedArray]]
        | AsyncIterable[tuple[SharedArray, SharedArray]],
        region: Region | None = None,
        *,
        output_codes: bool = False,
        transpose: bool = False,
        depth: int = DEFAULT_STREAM_DEPTH,
    ) -> AsyncIterator[MVMResult]:
        """:meth:`RemoteBoard.mvm_shared_stream
        <sidra.client.RemoteBoard.mvm_shared_stream>`: :meth:`mvm_shared` of each
        (inputs, outputs) pair, in order, over one MVMStream with up to ``depth`` in
        flight; a pair is drawn only once the result ``depth`` + 1 items before it has
        been used, so ``depth`` + 1 pairs given in turn are enough."""
        await self._lease_used((tile,))

        async def passes() -> AsyncIterator[tuple[Any, SharedArray]]:
            async for inputs, outputs in _aiter(pairs):
                yield pass_message(tile, inputs, outputs, region, output_codes, transpose), outputs

        def result_of(reply: Any, outputs: SharedArray) -> MVMResult:
            return pass_result(reply, outputs, output_codes)

        async for result in self._stream(passes(), transpose, depth, result_of):
            yield result

    async def _stream(
        self,
        passes: AsyncIterator[tuple[Any, Kept]],
        transpose: bool,
        depth: int,
        result_of: Callable[[Any, Kept], MVMResult],
    ) -> AsyncIterator[MVMResult]:
        """One MVMStream of ``passes`` (each pass's message, and what its answer needs),
        at most ``depth`` sent and not answered; each answer made a result by
        ``result_of(answer, kept)``. A pass is drawn only once its place is free, and
        none is sent after a refused item."""
        member = "transpose_mvm" if transpose else "mvm"
        window = asyncio.Semaphore(checked_count("depth", depth, 1, "items in flight"))
        failure: list[BaseException] = []
        kept: collections.deque[Kept] = collections.deque()

        async def items() -> AsyncIterator[stream_pb2.MVMStreamRequest]:
            try:
                for sequence in itertools.count():
                    await window.acquire()
                    try:
                        message, keep = await anext(passes)
                    except StopAsyncIteration:
                        return
                    item = stream_pb2.MVMStreamRequest(sequence=sequence)
                    getattr(item, member).CopyFrom(message)
                    kept.append(keep)
                    yield item
            except Exception as exc:  # noqa: BLE001 - raised after the answers before it
                failure.append(exc)

        slots = self._slots  # (the one released below, should the limits be learnt meanwhile)
        await slots.acquire()  # the stream is one call in flight for the server
        call: Any = None
        try:
            if self._closed:  # closed while the stream waited for its place
                raise self._closed_error()
            call = self._mvm_stream(items(), metadata=self._metadata)
            async for response in call:
                if response.WhichOneof("result") == "error":
                    raise from_item_error(response.error)  # no item is sent after it
                window.release()
                yield result_of(getattr(response, member), kept.popleft())
            if failure:
                raise failure[0]
            self._instance.succeeded(instance_in(await call.trailing_metadata()), "MVMStream")
        except (grpc.aio.UsageError, asyncio.CancelledError) as exc:
            instead = self._closed_instead(exc)
            if instead is None:
                raise
            raise instead from None
        except grpc.RpcError as exc:
            if self._closed:
                raise self._closed_error() from exc
            raise from_rpc_error(exc) from exc
        finally:
            if call is not None:
                call.cancel()
            slots.release()

    async def perturb(
        self,
        tile: int,
        seed: int,
        amplitude_us: float,
        sign: int = 1,
        region: Region | None = None,
    ) -> PerturbReport:
        """Set ``region`` to G_prog + sign·amplitude_us·Δ(seed) (Δ: ``rademacher``)."""
        return await self._via(BoardMethods.perturb, tile, seed, amplitude_us, sign, region)

    async def restore(self, tile: int, region: Region | None = None) -> PerturbReport:
        """Return ``region`` (default: the whole tile) to its programmed state."""
        return await self._via(BoardMethods.restore, tile, region)

    async def perturbed_mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike,
        points: Sequence[PerturbationPoint],
        region: Region | None = None,
    ) -> PerturbedMVMResult:
        """The batch ``voltages`` [batch, region rows] (V) through ``region`` (default: the
        whole tile) at each point G_prog + sign·amplitude_us·Δ(seed) -> currents
        [points, batch, region cols] (µA); the region is left restored to G_prog."""
        return await self._via(BoardMethods.perturbed_mvm, tile, voltages, points, region)

    async def run_sequence(self, steps: Sequence[Request]) -> SequenceResult:
        """Runs ``steps`` in order with no other call on the board between them, once every
        one is valid; returns each step's result (none runs if one is invalid)."""
        return await self._via(BoardMethods.run_sequence, steps)

    async def read_write_counts(self, tile: int, region: Region | None = None) -> WriteCounts:
        """Per-cell write counters (endurance) of ``region`` (default: the whole tile)."""
        return await self._via(BoardMethods.read_write_counts, tile, region)

    async def calibrate(self, tile: int) -> CalibrationReport:
        """Global drift compensation of ``tile``; returns the output gain now applied."""
        return await self._via(BoardMethods.calibrate, tile)

    async def advance_clock(self, seconds: float) -> float:
        """Advance an emulated board's virtual clock; returns the new time, s."""
        return await self._via(BoardMethods.advance_clock, seconds)


async def connect(
    address: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    wait_ready_s: float | None = 10.0,
    tls: TlsCredentials | None = None,
    token: str | None = None,
    max_in_flight: int | None = None,
    server_max_message_bytes: int | None = None,
    max_batch: int | None = None,
) -> AsyncRemoteBoard:
    """Opens an asyncio channel to ``address`` (``host:port``), as
    :func:`sidra.client.connect` does for the synchronous client (same options; the
    token, if any, goes in clear only to a loopback address). ``max_in_flight``: calls
    sent at once; more wait in the client. ``server_max_message_bytes``: the server's
    message size; a larger Program or read travels in row bands. ``max_batch``:
    vectors per MVM call; a larger batch goes as consecutive calls. Any of the three not
    given is what the service announces, learnt before the first pass, Program or read
    (sidra.client.call_sizes; until then 4 calls at once)."""
    check_address(address)
    check_connect_options(
        timeout_s=timeout_s, wait_ready_s=wait_ready_s, max_message_bytes=max_message_bytes,
        server_max_message_bytes=server_max_message_bytes, max_batch=max_batch,
        max_in_flight=max_in_flight,
    )  # fmt: skip
    options = channel_options(max_message_bytes)
    token = bearer_token(token)
    interceptors = []
    if token:
        check_token_transport(address, tls)
        interceptors = aio_bearer_token(token)
    if tls is None:
        channel = grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    else:
        channel = grpc.aio.secure_channel(
            address, tls.channel_credentials(), options=options, interceptors=interceptors
        )
    if wait_ready_s is not None:

        async def ready(within_s: float) -> bool:
            try:
                await asyncio.wait_for(channel.channel_ready(), timeout=within_s)
            except TimeoutError:
                return False
            return True

        hopeless = plaintext_hopeless if tls is None else tls_hopeless(tls)
        waited = await wait_for_server_async(ready, address, wait_ready_s, hopeless)
        if waited is not None:
            await channel.close()
            # Its probes (a TCP connection, a TLS handshake) block: not on the event loop.
            raise await asyncio.to_thread(unanswered, address, round(waited, 1), tls)
    return AsyncRemoteBoard(
        channel, timeout_s=timeout_s, address=address, max_in_flight=max_in_flight,
        message_limit_bytes=server_max_message_bytes, max_batch=max_batch,
        channel_message_bytes=max_message_bytes,
    )  # fmt: skip


async def _aiter(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
