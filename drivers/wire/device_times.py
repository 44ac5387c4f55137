"""How long a board may take over a command before it answers (``T_device``,
docs/wire-protocol.md §4.5): the reference host's figures, raised to what the board
declares in its HELLO (§3.1, the command-times block) when that is longer.

The reference figures are generous bounds for the emulator on a slow CI core; a board's
firmware on a small microcontroller may need far longer (a write-verify loop of a
millisecond a cell). A board that took longer than the host allows, undeclared, had its
commands sent again and the link given up while it was still at work.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidra.drivers.types import BoardInfo

__all__ = [
    "CALIBRATE_PASSES",
    "NONE_DECLARED",
    "REFERENCE_TIMES",
    "STAGE_S_PER_BYTE",
    "CommandTimes",
    "DeviceTimes",
]

STAGE_S_PER_BYTE = 5e-9
"""STAGE_VERIFY's CRC-32 over the staged bytes, s a byte (200 MB/s)."""

CALIBRATE_PASSES = 64
"""Analog passes a CALIBRATE is allowed: four times the 16 probe vectors it drives
(docs/wire-protocol.md §6), so a board that measures more carefully is not cut short."""


@dataclass(frozen=True, slots=True)
class CommandTimes:
    """A board's worst-case times, as its HELLO declares them (0: not declared)."""

    program_cell_ns: int = 0
    """Write-verify of one cell (PROGRAM_COMMIT), ns."""
    cell_ns: int = 0
    """Reading or rewriting one cell (READ_CONDUCTANCE, PERTURB, RESTORE, the writes of a
    PERTURBED_MVM), ns."""
    pass_vector_ns: int = 0
    """One input vector through a whole tile, conversions included (MVM, TRANSPOSE_MVM,
    each pass of a PERTURBED_MVM or a CALIBRATE), ns."""
    command_us: int = 0
    """Fixed time of any command, on top of the above (the firmware's own handling), µs."""


@dataclass(frozen=True, slots=True)
class DeviceTimes:
    """The times a host allows a board, s: the reference figures unless told longer."""

    program_cell_s: float = 20e-6
    """Write-verify of one cell (several pulse/verify rounds)."""
    cell_s: float = 1e-6
    """Reading or rewriting one cell."""
    pass_cell_s: float = 100e-9
    """One cell of one analog pass: a pass of one vector is allowed this × rows × cols."""
    pass_vector_s: float = 0.0
    """One vector's pass as the board declares it, when longer than the above."""
    command_s: float = 0.0
    """Fixed time of any command."""

    def pass_s(self, info: BoardInfo) -> float:
        """One input vector through a whole tile of ``info``'s board, s."""
        return max(self.pass_cell_s * info.rows * info.cols, self.pass_vector_s)

    def declared(self, times: CommandTimes) -> DeviceTimes:
        """These times, each raised to what ``times`` declares when that is longer."""
        return DeviceTimes(
            max(self.program_cell_s, 1e-9 * times.program_cell_ns),
            max(self.cell_s, 1e-9 * times.cell_ns),
            self.pass_cell_s,
            max(self.pass_vector_s, 1e-9 * times.pass_vector_ns),
            max(self.command_s, 1e-6 * times.command_us),
        )


NONE_DECLARED = CommandTimes()
"""A board's HELLO that declares no times (the host's figures apply)."""

REFERENCE_TIMES = DeviceTimes()
"""The reference host's figures, for a board that declares none (and for PCIe, whose
completion timeout is derived from the same figures)."""
