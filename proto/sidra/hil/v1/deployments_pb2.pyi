from sidra.hil.v1 import board_pb2 as _board_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeployedRegion(_message.Message):
    __slots__ = ("tile", "region", "intact", "rewritten_by", "rewritten_unix_s")
    TILE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INTACT_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_BY_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    tile: int
    region: _board_pb2.Region
    intact: bool
    rewritten_by: str
    rewritten_unix_s: float
    def __init__(self, tile: _Optional[int] = ..., region: _Optional[_Union[_board_pb2.Region, _Mapping]] = ..., intact: _Optional[bool] = ..., rewritten_by: _Optional[str] = ..., rewritten_unix_s: _Optional[float] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("name", "principal", "created_unix_s", "board_serial", "model_sha256", "model_bytes", "regions", "intact", "description", "model", "protected", "last_check")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    BOARD_SERIAL_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    INTACT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROTECTED_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECK_FIELD_NUMBER: _ClassVar[int]
    name: str
    principal: str
    created_unix_s: float
    board_serial: str
    model_sha256: bytes
    model_bytes: int
    regions: _containers.RepeatedCompositeFieldContainer[DeployedRegion]
    intact: bool
    description: str
    model: bytes
    protected: bool
    last_check: DeploymentCheck
    def __init__(self, name: _Optional[str] = ..., principal: _Optional[str] = ..., created_unix_s: _Optional[float] = ..., board_serial: _Optional[str] = ..., model_sha256: _Optional[bytes] = ..., model_bytes: _Optional[int] = ..., regions: _Optional[_Iterable[_Union[DeployedRegion, _Mapping]]] = ..., intact: _Optional[bool] = ..., description: _Optional[str] = ..., model: _Optional[bytes] = ..., protected: _Optional[bool] = ..., last_check: _Optional[_Union[DeploymentCheck, _Mapping]] = ...) -> None: ...

class AddDeploymentRequest(_message.Message):
    __slots__ = ("name", "model", "regions", "description", "replace", "validate_only", "protect")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    PROTECT_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: bytes
    regions: _containers.RepeatedCompositeFieldContainer[DeployedRegion]
    description: str
    replace: bool
    validate_only: bool
    protect: bool
    def __init__(self, name: _Optional[str] = ..., model: _Optional[bytes] = ..., regions: _Optional[_Iterable[_Union[DeployedRegion, _Mapping]]] = ..., description: _Optional[str] = ..., replace: _Optional[bool] = ..., validate_only: _Optional[bool] = ..., protect: _Optional[bool] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("name", "include_model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    include_model: bool
    def __init__(self, name: _Optional[str] = ..., include_model: _Optional[bool] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments",)
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CheckDeploymentRequest(_message.Message):
    __slots__ = ("name", "read_repeats")
    NAME_FIELD_NUMBER: _ClassVar[int]
    READ_REPEATS_FIELD_NUMBER: _ClassVar[int]
    name: str
    read_repeats: int
    def __init__(self, name: _Optional[str] = ..., read_repeats: _Optional[int] = ...) -> None: ...

class RegionCheck(_message.Message):
    __slots__ = ("tile", "region", "correlation", "rms_deviation_us", "mean_deviation_us", "read_noise_us")
    TILE_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    RMS_DEVIATION_US_FIELD_NUMBER: _ClassVar[int]
    MEAN_DEVIATION_US_FIELD_NUMBER: _ClassVar[int]
    READ_NOISE_US_FIELD_NUMBER: _ClassVar[int]
    tile: int
    region: _board_pb2.Region
    correlation: float
    rms_deviation_us: float
    mean_deviation_us: float
    read_noise_us: float
    def __init__(self, tile: _Optional[int] = ..., region: _Optional[_Union[_board_pb2.Region, _Mapping]] = ..., correlation: _Optional[float] = ..., rms_deviation_us: _Optional[float] = ..., mean_deviation_us: _Optional[float] = ..., read_noise_us: _Optional[float] = ...) -> None: ...

class DeploymentCheck(_message.Message):
    __slots__ = ("name", "checked_unix_s", "regions", "correlation", "rms_deviation_us", "mean_deviation_us", "cost", "checked_by", "read_repeats", "read_noise_us")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHECKED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_FIELD_NUMBER: _ClassVar[int]
    RMS_DEVIATION_US_FIELD_NUMBER: _ClassVar[int]
    MEAN_DEVIATION_US_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    CHECKED_BY_FIELD_NUMBER: _ClassVar[int]
    READ_REPEATS_FIELD_NUMBER: _ClassVar[int]
    READ_NOISE_US_FIELD_NUMBER: _ClassVar[int]
    name: str
    checked_unix_s: float
    regions: _containers.RepeatedCompositeFieldContainer[RegionCheck]
    correlation: float
    rms_deviation_us: float
    mean_deviation_us: float
    cost: _board_pb2.OperationCost
    checked_by: str
    read_repeats: int
    read_noise_us: float
    def __init__(self, name: _Optional[str] = ..., checked_unix_s: _Optional[float] = ..., regions: _Optional[_Iterable[_Union[RegionCheck, _Mapping]]] = ..., correlation: _Optional[float] = ..., rms_deviation_us: _Optional[float] = ..., mean_deviation_us: _Optional[float] = ..., cost: _Optional[_Union[_board_pb2.OperationCost, _Mapping]] = ..., checked_by: _Optional[str] = ..., read_repeats: _Optional[int] = ..., read_noise_us: _Optional[float] = ...) -> None: ...

class ListDeploymentChecksRequest(_message.Message):
    __slots__ = ("name", "limit", "before_unix_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    before_unix_s: float
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ..., before_unix_s: _Optional[float] = ...) -> None: ...

class ListDeploymentChecksResponse(_message.Message):
    __slots__ = ("checks", "kept")
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[DeploymentCheck]
    kept: int
    def __init__(self, checks: _Optional[_Iterable[_Union[DeploymentCheck, _Mapping]]] = ..., kept: _Optional[int] = ...) -> None: ...
