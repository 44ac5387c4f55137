"""A job's record of any size reaches its client (jobs.proto ReadJobFile): a long job's
steps.csv and checkpoint grow with its steps past what one answer may carry. GetJob
with include_record refuses such a record naming the field, and the client reads it
file by file instead; ``sidra train --remote-job`` saves it whole.

The server here has a small message limit (96 KiB), so an SPSA job of a few thousand
steps on iris makes a record too large for one answer within seconds; the store,
server and client are the real ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from sidra.client import FailedPrecondition, NotFound, RemoteBoard, connect
from sidra.client.aio import AsyncRemoteBoard
from sidra.client.aio import connect as connect_aio
from sidra.client.job_files import MAX_FILE_READS
from sidra.drivers import OutOfRange, open_board
from sidra.hil.v1 import jobs_pb2 as pb
from sidra.server.app import create_server
from sidra.server.state import StateStore
from sidra.server.state.jobs import JobRecords
from sidra.training.model import TrainedModel
from tests.cli_support import run_sidra
from tests.state.state_support import store_of_schema

SMALL_LIMIT = 96 * 1024
"""The server's message limit here, bytes: an answer carries up to 32 KiB of record (64
KiB are left for the rest of the job)."""
LONG = {"steps": 3000, "eval_every": 1000, "batch_size": 16, "a": 0.5, "c": 0.1}
"""An SPSA job whose steps.csv (about 26 bytes a step) outgrows one answer."""


@contextmanager
def served(store: Path) -> Iterator[tuple[RemoteBoard, str]]:
    with open_board("emu://?preset=ideal&seed=0") as board, StateStore(store) as state:
        server, port = create_server(board, store=state, max_message_bytes=SMALL_LIMIT)
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as client:
                yield client, f"127.0.0.1:{port}"
        finally:
            server.stop(grace=None).wait()


@pytest.fixture
def long_job(tmp_path: Path) -> Iterator[tuple[RemoteBoard, str, str, dict[str, bytes]]]:
    """A server, the id of a finished job whose record one answer cannot carry, and that
    record as the store holds it."""
    with served(tmp_path / "state.sqlite3") as (client, address):
        job = client.jobs.submit("spsa", LONG, dataset="iris")
        done = client.jobs.wait(job.job_id)
        assert done.state == "succeeded", done.error
        with StateStore(tmp_path / "state.sqlite3", read_only=True) as store:
            stored = JobRecords(store).get(job.job_id, with_files=True)
        assert stored is not None
        yield client, address, job.job_id, stored.files


def test_a_record_larger_than_an_answer_is_read_file_by_file(
    long_job: tuple[RemoteBoard, str, str, dict[str, bytes]],
) -> None:
    client, _, job_id, stored = long_job
    assert sum(len(f) for f in stored.values()) > SMALL_LIMIT - 64 * 1024  # more than fits
    job = client.jobs.get(job_id)
    assert job.record_files == {name: len(content) for name, content in stored.items()}
    assert job.files == {}
    whole = client.jobs.get(job_id, include_record=True)
    assert whole.files == stored
    assert whole.summary is not None and whole.summary["steps"] == LONG["steps"]
    assert client.jobs.read_file(job_id, "steps.csv") == stored["steps.csv"]


def test_get_job_refuses_the_whole_record_naming_the_field(
    long_job: tuple[RemoteBoard, str, str, dict[str, bytes]],
) -> None:
    """The raw call, as a client in another language makes it."""
    client, _, job_id, stored = long_job
    get = client.channel.unary_unary(
        "/sidra.hil.v1.JobService/GetJob",
        request_serializer=pb.GetJobRequest.SerializeToString,
        response_deserializer=pb.Job.FromString,
    )
    with pytest.raises(grpc.RpcError) as refused:
        get(pb.GetJobRequest(job_id=job_id, include_record=True), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = refused.value.details() or ""
    assert details.startswith("include_record: got a record of ")
    assert "ReadJobFile" in details


def test_read_job_file_reads_pieces_and_refuses_what_is_not_there(
    long_job: tuple[RemoteBoard, str, str, dict[str, bytes]],
) -> None:
    client, _, job_id, stored = long_job
    read = client.channel.unary_unary(
        "/sidra.hil.v1.JobService/ReadJobFile",
        request_serializer=pb.ReadJobFileRequest.SerializeToString,
        response_deserializer=pb.ReadJobFileResponse.FromString,
    )
    steps = stored["steps.csv"]
    piece = read(pb.ReadJobFileRequest(job_id=job_id, name="steps.csv", offset=100, max_bytes=50))
    assert piece.content == steps[100:150] and piece.size_bytes == len(steps)
    end = read(pb.ReadJobFileRequest(job_id=job_id, name="steps.csv", offset=len(steps)))
    assert end.content == b"" and end.size_bytes == len(steps)
    with pytest.raises(NotFound, match=r"no record file 'steps\.txt' \(its files: "):
        client.jobs.read_file(job_id, "steps.txt")
    with pytest.raises(OutOfRange) as beyond:
        client.jobs._call(
            "ReadJobFile",
            pb.ReadJobFileRequest(job_id=job_id, name="steps.csv", offset=len(steps) + 1),
            pb.ReadJobFileResponse,
        )
    assert beyond.value.field == "offset"
    with pytest.raises(OutOfRange) as too_much:
        client.jobs._call(
            "ReadJobFile",
            pb.ReadJobFileRequest(job_id=job_id, name="steps.csv", max_bytes=SMALL_LIMIT),
            pb.ReadJobFileResponse,
        )
    assert too_much.value.field == "max_bytes"
    with pytest.raises(NotFound):
        client.jobs.read_file("0123456789abcdef", "steps.csv")


def test_the_asyncio_client_reads_it_too(
    long_job: tuple[RemoteBoard, str, str, dict[str, bytes]],
) -> None:
    _, address, job_id, stored = long_job

    async def fetched() -> dict[str, bytes]:
        async with await connect_aio(address) as board:
            return (await board.jobs.get(job_id, include_record=True)).files

    assert asyncio.run(fetched()) == stored


def test_sidra_train_saves_a_long_job_s_record_whole(tmp_path: Path) -> None:
    out = tmp_path / "record"
    with served(tmp_path / "state.sqlite3") as (_, address):
        options = [f"--{k.replace('_', '-')}={v}" for k, v in LONG.items()]
        done = run_sidra(
            "train", "spsa", "--server", address, "--remote-job", "--dataset", "iris",
            *options, "--out", str(out), "--json",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == LONG["steps"]
    rows = (out / "steps.csv").read_text().splitlines()
    assert len(rows) == 1 + LONG["steps"]  # header and every step
    assert (out / "weights.npy").is_file()
    # The job's trained network, as a run from here keeps it: ready for `sidra model`.
    model = TrainedModel.load(out / "model.npz")
    assert model.job == "spsa" and model.inputs.dataset == "iris"
    assert model.trained["test_accuracy"] == json.loads(done.stdout)["test_accuracy"]


def test_a_record_that_fits_comes_whole_in_one_answer(tmp_path: Path) -> None:
    """What a short job's client saw before: its files in GetJob's answer."""
    with served(tmp_path / "state.sqlite3") as (client, _):
        job = client.jobs.submit("spsa", LONG | {"steps": 40, "eval_every": 20}, dataset="iris")
        client.jobs.wait(job.job_id)
        whole = client.jobs.get(job.job_id, include_record=True)
    assert set(whole.files) == set(whole.record_files)
    assert {n: len(c) for n, c in whole.files.items()} == whole.record_files


def test_a_refusal_other_than_the_record_s_size_is_not_hidden(tmp_path: Path) -> None:
    """Only RESOURCE_EXHAUSTED on include_record turns into reading file by file."""
    with served(tmp_path / "state.sqlite3") as (client, _), pytest.raises(NotFound):
        client.jobs.get("0123456789abcdef", include_record=True)


def test_a_kept_checkpoint_stays_unless_a_record_replaces_it(tmp_path: Path) -> None:
    """The store's side of a running job's checkpoint: kept as it runs (put_file), left
    by an end without a record, replaced whole by an end with one."""
    import time

    from sidra.server.state.jobs import JobRow

    with StateStore(tmp_path / "state.sqlite3") as store:
        records = JobRecords(store)
        for job_id in ("a" * 16, "b" * 16):
            records.add(JobRow(job_id, "mlp", "local", "iris", "{}", "running", time.time()))
            records.put_file(job_id, "checkpoint.json", b"{epoch 3}")
            records.put_file(job_id, "checkpoint.json", b"{epoch 7}")  # the latest only
        assert records.file_sizes("a" * 16) == {"checkpoint.json": 9}
        ended = records.get("a" * 16)
        assert ended is not None
        ended.state = "cancelled"
        records.update(ended, [], None)  # stopped at once: no record
        kept = records.get("a" * 16, with_files=True)
        assert kept is not None and kept.files == {"checkpoint.json": b"{epoch 7}"}
        done = records.get("b" * 16)
        assert done is not None
        done.state = "succeeded"
        records.update(done, [], {"summary.json": b"{}", "settings.json": b"{}"})
        finished = records.get("b" * 16, with_files=True)
        assert finished is not None and set(finished.files) == {"summary.json", "settings.json"}
        piece = records.read_file("b" * 16, "summary.json", 0, 10)
        assert (piece.content, piece.size_bytes) == (b"{}", 2)
        assert piece.sha256 == hashlib.sha256(b"{}").digest()


# -- a file replaced while it is read ------------------------------------------------

PIECE = SMALL_LIMIT - 64 * 1024
"""Bytes of one ReadJobFile answer here (max_bytes 0 on this server)."""


@pytest.fixture
def stored_job(tmp_path: Path) -> Iterator[tuple[str, str, JobRecords]]:
    """A server, the id of a job of its store, and the store's records (what a running
    job keeps its checkpoint through)."""
    from sidra.server.state.jobs import JobRow

    with open_board("emu://?preset=ideal&seed=0") as board, StateStore(tmp_path / "s.db") as state:
        server, port = create_server(board, store=state, max_message_bytes=SMALL_LIMIT)
        server.start()
        records = JobRecords(state)
        job_id = "c" * 16
        records.add(JobRow(job_id, "mlp", "local", "iris", "{}", "running", 0.0))
        try:
            yield f"127.0.0.1:{port}", job_id, records
        finally:
            server.stop(grace=None).wait()


class AfterEachRead(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Calls ``then(n)`` once the n-th ReadJobFile call has been answered."""

    def __init__(self, then: Callable[[int], None]) -> None:
        self.then = then
        self.reads = 0

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        outcome = continuation(details, request)  # the answer is in: the call is blocking
        if details.method.endswith("/ReadJobFile"):
            self.reads += 1
            self.then(self.reads)
        return outcome


