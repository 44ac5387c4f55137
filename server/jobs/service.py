"""``sidra.hil.v1.JobService``: training jobs over gRPC (jobs.proto).

Thin methods, routed as SessionService's (:mod:`sidra.server.routes` parses the request
bytes and admits the caller): ask the :class:`~sidra.server.jobs.manager.JobManager`,
answer. Errors leave through
``sidra.server.status``; a job that does not exist is NOT_FOUND and another
principal's job PERMISSION_DENIED (no SIDRA error class carries those codes:
they are the job service's own). UploadDataset takes a stream of pieces
(sidra.server.jobs.datasets keeps them); WatchJob streams, and is not counted against
``[limits] max_in_flight``: a watcher holds its stream for the job's whole run; it takes
one of the server's ``max_streams`` places instead (a watcher refused one retries:
sidra.client.jobs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from sidra.drivers import InvalidArgument, PermissionDenied, ResourceExhausted, SidraError
from sidra.hil.v1 import jobs_pb2 as pb
from sidra.server.jobs.datasets import DATASET_SHA256_FIELD, DatasetFiles
from sidra.server.jobs.manager import (
    JobManager,
    NotJobOwner,
    check_priority_allowed,
)
from sidra.server.jobs.pieces import ANSWER_HEADROOM_BYTES, most_piece_bytes
from sidra.server.jobs.runner import HeldDataset
from sidra.server.limits import MIB, PrincipalLimits, caller_key
from sidra.server.parsing import parse_request
from sidra.server.routes import unary_handlers
from sidra.server.settings import LimitsSettings
from sidra.server.state.datasets import DatasetFileRow
from sidra.server.state.jobs import JobEventRow, JobRow
from sidra.server.status import map_errors, to_status

__all__ = ["JOB_SERVICE_NAME", "JobServicer", "job_service_handler"]

JOB_SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["JobService"].full_name

CallerOf = Callable[[grpc.ServicerContext], tuple[str, bool]]
"""``(principal name, is admin)`` of a call, from its context."""

STATES = {
    "queued": pb.JOB_STATE_QUEUED,
    "running": pb.JOB_STATE_RUNNING,
    "succeeded": pb.JOB_STATE_SUCCEEDED,
    "failed": pb.JOB_STATE_FAILED,
    "cancelled": pb.JOB_STATE_CANCELLED,
    "interrupted": pb.JOB_STATE_INTERRUPTED,
}
"""Stored job state -> JobState."""

EVENT_KINDS = {
    "progress": pb.JOB_EVENT_KIND_PROGRESS,
    "log": pb.JOB_EVENT_KIND_LOG,
    "state": pb.JOB_EVENT_KIND_STATE,
}
"""Stored event kind -> JobEventKind."""

DEFAULT_LIST_LIMIT = 100


def _local_caller(context: grpc.ServicerContext) -> tuple[str, bool]:
    return "local", True


class JobServicer:
    """Serves JobService for ``manager``'s jobs."""

    def __init__(
        self,
        manager: JobManager,
        caller_of: CallerOf = _local_caller,
        limits: PrincipalLimits | None = None,
        datasets: DatasetFiles | None = None,
    ) -> None:
        self.manager = manager
        self.caller_of = caller_of
        self.limits = limits or PrincipalLimits()
        self.datasets = datasets or DatasetFiles(
            manager.records.store if manager.records is not None else None,
            manager.runner, LimitsSettings().max_dataset_mb * MIB,
        )  # fmt: skip

    def SubmitJob(self, request: pb.SubmitJobRequest, context: grpc.ServicerContext) -> Message:
        principal, admin = self.caller_of(context)
        check_priority_allowed(request.priority, principal, admin)
        dataset = request.dataset
        content: bytes | HeldDataset = request.dataset_file
        if request.dataset_sha256:
            if content:
                raise InvalidArgument(
                    DATASET_SHA256_FIELD, request.dataset_sha256,
                    "empty when dataset_file is sent (one data set file per job)",
                )  # fmt: skip
            dataset, content = self.datasets.named(principal, request.dataset_sha256, dataset)
        job = self.manager.submit(
            principal, request.kind, request.options_json, dataset,
            request.lease_wait_s, request.resume_checkpoint, queue=request.queue,
            priority=request.priority, dataset_file=content,
            wanted=context.is_active,  # a caller past its deadline gets no job
        )  # fmt: skip
        if request.dataset_sha256:
            self.datasets.used(principal, request.dataset_sha256)
        return job_message(job)

    def UploadDataset(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> Message:
        principal, _ = self.caller_of(context)
        caller = caller_key(principal, context.peer())
        with self.limits.stream("UploadDataset"), self.limits.admitted(caller, 0):
            kept = self.datasets.upload(
                principal, chunks, lambda size: self.limits.check_size(caller, size)
            )
        return dataset_message(kept)

    def ListDatasets(
        self, request: pb.ListDatasetsRequest, context: grpc.ServicerContext
    ) -> Message:
        whose = self._whose_list(request, context)
        return pb.ListDatasetsResponse(
            files=[dataset_message(f) for f in self.datasets.files(whose, request.sha256)],
            stored_bytes=self.datasets.stored_bytes(whose), max_bytes=self.datasets.max_bytes,
        )  # fmt: skip

    def ReadDataset(self, request: pb.ReadDatasetRequest, context: grpc.ServicerContext) -> Message:
        whose = self._whose(request.principal, context)
        most = most_piece_bytes(self.limits.max_response_bytes)
        row, piece = self.datasets.read(
            whose, request.sha256, request.offset, request.max_bytes, most
        )
        return pb.ReadDatasetResponse(content=piece, size_bytes=row.size_bytes, name=row.name)

    def DeleteDataset(
        self, request: pb.DeleteDatasetRequest, context: grpc.ServicerContext
    ) -> Message:
        whose = self._whose(request.principal, context)
        return pb.DeleteDatasetResponse(freed_bytes=self.datasets.delete(whose, request.sha256))

    def _whose_list(
        self, request: pb.ListDatasetsRequest, context: grpc.ServicerContext
    ) -> str | None:
        """Whose files ListDatasets lists: as :meth:`_whose`, or every principal's (None)
        for an admin asking so."""
        if not request.every_principal:
            return self._whose(request.principal, context)
        principal, admin = self.caller_of(context)
        if request.principal:
            raise InvalidArgument(
                "every_principal", True, f"false when principal is named ({request.principal!r})"
            )
        if not admin:
            raise PermissionDenied(
                f"every_principal: {principal!r} may not list every principal's data set files "
                "(an admin's right); leave every_principal false for your own"
            )
        return None

    def _whose(self, named: str, context: grpc.ServicerContext) -> str:
        """The principal whose data set files a call names: the caller's own when it names
        none; another's only for an admin (PermissionDenied otherwise)."""
        principal, admin = self.caller_of(context)
        if named and named != principal and not admin:
            raise PermissionDenied(
                f"principal: {principal!r} may not reach the data set files of {named!r} "
                "(an admin's right); leave principal empty for your own"
            )
        return named or principal

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> Message:
        if request.include_record:  # refused before the files are read, not once too large
            record = sum(self.manager.get(request.job_id).file_sizes.values())
            budget = self.limits.max_response_bytes - ANSWER_HEADROOM_BYTES
            if record > budget:
                raise ResourceExhausted(
                    "include_record", f"a record of {record} bytes", f"records of up to "
                    f"{budget} bytes in one answer (the server's message limit less 64 KiB); "
                    "read this one file by file with ReadJobFile",
                )  # fmt: skip
        return job_message(self.manager.get(request.job_id, with_files=request.include_record))

    def ReadJobFile(self, request: pb.ReadJobFileRequest, context: grpc.ServicerContext) -> Message:
        most = most_piece_bytes(self.limits.max_response_bytes)
        piece = self.manager.read_file(
            request.job_id, request.name, request.offset, request.max_bytes, most
        )
        return pb.ReadJobFileResponse(
            content=piece.content, size_bytes=piece.size_bytes, sha256=piece.sha256
        )

    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext) -> Message:
        jobs = self.manager.recent(
            request.principal, request.limit or DEFAULT_LIST_LIMIT, _states(request.states)
        )
        return pb.ListJobsResponse(jobs=[job_message(j) for j in jobs])

    def CancelJob(self, request: pb.CancelJobRequest, context: grpc.ServicerContext) -> Message:
        principal, admin = self.caller_of(context)
        return job_message(self.manager.cancel(request.job_id, principal, admin=admin))

    def SetJobPriority(
        self, request: pb.SetJobPriorityRequest, context: grpc.ServicerContext
    ) -> Message:
        principal, admin = self.caller_of(context)
        job = self.manager.set_priority(request.job_id, request.priority, principal, admin=admin)
        return job_message(job)

    def DeleteJob(self, request: pb.DeleteJobRequest, context: grpc.ServicerContext) -> Message:
        principal, admin = self.caller_of(context)
        freed = self.manager.delete(request.job_id, principal, admin=admin)
        return pb.DeleteJobResponse(freed_bytes=freed)

    def WatchJob(
        self, request: pb.WatchJobRequest, context: grpc.ServicerContext
    ) -> Iterator[Message]:
        for event in self.manager.watch(request.job_id, request.from_index, context.is_active):
            yield event_message(event)


