"""Training jobs run inside a server, from the client side (jobs.proto).

    with connect("lab-pc:50051") as board:
        job = board.jobs.submit("spsa", {"steps": 2000, "tile": 3})
        for event in board.jobs.watch(job.job_id):
            print(event.step, event.total, event.message)
        record = board.jobs.get(job.job_id, include_record=True)

A job runs next to the board whatever becomes of this client: closing the channel
or losing the network does not stop it. :meth:`Jobs.watch` resumes a broken stream
from the next event index, so a watcher misses no event (across a server killed
mid-job, it goes on from the events the server kept: :class:`WatchPlace`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from pydantic import BaseModel

from sidra.client.channel_source import ChannelSource
from sidra.client.errors import from_rpc_error
from sidra.client.job_datasets import (
    DATASET_FILES,
    UPLOAD_CODECS,
    DatasetDownload,
    DatasetInfo,
    DatasetRoom,
    DatasetToSend,
    UploadProgress,
    dataset_to_send,
    datasets_request,
    to_upload,
    upload_pieces,
    upload_timeout_s,
)
from sidra.client.job_files import FileReading
from sidra.client.options import (
    checked_count,
    checked_job_id,
    checked_lease_wait,
    checked_text,
)
from sidra.drivers import (
    BoardUnavailable,
    DatasetNotKept,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)
from sidra.drivers.validation import is_integer
from sidra.hil.v1 import jobs_pb2 as pb

__all__ = [
    "DATASET_FILES",
    "FINAL_STATES",
    "JOB_SERVICE",
    "WATCH_CODECS",
    "DatasetInfo",
    "JobEvent",
    "JobInfo",
    "Jobs",
    "checked_priority",
    "job_method",
    "priority_request",
    "options_named_as_given",
    "submit_request",
    "WatchPlace",
    "watch_retry",
]

log = logging.getLogger(__name__)

_SERVICE = pb.DESCRIPTOR.services_by_name["JobService"]
JOB_SERVICE: str = _SERVICE.full_name

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
"""States a job never leaves."""

RECONNECT_LIMIT_S = 60.0
"""How long :meth:`Jobs.watch` keeps trying to resume a broken stream, s."""
STREAM_RETRY_S = 1.0
"""How often :meth:`Jobs.watch` asks again for a stream the server had no place for, s."""
RESUME_S = 0.5
"""How long :meth:`Jobs.watch` waits before resuming a stream the network broke, s."""


def _state(value: int) -> str:
    return pb.JobState.Name(value).removeprefix("JOB_STATE_").lower()


@dataclass(frozen=True)
class JobInfo:
    """A job as the server last reported it (times in seconds since the Unix epoch)."""

    job_id: str
    kind: str
    principal: str
    dataset: str
    options: dict[str, Any]
    """Every option the job runs with, defaults included."""
    state: str
    """running, succeeded, failed, cancelled or interrupted."""
    submitted_unix_s: float
    started_unix_s: float
    ended_unix_s: float
    step: int
    total: int
    message: str
    error: str
    tiles: tuple[int, ...]
    whole_board: bool
    events: int
    summary: dict[str, Any] | None
    """The run's summary once it succeeded, or was cancelled at a step, epoch or run
    boundary (``stopped_at_step``, ``stopped_at_epoch`` or ``stopped_at_run`` in it): what
    ``sidra train --json`` prints. None otherwise."""
    files: dict[str, bytes] = field(default_factory=dict)
    """The run record's files (only when asked for with ``include_record``, and only
    when there is a record: see :attr:`summary`)."""
    record_files: dict[str, int] = field(default_factory=dict)
    """The run record's files' sizes by name, bytes, once the job has ended with a record
    (:meth:`Jobs.read_file` reads one)."""
    priority: int = 0
    """Its place in the server's queue before turns: higher first (-10 .. 10)."""

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @classmethod
    def from_pb(cls, job: pb.Job) -> JobInfo:
        return cls(
            job.job_id, job.kind, job.principal, job.dataset,
            json.loads(job.options_json or "{}"), _state(job.state), job.submitted_unix_s,
            job.started_unix_s, job.ended_unix_s, job.step, job.total, job.message, job.error,
            tuple(job.tiles), job.whole_board, job.events,
            json.loads(job.summary_json) if job.summary_json else None,
            {f.name: f.content for f in job.files},
            {f.name: f.size_bytes for f in job.record_files}, job.priority,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The job as JSON values (files left out)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in self.__dict__.items()
            if name != "files"
        }


