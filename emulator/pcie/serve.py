"""Running the virtual PCIe board: in this process (the CLI) or as a child process (tests).

:func:`run_device` is the board's life: create and publish the BAR file, print
``pcie+file://PATH`` as the first stdout line, service the rings until stopped,
then remove the file (a stopped board is gone). :func:`serve_virtual_pcie_board`
starts it as a separate process (``python -m sidra.emulator.pcie``), as a real
board is a separate device: the host's polling never competes with it for the GIL.
Its BAR file goes in /dev/shm (:func:`memory_dir`): a BAR is memory, and a file
on a disk filesystem is written back by the kernel, which stalls doorbells.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO

from sidra.drivers.wire.device_times import NONE_DECLARED, CommandTimes
from sidra.emulator.config import BoardProfile
from sidra.emulator.pcie.device import PcieDevice
from sidra.emulator.pcie.faults import PcieFaults

__all__ = [
    "MEMORY_FILESYSTEMS",
    "VirtualPcieBoard",
    "filesystem_of",
    "memory_dir",
    "run_device",
    "serve_virtual_pcie_board",
]

log = logging.getLogger(__name__)

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "hugetlbfs"})
"""Filesystems whose files live in memory only: a BAR file there is never written back.

A BAR file on a disk filesystem is dirty memory the kernel writes back every few
seconds; each write to a page after that faults into the filesystem (ext4 journals
it), so a doorbell can stall for milliseconds and the disk sees every window."""
SHM_DIR = "/dev/shm"

START_TIMEOUT_S = 30.0
"""How long a child board may take to publish its BAR (a cold import on a slow CI core)."""


def filesystem_of(path: str) -> str:
    """The type of the filesystem holding ``path`` (its folder when it does not exist
    yet), from /proc/self/mounts; "" when that cannot be read."""
    where = os.path.realpath(path if os.path.isdir(path) else os.path.dirname(path) or ".")
    best, kind = "", ""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                point = fields[1].replace("\\040", " ")
                inside = where == point or where.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fields[2]
    except OSError:
        return ""
    return kind


def memory_dir() -> str | None:
    """/dev/shm when it is a writable memory filesystem, else None (the default temp
    folder): where a virtual board's BAR file belongs."""
    usable = os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK | os.X_OK)
    return SHM_DIR if usable and filesystem_of(SHM_DIR) in MEMORY_FILESYSTEMS else None


def run_device(
    path: str,
    profile: BoardProfile,
    seed: int,
    faults: PcieFaults | None,
    stop: threading.Event,
    out: IO[str],
    published: Callable[[PcieDevice], None] | None = None,
    slow: CommandTimes = NONE_DECLARED,
    declare_times: bool = True,
    serial_number: str | None = None,
) -> PcieDevice:
    """Creates the board at ``path``, announces its URL on ``out`` (then calls
    ``published`` with it) and serves until ``stop`` is set or the board is removed (a
    fault); the file is removed after. ``slow``, ``declare_times``, ``serial_number``: as
    :class:`~sidra.emulator.pcie.device.PcieDevice` takes them."""
    kind = filesystem_of(path)
    if kind and kind not in MEMORY_FILESYSTEMS:
        log.warning(
            "the BAR file %s is on %s, a disk filesystem: the kernel writes it back and "
            "doorbells can stall for milliseconds; put it in %s (a memory filesystem)",
            path, kind, SHM_DIR,
        )  # fmt: skip
    device = PcieDevice(
        path, profile, seed, faults, slow=slow, declare_times=declare_times,
        serial_number=serial_number,
    )  # fmt: skip
    try:
        device.publish()
        out.write(f"pcie+file://{os.path.abspath(path)}\n")
        out.flush()
        if published is not None:
            published(device)
        device.serve(stop)
    finally:
        if not device.removed and device.owns_path():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        device.close()
    return device


class VirtualPcieBoard:
    """A virtual PCIe board in a child process; :attr:`url` is what ``open_board`` takes."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process, self.url = process, url
        self.path = url.removeprefix("pcie+file://")

    def stop(self) -> None:
        """SIGTERM: the board stops cleanly and removes its file."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the device dies mid-whatever; its file stays, nobody services it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@contextlib.contextmanager
def serve_virtual_pcie_board(
    profile: BoardProfile,
    seed: int = 0,
    path: str | None = None,
    faults: str = "",
    slow: CommandTimes = NONE_DECLARED,
    declare_times: bool = True,
    serial_number: str | None = None,
) -> Iterator[VirtualPcieBoard]:
    """A virtual PCIe board in a separate process, its BAR in ``path`` (default: a
    fresh temporary file); ``slow``, ``declare_times`` and ``serial_number`` as
    :class:`~sidra.emulator.pcie.device.PcieDevice` takes them::

        with serve_virtual_pcie_board(preset("ideal"), seed=1) as board:
            driver = open_board(board.url)
    """
    with tempfile.TemporaryDirectory(prefix="sidra-pcie-", dir=memory_dir()) as tmp:
        path = path or os.path.join(tmp, "bar0")
        profile_file = os.path.join(tmp, "profile.json")
        with open(profile_file, "w", encoding="utf-8") as f:
            f.write(profile.model_dump_json())
        argv = [sys.executable, "-m", "sidra.emulator.pcie", path, "--profile", profile_file]
        argv += ["--seed", str(seed)] + (["--faults", faults] if faults else [])
        if serial_number is not None:
            argv += ["--serial", serial_number]
        if slow != NONE_DECLARED:
            argv += ["--program-cell-ns", str(slow.program_cell_ns)]
            argv += ["--command-us", str(slow.command_us)]
        if not declare_times:
            argv.append("--no-declare-times")
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        board = VirtualPcieBoard(process, _first_line(process, path))
        try:
            yield board
        finally:
            board.stop()
            if process.stdout is not None:
                process.stdout.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _first_line(process: subprocess.Popen[str], path: str) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()))  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT_S)
    if not lines or not lines[0].startswith("pcie+file://"):
        process.kill()
        process.wait()
        process.stdout.close()
        raise RuntimeError(
            f"the virtual PCIe board for {path} did not start (exit {process.poll()})"
        )
    return lines[0].strip()
