"""The SIDRA board emulator: the embedded default board and what CI runs on.

It sits at the lowest layer, behind the same driver interface as a physical
board (``emu://`` URLs), with its behaviour described by versioned profiles.
"""

from sidra.emulator.board import EmulatedBoard
from sidra.emulator.config import SCHEMA_VERSION, BoardProfile, load_profile
from sidra.emulator.presets import DEFAULT_PRESET, PRESETS, preset

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "SCHEMA_VERSION",
    "BoardProfile",
    "EmulatedBoard",
    "load_profile",
    "preset",
]
