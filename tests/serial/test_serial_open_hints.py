"""A serial port that will not open says what to do about it (docs/operations.md, Board
identity): a missing device names ``sidra board scan``, a refused one the group to join,
a held one the other process."""

from __future__ import annotations

import errno
import grp
import os
from pathlib import Path

import pytest

from sidra.drivers import BoardUnavailable, open_board
from sidra.drivers.serial.port_hints import open_hint


def test_a_device_that_is_not_there_names_the_scan(tmp_path: Path) -> None:
    missing = tmp_path / "ttyUSB9"
    with pytest.raises(BoardUnavailable) as gone:
        open_board(f"serial://{missing}?timeout=0.2").get_board_info()
    said = str(gone.value)
    assert f"cannot open serial://{missing}" in said and "No such file or directory" in said
    assert "`sidra board scan` lists the boards on this machine's serial ports" in said


def test_a_refused_device_names_the_group_that_owns_it(tmp_path: Path) -> None:
    """Run as root here, a refusal cannot be provoked: the hint is given the error the
    operating system raises, for a real file whose group it reads."""
    device = tmp_path / "ttyACM0"
    device.touch()
    group = grp.getgrgid(os.stat(device).st_gid).gr_name
    hint = open_hint(f"serial://{device}", PermissionError(errno.EACCES, "Permission denied"))
    assert f"add it to the device's group, {group} (sudo usermod -aG {group} $USER" in hint
    gone = open_hint(str(tmp_path / "nothing"), PermissionError(errno.EACCES, "denied"))
    assert "group, dialout" in gone  # its group unknown: the usual one
    assert "another process holds the port" in open_hint(str(device), OSError(errno.EAGAIN, ""))
    assert open_hint(str(device), OSError(errno.EIO, "I/O error")) == ""
