"""Error payloads of the wire protocol as a raw host reads them (docs/wire-protocol.md
§8.2): the board-side refusal tests, against any board and against the virtual one."""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = ["error_parts", "strict_json"]


def strict_json(raw: bytes) -> Any:
    """``raw`` as RFC 8259 JSON: NaN and Infinity literals are refused (§8.2)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, parse_constant=refuse)


def error_parts(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """field, value, text of an error payload, raw (§8.2: three str16, nothing after)."""
    parts, offset = [], 0
    for _ in range(3):
        (n,) = struct.unpack_from("<H", payload, offset)
        parts.append(payload[offset + 2 : offset + 2 + n])
        offset += 2 + n
    assert offset == len(payload), "bytes after the three str16"
    return parts[0], parts[1], parts[2]
