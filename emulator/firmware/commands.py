"""What the virtual board does for each message (docs/wire-protocol.md §6).

Each handler takes the request payload and returns ``(status, payload)``. The
board behind them is an :class:`EmulatorDriver`, whose public methods validate
every request exactly as real firmware must (the host validates too, but a
board never trusts its host). Arrays cross as little-endian float32 / uint32,
so results are bit-identical to ``emu://`` for the same seed.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sidra.drivers.types import Cost, PerturbReport, Region
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.messages import Msg, Status
from sidra.emulator.driver import EmulatorDriver

__all__ = ["Commands", "Reply", "WireError"]

Reply = tuple[Status, bytes]


class WireError(Exception):
    """A request the board refuses for a protocol reason (status + message)."""

    def __init__(self, status: Status, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass
class _Stage:
    stage_id: int
    data: bytearray
    verified_crc: int | None = None


@dataclass
class _Result:
    result_id: int
    data: bytes


def _region(fields: tuple[int, ...]) -> tuple[int, Region]:
    tile, row_offset, col_offset, rows, cols = fields[:5]
    return tile, Region(row_offset, col_offset, rows, cols)


def _cost(cost: Cost) -> bytes:
    return m.COST.pack(cost.time_ns, cost.energy_nj)


class Commands:
    """Message handlers over one emulated board, with its stage and result buffers."""

    def __init__(self, driver: EmulatorDriver, stage_capacity: int) -> None:
        self.driver = driver
        self.stage_capacity = stage_capacity
        self.max_payload = m.HELLO_REQ.size  # set by the device after HELLO
        self.stage: _Stage | None = None
        self.result: _Result | None = None
        self.handlers: dict[Msg, Callable[[int, bytes], Reply]] = {
            Msg.GET_STATS: self.get_stats,
            Msg.GET_PROFILE: self.get_profile,
            Msg.RESULT_READ: self.result_read,
            Msg.STAGE_BEGIN: self.stage_begin,
            Msg.STAGE_DATA: self.stage_data,
            Msg.STAGE_VERIFY: self.stage_verify,
            Msg.PROGRAM_COMMIT: self.program_commit,
            Msg.READ_CONDUCTANCE: self.read_conductance,
            Msg.MVM: lambda req_id, payload: self.mvm(req_id, payload, transpose=False),
            Msg.TRANSPOSE_MVM: lambda req_id, payload: self.mvm(req_id, payload, transpose=True),
            Msg.PERTURB: self.perturb,
            Msg.RESTORE: self.restore,
            Msg.READ_WRITE_COUNTS: self.read_write_counts,
            Msg.CALIBRATE: self.calibrate,
            Msg.ADVANCE_CLOCK: self.advance_clock,
        }

    # -- results larger than a frame -------------------------------------------------------

    def _with_result(self, req_id: int, head: bytes, data: bytes) -> Reply:
        """``head | result_len | result_crc | as much of data as fits``; the rest stays in
        the result buffer for RESULT_READ."""
        self.result = _Result(req_id, data)
        room = self.max_payload - len(head) - m.RESULT_HEAD.size
        inline = data[: max(room, 0)]
        return Status.OK, head + m.RESULT_HEAD.pack(len(data), zlib.crc32(data)) + inline

    def result_read(self, req_id: int, payload: bytes) -> Reply:
        result_id, _, offset, length = m.RESULT_READ_REQ.unpack(payload)
        if self.result is None or self.result.result_id != result_id:
            raise WireError(Status.NO_RESULT, f"no result {result_id} (newer command ran?)")
        if offset > len(self.result.data) or length > self.max_payload:
            raise WireError(Status.BAD_PAYLOAD, f"offset {offset} / length {length} out of range")
        return Status.OK, self.result.data[offset : offset + length]

    # -- staged input ----------------------------------------------------------------------

    def stage_begin(self, req_id: int, payload: bytes) -> Reply:
        (total,) = m.STAGE_BEGIN_REQ.unpack(payload)
        if total > self.stage_capacity:
            raise WireError(
                Status.STAGE_OVERFLOW, f"{total} bytes > stage capacity {self.stage_capacity}"
            )
        self.stage = _Stage(req_id, bytearray(total))
        return Status.OK, m.STAGE_BEGIN_RESP.pack(req_id, 0, self.stage_capacity)

    def _stage(self, stage_id: int) -> _Stage:
        if self.stage is None or self.stage.stage_id != stage_id:
            raise WireError(Status.NO_STAGE, f"no open stage {stage_id}")
        return self.stage

    def stage_data(self, req_id: int, payload: bytes) -> Reply:
        stage_id, _, offset = m.STAGE_DATA_HEAD.unpack_from(payload)
        stage = self._stage(stage_id)
        chunk = payload[m.STAGE_DATA_HEAD.size :]
        if offset + len(chunk) > len(stage.data):
            raise WireError(
                Status.STAGE_OVERFLOW,
                f"bytes {offset}..{offset + len(chunk)} past the stage's {len(stage.data)}",
            )
        stage.data[offset : offset + len(chunk)] = chunk
        stage.verified_crc = None
        return Status.OK, b""

    def stage_verify(self, req_id: int, payload: bytes) -> Reply:
        stage_id, _, crc = m.STAGE_VERIFY_REQ.unpack(payload)
        stage = self._stage(stage_id)
        actual = zlib.crc32(stage.data)
        if actual != crc:
            return Status.VERIFY_FAILED, struct.pack("<I", actual)
        stage.verified_crc = crc
        return Status.OK, struct.pack("<I", actual)

    def _verified(self, stage_id: int, crc: int, size: int) -> bytes:
        stage = self._stage(stage_id)
        if stage.verified_crc is None or stage.verified_crc != crc:
            raise WireError(Status.NOT_VERIFIED, f"stage {stage_id} not verified with that CRC")
        if len(stage.data) != size:
            raise WireError(Status.BAD_PAYLOAD, f"stage holds {len(stage.data)} bytes, need {size}")
        return bytes(stage.data)

    # -- board operations ------------------------------------------------------------------

    def program_commit(self, req_id: int, payload: bytes) -> Reply:
        fields = m.PROGRAM_REQ.unpack(payload)
        tile, region = _region(fields)
        stage_id, crc = fields[5:]
        data = self._verified(stage_id, crc, 4 * region.rows * region.cols)
        g = np.frombuffer(data, "<f4").reshape(region.rows, region.cols)
        r = self.driver.program(tile, g, row_offset=region.row_offset, col_offset=region.col_offset)
        self.stage = None  # consumed: a re-sent COMMIT can never program twice
        head = m.PROGRAM_RESP.pack(
            r.cells_written, r.verify_iterations, r.pulses, r.rms_error_us,
            r.max_error_us, r.unconverged_cells, r.cells_over_budget,
        )  # fmt: skip
        return Status.OK, head + _cost(r.cost)

    def mvm(self, req_id: int, payload: bytes, *, transpose: bool) -> Reply:
        tile, source, _, batch, stage_id, _, crc = m.MVM_REQ.unpack_from(payload)
        info = self.driver.info
        width = info.cols if transpose else info.rows
        size = 4 * batch * width
        if source == 0:
            data = payload[m.MVM_REQ.size :]
            if len(data) != size:
                raise WireError(Status.BAD_PAYLOAD, f"{len(data)} input bytes, need {size}")
        else:
            data = self._verified(stage_id, crc, size)
            self.stage = None
        v = np.frombuffer(data, "<f4").reshape(batch, width)
        run = self.driver.transpose_mvm if transpose else self.driver.mvm
        result = run(tile, v)
        head = m.MVM_RESP.pack(result.saturated_outputs, 0) + _cost(result.cost)
        return self._with_result(req_id, head, result.currents.astype("<f4").tobytes())

    def read_conductance(self, req_id: int, payload: bytes) -> Reply:
        tile, region = _region(m.REGION_REQ.unpack(payload))
        result = self.driver.read_conductance(tile, region)
        data = result.conductances.astype("<f4").tobytes()
        return self._with_result(req_id, _cost(result.cost), data)

    def perturb(self, req_id: int, payload: bytes) -> Reply:
        fields = m.PERTURB_REQ.unpack(payload)
        tile, region = _region(fields)
        sign, seed, amplitude_us = fields[5:]
        report = self.driver.perturb(tile, seed, amplitude_us, sign, region)
        return Status.OK, self._perturb_reply(report)

    def restore(self, req_id: int, payload: bytes) -> Reply:
        tile, region = _region(m.REGION_REQ.unpack(payload))
        return Status.OK, self._perturb_reply(self.driver.restore(tile, region))

    @staticmethod
    def _perturb_reply(r: PerturbReport) -> bytes:
        head = m.PERTURB_RESP.pack(r.cells_written, r.clipped_cells, r.cells_over_budget, 0)
        return head + _cost(r.cost)

    def read_write_counts(self, req_id: int, payload: bytes) -> Reply:
        tile, region = _region(m.REGION_REQ.unpack(payload))
        counts = self.driver.read_write_counts(tile, region)
        data = counts.counts.astype("<u4").tobytes()
        return self._with_result(req_id, m.COUNTS_RESP.pack(counts.write_budget), data)

    def calibrate(self, req_id: int, payload: bytes) -> Reply:
        (tile,) = m.CALIBRATE_REQ.unpack(payload)
        report = self.driver.calibrate(tile)
        return Status.OK, m.CALIBRATE_RESP.pack(report.gain) + _cost(report.cost)

    def advance_clock(self, req_id: int, payload: bytes) -> Reply:
        (seconds,) = m.CLOCK.unpack(payload)
        return Status.OK, m.CLOCK.pack(self.driver.advance_clock(seconds))

    def get_stats(self, req_id: int, payload: bytes) -> Reply:
        s = self.driver.stats()
        return Status.OK, m.STATS_RESP.pack(
            s.total_cost.time_ns, s.total_cost.energy_nj, s.mvm_passes,
            s.cell_writes, s.clock_s, s.max_cell_writes,
        )  # fmt: skip

    def get_profile(self, req_id: int, payload: bytes) -> Reply:
        text = json.dumps(self.driver.info.profile, separators=(",", ":")).encode("utf-8")
        return self._with_result(req_id, b"", text)
