"""``RemoteBoard``: a SIDRA board behind a gRPC server, numpy in and out.

It satisfies the same :class:`sidra.drivers.Board` interface as a local
driver, so training code runs unchanged against ``open_board("emu://")`` or
``connect("host:50051")``. Every call has a deadline; failures raise the
SIDRA exception tree (``sidra.drivers.errors``), never a raw ``grpc.RpcError``.

Every response names the board instance it ended on (trailing metadata
``sidra-instance-id``); a ``RemoteBoard`` remembers the first and raises
:class:`~sidra.client.errors.BoardInstanceChanged` (a ``BoardReset``) on the
call that shows another, then carries on with the new one
(:mod:`sidra.client.instance`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import SplitResult, urlsplit

import grpc
import numpy.typing as npt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidra.client import batches, streams
from sidra.client.call_sizes import DEFAULT_SERVER_MESSAGE_BYTES, CallSizes, SizedCalls
from sidra.client.credentials import (
    BearerToken,
    TlsCredentials,
    bearer_token,
    check_token_transport,
    plaintext_hopeless,
    tls_hopeless,
    unanswered,
)
from sidra.client.deployments import Deployments
from sidra.client.errors import from_rpc_error
from sidra.client.instance import InstanceTracker
from sidra.client.jobs import Jobs
from sidra.client.options import check_connect_options
from sidra.client.places import Places
from sidra.client.reachability import wait_for_server
from sidra.client.refused_places import PlaceWaits
from sidra.client.session import (
    Caller,
    Session,
    TileLease,
    board_repr,
    caller_of,
    list_leases,
    session_call,
    session_state,
    tile_use_of,
    tiles_named,
)
from sidra.client.shared_memory import SharedArray, SharedRegion, pass_message, pass_result
from sidra.client.shared_memory import new_name as new_shm_name
from sidra.drivers import (
    Board,
    BoardInfo,
    BoardUnavailable,
    FailedPrecondition,
    InvalidArgument,
    MVMResult,
    Region,
    SidraError,
    TileUse,
    Unsupported,
)
from sidra.drivers.codes import narrowest_codes
from sidra.drivers.operations import OPERATIONS, Operation, operation_of
from sidra.drivers.requests import (
    GetBoardInfoRequest,
    MVMRequest,
    PerturbedMVMRequest,
    ProgramRequest,
    ReadConductanceRequest,
    Request,
    SequenceRequest,
    TransposeMVMRequest,
    step_member,
)
from sidra.drivers.types import BoardDescription, ProgramReport, ReadResult
from sidra.drivers.url import query_options
from sidra.drivers.validation import to_float32
from sidra.hil import convert
from sidra.hil.chunks import CHUNK_FRAMING_BYTES
from sidra.hil.metadata import INSTANCE_ID_KEY, SESSION_ID_KEY
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import session_pb2, stream_pb2

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_SERVER_MESSAGE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "HEALTH_REQUEST",
    "SERVICE_NAME",
    "UNSENDABLE",
    "RemoteBoard",
    "channel_options",
    "check_address",
    "connect",
    "connect_server",
    "from_url",
    "health_name",
    "instance_in",
    "refuse_unsendable",
    "representable",
]

log = logging.getLogger(__name__)

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["BoardService"].full_name
HEALTH_REQUEST = health_pb2.HealthCheckRequest(service=SERVICE_NAME)
"""grpc.health.v1 Check of the board service: NOT_SERVING while the board is unreachable."""


def health_name(reply: health_pb2.HealthCheckResponse) -> str:
    """A health answer's status by name ("SERVING", "NOT_SERVING", ...)."""
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


