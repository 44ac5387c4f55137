"""What a lab engineer can do about a serial port that would not open, said with the error.

"Permission denied" and "No such file or directory" are the two errors everyone who
brings up a USB-serial board meets; the operating system's words do not say that the
device's group is the fix, or where the board went."""

from __future__ import annotations

import errno
import grp
import os
from urllib.parse import urlsplit

__all__ = ["open_hint"]


def open_hint(name: str, exc: BaseException) -> str:
    """A clause to append to the error of opening the port ``name`` (a ``serial://``
    URL or a device path): "" when there is nothing to add."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT:
        return (
            "; no such device now: `sidra board scan` lists the boards on this machine's "
            "serial ports (a board that re-enumerates is found by serial://?serial_number=)"
        )
    if code in (errno.EACCES, errno.EPERM):
        group = _group_of(_device(name)) or "dialout"
        return (
            f"; this user may not open it: add it to the device's group, {group} "
            f"(sudo usermod -aG {group} $USER, then log in again), or give the board a udev "
            "rule (docs/operations.md, Board identity)"
        )
    if code in (errno.EAGAIN, errno.EBUSY):
        return "; another process holds the port (a sidra serve, a terminal program?)"
    return ""


def _device(name: str) -> str:
    return urlsplit(name).path if "://" in name else name


def _group_of(path: str) -> str | None:
    try:
        return grp.getgrgid(os.stat(path).st_gid).gr_name
    except (OSError, KeyError):  # gone since, or a group without a name
        return None
