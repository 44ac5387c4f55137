"""Every fault the virtual PCIe board injects says so on its console, as it fires.

``sidra board serve --pcie-file PATH --faults SPEC`` in its own process, a real driver
on its BAR file: one timestamped line per fault, naming the fault, the command (its
count since the board started, opcode and command id) and the counted faults still to
come; the reverse fault, each burst it answered backwards.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import numpy as np
from cli_support import board_console, fault_lines
from pcie_support import FAST_S, G

from sidra.drivers.errors import BoardFault, BoardReset, BoardUnavailable, DeadlineExceeded
from sidra.drivers.pcie.bar import FileBar
from sidra.drivers.pcie.driver import PcieDriver
from sidra.drivers.requests import MVMRequest
from sidra.emulator.pcie.faults import PcieFaults
from sidra.emulator.pcie.serve import memory_dir

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
"""The time a console line starts with, as ``sidra serve`` prints its own."""
COMMAND = r"[A-Z_]+ \(opcode 0x[0-9a-f]{2}, cid \d+\)"
V = np.full((1, 256), 0.125, np.float32)


@contextmanager
def pcie_console(faults: str, removed: bool = False) -> Iterator[tuple[str, list[str]]]:
    """``sidra board serve --pcie-file`` with ``faults``: its BAR file's path, and its
    console's lines (cli_support.board_console; ``removed``: the block removed the board,
    which then stops by itself)."""
    with tempfile.TemporaryDirectory(dir=memory_dir()) as folder:
        path = os.path.join(folder, "bar0")
        args = ("--pcie-file", path, "--preset", "ideal", "--faults", faults)
        with board_console(*args, stops_itself=removed) as (url, lines):
            assert url == f"pcie+file://{path}"
            yield path, lines


def test_each_counted_fault_prints_one_timestamped_line_as_it_fires() -> None:
    """hang=3, error=4, reset_after=6, remove_after=8 (opening the board is command 1):
    four lines, each on its command, each saying which faults are still to come."""
    with pcie_console("hang=3,error=4,reset_after=6,remove_after=8", removed=True) as (
        path, lines,
    ):  # fmt: skip
        driver = PcieDriver(lambda: FileBar(path), FAST_S)  # command 1: GET_PROFILE
        with driver:
            driver.program(0, G[:16, :16])  # command 2
            for expected in (DeadlineExceeded, BoardFault):  # commands 3 and 4
                with suppress(expected):
                    driver.mvm(0, V)
            driver.mvm(0, V)  # command 5
            for _ in range(10):  # 6 power-cycles the board, 9 finds it removed
                try:
                    driver.mvm(0, V)
                except BoardUnavailable:
                    break
                except BoardReset:
                    pass
    said = "".join(lines)
    fired = fault_lines(lines)
    head = rf"{TIME} INFO sidra\.emulator\.faults: fault"
    expected = [
        rf"{head} hang fired on command 3, MVM \(opcode 0x22, cid \d+\): taken off the ring, "
        r"never completed; counted faults left: error at command 4, reset_after at command "
        r"6, remove_after 8 \(at command 9\)",
        rf"{head} error fired on command 4, MVM \(opcode 0x22, cid \d+\): answered INTERNAL; "
        r"counted faults left: reset_after at command 6, remove_after 8 \(at command 9\)",
        rf"{head} reset_after fired on command 6, MVM \(opcode 0x22, cid \d+\): the board "
        r"power-cycled \(boot count \d+\), the command lost; counted faults left: "
        r"remove_after 8 \(at command 9\)",
        rf"{head} remove_after fired on command 9, {COMMAND}: the board removed \(registers "
        rf"read all ones, {re.escape(path)} gone\); counted faults left: none",
    ]
    assert len(fired) == len(expected), said
    for line, pattern in zip(fired, expected, strict=True):
        assert re.fullmatch(pattern, line), line
    assert "virtual board removed after 8 commands (--faults remove_after)" in said


def test_each_burst_answered_backwards_prints_its_line() -> None:
    """reverse=1 and eight MVMs in flight at once: a line for each burst of two or more the
    board answered backwards, naming its commands, numbered 1, 2, ..."""
    with (
        pcie_console("reverse=1") as (path, lines),
        PcieDriver(lambda: FileBar(path), FAST_S) as driver,
    ):
        driver.program(0, G)
        results = driver.run_many([MVMRequest(0, np.tile(V, (1 + i, 1))) for i in range(8)])
    assert len(results) == 8
    fired = fault_lines(lines)
    assert fired, "".join(lines)
    line = re.compile(
        rf"{TIME} INFO sidra\.emulator\.faults: fault reverse fired on commands (\d+) \.\. "
        rf"(\d+), ((?:{COMMAND}, )+{COMMAND}): completed in reverse order \((\d+) so far\)"
    )
    for number, text in enumerate(fired, 1):
        match = line.fullmatch(text)
        assert match, text
        first, last, listed = int(match[1]), int(match[2]), match[3].count("cid")
        assert last - first + 1 == listed >= 2 and int(match[4]) == number, text


def test_the_counted_faults_still_to_come_in_the_order_they_fire() -> None:
    faults = PcieFaults(hang=7, error=2, reset_after=5, remove_after=3)
    assert faults.still_to_come(0) == [
        "error at command 2", "remove_after 3 (at command 4)", "reset_after at command 5",
        "hang at command 7",
    ]  # fmt: skip
    assert faults.still_to_come(4) == ["reset_after at command 5", "hang at command 7"]
    assert faults.still_to_come(7) == [] and PcieFaults().still_to_come(0) == []


def test_a_board_without_faults_prints_no_fault_line() -> None:
    with (
        pcie_console("reverse=0") as (path, lines),
        PcieDriver(lambda: FileBar(path), FAST_S) as driver,
    ):
        driver.mvm(0, V)
    assert fault_lines(lines) == [] and "virtual board SIDRA-IDEAL" in "".join(lines)
