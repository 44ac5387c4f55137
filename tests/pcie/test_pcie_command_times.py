"""A PCIe board slower than the host's reference times declares them (register map 1.3,
PROGRAM_CELL_NS .. COMMAND_US), as a serial board does in HELLO: the host then waits for
it. Undeclared, its Program was a DeadlineExceeded while it was still at work."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sidra.drivers import DeadlineExceeded, open_board
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import FileBar
from sidra.drivers.pcie.driver import PcieDriver
from sidra.drivers.pcie.queues import declared_times
from sidra.drivers.types import Region
from sidra.drivers.wire.device_times import NONE_DECLARED, REFERENCE_TIMES, CommandTimes
from sidra.emulator import preset
from sidra.emulator.pcie import serve_virtual_pcie_board

SLOW = CommandTimes(program_cell_ns=300_000, command_us=2_000)
"""0.3 ms a cell: a 64 x 64 Program takes 1.2 s, 15 times the host's own 20 µs a cell."""
MARGIN_S = 0.5
"""The URL's timeout: the margin on each command's allowed time, s."""


def test_a_slow_board_declares_its_times_and_is_waited_for() -> None:
    g = np.random.default_rng(2).uniform(2.0, 38.0, (64, 64)).astype(np.float32)
    with (
        serve_virtual_pcie_board(preset("ideal"), 1, slow=SLOW) as served,
        open_board(f"{served.url}?timeout={MARGIN_S}") as board,
    ):
        assert isinstance(board, PcieDriver)
        assert board.device_times == REFERENCE_TIMES.declared(SLOW)
        assert board.device_times.program_cell_s == pytest.approx(300e-6)
        # A pass's COMMAND_US is allowed once a command, not once a vector of its batch.
        from sidra.drivers.requests import MVMRequest

        path = board._pass_paths[MVMRequest]
        assert path.device_s_fixed == pytest.approx(2e-3)
        assert path.device_s_per_vector == pytest.approx(board.device_times.pass_s(board.info))
        start = time.monotonic()
        assert board.program(0, g).cells_written == g.size
        assert time.monotonic() - start >= 1.2  # the board did take that long
        read = board.read_conductance(0, Region(0, 0, 64, 64)).conductances
        assert np.array_equal(read, g)


def test_undeclared_the_same_board_is_given_up_on() -> None:
    g = np.random.default_rng(2).uniform(2.0, 38.0, (64, 64)).astype(np.float32)
    with (
        serve_virtual_pcie_board(preset("ideal"), 1, slow=SLOW, declare_times=False) as served,
        open_board(f"{served.url}?timeout={MARGIN_S}") as board,
    ):
        assert isinstance(board, PcieDriver)
        assert board.device_times == REFERENCE_TIMES
        with pytest.raises(DeadlineExceeded):
            board.program(0, g)


def test_a_board_of_an_earlier_map_declares_nothing(tmp_path: object) -> None:
    """A board of map 1.2 had no registers there: whatever they read, nothing is taken
    from them."""
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "bar0"
    with open(path, "wb") as f:
        f.truncate(r.BAR_SIZE)
    bar = FileBar(str(path))
    try:
        bar.write32(r.OFFSET["PROGRAM_CELL_NS"], 300_000)
        bar.write32(r.OFFSET["COMMAND_US"], 7)
        bar.write32(r.OFFSET["VERSION"], 0x0001_0002)
        assert declared_times(bar) == NONE_DECLARED
        bar.write32(r.OFFSET["VERSION"], r.VERSION)
        assert declared_times(bar) == CommandTimes(program_cell_ns=300_000, command_us=7)
    finally:
        bar.close()
