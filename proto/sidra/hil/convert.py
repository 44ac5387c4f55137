"""Driver requests and results <-> ``sidra.hil.v1`` messages, by field name.

Request and result types (sidra.drivers.requests, sidra.drivers.types) carry
board.proto's field names, so one walk over a dataclass's fields converts it
either way: arrays travel as Tensor, regions as Region, costs as
OperationCost, enums as their numbers. The few fields whose proto form differs
(BoardInfo.profile is JSON text, a Tensor's element type) are listed here.

The walk is done once per pair of dataclass and message type, the first time
the pair is converted: it yields a plan, one step per field chosen from the
dataclass's fields and the message's descriptor, which every later call runs
without looking either up again. A field added to both (a request's region, a
new operation's messages) is converted without a line here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf.message import Message

from sidra.drivers.errors import InvalidArgument
from sidra.drivers.operations import OPERATIONS, STEP_OPERATIONS, Operation
from sidra.drivers.requests import (
    MAX_STEPS,
    STEP_NAMES,
    MVMRequest,
    Request,
    SequenceRequest,
    TransposeMVMRequest,
    perturb_mode,
    step_member,
)
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    BoardTiming,
    Cost,
    LinkDown,
    LinkStats,
    MVMResult,
    PerturbationPoint,
    PerturbedMVMResult,
    Region,
    SequenceResult,
    WriteCounts,
)
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb

__all__ = [
    "SERVER_RESOLVED_FIELDS",
    "SERVICE_ADDED_FIELDS",
    "info_from_pb",
    "info_to_pb",
    "link_down_from_pb",
    "link_down_to_pb",
    "region_from_pb",
    "region_to_pb",
    "request_from_pb",
    "request_to_pb",
    "result_from_pb",
    "result_to_pb",
]

SERVER_RESOLVED_FIELDS = frozenset({"shared_inputs", "shared_outputs"})
"""Request fields with no driver-request counterpart: shared-memory references, which
the server resolves into the request's arrays (sidra.server.shared_memory) before the
board sees it. Every other field has a dataclass field of the same name."""
SERVICE_ADDED_FIELDS = frozenset({"limits"})
"""Response fields with no driver-result counterpart: what the service adds of its own
(GetBoardInfo's ``limits``, sidra.server.limits), which the clients read off the
message (sidra.client.call_sizes). Every other field has a dataclass field."""

# Nested value types and the messages they travel as.
_NESTED: dict[type[Any], type[Message]] = {
    Region: pb.Region,
    PerturbationPoint: pb.PerturbationPoint,
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
# Tensor fields that are not 2-D.
_TENSOR_NDIMS: dict[tuple[type[Any], str], int] = {(PerturbedMVMResult, "currents"): 3}
# Types whose tensors are decoded in any shape: requests, whose own checks judge the shape
# (``checked(info)``, on the board) in the words a local driver gives the same array. A
# result's shape is the decoder's to check: a client checks what a server answers.
_SHAPE_CHECKED_BY_OWNER = frozenset(op.request for op in OPERATIONS)
# Tensor fields of converter codes: INT8, INT16 or INT32, the array's own type.
_CODE_TENSORS = {
    (MVMRequest, "input_codes"),
    (TransposeMVMRequest, "input_codes"),
    (MVMResult, "output_codes"),
}
# Fields that stand in for one another: (type, field) -> the field that replaces it. A
# request's voltages left unset for its input codes reads as None (unset without codes,
# it is refused as ever: voltages.dtype); a result's currents are not sent beside its
# output codes, and are the codes times the step when read.
_REPLACED_BY: dict[tuple[type[Any], str], str] = {
    (MVMRequest, "voltages"): "input_codes",
    (TransposeMVMRequest, "voltages"): "input_codes",
    (MVMResult, "currents"): "output_codes",
}

Fill = Callable[[Message, Any], None]
"""Writes a dataclass value's fields into a message of its type (in place)."""
Read = Callable[[Message], Any]
"""Reads a dataclass value out of a message."""


def request_to_pb(request: Request, op: Operation) -> Message:
    """``request`` as its ``<rpc>Request`` message."""
    if isinstance(request, SequenceRequest):
        return _sequence_to_pb(request)
    return _writer(type(request), _message_type(op.rpc, "Request"))(request)


def request_from_pb(message: Message, op: Operation) -> Request:
    """The request a ``<rpc>Request`` message carries; bad tensors and enums raise
    InvalidArgument naming the field."""
    if isinstance(message, pb.RunSequenceRequest):
        return _sequence_from_pb(message)
    request: Request = _reader(op.request, type(message), False)(message)
    return request


def result_to_pb(result: Any, op: Operation, request: Request | None = None) -> Message:
    """``result`` as its ``<rpc>Response`` message (a sequence's needs its ``request``:
    an MVM and a TransposeMVM step answer the same result type)."""
    if isinstance(result, SequenceResult):
        assert isinstance(request, SequenceRequest), "a sequence's result needs its steps"
        return _sequence_result_to_pb(request, result)
    return _writer(type(result), _message_type(op.rpc, "Response"))(result)


def result_from_pb(message: Message, op: Operation) -> Any:
    """The result a ``<rpc>Response`` message carries (arrays copied, writable)."""
    if isinstance(message, pb.RunSequenceResponse):
        return SequenceResult(
            tuple(
                result_from_pb(getattr(one, member), STEP_OPERATIONS[member])
                for one in message.results
                if (member := one.WhichOneof("result")) is not None
            )
        )
    return _reader(op.result, type(message), True)(message)


# -- sequences: each step converted as its own operation -------------------------------


def _sequence_to_pb(request: SequenceRequest) -> pb.RunSequenceRequest:
    message = pb.RunSequenceRequest()
    for k, step in enumerate(request.steps):
        member = step_member(type(step))
        op = STEP_OPERATIONS.get(member)
        if op is None:  # a board-wide call: refused here, as the service would
            allowed = f"one of {', '.join(STEP_NAMES)}"
            raise InvalidArgument(f"steps[{k}]", type(step).__name__, allowed)
        _filler(type(step), _message_type(op.rpc, "Request"))(
            getattr(message.steps.add(), member), step
        )
    return message


def _sequence_from_pb(message: pb.RunSequenceRequest) -> SequenceRequest:
    if not 1 <= len(message.steps) <= MAX_STEPS:  # before converting any of them
        raise InvalidArgument("steps", len(message.steps), f"1 .. {MAX_STEPS} steps")
    steps = []
    for k, step in enumerate(message.steps):
        member = step.WhichOneof("operation")
        if member is None:
            raise InvalidArgument(
                f"steps[{k}]", "no operation set", f"one of {', '.join(STEP_NAMES)}"
            )
        try:
            steps.append(request_from_pb(getattr(step, member), STEP_OPERATIONS[member]))
        except InvalidArgument as exc:  # a path into the whole request
            raise type(exc)(f"steps[{k}].{member}.{exc.field}", exc.value, exc.allowed) from exc
    return SequenceRequest(tuple(steps))


def _sequence_result_to_pb(
    request: SequenceRequest, result: SequenceResult
) -> pb.RunSequenceResponse:
    message = pb.RunSequenceResponse()
    for step, one in zip(request.steps, result.results, strict=True):
        member = step_member(type(step))
        op = STEP_OPERATIONS[member]
        _filler(type(one), _message_type(op.rpc, "Response"))(
            getattr(message.results.add(), member), one
        )
    return message


def _message_type(rpc: str, kind: str) -> type[Message]:
    """``<rpc>Request`` or ``<rpc>Response`` (cached by name: an Operation's own hash
    walks all its fields)."""
    message_type = _MESSAGE_TYPES.get((rpc, kind))
    if message_type is None:
        message_type = _MESSAGE_TYPES[rpc, kind] = getattr(pb, f"{rpc}{kind}")
    return message_type


_MESSAGE_TYPES: dict[tuple[str, str], type[Message]] = {}


_INFO_FIELDS = tuple(f.name for f in dataclasses.fields(BoardInfo))
_INFO_SCALARS = tuple(name for name in _INFO_FIELDS if name not in ("profile", "timing"))


def region_to_pb(region: Region) -> pb.Region:
    """``region`` as board.proto's Region (for messages that carry one outside a request:
    session.proto, deployments.proto)."""
    return pb.Region(
        row_offset=region.row_offset, col_offset=region.col_offset, rows=region.rows,
        cols=region.cols,
    )  # fmt: skip


def region_from_pb(message: pb.Region) -> Region:
    """A Region message as the driver type."""
    return Region(message.row_offset, message.col_offset, message.rows, message.cols)


def link_down_to_pb(down: LinkDown) -> pb.LinkDown:
    """``down`` as board.proto's LinkDown (the details of an UNAVAILABLE status)."""
    message = _writer(LinkDown, pb.LinkDown)(down)
    assert isinstance(message, pb.LinkDown)
    return message


def link_down_from_pb(message: pb.LinkDown) -> LinkDown:
    """A LinkDown message as the driver type (its counters None when unset)."""
    down: LinkDown = _reader(LinkDown, pb.LinkDown, False)(message)
    return down


def info_to_pb(info: BoardInfo) -> pb.BoardInfo:
    fields = {name: getattr(info, name) for name in _INFO_SCALARS}
    profile = info.profile
    message = pb.BoardInfo(
        **fields, profile_json=json.dumps(profile, sort_keys=True) if profile else ""
    )
    _filler(BoardTiming, pb.BoardTiming)(message.timing, info.timing)
    return message


def info_from_pb(msg: pb.BoardInfo) -> BoardInfo:
    return BoardInfo(
        **{name: getattr(msg, name) for name in _INFO_SCALARS},
        profile=json.loads(msg.profile_json) if msg.profile_json else {},
        timing=_reader(BoardTiming, pb.BoardTiming, False)(msg.timing),
    )


# -- plans: built once per (dataclass, message type) -------------------------------
# Built on first use and kept; two threads building the same plan at once build equal
# ones, and either may stay.
_WRITERS: dict[tuple[type[Any], type[Message]], Callable[[Any], Message]] = {}
_FILLERS: dict[tuple[type[Any], type[Message], bool], Fill] = {}
_READERS: dict[tuple[type[Any], type[Message], bool], Read] = {}


def _writer(cls: type[Any], message_type: type[Message]) -> Callable[[Any], Message]:
    """How a ``cls`` value becomes a new ``message_type`` message."""
    writer = _WRITERS.get((cls, message_type))
    if writer is None:
        writer = _WRITERS[cls, message_type] = _build_writer(cls, message_type)
    return writer


def _filler(cls: type[Any], message_type: type[Message], *, nested: bool = True) -> Fill:
    """How a ``cls`` value is written into a ``message_type`` message: scalars set,
    nested messages filled in place (no message built and copied in)."""
    fill = _FILLERS.get((cls, message_type, nested))
    if fill is None:
        fill = _FILLERS[cls, message_type, nested] = _build_filler(cls, message_type, nested)
    return fill


def _reader(cls: type[Any], message_type: type[Message], copy: bool) -> Read:
    """How a ``cls`` value is read out of a ``message_type`` message; ``copy``: arrays
    copied (writable) rather than read-only views of the message's bytes."""
    read = _READERS.get((cls, message_type, copy))
    if read is None:
        read = _READERS[cls, message_type, copy] = _build_reader(cls, message_type, copy)
    return read


def _build_writer(cls: type[Any], message_type: type[Message]) -> Callable[[Any], Message]:
    fill = _filler(cls, message_type, nested=False)

    def write(value: Any) -> Message:
        message = message_type()
        fill(message, value)
        return message

    return write


def _build_filler(cls: type[Any], message_type: type[Message], nested: bool) -> Fill:
    descriptor = message_type.DESCRIPTOR
    # name, whether an enum (sent as its number), whether None is refused: a scalar
    # whose dataclass default is not None (a tile, a seed) would otherwise go as the
    # wire's 0, so a request naming no tile would run on tile 0.
    scalars: list[tuple[str, bool, bool]] = []
    messages: list[tuple[str, Fill]] = []  # and repeated fields: filled in place
    for field in dataclasses.fields(cls):
        target = descriptor.fields_by_name[field.name]
        if target.message_type is None and target.is_repeated:
            messages.append((field.name, _extend))
        elif target.is_repeated:  # a tuple of nested values (PerturbedMVM's points)
            messages.append((field.name, _repeated_filler(target)))
        elif target.message_type is None:
            scalars.append((field.name, target.enum_type is not None, field.default is not None))
        else:
            fill_field = _nested_filler(cls, field.name, target)
            replacement = _REPLACED_BY.get((cls, field.name))
            if replacement is not None and cls is MVMResult:  # requests send both if given
                fill_field = _unless_replaced(replacement, fill_field)
            messages.append((field.name, fill_field))

    def fill(message: Message, value: Any) -> None:
        for name, enum, required in scalars:
            item = getattr(value, name)
            if item is not None:
                setattr(message, name, int(item) if enum else item)
            elif required:
                raise InvalidArgument(name, None, "a value: None is not sent as the wire's 0")
        for name, fill_item in messages:
            item = getattr(value, name)
            if item is not None:  # an unset optional message (region: the whole tile)
                fill_item(getattr(message, name), (item, value) if fill_item in _PAIRED else item)
        if nested:
            message.SetInParent()  # a nested value of all defaults is still present

    return fill


_PAIRED: set[Fill] = set()
"""Fills that take (field value, whole value): those that look at another field."""


def _unless_replaced(replacement: str, fill_field: Fill) -> Fill:
    """``fill_field``, skipped when the value's ``replacement`` field is set (currents
    beside output codes: the codes are sent instead)."""

    def fill(message: Message, pair: Any) -> None:
        item, value = pair
        if getattr(value, replacement) is None:
            fill_field(message, item)

    _PAIRED.add(fill)
    return fill


def _extend(container: Any, items: Any) -> None:
    container.extend(items)  # a repeated scalar field cannot be assigned


def _repeated_filler(target: Any) -> Fill:
    nested = _NESTED_BY_NAME[target.message_type.full_name]
    fill_one = _filler(nested, _NESTED[nested])

    def fill(container: Any, items: Any) -> None:
        for item in items:
            fill_one(container.add(), item)

    return fill


def _nested_filler(owner: type[Any], name: str, target: Any) -> Fill:
    if target.message_type is pb.Tensor.DESCRIPTOR and (owner, name) in _CODE_TENSORS:
        return lambda tensor, array: tensors.encode_codes_into(tensor, array)  # type: ignore[arg-type]
    if target.message_type is pb.Tensor.DESCRIPTOR:
        dtype = _TENSOR_DTYPES.get((owner, name), pb.DTYPE_FLOAT32)
        return lambda tensor, array: tensors.encode_into(tensor, array, dtype)  # type: ignore[arg-type]
    if target.message_type is pb.BoardInfo.DESCRIPTOR:
        return lambda message, info: message.CopyFrom(info_to_pb(info))
    nested = _NESTED_BY_NAME[target.message_type.full_name]
    return _filler(nested, _NESTED[nested])


def _build_reader(cls: type[Any], message_type: type[Message], copy: bool) -> Read:
    descriptor = message_type.DESCRIPTOR
    steps: list[Read] = []
    for field in dataclasses.fields(cls):
        source = descriptor.fields_by_name[field.name]
        step = _field_reader(cls, field.name, source, copy)
        repeated = source.message_type is not None and source.is_repeated
        replacement = _REPLACED_BY.get((cls, field.name))
        if replacement is not None:
            step = _or_replaced(field.name, replacement, step)
        elif (
            not repeated
            and source.message_type is not None
            and field.default is not dataclasses.MISSING
        ):
            # An unset message takes the default (None: an optional region; or a zero Cost).
            step = _or_default(field.name, field.default, step)
        steps.append(step)
    if all(f.init and f.kw_only is not True for f in dataclasses.fields(cls)):
        return lambda message: cls(*[step(message) for step in steps])
    names = [f.name for f in dataclasses.fields(cls)]
    return lambda message: cls(**{n: step(message) for n, step in zip(names, steps, strict=True)})


def _or_default(name: str, default: Any, step: Read) -> Read:
    return lambda message: step(message) if message.HasField(name) else default


def _or_replaced(name: str, replacement: str, step: Read) -> Read:
    """``step``, unless ``name`` is unset and ``replacement`` set: then None for voltages
    replaced by input codes, and for currents replaced by output codes the codes times
    the response's adc_step_ua (float32, as the board computed them)."""
    derive = name == "currents"

    others = (replacement, "shared_inputs") if name == "voltages" else (replacement,)

    def read(message: Any) -> Any:
        if message.HasField(name) or not any(message.HasField(o) for o in others):
            return step(message)
        if not derive:
            return None
        codes = tensors.decode_codes(getattr(message, replacement), replacement)
        currents = codes.astype(np.float32)
        currents *= np.float32(message.adc_step_ua)
        return currents

    return read


def _field_reader(owner: type[Any], name: str, source: Any, copy: bool) -> Read:
    if source.enum_type is not None:
        to_value = _ENUMS[name]
        return lambda message: to_value(getattr(message, name))
    if source.message_type is None:
        return lambda message: getattr(message, name)
    if source.is_repeated:  # a tuple of nested values (PerturbedMVM's points)
        element = _NESTED_BY_NAME[source.message_type.full_name]
        read_one = _reader(element, _NESTED[element], copy)
        return lambda message: tuple(read_one(item) for item in getattr(message, name))
    ndim = None if owner in _SHAPE_CHECKED_BY_OWNER else _TENSOR_NDIMS.get((owner, name), 2)
    if source.message_type is pb.Tensor.DESCRIPTOR and (owner, name) in _CODE_TENSORS:
        return lambda message: tensors.decode_codes(
            getattr(message, name), name, ndim=ndim, copy=copy
        )
    if source.message_type is pb.Tensor.DESCRIPTOR:
        dtype = _TENSOR_DTYPES.get((owner, name), pb.DTYPE_FLOAT32)
        return lambda message: tensors.decode(
            getattr(message, name), name, dtype=dtype, ndim=ndim, copy=copy
        )
    if source.message_type is pb.BoardInfo.DESCRIPTOR:
        return lambda message: info_from_pb(getattr(message, name))
    nested = _NESTED_BY_NAME[source.message_type.full_name]
    message_type = _NESTED[nested]
    read = _reader(nested, message_type, copy)
    return lambda message: read(getattr(message, name))
