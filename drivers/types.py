"""Value types that cross the driver interface (units in every field name)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BoardDescription",
    "BoardInfo",
    "BoardStats",
    "BoardTiming",
    "Buffer",
    "CalibrationReport",
    "ClockReading",
    "Cost",
    "LinkDown",
    "LinkStats",
    "MVMResult",
    "PerturbReport",
    "PerturbationPoint",
    "PerturbedMVMResult",
    "ProgramReport",
    "ReadResult",
    "Region",
    "SequenceResult",
    "TileUse",
    "WriteCounts",
    "tiles_text",
]

FloatArray = npt.NDArray[np.float32]

Buffer = bytes | bytearray | memoryview
"""Bytes to copy in bulk (an array travels as ``array.data``, a memoryview of it)."""


@dataclass(frozen=True, slots=True)
class Cost:
    """Modeled hardware cost of an operation."""

    time_ns: float = 0.0
    energy_nj: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.time_ns + other.time_ns, self.energy_nj + other.energy_nj)


@dataclass(frozen=True, slots=True)
class Region:
    """Cells [row_offset, row_offset + rows) × [col_offset, col_offset + cols) of a tile.

    ``rows = 0`` / ``cols = 0`` mean "to the end of the tile", so ``Region()``
    is the whole tile.
    """

    row_offset: int = 0
    col_offset: int = 0
    rows: int = 0
    cols: int = 0

    def resolve(self, tile_rows: int, tile_cols: int) -> Region:
        """The same region with zero sizes replaced by the extent to the tile edge."""
        return Region(
            self.row_offset,
            self.col_offset,
            self.rows or max(tile_rows - self.row_offset, 0),
            self.cols or max(tile_cols - self.col_offset, 0),
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of a resolved region; a region still sized "to the tile edge"
        (rows or cols 0) raises ValueError: only the board's size says what that is
        (:meth:`resolve`), and (0, n) made an empty Δ of ``rademacher(seed, shape)``."""
        self._check_resolved("shape")
        return (self.rows, self.cols)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index slices of a resolved region into a tile's array (as :attr:`shape`)."""
        self._check_resolved("slices")
        return (
            slice(self.row_offset, self.row_offset + self.rows),
            slice(self.col_offset, self.col_offset + self.cols),
        )

    def _check_resolved(self, what: str) -> None:
        if not (self.rows and self.cols):
            raise ValueError(
                f"{self}.{what}: rows or cols 0 means 'to the tile edge', which only the "
                "board's size says: region.resolve(tile_rows, tile_cols)."
                f"{what} (a board's info has rows and cols)"
            )

    def overlaps(self, other: Region) -> bool:
        """Whether the two (resolved) regions share a cell."""
        return (
            self.row_offset < other.row_offset + other.rows
            and other.row_offset < self.row_offset + self.rows
            and self.col_offset < other.col_offset + other.cols
            and other.col_offset < self.col_offset + self.cols
        )

    def cells_text(self) -> str:
        """The (resolved) region as messages say it: ``rows 0..64 cols 0..9``, inclusive."""
        return (
            f"rows {self.row_offset}..{self.row_offset + self.rows - 1} "
            f"cols {self.col_offset}..{self.col_offset + self.cols - 1}"
        )


def tiles_text(tiles: Iterable[int], whole_board: bool = False) -> str:
    """Tiles as messages and tables name them: ``tile 3``, ``tiles 0, 2``, ``the whole
    board`` (``whole_board``: a lease or a job of every tile, whatever ``tiles`` lists)."""
    if whole_board:
        return "the whole board"
    listed = ", ".join(map(str, tiles))
    return f"tiles {listed}" if "," in listed else f"tile {listed}" if listed else "no tile"


