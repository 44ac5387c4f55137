"""Message ids, status codes and payload layouts of the serial protocol.

Host (``sidra.drivers.serial``) and virtual firmware (``sidra.emulator.firmware``)
both use these codecs, so one table defines the wire. Every integer and float is
little-endian; analog arrays are float32 so the serial path carries exactly the
values the gRPC contract does. docs/wire-protocol.md §4 is the normative text.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from sidra.drivers.types import Cost, Region

__all__ = [
    "COST",
    "ERROR_TEXT",
    "HELLO_REQ",
    "MVM_REQ",
    "PERTURB_REQ",
    "PROGRAM_REQ",
    "REGION_REQ",
    "RESULT_HEAD",
    "RESULT_READ_REQ",
    "STAGE_BEGIN_REQ",
    "STAGE_BEGIN_RESP",
    "STAGE_DATA_HEAD",
    "STAGE_VERIFY_REQ",
    "Feature",
    "Hello",
    "Msg",
    "Status",
    "decode_error",
    "encode_error",
    "pack_hello",
    "pack_str",
    "region_fields",
    "unpack_hello",
    "unpack_str",
]


class Msg(IntEnum):
    """Message ids (header ``msg``); a response repeats its request's id."""

    HELLO = 0x01
    PING = 0x02
    GET_STATS = 0x03
    GET_LINK_STATS = 0x04
    GET_PROFILE = 0x05
    RESULT_READ = 0x06
    STAGE_BEGIN = 0x10
    STAGE_DATA = 0x11
    STAGE_VERIFY = 0x12
    PROGRAM_COMMIT = 0x20
    READ_CONDUCTANCE = 0x21
    MVM = 0x22
    TRANSPOSE_MVM = 0x23
    PERTURB = 0x24
    RESTORE = 0x25
    READ_WRITE_COUNTS = 0x26
    CALIBRATE = 0x27
    ADVANCE_CLOCK = 0x28


class Status(IntEnum):
    """Response status codes (header ``status``); 0 is success."""

    OK = 0x00
    UNKNOWN_MESSAGE = 0x01
    BAD_PAYLOAD = 0x02
    BAD_FRAME = 0x03
    STALE_EPOCH = 0x04
    STALE_REQUEST = 0x05
    UNSUPPORTED_VERSION = 0x06
    NO_STAGE = 0x10
    STAGE_OVERFLOW = 0x11
    VERIFY_FAILED = 0x12
    NOT_VERIFIED = 0x13
    NO_RESULT = 0x14
    INVALID_ARGUMENT = 0x20
    OUT_OF_RANGE = 0x21
    FAILED_PRECONDITION = 0x22
    UNSUPPORTED = 0x23
    INTERNAL = 0x30


class Feature(IntFlag):
    """HELLO ``features`` bits."""

    EMULATED = 0x0001
    """The board is the software emulator (it has a virtual clock)."""
    PROFILE = 0x0002
    """GET_PROFILE returns a JSON board profile."""


REGION = "HHHHH"  # tile, row_offset, col_offset, rows, cols
REGION_REQ = struct.Struct("<" + REGION)
COST = struct.Struct("<dd")  # time_ns, energy_nj
RESULT_HEAD = struct.Struct("<II")  # result_len, result_crc32; inline bytes follow
RESULT_READ_REQ = struct.Struct("<HHII")  # result_id, reserved, offset, length
STAGE_BEGIN_REQ = struct.Struct("<I")  # total_len
STAGE_BEGIN_RESP = struct.Struct("<HHI")  # stage_id, reserved, capacity
STAGE_DATA_HEAD = struct.Struct("<HHI")  # stage_id, reserved, offset; data follows
STAGE_VERIFY_REQ = struct.Struct("<HHI")  # stage_id, reserved, crc32
PROGRAM_REQ = struct.Struct("<" + REGION + "HI")  # region, stage_id, crc32
PROGRAM_RESP = struct.Struct("<IIQddII")  # cells, iterations, pulses, rms, max, unconv, over
MVM_REQ = struct.Struct("<HBBIHHI")  # tile, source, reserved, batch, stage_id, reserved, crc32
MVM_RESP = struct.Struct("<II")  # saturated_outputs, reserved
PERTURB_REQ = struct.Struct("<" + REGION + "bxQd")  # region, sign, seed, amplitude_us
PERTURB_RESP = struct.Struct("<IIII")  # cells_written, clipped, over_budget, reserved
COUNTS_RESP = struct.Struct("<Q")  # write_budget; result follows
CALIBRATE_REQ = struct.Struct("<H")
CALIBRATE_RESP = struct.Struct("<d")  # gain
CLOCK = struct.Struct("<d")  # seconds (request) / clock_s (response)
STATS_RESP = struct.Struct("<ddQQdQ")  # time_ns, energy_nj, passes, writes, clock_s, max_writes
HELLO_REQ = struct.Struct("<HHII")  # host_version, reserved, host_max_payload, want_baud
HELLO_FIXED = struct.Struct("<HHIIIIHHHBBdddB")
"""proto_version, features, boot_counter, max_payload, stage_capacity, uptime_ms,
tile_count, rows, cols, dac_bits, adc_bits, g_min_us, g_max_us, read_voltage_max_v,
n_bauds; then u32 bauds[n_bauds] and str8 model, serial, firmware, preset."""
LINK_STATS_FIELDS = (
    "rx_frames",
    "tx_frames",
    "rx_bytes",
    "tx_bytes",
    "bad_frames",
    "naks_sent",
    "replays",
    "stale_requests",
    "stale_epoch",
    "executed",
)
LINK_STATS_RESP = struct.Struct("<" + "Q" * len(LINK_STATS_FIELDS))
ERROR_TEXT = "field, value (JSON), text: three str16"


