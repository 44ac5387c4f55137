"""What one principal may ask of the board at a time: ``[limits]`` of ``sidra serve``, enforced.

Three limits counted per principal and one for the whole server, each checked before
the board is touched, so a refused call changes neither the board nor the state store:

- ``max_message_mb``: the request's size, checked on its bytes before they are
  parsed (a message over the server-wide ``max_message_mb`` never reaches the
  service: gRPC refuses it with the same code);
- ``max_batch``: vectors in one MVM or TransposeMVM, read from the parsed
  request's tensor shape before its data is turned into an array;
- ``max_in_flight``: the principal's calls running or waiting for the board. The
  one over the limit is refused at once rather than queued: a flooding client
  then holds at most that many worker threads and request buffers, and the board's
  turns (:class:`~sidra.server.turns.BoardTurns`) keep the others' waits short.
- ``max_streams``: long-lived streams (WatchJob, MVMStream, ProgramChunked,
  ReadConductanceChunked) open on the whole server. gRPC's sync server runs every
  handler on one pool of ``workers`` threads and a stream holds its thread until it
  ends, so without a cap a few job watchers (or one slow uploader per connection)
  would take every thread and leave no one to answer a unary call, a health check
  included. Counted over all principals because the pool is the server's; by
  default half the workers, so unary calls always have the other half.

Every refusal is a :class:`~sidra.drivers.ResourceExhausted` (gRPC
RESOURCE_EXHAUSTED) naming the limit, what the call asked for and for whom.

Without ``[auth]`` every caller is the one principal ``local``; limits and the
board's turns then count each client connection on its own (:func:`caller_key`),
so two scripts on the lab PC do not share one allowance, and one of them
flooding the board cannot starve the other.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

from google.protobuf.message import Message

from sidra.drivers import ResourceExhausted
from sidra.hil.v1 import board_pb2 as pb
from sidra.server.security.tokens import LOCAL
from sidra.server.settings import DEFAULT_MAX_MESSAGE_BYTES, LimitsSettings

LOCAL_PRINCIPAL = LOCAL.name

__all__ = ["LIMIT_NAMES", "MIB", "Admission", "PrincipalLimits", "RefusalListener", "caller_key"]

MIB = 2**20

LIMIT_NAMES = ("max_message_mb", "max_batch", "max_in_flight", "max_streams", "max_dataset_mb")
"""The ``[limits]`` keys that refuse calls (a refusal's ``field`` is ``limits.<name>``): this
module enforces the first four on every call, sidra.server.jobs.datasets the last on the
data set files a principal keeps."""

RefusalListener = Callable[[str], None]
"""Told the name of the limit (one of :data:`LIMIT_NAMES`) each time one refuses a call."""


def caller_key(principal: str, peer: str) -> str:
    """Whom limits and board turns count a call against: its principal, or, for the
    ``local`` principal of a service without ``[auth]``, its connection
    (``peer``: gRPC's ``ipv4:127.0.0.1:54321``), as ``local ipv4:127.0.0.1:54321``."""
    return f"{principal} {peer}" if principal == LOCAL_PRINCIPAL else principal


def _who(caller: str) -> str:
    """A :func:`caller_key` as messages name it: "principal 'alice'", or "principal
    'local' on connection ipv4:127.0.0.1:54321"."""
    principal, _, peer = caller.partition(" ")
    return f"principal {principal!r}" + (f" on connection {peer}" if peer else "")


class PrincipalLimits:
    """Enforces ``settings`` for every principal; one instance per served board.

    ``max_message_bytes`` is the server-wide message limit, which a principal's
    ``max_message_mb`` (unset: the same) may only lower. ``workers``: the server's
    worker threads, which open streams may not all take (``max_streams``, unset: half
    of them). ``on_refusal`` hears of each refusal (metrics).
    """

    def __init__(
        self,
        settings: LimitsSettings | None = None,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        workers: int = 8,
        on_refusal: RefusalListener | None = None,
    ) -> None:
        settings = settings or LimitsSettings()
        self.max_response_bytes = max_message_bytes
        """Largest message the server sends, bytes (the server-wide size)."""
        per_principal = settings.max_message_mb
        self.max_request_bytes = (
            max_message_bytes
            if per_principal is None
            else min(per_principal * MIB, max_message_bytes)
        )
        """Largest request one principal may send, bytes."""
        self.max_batch = settings.max_batch
        """Most vectors in one MVM or TransposeMVM request."""
        self.max_in_flight = settings.max_in_flight
        """Most calls one principal may have running or waiting for the board."""
        self.workers = workers
        streams = settings.max_streams
        self.max_streams = max(1, workers // 2) if streams is None else streams
        """Most long-lived streams the server runs at once, over every principal."""
        if streams is not None and streams >= workers:
            raise ValueError(
                f"limits.max_streams: {self.max_streams} is not below the server's {workers} "
                "worker threads; unary calls need at least one left"
            )
        self._on_refusal = on_refusal
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}  # only principals with a call in flight
        self._streams = 0

    def announced(self) -> pb.ServiceLimits:
        """The limits as GetBoardInfo tells every caller (board.proto ServiceLimits), so
        that clients cut their batches and transfers to fit instead of being refused."""
        return pb.ServiceLimits(
            max_batch=self.max_batch,
            max_request_bytes=self.max_request_bytes,
            max_in_flight=self.max_in_flight,
            max_streams=self.max_streams,
            max_response_bytes=self.max_response_bytes,
        )

    def admitted(self, principal: str, request_bytes: int) -> Admission:
        """Holds one of ``principal``'s in-flight places for a call of ``request_bytes``
        while the ``with`` block runs, or raises :class:`ResourceExhausted` on entry
        (message size, then calls in flight)."""
        return Admission(self, principal, request_bytes)

    def _admit(self, principal: str, request_bytes: int) -> None:
        self.check_size(principal, request_bytes)
        with self._lock:
            running = self._in_flight.get(principal, 0)
            if running < self.max_in_flight:
                self._in_flight[principal] = running + 1
        if running >= self.max_in_flight:
            self._refuse(
                "max_in_flight",
                f"a call while {running} of {_who(principal)} are running or queued",
                f"at most {self.max_in_flight} calls in flight per principal; retry when one "
                "has finished",
            )

    @contextlib.contextmanager
    def stream(self, rpc: str) -> Iterator[None]:
        """Holds one of the server's stream places while the ``with`` block runs (the
        stream is open), or raises :class:`ResourceExhausted` on entry."""
        with self._lock:
            open_ = self._streams
            if open_ < self.max_streams:
                self._streams = open_ + 1
        if open_ >= self.max_streams:
            self._refuse(
                "max_streams",
                f"a {rpc} stream while {open_} streams are open on this server",
                f"at most {self.max_streams} streams open at once on this server (each holds "
                f"one of its {self.workers} worker threads); retry when one has ended",
            )
        try:
            yield
        finally:
            with self._lock:
                self._streams -= 1

    def open_streams(self) -> int:
        """Streams open on the server now."""
        with self._lock:
            return self._streams

    def check_size(self, principal: str, request_bytes: int) -> None:
        """Raises :class:`ResourceExhausted` for a request (or one message of a stream:
        sidra.server.streams) of more than ``max_message_mb`` for ``principal``."""
        if request_bytes > self.max_request_bytes:
            self._refuse(
                "max_message_mb",
                f"{request_bytes} bytes ({request_bytes / MIB:.1f} MiB)",
                f"at most {self.max_request_bytes} bytes ({self.max_request_bytes / MIB:g} MiB) "
                f"per request for {_who(principal)}",
            )

    def _release(self, principal: str) -> None:
        with self._lock:
            left = self._in_flight[principal] - 1
            if left:
                self._in_flight[principal] = left
            else:
                del self._in_flight[principal]  # the table holds active principals only

    def check_batch(self, principal: str, request: Message) -> None:
        """Raises :class:`ResourceExhausted` for an MVM, TransposeMVM or PerturbedMVM
        ``request`` (parsed, not yet converted) of more passes than ``max_batch`` (a
        PerturbedMVM runs its batch once per point); other requests pass."""
        if isinstance(request, pb.RunSequenceRequest):  # each step as its own call
            for step in request.steps:
                member = step.WhichOneof("operation")
                if member is not None:
                    self.check_batch(principal, getattr(step, member))
            return
        if isinstance(request, pb.PerturbedMVMRequest):
            points = max(len(request.points), 1)
        elif isinstance(request, pb.MVMRequest | pb.TransposeMVMRequest):
            points = 1
        else:
            return
        shape = request.voltages.shape
        if isinstance(request, pb.MVMRequest | pb.TransposeMVMRequest):
            # Inputs as codes or in shared memory have their batch there.
            if request.HasField("input_codes"):
                shape = request.input_codes.shape
            elif request.HasField("shared_inputs"):
                shape = request.shared_inputs.shape
        # Only a [batch, width] shape has a batch; any other is malformed, which the
        # driver refuses as INVALID_ARGUMENT: the more useful answer.
        if len(shape) == 2 and shape[0] * points > self.max_batch:
            rpc = request.DESCRIPTOR.name.removesuffix("Request")
            asked = (
                f"{shape[0]} vectors" if points == 1 else f"{points} points x {shape[0]} vectors"
            )
            self._refuse(
                "max_batch",
                asked,
                f"at most {self.max_batch} vectors per {rpc} request for {_who(principal)}",
            )

    def in_flight(self, principal: str) -> int:
        """Calls of ``principal`` admitted and not yet finished."""
        with self._lock:
            return self._in_flight.get(principal, 0)

    def _refuse(self, limit: str, asked: str, allowed: str) -> None:
        if self._on_refusal is not None:
            self._on_refusal(limit)
        raise ResourceExhausted(f"limits.{limit}", asked, allowed)


class Admission:
    """One call's in-flight place under :class:`PrincipalLimits`: taken (or refused) on
    entry, given back on exit (a class rather than a generator: it is entered on every
    call)."""

    __slots__ = ("_limits", "_principal", "_request_bytes")

    def __init__(self, limits: PrincipalLimits, principal: str, request_bytes: int) -> None:
        self._limits = limits
        self._principal = principal
        self._request_bytes = request_bytes

    def __enter__(self) -> None:
        self._limits._admit(self._principal, self._request_bytes)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limits._release(self._principal)
