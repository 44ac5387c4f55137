"""How each board operation travels on the wire: one entry per operation.

The host driver (sidra.drivers.serial) encodes requests and decodes results
with these entries; board firmware (sidra.emulator.firmware) decodes requests
and encodes results with the same ones, so both ends read one table.
docs/wire-protocol.md §6 is the normative text of each layout.

A request is a fixed-layout *head* and, for Program and the MVMs, an array
(*data*): the MVMs carry it inline after the head when it fits in one frame,
otherwise (and Program always) it is uploaded to the board's stage first and
the head names the stage and its CRC-32. A response is a head and, for the
reads and the MVMs, a *result* buffer that the host fetches with RESULT_READ
beyond what fits inline.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import numpy as np

from sidra.drivers import validation as check
from sidra.drivers.errors import BoardFault
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
from sidra.drivers.types import (
    BoardDescription,
    BoardInfo,
    BoardStats,
    Buffer,
    CalibrationReport,
    ClockReading,
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
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.device_times import CALIBRATE_PASSES, REFERENCE_TIMES, DeviceTimes
from sidra.drivers.wire.messages import Msg

__all__ = [
    "ENTRIES",
    "InlineSizeError",
    "StagedData",
    "StageReader",
    "WireEntry",
    "entry_for_message",
    "entry_of",
]

Q = TypeVar("Q")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class StagedData:
    """Where a request's array lies: in the stage ``stage_id`` with CRC-32 ``crc``."""

    stage_id: int
    crc: int


class StageReader(Protocol):
    """What firmware offers a request decoder: its board and its verified stage."""

    @property
    def info(self) -> BoardInfo: ...

    def verified(self, stage_id: int, crc: int, size: int) -> bytes:
        """The stage's bytes, if ``stage_id`` is open, verified with ``crc`` and ``size`` long."""
        ...


class WireEntry(ABC, Generic[Q, R]):
    """One operation on the wire: its messages, request and response layouts."""

    request_type: ClassVar[type[Any]]
    messages: ClassVar[tuple[Msg, ...]]
    always_staged: ClassVar[bool] = False
    """True when the array always goes through the stage (Program)."""
    result_at: ClassVar[int | None] = None
    """Offset of RESULT_HEAD in the response (the head before it), None when the
    response has no result buffer."""
    writes_nothing: ClassVar[bool] = False
    """True when running the command changes no cell and no setting (a read, a pass):
    a host whose line kept damaging its long answer may send it again as a new request
    once the frames are shorter (docs/wire-protocol.md §4.6). Never for a write."""

    def msg(self, request: Q) -> Msg:
        return self.messages[0]

    def data(self, request: Q) -> bytes:
        """The request's array bytes, to send inline or staged (b"": none)."""
        return b""

    @abstractmethod
    def pack_request(self, request: Q, staged: StagedData | None) -> bytes:
        """The payload: head, then the data inline when ``staged`` is None."""

    def request_parts(self, request: Q) -> list[Buffer]:
        """The inline payload as parts to copy one after the other, so a transport
        that places them itself (a PCIe window) never joins a large array into bytes
        first. Their concatenation is ``pack_request(request, None)``."""
        return [self.pack_request(request, None)]

    @abstractmethod
    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> Q:
        """Firmware: the request a payload carries (struct.error when malformed)."""

    @abstractmethod
    def pack_result(self, result: R) -> tuple[bytes, Buffer | None]:
        """Firmware: the response head and the result buffer (None: no buffer), a
        bytes-like object of bytes (``len`` and slices count bytes)."""

    @abstractmethod
    def unpack_result(self, request: Q, head: bytes, data: Buffer | None) -> Any:
        """Host: the result of ``request`` from the response head and result buffer."""

    def decode_result(self, request: Q, head: bytes, data: Buffer | None, info: BoardInfo) -> Any:
        """Host: :meth:`unpack_result`, checked against the request. A board whose
        response is laid out otherwise (firmware being brought up) raises BoardFault
        naming the message, not a struct.error or an array of another shape."""
        try:
            result = self.unpack_result(request, head, data)
        except (struct.error, ValueError) as exc:
            raise BoardFault(
                f"the board's {self.msg(request).name} response is not laid out as "
                f"docs/wire-protocol.md says ({len(head)} head bytes, "
                f"{0 if data is None else memoryview(data).nbytes} result bytes): {exc}"
            ) from exc
        self.check_result(request, result, info)
        return result

    def check_result(self, request: Q, result: Any, info: BoardInfo) -> None:
        """Host: BoardFault when ``result`` is not what ``request`` asks for (what the
        layout alone does not settle)."""

    def result_bytes(self, request: Q, info: BoardInfo) -> int:
        """Response size to expect, bytes (scales the attempt timeout)."""
        return 64

    def device_seconds(
        self, request: Q, info: BoardInfo, times: DeviceTimes = REFERENCE_TIMES
    ) -> float:
        """Upper bound of the board's own time for the request, s, with ``times`` (the
        reference figures, or the board's longer declared ones)."""
        return 0.0


