"""Driver requests and results <-> ``sidra.hil.v1`` messages, by field name.

Request and result types (sidra.drivers.requests, sidra.drivers.types) carry
board.proto's field names, so one walk over a dataclass's fields converts it
either way: arrays travel as Tensor, regions as Region, costs as
OperationCost, enums as their numbers. The few fields whose proto form differs
(BoardInfo.profile is JSON text, a Tensor's element type) are listed here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from sidra.drivers.operations import Operation
from sidra.drivers.requests import Request, perturb_mode
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    BoardTiming,
    Cost,
    LinkStats,
    Region,
    WriteCounts,
)
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb

__all__ = [
    "info_from_pb",
    "info_to_pb",
    "request_from_pb",
    "request_to_pb",
    "result_from_pb",
    "result_to_pb",
]

# Nested value types and the messages they travel as.
_NESTED: dict[type[Any], type[Message]] = {
    Region: pb.Region,
    Cost: pb.OperationCost,
    BoardStats: pb.BoardStats,
    LinkStats: pb.LinkStats,
    BoardTiming: pb.BoardTiming,
}
_NESTED_BY_NAME = {msg.DESCRIPTOR.full_name: cls for cls, msg in _NESTED.items()}
# Enum fields and how their numbers become values (unknown numbers are malformed).
_ENUMS: dict[str, Callable[[int], Any]] = {"mode": perturb_mode}
# Tensor fields that are not float32.
_TENSOR_DTYPES: dict[tuple[type[Any], str], int] = {(WriteCounts, "counts"): pb.DTYPE_UINT32}


def request_to_pb(request: Request, op: Operation) -> Message:
    """``request`` as its ``<rpc>Request`` message."""
    return _to_pb(request, getattr(pb, f"{op.rpc}Request"))


def request_from_pb(message: Message, op: Operation) -> Request:
    """The request a ``<rpc>Request`` message carries; bad tensors and enums raise
    InvalidArgument naming the field."""
    request: Request = _from_pb(message, op.request)
    return request


def result_to_pb(result: Any, op: Operation) -> Message:
    """``result`` as its ``<rpc>Response`` message."""
    return _to_pb(result, getattr(pb, f"{op.rpc}Response"))


def result_from_pb(message: Message, op: Operation) -> Any:
    """The result a ``<rpc>Response`` message carries (arrays copied, writable)."""
    return _from_pb(message, op.result, copy=True)


def info_to_pb(info: BoardInfo) -> pb.BoardInfo:
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(BoardInfo)}
    profile = fields.pop("profile")
    fields["timing"] = _to_pb(info.timing, pb.BoardTiming)
    return pb.BoardInfo(
        **fields, profile_json=json.dumps(profile, sort_keys=True) if profile else ""
    )


def info_from_pb(msg: pb.BoardInfo) -> BoardInfo:
    names = [f.name for f in dataclasses.fields(BoardInfo) if f.name not in ("profile", "timing")]
    return BoardInfo(
        **{name: getattr(msg, name) for name in names},
        profile=json.loads(msg.profile_json) if msg.profile_json else {},
        timing=_from_pb(msg.timing, BoardTiming),
    )


def _to_pb(value: Any, message_type: type[Message]) -> Message:
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if item is None:
            continue  # an unset optional message (region: the whole tile)
        target = message_type.DESCRIPTOR.fields_by_name[field.name]
        fields[field.name] = _item_to_pb(type(value), field.name, item, target)
    return message_type(**fields)


def _item_to_pb(owner: type[Any], name: str, item: Any, target: Any) -> Any:
    if target.message_type is None:
        return int(item) if target.enum_type is not None else item
    if target.message_type is pb.Tensor.DESCRIPTOR:
        return tensors.encode(item, _TENSOR_DTYPES.get((owner, name), pb.DTYPE_FLOAT32))
    if target.message_type is pb.BoardInfo.DESCRIPTOR:
        return info_to_pb(item)
    return _to_pb(item, _NESTED[type(item)])


def _from_pb(message: Message, cls: type[Any], *, copy: bool = False) -> Any:
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        source = message.DESCRIPTOR.fields_by_name[field.name]
        unset = source.message_type is not None and not message.HasField(field.name)
        if unset and field.default is not dataclasses.MISSING:
            values[field.name] = field.default  # None: an optional region; or a zero Cost
            continue
        item = getattr(message, field.name)
        values[field.name] = _item_from_pb(cls, field.name, item, source, copy)
    return cls(**values)


def _item_from_pb(owner: type[Any], name: str, item: Any, source: Any, copy: bool) -> Any:
    if source.enum_type is not None:
        return _enum(name, item)
    if source.message_type is None:
        return item
    if source.message_type is pb.Tensor.DESCRIPTOR:
        dtype = _TENSOR_DTYPES.get((owner, name), pb.DTYPE_FLOAT32)
        array = tensors.decode(item, name, dtype=dtype)
        return array.copy() if copy else array
    if source.message_type is pb.BoardInfo.DESCRIPTOR:
        return info_from_pb(item)
    return _from_pb(item, _NESTED_BY_NAME[source.message_type.full_name], copy=copy)


def _enum(name: str, number: int) -> Any:
    return _ENUMS[name](number)