@dataclass(frozen=True)
class JobEvent:
    """One event of a job: progress (step of total, message), a log line, or a state."""

    index: int
    unix_s: float
    kind: str
    """progress, log or state."""
    step: int
    total: int
    message: str
    state: str
    """The state entered (kind state); "unspecified" otherwise."""

    @classmethod
    def from_pb(cls, event: pb.JobEvent) -> JobEvent:
        kind = pb.JobEventKind.Name(event.kind).removeprefix("JOB_EVENT_KIND_").lower()
        return cls(event.index, event.unix_s, kind, event.step, event.total, event.message,
                   _state(event.state))  # fmt: skip


class Jobs:
    """JobService of the server behind ``channel`` (or the function returning it, asked
    before each call); every unary call has ``timeout_s``."""

    def __init__(
        self, channel: grpc.Channel | Callable[[], grpc.Channel], timeout_s: float = 30.0
    ) -> None:
        self._channel = ChannelSource(channel)
        self.timeout_s = timeout_s

    @property
    def channel(self) -> grpc.Channel:
        """The channel of the next call (its client's closed error once it is closed)."""
        return self._channel.get()

    def submit(
        self,
        kind: str,
        options: Mapping[str, Any] | BaseModel | None = None,
        *,
        dataset: str | os.PathLike[str] | DatasetInfo = "digits",
        lease_wait_s: float = 0.0,
        resume_checkpoint: bytes | None = None,
        queue: bool = False,
        priority: int = 0,
        on_upload: UploadProgress | None = None,
    ) -> JobInfo:
        """Starts a ``kind`` job (a ``sidra train`` command's name: spsa, last-layer,
        mlp, pat, ff, eqprop, compare, drift-recovery) on ``dataset`` with ``options``
        (the fields of its option model, as a mapping or the model itself, e.g.
        ``SPSAOptions(steps=50)``; missing ones take defaults; one the server refuses is
        named ``options.NAME``, what the wire calls ``options_json.NAME``). ``dataset``: a data
        set bundled with the server (digits, iris, wine, breast_cancer), or a ``Path`` to
        an .npz or .csv file here, which is sent with the job (jobs.proto, "Data sets"):
        in the request, or, when larger than 512 KiB, kept in the server first
        (:meth:`upload_dataset`, unless it keeps those bytes already) and named by its
        SHA-256; or a file the server keeps for you (one of :meth:`datasets`; its
        ``name`` is the job's data set name, which may be another of the same suffix).
        ``resume_checkpoint``: the bytes of a ``checkpoint.json`` (an earlier job's record
        file, or a ``sidra train --out`` folder's) of the same kind, options and data
        set, which the job goes on from. ``queue``: a job that cannot start now (its tiles
        leased, or ``[limits] max_jobs`` of yours running) waits in the server's queue,
        returned ``queued``, instead of being refused (jobs.proto, "The queue").
        ``priority``: its place in the queue before turns, -10 .. 10, higher first; above 0
        only an admin's. ``on_upload``: told ``(bytes sent, size)`` while a large file is
        kept in the server."""
        sent = dataset_to_send(dataset)
        request = submit_request(
            kind, options, sent, lease_wait_s, resume_checkpoint, queue, priority
        )
        if sent.uploaded:
            self._keep_in_server(sent, on_upload)
        timeout = self.timeout_s + lease_wait_s
        with options_named_as_given():
            try:
                return JobInfo.from_pb(self._call("SubmitJob", request, pb.Job, timeout))
            except DatasetNotKept:  # the kept file it named: deleted since it was listed
                if not sent.uploaded:
                    raise
            self._upload(sent, on_upload)  # deleted since it was listed: sent again, once
            return JobInfo.from_pb(self._call("SubmitJob", request, pb.Job, timeout))

    def upload_dataset(
        self, path: str | os.PathLike[str], on_progress: UploadProgress | None = None
    ) -> DatasetInfo:
        """Keeps the data set file at ``path`` (.npz or .csv) in the server for your jobs,
        sent in pieces whatever its size (up to your ``[limits] max_dataset_mb``), checked
        there as a job reads it; returns it as kept. A job names it by its SHA-256, as
        :meth:`submit` does for a large file."""
        return self._upload(to_upload(path), on_progress)

    def datasets(
        self, principal: str = "", *, sha256: str = "", every_principal: bool = False
    ) -> list[DatasetInfo]:
        """The data set files the server keeps for you (or for ``principal``, or for
        ``every_principal``: an admin's right), newest first; only the one of ``sha256``
        (64 hex digits) when given."""
        request = datasets_request(principal, sha256, every_principal)
        reply = self._call("ListDatasets", request, pb.ListDatasetsResponse)
        return [DatasetInfo.from_pb(file) for file in reply.files]

    def dataset_room(self, principal: str = "", *, every_principal: bool = False) -> DatasetRoom:
        """What your kept data set files take in the server, and the most they may (or
        ``principal``'s, or every principal's together: an admin's right)."""
        request = datasets_request(principal, every_principal=every_principal)
        reply = self._call("ListDatasets", request, pb.ListDatasetsResponse)
        return DatasetRoom(reply.stored_bytes, reply.max_bytes)

    def download_dataset(
        self,
        sha256: str,
        path: str | os.PathLike[str],
        principal: str = "",
        on_progress: UploadProgress | None = None,
    ) -> Path:
        """Writes your kept file of ``sha256`` (or ``principal``'s: an admin's right) to
        ``path``, read with ReadDataset a piece at a time and checked against its SHA-256
        before it takes ``path`` (written over if there); returns ``path``. ``on_progress``:
        told ``(bytes received, size)``."""
        with DatasetDownload(sha256, path, principal, on_progress) as reading:
            while not reading.done:
                reading.add(self._call("ReadDataset", reading.request(), pb.ReadDatasetResponse))
            return reading.finish()

    def delete_dataset(self, sha256: str, principal: str = "") -> int:
        """Forgets your kept file of ``sha256`` (64 hex digits); returns the bytes the
        server gave back (0 while a queued job or another principal holds them)."""
        request = pb.DeleteDatasetRequest(
            sha256=checked_text("sha256", sha256, "a SHA-256"),
            principal=checked_text("principal", principal, ""),
        )
        return int(self._call("DeleteDataset", request, pb.DeleteDatasetResponse).freed_bytes)

    def _keep_in_server(self, sent: DatasetToSend, on_progress: UploadProgress | None) -> None:
        """Uploads ``sent``'s file unless the server keeps its bytes for us already."""
        if not self.datasets(sha256=sent.sha256):
            self._upload(sent, on_progress)

    def _upload(
        self, sent: DatasetToSend, on_progress: UploadProgress | None = None
    ) -> DatasetInfo:
        method = self.channel.stream_unary(f"/{JOB_SERVICE}/UploadDataset", **UPLOAD_CODECS)
        try:
            reply = method(
                upload_pieces(sent, on_progress), timeout=upload_timeout_s(sent, self.timeout_s)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return DatasetInfo.from_pb(reply)

    def get(self, job_id: str, *, include_record: bool = False) -> JobInfo:
        """The job as it is now; ``include_record``: with its record's files, however
        large (a record that one answer cannot carry is read file by file)."""
        request = pb.GetJobRequest(job_id=checked_job_id(job_id), include_record=include_record)
        try:
            return JobInfo.from_pb(self._call("GetJob", request, pb.Job))
        except ResourceExhausted as exc:
            if not (include_record and exc.field == "include_record"):
                raise
        while True:
            job = self.get(job_id)  # the files' names and sizes
            try:
                files = {name: self.read_file(job_id, name) for name in job.record_files}
            except NotFound:
                if job.finished:
                    raise
                # It ended meanwhile: its record replaced the file named (a running job's
                # files go only then; a deleted job's get() raises NotFound itself).
                continue
            return dataclasses.replace(job, files=files)

    def read_file(self, job_id: str, name: str) -> bytes:
        """One file of the job's run record (:attr:`JobInfo.record_files`), whatever its
        size: read with ReadJobFile a piece at a time, checked against its SHA-256, and
        read again from its start when it was replaced meanwhile (a running job's
        checkpoint; sidra.client.job_files)."""
        reading = FileReading(job_id, name)
        while reading.whole is None:
            try:
                reply = self._call("ReadJobFile", reading.request(), pb.ReadJobFileResponse)
            except OutOfRange as exc:
                reading.refused(exc)
            else:
                reading.add(reply)
        return reading.whole

    def list(
        self, principal: str = "", limit: int = 0, states: Sequence[str] = ()
    ) -> list[JobInfo]:
        """Jobs, newest first (only ``principal``'s when given; at most ``limit``, 0: 100;
        only those in ``states`` when given: "queued", "running", "succeeded", ...)."""
        request = list_request(principal, limit, states)
        reply = self._call("ListJobs", request, pb.ListJobsResponse)
        return [JobInfo.from_pb(job) for job in reply.jobs]

    def cancel(self, job_id: str) -> JobInfo:
        """Asks the job to stop; it ends CANCELLED shortly (watch it)."""
        return JobInfo.from_pb(
            self._call("CancelJob", pb.CancelJobRequest(job_id=checked_job_id(job_id)), pb.Job)
        )

    def set_priority(self, job_id: str, priority: int) -> JobInfo:
        """Gives a queued job another priority (-10 .. 10, higher first; above 0 an
        admin's); returns the job as it is then (running, if that let it start)."""
        return JobInfo.from_pb(
            self._call("SetJobPriority", priority_request(job_id, priority), pb.Job)
        )

    def delete(self, job_id: str) -> int:
        """Deletes an ended job with its events and record; returns the bytes of record
        files deleted (a running job is refused: cancel it first)."""
        request = pb.DeleteJobRequest(job_id=checked_job_id(job_id))
        return int(self._call("DeleteJob", request, pb.DeleteJobResponse).freed_bytes)

    def watch(self, job_id: str, from_index: int = 0) -> Iterator[JobEvent]:
        """The job's events from ``from_index`` until its final state. A stream the
        network breaks is resumed from the next index for up to
        :data:`RECONNECT_LIMIT_S`; one the server refuses because all its stream places
        are taken (``limits.max_streams``) is asked for again every
        :data:`STREAM_RETRY_S` until one frees, however long (the events wait in the
        server's store); other errors raise the SIDRA exception."""
        method = self.channel.unary_stream(f"/{JOB_SERVICE}/WatchJob", **WATCH_CODECS)
        place = WatchPlace(checked_count("from_index", from_index, 0, "events"))
        job_id = checked_job_id(job_id)
        broken_since: float | None = None
        while True:
            stream = method(pb.WatchJobRequest(job_id=job_id, from_index=place.index))
            try:
                for message in stream:
                    broken_since = None
                    event = JobEvent.from_pb(message)
                    if place.takes(event):
                        yield event
                return
            except grpc.RpcError as exc:
                error = from_rpc_error(exc)
                if place.lost_at_restart(error, job_id, broken_since):
                    continue
                retry = watch_retry(error, job_id, place.index, broken_since, place)
                if retry is None:
                    raise error from exc
                delay_s, broken_since = retry
                time.sleep(delay_s)
            finally:
                stream.cancel()

    def wait(self, job_id: str) -> JobInfo:
        """Follows the job to its end; returns it as it ended."""
        for _ in self.watch(job_id):
            pass
        return self.get(job_id)

    def _call(self, rpc: str, request: Any, response: Any, timeout_s: float | None = None) -> Any:
        method = self.channel.unary_unary(**job_method(rpc, request, response))
        try:
            return method(request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, rpc, timeout_s or self.timeout_s) from exc


def priority_request(job_id: str, priority: int) -> pb.SetJobPriorityRequest:
    """SetJobPriority's request; a priority outside -10 .. 10 refused before it is sent."""
    return pb.SetJobPriorityRequest(
        job_id=checked_job_id(job_id), priority=checked_priority(priority)
    )


def checked_priority(priority: int) -> int:
    """``priority`` if it is an integer in -10 .. 10 (jobs.proto); InvalidArgument otherwise."""
    if not is_integer(priority) or not -10 <= priority <= 10:
        raise InvalidArgument("priority", priority, "an integer in -10 .. 10")
    return int(priority)


def list_request(principal: str, limit: int, states: Sequence[str]) -> pb.ListJobsRequest:
    """ListJobs' request (:meth:`Jobs.list`); InvalidArgument naming ``states`` for a
    state name the client does not know."""
    known = [_state(value) for value in pb.JobState.values() if value]
    if isinstance(states, str):  # one name, not its letters
        states = [states]
    for state in states:
        if state not in known:
            raise InvalidArgument("states", state, f"names among {', '.join(known)}")
    names = [f"JOB_STATE_{state.upper()}" for state in states]  # the enum takes its names
    return pb.ListJobsRequest(principal=principal, limit=limit, states=names)


@contextlib.contextmanager
def options_named_as_given() -> Iterator[None]:
    """A refusal of SubmitJob's ``options_json`` (or one of its options) named as the
    caller gave it, ``options`` (``options.steps``): the JSON is the client's own."""
    try:
        yield
    except InvalidArgument as exc:
        if exc.field != "options_json" and not exc.field.startswith("options_json."):
            raise
        field = "options" + exc.field.removeprefix("options_json")
        renamed = type(exc)(field, exc.value, exc.allowed)
        # The server's own words, its value shown as it saw it (True, not the 'True' its
        # details carry as text): only the field's name changes.
        renamed.args = (str(exc).replace(exc.field, field, 1),)
        raise renamed from exc


def _options_json(options: Mapping[str, Any] | BaseModel | None) -> str:
    """``options`` as SubmitJob's ``options_json``: a mapping of option names to values,
    or an option model (``SPSAOptions(steps=50)``: the fields set on it). NumPy numbers
    and arrays go as their Python values; a value JSON cannot carry is refused naming
    its option."""
    if isinstance(options, BaseModel):
        options = options.model_dump(mode="json", exclude_unset=True)
    if options is not None and not isinstance(options, Mapping):
        allowed = "a mapping of option names to values, e.g. {'steps': 1000}, or an option model"
        raise InvalidArgument("options", type(options).__name__, allowed)
    values = dict(options or {})
    for name, value in values.items():
        try:
            json.dumps(value, default=_plain, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(
                f"options[{name!r}]", f"{type(value).__name__} {value!r}",
                "a number, string, bool, None, or a list or mapping of them (finite numbers)",
            ) from exc  # fmt: skip
    return json.dumps(values, default=_plain, allow_nan=False)


def _plain(value: Any) -> Any:
    """A NumPy number or array as the Python value JSON carries (json.dumps' default)."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def submit_request(
    kind: str,
    options: Mapping[str, Any] | BaseModel | None,
    dataset: str | os.PathLike[str] | DatasetInfo | DatasetToSend,
    lease_wait_s: float,
    resume_checkpoint: bytes | None = None,
    queue: bool = False,
    priority: int = 0,
) -> pb.SubmitJobRequest:
    """SubmitJob's request (:meth:`Jobs.submit`); InvalidArgument for ``options`` that are
    not a mapping of option names to JSON values, a ``resume_checkpoint`` that is not
    bytes, or a ``dataset`` file that cannot be read. A large file (:func:`dataset_to_send`)
    is named by its SHA-256: the caller keeps it in the server first."""
    if resume_checkpoint is not None and not isinstance(resume_checkpoint, bytes):
        allowed = "the bytes of a checkpoint.json (Path.read_bytes()), or None"
        raise InvalidArgument("resume_checkpoint", type(resume_checkpoint).__name__, allowed)
    if not isinstance(queue, bool):
        raise InvalidArgument("queue", type(queue).__name__, "True or False")
    if checked_priority(priority) and not queue:  # as the command line refuses it
        raise InvalidArgument(
            "priority", priority, "0 without queue=True: a priority orders the server's queue"
        )
    options_json = _options_json(options)
    sent = dataset if isinstance(dataset, DatasetToSend) else dataset_to_send(dataset)
    return pb.SubmitJobRequest(
        kind=checked_text("kind", kind, "spsa"),
        options_json=options_json,
        dataset=sent.name,
        dataset_file=sent.content,
        dataset_sha256=sent.sha256,
        lease_wait_s=checked_lease_wait(lease_wait_s, "lease_wait_s"),
        resume_checkpoint=resume_checkpoint or b"",
        queue=queue,
        priority=int(priority),
    )


@dataclass
class WatchPlace:
    """Where a watch is in a job's events: the next index to ask for, and the time of the
    last event given. A server killed while a job ran keeps only the events it had stored
    (it stores them behind the job), and marks the job interrupted when it starts again:
    a watch that had gone further is read again from event 0, giving only events newer
    than those given, so the watcher still sees how the job ended."""

    index: int
    given_unix_s: float = -math.inf
    replaying: bool = False
    told_streams_full: bool = False
    """Whether this watch said (once, as a warning) that it waits for a stream place."""

    def takes(self, event: JobEvent) -> bool:
        """Whether ``event`` is to be given (not one given before the server restarted)."""
        self.index = event.index + 1
        if self.replaying:
            if event.unix_s <= self.given_unix_s:
                return False
            self.replaying = False
        self.given_unix_s = max(self.given_unix_s, event.unix_s)
        return True

    def lost_at_restart(self, error: Exception, job_id: str, broken_since: float | None) -> bool:
        """Whether ``error`` refuses a watch resumed after a break for an index past the
        server's events (it restarted without some it had sent); if so the watch goes on
        from event 0, skipping what it gave."""
        if broken_since is None or not isinstance(error, OutOfRange):
            return False
        if error.field != "from_index":
            return False
        log.warning(
            "job %s: the server restarted without the events from %s on, which it had sent "
            "but not yet stored; going on with the events it has now",
            job_id, error.value,
        )  # fmt: skip
        self.index, self.replaying = 0, True
        return True


def watch_retry(
    error: Exception,
    job_id: str,
    index: int,
    broken_since: float | None,
    place: WatchPlace | None = None,
) -> tuple[float, float | None] | None:
    """Whether a WatchJob stream that failed with ``error`` is asked for again: the wait
    before asking, s, and since when the network has broken it (None: it did not);
    None when ``error`` is to be raised (:meth:`Jobs.watch` says which are retried)."""
    if isinstance(error, ResourceExhausted) and error.field == "limits.max_streams":
        level = logging.INFO
        if place is not None and not place.told_streams_full:  # said once, then quietly
            place.told_streams_full, level = True, logging.WARNING
        log.log(level, "job %s: %s; waiting for a place, asking every %g s (watches this "
                "program keeps open hold places too)", job_id, error, STREAM_RETRY_S)  # fmt: skip
        return STREAM_RETRY_S, broken_since
    if not isinstance(error, BoardUnavailable):
        return None
    broken_since = broken_since or time.monotonic()
    if time.monotonic() - broken_since > RECONNECT_LIMIT_S:
        return None
    log.info("job %s: watch stream broken (%s); resuming at %d", job_id, error, index)
    return RESUME_S, broken_since


WATCH_CODECS = {
    "request_serializer": pb.WatchJobRequest.SerializeToString,
    "response_deserializer": pb.JobEvent.FromString,
}
"""WatchJob's serializers, as a channel's ``unary_stream`` takes them."""


def job_method(rpc: str, request: Any, response: Any) -> dict[str, Any]:
    """The path and serializers of JobService's unary ``rpc`` (``channel.unary_unary``)."""
    return {
        "method": f"/{JOB_SERVICE}/{rpc}",
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response.FromString,
    }