@dataclass(frozen=True, slots=True)
class TileUse:
    """Which of a shared board's tiles others use now: what a run free to choose its
    tiles (a training run given no tiles) avoids (:meth:`Board.tile_use`)."""

    leased: frozenset[int] = frozenset()
    """Tiles another session leases: a write there is refused until it ends."""
    deployed: frozenset[int] = frozenset()
    """Tiles holding a region of an intact deployed model: a write there overwrites it."""

    def order(self, tile_count: int) -> tuple[int, ...]:
        """Every tile of a board of ``tile_count``, in the order such a run takes them:
        those nobody uses first, then those holding a deployment, then those another
        session leases (a run that needs them is refused naming the holder), each group
        ascending."""
        return tuple(
            sorted(range(tile_count), key=lambda t: (t in self.leased, t in self.deployed, t))
        )


@dataclass(frozen=True, slots=True)
class BoardTiming:
    """Timing and power model behind a board's costs (all zero: not reported)."""

    mvm_pass_ns: float = 0.0
    """One analog MVM pass (one input vector, either direction), ns."""
    write_pass_ns: float = 0.0
    """One parallel write pass over a tile region (a perturbation, a program pulse), ns."""
    verify_read_ns: float = 0.0
    """One verify read pass during write-verify programming, ns."""
    host_loss_ns: float = 0.0
    """One loss computation from the outputs next to the array, ns (clients charge it)."""
    board_power_w: float = 0.0
    """Board power while operating, W (ns × W = nJ)."""


@dataclass(frozen=True, slots=True)
class BoardInfo:
    """Static description of a board (mirrors ``BoardInfo`` in board.proto)."""

    model: str
    serial_number: str
    firmware_version: str
    tile_count: int
    rows: int
    cols: int
    g_min_us: float
    g_max_us: float
    dac_bits: int
    adc_bits: int
    read_voltage_max_v: float
    emulated: bool = False
    emulator_preset: str = ""
    profile: dict[str, Any] = field(default_factory=dict)
    timing: BoardTiming = BoardTiming()
    """Timing and power model of the board's costs (zeros when it reports none)."""
    adc_full_scale_ua: float = 0.0
    """Output bound of the ADC, µA: one ADC code is adc_full_scale_ua / (2^(adc_bits-1) - 1)
    (before calibration gain). 0 when the ADC is ideal or the board does not report it."""

    def impossible(self) -> list[str]:
        """What the board says of itself that no board can be (blank flash, a firmware
        bug, another device at the address), one ``field: got V, expected ...`` each;
        empty when nothing is. A driver refuses such a board when it opens it, instead of
        every call failing later (``tile: got 0, expected an integer in 0 .. -1``)."""
        found = []
        if not self.serial_number.strip():
            found.append("serial_number: got '', expected a board's own, non-empty")
        for name in ("tile_count", "rows", "cols"):
            if getattr(self, name) < 1:
                found.append(f"{name}: got {getattr(self, name)}, expected >= 1")
        for name in ("dac_bits", "adc_bits"):
            if not 0 <= getattr(self, name) <= 32:
                found.append(f"{name}: got {getattr(self, name)}, expected 0 (ideal) .. 32")
        g_min, g_max = self.g_min_us, self.g_max_us
        if not (math.isfinite(g_min) and g_min >= 0):
            found.append(f"g_min_us: got {g_min}, expected a finite conductance >= 0 µS")
        if not (math.isfinite(g_max) and g_max > g_min):
            found.append(f"g_max_us: got {g_max}, expected a finite conductance above "
                         f"g_min_us ({g_min} µS)")  # fmt: skip
        if not (math.isfinite(self.read_voltage_max_v) and self.read_voltage_max_v > 0):
            found.append(
                f"read_voltage_max_v: got {self.read_voltage_max_v}, expected a finite "
                "voltage > 0 V"
            )
        costs = [(f"timing.{f.name}", getattr(self.timing, f.name)) for f in fields(BoardTiming)]
        for name, value in [*costs, ("adc_full_scale_ua", self.adc_full_scale_ua)]:
            if not (math.isfinite(value) and value >= 0):
                found.append(f"{name}: got {value}, expected a finite number >= 0")
        return found

    def identity(self) -> dict[str, Any]:
        """What tells this board from another, as JSON values: model, serial number,
        firmware, and for an emulated one its preset (``sidra board probe``, a run's
        ``run.json``)."""
        return {
            "model": self.model,
            "serial_number": self.serial_number,
            "firmware_version": self.firmware_version,
            "emulated": self.emulated,
            "emulator_preset": self.emulator_preset,
        }


