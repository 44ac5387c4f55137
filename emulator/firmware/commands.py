"""What the virtual board does for each message (docs/wire-protocol.md §6).

Each handler takes the request payload and returns ``(status, payload)``. The
protocol's own messages (stage, result reads, profile) are handled here; every
board operation is decoded and encoded by its wire entry
(:mod:`sidra.drivers.wire.operations`, the table the host driver uses too) and
run by an :class:`EmulatorDriver`, whose ``run`` validates every request
exactly as real firmware must (the host validates too, but a board never
trusts its host). Arrays cross as little-endian float32 / uint32, so results
are bit-identical to ``emu://`` for the same seed.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidra.drivers.types import BoardInfo
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.messages import Msg, Status
from sidra.drivers.wire.operations import ENTRIES, InlineSizeError, WireEntry
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


class Commands:
    """Message handlers over one emulated board, with its stage and result buffers."""

    def __init__(self, driver: EmulatorDriver, stage_capacity: int) -> None:
        self.driver = driver
        self.stage_capacity = stage_capacity
        self.max_payload = m.HELLO_REQ.size  # set by the device after HELLO
        self.stage: _Stage | None = None
        self.result: _Result | None = None
        self.handlers: dict[Msg, Callable[[int, bytes], Reply]] = {
            Msg.GET_PROFILE: self.get_profile,
            Msg.RESULT_READ: self.result_read,
            Msg.STAGE_BEGIN: self.stage_begin,
            Msg.STAGE_DATA: self.stage_data,
            Msg.STAGE_VERIFY: self.stage_verify,
        }
        for entry in ENTRIES:  # every board operation, from its wire entry
            for msg in entry.messages:
                self.handlers[msg] = self.operation(entry, msg)

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

    @property
    def info(self) -> BoardInfo:
        """The board's description (array widths for the request decoders)."""
        return self.driver.info

    def verified(self, stage_id: int, crc: int, size: int) -> bytes:
        """The stage's bytes for a command that names it; the stage is consumed, so a
        re-sent command can never run on it twice."""
        data = self._verified(stage_id, crc, size)
        self.stage = None
        return data

    def operation(self, entry: WireEntry[Any, Any], msg: Msg) -> Callable[[int, bytes], Reply]:
        """The handler of message ``msg`` of one board operation: decode, run, encode."""

        def handle(req_id: int, payload: bytes) -> Reply:
            try:
                request = entry.unpack_request(msg, payload, self)
            except InlineSizeError as exc:
                raise WireError(Status.BAD_PAYLOAD, str(exc)) from exc
            head, data = entry.pack_result(self.driver.run(request))
            if data is None:
                return Status.OK, head
            return self._with_result(req_id, head, bytes(data))

        return handle

    def get_profile(self, req_id: int, payload: bytes) -> Reply:
        text = json.dumps(self.driver.info.profile, separators=(",", ":")).encode("utf-8")
        return self._with_result(req_id, b"", text)