def _states(values: Sequence[int]) -> list[str]:
    """ListJobs' states as stored; InvalidArgument naming "states" for one not known."""
    names: dict[int, str] = {int(number): name for name, number in STATES.items()}
    for value in values:
        if value not in names:
            allowed = ", ".join(f"{n} ({pb.JobState.Name(n)})" for n in sorted(names))
            raise InvalidArgument("states", value, f"JobState values: {allowed}")
    return [names[value] for value in values]


def dataset_message(row: DatasetFileRow) -> pb.DatasetFile:
    """A stored data set file as its JobService message."""
    return pb.DatasetFile(
        name=row.name, sha256=row.sha256, size_bytes=row.size_bytes, principal=row.principal,
        stored_unix_s=row.stored_unix_s, queued_jobs=row.queued_jobs,
        used_unix_s=row.used_unix_s,
    )  # fmt: skip


def job_message(job: JobRow) -> pb.Job:
    """A stored job as its JobService message."""
    return pb.Job(
        job_id=job.id, kind=job.kind, principal=job.principal, dataset=job.dataset,
        options_json=job.options_json, state=STATES[job.state],
        submitted_unix_s=job.submitted_unix_s, started_unix_s=job.started_unix_s,
        ended_unix_s=job.ended_unix_s, step=job.step, total=job.total, message=job.message,
        error=job.error, tiles=job.tiles, whole_board=job.whole_board, events=job.events,
        summary_json=job.summary_json, priority=job.priority,
        files=[pb.JobFile(name=name, content=content) for name, content in job.files.items()],
        record_files=[
            pb.JobFileInfo(name=name, size_bytes=size) for name, size in job.file_sizes.items()
        ],
    )  # fmt: skip