def _file(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(size)


def _intercepted(address: str, interceptor: grpc.UnaryUnaryClientInterceptor) -> RemoteBoard:
    channel = grpc.intercept_channel(grpc.insecure_channel(address), interceptor)
    return RemoteBoard(channel, owns_channel=True, address=address)


def test_a_file_replaced_between_pieces_is_read_again_from_its_start(
    stored_job: tuple[str, str, JobRecords],
) -> None:
    """A running job keeps its checkpoint again while a client reads it: the pieces of
    the two are not put together; the client reads the new one whole."""
    address, job_id, records = stored_job
    old, new = _file(4 * PIECE - 100, 1), _file(4 * PIECE - 100, 2)  # 4 pieces each
    records.put_file(job_id, "checkpoint.json", old)

    def replace(read: int) -> None:
        if read == 2:
            records.put_file(job_id, "checkpoint.json", new)

    interceptor = AfterEachRead(replace)
    with _intercepted(address, interceptor) as client:
        assert client.jobs.read_file(job_id, "checkpoint.json") == new
    assert interceptor.reads == 2 + 1 + 4  # 2 of the old, one of the new seen, 4 again


def test_a_file_replaced_by_a_shorter_one_is_read_again(
    stored_job: tuple[str, str, JobRecords],
) -> None:
    """The next offset lies beyond the new file's end (OUT_OF_RANGE on offset)."""
    address, job_id, records = stored_job
    old, new = _file(4 * PIECE - 100, 3), _file(PIECE + 10, 4)
    records.put_file(job_id, "checkpoint.json", old)

    def replace(read: int) -> None:
        if read == 3:
            records.put_file(job_id, "checkpoint.json", new)

    interceptor = AfterEachRead(replace)
    with _intercepted(address, interceptor) as client:
        assert client.jobs.read_file(job_id, "checkpoint.json") == new
    assert interceptor.reads == 3 + 1 + 2  # 3 of the old, the refused offset, 2 again


def test_a_file_that_changes_at_every_piece_is_refused_after_a_few_reads(
    stored_job: tuple[str, str, JobRecords],
) -> None:
    address, job_id, records = stored_job
    records.put_file(job_id, "checkpoint.json", _file(2 * PIECE, 0))

    def replace(read: int) -> None:
        records.put_file(job_id, "checkpoint.json", _file(2 * PIECE, read))

    interceptor = AfterEachRead(replace)
    with _intercepted(address, interceptor) as client, pytest.raises(FailedPrecondition) as refused:
        client.jobs.read_file(job_id, "checkpoint.json")
    assert interceptor.reads == 2 * MAX_FILE_READS  # each read sees a new file at its 2nd piece
    assert str(refused.value).startswith(
        f"name: job {job_id}'s record file 'checkpoint.json' was replaced while it was read, "
        f"{MAX_FILE_READS} times"
    )


def test_the_asyncio_client_reads_a_replaced_file_again_too(
    stored_job: tuple[str, str, JobRecords],
) -> None:
    address, job_id, records = stored_job
    old, new = _file(3 * PIECE, 5), _file(3 * PIECE, 6)
    records.put_file(job_id, "checkpoint.json", old)
    reads = 0

    class AfterFirstRead(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            nonlocal reads
            call = await continuation(details, request)
            await call  # answered
            if details.method == b"/sidra.hil.v1.JobService/ReadJobFile":
                reads += 1
                if reads == 1:
                    records.put_file(job_id, "checkpoint.json", new)
            return call

    async def read() -> bytes:
        channel = grpc.aio.insecure_channel(address, interceptors=[AfterFirstRead()])
        async with AsyncRemoteBoard(channel, address=address) as board:
            return await board.jobs.read_file(job_id, "checkpoint.json")

    assert asyncio.run(read()) == new
    assert reads == 1 + 1 + 3


class BeforeFirstRead(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Calls ``then()`` before the first ReadJobFile call is sent."""

    def __init__(self, then: Callable[[], None]) -> None:
        self.then = then
        self.reads = 0

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.method.endswith("/ReadJobFile"):
            self.reads += 1
            if self.reads == 1:
                self.then()
        return continuation(details, request)


def test_a_job_that_ends_while_its_record_is_read_gives_its_final_record(
    stored_job: tuple[str, str, JobRecords],
) -> None:
    """GetJob named the running job's checkpoint.json; the job ended before it was read,
    its record replacing it: the client reads the record the job ended with."""
    address, job_id, records = stored_job
    records.put_file(job_id, "checkpoint.json", _file(2 * PIECE, 7))
    final = {"summary.json": b"{}", "steps.csv": _file(3 * PIECE, 8)}

    def end() -> None:
        row = records.get(job_id)
        assert row is not None
        row.state = "succeeded"
        records.update(row, [], final)

    interceptor = BeforeFirstRead(end)
    with _intercepted(address, interceptor) as client:
        job = client.jobs.get(job_id, include_record=True)
    assert (job.state, job.files) == ("succeeded", final)


def test_a_file_kept_before_digests_is_read_unchecked(tmp_path: Path) -> None:
    """A store of schema 3 (before digests): its files read as they are, digest empty."""
    path = tmp_path / "old.sqlite3"
    db = store_of_schema(path, 3)
    db.execute(
        "INSERT INTO jobs VALUES ('dddddddddddddddd', 'mlp', 'local', 'iris', '{}', "
        "'succeeded', 0, 0, 0, 0, 0, '', '', '', 0, '')"
    )
    db.execute("INSERT INTO job_files VALUES ('dddddddddddddddd', 'summary.json', x'7b7d')")
    db.commit()
    db.close()
    with StateStore(path) as store:  # migrated to the digests' schema
        piece = JobRecords(store).read_file("d" * 16, "summary.json", 0, 100)
    assert (piece.content, piece.sha256) == (b"{}", b"")
