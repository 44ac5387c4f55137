"""One request type per board operation, named and shaped as in board.proto.

A request is what crosses every layer: the client builds it, gRPC and the wire
protocol carry it, a transport executes it. Field names are board.proto's, so
a BadRequest field path ("voltages.shape", "region.rows") names the same thing
in Python, in the proto and in the error.

``checked(info)`` is the one place a request is validated against a board: it
returns the request in canonical form (float32 arrays, regions resolved to the
tile edge) or raises :class:`InvalidArgument` / :class:`OutOfRange` naming the
field, the value and what is allowed. It never touches the board.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Self

from sidra.drivers import codes
from sidra.drivers import validation as check
from sidra.drivers.errors import InvalidArgument
from sidra.drivers.types import BoardInfo, PerturbationPoint, Region

__all__ = [
    "AdvanceClockRequest",
    "CalibrateRequest",
    "GetBoardInfoRequest",
    "MAX_POINTS",
    "MAX_STEPS",
    "MVMRequest",
    "PERTURB_MODES",
    "PerturbMode",
    "PerturbRequest",
    "PerturbedMVMRequest",
    "ProgramRequest",
    "ReadConductanceRequest",
    "ReadWriteCountsRequest",
    "Request",
    "SEQUENCE_STEPS",
    "STEP_NAMES",
    "SequenceRequest",
    "TransposeMVMRequest",
    "perturb_mode",
    "step_member",
]


class PerturbMode(IntEnum):
    """What a Perturb does (values as board.proto's PerturbMode)."""

    UNSPECIFIED = 0
    APPLY = 1
    """Set the region to G_prog + sign·amplitude_us·Δ(seed)."""
    RESTORE = 2
    """Return the region to G_prog."""


@dataclass(frozen=True, slots=True)
class GetBoardInfoRequest:
    """The board's description and running totals."""

    def checked(self, info: BoardInfo) -> Self:
        return self


@dataclass(frozen=True, slots=True)
class ProgramRequest:
    """Write-verify ``conductances`` (µS, [rows, cols]) at (row_offset, col_offset)."""

    tile: int
    conductances: Any
    row_offset: int = 0
    col_offset: int = 0

    @property
    def region(self) -> Region:
        rows, cols = self.conductances.shape
        return Region(self.row_offset, self.col_offset, rows, cols)

    def checked(self, info: BoardInfo) -> Self:
        check.check_tile(info, self.tile)
        g = check.float32_matrix("conductances", self.conductances)
        check.check_conductances(info, g)
        region = Region(self.row_offset, self.col_offset, *g.shape)
        check.check_region(info, region, field="conductances")
        return type(self)(self.tile, g, self.row_offset, self.col_offset)


@dataclass(frozen=True, slots=True)
class _RegionRequest:
    """A tile and a region of it (None: the whole tile)."""

    tile: int
    region: Region | None = None

    def checked(self, info: BoardInfo) -> Self:
        check.check_tile(info, self.tile)
        return type(self)(self.tile, check.check_region(info, self.region or Region()))


@dataclass(frozen=True, slots=True)
class ReadConductanceRequest(_RegionRequest):
    """Measured conductances (µS) of ``region`` (None: the whole tile)."""


@dataclass(frozen=True, slots=True)
class _PassRequest:
    """A batch of analog passes: voltages [batch, inputs] (V) on the driven side of
    ``region`` (None: the whole tile); the outputs are the region's other side.

    Converter codes (sidra.drivers.codes): ``input_codes`` [batch, inputs] (DAC codes,
    int8/int16/int32) instead of ``voltages``; ``output_codes`` True: the result also
    carries the ADC codes behind its currents, and both code steps."""

    tile: int
    voltages: Any = None
    region: Region | None = None
    input_codes: Any = None
    output_codes: bool = False
    driven: ClassVar[str]
    """What the inputs drive, for messages ("tile rows", "tile columns")."""
    driven_in_region: ClassVar[str]
    """The same within a region ("region rows", "region columns")."""

    @property
    def uses_codes(self) -> bool:
        """True when the request carries or asks for converter codes."""
        return self.input_codes is not None or self.output_codes

    @classmethod
    def inputs(cls, info: BoardInfo) -> int:
        """Input vector length on ``info``'s tiles."""
        raise NotImplementedError

    @classmethod
    def region_inputs(cls, region: Region) -> int:
        """Input vector length of a pass over ``region`` (resolved)."""
        raise NotImplementedError

    @classmethod
    def region_outputs(cls, region: Region) -> int:
        """Output vector length of a pass over ``region`` (resolved)."""
        raise NotImplementedError

    def checked(self, info: BoardInfo) -> Self:
        """Canonical form: float32 voltages (or checked input codes), the region resolved,
        and None for a region that covers the whole tile (a whole-tile pass travels as one
        without a region)."""
        check.check_tile(info, self.tile)
        if self.region is None:
            width, what, region = self.inputs(info), self.driven, None
        else:
            region = check.check_region(info, self.region)
            width, what = self.region_inputs(region), self.driven_in_region
            if region.shape == (info.rows, info.cols):
                region = None
        if self.output_codes is not False and self.output_codes is not True:
            raise InvalidArgument("output_codes", repr(self.output_codes)[:40], "true or false")
        if self.output_codes:
            codes.adc_step_ua(info)  # an ideal ADC has no codes
        if self.input_codes is None:
            if self.voltages is None:  # was "voltages.dtype: got object"
                raise InvalidArgument(
                    "voltages", "none", "voltages (V, float32) or input_codes, one of them"
                )
            v = check.pass_voltages(info, self.voltages, width, what)
            if not self.output_codes:
                return type(self)(self.tile, v, region)
            return type(self)(self.tile, v, region, None, True)
        if self.voltages is not None:
            raise InvalidArgument(
                "input_codes", "set with voltages", "one of voltages and input_codes, not both"
            )
        k = codes.input_codes(info, self.input_codes, width, what)
        return type(self)(self.tile, None, region, k, self.output_codes)


@dataclass(frozen=True, slots=True)
class MVMRequest(_PassRequest):
    """Row voltages [batch, region rows] (V) -> column currents [batch, region cols] (µA);
    without a region, [batch, rows] -> [batch, cols]."""

    driven: ClassVar[str] = "tile rows"
    driven_in_region: ClassVar[str] = "region rows"

    @classmethod
    def inputs(cls, info: BoardInfo) -> int:
        return info.rows

    @classmethod
    def region_inputs(cls, region: Region) -> int:
        return region.rows

    @classmethod
    def region_outputs(cls, region: Region) -> int:
        return region.cols


@dataclass(frozen=True, slots=True)
class TransposeMVMRequest(_PassRequest):
    """Column voltages [batch, region cols] (V) -> row currents [batch, region rows] (µA);
    without a region, [batch, cols] -> [batch, rows]."""

    driven: ClassVar[str] = "tile columns"
    driven_in_region: ClassVar[str] = "region columns"

    @classmethod
    def inputs(cls, info: BoardInfo) -> int:
        return info.cols

    @classmethod
    def region_inputs(cls, region: Region) -> int:
        return region.cols

    @classmethod
    def region_outputs(cls, region: Region) -> int:
        return region.rows


@dataclass(frozen=True, slots=True)
class PerturbRequest:
    """APPLY: region = G_prog + sign·amplitude_us·Δ(seed); RESTORE: region = G_prog."""

    tile: int
    mode: PerturbMode
    seed: int = 0
    amplitude_us: float = 0.0
    sign: int = 1
    region: Region | None = None

    def checked(self, info: BoardInfo) -> Self:
        check.check_tile(info, self.tile)
        if self.mode not in (PerturbMode.APPLY, PerturbMode.RESTORE):
            raise InvalidArgument("mode", _mode_name(self.mode), PERTURB_MODES)
        region = check.check_region(info, self.region or Region())
        if self.mode is PerturbMode.RESTORE:  # seed, amplitude and sign are ignored
            return type(self)(self.tile, PerturbMode.RESTORE, region=region)
        check.check_seed(self.seed)
        check.check_sign(self.sign)
        check.check_amplitude(info, self.amplitude_us)
        return type(self)(
            self.tile,
            PerturbMode.APPLY,
            int(self.seed),
            float(self.amplitude_us),
            int(self.sign),
            region,
        )


MAX_POINTS = 64
"""Most perturbation points one PerturbedMVM evaluates (an SPSA step needs 2 per
resampling; a population of 64 covers evolution strategies too)."""


@dataclass(frozen=True, slots=True)
class PerturbedMVMRequest:
    """One input batch through ``region`` at each of ``points``, then the region restored.

    Equivalent to, for each point, Perturb APPLY (region, point) then MVM of the batch
    on the region, and a Perturb RESTORE of the region at the end, in one call: the
    batch crosses the link once and the tile is never left perturbed. Voltages
    [batch, region rows] (V) -> currents [points, batch, region cols] (µA).
    """

    tile: int
    voltages: Any
    points: tuple[PerturbationPoint, ...]
    region: Region | None = None

    def checked(self, info: BoardInfo) -> Self:
        check.check_tile(info, self.tile)
        region = check.check_region(info, self.region or Region())
        points = _checked_points(info, self.points)
        v = check.pass_voltages(info, self.voltages, region.rows, "the region's rows")
        return type(self)(self.tile, v, points, region)


def _checked_points(info: BoardInfo, points: Any) -> tuple[PerturbationPoint, ...]:
    allowed = f"1 .. {MAX_POINTS} perturbation points"
    try:
        count = len(points)
    except TypeError:
        raise InvalidArgument("points", type(points).__name__, allowed) from None
    if not 1 <= count <= MAX_POINTS:
        raise InvalidArgument("points", count, allowed)
    checked = []
    for k, point in enumerate(points):
        if not isinstance(point, PerturbationPoint):
            raise InvalidArgument(f"points[{k}]", type(point).__name__, "a PerturbationPoint")
        check.check_seed(point.seed, f"points[{k}].seed")
        check.check_sign(point.sign, f"points[{k}].sign")
        check.check_amplitude(info, point.amplitude_us, f"points[{k}].amplitude_us")
        checked.append(
            PerturbationPoint(int(point.seed), float(point.amplitude_us), int(point.sign))
        )
    return tuple(checked)


@dataclass(frozen=True, slots=True)
class ReadWriteCountsRequest(_RegionRequest):
    """Per-cell write counters (endurance) of ``region`` (None: the whole tile)."""


@dataclass(frozen=True, slots=True)
class CalibrateRequest:
    """Global drift compensation of ``tile``: measure a probe, rescale its outputs."""

    tile: int

    def checked(self, info: BoardInfo) -> Self:
        check.check_tile(info, self.tile)
        return self


@dataclass(frozen=True, slots=True)
class AdvanceClockRequest:
    """Move an emulated board's virtual clock forward by ``seconds`` (s)."""

    seconds: float

    def checked(self, info: BoardInfo) -> Self:
        check.check_seconds(self.seconds)
        return type(self)(float(self.seconds))


MAX_STEPS = 16
"""Most steps one RunSequence carries: a short recipe (program a region, then evaluate),
not a program; a longer loop belongs in a job next to the board."""


@dataclass(frozen=True, slots=True)
class SequenceRequest:
    """Board operations run in order, under one hold of the board: no other call runs
    between them. Every step is validated before the first runs; one invalid step
    and none runs. GetBoardInfo and AdvanceClock (board-wide) are not steps."""

    steps: tuple[Any, ...]

    def checked(self, info: BoardInfo) -> Self:
        allowed = f"1 .. {MAX_STEPS} steps"
        try:
            count = len(self.steps)
        except TypeError:
            raise InvalidArgument("steps", type(self.steps).__name__, allowed) from None
        if not 1 <= count <= MAX_STEPS:
            raise InvalidArgument("steps", count, allowed)
        checked = []
        for k, step in enumerate(self.steps):
            if type(step) not in SEQUENCE_STEPS:
                raise InvalidArgument(
                    f"steps[{k}]", type(step).__name__, f"one of {', '.join(STEP_NAMES)}"
                )
            try:
                checked.append(step.checked(info))
            except InvalidArgument as exc:  # named as a path into the request
                path = f"steps[{k}].{step_member(type(step))}.{exc.field}"
                raise type(exc)(path, exc.value, exc.allowed) from exc
        return type(self)(tuple(checked))


def step_member(request_type: type[Any]) -> str:
    """The field of a sequence step that carries a request of ``request_type``:
    board.proto's SequenceStep names it after the RPC (TransposeMVM -> transpose_mvm)."""
    rpc = request_type.__name__.removesuffix("Request")
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", rpc).lower()


Request = (
    GetBoardInfoRequest
    | ProgramRequest
    | ReadConductanceRequest
    | MVMRequest
    | TransposeMVMRequest
    | PerturbRequest
    | PerturbedMVMRequest
    | ReadWriteCountsRequest
    | CalibrateRequest
    | AdvanceClockRequest
    | SequenceRequest
)
"""Any board request."""

SEQUENCE_STEPS: tuple[type[Any], ...] = (
    ProgramRequest,
    ReadConductanceRequest,
    MVMRequest,
    TransposeMVMRequest,
    PerturbRequest,
    PerturbedMVMRequest,
    ReadWriteCountsRequest,
    CalibrateRequest,
)
"""The requests a sequence may carry: every operation on a tile (board.proto SequenceStep)."""

STEP_NAMES = tuple(step_member(t) for t in SEQUENCE_STEPS)


PERTURB_MODES = "PERTURB_MODE_APPLY or PERTURB_MODE_RESTORE"
"""What ``mode`` allows, as board.proto names it."""


def perturb_mode(number: int) -> PerturbMode:
    """The mode a PerturbRequest's enum number names; unknown numbers are malformed.
    (UNSPECIFIED is known here and refused by ``PerturbRequest.checked``.)"""
    if number not in PerturbMode.__members__.values():
        raise InvalidArgument("mode", number, PERTURB_MODES)
    return PerturbMode(number)


def _mode_name(mode: Any) -> str | int:
    known = mode in PerturbMode.__members__.values()
    return f"PERTURB_MODE_{PerturbMode(mode).name}" if known else int(mode)
