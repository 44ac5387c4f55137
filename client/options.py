"""Checks of what a caller gives the client library itself (``connect`` options, the call
sizes, tiles to lease, a shared-memory size), before anything is sent.

The service checks every request; these are the client's own settings, which no
request carries: a ``max_batch`` of 0 would fail deep inside the batch cutter, a
``max_in_flight`` of 0 would make every call wait for ever, a negative timeout would
make every call time out. Each check raises :class:`~sidra.drivers.InvalidArgument`
naming the option, the value and what is allowed, as the service's errors do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sidra.drivers import InvalidArgument
from sidra.drivers.validation import is_integer, is_real
from sidra.hil.chunks import CHUNK_FRAMING_BYTES

__all__ = [
    "MIN_MESSAGE_BYTES",
    "check_connect_options",
    "checked_count",
    "checked_job_id",
    "checked_seconds",
    "checked_lease_wait",
    "checked_text",
    "checked_tiles",
    "checked_wait",
]

MIN_MESSAGE_BYTES = CHUNK_FRAMING_BYTES
"""Smallest message size a client takes, bytes: the room a message keeps for what is
not data (sidra.hil.chunks). Row bands then carry one row each."""


def checked_count(field: str, value: Any, least: int, unit: str) -> int:
    """``value`` as an int of at least ``least`` (``unit`` names what it counts)."""
    if not is_integer(value) or value < least:
        raise InvalidArgument(field, value, f"a whole number of {unit} >= {least}")
    return int(value)


def checked_seconds(field: str, value: Any) -> float:
    """``value`` as a finite number of seconds > 0."""
    if not (is_real(value) and math.isfinite(value) and value > 0):
        raise InvalidArgument(field, value, "a finite number of seconds > 0")
    return float(value)


def checked_wait(field: str, value: Any) -> float | None:
    """``value`` as a finite number of seconds >= 0, or None (do not wait)."""
    if value is not None and not (is_real(value) and math.isfinite(value) and value >= 0):
        raise InvalidArgument(field, value, "a finite number of seconds >= 0, or None")
    return None if value is None else float(value)


def checked_lease_wait(value: Any, field: str = "wait_s") -> float:
    """A wait for leased tiles (a lease's ``wait_s``, a job's ``lease_wait_s``) as a
    finite number >= 0: the call's deadline is the client's timeout plus it (an infinite
    wait made a deadline gRPC refused at once, as DEADLINE_EXCEEDED). The service names
    its upper limit."""
    if not (is_real(value) and math.isfinite(value) and value >= 0):
        raise InvalidArgument(field, value, "a finite number of seconds >= 0")
    return float(value)


def checked_job_id(value: Any) -> str:
    """A job id as a request takes it (protobuf would send None as "", no job's id); an
    empty or blank one is refused here, not asked of the server."""
    job_id = checked_text("job_id", value, "3f2a9c0d1e4b5a6c")
    if not job_id.strip():
        raise InvalidArgument("job_id", value, "a job's id, e.g. '3f2a9c0d1e4b5a6c'")
    return job_id


def checked_text(field: str, value: Any, example: str) -> str:
    """``value`` as the str a request field takes (protobuf would send None as "")."""
    if not isinstance(value, str):
        raise InvalidArgument(field, value, f"a str, e.g. {example!r}")
    return value


def checked_tiles(tiles: Iterable[Any]) -> tuple[int, ...]:
    """``tiles`` as tile indices (ints >= 0; the service checks them against the board)."""
    try:
        given = list(tiles)
    except TypeError:
        raise InvalidArgument("tiles", tiles, "an iterable of tile indices") from None
    if not all(is_integer(t) and t >= 0 for t in given):
        raise InvalidArgument("tiles", given, "tile indices, whole numbers >= 0")
    return tuple(int(t) for t in given)


def check_connect_options(
    *,
    timeout_s: Any,
    wait_ready_s: Any,
    max_message_bytes: Any,
    server_max_message_bytes: Any,
    max_batch: Any,
    max_in_flight: Any,
) -> None:
    """The options of ``connect`` (either client), each named as ``connect`` takes it."""
    checked_seconds("timeout_s", timeout_s)
    checked_wait("wait_ready_s", wait_ready_s)
    checked_count("max_message_bytes", max_message_bytes, MIN_MESSAGE_BYTES, "bytes")
    if server_max_message_bytes is not None:
        checked_count(
            "server_max_message_bytes", server_max_message_bytes, MIN_MESSAGE_BYTES, "bytes"
        )
    if max_batch is not None:
        checked_count("max_batch", max_batch, 1, "vectors")
    if max_in_flight is not None:
        checked_count("max_in_flight", max_in_flight, 1, "calls")
