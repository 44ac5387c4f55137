"""Host memory a PCIe board writes pass results into (register map 1.2, FEATURES bit 3).

A pass of a 1024-vector batch answers with a MiB of currents. Read out of the BAR's
output window that is one more copy of the whole result on every call (and on
hardware a MiB of uncached loads, one bus transaction each). Written by the device
straight into host memory, as an NVMe controller writes read data to the host
addresses of a command, the result is the caller's array as it lands.

The host keeps a region of equal chunks, each the size of a slot window. A command
whose result is large borrows one chunk; the device writes the result there; the
caller gets a numpy array over that chunk, and the chunk goes back to the pool only
when that array and every view of it are gone (``weakref.finalize`` on the array,
which every view keeps alive), so the device never writes into memory a caller still
holds. When every chunk is held, a command answers in the output window as before.

On a virtual board the region is a file beside the BAR file that both processes map
(the emulated IOMMU: :func:`sidra.drivers.pcie.bar.host_memory_path`); the host
removes its name once the device has mapped it. A region's bus address carries its
host's process id in its high 32 bits, so a host that announces a region first removes
the files of hosts that died before they could remove theirs. A hardware board would need the
region mapped for DMA through VFIO, which this driver does not do: ``pcie://``
passes answer in the output window.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import mmap
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers.pcie import registers as r

__all__ = [
    "CHUNK_BYTES",
    "CHUNKS",
    "MIN_RESULT_BYTES",
    "HostMemory",
    "Lent",
    "Span",
    "remove_stale",
]

CHUNK_BYTES = r.SLOT_WINDOW_BYTES
"""One result's room, bytes: a slot window's worth (a whole number of pages)."""
CHUNKS = 2 * r.QUEUE_DEPTH
"""Chunks per region: a full ring in flight, and as many results held by the caller."""
MIN_RESULT_BYTES = 64 << 10
"""Smaller results are copied out of the window: a single vector's KiB costs less to
copy than to lend a chunk for (the single-MVM round trip is the latency-bound path)."""
_STRIDE = 1 << 26
"""Bus addresses of successive regions of one host are this far apart (> the region)."""
_regions = itertools.count()


class HostMemory:
    """One region of host memory shared with the device, and its chunks."""

    def __init__(self, path_of: Callable[[int], str | None], chunks: int = CHUNKS) -> None:
        """Creates the region's file at ``path_of(base)`` (a bus address of its own);
        OSError when it cannot (no such file for this transport, no room)."""
        self.size = chunks * CHUNK_BYTES
        remove_stale(path_of)
        for _ in range(64):
            n = next(_regions) % 64
            self.base = (os.getpid() & 0xFFFF_FFFF) << 32 | n * _STRIDE
            self.path: str | None = path_of(self.base)
            if self.path is None:
                raise OSError("this transport has no file standing in for host memory")
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # a region of this process not yet removed
                continue
            break
        else:
            raise FileExistsError(f"{self.path}: no free host-memory region name")
        try:
            os.ftruncate(fd, self.size)  # before mmap: a page past the end is SIGBUS
            self._mm = mmap.mmap(fd, self.size, mmap.MAP_SHARED)
        except BaseException:
            self.remove_name()
            raise
        finally:
            os.close(fd)
        self._free = list(range(chunks))
        """Chunks nobody holds; the last returned is lent first (its pages are warm)."""

    def remove_name(self) -> None:
        """Unlinks the region's file: once the device has mapped it, or gave up. The
        memory stays until both ends and every array over it are gone."""
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None

    @property
    def free_chunks(self) -> int:
        return len(self._free)

    def lend(self, nbytes: int) -> Lent | None:
        """A chunk for a result of ``nbytes`` (None: too small to pay, or none free)."""
        if not MIN_RESULT_BYTES <= nbytes <= CHUNK_BYTES or not self._free:
            return None
        return Lent(self, self._free.pop(), nbytes)

    def lend_span(self, nbytes: int) -> Span | None:
        """Consecutive chunks for one result of ``nbytes`` that several commands compute
        part by part (a batch larger than a slot window): each part is lent its place in
        it, and the whole is the caller's one array, not a join of copies. None when no
        such run of chunks is free."""
        count = -(-nbytes // CHUNK_BYTES)
        free = sorted(self._free)
        for k in range(len(free) - count + 1):
            if free[k + count - 1] - free[k] == count - 1:  # sorted, distinct: a run
                first = free[k]
                self._free[:] = [c for c in self._free if not first <= c < first + count]
                return Span(self, first, count, nbytes)
        return None

    def address(self, chunk: int) -> int:
        """The bus address of ``chunk`` (what a submission's result_addr names)."""
        return self.base + chunk * CHUNK_BYTES

    def give_back(self, chunk: int, count: int = 1) -> None:
        """Chunks whose command failed: the device wrote nothing the caller holds."""
        self._free.extend(range(chunk, chunk + count))

    def array(
        self, chunk: int, shape: tuple[int, ...], dtype: np.dtype[Any], count: int = 1
    ) -> npt.NDArray[Any]:
        """The result in ``count`` chunks from ``chunk`` as the caller's array; they are
        free again once it and all its views are gone. (``list.extend`` from a collector
        in another thread is atomic, as ``lend``'s ``pop`` under the driver's lock is.)"""
        result: npt.NDArray[Any] = np.ndarray(shape, dtype, self._mm, chunk * CHUNK_BYTES)
        weakref.finalize(result, self._free.extend, range(chunk, chunk + count))
        return result

    def view(self, chunk: int, offset: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        """The bytes at ``offset`` in chunk ``chunk`` on, as an array that does not hold
        them (a part of a span, read before the span's own array is made)."""
        return np.ndarray(shape, dtype, self._mm, chunk * CHUNK_BYTES + offset)


@dataclass(slots=True)
class Lent:
    """A chunk lent to one command: the room its submission names, and once the device
    answered there, the result's size. A part of a :class:`Span` is lent its place in
    the span (``offset``) and owns nothing: the span is given back whole."""

    region: HostMemory
    chunk: int
    room: int
    """Bytes lent (the submission's result_room)."""
    result_len: int = 0
    """Bytes the device wrote there (the completion's result_len)."""
    offset: int = 0
    """Bytes from the chunk's start (a part of a span)."""
    owned: bool = True
    """False for a part of a span: giving back and holding are the span's."""

    @property
    def address(self) -> int:
        """The submission's result_addr."""
        return self.region.address(self.chunk) + self.offset

    def give_back(self) -> None:
        """The command failed, or was answered in the window: the chunk is free again."""
        if self.owned:
            self.region.give_back(self.chunk)

    def array(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        """The result as the caller's array (the chunk free again once it is gone); a
        span's part as a view that holds nothing."""
        if not self.owned:
            return self.region.view(self.chunk, self.offset, shape, dtype)  # type: ignore[no-any-return]
        return self.region.array(self.chunk, shape, dtype)


@dataclass(slots=True)
class Span:
    """Consecutive chunks lent for one result that several commands compute in parts."""

    region: HostMemory
    chunk: int
    count: int
    nbytes: int

    def part(self, offset: int, room: int) -> Lent:
        """The room of the part at ``offset`` bytes into the span."""
        return Lent(self.region, self.chunk, room, offset=offset, owned=False)

    def give_back(self) -> None:
        """A part failed: the whole span is free again."""
        self.region.give_back(self.chunk, self.count)

    def array(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
        """The whole result as the caller's array (the span free again once it is gone)."""
        return self.region.array(self.chunk, shape, dtype, self.count)


def remove_stale(path_of: Callable[[int], str | None]) -> list[str]:
    """Removes the region files beside this BAR whose host process is gone (killed
    between creating its region and the board's acknowledgement); returns their paths.
    A file of a live process, this one's included, is left alone."""
    example = path_of(0)
    if example is None:
        return []
    removed = []
    for path in glob.glob(glob.escape(example[:-16]) + "[0-9a-f]" * 16):
        pid = int(path[-16:], 16) >> 32
        if pid == os.getpid() or _alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return pid > 0