DEFAULT_TIMEOUT_S = 30.0
"""Deadline of each call, seconds (a full-tile write-verify fits well inside)."""

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message the client sends or receives, bytes (the server sets its own)."""


class RemoteBoard(SizedCalls, Board):
    """A board reached through ``sidra serve``; use as a context manager.

    Its methods are the local drivers' (:class:`~sidra.drivers.operations.BoardMethods`);
    :meth:`run` sends each request as its RPC. The server validates; the client
    refuses only what the wire cannot carry (a float64 beyond float32's range).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        owns_channel: bool = False,
        address: str | None = None,
        message_limit_bytes: int | None = None,
        max_batch: int | None = None,
        channel_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_in_flight: int | None = None,
    ) -> None:
        self._channel = channel
        self._sizes = CallSizes(
            max_batch, message_limit_bytes, channel_message_bytes, max_in_flight
        )
        """How large a call may be (sidra.client.call_sizes): ``max_batch`` vectors per
        MVM, ``message_limit_bytes`` per message, ``max_in_flight`` calls at once (None:
        what the service announces); ``channel_message_bytes``: the channel's own limit."""
        self._slots = Places(self._sizes.max_in_flight)
        """A place per call sent from this client's threads (``max_in_flight``): a thread
        past it waits here instead of being refused by the service."""
        self.address = address
        """``host:port`` of the server, when known (:func:`connect` sets it)."""
        self._owns_channel = owns_channel
        self.timeout_s = timeout_s
        self._info: BoardInfo | None = None
        self._closed = False
        self._calls = {op.request: _unary_call(channel, op) for op in OPERATIONS}
        self._instance = InstanceTracker()
        self._session: Session | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()
        name = streams.STREAM_SERVICE_NAME
        self._mvm_stream = channel.stream_stream(
            f"/{name}/MVMStream",
            request_serializer=stream_pb2.MVMStreamRequest.SerializeToString,
            response_deserializer=stream_pb2.MVMStreamResponse.FromString,
        )
        self._program_chunked = channel.stream_unary(
            f"/{name}/ProgramChunked",
            request_serializer=stream_pb2.ProgramChunk.SerializeToString,
            response_deserializer=pb.ProgramResponse.FromString,
        )
        self._read_chunked = channel.unary_stream(
            f"/{name}/ReadConductanceChunked",
            request_serializer=stream_pb2.ReadConductanceChunkedRequest.SerializeToString,
            response_deserializer=stream_pb2.ConductanceChunk.FromString,
        )

    @property
    def channel(self) -> grpc.Channel:
        """The gRPC channel to the server (credentials and token included)."""
        return self._channel

    def session(
        self,
        ttl_s: float = 0.0,
        label: str = "",
        *,
        heartbeat: bool = True,
        lease_as_used: bool = False,
    ) -> Session:
        """Opens a session on the server: every later call of this board carries it, and
        :meth:`Session.lease` leases tiles to it (session.proto). ``ttl_s``: seconds the
        session lives without a sign of life (0: the server's default); ``heartbeat``
        renews it from a thread every ``ttl_s / 3``; ``lease_as_used``: each tile a call
        names is leased to the session before the call, the first time (a tile another
        session holds: :class:`~sidra.drivers.errors.LeaseHeld`). Use as a context
        manager."""
        if self._session is not None:
            raise FailedPrecondition(
                f"this board already has session {self._session.id[:8]}... open; close it "
                "first or connect again for a second session"
            )
        request = session_pb2.OpenSessionRequest(ttl_s=ttl_s, label=label)
        reply = session_call(self._open_channel, "OpenSession", request, self.timeout_s)
        session = Session(
            self, session_state(reply), heartbeat=heartbeat, lease_as_used=lease_as_used
        )
        self._session = session
        self._metadata = ((SESSION_ID_KEY, session.id),)
        return session

    @property
    def current_session(self) -> Session | None:
        """The session :meth:`session` opened and not yet closed; None without one."""
        return self._session

    @property
    def jobs(self) -> Jobs:
        """Training jobs run inside the server, next to the board (jobs.proto)."""
        return Jobs(lambda: self._open_channel, self.timeout_s)

    @property
    def deployments(self) -> Deployments:
        """Trained networks on the board's tiles, by name (deployments.proto)."""
        return Deployments(lambda: self._open_channel, self.timeout_s)

    def health(self) -> str:
        """The server's health for its board service (grpc.health.v1): "SERVING", or
        "NOT_SERVING" while its board is unreachable (a serial link down)."""
        if self._closed:
            raise self._closed_error()
        try:
            reply = health_pb2_grpc.HealthStub(self._channel).Check(
                HEALTH_REQUEST, timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, f"health check of {self.address}", self.timeout_s) from exc
        return health_name(reply)

    def leases(self) -> list[TileLease]:
        """Every lease on the board now, ascending by tile."""
        return list_leases(self._open_channel, self.timeout_s)

    def tile_use(self) -> TileUse:
        """Which tiles others use now: those another session leases (this board's own
        session's are its own) and those holding an intact deployed model (none on a
        server without a state store). A training run given no tiles takes the others
        first. Two calls (ListLeases, ListDeployments)."""
        try:
            found = self.deployments.list()
        except (FailedPrecondition, Unsupported):  # no store, or a server before deployments
            found = []
        own = None if self._session is None else self._session.id
        return tile_use_of(self.leases(), found, own)

    def claim_tiles(self, tiles: Sequence[int]) -> None:
        """Leases ``tiles`` now when the board's session leases tiles as used (a run
        that placed its layers takes them before its first call; one AcquireLease for
        those not held yet): a tile another session holds raises
        :class:`~sidra.drivers.errors.LeaseHeld`."""
        self._lease_used(tuple(tiles))

    def caller(self) -> Caller:
        """Who the server takes this client for: principal, role, its token's dates, its
        connection and sessions (GetCaller)."""
        request = session_pb2.GetCallerRequest()
        return caller_of(session_call(self._open_channel, "GetCaller", request, self.timeout_s))

    def close_session(self, session_id: str) -> tuple[int, ...]:
        """Ends the session ``session_id`` (:attr:`TileLease.session_id`) and its leases:
        one of the caller's own, or as an admin anyone's. Returns the tiles whose cells
        were restored."""
        request = session_pb2.CloseSessionRequest(session_id=session_id)
        reply = session_call(self._open_channel, "CloseSession", request, self.timeout_s)
        return tuple(reply.restored_tiles)

    @property
    def _open_channel(self) -> grpc.Channel:
        """The channel, or BoardUnavailable saying so once :meth:`close` was called."""
        if self._closed:
            raise self._closed_error()
        return self._channel

    def _left_session(self, session: Session) -> None:
        if self._session is session:
            self._session = None
            self._metadata = ()

    def __repr__(self) -> str:
        session = self._session.id if self._session is not None else None
        return board_repr("RemoteBoard", self.address, session, self._closed)

    def close(self) -> None:
        """Ends this client's session (its leases) and its channel; a call after it raises
        BoardUnavailable saying so."""
        session = self._session  # its close lets go of it: named from here
        if session is not None:  # before the client is closed: its CloseSession goes out
            try:
                session.close()
            except SidraError as exc:  # the server is gone: its sessions with it
                log.warning("closing session %s: %s", session.id[:8], exc)
        self._closed = True
        if self._owns_channel:
            self._channel.close()

    def _stream_error(self, exc: grpc.RpcError) -> SidraError:
        """A stream's failure: this client's own close() (the channel closed under it,
        which gRPC reports as a call the server ended), or the server's error."""
        return self._closed_error() if self._closed else from_rpc_error(exc)

    def _closed_error(self) -> BoardUnavailable:
        return BoardUnavailable(
            f"the client of {self.address or 'this server'} is closed (close() was called, "
            "or its with block ended): connect again"
        )

    @property
    def info(self) -> BoardInfo:
        """Board description (fetched once, then cached: it does not change)."""
        if self._info is None:
            description: BoardDescription = self.run(GetBoardInfoRequest())
            self._info = description.info
        return self._info

    @property
    def instance_id(self) -> str:
        """The board instance the server named in its last response (asked with
        GetBoardInfo if this client has made no call yet)."""
        if self._instance.current is None:
            description: BoardDescription = self.run(GetBoardInfoRequest())
            return self._instance.current or description.instance_id
        return self._instance.current

    def run(self, request: Request) -> Any:
        """Sends ``request`` as its RPC; returns the result, or raises the SIDRA exception
        (:class:`~sidra.client.errors.BoardInstanceChanged` when the response names another
        board instance than this client's previous one)."""
        if self._closed:
            raise self._closed_error()
        op = operation_of(request)
        request = representable(request)
        if self._session is not None and self._session.lease_as_used:  # not on every call
            self._lease_used(tiles_named(request))
        if self._sizes.wanted_for(request):  # once: the sizes the service takes
            description: BoardDescription = self.run(GetBoardInfoRequest())
            self._info = self._info or description.info
        if isinstance(request, ProgramRequest | ReadConductanceRequest) and self._too_large(
            request
        ):
            return self._chunked(request, op)
        cut = batches.split(request, self.max_batch, self.message_limit_bytes, lambda: self.info)
        if cut is not None:  # checked whole first: a bad vector anywhere runs no part
            request.checked(self.info)
            return cut.join([self.run(part) for part in cut.parts])
        message = self._message(request, op)
        reply, call = self._send(op, message)
        if op.request is GetBoardInfoRequest:
            before = self._sizes.max_in_flight
            self._sizes.adopt(reply)
            if self._sizes.max_in_flight != before:  # the service's: more would be refused
                self._slots = Places(self._sizes.max_in_flight)
        result = convert.result_from_pb(reply, op)
        # A server that sends no trailer still names the instance in GetBoardInfo.
        named = _instance_of(call) or getattr(result, "instance_id", None)
        self._instance.succeeded(named, op.rpc)
        return result

    def _lease_used(self, tiles: tuple[int, ...]) -> None:
        """The session's lease of ``tiles`` first, when it leases tiles as used (those
        outside the board are left to the call's own refusal, which names its field)."""
        session = self._session
        if session is None or not session.lease_as_used or not tiles:
            return
        count = self.info.tile_count
        session.lease_used([t for t in tiles if 0 <= t < count])

    def _send(self, op: Operation, message: Any) -> tuple[Any, Any]:
        """``message`` sent as ``op``'s RPC: (reply, call), or the SIDRA exception."""
        with self._slots:  # a place: past max_in_flight the service would refuse
            timeout_s, waits = self.timeout_s, None
            while True:
                if self._closed:  # closed by another thread while this one waited
                    raise self._closed_error()
                try:
                    return self._calls[op.request].with_call(  # type: ignore[no-any-return]
                        message, timeout=timeout_s, metadata=self._metadata
                    )
                except ValueError as exc:  # gRPC's "Cannot invoke RPC on closed channel!"
                    if self._closed:
                        raise self._closed_error() from exc
                    raise
                except grpc.RpcError as exc:
                    if self._closed:  # its own close() ended the call, not the server
                        raise self._closed_error() from exc
                    error = from_rpc_error(exc, f"{op.rpc} to {self.address}", self.timeout_s)
                    waits = waits or PlaceWaits(self.timeout_s)
                    wait_s = waits.wait_s(error)  # places this client does not see
                    if wait_s is None:
                        self._raise(error, exc, op)
                    time.sleep(wait_s)
                    timeout_s = waits.left_s()

    def _raise(self, error: SidraError, exc: grpc.RpcError, op: Operation) -> NoReturn:
        reported = self._instance.failed(_instance_of(exc), error, op.rpc)
        if reported is error:
            raise error from exc
        raise reported from error  # the reset is the news; the call's own error its cause

    def shared_memory(self, size_bytes: int, name: str = "") -> SharedRegion:
        """A POSIX shared-memory region of ``size_bytes``, registered in this board's
        session (open one first) for :meth:`mvm_shared`; the server must be on this
        host and enable it (session.proto, "Shared memory"). Use as a context manager."""
        if self._session is None:
            raise FailedPrecondition(
                "shared memory lives in a session: open one first (board.session())"
            )
        region = SharedRegion(self, self._session.id, size_bytes, name or new_shm_name())
        self._session.at_close.append(region.unlink)  # not left in /dev/shm by a session
        return region

    def mvm_shared(
        self,
        tile: int,
        inputs: SharedArray,
        outputs: SharedArray,
        region: Region | None = None,
        *,
        output_codes: bool = False,
        transpose: bool = False,
    ) -> MVMResult:
        """An MVM (``transpose``: TransposeMVM) whose inputs (float32 voltages, or DAC
        codes) are read from, and whose outputs (float32 currents, or with
        ``output_codes`` the ADC's codes) are written to, shared memory by the server;
        the result's ``currents`` (or ``output_codes``) is ``outputs.array`` itself."""
        self._lease_used((tile,))
        message = pass_message(tile, inputs, outputs, region, output_codes, transpose)
        op = streams.pass_operation(transpose)
        reply, call = self._send(op, message)
        self._instance.succeeded(_instance_of(call), op.rpc)
        return pass_result(reply, outputs, output_codes)

    def mvm_shared_stream(
        self,
        tile: int,
        pairs: Iterable[tuple[SharedArray, SharedArray]],
        region: Region | None = None,
        *,
        output_codes: bool = False,
        transpose: bool = False,
        depth: int = streams.DEFAULT_STREAM_DEPTH,
    ) -> Iterator[MVMResult]:
        """:meth:`mvm_shared` of each (inputs, outputs) pair of ``pairs``, in order, over
        one MVMStream with up to ``depth`` in flight: each result's ``currents`` (or
        ``output_codes``) is its pair's ``outputs.array``, written by the server.

        An item's inputs are read, and its outputs written, when the board runs it,
        which may be after later pairs are drawn: the stream draws a pair only once the
        result ``depth`` + 1 items before it has been used (its next result asked for),
        so ``depth`` + 1 pairs given in turn are enough, and each pair's inputs may be
        filled as it is drawn. A pair the server refuses raises its error where its
        result would be (the stream is then closed)."""
        self._lease_used((tile,))
        passes = (
            (pass_message(tile, inputs, outputs, region, output_codes, transpose), outputs)
            for inputs, outputs in pairs
        )
        feed = streams.MVMStreamFeed(passes, transpose, depth)
        with self._slots:  # the stream is one call in flight for the server
            call = self._mvm_stream(iter(feed), metadata=self._metadata)
            try:
                yield from streams.mvm_stream_calls(
                    call, feed, lambda reply, outputs: pass_result(reply, outputs, output_codes)
                )
            except grpc.RpcError as exc:
                raise self._stream_error(exc) from exc
        self._instance.succeeded(_instance_of(call), "MVMStream")

    def mvm_stream(
        self,
        tile: int,
        batches: Iterable[npt.ArrayLike],
        region: Region | None = None,
        *,
        transpose: bool = False,
        depth: int = streams.DEFAULT_STREAM_DEPTH,
    ) -> Iterator[MVMResult]:
        """The results of each batch of ``batches`` (as :meth:`mvm`, or :meth:`transpose_mvm`
        with ``transpose``), in order, over one MVMStream with up to ``depth`` items in
        flight: the board never waits for a round trip between them. A batch of more than
        :attr:`max_batch` vectors goes as several items, checked whole first, and its
        result is theirs joined. A batch the server refuses raises its error where its
        result would be (the stream is then closed)."""
        info = self.info  # (and the service's max_batch: a larger batch goes as items)
        self._lease_used((tile,))
        passes = streams.pass_messages(
            tile, batches, region, transpose,
            lambda request, op: self._message(representable(request), op),
            lambda: (self.max_batch, self.message_limit_bytes, lambda: info),
        )  # fmt: skip
        feed = streams.MVMStreamFeed(passes, transpose, depth)
        batched = streams.WholeBatches(feed.op)
        with self._slots:  # the stream is one call in flight for the server
            call = self._mvm_stream(iter(feed), metadata=self._metadata)
            try:
                for result in streams.mvm_stream_calls(call, feed, batched.kept):
                    whole = batched.whole(result)
                    if whole is not None:
                        yield whole
            except grpc.RpcError as exc:
                raise self._stream_error(exc) from exc
        self._instance.succeeded(_instance_of(call), "MVMStream")

    def _too_large(self, request: Request) -> bool:
        """Whether ``request`` or its answer would pass :attr:`message_limit_bytes`."""
        info = self.info if streams.needs_geometry(request) else None
        data = streams.transfer_bytes(request, info)
        return data > self.message_limit_bytes - CHUNK_FRAMING_BYTES

    def _chunked(self, request: Request, op: Operation) -> ProgramReport | ReadResult:
        """``request`` (a large Program or ReadConductance) over StreamService."""
        slots = self._slots  # (the one released below, should the limits be learnt meanwhile)
        try:
            slots.acquire()  # one call in flight for the server, however many chunks
            if isinstance(request, ProgramRequest):
                chunks = streams.program_chunks(request, self.chunk_bytes)
                reply, call = self._program_chunked.with_call(
                    chunks, timeout=self.timeout_s, metadata=self._metadata
                )
                result: ProgramReport | ReadResult = streams.program_report(reply)
            else:
                assert isinstance(request, ReadConductanceRequest)
                message = streams.read_request(request, self.chunk_bytes)
                call = self._read_chunked(message, timeout=self.timeout_s, metadata=self._metadata)
                result = streams.read_from_chunks(call)
        except grpc.RpcError as exc:
            if self._closed:  # its own close() ended the call, not the server
                raise self._closed_error() from exc
            error = from_rpc_error(exc, f"{op.rpc} to {self.address}", self.timeout_s)
            reported = self._instance.failed(_instance_of(exc), error, op.rpc)
            if reported is error:
                raise error from exc
            raise reported from error
        finally:
            slots.release()
        self._instance.succeeded(_instance_of(call), op.rpc)
        return result

    def _message(self, request: Request, op: Operation) -> Any:
        try:
            return convert.request_to_pb(request, op)
        except UNSENDABLE as exc:
            refuse_unsendable(request, op, self.info, exc)