def _region_fields(tile: int, region: Region) -> tuple[int, int, int, int, int]:
    return (tile, region.row_offset, region.col_offset, region.rows, region.cols)


def _region(fields: tuple[Any, ...]) -> tuple[int, Region]:
    tile, row_offset, col_offset, rows, cols = fields[:5]
    return tile, Region(row_offset, col_offset, rows, cols)


def _resolved(region: Region | None) -> Region:
    assert region is not None, "requests reach the wire validated, regions resolved"
    return region


def _inside(region: Region, info: BoardInfo) -> bool:
    """Whether a resolved region is a non-empty rectangle of the tile."""
    return (
        0 <= region.row_offset < info.rows
        and 0 <= region.col_offset < info.cols
        and 0 < region.rows <= info.rows - region.row_offset
        and 0 < region.cols <= info.cols - region.col_offset
    )


def _cost(cost: Cost) -> bytes:
    return m.COST.pack(cost.time_ns, cost.energy_nj)


def _unpack_cost(head: bytes, offset: int) -> Cost:
    return Cost(*m.COST.unpack_from(head, offset))


def _array(data: Buffer | None, dtype: str, shape: tuple[int, ...]) -> Any:
    array = np.frombuffer(b"" if data is None else data, dtype)
    # Bytes from frames are read-only: copy them into an array of the caller's own.
    # A buffer already copied out for this result (a PCIe window) is used as it is.
    if not array.flags.writeable or not array.dtype.isnative:
        array = array.astype(dtype[1:])
    return array.reshape(shape)


def _le_bytes(array: Any, dtype: str) -> memoryview:
    """``array`` as little-endian ``dtype`` bytes, copied only when it must be converted."""
    return np.ascontiguousarray(array, dtype).data.cast("B")


class BoardInfoEntry(WireEntry[GetBoardInfoRequest, BoardDescription]):
    """GET_STATS: the running totals (the description itself comes with HELLO)."""

    request_type = GetBoardInfoRequest
    messages = (Msg.GET_STATS,)
    writes_nothing = True

    def pack_request(self, request: GetBoardInfoRequest, staged: StagedData | None) -> bytes:
        return b""

    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> GetBoardInfoRequest:
        return GetBoardInfoRequest()

    def pack_result(self, result: BoardDescription) -> tuple[bytes, bytes | None]:
        s = result.stats
        head = m.STATS_RESP.pack(
            s.total_cost.time_ns, s.total_cost.energy_nj, s.mvm_passes,
            s.cell_writes, s.clock_s, s.max_cell_writes,
        )  # fmt: skip
        return head, None

    def unpack_result(
        self, request: GetBoardInfoRequest, head: bytes, data: Buffer | None
    ) -> BoardStats:
        time_ns, energy_nj, passes, writes, clock_s, max_writes = m.STATS_RESP.unpack(head)
        return BoardStats(Cost(time_ns, energy_nj), passes, writes, clock_s, max_writes)


