"""Giving memory back to the system after a large request.

A large MVM passes through several buffers of its size (gRPC's receive and send
buffers, the request and response bytes, numpy arrays and their temporaries).
glibc's malloc serves the smaller of them from per-thread arenas and keeps what is
freed there for reuse, so after a burst of large requests the server would keep
hundreds of MiB resident that no call uses. ``malloc_trim(0)`` returns the free
pages of every arena. It walks the whole heap, so it runs only after a request of
at least :data:`LARGE_REQUEST_BYTES`, once the call has ended (its buffers freed);
small calls pay nothing. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

__all__ = ["LARGE_REQUEST_BYTES", "give_back_memory", "trim_available"]

log = logging.getLogger(__name__)

LARGE_REQUEST_BYTES = 8 * 2**20
"""8 MiB: requests from this size on are followed by a trim (a batch of 8192 vectors
of 256 float32; training batches of 1024 vectors, 1 MiB, stay below)."""


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl, macOS): nothing to trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def trim_available() -> bool:
    """True where the C library can give free heap pages back (glibc)."""
    return _TRIM is not None


def give_back_memory() -> None:
    """Returns the C heap's free pages to the system (glibc ``malloc_trim(0)``)."""
    if _TRIM is not None:
        _TRIM(0)
