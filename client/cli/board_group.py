"""``sidra board``: its commands, each loaded when a command line names it.

Serving an emulated board, characterizing and comparing need the emulator and the
characterization code (sidra.cli.board); finding, probing, reading, programming and
driving a board by URL need only the drivers (sidra.cli.board_scan, board_probe,
board_cells), and a lab's everyday ``sidra board probe`` starts without the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidra.cli.commands import command_loader, lazy_app

__all__ = ["BOARD_COMMANDS", "board_app"]

BOARD_COMMANDS: dict[str, Callable[[], Any]] = {
    "serve": command_loader("sidra.cli.board", "serve"),
    "probe": command_loader("sidra.cli.board_probe", "probe_command"),
    "scan": command_loader("sidra.cli.board_scan", "scan"),
    "read": command_loader("sidra.cli.board_cells", "read_cells"),
    "program": command_loader("sidra.cli.board_cells", "program_cells"),
    "mvm": command_loader("sidra.cli.board_cells", "mvm_cells"),
    "wear": command_loader("sidra.cli.board_cells", "wear_cells"),
    "calibrate": command_loader("sidra.cli.board_cells", "calibrate_cells"),
    "clock": command_loader("sidra.cli.board_cells", "clock"),
    "characterize": command_loader("sidra.cli.board", "characterize_board"),
    "compare": command_loader("sidra.cli.board", "compare_board"),
}
"""The commands of ``sidra board``, in the order help lists them."""


board_app = lazy_app(
    BOARD_COMMANDS,
    "Boards by URL: serve an emulated one (serial, TCP, PCIe), find, probe; read, program, "
    "drive, wear, calibrate, clock; characterize, compare.",
)