def region_fields(tile: int, region: Region) -> tuple[int, int, int, int, int]:
    return (tile, region.row_offset, region.col_offset, region.rows, region.cols)


def pack_cost(cost: Cost) -> bytes:
    return COST.pack(cost.time_ns, cost.energy_nj)


def unpack_cost(data: bytes, offset: int = 0) -> Cost:
    return Cost(*COST.unpack_from(data, offset))


def pack_str(text: str, width: int = 1) -> bytes:
    raw = text.encode("utf-8")[: (1 << (8 * width)) - 1]
    return len(raw).to_bytes(width, "little") + raw


def unpack_str(data: bytes, offset: int, width: int = 1) -> tuple[str, int]:
    """The string at ``offset`` and the offset after it."""
    n = int.from_bytes(data[offset : offset + width], "little")
    end = offset + width + n
    if end > len(data):
        raise struct.error(f"string of {n} bytes runs past the payload")
    return data[offset + width : end].decode("utf-8"), end


@dataclass(frozen=True, slots=True)
class Hello:
    """The device's HELLO response: what the host needs to drive the board."""

    proto_version: int
    features: Feature
    boot_counter: int
    max_payload: int
    stage_capacity: int
    uptime_ms: int
    tile_count: int
    rows: int
    cols: int
    dac_bits: int
    adc_bits: int
    g_min_us: float
    g_max_us: float
    read_voltage_max_v: float
    bauds: tuple[int, ...]
    model: str
    serial_number: str
    firmware_version: str
    preset: str

    @property
    def epoch(self) -> int:
        return epoch_of(self.boot_counter)


def epoch_of(boot_counter: int) -> int:
    """The header epoch of a boot counter: its low 16 bits, 0 mapped to 1 (0 means
    "unknown" in requests sent before HELLO)."""
    return (boot_counter & 0xFFFF) or 1


def pack_hello(h: Hello) -> bytes:
    fixed = HELLO_FIXED.pack(
        h.proto_version, int(h.features), h.boot_counter, h.max_payload, h.stage_capacity,
        h.uptime_ms, h.tile_count, h.rows, h.cols, h.dac_bits, h.adc_bits,
        h.g_min_us, h.g_max_us, h.read_voltage_max_v, len(h.bauds),
    )  # fmt: skip
    bauds = struct.pack(f"<{len(h.bauds)}I", *h.bauds)
    names = (h.model, h.serial_number, h.firmware_version, h.preset)
    return fixed + bauds + b"".join(pack_str(s) for s in names)


def unpack_hello(data: bytes) -> Hello:
    fixed = HELLO_FIXED.unpack_from(data)
    n_bauds = fixed[-1]
    offset = HELLO_FIXED.size
    bauds = struct.unpack_from(f"<{n_bauds}I", data, offset)
    offset += 4 * n_bauds
    names = []
    for _ in range(4):
        text, offset = unpack_str(data, offset)
        names.append(text)
    (version, features, boot, max_payload, capacity, uptime, tiles, rows, cols, dac, adc,
     g_min, g_max, v_max, _) = fixed  # fmt: skip
    return Hello(
        version, Feature(features), boot, max_payload, capacity, uptime, tiles, rows, cols,
        dac, adc, g_min, g_max, v_max, bauds, *names,
    )  # fmt: skip


def encode_error(field: str, value: Any, text: str) -> bytes:
    """Error payload: which field, its value as JSON (so numbers stay numbers), and the
    allowed values (argument errors) or a message (other errors)."""
    try:
        value_json = json.dumps(value)
    except (TypeError, ValueError):
        value_json = json.dumps(str(value))
    return b"".join(pack_str(s, 2) for s in (field, value_json, text))


def decode_error(data: bytes) -> tuple[str, Any, str]:
    try:
        field, offset = unpack_str(data, 0, 2)
        value_json, offset = unpack_str(data, offset, 2)
        text, _ = unpack_str(data, offset, 2)
        return field, json.loads(value_json) if value_json else None, text
    except (struct.error, UnicodeDecodeError, ValueError):
        return "", None, data.decode("utf-8", "replace")
