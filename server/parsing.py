"""Request bytes to messages: bytes that do not parse are the caller's fault.

The services receive raw bytes and parse them here rather than through gRPC's
deserializer, which would answer INTERNAL for a malformed request.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from sidra.drivers import InvalidArgument

__all__ = ["parse_request"]

M = TypeVar("M", bound=Message)


def parse_request(message_type: type[M], data: bytes) -> M:
    """``data`` parsed as ``message_type``; InvalidArgument (field "request") otherwise."""
    try:
        return message_type.FromString(data)
    except DecodeError as exc:
        raise InvalidArgument(
            "request",
            f"{len(data)} bytes that do not parse ({exc})",
            f"a serialized {message_type.DESCRIPTOR.full_name}",
        ) from exc
