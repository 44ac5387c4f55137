"""Training jobs for :class:`~sidra.client.aio.AsyncRemoteBoard` (jobs.proto).

The asyncio form of :mod:`sidra.client.jobs`: the same calls, answers and errors as
coroutines, and :meth:`AsyncJobs.watch` an async iterator that resumes a broken
stream as the synchronous one does::

    async with await aio.connect("lab-pc:50051") as board:
        job = await board.jobs.submit("spsa", {"steps": 2000, "tile": 3})
        async for event in board.jobs.watch(job.job_id):
            print(event.step, event.total, event.message)
        record = await board.jobs.get(job.job_id, include_record=True)
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from pydantic import BaseModel

from sidra.client.channel_source import ChannelSource
from sidra.client.errors import from_rpc_error
from sidra.client.job_datasets import (
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
from sidra.client.jobs import (
    JOB_SERVICE,
    WATCH_CODECS,
    JobEvent,
    JobInfo,
    WatchPlace,
    job_method,
    list_request,
    options_named_as_given,
    priority_request,
    submit_request,
    watch_retry,
)
from sidra.client.options import checked_count, checked_job_id, checked_text
from sidra.drivers import DatasetNotKept, NotFound, OutOfRange, ResourceExhausted
from sidra.hil.v1 import jobs_pb2 as pb

__all__ = ["AsyncJobs"]


class AsyncJobs:
    """JobService of the server behind an asyncio ``channel``; every unary call has
    ``timeout_s``. The methods are :class:`~sidra.client.jobs.Jobs`' as coroutines."""

    def __init__(
        self, channel: grpc.aio.Channel | Callable[[], grpc.aio.Channel], timeout_s: float = 30.0
    ) -> None:
        self._channel = ChannelSource(channel)
        self.timeout_s = timeout_s

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel of the next call (its client's closed error once it is closed)."""
        return self._channel.get()

    async def submit(
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
        """Starts a ``kind`` job on ``dataset`` with ``options`` (:meth:`Jobs.submit
        <sidra.client.jobs.Jobs.submit>`)."""
        sent = dataset_to_send(dataset)
        request = submit_request(
            kind, options, sent, lease_wait_s, resume_checkpoint, queue, priority
        )
        if sent.uploaded:
            await self._keep_in_server(sent, on_upload)
        timeout = self.timeout_s + lease_wait_s
        with options_named_as_given():
            try:
                return JobInfo.from_pb(await self._call("SubmitJob", request, pb.Job, timeout))
            except DatasetNotKept:  # the kept file it named: deleted since it was listed
                if not sent.uploaded:
                    raise
            await self._upload(sent, on_upload)  # deleted since it was listed: sent again
            return JobInfo.from_pb(await self._call("SubmitJob", request, pb.Job, timeout))

    async def upload_dataset(
        self, path: str | os.PathLike[str], on_progress: UploadProgress | None = None
    ) -> DatasetInfo:
        """Keeps the data set file at ``path`` in the server for your jobs
        (:meth:`Jobs.upload_dataset <sidra.client.jobs.Jobs.upload_dataset>`)."""
        return await self._upload(to_upload(path), on_progress)

    async def datasets(
        self, principal: str = "", *, sha256: str = "", every_principal: bool = False
    ) -> list[DatasetInfo]:
        """The data set files the server keeps for you (:meth:`Jobs.datasets
        <sidra.client.jobs.Jobs.datasets>`)."""
        request = datasets_request(principal, sha256, every_principal)
        reply = await self._call("ListDatasets", request, pb.ListDatasetsResponse)
        return [DatasetInfo.from_pb(file) for file in reply.files]

    async def dataset_room(
        self, principal: str = "", *, every_principal: bool = False
    ) -> DatasetRoom:
        """What your kept data set files take in the server, and the most they may (or
        ``principal``'s, or every principal's together: an admin's right)."""
        request = datasets_request(principal, every_principal=every_principal)
        reply = await self._call("ListDatasets", request, pb.ListDatasetsResponse)
        return DatasetRoom(reply.stored_bytes, reply.max_bytes)

    async def download_dataset(
        self,
        sha256: str,
        path: str | os.PathLike[str],
        principal: str = "",
        on_progress: UploadProgress | None = None,
    ) -> Path:
        """Writes your kept file of ``sha256`` to ``path`` (:meth:`Jobs.download_dataset
        <sidra.client.jobs.Jobs.download_dataset>`)."""
        with DatasetDownload(sha256, path, principal, on_progress) as reading:
            while not reading.done:
                request = reading.request()
                reading.add(await self._call("ReadDataset", request, pb.ReadDatasetResponse))
            return reading.finish()

    async def delete_dataset(self, sha256: str, principal: str = "") -> int:
        """Forgets your kept file of ``sha256`` (:meth:`Jobs.delete_dataset
        <sidra.client.jobs.Jobs.delete_dataset>`)."""
        request = pb.DeleteDatasetRequest(
            sha256=checked_text("sha256", sha256, "a SHA-256"),
            principal=checked_text("principal", principal, ""),
        )
        reply = await self._call("DeleteDataset", request, pb.DeleteDatasetResponse)
        return int(reply.freed_bytes)

    async def _keep_in_server(
        self, sent: DatasetToSend, on_progress: UploadProgress | None
    ) -> None:
        if not await self.datasets(sha256=sent.sha256):
            await self._upload(sent, on_progress)

    async def _upload(
        self, sent: DatasetToSend, on_progress: UploadProgress | None = None
    ) -> DatasetInfo:
        method = self.channel.stream_unary(f"/{JOB_SERVICE}/UploadDataset", **UPLOAD_CODECS)
        try:
            reply = await method(
                upload_pieces(sent, on_progress), timeout=upload_timeout_s(sent, self.timeout_s)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return DatasetInfo.from_pb(reply)

    async def get(self, job_id: str, *, include_record: bool = False) -> JobInfo:
        """The job as it is now (:meth:`Jobs.get <sidra.client.jobs.Jobs.get>`): with
        ``include_record``, its record's files, read file by file when one answer
        cannot carry them."""
        request = pb.GetJobRequest(job_id=checked_job_id(job_id), include_record=include_record)
        try:
            return JobInfo.from_pb(await self._call("GetJob", request, pb.Job))
        except ResourceExhausted as exc:
            if not (include_record and exc.field == "include_record"):
                raise
        while True:
            job = await self.get(job_id)  # the files' names and sizes
            try:
                files = {name: await self.read_file(job_id, name) for name in job.record_files}
            except NotFound:
                if job.finished:
                    raise
                continue  # it ended meanwhile (Jobs.get)
            return dataclasses.replace(job, files=files)

    async def read_file(self, job_id: str, name: str) -> bytes:
        """One file of the job's run record, whatever its size (:meth:`Jobs.read_file
        <sidra.client.jobs.Jobs.read_file>`)."""
        reading = FileReading(job_id, name)
        while reading.whole is None:
            try:
                reply = await self._call("ReadJobFile", reading.request(), pb.ReadJobFileResponse)
            except OutOfRange as exc:
                reading.refused(exc)
            else:
                reading.add(reply)
        return reading.whole

    async def list(
        self, principal: str = "", limit: int = 0, states: Sequence[str] = ()
    ) -> list[JobInfo]:
        """Jobs, newest first (:meth:`Jobs.list <sidra.client.jobs.Jobs.list>`)."""
        request = list_request(principal, limit, states)
        reply = await self._call("ListJobs", request, pb.ListJobsResponse)
        return [JobInfo.from_pb(job) for job in reply.jobs]

    async def cancel(self, job_id: str) -> JobInfo:
        """Asks the job to stop (jobs.proto, "Cancellation"); watch it to its end."""
        request = pb.CancelJobRequest(job_id=checked_job_id(job_id))
        return JobInfo.from_pb(await self._call("CancelJob", request, pb.Job))

    async def set_priority(self, job_id: str, priority: int) -> JobInfo:
        """Gives a queued job another priority (:meth:`Jobs.set_priority
        <sidra.client.jobs.Jobs.set_priority>`)."""
        request = priority_request(job_id, priority)
        return JobInfo.from_pb(await self._call("SetJobPriority", request, pb.Job))

    async def delete(self, job_id: str) -> int:
        """Deletes an ended job (:meth:`Jobs.delete <sidra.client.jobs.Jobs.delete>`)."""
        request = pb.DeleteJobRequest(job_id=checked_job_id(job_id))
        return int((await self._call("DeleteJob", request, pb.DeleteJobResponse)).freed_bytes)

    async def watch(self, job_id: str, from_index: int = 0) -> AsyncIterator[JobEvent]:
        """The job's events from ``from_index`` until its final state; a broken stream
        is asked for again as :meth:`Jobs.watch <sidra.client.jobs.Jobs.watch>` does."""
        method = self.channel.unary_stream(f"/{JOB_SERVICE}/WatchJob", **WATCH_CODECS)
        place = WatchPlace(checked_count("from_index", from_index, 0, "events"))
        job_id = checked_job_id(job_id)
        broken_since: float | None = None
        while True:
            stream = method(pb.WatchJobRequest(job_id=job_id, from_index=place.index))
            try:
                async for message in stream:
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
                await asyncio.sleep(delay_s)
            finally:
                stream.cancel()

    async def wait(self, job_id: str) -> JobInfo:
        """Follows the job to its end; returns it as it ended."""
        async for _ in self.watch(job_id):
            pass
        return await self.get(job_id)

    async def _call(
        self, rpc: str, request: Any, response: Any, timeout_s: float | None = None
    ) -> Any:
        method = self.channel.unary_unary(**job_method(rpc, request, response))
        try:
            return await method(request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, rpc, timeout_s or self.timeout_s) from exc
