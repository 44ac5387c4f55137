"""Frames of the SIDRA serial protocol (docs/wire-protocol.md §2).

``wire = COBS(body) 0x00`` with ``body = header(12) | payload | CRC-32(header | payload)``.
COBS removes every 0x00 from the body, so 0x00 only ever delimits frames: a
receiver that lost bytes resynchronises at the next 0x00 without trusting any
length field. COBS has no error detection, hence the CRC-32 (zlib/IEEE, the
one every MCU has in hardware).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntFlag

from cobs import cobs

__all__ = [
    "CRC_BYTES",
    "HEADER",
    "MAX_PAYLOAD_LIMIT",
    "MIN_PAYLOAD",
    "PROTOCOL_VERSION",
    "Flag",
    "Frame",
    "FrameError",
    "FrameSplitter",
    "decode_frame",
    "encode_frame",
    "max_wire_bytes",
]

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBHHHHH")
"""version u8, flags u8, msg u16, req_id u16, status u16, length u16, epoch u16."""
CRC_BYTES = 4
MAX_PAYLOAD_LIMIT = 0xFFFF
"""The ``length`` field is 16 bits wide."""
MIN_PAYLOAD = 256
"""Every board and host handles payloads this long: the limit before HELLO has
negotiated one, and the floor of any negotiation (every fixed-size message fits)."""


class Flag(IntFlag):
    """Header flag bits."""

    RESP = 0x01
    """Sent by the device: a response (or NAK / BOOT notice)."""
    NAK = 0x02
    """The device received a frame it could not decode; the host retransmits at once."""
    RETRY = 0x04
    """A host retransmission of a request already sent with this req_id."""
    BOOT = 0x08
    """Set on the unsolicited BOOT notice (msg ``BOOT``) a device sends once after it
    (re)booted."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame."""

    msg: int
    req_id: int
    payload: bytes = b""
    flags: Flag = Flag(0)
    status: int = 0
    epoch: int = 0
    version: int = PROTOCOL_VERSION

    @property
    def is_response(self) -> bool:
        return bool(self.flags & Flag.RESP)


class FrameError(ValueError):
    """A received frame is damaged; ``kind`` says how (cobs, crc, short, length)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"bad frame ({kind}): {detail}")
        self.kind = kind


def encode_frame(frame: Frame) -> bytes:
    """The frame as bytes for the wire, delimiter included."""
    header = HEADER.pack(
        frame.version,
        int(frame.flags),
        frame.msg,
        frame.req_id,
        frame.status,
        len(frame.payload),
        frame.epoch,
    )
    crc = zlib.crc32(frame.payload, zlib.crc32(header))
    body = b"".join((header, frame.payload, crc.to_bytes(4, "little")))
    return bytes(cobs.encode(body)) + b"\x00"


def decode_frame(encoded: bytes | bytearray | memoryview) -> Frame:
    """Decodes one frame (without its delimiter); raises :class:`FrameError`."""
    try:
        body = cobs.decode(encoded)
    except cobs.DecodeError as exc:
        raise FrameError("cobs", str(exc)) from exc
    if len(body) < HEADER.size + CRC_BYTES:
        raise FrameError("short", f"{len(body)} bytes, a frame has at least 16")
    crc = int.from_bytes(body[-CRC_BYTES:], "little")
    if zlib.crc32(memoryview(body)[:-CRC_BYTES]) != crc:
        raise FrameError("crc", "CRC-32 mismatch")
    version, flags, msg, req_id, status, length, epoch = HEADER.unpack_from(body)
    if length != len(body) - HEADER.size - CRC_BYTES:
        raise FrameError(
            "length",
            f"header says {length} payload bytes, frame has {len(body) - HEADER.size - CRC_BYTES}",
        )
    payload = bytes(body[HEADER.size : -CRC_BYTES])
    return Frame(msg, req_id, payload, Flag(flags), status, epoch, version)


def max_wire_bytes(payload_bytes: int) -> int:
    """Worst-case bytes on the wire for a payload: COBS adds one byte per 254, plus the
    delimiter."""
    body = HEADER.size + payload_bytes + CRC_BYTES
    return body + body // 254 + 2


class FrameSplitter:
    """Cuts a byte stream into encoded frames at 0x00 delimiters.

    Empty frames (consecutive delimiters, which senders use to flush a
    receiver) are skipped. A run longer than ``max_encoded`` bytes without a
    delimiter cannot be a valid frame: it is discarded up to the next 0x00 and
    counted in :attr:`oversize`, so garbage never grows the buffer unbounded.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD_LIMIT) -> None:
        self.max_encoded = max_wire_bytes(max_payload)
        self._partial = bytearray()
        self._discarding = False
        self.oversize = 0

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        """The complete encoded frames that ``data`` finishes, in order."""
        if not data:
            return []
        pieces = bytes(data).split(b"\x00")
        frames: list[bytes] = []
        for piece in pieces[:-1]:  # each of these ended at a delimiter
            if self._discarding:
                self._discarding = False
                self._partial.clear()
                continue
            if self._partial:
                self._partial += piece
                piece = bytes(self._partial)
                self._partial.clear()
            if len(piece) > self.max_encoded:
                self.oversize += 1
            elif piece:
                frames.append(piece)
        tail = pieces[-1]
        if not self._discarding:
            self._partial += tail
            if len(self._partial) > self.max_encoded:
                self.oversize += 1
                self._discarding = True
                self._partial.clear()
        return frames

    def clear(self) -> None:
        """Forgets any partial frame (after a resync)."""
        self._partial.clear()
        self._discarding = False
