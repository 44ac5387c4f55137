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
from sidra.client.options import MIN_MESSAGE_BYTES, checked_count
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
    client's tasks, the sync client's threads). Each size is told or learnt on its own:
    a size told (here, or later through :class:`SizedCalls`) is kept whatever the
    service announces, and the service is asked once, unless every size was told."""

    def __init__(
        self,
        max_batch: int | None,
        server_bytes: int | None,
        channel_bytes: int,
        max_in_flight: int | None = None,
    ) -> None:
        self._channel_bytes = channel_bytes
        self._told: dict[str, int] = {}
        """The sizes the caller gave, by attribute name."""
        self.asked = False
        """Whether the service's limits were learnt (one GetBoardInfo)."""
        self.max_batch = DEFAULT_MAX_BATCH
        """Most vectors one MVM or TransposeMVM call carries: a larger batch goes as
        consecutive calls (sidra.client.batches)."""
        self.message_limit_bytes = DEFAULT_SERVER_MESSAGE_BYTES
        """Largest message both this channel and the server carry, bytes; a Program or
        ReadConductance whose one message would pass it goes as row bands."""
        self.chunk_bytes = DEFAULT_CHUNK_BYTES
        """Data bytes per row band of a chunked Program or read (whole rows; at least one)."""
        self.max_in_flight = DEFAULT_MAX_IN_FLIGHT
        """Calls sent at once; more wait in the client for a place."""
        checked_count("channel_message_bytes", channel_bytes, MIN_MESSAGE_BYTES, "bytes")
        if max_batch is not None:
            self._told["max_batch"] = _checked("max_batch", max_batch)
        if server_bytes is not None:
            server_bytes = _checked("message_limit_bytes", server_bytes)
            self._told["message_limit_bytes"] = min(channel_bytes, server_bytes)
        if max_in_flight is not None:
            self._told["max_in_flight"] = _checked("max_in_flight", max_in_flight)
        self._fit(DEFAULT_MAX_BATCH, DEFAULT_SERVER_MESSAGE_BYTES, DEFAULT_MAX_IN_FLIGHT)

    def tell(self, name: str, value: int) -> None:
        """The caller gives size ``name`` (an attribute above): used from now on, and
        kept when the service's limits are learnt. InvalidArgument for a size no call
        can have (fewer than one vector, place or data byte)."""
        value = _checked(name, value)
        self._told[name] = value
        setattr(self, name, value)

    def _fit(self, max_batch: int, server_bytes: int, max_in_flight: int) -> None:
        told = self._told
        self.max_batch = told.get("max_batch", max_batch)
        self.message_limit_bytes = told.get(
            "message_limit_bytes", min(self._channel_bytes, server_bytes)
        )
        self.chunk_bytes = told.get(
            "chunk_bytes",
            min(DEFAULT_CHUNK_BYTES, self.message_limit_bytes - CHUNK_FRAMING_BYTES),
        )
        self.max_in_flight = told.get("max_in_flight", max_in_flight)

    @property
    def learned(self) -> bool:
        """Whether nothing is left to learn from the service: asked already, or every
        size it announces told."""
        return self.asked or self._told.keys() >= _ANNOUNCED

    def wanted_for(self, request: object) -> bool:
        """Whether the service's limits should be learned before ``request`` is sent."""
        return not self.learned and isinstance(request, _SHAPED)

    def adopt(self, reply: pb.GetBoardInfoResponse) -> None:
        """Takes the limits a GetBoardInfo answer announces (none: the defaults stay)
        for every size the caller did not give."""
        self.asked = True
        if not reply.HasField("limits"):
            return
        limits = reply.limits
        announced = min(  # requests and answers alike: the smaller of the two sizes
            limits.max_request_bytes or DEFAULT_SERVER_MESSAGE_BYTES,
            limits.max_response_bytes or DEFAULT_SERVER_MESSAGE_BYTES,
        )
        self._fit(
            limits.max_batch or DEFAULT_MAX_BATCH,
            announced,
            limits.max_in_flight or DEFAULT_MAX_IN_FLIGHT,
        )


_ANNOUNCED = frozenset({"max_batch", "message_limit_bytes", "max_in_flight"})
"""The sizes GetBoardInfo's limits give."""

_LEAST = {
    "max_batch": (1, "vectors"),
    "message_limit_bytes": (MIN_MESSAGE_BYTES, "bytes"),
    "chunk_bytes": (1, "bytes"),
    "max_in_flight": (1, "calls"),
}
"""The smallest value of each size, and what it counts."""


def _checked(name: str, value: object) -> int:
    least, unit = _LEAST[name]
    return checked_count(name, value, least, unit)


class SizedCalls:
    """The sizes of a client's calls as its attributes (both clients): reading one gives
    what the client uses now; setting one tells it (kept whatever the service announces;
    the others are still learnt)."""

    _sizes: CallSizes

    @property
    def max_batch(self) -> int:
        """Most vectors one MVM or TransposeMVM call carries: a larger batch goes as
        consecutive calls, in order (sidra.client.batches)."""
        return self._sizes.max_batch

    @max_batch.setter
    def max_batch(self, vectors: int) -> None:
        self._sizes.tell("max_batch", vectors)

    @property
    def message_limit_bytes(self) -> int:
        """Largest message both this channel and the server carry, bytes; a Program or
        ReadConductance whose one message would pass it goes as row bands."""
        return self._sizes.message_limit_bytes

    @message_limit_bytes.setter
    def message_limit_bytes(self, size: int) -> None:
        self._sizes.tell("message_limit_bytes", size)

    @property
    def max_in_flight(self) -> int:
        """Calls this client sends at once; more wait in it for a place (told to
        ``connect``, else the service's)."""
        return self._sizes.max_in_flight

    @property
    def chunk_bytes(self) -> int:
        """Data bytes per row band of a chunked Program or read (whole rows; at least one)."""
        return self._sizes.chunk_bytes

    @chunk_bytes.setter
    def chunk_bytes(self, size: int) -> None:
        self._sizes.tell("chunk_bytes", size)
