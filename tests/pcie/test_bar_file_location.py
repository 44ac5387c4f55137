"""Where a virtual board's BAR file lives: in memory, never on a disk file system."""

from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path

import pytest

from sidra.emulator import preset
from sidra.emulator.pcie import run_device, serve_virtual_pcie_board
from sidra.emulator.pcie.serve import MEMORY_FILESYSTEMS, filesystem_of, memory_dir


def _mounts() -> dict[str, str]:
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return {line.split()[1]: line.split()[2] for line in f if len(line.split()) >= 3}


def test_filesystem_of_names_the_mount_a_path_lies_on(tmp_path: Path) -> None:
    assert filesystem_of("/proc/self") == "proc"
    assert filesystem_of("/") == _mounts()["/"]
    # A file that does not exist yet is placed by its folder.
    assert filesystem_of(str(tmp_path / "bar0")) == filesystem_of(str(tmp_path))


def test_boards_the_tests_start_live_in_memory() -> None:
    where = memory_dir()
    if where is None:
        pytest.skip("no writable memory file system at /dev/shm on this machine")
    assert filesystem_of(where) in MEMORY_FILESYSTEMS
    with serve_virtual_pcie_board(preset("ideal"), seed=1) as board:
        assert os.path.dirname(os.path.dirname(board.path)) == where
        assert filesystem_of(board.path) in MEMORY_FILESYSTEMS


def test_a_bar_file_on_a_disk_file_system_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kind = filesystem_of(str(tmp_path))
    if kind in MEMORY_FILESYSTEMS:
        pytest.skip(f"the temporary folder is on {kind}, a memory file system")
    stop = threading.Event()
    stop.set()  # the board starts, publishes its file and stops at once
    with (
        caplog.at_level(logging.WARNING, logger="sidra.emulator.pcie.serve"),
        open(os.devnull, "w", encoding="utf-8") as out,
    ):
        run_device(str(tmp_path / "bar0"), preset("ideal"), 1, None, stop, out)
    assert f"is on {kind}, a disk filesystem" in caplog.text
    assert "/dev/shm" in caplog.text
    assert not (tmp_path / "bar0").exists()  # a stopped board removes its file


def test_a_second_board_on_a_served_path_is_refused_and_a_dead_board_s_file_is_taken() -> None:
    """It replaced the running board under its host, and removed the file when it
    stopped; a file a board left when it was killed holds no lock and is taken over."""
    import errno

    import numpy as np

    from sidra.drivers import open_board

    volts = np.full((1, 256), 0.1, np.float32)
    with serve_virtual_pcie_board(preset("ideal"), seed=1) as first:
        with open_board(first.url) as host:
            before = host.instance_id
            second = io.StringIO()
            with pytest.raises(OSError) as caught:
                run_device(first.path, preset("ideal"), 2, None, threading.Event(), second)
            assert caught.value.errno == errno.EBUSY
            assert "a running virtual board serves this BAR file" in str(caught.value)
            assert second.getvalue() == "" and os.path.exists(first.path)
            host.mvm(0, volts)  # the first board, untouched
            assert host.instance_id == before
            assert not [p for p in os.listdir(os.path.dirname(first.path)) if p.endswith("tmp")]
        first.kill()  # SIGKILL: its file stays behind, unlocked
        inode = os.stat(first.path).st_ino
        stop, third = threading.Event(), io.StringIO()
        runner = threading.Thread(
            target=run_device, args=(first.path, preset("ideal"), 3, None, stop, third)
        )
        runner.start()
        try:
            for _ in range(500):
                if third.getvalue().startswith("pcie+file://"):
                    break
                threading.Event().wait(0.01)
            assert third.getvalue().startswith("pcie+file://")
            assert os.stat(first.path).st_ino != inode
        finally:
            stop.set()
            runner.join(10)
        assert not os.path.exists(first.path)  # its own file, removed as it stopped


def test_a_board_never_takes_a_path_that_holds_something_else(tmp_path: Path) -> None:
    """It replaces its path and removes it when it stops: a user's file, a folder or a
    device node at the path would be lost, so each is refused (EEXIST) and left as it
    was; an empty file (mktemp's) holds nothing to lose and is taken."""
    import errno

    notes = tmp_path / "notes.txt"
    notes.write_text("precious\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    for path, says in [
        (notes, "a file of 9 bytes that is not a virtual board's BAR file"),
        (folder, "a folder, not a BAR file"),
        (Path("/dev/null"), "a device node, not a BAR file"),
    ]:
        with pytest.raises(OSError) as caught:
            run_device(str(path), preset("ideal"), 1, None, threading.Event(), io.StringIO())
        assert caught.value.errno == errno.EEXIST and says in str(caught.value)
        assert "give a path that does not exist yet" in str(caught.value)
    assert notes.read_text(encoding="utf-8") == "precious\n" and folder.is_dir()
    assert os.path.exists("/dev/null")
    assert sorted(os.listdir(tmp_path)) == ["folder", "notes.txt"]  # no tmp file left
    empty = tmp_path / "empty.bar"
    empty.touch()
    stop, out = threading.Event(), io.StringIO()
    stop.set()  # published, then stopped at once
    run_device(str(empty), preset("ideal"), 1, None, stop, out)
    assert out.getvalue() == f"pcie+file://{empty}\n" and not empty.exists()