def event_message(event: JobEventRow) -> pb.JobEvent:
    """A stored job event as its JobService message."""
    return pb.JobEvent(
        index=event.index, unix_s=event.unix_s, kind=EVENT_KINDS[event.kind], step=event.step,
        total=event.total, message=event.message,
        state=STATES.get(event.state, pb.JOB_STATE_UNSPECIFIED),
    )  # fmt: skip


def _abort_for(exc: Exception, context: grpc.ServicerContext) -> None:
    """NOT_FOUND / PERMISSION_DENIED for the job service's own refusals (JobNotFound,
    NotJobOwner, PriorityNotAllowed); any other exception is left alone."""
    # JobNotFound is a NotFound: map_errors sends it with its ErrorInfo, as every error.
    if isinstance(exc, PermissionError):  # NotJobOwner, PriorityNotAllowed
        context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))


class _UploadRoute:
    """UploadDataset, a stream of pieces in and one answer out, with map_errors."""

    rpc = "UploadDataset"

    def __init__(self, servicer: JobServicer) -> None:
        self.servicer = servicer
        self.request_type = pb.DatasetChunk.DESCRIPTOR

    @map_errors
    def __call__(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> Message:
        return self.servicer.UploadDataset(chunks, context)


class _StreamRoute:
    """WatchJob: its errors are raised while the stream is being read, so they are
    turned into a status here rather than by map_errors."""

    rpc = "WatchJob"

    def __init__(self, servicer: JobServicer) -> None:
        self.servicer = servicer
        self.request_type = pb.WatchJobRequest.DESCRIPTOR

    def __call__(self, data: bytes, context: grpc.ServicerContext) -> Iterator[Message]:
        try:
            request = parse_request(pb.WatchJobRequest, data)
            with self.servicer.limits.stream("WatchJob"):
                yield from self.servicer.WatchJob(request, context)
        except NotJobOwner as exc:
            _abort_for(exc, context)
        except SidraError as exc:  # JobNotFound too: NOT_FOUND with its ErrorInfo
            context.abort_with_status(to_status(exc))


def job_service_handler(servicer: JobServicer) -> grpc.GenericRpcHandler:
    """Every JobService RPC, routed to ``servicer`` (add_generic_rpc_handlers)."""
    handlers: dict[str, Any] = unary_handlers(
        servicer, pb, "JobService", abort_for=_abort_for,
        leave_out=("WatchJob", "UploadDataset"),
    )  # fmt: skip
    handlers["UploadDataset"] = grpc.stream_unary_rpc_method_handler(
        _UploadRoute(servicer),
        request_deserializer=None,
        response_serializer=pb.DatasetFile.SerializeToString,
    )
    handlers["WatchJob"] = grpc.unary_stream_rpc_method_handler(
        _StreamRoute(servicer),
        request_deserializer=None,
        response_serializer=pb.JobEvent.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(JOB_SERVICE_NAME, handlers)
