"""``emu://`` transport: the bundled emulator, in process.

URL options (query string): ``preset`` (a name from ``sidra.emulator.PRESETS``,
default ``sidra-y1``), ``profile`` (path to a .toml/.json board profile, instead
of a preset) and ``seed`` (unsigned integer, default 0). Examples::

    emu://
    emu://?preset=ideal&seed=1
    emu://?profile=boards/lab-a.toml&seed=7
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from sidra.drivers.base import BoardDriver, run_instance_id
from sidra.drivers.errors import BoardUnavailable, InvalidArgument
from sidra.drivers.requests import (
    AdvanceClockRequest,
    CalibrateRequest,
    GetBoardInfoRequest,
    MVMRequest,
    PerturbedMVMRequest,
    PerturbMode,
    PerturbRequest,
    ProgramRequest,
    ReadConductanceRequest,
    ReadWriteCountsRequest,
    Request,
    TransposeMVMRequest,
)
from sidra.drivers.types import BoardDescription, BoardInfo, ClockReading, Region
from sidra.drivers.url import query_options
from sidra.emulator import DEFAULT_PRESET, PRESETS, EmulatedBoard, load_profile, preset
from sidra.emulator.config import BoardProfile

__all__ = ["EmulatorDriver"]


class EmulatorDriver(BoardDriver):
    """Drives an in-process :class:`EmulatedBoard`.

    Each driver is a board instance of its own (:attr:`instance_id`, random): two
    drivers with the same seed, in one process or two, hold separate state.
    """

    def __init__(
        self, profile: BoardProfile, seed: int = 0, serial_number: str | None = None
    ) -> None:
        """``serial_number``: as :class:`EmulatedBoard` takes it (None: ``EMU-<model>-<seed>``)."""
        self.board = EmulatedBoard(profile, seed, serial_number)
        self._instance_id = run_instance_id(self.board.info.serial_number)
        self._closed = False

    @classmethod
    def check_url(cls, url: SplitResult) -> None:
        """Refuses (InvalidArgument) a URL :meth:`from_url` would refuse, making no board."""
        cls._parsed(url)

    @classmethod
    def from_url(cls, url: SplitResult) -> EmulatorDriver:
        profile, seed = cls._parsed(url)
        return cls(profile, seed)

    @staticmethod
    def _parsed(url: SplitResult) -> tuple[BoardProfile, int]:
        """The URL's board profile (a preset or a profile file) and seed."""
        if url.netloc or url.path not in ("", "/"):
            # emu://sidra-y1 would otherwise open the default preset without a word.
            raise InvalidArgument(
                "url", url.geturl(), "emu:// with its options in the query and no host or "
                "path, e.g. emu://?preset=sidra-y1&seed=3",
            )  # fmt: skip
        options = query_options(url, {"preset", "profile", "seed"})
        if "preset" in options and "profile" in options:
            raise InvalidArgument("url", url.geturl(), "either preset= or profile=, not both")
        seed_text = options.get("seed", "0")
        if not seed_text.isdecimal() or int(seed_text) >= 2**64:
            raise InvalidArgument("url seed", seed_text, "an unsigned 64-bit integer")
        if "profile" in options:
            try:
                profile = load_profile(options["profile"])
            except (OSError, ValueError) as exc:  # parse_profile says what is wrong
                raise InvalidArgument(
                    "url profile", options["profile"], f"a readable board profile ({exc})"
                ) from exc
        else:
            name = options.get("preset", DEFAULT_PRESET)
            if name not in PRESETS:
                raise InvalidArgument("url preset", name, f"one of {', '.join(sorted(PRESETS))}")
            profile = preset(name)
        return profile, int(seed_text)

    @property
    def info(self) -> BoardInfo:
        return self.board.info

    def close(self) -> None:
        """The emulator lives in this process and holds nothing to release, but a call
        after it is refused as on every other board (BoardUnavailable)."""
        self._closed = True

    def _handle(self, request: Request) -> Any:
        if self._closed:
            raise BoardUnavailable(
                f"the emulated board {self.board.info.serial_number} is closed (close() was "
                "called, or its with block ended): open it again"
            )
        board = self.board
        match request:  # the passes first: they are nearly every call
            case MVMRequest(tile=tile, voltages=voltages, region=region):
                return board.mvm(tile, voltages, region=region)
            case TransposeMVMRequest(tile=tile, voltages=voltages, region=region):
                return board.transpose_mvm(tile, voltages, region=region)
            case GetBoardInfoRequest():
                return BoardDescription(board.info, board.stats())
            case ProgramRequest(tile=tile, conductances=targets):
                return board.program(tile, request.region, targets)
            case ReadConductanceRequest(tile=tile, region=Region() as region):
                return board.read_conductance(tile, region)
            case PerturbRequest(mode=PerturbMode.APPLY, tile=tile, region=Region() as region):
                return board.perturb(tile, region, request.seed, request.amplitude_us, request.sign)
            case PerturbRequest(mode=PerturbMode.RESTORE, tile=tile, region=Region() as region):
                return board.restore(tile, region)
            case ReadWriteCountsRequest(tile=tile, region=Region() as region):
                return board.read_write_counts(tile, region)
            case CalibrateRequest(tile=tile):
                return board.calibrate(tile)
            case AdvanceClockRequest(seconds=seconds):
                return ClockReading(board.advance_clock(seconds))
            case PerturbedMVMRequest(tile=tile, region=Region() as region):
                return board.perturbed_mvm(tile, region, request.voltages, request.points)
        raise TypeError(f"not a validated board request: {request!r}")
