"""``sidra board``: its commands, each loaded when a command line names it.

Serving an emulated board, characterizing and comparing need the emulator and the
characterization code (sidra.cli.board); finding, probing, reading, programming and
driving a board by URL need only the drivers (sidra.cli.board_scan, board_probe,
board_cells), and a lab's everyday ``sidra board probe`` starts without the rest.
"""

from __future__ import annotations

from sidra.cli.commands import LAZY_COMMANDS, Loader, command_loader, lazy_app

__all__ = ["BOARD_COMMANDS", "board_app"]

BOARD_COMMANDS: dict[str, Loader] = {
    "serve": command_loader(
        "sidra.cli.board", "serve",
        "Serve an emulated board over the SIDRA wire protocol or a PCIe BAR until interrupted."),
    "probe": command_loader(
        "sidra.cli.board_probe", "probe_command",
        "Print a board's identification, capabilities and link state (exit 1 if unreachable)."),
    "scan": command_loader(
        "sidra.cli.board_scan", "scan",
        "Find the SIDRA boards on this machine's serial ports and PCI bus, each with its URL."),
    "read": command_loader(
        "sidra.cli.board_cells", "read_cells",
        "Read a tile's conductances (ReadConductance) and summarise them, µS."),
    "program": command_loader(
        "sidra.cli.board_cells", "program_cells",
        "Write-verify target conductances into a tile (Program), from a file or one value."),
    "mvm": command_loader(
        "sidra.cli.board_cells", "mvm_cells",
        "Drive a tile with input voltages (MVM; TransposeMVM with --transpose)."),
    "wear": command_loader(
        "sidra.cli.board_cells", "wear_cells",
        "How often a tile's cells were written (ReadWriteCounts), against their budget."),
    "calibrate": command_loader(
        "sidra.cli.board_cells", "calibrate_cells",
        "Calibrate a tile against drift (Calibrate): the output gain the board now applies."),
    "clock": command_loader(
        "sidra.cli.board_cells", "clock",
        "A board's clock and running totals; --advance-s moves an emulated board's clock."),
    "characterize": command_loader(
        "sidra.cli.board", "characterize_board",
        "Measure a board through its operations and write its emulator profile (its twin)."),
    "compare": command_loader(
        "sidra.cli.board", "compare_board",
        "How far a board's outputs are from its twin's (emu://?profile=PROFILE), per column."),
}  # fmt: skip
"""The commands of ``sidra board``, in the order help lists them."""


board_app = lazy_app(
    BOARD_COMMANDS,
    LAZY_COMMANDS["board"].summary,  # what `sidra --help` says of the group, once
)