@dataclass(frozen=True, slots=True)
class LinkStats:
    """Counters of the host end of a board link (serial): traffic and what went wrong."""

    up: bool = True
    """The board answers; False after a lost link until it answers again."""
    exchanges: int = 0
    """Requests that got their response (each counted once, however many tries it took)."""
    frames_sent: int = 0
    frames_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    crc_errors: int = 0
    """Received frames whose CRC-32 did not match."""
    framing_errors: int = 0
    """Received frames with bad COBS, a short body, a wrong length or an oversize run."""
    timeouts: int = 0
    """Attempts that got no valid response in time."""
    retries: int = 0
    """Requests sent again with the same request id."""
    naks: int = 0
    """NAK frames received (the board could not decode something we sent)."""
    duplicates: int = 0
    """Valid responses discarded as duplicates or answers to an earlier request."""
    resyncs: int = 0
    resets: int = 0
    """Board restarts detected through the boot epoch."""
    reconnects: int = 0
    """Times the port was reopened after being lost."""
    payload_limit: int = 0
    """Largest frame payload the link uses now, bytes: negotiated in HELLO, lowered on a
    line that damages long frames (docs/wire-protocol.md §4.6)."""
    payload_changes: int = 0
    """Times the link changed its payload limit for the line's damage (down or back up)."""
    timeout_base_s: float = 0.0
    """What the link's latest attempt waited for its answer besides the wire and board
    time (T_base), s: learnt from the board's answers, at most the URL's ``timeout=``
    (docs/wire-protocol.md §4.5)."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    """A board link that is down, as the server serving the board accounts for it: since
    when, why, and what it does to get the board back (board.proto LinkDown). A server
    sends it with the UNAVAILABLE of a call its board's link refused, so a client that
    cannot reach the board still learns what the server's log says."""

    since_unix_s: float
    """When the link went down, s since the Unix epoch (the server's clock)."""
    reason: str
    """Why: the error the call that lost the link got."""
    recovery: str
    """What the server does about it: ``retrying /dev/ttyUSB0 every 0.5 s``."""
    link: LinkStats | None = None
    """The host end's counters of the link meanwhile (None for a driver that keeps none)."""


@dataclass(frozen=True, slots=True)
class BoardStats:
    """Running totals since the board was opened."""

    total_cost: Cost = Cost()
    mvm_passes: int = 0
    cell_writes: int = 0
    clock_s: float = 0.0
    """Board clock (virtual on an emulator), seconds since the board was opened."""
    max_cell_writes: int = 0
    """Largest write count of any cell (endurance)."""
    link: LinkStats | None = field(default=None, compare=False)
    """Link counters of a serial board (None in process); they change with every call,
    so they take no part in comparisons."""


@dataclass(frozen=True, slots=True)
class ProgramReport:
    """What write-verify programming achieved."""

    cells_written: int
    """Cells in the programmed region."""
    verify_iterations: int
    """Most program-and-verify iterations any cell needed."""
    pulses: int
    """Programming pulses applied over all cells."""
    rms_error_us: float
    """Root-mean-square of (achieved - target) over the region, µS."""
    max_error_us: float
    """Largest |achieved - target| over the region, µS."""
    unconverged_cells: int
    """Cells still outside the programming tolerance when the pulse budget ran out."""
    cells_over_budget: int = 0
    """Cells past their endurance write budget after this call (WARN policy)."""
    cost: Cost = Cost()
    """Modeled hardware cost of the programming (ns, nJ)."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Measured conductances (µS) of a region."""

    conductances: FloatArray
    """[region rows, region cols], µS, float32."""
    cost: Cost = Cost()
    """Modeled hardware cost of the read (ns, nJ)."""


