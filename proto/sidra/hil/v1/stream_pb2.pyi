from sidra.hil.v1 import board_pb2 as _board_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MVMStreamRequest(_message.Message):
    __slots__ = ("sequence", "mvm", "transpose_mvm")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MVM_FIELD_NUMBER: _ClassVar[int]
    TRANSPOSE_MVM_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    mvm: _board_pb2.MVMRequest
    transpose_mvm: _board_pb2.TransposeMVMRequest
    def __init__(self, sequence: _Optional[int] = ..., mvm: _Optional[_Union[_board_pb2.MVMRequest, _Mapping]] = ..., transpose_mvm: _Optional[_Union[_board_pb2.TransposeMVMRequest, _Mapping]] = ...) -> None: ...

class MVMStreamResponse(_message.Message):
    __slots__ = ("sequence", "mvm", "transpose_mvm", "error")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MVM_FIELD_NUMBER: _ClassVar[int]
    TRANSPOSE_MVM_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    mvm: _board_pb2.MVMResponse
    transpose_mvm: _board_pb2.TransposeMVMResponse
    error: StreamItemError
    def __init__(self, sequence: _Optional[int] = ..., mvm: _Optional[_Union[_board_pb2.MVMResponse, _Mapping]] = ..., transpose_mvm: _Optional[_Union[_board_pb2.TransposeMVMResponse, _Mapping]] = ..., error: _Optional[_Union[StreamItemError, _Mapping]] = ...) -> None: ...

class StreamItemError(_message.Message):
    __slots__ = ("code", "message", "exception", "field", "value", "allowed")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXCEPTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    exception: str
    field: str
    value: str
    allowed: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., exception: _Optional[str] = ..., field: _Optional[str] = ..., value: _Optional[str] = ..., allowed: _Optional[str] = ...) -> None: ...

class ProgramChunk(_message.Message):
    __slots__ = ("tile", "row_offset", "col_offset", "shape", "conductances")
    TILE_FIELD_NUMBER: _ClassVar[int]
    ROW_OFFSET_FIELD_NUMBER: _ClassVar[int]
    COL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CONDUCTANCES_FIELD_NUMBER: _ClassVar[int]
    tile: int
    row_offset: int
    col_offset: int
    shape: _containers.RepeatedScalarFieldContainer[int]
    conductances: _board_pb2.Tensor
    def __init__(self, tile: _Optional[int] = ..., row_offset: _Optional[int] = ..., col_offset: _Optional[int] = ..., shape: _Optional[_Iterable[int]] = ..., conductances: _Optional[_Union[_board_pb2.Tensor, _Mapping]] = ...) -> None: ...

class ReadConductanceChunkedRequest(_message.Message):
    __slots__ = ("read", "chunk_bytes")
    READ_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    read: _board_pb2.ReadConductanceRequest
    chunk_bytes: int
    def __init__(self, read: _Optional[_Union[_board_pb2.ReadConductanceRequest, _Mapping]] = ..., chunk_bytes: _Optional[int] = ...) -> None: ...

class ConductanceChunk(_message.Message):
    __slots__ = ("row_start", "conductances", "shape", "cost")
    ROW_START_FIELD_NUMBER: _ClassVar[int]
    CONDUCTANCES_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    row_start: int
    conductances: _board_pb2.Tensor
    shape: _containers.RepeatedScalarFieldContainer[int]
    cost: _board_pb2.OperationCost
    def __init__(self, row_start: _Optional[int] = ..., conductances: _Optional[_Union[_board_pb2.Tensor, _Mapping]] = ..., shape: _Optional[_Iterable[int]] = ..., cost: _Optional[_Union[_board_pb2.OperationCost, _Mapping]] = ...) -> None: ...
