"""``emu://`` transport: the bundled emulator, in process.

URL options (query string): ``preset`` (a name from ``sidra.emulator.PRESETS``,
default ``sidra-y1``), ``profile`` (path to a .toml/.json board profile, instead
of a preset) and ``seed`` (unsigned integer, default 0). Examples::

    emu://
    emu://?preset=ideal&seed=1
    emu://?profile=boards/lab-a.toml&seed=7
"""

from __future__ import annotations

from urllib.parse import SplitResult

from pydantic import ValidationError

from sidra.drivers.base import BoardDriver
from sidra.drivers.errors import InvalidArgument
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    CalibrationReport,
    FloatArray,
    MVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    WriteCounts,
)
from sidra.drivers.url import query_options
from sidra.emulator import DEFAULT_PRESET, PRESETS, EmulatedBoard, load_profile, preset
from sidra.emulator.config import BoardProfile

__all__ = ["EmulatorDriver"]


class EmulatorDriver(BoardDriver):
    """Drives an in-process :class:`EmulatedBoard`."""

    def __init__(self, profile: BoardProfile, seed: int = 0) -> None:
        self.board = EmulatedBoard(profile, seed)

    @classmethod
    def from_url(cls, url: SplitResult) -> EmulatorDriver:
        options = query_options(url, {"preset", "profile", "seed"})
        if "preset" in options and "profile" in options:
            raise InvalidArgument("url", url.geturl(), "either preset= or profile=, not both")
        seed_text = options.get("seed", "0")
        if not seed_text.isdigit() or int(seed_text) >= 2**64:
            raise InvalidArgument("url seed", seed_text, "an unsigned 64-bit integer")
        if "profile" in options:
            try:
                profile = load_profile(options["profile"])
            except (OSError, ValueError, ValidationError) as exc:
                raise InvalidArgument(
                    "url profile", options["profile"], f"a readable board profile ({exc})"
                ) from exc
        else:
            name = options.get("preset", DEFAULT_PRESET)
            if name not in PRESETS:
                raise InvalidArgument("url preset", name, f"one of {', '.join(sorted(PRESETS))}")
            profile = preset(name)
        return cls(profile, int(seed_text))

    @property
    def info(self) -> BoardInfo:
        return self.board.info

    def stats(self) -> BoardStats:
        return self.board.stats()

    def close(self) -> None:
        """Nothing to release: the emulator lives in this process."""

    def _program(self, tile: int, region: Region, targets: FloatArray) -> ProgramReport:
        return self.board.program(tile, region, targets)

    def _read_conductance(self, tile: int, region: Region) -> ReadResult:
        return self.board.read_conductance(tile, region)

    def _mvm(self, tile: int, voltages: FloatArray) -> MVMResult:
        return self.board.mvm(tile, voltages)

    def _transpose_mvm(self, tile: int, voltages: FloatArray) -> MVMResult:
        return self.board.transpose_mvm(tile, voltages)

    def _perturb(
        self, tile: int, region: Region, seed: int, amplitude_us: float, sign: int
    ) -> PerturbReport:
        return self.board.perturb(tile, region, seed, amplitude_us, sign)

    def _restore(self, tile: int, region: Region) -> PerturbReport:
        return self.board.restore(tile, region)

    def _read_write_counts(self, tile: int, region: Region) -> WriteCounts:
        return self.board.read_write_counts(tile, region)

    def _calibrate(self, tile: int) -> CalibrationReport:
        return self.board.calibrate(tile)

    def _advance_clock(self, seconds: float) -> float:
        return self.board.advance_clock(seconds)