@dataclass(frozen=True, slots=True)
class MVMResult:
    """Output currents (µA) of a batch of analog passes."""

    currents: FloatArray
    """[batch, region cols] (MVM) or [batch, region rows] (TransposeMVM), µA, float32."""
    saturated_outputs: int = 0
    """Output values that hit the ADC's full scale (0 on a board with an ideal ADC)."""
    cost: Cost = Cost()
    """Modeled hardware cost of the passes (ns, nJ)."""
    output_codes: npt.NDArray[np.signedinteger[Any]] | None = None
    """The ADC codes behind ``currents`` (currents = output_codes · adc_step_ua), when the
    request asked for them (sidra.drivers.codes)."""
    dac_step_v: float = 0.0
    """Volts per input code, when the request carried or asked for codes (else 0)."""
    adc_step_ua: float = 0.0
    """Microamperes per output code, calibration gain included, when the request carried
    or asked for codes (else 0)."""


@dataclass(frozen=True, slots=True)
class PerturbReport:
    """What a Perturb APPLY or RESTORE wrote."""

    cells_written: int
    """Cells written: every cell of the region, for APPLY and RESTORE."""
    clipped_cells: int = 0
    """Cells whose perturbed conductance fell outside [g_min_us, g_max_us] and was
    clipped to the nearest bound (APPLY only): there G_prog ± amplitude_us·Δ does not
    hold."""
    cells_over_budget: int = 0
    """Cells of the region past their endurance write budget after this call."""
    cost: Cost = Cost()
    """Modeled hardware cost of the writes (ns, nJ)."""


@dataclass(frozen=True, slots=True)
class PerturbationPoint:
    """One point of a PerturbedMVM: the region at G_prog + sign·amplitude_us·Δ(seed)."""

    seed: int
    """Seed of the Rademacher matrix Δ (any unsigned 64-bit value)."""
    amplitude_us: float
    """Perturbation amplitude c, µS: in (0, g_max_us - g_min_us]."""
    sign: int = 1
    """Direction, +1 or -1."""


@dataclass(frozen=True, slots=True)
class PerturbedMVMResult:
    """Output currents (µA) of one input batch at each perturbation point, and what the
    perturbation writes did."""

    currents: FloatArray
    """[points, batch, region cols], µA: ``currents[k]`` is the batch at point k."""
    saturated_outputs: int = 0
    """Outputs at the ADC's full scale, over every point."""
    cells_written: int = 0
    """Cell writes: the region once per point, and once more for the restore."""
    clipped_cells: int = 0
    """Perturbed conductances clipped to [g_min_us, g_max_us], over every point."""
    cells_over_budget: int = 0
    """Cells of the region past their endurance write budget after the call."""
    cost: Cost = Cost()
    """Modeled hardware cost of the writes and passes (ns, nJ)."""


@dataclass(frozen=True, slots=True)
class SequenceResult:
    """The result of every step of a RunSequence, in step order (each its operation's
    result type: ProgramReport, MVMResult, ...)."""

    results: tuple[Any, ...]

    @property
    def cost(self) -> Cost:
        """Modeled hardware cost of all the steps."""
        total = Cost()
        for result in self.results:
            total = total + getattr(result, "cost", Cost())
        return total


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """Per-cell write counters of a region and the endurance budget (0 = unlimited)."""

    counts: npt.NDArray[np.uint32]
    write_budget: int = 0


@dataclass(frozen=True, slots=True)
class CalibrationReport:
    """Result of a global drift calibration: the output gain now applied."""

    gain: float
    cost: Cost = Cost()


@dataclass(frozen=True, slots=True)
class ClockReading:
    """The board clock after an AdvanceClock, s."""

    clock_s: float


@dataclass(frozen=True, slots=True)
class BoardDescription:
    """What GetBoardInfo answers: the static description, the running totals and the
    board instance they belong to."""

    info: BoardInfo
    stats: BoardStats
    instance_id: str = ""
    """The board instance (``Board.instance_id``): changes whenever the board's state
    is lost. Drivers fill it in (``BoardDriver.run``); "" from a board that reports none."""
