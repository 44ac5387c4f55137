"""The emulated board: tiles, a virtual clock, one seeded random source, accounting.

Inputs are trusted: the driver layer (``sidra.emulator.driver``) validates every
request against :attr:`EmulatedBoard.info` before it reaches the board, as
firmware would. One ``seed`` drives every random source; each tile gets an
independent stream spawned from it, so the same seed and call sequence give
bit-identical results and tiles never share random numbers.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sidra.drivers.errors import OutOfRange
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    BoardTiming,
    CalibrationReport,
    Cost,
    MVMResult,
    PerturbationPoint,
    PerturbedMVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    WriteCounts,
)
from sidra.drivers.validation import check_seconds
from sidra.emulator.config import BoardProfile, EndurancePolicy
from sidra.emulator.tile import CrossbarTile, FloatArray

__all__ = [
    "BYTES_PER_CELL",
    "EMULATOR_VERSION",
    "SERIAL_NUMBER_BYTES",
    "EmulatedBoard",
    "available_memory_bytes",
    "check_fits_in_memory",
    "checked_serial_number",
    "emulated_serial_number",
    "firmware_version",
    "started_serial_number",
]

EMULATOR_VERSION = "sidra-emulator-0.2"
EMULATOR_PREFIX = "sidra-emulator-"


def firmware_version(profiled: str) -> str:
    """What an emulated board reports: the emulator's version, then the profile's firmware
    string. A profile characterized from an emulated board (a twin of a twin) carries an
    emulator's version already; it is said once."""
    while profiled.startswith(EMULATOR_PREFIX) and "/" in profiled:
        profiled = profiled.split("/", 1)[1]
    return f"{EMULATOR_VERSION}/{profiled}"


CALIBRATION_PASSES = 16
"""Probe passes averaged by a drift calibration."""
_UNLIMITED = np.iinfo(np.int64).max


BYTES_PER_CELL = 64
"""Memory an emulated cell takes, bytes: its maps and a pass's work arrays (57 measured
under sidra-y1 once every tile had run a Program and a batch-64 MVM), rounded up."""


def available_memory_bytes() -> int | None:
    """What the kernel says can still be allocated (MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_in_memory(profile: BoardProfile) -> None:
    """OutOfRange naming ``geometry`` when the board's cells would not fit in this
    machine's memory: refused when it is made, not killed by the kernel at its first pass."""
    g = profile.geometry
    available = available_memory_bytes()
    if available is not None and g.tiles * g.rows * g.cols * BYTES_PER_CELL > available:
        raise OutOfRange(
            "geometry", f"{g.tiles} tiles of {g.rows} x {g.cols} cells",
            f"at most {available // BYTES_PER_CELL:,} cells in all on this machine "
            f"({available / 2**30:.1f} GiB available, about {BYTES_PER_CELL} B a cell)",
        )  # fmt: skip


def emulated_serial_number(model: str, seed: int) -> str:
    """The serial number of the emulated board of ``model`` made from ``seed``:
    ``EMU-<model without "SIDRA-">-<seed>`` (``EMU-Y1-5``). The same model and seed
    make the same board (its cells are drawn from the seed), so they answer the same
    serial; another model is another board, and a store keeps each one's state apart.
    What ``emu://`` boards and virtual boards made in a program answer; one started with
    ``sidra board serve`` answers :func:`started_serial_number` unless given one."""
    return f"EMU-{model.removeprefix('SIDRA-')}-{seed}"


SERIAL_NUMBER_BYTES = 64
"""Longest serial number a virtual board is given, bytes of UTF-8: what the PCIe identity
register holds (HELLO's string holds 255), so a serial board and a PCIe board take the same."""


def started_serial_number(model: str, seed: int) -> str:
    """The serial number of a virtual board started as a device of its own (``sidra board
    serve``) and given none: ``EMU-<model>-<seed>-<8 random hex digits>``
    (``EMU-Y1-5-9f0c3a1e``), new at each start. Two boards served from one seed hold state
    of their own: a state store keys programmed targets and deployments by the serial
    number, and ``serial://?serial_number=`` finds a board by it, so each must answer its
    own."""
    return f"{emulated_serial_number(model, seed)}-{secrets.token_hex(4)}"


