from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]

class JobEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_EVENT_KIND_UNSPECIFIED: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_PROGRESS: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_LOG: _ClassVar[JobEventKind]
    JOB_EVENT_KIND_STATE: _ClassVar[JobEventKind]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState
JOB_STATE_QUEUED: JobState
JOB_EVENT_KIND_UNSPECIFIED: JobEventKind
JOB_EVENT_KIND_PROGRESS: JobEventKind
JOB_EVENT_KIND_LOG: JobEventKind
JOB_EVENT_KIND_STATE: JobEventKind

class SubmitJobRequest(_message.Message):
    __slots__ = ("kind", "options_json", "dataset", "lease_wait_s", "resume_checkpoint", "queue", "priority", "dataset_file", "dataset_sha256")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    LEASE_WAIT_S_FIELD_NUMBER: _ClassVar[int]
    RESUME_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FILE_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    kind: str
    options_json: str
    dataset: str
    lease_wait_s: float
    resume_checkpoint: bytes
    queue: bool
    priority: int
    dataset_file: bytes
    dataset_sha256: str
    def __init__(self, kind: _Optional[str] = ..., options_json: _Optional[str] = ..., dataset: _Optional[str] = ..., lease_wait_s: _Optional[float] = ..., resume_checkpoint: _Optional[bytes] = ..., queue: _Optional[bool] = ..., priority: _Optional[int] = ..., dataset_file: _Optional[bytes] = ..., dataset_sha256: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "include_record")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RECORD_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    include_record: bool
    def __init__(self, job_id: _Optional[str] = ..., include_record: _Optional[bool] = ...) -> None: ...

class ReadJobFileRequest(_message.Message):
    __slots__ = ("job_id", "name", "offset", "max_bytes")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    offset: int
    max_bytes: int
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., offset: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ReadJobFileResponse(_message.Message):
    __slots__ = ("content", "size_bytes", "sha256")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    size_bytes: int
    sha256: bytes
    def __init__(self, content: _Optional[bytes] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[bytes] = ...) -> None: ...

class JobFileInfo(_message.Message):
    __slots__ = ("name", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("principal", "limit", "states")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    principal: str
    limit: int
    states: _containers.RepeatedScalarFieldContainer[JobState]
    def __init__(self, principal: _Optional[str] = ..., limit: _Optional[int] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class SetJobPriorityRequest(_message.Message):
    __slots__ = ("job_id", "priority")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    priority: int
    def __init__(self, job_id: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ("freed_bytes",)
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    freed_bytes: int
    def __init__(self, freed_bytes: _Optional[int] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "from_index")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    from_index: int
    def __init__(self, job_id: _Optional[str] = ..., from_index: _Optional[int] = ...) -> None: ...

class JobFile(_message.Message):
    __slots__ = ("name", "content")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    content: bytes
    def __init__(self, name: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "kind", "principal", "dataset", "options_json", "state", "submitted_unix_s", "started_unix_s", "ended_unix_s", "step", "total", "message", "error", "tiles", "whole_board", "events", "summary_json", "files", "record_files", "priority")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    ENDED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    WHOLE_BOARD_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    RECORD_FILES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    principal: str
    dataset: str
    options_json: str
    state: JobState
    submitted_unix_s: float
    started_unix_s: float
    ended_unix_s: float
    step: int
    total: int
    message: str
    error: str
    tiles: _containers.RepeatedScalarFieldContainer[int]
    whole_board: bool
    events: int
    summary_json: str
    files: _containers.RepeatedCompositeFieldContainer[JobFile]
    record_files: _containers.RepeatedCompositeFieldContainer[JobFileInfo]
    priority: int
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., principal: _Optional[str] = ..., dataset: _Optional[str] = ..., options_json: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., submitted_unix_s: _Optional[float] = ..., started_unix_s: _Optional[float] = ..., ended_unix_s: _Optional[float] = ..., step: _Optional[int] = ..., total: _Optional[int] = ..., message: _Optional[str] = ..., error: _Optional[str] = ..., tiles: _Optional[_Iterable[int]] = ..., whole_board: _Optional[bool] = ..., events: _Optional[int] = ..., summary_json: _Optional[str] = ..., files: _Optional[_Iterable[_Union[JobFile, _Mapping]]] = ..., record_files: _Optional[_Iterable[_Union[JobFileInfo, _Mapping]]] = ..., priority: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("index", "unix_s", "kind", "step", "total", "message", "state")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UNIX_S_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    index: int
    unix_s: float
    kind: JobEventKind
    step: int
    total: int
    message: str
    state: JobState
    def __init__(self, index: _Optional[int] = ..., unix_s: _Optional[float] = ..., kind: _Optional[_Union[JobEventKind, str]] = ..., step: _Optional[int] = ..., total: _Optional[int] = ..., message: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ...) -> None: ...

class DatasetChunk(_message.Message):
    __slots__ = ("name", "size_bytes", "sha256", "data")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    sha256: str
    data: bytes
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class DatasetFile(_message.Message):
    __slots__ = ("name", "sha256", "size_bytes", "principal", "stored_unix_s", "queued_jobs", "used_unix_s")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    STORED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    USED_UNIX_S_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    size_bytes: int
    principal: str
    stored_unix_s: float
    queued_jobs: int
    used_unix_s: float
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., principal: _Optional[str] = ..., stored_unix_s: _Optional[float] = ..., queued_jobs: _Optional[int] = ..., used_unix_s: _Optional[float] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("principal", "sha256", "every_principal")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    EVERY_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: str
    sha256: str
    every_principal: bool
    def __init__(self, principal: _Optional[str] = ..., sha256: _Optional[str] = ..., every_principal: _Optional[bool] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("files", "stored_bytes", "max_bytes")
    FILES_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[DatasetFile]
    stored_bytes: int
    max_bytes: int
    def __init__(self, files: _Optional[_Iterable[_Union[DatasetFile, _Mapping]]] = ..., stored_bytes: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ReadDatasetRequest(_message.Message):
    __slots__ = ("sha256", "principal", "offset", "max_bytes")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    principal: str
    offset: int
    max_bytes: int
    def __init__(self, sha256: _Optional[str] = ..., principal: _Optional[str] = ..., offset: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ReadDatasetResponse(_message.Message):
    __slots__ = ("content", "size_bytes", "name")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    size_bytes: int
    name: str
    def __init__(self, content: _Optional[bytes] = ..., size_bytes: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("sha256", "principal")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    principal: str
    def __init__(self, sha256: _Optional[str] = ..., principal: _Optional[str] = ...) -> None: ...

class DeleteDatasetResponse(_message.Message):
    __slots__ = ("freed_bytes",)
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    freed_bytes: int
    def __init__(self, freed_bytes: _Optional[int] = ...) -> None: ...
