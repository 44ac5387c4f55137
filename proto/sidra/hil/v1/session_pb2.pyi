from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCallerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Caller(_message.Message):
    __slots__ = ("principal", "role", "authenticated", "token_created_unix_s", "token_expires_unix_s", "peer", "shared_memory_offered", "open_sessions", "max_sessions")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CREATED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    SHARED_MEMORY_OFFERED_FIELD_NUMBER: _ClassVar[int]
    OPEN_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    principal: str
    role: str
    authenticated: bool
    token_created_unix_s: float
    token_expires_unix_s: float
    peer: str
    shared_memory_offered: bool
    open_sessions: int
    max_sessions: int
    def __init__(self, principal: _Optional[str] = ..., role: _Optional[str] = ..., authenticated: _Optional[bool] = ..., token_created_unix_s: _Optional[float] = ..., token_expires_unix_s: _Optional[float] = ..., peer: _Optional[str] = ..., shared_memory_offered: _Optional[bool] = ..., open_sessions: _Optional[int] = ..., max_sessions: _Optional[int] = ...) -> None: ...

class RegisterSharedMemoryRequest(_message.Message):
    __slots__ = ("session_id", "name", "key", "size_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    key: str
    size_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., key: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class UnregisterSharedMemoryRequest(_message.Message):
    __slots__ = ("session_id", "name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SharedMemoryRegistration(_message.Message):
    __slots__ = ("name", "key", "size_bytes", "session_registrations")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SESSION_REGISTRATIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    key: str
    size_bytes: int
    session_registrations: int
    def __init__(self, name: _Optional[str] = ..., key: _Optional[str] = ..., size_bytes: _Optional[int] = ..., session_registrations: _Optional[int] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("ttl_s", "label")
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ttl_s: float
    label: str
    def __init__(self, ttl_s: _Optional[float] = ..., label: _Optional[str] = ...) -> None: ...

class SessionState(_message.Message):
    __slots__ = ("session_id", "principal", "label", "ttl_s", "expires_in_s", "tiles", "whole_board")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_S_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    WHOLE_BOARD_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    principal: str
    label: str
    ttl_s: float
    expires_in_s: float
    tiles: _containers.RepeatedScalarFieldContainer[int]
    whole_board: bool
    def __init__(self, session_id: _Optional[str] = ..., principal: _Optional[str] = ..., label: _Optional[str] = ..., ttl_s: _Optional[float] = ..., expires_in_s: _Optional[float] = ..., tiles: _Optional[_Iterable[int]] = ..., whole_board: _Optional[bool] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class AcquireLeaseRequest(_message.Message):
    __slots__ = ("session_id", "tiles", "whole_board", "wait_s")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    WHOLE_BOARD_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    tiles: _containers.RepeatedScalarFieldContainer[int]
    whole_board: bool
    wait_s: float
    def __init__(self, session_id: _Optional[str] = ..., tiles: _Optional[_Iterable[int]] = ..., whole_board: _Optional[bool] = ..., wait_s: _Optional[float] = ...) -> None: ...

class ReleaseLeaseRequest(_message.Message):
    __slots__ = ("session_id", "tiles", "all")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    tiles: _containers.RepeatedScalarFieldContainer[int]
    all: bool
    def __init__(self, session_id: _Optional[str] = ..., tiles: _Optional[_Iterable[int]] = ..., all: _Optional[bool] = ...) -> None: ...

class LeaseRelease(_message.Message):
    __slots__ = ("released_tiles", "restored_tiles", "session")
    RELEASED_TILES_FIELD_NUMBER: _ClassVar[int]
    RESTORED_TILES_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    released_tiles: _containers.RepeatedScalarFieldContainer[int]
    restored_tiles: _containers.RepeatedScalarFieldContainer[int]
    session: SessionState
    def __init__(self, released_tiles: _Optional[_Iterable[int]] = ..., restored_tiles: _Optional[_Iterable[int]] = ..., session: _Optional[_Union[SessionState, _Mapping]] = ...) -> None: ...

class ListLeasesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TileLease(_message.Message):
    __slots__ = ("tile", "principal", "label", "whole_board", "expires_in_s", "session_id")
    TILE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    WHOLE_BOARD_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_S_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    tile: int
    principal: str
    label: str
    whole_board: bool
    expires_in_s: float
    session_id: str
    def __init__(self, tile: _Optional[int] = ..., principal: _Optional[str] = ..., label: _Optional[str] = ..., whole_board: _Optional[bool] = ..., expires_in_s: _Optional[float] = ..., session_id: _Optional[str] = ...) -> None: ...

class ListLeasesResponse(_message.Message):
    __slots__ = ("leases", "open_sessions")
    LEASES_FIELD_NUMBER: _ClassVar[int]
    OPEN_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    leases: _containers.RepeatedCompositeFieldContainer[TileLease]
    open_sessions: int
    def __init__(self, leases: _Optional[_Iterable[_Union[TileLease, _Mapping]]] = ..., open_sessions: _Optional[int] = ...) -> None: ...
