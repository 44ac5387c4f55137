"""Message ids, status codes and payload layouts of the serial protocol.

Host (``sidra.drivers.serial``) and virtual firmware (``sidra.emulator.firmware``)
both use these codecs, so one table defines the wire. Every integer and float is
little-endian; analog arrays are float32 so the serial path carries exactly the
values the gRPC contract does. docs/wire-protocol.md is the normative text
(§3 HELLO, §6 messages, §8 status codes and error payloads).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from sidra.drivers.errors import (
    WIRE_STATUS,
    BoardFault,
    InvalidArgument,
    SidraError,
    exception_for,
    status_for,
)
from sidra.drivers.types import BoardTiming, Cost, Region
from sidra.drivers.wire.device_times import CommandTimes
from sidra.drivers.wire.framing import MIN_PAYLOAD

__all__ = [
    "COST",
    "DEFAULT_CACHE_DEPTH",
    "ERROR_FIELD_LIMIT",
    "ERROR_TEXT_LIMIT",
    "ERROR_VALUE_LIMIT",
    "HELLO_COMMAND_TIMES",
    "HELLO_LIMITS",
    "HELLO_REQ",
    "MVM_REGION",
    "MVM_REQ",
    "NO_VALUE",
    "PASS_REGION_FLAG",
    "PERTURBED_MVM_REQ",
    "PERTURBED_MVM_RESP",
    "PERTURB_REQ",
    "POINT",
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
    "error_exception",
    "error_reply",
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
    BOOT = 0x07
    """Board to host only: the unsolicited notice after a (re)boot. No request carries it,
    so it can never be mistaken for the answer to one."""
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
    PERTURBED_MVM = 0x29


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
    REGION_PASS = 0x0004
    """MVM and TRANSPOSE_MVM take a region (MVM_REGION after the head, flag
    :data:`PASS_REGION_FLAG`); a host never sends one to a board without this bit."""
    HOST_RESULTS = 0x0008
    """PCIe only (register map 1.2): a pass's result array can be written into host
    memory (HOST_MEM_BASE, a submission's result_addr) instead of the output window."""


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
MVM_REQ = struct.Struct("<HBBIHHI")  # tile, source, flags, batch, stage_id, reserved, crc32
MVM_REGION = struct.Struct("<HHHH")  # row_offset, col_offset, rows, cols: after MVM_REQ if flagged
PASS_REGION_FLAG = 0x01
"""MVM_REQ ``flags`` bit: MVM_REGION follows the head (boards with Feature.REGION_PASS)."""
MVM_RESP = struct.Struct("<II")  # saturated_outputs, reserved
PERTURB_REQ = struct.Struct("<" + REGION + "bxQd")  # region, sign, seed, amplitude_us
PERTURB_RESP = struct.Struct("<IIII")  # cells_written, clipped, over_budget, reserved
PERTURBED_MVM_REQ = struct.Struct("<" + REGION + "BBHIHHIxx")
"""region, source, reserved, points, batch, stage_id, reserved, crc32, reserved; then
``points`` × :data:`POINT`, then the inline inputs (source 0)."""
POINT = struct.Struct("<Qdb7x")  # seed, amplitude_us, sign, reserved
PERTURBED_MVM_RESP = struct.Struct("<IIIIQ")
"""saturated_outputs, clipped_cells, cells_over_budget, reserved, cells_written; then COST."""
COUNTS_RESP = struct.Struct("<Q")  # write_budget; result follows
CALIBRATE_REQ = struct.Struct("<H")
CALIBRATE_RESP = struct.Struct("<d")  # gain
CLOCK = struct.Struct("<d")  # seconds (request) / clock_s (response)
STATS_RESP = struct.Struct("<ddQQdQ")  # time_ns, energy_nj, passes, writes, clock_s, max_writes
HELLO_REQ = struct.Struct("<HHII")  # host_version, reserved, host_max_payload, want_baud
HELLO_FIXED = struct.Struct("<HHIIIIHHHBBdddB")
"""proto_version, features, boot_counter, max_payload, stage_capacity, uptime_ms,
tile_count, rows, cols, dac_bits, adc_bits, g_min_us, g_max_us, read_voltage_max_v,
n_bauds; then u32 bauds[n_bauds], str8 model, serial, firmware, preset, then
:data:`HELLO_LIMITS`."""
HELLO_LIMITS = struct.Struct("<IHH5d")
"""board_max_payload, cache_depth, reserved, then the timing model: mvm_pass_ns,
write_pass_ns, verify_read_ns, host_loss_ns, board_power_w. Appended after the
strings so that a host reading only the older fields still parses the response."""
HELLO_COMMAND_TIMES = struct.Struct("<IIII")
"""The board's worst-case times (:class:`~sidra.drivers.wire.device_times.CommandTimes`):
program_cell_ns, cell_ns, pass_vector_ns, command_us. Appended after
:data:`HELLO_LIMITS`; a board that ends before it declares none (0 is "not declared"
too)."""
DEFAULT_CACHE_DEPTH = 16
"""Cache depth assumed of a board whose HELLO response ends before HELLO_LIMITS."""
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
ERROR_FIELD_LIMIT = 64
"""Most bytes of ``field`` in an error payload."""
ERROR_VALUE_LIMIT = 200
"""Most bytes of the echoed value (its JSON text) in an error payload: an error about a
huge request stays small."""
ERROR_TEXT_LIMIT = 512
"""Most bytes of ``text`` in an error payload."""


def region_fields(tile: int, region: Region) -> tuple[int, int, int, int, int]:
    return (tile, region.row_offset, region.col_offset, region.rows, region.cols)


def pack_cost(cost: Cost) -> bytes:
    return COST.pack(cost.time_ns, cost.energy_nj)


def unpack_cost(data: bytes, offset: int = 0) -> Cost:
    return Cost(*COST.unpack_from(data, offset))


def pack_str(text: str, width: int = 1) -> bytes:
    raw = _utf8_prefix(text, (1 << (8 * width)) - 1)
    return len(raw).to_bytes(width, "little") + raw


def _utf8_prefix(text: str, limit: int) -> bytes:
    """``text`` as UTF-8, cut to at most ``limit`` bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return raw
    return raw[: max(limit, 0)].decode("utf-8", "ignore").encode("utf-8")


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
    board_max_payload: int = 0
    """Largest payload the board can ever receive or send (its frame buffers), bytes."""
    cache_depth: int = DEFAULT_CACHE_DEPTH
    """Responses the board keeps for replay (§4.3); a host never has more requests
    outstanding than this."""
    timing: BoardTiming = BoardTiming()
    """The board's timing and power model (zeros: not reported)."""
    command_times: CommandTimes = CommandTimes()
    """How long the board may take over each command (zeros: the host's own figures)."""

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
    t = h.timing
    limits = HELLO_LIMITS.pack(
        h.board_max_payload, h.cache_depth, 0,
        t.mvm_pass_ns, t.write_pass_ns, t.verify_read_ns, t.host_loss_ns, t.board_power_w,
    )  # fmt: skip
    c = h.command_times
    times = HELLO_COMMAND_TIMES.pack(c.program_cell_ns, c.cell_ns, c.pass_vector_ns, c.command_us)
    return fixed + bauds + b"".join(pack_str(s) for s in names) + limits + times


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
    # A board written before HELLO_LIMITS existed ends here: its buffers are what it
    # negotiated, its cache the 16 the spec then required, its timing unknown.
    board_max, depth, timing = max_payload, DEFAULT_CACHE_DEPTH, BoardTiming()
    if len(data) - offset >= HELLO_LIMITS.size:
        board_max, depth, _, *times = HELLO_LIMITS.unpack_from(data, offset)
        timing = BoardTiming(*times)
        offset += HELLO_LIMITS.size
    command_times = CommandTimes()  # a board written before the block: none declared
    if len(data) - offset >= HELLO_COMMAND_TIMES.size:
        command_times = CommandTimes(*HELLO_COMMAND_TIMES.unpack_from(data, offset))
    model, serial_number, firmware, preset = names
    return Hello(
        version, Feature(features), boot, max_payload, capacity, uptime, tiles, rows, cols,
        dac, adc, g_min, g_max, v_max, bauds, model, serial_number, firmware, preset,
        board_max, depth, timing, command_times,
    )  # fmt: skip


NO_VALUE: Any = object()
"""``encode_error``'s value when the error echoes none (the value field stays empty)."""

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
"""JSON has no NaN or infinity: the error payload carries them as these strings."""


def encode_error(
    text: str, field: str = "", value: Any = NO_VALUE, *, limit: int = MIN_PAYLOAD
) -> bytes:
    """Error payload (three str16): the field, the value received as JSON (empty when
    there is none) and what is allowed or what went wrong. Each part is capped, and
    the whole never exceeds ``limit`` bytes (the negotiated max payload)."""
    field_raw = _utf8_prefix(field, ERROR_FIELD_LIMIT)
    budget = limit - 6 - len(field_raw)
    value_raw = b"" if value is NO_VALUE else _json(value, min(ERROR_VALUE_LIMIT, budget // 2))
    text_raw = _utf8_prefix(text, min(ERROR_TEXT_LIMIT, budget - len(value_raw)))
    return b"".join(len(r).to_bytes(2, "little") + r for r in (field_raw, value_raw, text_raw))


def _json(value: Any, cap: int) -> bytes:
    """``value`` as strict JSON of at most ``cap`` bytes; longer values become a JSON
    string holding their start and ``...``."""
    plain = _plain(value, cap)
    raw = json.dumps(plain, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()
    if len(raw) <= cap:
        return raw
    text, keep = raw.decode("utf-8"), cap
    while True:
        cut = json.dumps(text[:keep] + "...", ensure_ascii=False).encode("utf-8")
        if len(cut) <= cap or keep == 0:
            return cut
        keep = max(0, keep - max(1, len(cut) - cap))


def _plain(value: Any, cap: int) -> Any:
    """``value`` as plain JSON types: numpy values unwrapped, non-finite floats as
    strings, sequences cut past ``cap`` items (they could not be echoed whole anyway)."""
    if getattr(value, "size", 0) > cap and hasattr(value, "reshape"):
        value = value.reshape(-1)[: cap + 1]  # a huge array: only its start can be shown
    if hasattr(value, "tolist"):
        value = value.tolist()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, list | tuple):
        return [_plain(v, cap) for v in value[: cap + 1]]
    if isinstance(value, dict):
        return {str(k): _plain(v, cap) for k, v in list(value.items())[: cap + 1]}
    return str(value)


def decode_error(data: bytes) -> tuple[str, Any, str]:
    """``(field, value, text)`` of an error payload; value None when empty, and the
    strings NaN / Infinity / -Infinity read back as floats."""
    try:
        field, offset = unpack_str(data, 0, 2)
        value_json, offset = unpack_str(data, offset, 2)
        text, _ = unpack_str(data, offset, 2)
        return field, _restore(json.loads(value_json)) if value_json else None, text
    except (struct.error, UnicodeDecodeError, ValueError):
        return "", None, data.decode("utf-8", "replace")


def _restore(value: Any) -> Any:
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def error_reply(exc: SidraError, limit: int = MIN_PAYLOAD) -> tuple[Status, bytes]:
    """The status and error payload a board answers for ``exc`` (table WIRE_STATUS)."""
    status = Status[status_for(exc, WIRE_STATUS)]
    if isinstance(exc, InvalidArgument):
        return status, encode_error(exc.allowed, exc.field, exc.value, limit=limit)
    return status, encode_error(str(exc), limit=limit)


def error_exception(msg_name: str, status: int, payload: bytes) -> SidraError:
    """The exception a host raises for a non-OK response (table WIRE_STATUS, read the
    other way). Protocol statuses (UNKNOWN_MESSAGE, BAD_PAYLOAD, NO_STAGE, ...) are
    faults of the board or of the host's code, never the caller's: BoardFault."""
    field, value, text = decode_error(payload)
    try:
        name = Status(status).name
    except ValueError:
        return BoardFault(f"{msg_name}: the board answered unknown status 0x{status:04x}")
    cls = exception_for(name, WIRE_STATUS)
    if issubclass(cls, InvalidArgument):
        return cls(field, value, text)
    if cls in (SidraError, BoardFault):
        return BoardFault(f"{msg_name} failed on the board ({name}): {text}")
    return cls(text)