class ProgramEntry(WireEntry[ProgramRequest, ProgramReport]):
    """PROGRAM_COMMIT: targets staged as float32 [rows, cols], row-major."""

    request_type = ProgramRequest
    messages = (Msg.PROGRAM_COMMIT,)
    always_staged = True

    def data(self, request: ProgramRequest) -> bytes:
        return np.asarray(request.conductances, "<f4").tobytes()

    def pack_request(self, request: ProgramRequest, staged: StagedData | None) -> bytes:
        assert staged is not None, "Program's targets always travel through the stage"
        fields = _region_fields(request.tile, request.region)
        return m.PROGRAM_REQ.pack(*fields, staged.stage_id, staged.crc)

    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> ProgramRequest:
        fields = m.PROGRAM_REQ.unpack(payload)
        tile, region = _region(fields)
        stage_id, crc = fields[5:]
        data = stage.verified(stage_id, crc, 4 * region.rows * region.cols)
        g = np.frombuffer(data, "<f4").reshape(region.rows, region.cols)
        return ProgramRequest(tile, g, region.row_offset, region.col_offset)

    def pack_result(self, r: ProgramReport) -> tuple[bytes, bytes | None]:
        head = m.PROGRAM_RESP.pack(
            r.cells_written, r.verify_iterations, r.pulses, r.rms_error_us,
            r.max_error_us, r.unconverged_cells, r.cells_over_budget,
        )  # fmt: skip
        return head + _cost(r.cost), None

    def unpack_result(self, request: ProgramRequest, head: bytes, data: Buffer | None) -> Any:
        cells, iterations, pulses, rms, peak, unconverged, over = m.PROGRAM_RESP.unpack_from(head)
        cost = _unpack_cost(head, m.PROGRAM_RESP.size)
        return ProgramReport(cells, iterations, pulses, rms, peak, unconverged, over, cost)

    def device_seconds(
        self, request: ProgramRequest, info: BoardInfo, times: DeviceTimes = REFERENCE_TIMES
    ) -> float:
        cells: int = request.conductances.size
        return times.program_cell_s * cells


class ReadConductanceEntry(WireEntry[ReadConductanceRequest, ReadResult]):
    """READ_CONDUCTANCE: the region's conductances as a float32 result buffer."""

    request_type = ReadConductanceRequest
    messages = (Msg.READ_CONDUCTANCE,)
    result_at = m.COST.size
    writes_nothing = True

    def pack_request(self, request: ReadConductanceRequest, staged: StagedData | None) -> bytes:
        return m.REGION_REQ.pack(*_region_fields(request.tile, _resolved(request.region)))

    def unpack_request(
        self, msg: Msg, payload: Buffer, stage: StageReader
    ) -> ReadConductanceRequest:
        return ReadConductanceRequest(*_region(m.REGION_REQ.unpack(payload)))

    def pack_result(self, result: ReadResult) -> tuple[bytes, bytes | None]:
        return _cost(result.cost), result.conductances.astype("<f4").tobytes()

    def unpack_result(
        self, request: ReadConductanceRequest, head: bytes, data: Buffer | None
    ) -> ReadResult:
        g = _array(data, "<f4", _resolved(request.region).shape)
        return ReadResult(g, _unpack_cost(head, 0))

    def result_bytes(self, request: ReadConductanceRequest, info: BoardInfo) -> int:
        rows, cols = _resolved(request.region).shape
        return 4 * rows * cols

    def device_seconds(
        self,
        request: ReadConductanceRequest,
        info: BoardInfo,
        times: DeviceTimes = REFERENCE_TIMES,
    ) -> float:
        rows, cols = _resolved(request.region).shape
        return times.cell_s * rows * cols


