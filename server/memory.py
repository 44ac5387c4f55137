"""Giving memory back to the system after a large request.

A large MVM passes through several buffers of its size (gRPC's receive and send
buffers, the request and response bytes, numpy arrays and their temporaries).
glibc's malloc serves the smaller of them from per-thread arenas and keeps what is
freed there for reuse, so after a burst of large requests the server would keep
hundreds of MiB resident that no call uses. ``malloc_trim(0)`` returns the free
pages of every arena. It walks the whole heap, so it runs only after a request of
at least :data:`LARGE_REQUEST_BYTES`, once the call has ended (its buffers freed);
small calls pay nothing. Elsewhere than glibc it does nothing.

Requests of a few MiB leave their buffers in the arenas as well, and so do
requests gRPC itself refuses for their size, which never reach the service; and
trimming after each call would cost every training batch a heap walk.
:func:`note_call` instead has one thread per process trim once the service has
had no call for :data:`IDLE_TRIM_S`: a burst pays a clock read per call while it
lasts, and its memory goes back when it is over.

What trimming cannot return is a heap whose free space sits between live blocks.
glibc serves blocks below its mmap threshold from the heap, and raises that
threshold after freeing a mapped block (up to 32 MiB), so after one large request
every buffer of a few MiB lands in the heap and fragments it. A service process
fixes the threshold (:func:`configure_malloc`, ``sidra serve`` does at start):
buffers of :data:`MMAP_THRESHOLD_BYTES` or more are then mapped, and unmapped when
freed; training batches of 1024 vectors (1 MiB) stay in the heap, reused at no cost.

Fixing one threshold also fixes glibc's other, the trim threshold, at its 128 KiB
default: a heap whose free top exceeds it is shrunk at once, and a per-thread arena
shrinks by discarding its pages. Every batch-1024 MVM then freed its megabytes of
buffers, had them discarded and faulted them in again on the next call (about 1,000
page faults per call in the served emulator; none in process, whose main heap keeps
them). So :func:`configure_malloc` raises the trim threshold to
:data:`TRIM_THRESHOLD_BYTES` as well: during a burst the freed buffers stay for the
next call. The idle trim gives back what lies free inside the heaps and at the top
of the main one; the top of a thread's arena (at most that much per arena) stays
until a later free finds more there (``scripts/soak_memory.py``: 1.59-1.60 x the
start after its large requests, against 1.58 x before).

That top is per arena, and glibc gives each thread that meets a busy arena one of its
own, up to eight per core: the server's worker threads and gRPC's kept 30-45 MiB
resident in them after small calls alone (``scripts/soak_hostile.py``: 1.29-1.43 x the
start after 10,000-40,000 hostile requests, the same at every count). Python threads
allocate under the GIL, so they gain little from arenas of their own: the service keeps
:data:`MALLOC_ARENAS` (``M_ARENA_MAX``), and the same soak ends at 1.09 x the start
(20,000 requests, with two arenas as with ``MALLOC_ARENA_MAX=2``; 1.01 x with one);
``scripts/soak_memory.py`` unchanged (1.59 x); on-board SPSA steps over gRPC, three
servers of each in turn, 4.3-7.5 ms per step with glibc's default and 4.3-5.7 ms with
two arenas: no cost that the machine's scatter shows.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable

__all__ = [
    "IDLE_TRIM_S",
    "LARGE_REQUEST_BYTES",
    "MALLOC_ARENAS",
    "MMAP_THRESHOLD_BYTES",
    "TRIM_THRESHOLD_BYTES",
    "IdleTrim",
    "give_back_memory",
    "configure_malloc",
    "note_call",
    "trim_available",
]

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

MMAP_THRESHOLD_BYTES = 4 * 2**20
"""4 MiB: allocations this large or larger are mapped and unmapped on their own
(:func:`configure_malloc`); glibc's default starts at 128 KiB and then moves."""

TRIM_THRESHOLD_BYTES = 8 * 2**20
"""8 MiB: free space at the top of a heap up to this size is kept for the next call
rather than given back as soon as it is freed (:func:`configure_malloc`): a batch-1024
MVM's buffers, a few MiB, are reused, not faulted in again."""

MALLOC_ARENAS = 2
"""Most malloc arenas the service's threads share (:func:`configure_malloc`); glibc's
default is eight per core."""

# mallopt parameter numbers, glibc's malloc.h
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def configure_malloc(
    threshold_bytes: int = MMAP_THRESHOLD_BYTES,
    keep_bytes: int = TRIM_THRESHOLD_BYTES,
    arenas: int = MALLOC_ARENAS,
) -> bool:
    """Fixes glibc's mmap threshold for this process (``mallopt(M_MMAP_THRESHOLD)``), so
    freed large buffers go back to the system at once; its trim threshold
    (``M_TRIM_THRESHOLD``, ``keep_bytes``), so the heap does not shrink and fault back
    in on every call; and its arenas (``M_ARENA_MAX``, ``arenas``), so threads do not
    each keep a heap top of their own. Call it before the service starts its threads.
    False where it cannot (not glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mapped = mallopt(_M_MMAP_THRESHOLD, threshold_bytes)
    kept = mallopt(_M_TRIM_THRESHOLD, keep_bytes)
    shared = mallopt(_M_ARENA_MAX, arenas)
    return bool(mapped and kept and shared)


def trim_available() -> bool:
    """True where the C library can give free heap pages back (glibc)."""
    return _TRIM is not None


def give_back_memory() -> None:
    """Returns the C heap's free pages to the system (glibc ``malloc_trim(0)``)."""
    if _TRIM is not None:
        _TRIM(0)


IDLE_TRIM_S = 0.5
"""Seconds without a call before the heap is trimmed, s."""


class IdleTrim:
    """Trims the heap once no noted request came for ``idle_s`` seconds (one thread,
    started at the first note, waiting on an event between bursts)."""

    def __init__(self, idle_s: float = IDLE_TRIM_S, trim: Callable[[], None] | None = None) -> None:
        self.idle_s = idle_s
        self.trim = trim or give_back_memory
        self.trims = 0
        """Trims done so far."""
        self._last = 0.0
        self._noted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def note(self) -> None:
        """A call has arrived: trim once the calls stop for ``idle_s``."""
        self._last = time.monotonic()
        if not self._noted.is_set():
            self._noted.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="sidra-idle-trim", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            self._noted.wait()
            while (left := self._last + self.idle_s - time.monotonic()) > 0:
                time.sleep(left)
            # Notes of the burst just waited out are covered by this trim; a later one
            # (after the clear) sets the event again and gets its own.
            self._noted.clear()
            try:
                self.trim()
            except Exception:  # the thread must outlive any one failure
                log.exception("giving memory back failed")
            self.trims += 1


_IDLE = IdleTrim()


def note_call() -> None:
    """A call has arrived: the heap is trimmed once the service is idle (glibc only)."""
    if _TRIM is not None:
        _IDLE.note()
