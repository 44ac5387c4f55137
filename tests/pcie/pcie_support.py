"""Shared pieces of the PCIe tests: a virtual board with faults, and a recording BAR.

:class:`RecordingBar` sits at the lowest seam (``RegisterIO``) around a real
mmapped :class:`FileBar`: the driver above it is the real one, and every access
it makes is checked against the register table as it happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from board_data import dyadic_g

from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import FileBar
from sidra.drivers.pcie.driver import PcieDriver
from sidra.drivers.types import Buffer
from sidra.emulator import preset
from sidra.emulator.pcie import VirtualPcieBoard, serve_virtual_pcie_board

PROFILE = preset("ideal")
FAST_S = 0.3
"""Margin on modeled time before a missing completion is late, s: short, tests wait it."""
G = dyadic_g(np.random.default_rng(4), (256, 256))
"""Conductances on a 1/16 µS grid: with dyadic voltages every sum is exact in float32, so
a batch cut into pieces gives the whole batch's currents bit for bit, in whatever order
BLAS adds them (which depends on the batch's size and the threads)."""

_WIDTH = {reg.offset: reg.bits for reg in r.REGISTERS}


@dataclass
class RecordingBar:
    """A FileBar that records every access and refuses any the rules forbid."""

    bar: FileBar
    log: list[tuple[str, int, int]] = field(default_factory=list)
    """(operation, offset, size or value) in the order the driver made them."""

    @property
    def name(self) -> str:
        return self.bar.name

    def _register(self, op: str, offset: int, bits: int) -> None:
        assert offset % (bits // 8) == 0, f"{op} at 0x{offset:x}: not {bits}-bit aligned"
        if offset < r.IDENTITY_OFFSET:  # the register page: exactly a register's width
            assert _WIDTH.get(offset) == bits, f"{op}{bits} at 0x{offset:x}: no such register"

    def read32(self, offset: int) -> int:
        self._register("read", offset, 32)
        value = self.bar.read32(offset)
        self.log.append(("read32", offset, value))
        return value

    def write32(self, offset: int, value: int) -> None:
        self._register("write", offset, 32)
        self.log.append(("write32", offset, value))
        self.bar.write32(offset, value)

    def read64(self, offset: int) -> int:
        self._register("read", offset, 64)
        self.log.append(("read64", offset, 0))
        return self.bar.read64(offset)

    def write64(self, offset: int, value: int) -> None:
        self._register("write", offset, 64)
        self.log.append(("write64", offset, value))
        self.bar.write64(offset, value)

    def read_bytes(self, offset: int, size: int) -> bytes:
        assert offset >= r.IDENTITY_OFFSET, f"bulk read over registers at 0x{offset:x}"
        self.log.append(("read_bytes", offset, size))
        return self.bar.read_bytes(offset, size)

    def read_array(self, offset: int, size: int) -> np.ndarray:
        assert offset >= r.IDENTITY_OFFSET, f"bulk read over registers at 0x{offset:x}"
        self.log.append(("read_bytes", offset, size))
        return self.bar.read_array(offset, size)

    def view(self, offset: int, size: int) -> memoryview:
        assert offset >= r.IDENTITY_OFFSET, f"bulk read over registers at 0x{offset:x}"
        self.log.append(("read_bytes", offset, size))
        return self.bar.view(offset, size)

    def write_bytes(self, offset: int, data: Buffer) -> None:
        assert offset >= r.IDENTITY_OFFSET, f"bulk write over registers at 0x{offset:x}"
        self.log.append(("write_bytes", offset, memoryview(data).nbytes))
        self.bar.write_bytes(offset, data)

    def present(self) -> bool:
        return self.bar.present()

    def host_memory_file(self, base: int) -> str | None:
        return self.bar.host_memory_file(base)

    @property
    def can_sleep(self) -> bool:
        return self.bar.can_sleep

    def wait_word(self, offset: int, value: int, timeout_s: float) -> None:
        self._register("wait on", offset, 32)
        self.bar.wait_word(offset, value, timeout_s)

    def kick(self, offset: int) -> None:
        self._register("kick", offset, 32)
        self.log.append(("kick", offset, 0))
        self.bar.kick(offset)

    def close(self) -> None:
        self.bar.close()


@contextmanager
def board(faults: str = "", seed: int = 1) -> Iterator[VirtualPcieBoard]:
    """The ideal virtual PCIe board in its own process, with ``faults``."""
    with serve_virtual_pcie_board(PROFILE, seed, faults=faults) as served:
        yield served


def driver(served: VirtualPcieBoard, timeout_s: float = FAST_S) -> PcieDriver:
    return PcieDriver(lambda: FileBar(served.path), timeout_s)


def recorded(served: VirtualPcieBoard) -> tuple[PcieDriver, list[RecordingBar]]:
    """A driver whose every BAR mapping is recorded (a re-map records in a new one)."""
    bars: list[RecordingBar] = []

    def opener() -> RecordingBar:
        bars.append(RecordingBar(FileBar(served.path)))
        return bars[-1]

    return PcieDriver(opener, FAST_S), bars