class _PassEntry(WireEntry[Q, MVMResult]):
    """MVM / TRANSPOSE_MVM: voltages float32 [batch, inputs], inline or staged; a region
    (MVM_REGION, flagged in the head) when the pass does not span the whole tile."""

    result_at = m.MVM_RESP.size + m.COST.size
    writes_nothing = True

    def data(self, request: Any) -> bytes:
        return np.asarray(request.voltages, "<f4").tobytes()

    def pack_request(self, request: Any, staged: StagedData | None) -> bytes:
        if staged is None:
            return b"".join(self.request_parts(request))
        batch = request.voltages.shape[0]
        return pass_head(request.tile, request.region, batch, staged)

    def request_parts(self, request: Any) -> list[Buffer]:
        head = pass_head(request.tile, request.region, request.voltages.shape[0])
        return [head, _le_bytes(request.voltages, "<f4")]

    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> Q:
        tile, source, flags, batch, stage_id, _, crc = m.MVM_REQ.unpack_from(payload)
        at, region = m.MVM_REQ.size, None
        _check_source(source)
        if flags & ~m.PASS_REGION_FLAG:
            raise InlineSizeError(f"flags 0x{flags:02x}: only bit 0 (a region follows) is known")
        # The head, then tile, region and the inputs' size, in that order (§6), with a
        # region or without: one bad request is refused the same way on every board.
        check.check_tile(stage.info, tile)
        if flags:
            region = self._region(stage.info, tile, payload, at)
            at += m.MVM_REGION.size
        width = self.inputs(stage.info, region)
        size = 4 * batch * width
        if source == 0:
            data = payload[at:]
            if len(data) != size:
                raise InlineSizeError(f"{len(data)} input bytes, need {size}")
        else:
            data = stage.verified(stage_id, crc, size)
        voltages = np.frombuffer(data, "<f4").reshape(batch, width)
        request: Q = self.request_type(tile, voltages, region)
        return request

    def _region(self, info: BoardInfo, tile: int, payload: Buffer, at: int) -> Region:
        """The flagged region, checked before its size decides how many input bytes to
        expect (errors name region.rows etc., as the request's own checks would)."""
        check.check_tile(info, tile)
        return check.check_region(info, Region(*m.MVM_REGION.unpack_from(payload, at)))

    def pack_result(self, result: MVMResult) -> tuple[bytes, Buffer | None]:
        head = m.MVM_RESP.pack(result.saturated_outputs, 0) + _cost(result.cost)
        return head, _le_bytes(result.currents, "<f4")

    def check_result(self, request: Any, result: MVMResult, info: BoardInfo) -> None:
        want = [request.voltages.shape[0], self.outputs(info, request.region)]
        if list(result.currents.shape) != want:
            raise BoardFault(
                f"the board's {self.msg(request).name} response holds currents of shape "
                f"{list(result.currents.shape)}, expected {want} (the batch, the pass's "
                "outputs)"
            )

    def unpack_result(self, request: Any, head: bytes, data: Buffer | None) -> MVMResult:
        batch = request.voltages.shape[0]
        currents = _array(data, "<f4", (batch, -1))
        saturated = m.MVM_RESP.unpack_from(head)[0]
        return MVMResult(currents, saturated, _unpack_cost(head, m.MVM_RESP.size))

    def inputs(self, info: BoardInfo, region: Region | None = None) -> int:
        """Input vector length: the request type knows which side of the tile it drives."""
        width: int = (
            self.request_type.inputs(info)
            if region is None
            else self.request_type.region_inputs(region)
        )
        return width

    def outputs(self, info: BoardInfo, region: Region | None = None) -> int:
        """Output vector length of a pass over ``region`` (None: the whole tile)."""
        if region is None:
            return info.rows + info.cols - self.inputs(info)
        width: int = self.request_type.region_outputs(region)
        return width

    def result_bytes(self, request: Any, info: BoardInfo) -> int:
        batch: int = request.voltages.shape[0]
        return 4 * batch * self.outputs(info, request.region) + 40

    def device_seconds(
        self, request: Any, info: BoardInfo, times: DeviceTimes = REFERENCE_TIMES
    ) -> float:
        batch: int = request.voltages.shape[0]
        return batch * times.pass_s(info)


