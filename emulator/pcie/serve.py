"""Running the virtual PCIe board: in this process (the CLI) or as a child process (tests).

:func:`run_device` is the board's life: create and publish the BAR file, print
``pcie+file://PATH`` as the first stdout line, service the rings until stopped,
then remove the file (a stopped board is gone). :func:`serve_virtual_pcie_board`
starts it as a separate process (``python -m sidra.emulator.pcie``), as a real
board is a separate device: the host's polling never competes with it for the GIL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

from sidra.emulator.config import BoardProfile
from sidra.emulator.pcie.device import PcieDevice
from sidra.emulator.pcie.faults import PcieFaults

__all__ = ["VirtualPcieBoard", "run_device", "serve_virtual_pcie_board"]

START_TIMEOUT_S = 30.0
"""How long a child board may take to publish its BAR (a cold import on a slow CI core)."""


def run_device(
    path: str,
    profile: BoardProfile,
    seed: int,
    faults: PcieFaults | None,
    stop: threading.Event,
    out: IO[str],
) -> PcieDevice:
    """Creates the board at ``path``, announces its URL on ``out`` and serves until
    ``stop`` is set or the board is removed (a fault); the file is removed after."""
    device = PcieDevice(path, profile, seed, faults)
    try:
        device.publish()
        out.write(f"pcie+file://{os.path.abspath(path)}\n")
        out.flush()
        device.serve(stop)
    finally:
        if not device.removed:
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
) -> Iterator[VirtualPcieBoard]:
    """A virtual PCIe board in a separate process, its BAR in ``path`` (default: a
    fresh temporary file)::

        with serve_virtual_pcie_board(preset("ideal"), seed=1) as board:
            driver = open_board(board.url)
    """
    with tempfile.TemporaryDirectory(prefix="sidra-pcie-") as tmp:
        path = path or os.path.join(tmp, "bar0")
        profile_file = os.path.join(tmp, "profile.json")
        with open(profile_file, "w", encoding="utf-8") as f:
            f.write(profile.model_dump_json())
        argv = [sys.executable, "-m", "sidra.emulator.pcie", path, "--profile", profile_file]
        argv += ["--seed", str(seed)] + (["--faults", faults] if faults else [])
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
