"""Sleeping on a 32-bit word of a shared mapping until another process changes it.

The virtual PCIe board and its host are two processes sharing BAR0 through a
mapped file. Polling alone makes each of them hold a core; on a busy machine a
poller that loses its core waits a whole scheduler slice. Linux futexes let
either side sleep in the kernel on a word of the shared mapping (``FUTEX_WAIT``
returns at once when the word no longer holds the value the sleeper saw, so a
change between the check and the sleep is never missed) and the other side wake
it (``FUTEX_WAKE``): the emulated form of an interrupt and of a doorbell kick.

Called through ``ctypes`` (which releases the GIL for the call); available on
Linux x86-64 and ARM64. Elsewhere :data:`AVAILABLE` is False and callers poll.
"""

from __future__ import annotations

import ctypes
import platform
import sys

__all__ = ["AVAILABLE", "wait", "wake"]

_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine())
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1  # shared (not FUTEX_PRIVATE_FLAG): two processes
_WAKE_ALL = 0x7FFF_FFFF

AVAILABLE = sys.platform == "linux" and _SYS_FUTEX is not None
"""True where :func:`wait` and :func:`wake` work."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_syscall = None
if AVAILABLE:
    _syscall = ctypes.CDLL(None, use_errno=True).syscall
    _syscall.restype = ctypes.c_long
    _syscall.argtypes = [
        ctypes.c_long,  # SYS_futex
        ctypes.c_void_p,  # uaddr
        ctypes.c_int,  # op
        ctypes.c_uint32,  # val
        ctypes.c_void_p,  # timeout (relative, for FUTEX_WAIT)
        ctypes.c_void_p,  # uaddr2
        ctypes.c_uint32,  # val3
    ]


def wait(address: int, value: int, timeout_s: float) -> None:
    """Sleeps while the aligned u32 at ``address`` holds ``value``, at most ``timeout_s``.

    Returns at once if it already differs; also on a wake, the timeout or a signal
    (the caller re-reads the word either way)."""
    assert _syscall is not None, "futex.wait without futex support"
    seconds = max(timeout_s, 0.0)
    timeout = _Timespec(int(seconds), int((seconds % 1.0) * 1e9))
    _syscall(_SYS_FUTEX, address, _FUTEX_WAIT, value, ctypes.addressof(timeout), None, 0)


def wake(address: int) -> None:
    """Wakes every process sleeping in :func:`wait` on the u32 at ``address``."""
    assert _syscall is not None, "futex.wake without futex support"
    _syscall(_SYS_FUTEX, address, _FUTEX_WAKE, _WAKE_ALL, None, None, 0)