def pass_head(
    tile: int, region: Region | None, batch: int, staged: StagedData | None = None
) -> bytes:
    """An MVM / TRANSPOSE_MVM request head: MVM_REQ, then MVM_REGION for a region (resolved;
    None: the whole tile, the layout every board reads). Inline inputs (``staged`` None)
    follow it."""
    source, stage_id, crc = (0, 0, 0) if staged is None else (1, staged.stage_id, staged.crc)
    if region is None:
        return m.MVM_REQ.pack(tile, source, 0, batch, stage_id, 0, crc)
    head = m.MVM_REQ.pack(tile, source, m.PASS_REGION_FLAG, batch, stage_id, 0, crc)
    return head + m.MVM_REGION.pack(region.row_offset, region.col_offset, region.rows, region.cols)


class MVMEntry(_PassEntry[MVMRequest]):
    request_type = MVMRequest
    messages = (Msg.MVM,)


class TransposeMVMEntry(_PassEntry[TransposeMVMRequest]):
    request_type = TransposeMVMRequest
    messages = (Msg.TRANSPOSE_MVM,)


class PerturbEntry(WireEntry[PerturbRequest, PerturbReport]):
    """PERTURB (APPLY: region, sign, seed, amplitude_us) or RESTORE (region)."""

    request_type = PerturbRequest
    messages = (Msg.PERTURB, Msg.RESTORE)

    def msg(self, request: PerturbRequest) -> Msg:
        return Msg.PERTURB if request.mode is PerturbMode.APPLY else Msg.RESTORE

    def pack_request(self, request: PerturbRequest, staged: StagedData | None) -> bytes:
        fields = _region_fields(request.tile, _resolved(request.region))
        if request.mode is PerturbMode.RESTORE:
            return m.REGION_REQ.pack(*fields)
        return m.PERTURB_REQ.pack(*fields, request.sign, request.seed, request.amplitude_us)

    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> PerturbRequest:
        if msg == Msg.RESTORE:
            tile, region = _region(m.REGION_REQ.unpack(payload))
            return PerturbRequest(tile, PerturbMode.RESTORE, region=region)
        fields = m.PERTURB_REQ.unpack(payload)
        tile, region = _region(fields)
        sign, seed, amplitude_us = fields[5:]
        return PerturbRequest(tile, PerturbMode.APPLY, seed, amplitude_us, sign, region)

    def pack_result(self, r: PerturbReport) -> tuple[bytes, bytes | None]:
        head = m.PERTURB_RESP.pack(r.cells_written, r.clipped_cells, r.cells_over_budget, 0)
        return head + _cost(r.cost), None

    def unpack_result(self, request: PerturbRequest, head: bytes, data: Buffer | None) -> Any:
        cells, clipped, over, _ = m.PERTURB_RESP.unpack_from(head)
        return PerturbReport(cells, clipped, over, _unpack_cost(head, m.PERTURB_RESP.size))

    def result_bytes(self, request: PerturbRequest, info: BoardInfo) -> int:
        return m.PERTURB_RESP.size + m.COST.size

    def device_seconds(
        self, request: PerturbRequest, info: BoardInfo, times: DeviceTimes = REFERENCE_TIMES
    ) -> float:
        rows, cols = _resolved(request.region).shape
        return times.cell_s * rows * cols


