"""A virtual PCIe board in a thread of the test's own process (not a test module), for
tests that change how its device behaves at the lowest layer (a monkeypatch reaches a
thread, not the separate process ``serve_virtual_pcie_board`` starts)."""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sidra.drivers import open_board
from sidra.drivers.pcie.driver import PcieDriver
from sidra.emulator import preset
from sidra.emulator.pcie import run_device
from sidra.emulator.pcie.serve import memory_dir


@contextmanager
def pcie_board_in_thread(seed: int = 3) -> Iterator[tuple[PcieDriver, threading.Thread]]:
    """The ideal virtual PCIe board served by a thread, a driver open on it, and the
    thread (alive while the board serves)."""
    with tempfile.TemporaryDirectory(dir=memory_dir()) as folder:
        path, stop, out = os.path.join(folder, "bar0"), threading.Event(), io.StringIO()
        device = threading.Thread(
            target=run_device, args=(path, preset("ideal"), seed, None, stop, out), daemon=True
        )
        device.start()
        try:
            while not out.getvalue():  # the URL is written once the board is published
                assert device.is_alive(), "the virtual PCIe board did not start"
                time.sleep(0.01)
            board = open_board(out.getvalue().strip())
            assert isinstance(board, PcieDriver)
            with board:
                yield board, device
        finally:
            stop.set()
            device.join(timeout=10)
