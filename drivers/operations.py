"""The board's operation set, declared once.

Each :class:`Operation` names one BoardService RPC (board.proto), its request
and result types, whether it writes the array and what its modeled cost
counts. Everything else is derived from this table:

- :class:`BoardMethods` — the public methods (``board.mvm(tile, v)``, ...) that
  build a request and hand it to ``run``; local drivers and the gRPC client
  share them, so a method exists once for every kind of board;
- ``BoardDriver.run`` (drivers/base.py) validates with ``request.checked`` and
  hands the request to the transport's one ``_handle``;
- the gRPC servicer routes and the client's calls (sidra.server.servicer,
  sidra.client.remote), by RPC name;
- the serial codec entries (sidra.drivers.wire.operations), by request type.

Adding an operation touches: board.proto, a request type in
:mod:`sidra.drivers.requests`, its row here and a method in
:class:`BoardMethods`, the emulator's implementation, its wire entry, and its
tests. ``tests/test_operations.py`` fails when an RPC lacks any of these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from sidra.drivers import codes
from sidra.drivers.errors import InvalidArgument
from sidra.drivers.requests import (
    SEQUENCE_STEPS,
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
    SequenceRequest,
    TransposeMVMRequest,
    step_member,
)
from sidra.drivers.types import (
    BoardDescription,
    BoardInfo,
    BoardStats,
    CalibrationReport,
    ClockReading,
    MVMResult,
    PerturbationPoint,
    PerturbedMVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    SequenceResult,
    WriteCounts,
)

__all__ = ["OPERATIONS", "STEP_OPERATIONS", "BoardMethods", "Operation", "operation_of"]


@dataclass(frozen=True, slots=True)
class Operation:
    """One board operation: an RPC of BoardService and what it means for the board."""

    rpc: str
    """RPC name in board.proto; its messages are ``<rpc>Request`` / ``<rpc>Response``."""
    request: type[Request]
    result: type[Any]
    writes_array: bool
    """True when the operation changes conductances or write counts."""
    cost: str
    """What the modeled cost (OperationCost) of one call counts."""
    composite: bool = False
    """True for RunSequence: its steps are operations of this table, each run by the
    board as itself; it has no wire message of its own."""


OPERATIONS: tuple[Operation, ...] = (
    Operation("GetBoardInfo", GetBoardInfoRequest, BoardDescription, False, "nothing (no cost)"),
    Operation(
        "Program", ProgramRequest, ProgramReport, True,
        "verify iterations × (write pass + verify read)",
    ),
    Operation(
        "ReadConductance", ReadConductanceRequest, ReadResult, False,
        "one MVM pass per row of the region",
    ),
    Operation("MVM", MVMRequest, MVMResult, False, "one MVM pass per input vector"),
    Operation("TransposeMVM", TransposeMVMRequest, MVMResult, False, "one MVM pass per vector"),
    Operation("Perturb", PerturbRequest, PerturbReport, True, "one write pass"),
    Operation("ReadWriteCounts", ReadWriteCountsRequest, WriteCounts, False, "nothing"),
    Operation("Calibrate", CalibrateRequest, CalibrationReport, False, "the probe's MVM passes"),
    Operation("AdvanceClock", AdvanceClockRequest, ClockReading, False, "nothing (virtual)"),
    Operation(
        "PerturbedMVM", PerturbedMVMRequest, PerturbedMVMResult, True,
        "per point one write pass and one MVM pass per vector, one write pass to restore",
    ),
    Operation(
        "RunSequence", SequenceRequest, SequenceResult, True, "the sum of its steps' costs",
        composite=True,
    ),
)  # fmt: skip
"""Every board operation, in board.proto's order."""

_BY_REQUEST = {op.request: op for op in OPERATIONS}

STEP_OPERATIONS: dict[str, Operation] = {
    step_member(op.request): op for op in OPERATIONS if op.request in SEQUENCE_STEPS
}
"""RunSequence's step fields (``mvm``, ``perturbed_mvm``, ...) and the operations they
carry, in board.proto's SequenceStep order: the one table the converters and the
service's metrics read."""


def operation_of(request: Request) -> Operation:
    """The declaration of ``request``'s operation; InvalidArgument for anything that is
    no board request."""
    try:
        return _BY_REQUEST[type(request)]
    except KeyError:
        allowed = "a board request (sidra.drivers.requests: MVMRequest, ProgramRequest, ...)"
        raise InvalidArgument("request", type(request).__name__, allowed) from None