class ReadWriteCountsEntry(WireEntry[ReadWriteCountsRequest, WriteCounts]):
    """READ_WRITE_COUNTS: write_budget, then the counts as a uint32 result buffer."""

    request_type = ReadWriteCountsRequest
    messages = (Msg.READ_WRITE_COUNTS,)
    result_at = m.COUNTS_RESP.size
    writes_nothing = True

    def pack_request(self, request: ReadWriteCountsRequest, staged: StagedData | None) -> bytes:
        return m.REGION_REQ.pack(*_region_fields(request.tile, _resolved(request.region)))

    def unpack_request(
        self, msg: Msg, payload: Buffer, stage: StageReader
    ) -> ReadWriteCountsRequest:
        return ReadWriteCountsRequest(*_region(m.REGION_REQ.unpack(payload)))

    def pack_result(self, result: WriteCounts) -> tuple[bytes, bytes | None]:
        return m.COUNTS_RESP.pack(result.write_budget), result.counts.astype("<u4").tobytes()

    def unpack_result(
        self, request: ReadWriteCountsRequest, head: bytes, data: Buffer | None
    ) -> WriteCounts:
        counts = _array(data, "<u4", _resolved(request.region).shape)
        return WriteCounts(counts, m.COUNTS_RESP.unpack_from(head)[0])

    def result_bytes(self, request: ReadWriteCountsRequest, info: BoardInfo) -> int:
        rows, cols = _resolved(request.region).shape
        return 4 * rows * cols


class CalibrateEntry(WireEntry[CalibrateRequest, CalibrationReport]):
    """CALIBRATE: tile in, gain and cost out."""

    request_type = CalibrateRequest
    messages = (Msg.CALIBRATE,)

    def pack_request(self, request: CalibrateRequest, staged: StagedData | None) -> bytes:
        return m.CALIBRATE_REQ.pack(request.tile)

    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> CalibrateRequest:
        return CalibrateRequest(*m.CALIBRATE_REQ.unpack(payload))

    def pack_result(self, result: CalibrationReport) -> tuple[bytes, bytes | None]:
        return m.CALIBRATE_RESP.pack(result.gain) + _cost(result.cost), None

    def unpack_result(self, request: CalibrateRequest, head: bytes, data: Buffer | None) -> Any:
        gain = m.CALIBRATE_RESP.unpack_from(head)[0]
        return CalibrationReport(gain, _unpack_cost(head, m.CALIBRATE_RESP.size))

    def device_seconds(
        self, request: CalibrateRequest, info: BoardInfo, times: DeviceTimes = REFERENCE_TIMES
    ) -> float:
        return CALIBRATE_PASSES * times.pass_s(info)


class AdvanceClockEntry(WireEntry[AdvanceClockRequest, ClockReading]):
    """ADVANCE_CLOCK: seconds in, the board clock (s) out."""

    request_type = AdvanceClockRequest
    messages = (Msg.ADVANCE_CLOCK,)

    def pack_request(self, request: AdvanceClockRequest, staged: StagedData | None) -> bytes:
        return m.CLOCK.pack(request.seconds)

    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> AdvanceClockRequest:
        return AdvanceClockRequest(*m.CLOCK.unpack(payload))

    def pack_result(self, result: ClockReading) -> tuple[bytes, bytes | None]:
        return m.CLOCK.pack(result.clock_s), None

    def unpack_result(self, request: AdvanceClockRequest, head: bytes, data: Buffer | None) -> Any:
        return ClockReading(float(m.CLOCK.unpack(head)[0]))


