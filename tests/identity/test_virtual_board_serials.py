"""A virtual board started with ``sidra board serve`` is a board of its own.

Two boards served from one seed hold state of their own, so each answers its own serial
number (``EMU-<model>-<seed>-<8 random hex digits>``), over a real pty, a TCP port and a
BAR file; ``--serial`` gives the one a lab wants it to keep across restarts. (``emu://``
boards stay ``EMU-<model>-<seed>``: tests/test_drivers_local.py.)
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import ExitStack

import pytest
from cli_support import process, run_sidra

from sidra.drivers import open_board
from sidra.emulator.pcie.serve import memory_dir


def answered_serial(url: str) -> str:
    """The serial number the board at ``url`` answers (HELLO, or the PCIe identity)."""
    with open_board(url) as board:
        return board.info.serial_number


def test_two_boards_served_from_one_seed_answer_serial_numbers_of_their_own() -> None:
    """Two pty boards and two PCIe boards of seed 7, up at once: four serial numbers, each
    EMU-IDEAL-7 and a random part. One serial for two boards let a state store restore
    one's targets onto the other and list one's deployments as the other's."""
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(dir=memory_dir()))
        urls = [
            stack.enter_context(
                process("board", "serve", *link, "--preset", "ideal", "--seed", "7")
            )[0]  # fmt: skip
            for link in (
                ("--pty",),
                ("--pty",),
                ("--pcie-file", os.path.join(folder, "a")),
                ("--pcie-file", os.path.join(folder, "b")),
            )  # fmt: skip
        ]
        serials = [answered_serial(url) for url in urls]
    assert all(re.fullmatch(r"EMU-IDEAL-7-[0-9a-f]{8}", s) for s in serials), serials
    assert len(set(serials)) == 4, serials


def test_a_served_board_answers_the_serial_number_it_is_given() -> None:
    """--serial: the board answers it, on TCP and on PCIe, and says it when it starts."""
    with tempfile.TemporaryDirectory(dir=memory_dir()) as folder:
        bar = os.path.join(folder, "bar0")
        for link, serial in ((("--tcp", "127.0.0.1:0"), "LAB-VB-1"),
                             (("--pcie-file", bar), "LAB-VB-2 µ")):  # fmt: skip
            with process("board", "serve", *link, "--seed", "3", "--serial", serial) as (
                url, proc,
            ):  # fmt: skip
                assert answered_serial(url) == serial
                assert proc.stderr is not None
                assert f"({serial}, boot" in proc.stderr.readline()


@pytest.mark.parametrize(
    ("serial", "says"),
    [
        ("", "serial number '': blank, expected the board's own"),
        ("   ", "blank"),
        ("x" * 65, "got 65 bytes of UTF-8, expected 1 to 64"),
        ("µ" * 33, "got 66 bytes of UTF-8, expected 1 to 64"),  # the PCIe identity's 64 B
        ("LAB\t1", "got the control character '\\t', expected printable text"),
    ],
)
def test_a_serial_number_no_board_can_answer_is_refused(serial: str, says: str) -> None:
    result = run_sidra("board", "serve", "--pty", "--serial", serial, timeout=60)
    message = " ".join(result.stderr.replace("│", " ").split())  # the box unwrapped
    assert result.returncode == 2, result.stderr
    assert "'--serial'" in message and says in message, message