def checked_serial_number(text: str) -> str:
    """``text`` as a virtual board's serial number, or ValueError saying what is allowed:
    1 to :data:`SERIAL_NUMBER_BYTES` bytes of UTF-8, not blank, no control characters (the
    PCIe identity register ends a string at its first NUL)."""
    if not text.strip():
        raise ValueError(f"serial number {text!r}: blank, expected the board's own")
    size = len(text.encode())
    if size > SERIAL_NUMBER_BYTES:
        raise ValueError(
            f"serial number {text!r}: got {size} bytes of UTF-8, expected 1 to "
            f"{SERIAL_NUMBER_BYTES}"
        )
    control = [ch for ch in text if unicodedata.category(ch) == "Cc"]
    if control:
        raise ValueError(
            f"serial number {text!r}: got the control character {control[0]!r}, expected "
            "printable text"
        )
    return text


class EmulatedBoard:
    """A SIDRA board in software."""

    def __init__(
        self, profile: BoardProfile, seed: int = 0, serial_number: str | None = None
    ) -> None:
        """``serial_number``: what the board answers as its serial (checked by
        :func:`checked_serial_number`); None: :func:`emulated_serial_number`, the same
        for the same model and seed."""
        if serial_number is None:
            serial_number = emulated_serial_number(profile.model, seed)
        else:
            serial_number = checked_serial_number(serial_number)
        check_fits_in_memory(profile)
        self.profile = profile
        self.seed = seed
        streams = np.random.SeedSequence(seed).spawn(profile.geometry.tiles)
        self.tiles = [
            CrossbarTile(profile, np.random.Generator(np.random.SFC64(s)), index)
            for index, s in enumerate(streams)
        ]
        self.clock_s = 0.0
        self._cost = Cost()
        self._mvm_passes = 0
        self.info = BoardInfo(
            model=profile.model,
            serial_number=serial_number,
            firmware_version=firmware_version(profile.firmware_version),
            tile_count=profile.geometry.tiles,
            rows=profile.geometry.rows,
            cols=profile.geometry.cols,
            g_min_us=profile.conductance.g_min_us,
            g_max_us=profile.conductance.g_max_us,
            dac_bits=profile.converters.dac_bits,
            adc_bits=profile.converters.adc_bits,
            read_voltage_max_v=profile.read_voltage_max_v,
            emulated=True,
            emulator_preset=profile.preset,
            profile=profile.model_dump(mode="json"),
            timing=BoardTiming(**profile.timing.model_dump()),
            adc_full_scale_ua=(
                profile.converters.adc_full_scale_ua if profile.converters.adc_bits else 0.0
            ),
        )

    def stats(self) -> BoardStats:
        return BoardStats(
            total_cost=self._cost,
            mvm_passes=self._mvm_passes,
            cell_writes=sum(int(t.writes.sum(dtype=np.int64)) for t in self.tiles),
            clock_s=self.clock_s,
            max_cell_writes=max(int(t.writes.max()) for t in self.tiles),
        )

    # -- writes -------------------------------------------------------------

    def program(self, tile: int, region: Region, targets: FloatArray) -> ProgramReport:
        budget = self._write_budget(tile, region, writes_needed=1)
        outcome = self.tiles[tile].program(region, targets, self.clock_s, budget)
        t = self.profile.timing
        cost = self._spend(outcome.iterations * (t.write_pass_ns + t.verify_read_ns))
        return ProgramReport(
            cells_written=region.rows * region.cols,
            verify_iterations=outcome.iterations,
            pulses=outcome.pulses,
            rms_error_us=outcome.rms_error_us,
            max_error_us=outcome.max_error_us,
            unconverged_cells=outcome.unconverged,
            cells_over_budget=self._over_budget(tile, region),
            cost=cost,
        )

    def perturb(
        self, tile: int, region: Region, seed: int, amplitude_us: float, sign: int
    ) -> PerturbReport:
        # The restore that takes it back is budgeted too: a perturbation its cells could
        # not afford to undo would leave them off their targets for good.
        self._write_budget(tile, region, writes_needed=2)
        clipped = self.tiles[tile].perturb(region, seed, amplitude_us, sign, self.clock_s)
        return self._write_pass(tile, region, clipped)

    def restore(self, tile: int, region: Region) -> PerturbReport:
        self._write_budget(tile, region, writes_needed=1)
        self.tiles[tile].restore(region, self.clock_s)
        return self._write_pass(tile, region, 0)

    def perturbed_mvm(
        self, tile: int, region: Region, voltages: FloatArray, points: Sequence[PerturbationPoint]
    ) -> PerturbedMVMResult:
        """Each point's perturbation, then the batch through the region; restored at the
        end: the same calls, in the same order, as the Perturb / MVM / Restore sequence
        it replaces, so the results and the random streams are the same too."""
        # Every write of the call is checked against the endurance budget before the
        # first one: a refused call changes nothing.
        self._write_budget(tile, region, writes_needed=len(points) + 1)
        currents = np.empty((len(points), len(voltages), region.cols), np.float32)
        saturated = clipped = 0
        cost = Cost()
        for k, point in enumerate(points):
            report = self.perturb(tile, region, point.seed, point.amplitude_us, point.sign)
            result = self.mvm(tile, voltages, currents[k], region)  # computed in place
            saturated += result.saturated_outputs
            clipped += report.clipped_cells
            cost = cost + report.cost + result.cost
        restored = self.restore(tile, region)
        cells = region.rows * region.cols * (len(points) + 1)
        over = restored.cells_over_budget
        return PerturbedMVMResult(currents, saturated, cells, clipped, over, cost + restored.cost)

    def _write_pass(self, tile: int, region: Region, clipped: int) -> PerturbReport:
        cost = self._spend(self.profile.timing.write_pass_ns)
        over = self._over_budget(tile, region)
        return PerturbReport(region.rows * region.cols, clipped, over, cost)

    def _write_budget(self, tile: int, region: Region, writes_needed: int) -> npt.NDArray[np.int64]:
        """Pulses each cell of the region may still take; refuses per the endurance policy."""
        e = self.profile.endurance
        writes = self.tiles[tile].writes[region.slices].astype(np.int64)
        if e.write_budget == 0 or e.policy is EndurancePolicy.WARN:
            return np.full(region.shape, _UNLIMITED, np.int64)
        exhausted = int(np.count_nonzero(writes + writes_needed > e.write_budget))
        if exhausted:
            raise OutOfRange(
                "endurance",
                f"{exhausted} cells of tile {tile} in the region at their write budget",
                f"cells with fewer than {e.write_budget} writes (endurance.write_budget)",
            )
        return e.write_budget - writes

    def _over_budget(self, tile: int, region: Region) -> int:
        budget = self.profile.endurance.write_budget
        if budget == 0:
            return 0
        return int(np.count_nonzero(self.tiles[tile].writes[region.slices] > budget))

    # -- reads --------------------------------------------------------------

    def read_conductance(self, tile: int, region: Region) -> ReadResult:
        # Conductances are read row by row: one pass per row with a one-hot input.
        cost = self._spend(region.rows * self.profile.timing.mvm_pass_ns)
        return ReadResult(self.tiles[tile].read(region, self.clock_s), cost)

    def mvm(
        self,
        tile: int,
        voltages: FloatArray,
        out: FloatArray | None = None,
        region: Region | None = None,
    ) -> MVMResult:
        """Passes over ``region`` (None: the whole tile), one per vector whatever its size.
        ``out``: where to compute the currents, float32 [batch, region cols] (a board's
        output window: no copy after), else a new array."""
        result = self.tiles[tile].mvm(voltages, self.clock_s, out, region)
        return MVMResult(result.currents, result.saturated, self._passes(len(voltages)))

    def transpose_mvm(
        self,
        tile: int,
        voltages: FloatArray,
        out: FloatArray | None = None,
        region: Region | None = None,
    ) -> MVMResult:
        """``out``: where to compute the currents, float32 [batch, region rows], else new."""
        result = self.tiles[tile].transpose_mvm(voltages, self.clock_s, out, region)
        return MVMResult(result.currents, result.saturated, self._passes(len(voltages)))

    def read_write_counts(self, tile: int, region: Region) -> WriteCounts:
        counts = self.tiles[tile].writes[region.slices].copy()
        return WriteCounts(counts, self.profile.endurance.write_budget)

    # -- time and drift -----------------------------------------------------

    def advance_clock(self, seconds: float) -> float:
        """Moves the virtual clock forward (drift and flicker noise age); returns it.

        The driver checked ``seconds`` alone; only the board knows its clock, so the
        total is checked here, before anything changes: the clock never passes
        ``CLOCK_LIMIT_S`` (an unbounded sum would reach Inf and every read NaN).
        """
        check_seconds(seconds, self.clock_s)
        self.clock_s += seconds
        return self.clock_s

    def calibrate(self, tile: int) -> CalibrationReport:
        gain = self.tiles[tile].calibrate(self.clock_s, CALIBRATION_PASSES)
        return CalibrationReport(gain, self._passes(CALIBRATION_PASSES))

    # -- accounting ---------------------------------------------------------

    def _passes(self, n: int) -> Cost:
        self._mvm_passes += n
        return self._spend(n * self.profile.timing.mvm_pass_ns)

    def _spend(self, time_ns: float) -> Cost:
        # ns × W = nJ
        cost = Cost(time_ns, time_ns * self.profile.timing.board_power_w)
        self._cost = self._cost + cost
        return cost