UNSENDABLE = (ValueError, TypeError, AttributeError)
"""What building a request's message raises for a value its wire field cannot carry (a
negative tile, a seed of 2**64) or a value of the wrong kind (a tuple for a Region)."""


def refuse_unsendable(request: Request, op: Operation, info: BoardInfo, exc: Exception) -> NoReturn:
    """The SIDRA error of a request whose message could not be built (``exc``): the check
    a local driver runs names the field, the value and what is allowed; the server never
    sees the request."""
    request.checked(info)
    raise InvalidArgument(op.rpc, repr(request)[:200], f"a {op.rpc}Request") from exc


def _instance_of(call: Any) -> str | None:
    """The ``sidra-instance-id`` a finished call's trailing metadata carries, if any."""
    try:
        trailers = call.trailing_metadata()
    except Exception:  # noqa: BLE001 - a call that never reached a server has none
        return None
    return instance_in(trailers)


def instance_in(metadata: Any) -> str | None:
    """The ``sidra-instance-id`` among trailing ``metadata`` (key, value pairs), if any."""
    for key, value in metadata or ():
        if key == INSTANCE_ID_KEY and isinstance(value, str) and value:
            return value
    return None


_GRPC_TARGET_SCHEMES = ("dns:", "unix:", "unix-abstract:", "ipv4:", "ipv6:", "vsock:")
"""gRPC name-resolver prefixes an address may carry instead of being HOST:PORT."""