class PerturbedMVMEntry(WireEntry[PerturbedMVMRequest, PerturbedMVMResult]):
    """PERTURBED_MVM: region and counts, then the points and the inputs float32
    [batch, region rows], inline or staged together; the result is float32
    [points, batch, region cols]."""

    request_type = PerturbedMVMRequest
    messages = (Msg.PERTURBED_MVM,)
    result_at = m.PERTURBED_MVM_RESP.size + m.COST.size

    def data(self, request: PerturbedMVMRequest) -> bytes:
        return b"".join(self._body(request))

    @staticmethod
    def _body(request: PerturbedMVMRequest) -> list[Buffer]:
        points = b"".join(m.POINT.pack(p.seed, p.amplitude_us, p.sign) for p in request.points)
        return [points, _le_bytes(request.voltages, "<f4")]

    @staticmethod
    def _head(request: PerturbedMVMRequest, staged: StagedData | None) -> bytes:
        fields = _region_fields(request.tile, _resolved(request.region))
        source, stage_id, crc = (0, 0, 0) if staged is None else (1, staged.stage_id, staged.crc)
        batch = request.voltages.shape[0]
        return m.PERTURBED_MVM_REQ.pack(
            *fields, source, 0, len(request.points), batch, stage_id, 0, crc
        )

    def pack_request(self, request: PerturbedMVMRequest, staged: StagedData | None) -> bytes:
        if staged is None:
            return b"".join(self.request_parts(request))
        return self._head(request, staged)

    def request_parts(self, request: PerturbedMVMRequest) -> list[Buffer]:
        return [self._head(request, None), *self._body(request)]

    def unpack_request(self, msg: Msg, payload: Buffer, stage: StageReader) -> PerturbedMVMRequest:
        fields = m.PERTURBED_MVM_REQ.unpack_from(payload)
        tile, region = _region(fields)
        source, _, count, batch, stage_id, _, crc = fields[5:]
        _check_source(source)
        check.check_tile(stage.info, tile)
        # The region as sent (0 = to the tile edge) sets the input width; a region
        # outside the tile has none, and the board's check names its field.
        info = stage.info
        resolved = region.resolve(info.rows, info.cols)
        if not _inside(resolved, info):
            return PerturbedMVMRequest(tile, np.zeros((batch, 0), np.float32), (), region)
        width = resolved.rows
        size = count * m.POINT.size + 4 * batch * width
        if source == 0:
            body = payload[m.PERTURBED_MVM_REQ.size :]
            if len(body) != size:
                raise InlineSizeError(f"{len(body)} bytes of points and inputs, need {size}")
        else:
            body = stage.verified(stage_id, crc, size)
        split = count * m.POINT.size
        points = tuple(
            PerturbationPoint(seed, amplitude_us, sign)
            for seed, amplitude_us, sign in m.POINT.iter_unpack(bytes(body[:split]))
        )
        voltages = np.frombuffer(body[split:], "<f4").reshape(batch, width)
        return PerturbedMVMRequest(tile, voltages, points, region)

    def pack_result(self, r: PerturbedMVMResult) -> tuple[bytes, Buffer | None]:
        head = m.PERTURBED_MVM_RESP.pack(
            r.saturated_outputs, r.clipped_cells, r.cells_over_budget, 0, r.cells_written
        )
        return head + _cost(r.cost), _le_bytes(r.currents, "<f4")

    def unpack_result(
        self, request: PerturbedMVMRequest, head: bytes, data: Buffer | None
    ) -> PerturbedMVMResult:
        saturated, clipped, over, _, cells = m.PERTURBED_MVM_RESP.unpack_from(head)
        shape = (len(request.points), request.voltages.shape[0], _resolved(request.region).cols)
        currents = _array(data, "<f4", shape)
        cost = _unpack_cost(head, m.PERTURBED_MVM_RESP.size)
        return PerturbedMVMResult(currents, saturated, cells, clipped, over, cost)

    def result_bytes(self, request: PerturbedMVMRequest, info: BoardInfo) -> int:
        points, batch = len(request.points), int(request.voltages.shape[0])
        return 4 * points * batch * _resolved(request.region).cols + m.PERTURBED_MVM_RESP.size + 16

    def device_seconds(
        self,
        request: PerturbedMVMRequest,
        info: BoardInfo,
        times: DeviceTimes = REFERENCE_TIMES,
    ) -> float:
        rows, cols = _resolved(request.region).shape
        points, batch = len(request.points), int(request.voltages.shape[0])
        return (points + 1) * times.cell_s * rows * cols + points * batch * times.pass_s(info)


class InlineSizeError(ValueError):
    """An inline array whose length does not match the head, or a head flag the board
    does not know (BAD_PAYLOAD)."""


def _check_source(source: int) -> None:
    """A pass's ``source``: 0 (inputs inline) or 1 (staged); anything else is a head the
    board cannot read (BAD_PAYLOAD), not a stage to look for."""
    if source not in (0, 1):
        raise InlineSizeError(f"source {source}: 0 (inputs inline) or 1 (from the stage)")


PassRequest = MVMRequest | TransposeMVMRequest


