"""Row bands of the chunked transfers (stream.proto), shared by the service and its clients.

A band is whole rows of a [rows, cols] float32 array. Its size is chosen by
measurement: ``scripts/chunk_sizes.py`` times chunk sizes over loopback in one run
(figures in docs/benchmarks.md).
"""

from __future__ import annotations

__all__ = ["CHUNK_FRAMING_BYTES", "DEFAULT_CHUNK_BYTES", "rows_per_band"]

DEFAULT_CHUNK_BYTES = 512 * 2**10
"""Data bytes of one band unless the caller names another size: the fastest of 64 KiB
.. 4 MiB for a 16 MiB Program and read over loopback (docs/benchmarks.md)."""

CHUNK_FRAMING_BYTES = 64 * 2**10
"""Room kept in a message for everything but a band's data (tags, shape, cost)."""


def rows_per_band(cols: int, chunk_bytes: int) -> int:
    """Whole float32 rows of ``cols`` values in ``chunk_bytes`` (at least one)."""
    return max(1, chunk_bytes // (4 * max(cols, 1)))
