"""Every fault the serial and TCP virtual boards inject says so on the console, as it fires.

``sidra board serve --pty|--tcp --faults SPEC`` in its own process, a real serial
driver on its pty or socket: one timestamped line per fault, naming the fault, the
frame's command (message id and request id) and, for the counted faults, which are
still to come. In process, the fault shim's line count matches what it did, fault by
fault, under every rate fault at once.
"""

from __future__ import annotations

import logging
import re
from contextlib import suppress

import numpy as np
import pytest
from cli_support import board_console

from sidra.drivers import BoardReset, open_board
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FAULT_LOGGER, FaultConfig

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
"""The time a console line starts with, as ``sidra serve`` prints its own."""
COMMAND = r"[A-Z_]+ \(msg 0x[0-9a-f]{2}\) request \d+"
"""A frame's command as a fault line names it: ``MVM (msg 0x22) request 42``."""
V = np.zeros((1, 32), np.float32)


@pytest.mark.parametrize("link", [("--pty",), ("--tcp", "127.0.0.1:0")])
def test_each_counted_fault_prints_one_timestamped_line_as_it_fires(link: tuple[str, ...]) -> None:
    """reset_after=5 and unplug_after=9: a line for each, on the frame it hit, its
    command named, and the counted faults still to come."""
    faults = "reset_after=5,unplug_after=9,unplug_s=0.02"
    with (
        board_console(*link, "--preset", "ideal", "--faults", faults) as (url, lines),
        open_board(f"{url}?timeout=0.05&retries=8") as board,
    ):
        for _ in range(8):
            with suppress(BoardReset):  # the first call after the power cycle says so, once
                board.mvm(0, np.zeros((1, 256), np.float32))
    said = "".join(lines)
    assert re.search(rf"^{TIME} INFO sidra\.cli\.board: virtual board SIDRA-IDEAL .*, faults "
                     + re.escape(faults) + "$", said, re.M), said  # fmt: skip
    fired = [line for line in lines if "sidra.emulator.faults" in line]
    assert len(fired) == 2, said
    assert re.fullmatch(
        rf"{TIME} INFO sidra\.emulator\.faults: fault reset_after fired on frame 5 to the "
        rf"board, {COMMAND}: the board power-cycled, the frame lost with its state; counted "
        r"faults left: unplug_after at frame 9\n",
        fired[0],
    ), fired[0]
    assert re.fullmatch(
        rf"{TIME} INFO sidra\.emulator\.faults: fault unplug_after fired on frame 9 to the "
        rf"board, {COMMAND}: the board unplugged for 0\.02 s; counted faults left: none\n",
        fired[1],
    ), fired[1]


def test_every_rate_fault_fired_is_one_line_naming_its_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bit flips, lost bytes, lost, delayed and duplicated frames both ways: as many
    lines of each fault as the shim made of it, numbered 1, 2, 3 ..., each naming the
    frame it hit (a command and its request id, an answer to one, a NAK, a BOOT notice,
    a flush's lone 0x00 or what damage left undecodable)."""
    caplog.set_level(logging.INFO, logger=FAULT_LOGGER)
    profile = preset("ideal").model_copy(update={"geometry": Geometry(tiles=1, rows=32, cols=16)})
    faults = FaultConfig(ber=1e-4, byte_drop=1e-4, drop=0.02, dup=0.02, delay=0.02,
                         delay_s=0.001, seed=3)  # fmt: skip
    with serve_virtual_board(profile, 1, faults=faults) as server:
        with open_board(f"{server.url}?timeout=0.05&retries=8&max_payload=256") as board:
            board.program(0, np.full((32, 16), 5.0, np.float32))
            for _ in range(300):
                board.mvm(0, V)
        shim = server.shim
        assert shim is not None
    frame = (
        rf"(?:{COMMAND} to the (?:board|host)|the answer to {COMMAND}|the board's NAK|"
        r"the board's BOOT notice|a lone 0x00 to the (?:board|host)|"
        r"an undecodable frame of \d+ bytes to the (?:board|host))"
    )
    line = re.compile(rf"fault (\w+) fired on {frame}: (.+) \((\d+) so far\)")
    seen: dict[str, list[int]] = {}
    for record in caplog.records:
        if record.name == FAULT_LOGGER:
            match = line.fullmatch(record.getMessage())
            assert match, record.getMessage()
            seen.setdefault(match[1], []).append(int(match[3]))
    for name, numbers in seen.items():
        assert numbers == list(range(1, len(numbers) + 1)), name
    made = {"drop": shim.counts["dropped"], "dup": shim.counts["duplicated"],
            "delay": shim.counts["delayed"]}  # fmt: skip
    assert all(made.values()) and shim.fired["ber"] and shim.fired["byte_drop"], shim.fired
    assert {name: len(numbers) for name, numbers in seen.items()} == {
        "ber": shim.fired["ber"], "byte_drop": shim.fired["byte_drop"], **made,
    }  # fmt: skip
