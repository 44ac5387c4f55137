"""How much of a stored file one answer carries: ReadJobFile (a job's record file) and
ReadDataset (a kept data set file) read pieces by the same rule (jobs.proto)."""

from __future__ import annotations

from sidra.drivers import OutOfRange

__all__ = [
    "ANSWER_HEADROOM_BYTES",
    "DEFAULT_PIECE_BYTES",
    "MAX_PIECE_BYTES",
    "most_piece_bytes",
    "piece_length",
]

DEFAULT_PIECE_BYTES = 2**20
"""What a read asking for ``max_bytes`` 0 is answered, at most, bytes."""

MAX_PIECE_BYTES = 4 * 2**20
"""Most bytes one answer carries, bytes (also no more than the message limit allows)."""

ANSWER_HEADROOM_BYTES = 64 * 1024
"""What an answer carrying file bytes leaves of the message limit for the rest of it (a
job's options, summary and error), bytes."""


def most_piece_bytes(max_response_bytes: int) -> int:
    """The most one answer carries under a message limit of ``max_response_bytes``."""
    return min(MAX_PIECE_BYTES, max_response_bytes - ANSWER_HEADROOM_BYTES)


def piece_length(max_bytes: int, most: int) -> int:
    """The bytes a read of ``max_bytes`` (0: :data:`DEFAULT_PIECE_BYTES`) is answered, at
    most ``most``; OutOfRange naming ``max_bytes`` above that."""
    length = max_bytes or min(DEFAULT_PIECE_BYTES, most)
    if length > most:
        raise OutOfRange("max_bytes", max_bytes, f"0 .. {most} (0: {DEFAULT_PIECE_BYTES})")
    return length