class BoardMethods(ABC):
    """The public board methods, written once: each builds a request and runs it.

    Conductances in µS, voltages in V, currents in µA. Array arguments are
    ``npt.ArrayLike`` (an array, a nested list: what ``np.asarray`` takes), 2-D, sent and
    computed as float32 (another dtype is converted, a copy; the caller's array is never
    changed); arrays returned are float32 arrays of their own. A subclass implements
    :meth:`run` (a local driver: validate and execute; the gRPC client: send)
    and :attr:`info`.
    """

    @property
    @abstractmethod
    def info(self) -> BoardInfo:
        """Static description of the board: geometry, ranges, timing."""

    @abstractmethod
    def run(self, request: Any) -> Any:
        """Executes one request; returns its operation's result type."""

    def stats(self) -> BoardStats:
        """Running totals: modeled time and energy, MVM passes, cell writes, clock."""
        description: BoardDescription = self.run(GetBoardInfoRequest())
        return description.stats

    def program(
        self, tile: int, conductances: npt.ArrayLike, *, row_offset: int = 0, col_offset: int = 0
    ) -> ProgramReport:
        """Write-verify ``conductances`` (µS, [rows, cols]) at (row_offset, col_offset)."""
        report: ProgramReport = self.run(ProgramRequest(tile, conductances, row_offset, col_offset))
        return report

    def read_conductance(self, tile: int, region: Region | None = None) -> ReadResult:
        """Measured conductances (µS) of ``region`` (default: the whole tile)."""
        result: ReadResult = self.run(ReadConductanceRequest(tile, region))
        return result

    def mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike | None = None,
        region: Region | None = None,
        *,
        input_codes: npt.ArrayLike | None = None,
        output_codes: bool = False,
    ) -> MVMResult:
        """Row voltages [batch, region rows] (V) -> column currents [batch, region cols]
        (µA); ``region`` None: the whole tile, [batch, rows] -> [batch, cols].

        Converter codes (sidra.drivers.codes): ``input_codes`` (DAC codes, instead of
        ``voltages``: int8/int16/int32, or any integer array, sent in the narrowest of those
        that holds them) drive code · dac_step_v volts; ``output_codes``: the
        result carries the ADC codes too (``output_codes``, with ``adc_step_ua``)."""
        _given_inputs(voltages, input_codes)
        if input_codes is not None:  # any integer array, as a remote client takes it
            input_codes = codes.narrowest_codes(input_codes)
        request = MVMRequest(tile, voltages, region, input_codes, output_codes)
        result: MVMResult = self.run(request)
        return result

    def transpose_mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike | None = None,
        region: Region | None = None,
        *,
        input_codes: npt.ArrayLike | None = None,
        output_codes: bool = False,
    ) -> MVMResult:
        """Column voltages [batch, region cols] (V) -> row currents [batch, region rows]
        (µA); ``region`` None: the whole tile, [batch, cols] -> [batch, rows]. Codes as
        :meth:`mvm`."""
        _given_inputs(voltages, input_codes)
        if input_codes is not None:
            input_codes = codes.narrowest_codes(input_codes)
        request = TransposeMVMRequest(tile, voltages, region, input_codes, output_codes)
        result: MVMResult = self.run(request)
        return result

    def mvm_stream(
        self,
        tile: int,
        batches: Iterable[npt.ArrayLike],
        region: Region | None = None,
        *,
        transpose: bool = False,
    ) -> Iterator[MVMResult]:
        """The result of each batch of ``batches`` in order, as :meth:`mvm` (or
        :meth:`transpose_mvm` with ``transpose``) gives it. A local driver runs them one
        after another as they are drawn; the gRPC client keeps several in flight on one
        stream (stream.proto MVMStream), so the board never waits for a round trip."""
        for voltages in batches:
            yield (
                self.transpose_mvm(tile, voltages, region)
                if transpose
                else self.mvm(tile, voltages, region)
            )

    def perturb(
        self,
        tile: int,
        seed: int,
        amplitude_us: float,
        sign: int = 1,
        region: Region | None = None,
    ) -> PerturbReport:
        """Set ``region`` to G_prog + sign·amplitude_us·Δ(seed) (Δ: ``rademacher``)."""
        request = PerturbRequest(tile, PerturbMode.APPLY, seed, amplitude_us, sign, region)
        report: PerturbReport = self.run(request)
        return report

    def restore(self, tile: int, region: Region | None = None) -> PerturbReport:
        """Return ``region`` (default: the whole tile) to its programmed state."""
        report: PerturbReport = self.run(PerturbRequest(tile, PerturbMode.RESTORE, region=region))
        return report

    def perturbed_mvm(
        self,
        tile: int,
        voltages: npt.ArrayLike,
        points: Sequence[PerturbationPoint],
        region: Region | None = None,
    ) -> PerturbedMVMResult:
        """The batch ``voltages`` [batch, region rows] (V) through ``region`` (default: the
        whole tile) at each point G_prog + sign·amplitude_us·Δ(seed) -> currents
        [points, batch, region cols] (µA); the region is left restored to G_prog."""
        request = PerturbedMVMRequest(tile, voltages, tuple(points), region)
        result: PerturbedMVMResult = self.run(request)
        return result

    def run_sequence(self, steps: Sequence[Request]) -> SequenceResult:
        """Runs ``steps`` (requests: ProgramRequest, PerturbedMVMRequest, ...) in order with
        no other call on the board between them, once every one is valid; returns each
        step's result. An invalid step (its field named ``steps[k].<step>.<field>``)
        and none runs."""
        result: SequenceResult = self.run(SequenceRequest(tuple(steps)))
        return result

    def read_write_counts(self, tile: int, region: Region | None = None) -> WriteCounts:
        """Per-cell write counters (endurance) of ``region`` (default: the whole tile)."""
        counts: WriteCounts = self.run(ReadWriteCountsRequest(tile, region))
        return counts

    def calibrate(self, tile: int) -> CalibrationReport:
        """Global drift compensation of ``tile``; returns the output gain now applied."""
        report: CalibrationReport = self.run(CalibrateRequest(tile))
        return report

    def advance_clock(self, seconds: float) -> float:
        """Advance an emulated board's virtual clock; returns the new time, s."""
        reading: ClockReading = self.run(AdvanceClockRequest(seconds))
        return reading.clock_s


def _given_inputs(voltages: Any, input_codes: Any) -> None:
    """InvalidArgument for a pass given neither voltages nor codes (any board: a remote
    client would turn the missing array into "voltages.dtype: got object")."""
    if voltages is None and input_codes is None:
        raise InvalidArgument(
            "voltages", "none", "voltages (V, float32) or input_codes, one of them"
        )
