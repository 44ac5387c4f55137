"""The register seam: BAR0 mapped into this process, one aligned access per register.

:class:`RegisterIO` is everything the PCIe driver (and the virtual board) does
to a BAR: single aligned 32- and 64-bit loads and stores, and bulk copies into
and out of memory regions (rings, identity strings, data windows). Two
implementations map a real BAR: :class:`SysfsBar` (``resource0`` of a PCI
device) and :class:`FileBar` (a file of exactly BAR_SIZE bytes, for emulation).

Why single aligned accesses: a PCIe device sees each CPU load or store as one
TLP. A 32-bit register written byte by byte (``struct.pack_into('<L')`` on
LP64, slice assignment, a numpy copy) becomes four 1-byte writes, and a
doorbell would fire on the first. ``memoryview(mm).cast('I')[i]`` compiles to
one aligned 32-bit move; ``cast('Q')`` to one 64-bit move. Windows are plain
memory: numpy copies them in bulk.

Lifetime: the memoryviews and numpy views hold exports on the mmap, so they are
released before ``mmap.close()`` (else ``BufferError``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import mmap
import os
import stat
import struct
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sidra.drivers.errors import BoardUnavailable
from sidra.drivers.pcie import futex
from sidra.drivers.pcie.registers import BAR_SIZE
from sidra.drivers.types import Buffer

__all__ = [
    "ALL_ONES",
    "BarError",
    "BarSizeError",
    "FileBar",
    "MappedBar",
    "RegisterIO",
    "SysfsBar",
    "bound_driver",
    "f64_bits",
    "f64_of",
    "hold_as_host",
    "host_memory_path",
    "sysfs_bar0_bytes",
    "sysfs_text",
]

ALL_ONES = 0xFFFF_FFFF
"""What every read of a surprise-removed PCIe device returns (a master abort)."""
SYSFS_DEVICES = Path("/sys/bus/pci/devices")
ACCESS_HELP = (
    "give this user the BAR: bind the device to uio_pci_generic (or pci-stub) and add a "
    "udev rule for resource0 (docs/pcie.md, 'Giving a process the BAR')"
)


class BarError(BoardUnavailable):
    """BAR0 cannot be mapped: no device, no permission, owned by a kernel driver."""


class BarSizeError(BarError):
    """The BAR (or emulation file) is not the size of a SIDRA BAR0."""

    def __init__(self, path: str, size: int, required: int = BAR_SIZE, why: str = "") -> None:
        self.path, self.size, self.required, self.why = path, size, required, why
        super().__init__(
            f"{path}: BAR of {size} bytes, a SIDRA BAR0 is {required} bytes"
            + (f" ({why})" if why else "")
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.size, self.required, self.why))


NOT_A_BAR_FILE = (
    "not a virtual board's file: sidra board serve --pcie-file PATH makes one, at a path "
    "that does not exist yet"
)
FIRMWARE_MISMATCH = (
    "the board's firmware and this software disagree on the register map: check the "
    "firmware's release notes, or the address (sidra board scan lists SIDRA-sized BARs)"
)


def f64_bits(value: float) -> int:
    """The IEEE-754 bit pattern of ``value``: what a 64-bit f64 register holds."""
    bits: int = struct.unpack("<Q", struct.pack("<d", value))[0]
    return bits


def f64_of(bits: int) -> float:
    """The double whose bit pattern is ``bits``."""
    value: float = struct.unpack("<d", struct.pack("<Q", bits))[0]
    return value


class RegisterIO(Protocol):
    """What a transport does to BAR0. Offsets are bytes from the start of the BAR."""

    name: str

    def read32(self, offset: int) -> int: ...
    def write32(self, offset: int, value: int) -> None: ...
    def read64(self, offset: int) -> int: ...
    def write64(self, offset: int, value: int) -> None: ...
    def read_bytes(self, offset: int, size: int) -> bytes:
        """Bulk copy out of a memory region (never a register)."""
        ...

    def read_array(self, offset: int, size: int) -> npt.NDArray[np.uint8]:
        """Bulk copy out of a memory region into a new, writable array."""
        ...

    def view(self, offset: int, size: int) -> memoryview:
        """The memory region itself, not a copy: for a reader that must not copy a
        large window. Release it (or drop it) before :meth:`close`."""
        ...

    def write_bytes(self, offset: int, data: Buffer) -> None:
        """Bulk copy into a memory region (never a register)."""
        ...

    def present(self) -> bool:
        """False once the device is gone (removed file, unbound device)."""
        ...

    can_sleep: bool
    """True when :meth:`wait_word` sleeps in the kernel until the other side changes
    the word and :meth:`kick` wakes it (a virtual board's shared mapping); False
    when a waiter has to poll (a hardware BAR: interrupts need VFIO, not used)."""

    def wait_word(self, offset: int, value: int, timeout_s: float) -> None:
        """Sleeps while the u32 register at ``offset`` reads ``value``, at most
        ``timeout_s`` (a short sleep when it cannot: callers re-read the word)."""
        ...

    def kick(self, offset: int) -> None:
        """Wakes whoever sleeps in :meth:`wait_word` on ``offset`` (nothing on hardware,
        which sees its registers written)."""
        ...

    def host_memory_file(self, base: int) -> str | None:
        """The file that stands in for the host-memory region at bus address ``base``
        (register map 1.2), which a virtual board maps; None where the device would
        reach host memory by DMA, which needs a VFIO DMA mapping this driver does not
        make (the device then answers in its output windows)."""
        ...

    def close(self) -> None: ...


def host_memory_path(bar_path: str, base: int) -> str:
    """Where a virtual board finds the host-memory region at bus address ``base``: a
    file beside its BAR file, which the host creates before the ring reset that
    announces it and removes once the reset is acknowledged (both ends have mapped it)."""
    return f"{bar_path}.iova-{base:016x}"


class MappedBar:
    """A BAR mapped with ``mmap``: the accesses themselves, shared by both kinds."""

    def __init__(self, name: str, fd: int, size: int) -> None:
        self.name = name
        self._fd = fd
        self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._u32 = memoryview(self._mm).cast("I")
        self._u64 = memoryview(self._mm).cast("Q")
        self._bytes = np.frombuffer(self._mm, np.uint8)
        self._view = memoryview(self._mm)
        self.can_sleep = False
        self._base: ctypes.c_char | None = None
        """The mapping's first byte as ctypes sees it: futex addresses count from it."""

    @property
    def fd(self) -> int:
        """The open BAR file's descriptor (-1 once closed)."""
        return self._fd

    def _sleep_on_words(self) -> None:
        """Lets :meth:`wait_word` and :meth:`kick` use futexes on this mapping."""
        if futex.AVAILABLE:
            self._base = ctypes.c_char.from_buffer(self._mm)
            self.can_sleep = True

    # The alignment check is inline: these run in every poll of the MVM path.
    def read32(self, offset: int) -> int:
        if offset & 3:
            raise _misaligned(offset, 4)
        value: int = self._u32[offset >> 2]
        return value

    def write32(self, offset: int, value: int) -> None:
        if offset & 3:
            raise _misaligned(offset, 4)
        self._u32[offset >> 2] = value

    def read64(self, offset: int) -> int:
        if offset & 7:
            raise _misaligned(offset, 8)
        value: int = self._u64[offset >> 3]
        return value

    def write64(self, offset: int, value: int) -> None:
        if offset & 7:
            raise _misaligned(offset, 8)
        self._u64[offset >> 3] = value

    # Windows and rings are memory: a slice of the mmap is one memcpy each way.
    def read_bytes(self, offset: int, size: int) -> bytes:
        return self._mm[offset : offset + size]

    def read_array(self, offset: int, size: int) -> npt.NDArray[np.uint8]:
        return self._bytes[offset : offset + size].copy()

    def view(self, offset: int, size: int) -> memoryview:
        return self._view[offset : offset + size]

    def write_bytes(self, offset: int, data: Buffer) -> None:
        if isinstance(data, memoryview) and data.format != "B":
            data = data.cast("B")  # an array's .data: count and copy bytes
        self._view[offset : offset + len(data)] = data

    def present(self) -> bool:
        return True

    def host_memory_file(self, base: int) -> str | None:
        return None  # hardware: results stay in the output windows (no VFIO DMA mapping)

    def wait_word(self, offset: int, value: int, timeout_s: float) -> None:
        if offset & 3:
            raise _misaligned(offset, 4)
        if self._base is None:
            time.sleep(min(timeout_s, 50e-6))
            return
        futex.wait(ctypes.addressof(self._base) + offset, value, timeout_s)

    def kick(self, offset: int) -> None:
        if self._base is not None:
            futex.wake(ctypes.addressof(self._base) + offset)

    def close(self) -> None:
        if self._fd < 0:
            return
        self._base = None  # ctypes' export too
        self.can_sleep = False
        del self._bytes  # numpy's export first, then the memoryviews, then the map
        self._u32.release()
        self._u64.release()
        self._view.release()
        try:
            self._mm.close()
        except BufferError:  # a view() still held by a dying frame: collect it, retry
            gc.collect()
            self._mm.close()
        os.close(self._fd)
        self._fd = -1


def _misaligned(offset: int, width: int) -> ValueError:
    return ValueError(f"BAR offset 0x{offset:x} is not {width}-byte aligned")


def hold_as_host(fd: int, name: str) -> None:
    """Takes the host's exclusive lock on the open BAR ``fd`` (``flock``), or closes it
    and raises BarError: two hosts driving one board's rings would take each other's
    completions and overwrite each other's windows. The lock is the open file's: it ends
    when the mapping is closed or the process dies. Advisory: a reader of its registers
    (``sidra board probe``) takes none, and a virtual board holds a POSIX record lock of
    its own (``lockf``, which Linux keeps apart from ``flock``)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise BarError(f"{name}: cannot be locked for this host ({exc})") from exc
        raise BarError(
            f"{name}: another host already drives this board (a sidra serve, or another "
            "program that opened it); one host at a time: stop it, or reach the board "
            "through its server (grpc://)"
        ) from exc


class FileBar(MappedBar):
    """A file of exactly BAR_SIZE bytes standing in for BAR0 (``pcie+file://``).
    ``host``: this process drives the board (:func:`hold_as_host`)."""

    def __init__(
        self, path: str | os.PathLike[str], size: int = BAR_SIZE, *, host: bool = False
    ) -> None:
        self.path = os.fspath(path)
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError as exc:
            raise BarError(
                f"{self.path}: no such BAR file (start a virtual board: "
                f"sidra board serve --pcie-file {self.path})"
            ) from exc
        except PermissionError as exc:
            raise BarError(
                f"{self.path}: no read/write permission for this user (a virtual board "
                "makes its file 0600: run the host as the board's user)"
            ) from exc
        except IsADirectoryError as exc:
            raise BarError(f"{self.path}: a folder, {NOT_A_BAR_FILE}") from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise BarError(f"{self.path}: not a regular file, {NOT_A_BAR_FILE}")
        if host:
            hold_as_host(fd, f"pcie+file://{self.path}")
        actual = st.st_size
        if actual != size:
            os.close(fd)
            raise BarSizeError(self.path, actual, size, NOT_A_BAR_FILE)
        super().__init__(f"pcie+file://{self.path}", fd, size)
        self._sleep_on_words()  # both ends are processes sharing this file's pages

    def host_memory_file(self, base: int) -> str | None:
        return host_memory_path(self.path, base)

    def present(self) -> bool:
        """The mapped file still has a name: removing it, or a new board renamed over
        it, leaves the mapping nameless (an fstat: no path lookup, it runs per call)."""
        try:
            return os.fstat(self._fd).st_nlink > 0
        except OSError:
            return False


def sysfs_text(path: Path) -> str:
    """A sysfs attribute's text (``0x1234``), "" when it cannot be read."""
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def sysfs_bar0_bytes(device: Path) -> int:
    """BAR0's size from sysfs ``resource`` (its first line: start, end, flags); 0 when
    there is none. Read from sysfs alone: nothing is mapped."""
    first = sysfs_text(device / "resource").splitlines()[:1]
    try:
        start, end, _ = (int(field, 16) for field in first[0].split())
    except (IndexError, ValueError):
        return 0
    return end - start + 1 if end > start else 0


def bound_driver(device: Path) -> str | None:
    """The kernel driver ``device`` (a sysfs PCI device folder) is bound to; None: none."""
    bound = device / "driver"
    return os.path.basename(os.readlink(bound)) if bound.is_symlink() else None


class SysfsBar(MappedBar):
    """BAR0 of PCI device ``bdf`` (``0000:01:00.0``) through sysfs ``resource0``.
    ``host``: this process drives the board (:func:`hold_as_host`)."""

    def __init__(
        self, bdf: str, size: int = BAR_SIZE, root: Path = SYSFS_DEVICES, *, host: bool = False
    ) -> None:
        self.device = root / bdf
        if not self.device.is_dir():
            raise BarError(
                f"no PCI device {bdf} (lspci -D lists the addresses; is the board "
                f"powered and enumerated?)"
            )
        owner = bound_driver(self.device)
        if owner is not None and owner not in ("uio_pci_generic", "pci-stub"):
            bar0 = sysfs_bar0_bytes(self.device)
            if bar0 != size:  # another device: never advise unbinding its driver
                ids = ":".join(sysfs_text(self.device / n) for n in ("vendor", "device"))
                raise BarError(
                    f"PCI device {bdf} ({ids}, driver {owner!r}) has a BAR0 of {bar0:,} "
                    f"bytes, a SIDRA board's is {size:,}: not a SIDRA board; check the "
                    "address (sidra board scan lists the devices of the SIDRA size)"
                )
            raise BarError(
                f"PCI device {bdf}: BAR0 is owned by kernel driver {owner!r}; unbind it "
                f"(echo {bdf} | sudo tee /sys/bus/pci/drivers/{owner}/unbind) and bind the "
                "device to uio_pci_generic (docs/pcie.md, 'Giving a process the BAR')"
            )
        resource = self.device / "resource0"
        try:
            fd = os.open(resource, os.O_RDWR | os.O_SYNC)
        except FileNotFoundError as exc:
            raise BarError(f"PCI device {bdf} has no BAR0 ({resource})") from exc
        except PermissionError as exc:
            raise BarError(f"{resource}: permission denied; {ACCESS_HELP}") from exc
        if host:
            hold_as_host(fd, f"pcie://{bdf}")
        actual = os.fstat(fd).st_size
        if actual != size:
            os.close(fd)
            raise BarSizeError(str(resource), actual, size, FIRMWARE_MISMATCH)
        try:
            super().__init__(f"pcie://{bdf}", fd, size)
        except OSError as exc:  # CONFIG_IO_STRICT_DEVMEM, kernel lockdown
            os.close(fd)
            raise BarError(f"{resource}: mmap refused ({exc}); {ACCESS_HELP}") from exc

    def present(self) -> bool:
        return (self.device / "resource0").exists()
