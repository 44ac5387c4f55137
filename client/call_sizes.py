"""How large one call of a client may be: what the caller said, or what the service announces.

``sidra serve`` refuses an MVM of more vectors than its ``[limits] max_batch`` and a
request over its ``max_message_mb`` (RESOURCE_EXHAUSTED), and tells every caller
those limits in GetBoardInfo (board.proto ``ServiceLimits``). A client that was not
told a size learns it there, once, before its first call that the limits shape (a pass
batch it may cut, a Program or read it may send in row bands): a lab that lowers its
limits does not have to tell every script and ``sidra train`` command. A size the
caller gave is used as given (a caller who says more than the service takes is
refused, as asked).
"""

from __future__ import annotations

from sidra.client.batches import DEFAULT_MAX_BATCH
from sidra.drivers.requests import (
    MVMRequest,
    PerturbedMVMRequest,
    ProgramRequest,
    ReadConductanceRequest,
    SequenceRequest,
    TransposeMVMRequest,
)
from sidra.hil.chunks import CHUNK_FRAMING_BYTES, DEFAULT_CHUNK_BYTES
from sidra.hil.v1 import board_pb2 as pb

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "DEFAULT_SERVER_MESSAGE_BYTES", "CallSizes", "SizedCalls"]

DEFAULT_MAX_IN_FLIGHT = 4
"""Calls a client keeps in flight at once until it has learnt the service's ``[limits]
max_in_flight`` (whose default this is); more wait in the client for a place."""

DEFAULT_SERVER_MESSAGE_BYTES = 8 * 1024 * 1024
"""Largest message a server takes and sends until it says otherwise (``sidra serve``
max_message_mb's default), bytes: a Program or ReadConductance that would pass it
(or this client's own limit) travels as row bands (stream.proto)."""

_SHAPED = (
    MVMRequest,
    TransposeMVMRequest,
    PerturbedMVMRequest,
    SequenceRequest,
    ProgramRequest,
    ReadConductanceRequest,
)
"""Requests whose calls the sizes shape: a client learns them before the first."""


class CallSizes:
    """The sizes of one client's calls (both clients hold one).

    ``max_batch``: most vectors per MVM call (None: the service's). ``server_bytes``:
    the server's message size (None: the service's). ``channel_bytes``: this client's
    own channel limit, which caps the message size either way. ``max_in_flight``: calls
    the client sends at once (None: the service's); more wait in the client (the asyncio
    client's tasks, the sync client's threads)."""

    def __init__(
        self,
        max_batch: int | None,
        server_bytes: int | None,
        channel_bytes: int,
        max_in_flight: int | None = None,
    ) -> None:
        self._told = (max_batch, server_bytes, max_in_flight)
        self._channel_bytes = channel_bytes
        self.learned = max_batch is not None and server_bytes is not None
        """Whether nothing is left to learn from the service."""
        self.max_batch = DEFAULT_MAX_BATCH
        """Most vectors one MVM or TransposeMVM call carries: a larger batch goes as
        consecutive calls (sidra.client.batches)."""
        self.message_limit_bytes = DEFAULT_SERVER_MESSAGE_BYTES
        """Largest message both this channel and the server carry, bytes; a Program or
        ReadConductance whose one message would pass it goes as row bands."""
        self.chunk_bytes = DEFAULT_CHUNK_BYTES
        """Data bytes per row band of a chunked Program or read (whole rows; at least one)."""
        self.max_in_flight = max_in_flight or DEFAULT_MAX_IN_FLIGHT
        """Calls sent at once; more wait in the client for a place."""
        self._fit(max_batch or DEFAULT_MAX_BATCH, server_bytes or DEFAULT_SERVER_MESSAGE_BYTES)

    def _fit(self, max_batch: int, server_bytes: int) -> None:
        self.max_batch = max_batch
        self.message_limit_bytes = min(self._channel_bytes, server_bytes)
        self.chunk_bytes = min(DEFAULT_CHUNK_BYTES, self.message_limit_bytes - CHUNK_FRAMING_BYTES)

    def wanted_for(self, request: object) -> bool:
        """Whether the service's limits should be learned before ``request`` is sent."""
        return not self.learned and isinstance(request, _SHAPED)

    def adopt(self, reply: pb.GetBoardInfoResponse) -> None:
        """Takes the limits a GetBoardInfo answer announces (none: the defaults stay)
        for every size the caller did not give."""
        self.learned = True
        if not reply.HasField("limits"):
            return
        limits = reply.limits
        max_batch, server_bytes, max_in_flight = self._told
        self.max_in_flight = max_in_flight or limits.max_in_flight or DEFAULT_MAX_IN_FLIGHT
        announced = min(  # requests and answers alike: the smaller of the two sizes
            limits.max_request_bytes or DEFAULT_SERVER_MESSAGE_BYTES,
            limits.max_response_bytes or DEFAULT_SERVER_MESSAGE_BYTES,
        )
        self._fit(max_batch or limits.max_batch or DEFAULT_MAX_BATCH, server_bytes or announced)


class SizedCalls:
    """The sizes of a client's calls as its attributes (both clients): reading one gives
    what the client uses now; setting one tells it, and stops it learning any."""

    _sizes: CallSizes

    @property
    def max_batch(self) -> int:
        """Most vectors one MVM or TransposeMVM call carries: a larger batch goes as
        consecutive calls, in order (sidra.client.batches)."""
        return self._sizes.max_batch

    @max_batch.setter
    def max_batch(self, vectors: int) -> None:
        self._sizes.max_batch, self._sizes.learned = vectors, True

    @property
    def message_limit_bytes(self) -> int:
        """Largest message both this channel and the server carry, bytes; a Program or
        ReadConductance whose one message would pass it goes as row bands."""
        return self._sizes.message_limit_bytes

    @message_limit_bytes.setter
    def message_limit_bytes(self, size: int) -> None:
        self._sizes.message_limit_bytes, self._sizes.learned = size, True

    @property
    def chunk_bytes(self) -> int:
        """Data bytes per row band of a chunked Program or read (whole rows; at least one)."""
        return self._sizes.chunk_bytes

    @chunk_bytes.setter
    def chunk_bytes(self, size: int) -> None:
        self._sizes.chunk_bytes, self._sizes.learned = size, True