def vectors_per_command(request: PassRequest, info: BoardInfo, stage_capacity: int) -> int:
    """Most vectors of ``request`` one command may carry (docs/wire-protocol.md §5.2): its
    inputs fit the stage, and its result fits the largest result a whole-tile pass of a
    full stage gives (the result buffer a board sizes, §11.1). At least 1."""
    entry: _PassEntry[Any] = _BY_REQUEST[type(request)]  # type: ignore[assignment]
    inputs, outputs = entry.inputs(info, request.region), entry.outputs(info, request.region)
    tile_inputs, tile_outputs = entry.inputs(info), entry.outputs(info)
    by_stage = stage_capacity // (4 * inputs)
    by_result = stage_capacity * tile_outputs // (4 * tile_inputs * outputs)
    return max(1, min(by_stage, by_result))


def perturbed_per_command(
    request: PerturbedMVMRequest, info: BoardInfo, stage_capacity: int
) -> tuple[int, int]:
    """Most passes (points × vectors) and most vectors of ``request`` one command may
    carry (docs/wire-protocol.md §6.2): its body (the points, then the inputs) fits the
    stage, and its result [points, batch, region cols] the result buffer every board has
    room for, a whole tile's conductances (§11.1). Each at least 1."""
    region = (request.region or Region()).resolve(info.rows, info.cols)
    body_room = stage_capacity - m.POINT.size * len(request.points)
    most_vectors = body_room // (4 * region.rows)
    most_passes = info.rows * info.cols // region.cols
    return max(1, most_passes), max(1, most_vectors)


def padded_to_tile(request: PassRequest, info: BoardInfo) -> PassRequest:
    """A region pass as the whole-tile pass that gives the same answer, for a board
    without Feature.REGION_PASS: the inputs at the region's lines, 0 V on every other
    (undriven) line. :func:`region_outputs` keeps the region's part of its result."""
    region = request.region
    assert region is not None, "only a region pass needs padding"
    entry: _PassEntry[Any] = _BY_REQUEST[type(request)]  # type: ignore[assignment]
    v = request.voltages
    padded = np.zeros((v.shape[0], entry.inputs(info)), np.float32)
    padded[:, _lines(request, region, inputs=True)] = v
    return type(request)(request.tile, padded)


def region_outputs(result: MVMResult, request: PassRequest) -> MVMResult:
    """The outputs of ``request``'s region in the result of its :func:`padded_to_tile`."""
    assert request.region is not None
    kept = np.ascontiguousarray(result.currents[:, _lines(request, request.region, inputs=False)])
    return MVMResult(kept, result.saturated_outputs, result.cost)


def _lines(request: PassRequest, region: Region, *, inputs: bool) -> slice:
    """The tile lines (rows or columns) of ``region`` that a pass drives or reads."""
    rows, cols = region.slices
    driven_rows = isinstance(request, MVMRequest)
    return rows if driven_rows == inputs else cols


ENTRIES: tuple[WireEntry[Any, Any], ...] = (
    BoardInfoEntry(),
    ProgramEntry(),
    ReadConductanceEntry(),
    MVMEntry(),
    TransposeMVMEntry(),
    PerturbEntry(),
    ReadWriteCountsEntry(),
    CalibrateEntry(),
    AdvanceClockEntry(),
    PerturbedMVMEntry(),
)
"""The wire entry of every board operation (sidra.drivers.operations.OPERATIONS)."""

_BY_REQUEST = {entry.request_type: entry for entry in ENTRIES}
_BY_MESSAGE: dict[int, WireEntry[Any, Any]] = {
    int(msg): entry for entry in ENTRIES for msg in entry.messages
}


def entry_of(request: Request) -> WireEntry[Any, Any]:
    """The wire entry of ``request``'s operation."""
    return _BY_REQUEST[type(request)]


def entry_for_message(msg: int) -> WireEntry[Any, Any] | None:
    """The wire entry that handles message id ``msg`` (None: not a board operation)."""
    return _BY_MESSAGE.get(msg)