def check_address(address: Any) -> None:
    """Refuses an address no channel can be opened to (empty, blank, spaces inside, no
    port or one outside 1 .. 65535, a ``grpc://`` URL), before gRPC would log its own
    errors and the client wait out its deadline (gRPC takes a HOST alone for HOST:443)."""
    allowed = "HOST:PORT of a sidra serve (or a gRPC target), e.g. 127.0.0.1:50051"
    if not isinstance(address, str) or not address.strip() or any(c.isspace() for c in address):
        raise InvalidArgument("address", address, allowed)
    if address.startswith(("grpc://", "grpcs://")):
        raise InvalidArgument(
            "address", address,
            "HOST:PORT, its TLS options as tls=TlsCredentials(...); a grpc:// or grpcs:// "
            "URL is opened by sidra.drivers.open_board(url), which reads them from it",
        )  # fmt: skip
    if address.startswith(_GRPC_TARGET_SCHEMES):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidArgument(
            "address", address, "HOST:PORT with PORT in 1 .. 65535, e.g. 127.0.0.1:50051"
        )


def channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """gRPC channel options of a SIDRA client: messages up to ``max_message_bytes`` each
    way, and a connection of its own. gRPC would otherwise share one connection among
    the channels of a process to one address with the same options, and a server
    without ``[auth]`` counts ``max_in_flight`` per connection: two clients in one
    program would share one allowance while each kept only its own calls under it."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.use_local_subchannel_pool", 1),
    ]


def _unary_call(channel: grpc.Channel, op: Operation) -> grpc.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        f"/{SERVICE_NAME}/{op.rpc}",
        request_serializer=getattr(pb, f"{op.rpc}Request").SerializeToString,
        response_deserializer=getattr(pb, f"{op.rpc}Response").FromString,
    )


def representable(request: Request) -> Request:
    """``request`` with its arrays as the float32 the wire carries; refuses here only what
    float32 cannot represent (NaN, shape and range are the server's to judge)."""
    # A request already in float32 (every training step's) is sent as it is.
    if isinstance(request, ProgramRequest):
        g = to_float32("conductances", request.conductances)
        same = g is request.conductances
        return request if same else dataclasses.replace(request, conductances=g)
    if isinstance(request, MVMRequest | TransposeMVMRequest) and request.input_codes is not None:
        codes = narrowest_codes(request.input_codes)
        if request.voltages is None:  # both set: sent as they are, for the server to refuse
            return dataclasses.replace(request, input_codes=codes)
        voltages = to_float32("voltages", request.voltages)
        return dataclasses.replace(request, voltages=voltages, input_codes=codes)
    if isinstance(request, MVMRequest | TransposeMVMRequest | PerturbedMVMRequest):
        v = to_float32("voltages", request.voltages)
        return request if v is request.voltages else dataclasses.replace(request, voltages=v)
    if isinstance(request, SequenceRequest):
        return dataclasses.replace(request, steps=tuple(_steps_representable(request.steps)))
    return request


def _steps_representable(steps: Any) -> Iterator[Any]:
    for k, step in enumerate(steps):
        try:
            yield representable(step)
        except InvalidArgument as exc:  # named as a path into the sequence
            path = f"steps[{k}].{step_member(type(step))}.{exc.field}"
            raise type(exc)(path, exc.value, exc.allowed) from exc


GRPCS_OPTIONS = {"ca", "cert", "key"}
"""grpcs:// URL options: PEM files of the server's CA and the client's certificate and key."""


def from_url(url: SplitResult) -> RemoteBoard:
    """``grpc://host:port`` or ``grpcs://host:port?ca=PATH&cert=PATH&key=PATH`` (TLS; cert
    and key for mutual TLS): the board behind a ``sidra serve`` (the ``sidra.boards`` entry).
    The bearer token, if the server wants one, comes from ``SIDRA_TOKEN``."""
    shape = "grpcs://host:port[?ca=PATH&cert=PATH&key=PATH]"
    if url.scheme == "grpc":
        shape = "grpc://host:port"
    if not url.netloc or url.path not in ("", "/") or (url.query and url.scheme == "grpc"):
        raise InvalidArgument("board url", url.geturl(), shape)
    if url.scheme == "grpc":
        return connect(url.netloc)
    files = {key: Path(value) for key, value in query_options(url, GRPCS_OPTIONS).items()}
    tls = TlsCredentials(root_ca=files.get("ca"), cert=files.get("cert"), key=files.get("key"))
    return connect(url.netloc, tls=tls)


def connect_server(target: str) -> RemoteBoard:
    """The server a command's ``--server`` names: ``HOST:PORT`` (plaintext), or a URL as
    ``--board`` takes one, ``grpc://HOST:PORT`` or ``grpcs://HOST:PORT?ca=PATH&cert=PATH&
    key=PATH`` (TLS, mutual with cert and key). The token comes from ``SIDRA_TOKEN``."""
    if "://" not in target:
        return connect(target)
    url = urlsplit(target)
    if url.scheme not in ("grpc", "grpcs"):
        raise InvalidArgument(
            "--server", target, "HOST:PORT, grpc://HOST:PORT or grpcs://HOST:PORT?ca=PATH..."
        )
    return from_url(url)


def connect(
    address: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    wait_ready_s: float | None = 10.0,
    tls: TlsCredentials | None = None,
    token: str | None = None,
    server_max_message_bytes: int | None = None,
    max_batch: int | None = None,
    max_in_flight: int | None = None,
) -> RemoteBoard:
    """Opens a channel to ``address`` (``host:port``) and returns the board behind it.

    ``tls``: connect over TLS (mutual TLS when it holds a client certificate).
    ``token``: the bearer token sent with every call; None reads ``SIDRA_TOKEN``.
    A token goes in clear only to a loopback address: elsewhere it needs ``tls``.
    Waits up to ``wait_ready_s`` seconds for the server (``None``: don't wait) and
    raises :class:`~sidra.drivers.BoardUnavailable` if it does not answer; a port that
    refuses connections, an unknown host, or (with ``tls``) a handshake that finds what
    no wait mends (an expired or unknown certificate, a plaintext server) ends the wait
    after 2 s, saying which (sidra.client.reachability, sidra.client.tls_diagnosis).
    ``server_max_message_bytes``: the server's message size (``sidra serve``
    max_message_mb, and the caller's ``[limits]``); a Program or read larger than it (or
    than ``max_message_bytes``) travels in row bands. ``max_batch``: vectors per MVM
    call; a larger batch goes as consecutive calls of at most that many.
    ``max_in_flight``: calls this client's threads send at once; a thread past it waits
    for a place. Any of the three not given is what the service announces (GetBoardInfo
    ``limits``, asked once before the first call they shape: sidra.client.call_sizes).
    """
    check_address(address)
    check_connect_options(
        timeout_s=timeout_s, wait_ready_s=wait_ready_s, max_message_bytes=max_message_bytes,
        server_max_message_bytes=server_max_message_bytes, max_batch=max_batch,
        max_in_flight=max_in_flight,
    )  # fmt: skip
    token = bearer_token(token)
    if token:
        check_token_transport(address, tls)
    options = channel_options(max_message_bytes)
    if tls is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        channel = grpc.secure_channel(address, tls.channel_credentials(), options=options)
    if wait_ready_s is not None:
        future = grpc.channel_ready_future(channel)

        def ready(within_s: float) -> bool:
            try:
                future.result(timeout=within_s)
            except grpc.FutureTimeoutError:
                return False
            return True

        hopeless = plaintext_hopeless if tls is None else tls_hopeless(tls)
        waited = wait_for_server(ready, address, wait_ready_s, hopeless)
        if waited is not None:
            future.cancel()
            channel.close()
            raise unanswered(address, round(waited, 1), tls)
    if token:
        channel = grpc.intercept_channel(channel, BearerToken(token))
    return RemoteBoard(
        channel, timeout_s=timeout_s, owns_channel=True, address=address,
        message_limit_bytes=server_max_message_bytes, max_batch=max_batch,
        channel_message_bytes=max_message_bytes, max_in_flight=max_in_flight,
    )  # fmt: skip
