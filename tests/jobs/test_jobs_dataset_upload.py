"""Data set files kept in the server (jobs.proto, "Stored data set files"): a file larger
than any request the server takes reaches it in pieces and trains a job named by its
SHA-256; a refused upload stores nothing; a file's bytes are kept once whoever holds them
(principals, queued jobs) and go when the last lets go; another principal's files are
out of reach. Real server, store, board and command line."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from sidra.client import connect
from sidra.client.errors import from_rpc_error
from sidra.client.job_datasets import DATASET_PIECE_BYTES, INLINE_DATASET_BYTES, DatasetRoom
from sidra.client.jobs import JOB_SERVICE
from sidra.drivers import DatasetNotKept, InvalidArgument, PermissionDenied, ResourceExhausted
from sidra.hil.v1 import jobs_pb2 as pb
from sidra.server.jobs import datasets as jobs_datasets
from sidra.server.jobs import runner as jobs_runner
from sidra.server.jobs.runner import HeldDataset
from sidra.server.security.roles import Role
from sidra.server.security.tokens import TokensFile
from sidra.server.settings import LimitsSettings
from sidra.server.state import datasets as state_datasets
from sidra.server.state.datasets import DatasetFileRow, DatasetRecords
from sidra.server.state.store import StateStore
from tests.cli_support import run_sidra, unwrapped
from tests.jobs.jobs_support import first_progress, serving
from tests.jobs.test_jobs_dataset_file import ENDLESS, MLP, iris_csv
from tests.server.security_support import principals
from tests.state.state_support import store_of_schema

MIB = 2**20
ONE_EPOCH = {"epochs": 1, "hidden": [8], "batch_size": 64}


def large_npz(folder: Path, name: str = "large.npz", samples: int = 2_600) -> Path:
    """A separable 4-class set of 64 float64 features: 1.3 MB for 2,600 samples, more than
    a 1 MiB request."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(samples, 64))
    y = np.argmax(x[:, :4], axis=1)
    buffer = io.BytesIO()
    np.savez(buffer, X=x, y=y)
    path = folder / name
    path.write_bytes(buffer.getvalue())
    return path


def _blobs(store: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT sha256, size_bytes FROM dataset_blobs ORDER BY sha256")
        return [(str(a), int(b)) for a, b in rows]


def _upload(address: str, pieces: list[pb.DatasetChunk], token: str = "") -> pb.DatasetFile:
    """UploadDataset of ``pieces`` as any client may send them, past this client's checks."""
    with connect(address, token=token or None) as client:
        method = client.jobs.channel.stream_unary(
            f"/{JOB_SERVICE}/UploadDataset",
            request_serializer=pb.DatasetChunk.SerializeToString,
            response_deserializer=pb.DatasetFile.FromString,
        )
        try:
            reply: pb.DatasetFile = method(iter(pieces), timeout=30.0)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return reply


def test_a_file_larger_than_a_request_is_uploaded_in_pieces_and_trains(tmp_path: Path) -> None:
    """A server taking requests of 1 MiB at most is sent a 1.3 MB file: the client keeps it
    there first, in pieces, and the job names it by its SHA-256; a second job on the same
    file does not send it again."""
    store = tmp_path / "s.sqlite3"
    sent = large_npz(tmp_path)
    content = sent.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    assert len(content) > MIB
    with serving(store, max_message_bytes=MIB) as address, connect(address) as client:
        job = client.jobs.submit("mlp", ONE_EPOCH, dataset=sent)
        assert job.dataset == "large.npz"
        done = client.jobs.wait(job.job_id)
        assert done.state == "succeeded", done.error
        assert done.summary is not None and done.summary["test_accuracy"] > 0.35  # chance 0.25
        (kept,) = client.jobs.datasets()
        assert (kept.name, kept.sha256, kept.size_bytes) == ("large.npz", digest, len(content))
        assert (kept.principal, kept.queued_jobs) == ("local", 0)
        again = client.jobs.wait(client.jobs.submit("mlp", ONE_EPOCH, dataset=sent).job_id)
        assert again.state == "succeeded", again.error
        (still,) = client.jobs.datasets()
        assert still.stored_unix_s == kept.stored_unix_s  # not uploaded again
        record = client.jobs.get(done.job_id, include_record=True)
        lines = [e.message for e in client.jobs.watch(job.job_id) if e.kind == "log"]
    settings = json.loads(record.files["settings.json"])
    assert (settings["dataset"], settings["dataset_sha256"]) == ("large.npz", digest)
    assert (
        lines[0]
        == (  # uploaded first and named: not in the job's request
            f"loading data set large.npz (kept on the server, uploaded before the job: "
            f"{len(content):,} bytes, SHA-256 {digest[:16]})"
        )
    )
    assert _blobs(store) == [(digest, len(content))]


def _pieces(name: str, content: bytes, *, size: int | None = None, sha: str | None = None,
            piece: int = 1000) -> list[pb.DatasetChunk]:  # fmt: skip
    digest = hashlib.sha256(content).hexdigest() if sha is None else sha
    first = pb.DatasetChunk(name=name, size_bytes=len(content) if size is None else size,
                            sha256=digest, data=content[:piece])  # fmt: skip
    rest = [pb.DatasetChunk(data=content[k : k + piece]) for k in range(piece, len(content), piece)]
    return [first, *rest]


CSV = b"1,2,x\n3,4,y\n5,6,x\n7,8,y\n" * 300
"""A small file of two classes, sent in several pieces of 1,000 bytes."""


@pytest.mark.parametrize(
    ("pieces", "field", "says"),
    [
        ([], "chunks", "got 'no piece', expected at least one DatasetChunk"),
        ([pb.DatasetChunk(name="lab.csv", data=CSV)], "chunks",
         "the file's name, its whole size and its SHA-256 in the first piece"),
        ([*_pieces("lab.csv", CSV), pb.DatasetChunk(name="lab.csv")], "chunks",
         "those in the first piece only"),
        (_pieces("lab.csv", CSV, size=len(CSV) - 1), "chunks",
         f"{len(CSV) - 1} bytes in all, as the first piece's size_bytes says"),
        (_pieces("lab.csv", CSV, size=len(CSV) + 1), "chunks",
         f"{len(CSV) + 1} bytes, as size_bytes says"),
        (_pieces("lab.csv", CSV, sha="ab" * 32), "chunks", "the SHA-256 the first piece names"),
        (_pieces("lab.csv", CSV, sha="xyz"), "sha256", "a SHA-256 as 64 hex digits"),
        (_pieces("runs/lab.csv", CSV), "name", "the sent file's name without its folder"),
        (_pieces("lab.txt", CSV), "name", "ending in .npz or .csv"),
        (_pieces("lab.csv", b"a,b,c\n1,2,x\n3,zz,y\n"), "data",
         "lab.csv line 3, column 2 (b): got 'zz', expected a number"),
    ],
    ids=["none", "no-header", "header-again", "too-many", "too-few", "digest", "bad-digest",
         "folder", "suffix", "content"],
)  # fmt: skip
def test_a_refused_upload_names_what_is_wrong_and_stores_nothing(
    pieces: list[pb.DatasetChunk], field: str, says: str, tmp_path: Path
) -> None:
    store = tmp_path / "s.sqlite3"
    with serving(store) as address:
        with pytest.raises(InvalidArgument) as refused:
            _upload(address, pieces)
        assert refused.value.field == field
        assert says in str(refused.value)
        with connect(address) as client:
            assert client.jobs.datasets() == []
    assert _blobs(store) == []


def test_files_past_the_principal_s_quota_are_refused_before_they_are_sent(
    tmp_path: Path,
) -> None:
    """[limits] max_dataset_mb bounds what one principal keeps: a file that would take it
    past is refused on its first piece; the same file sent again counts once."""
    store = tmp_path / "s.sqlite3"
    sent = large_npz(tmp_path)  # 1.3 MB
    small = iris_csv(tmp_path)
    limits = LimitsSettings(max_dataset_mb=2)
    with serving(store, limits=limits) as address, connect(address) as client:
        first = client.jobs.upload_dataset(sent)
        assert client.jobs.upload_dataset(sent).sha256 == first.sha256  # counted once
        assert client.jobs.dataset_room() == DatasetRoom(first.size_bytes, 2 * MIB)
        other = large_npz(tmp_path, "other.npz", samples=2_000)
        with pytest.raises(ResourceExhausted) as refused:
            client.jobs.upload_dataset(other)
        assert refused.value.field == "limits.max_dataset_mb"
        assert "at most 2097152 bytes (2 MiB) of data set files per principal" in str(refused.value)
        client.jobs.upload_dataset(small)  # what fits still does
        assert {f.name for f in client.jobs.datasets()} == {"large.npz", "iris.csv"}


def test_a_file_s_bytes_are_kept_once_and_go_when_the_last_holder_lets_go(
    tmp_path: Path,
) -> None:
    """Three queued jobs sent one file and the same file uploaded keep one copy; deleting
    the kept file leaves it to the queued jobs, which start with it; once they have, the
    bytes are gone."""
    store = tmp_path / "s.sqlite3"
    sent = iris_csv(tmp_path, "lab.csv")
    digest = hashlib.sha256(sent.read_bytes()).hexdigest()
    with serving(store) as address, connect(address) as client:
        holder = client.jobs.submit("spsa", {**ENDLESS, "tiles": [0]}, dataset="iris")
        first_progress(client, holder.job_id)
        queued = [
            client.jobs.submit("mlp", {**MLP, "tiles": [0, 1]}, dataset=sent, queue=True)
            for _ in range(3)
        ]
        assert [job.state for job in queued] == ["queued"] * 3
        kept = client.jobs.upload_dataset(sent)
        assert (kept.sha256, kept.queued_jobs) == (digest, 3)
        assert [d for d, _ in _blobs(store)] == [digest]
        assert client.jobs.delete_dataset(digest) == 0  # the queued jobs hold it
        assert client.jobs.datasets() == []
        client.jobs.cancel(holder.job_id)
        for job in queued:
            done = client.jobs.wait(job.job_id)
            assert done.state == "succeeded", done.error
        lines = [e.message for e in client.jobs.watch(queued[0].job_id) if e.kind == "log"]
    assert _blobs(store) == []
    # Sent with the job, then kept while it queued: still what the log says of it.
    assert lines[0].startswith("loading data set lab.csv (sent with the job: ")


def test_a_stored_file_trains_a_job_named_by_its_digest(tmp_path: Path) -> None:
    """SubmitJob dataset_sha256: the stored name by default, or a name of the same suffix;
    an unknown digest is NOT_FOUND, a malformed one and one sent with a file refused."""
    sent = iris_csv(tmp_path, "lab.csv")
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        kept = client.jobs.upload_dataset(sent)

        def submit(**fields: Any) -> pb.Job:
            request = pb.SubmitJobRequest(kind="mlp", options_json=json.dumps(MLP), **fields)
            job: pb.Job = client.jobs._call("SubmitJob", request, pb.Job, 30.0)
            return job

        assert submit(dataset_sha256=kept.sha256).dataset == "lab.csv"
        assert submit(dataset_sha256=kept.sha256.upper(), dataset="bench_3.csv").dataset == (
            "bench_3.csv"
        )
        with pytest.raises(InvalidArgument) as refused:
            submit(dataset_sha256=kept.sha256, dataset="lab.npz")
        assert refused.value.field == "dataset" and "ending in .csv" in str(refused.value)
        with pytest.raises(DatasetNotKept, match="no data set file of SHA-256 0{64} kept for "):
            submit(dataset_sha256="0" * 64)
        with pytest.raises(InvalidArgument) as malformed:
            submit(dataset_sha256="lab.csv")
        assert malformed.value.field == "dataset_sha256"
        with pytest.raises(InvalidArgument) as both:
            submit(dataset_sha256=kept.sha256, dataset="lab.csv", dataset_file=b"1,2,x\n")
        assert both.value.field == "dataset_sha256"
        for job in client.jobs.list():
            assert client.jobs.wait(job.job_id).state == "succeeded"


def test_another_principal_s_files_are_out_of_reach_but_an_admin_s(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    token = principals(
        tokens_file, viewer=Role.VIEWER, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER,
        admin=Role.ADMIN,
    )  # fmt: skip
    sent = iris_csv(tmp_path, "lab.csv")
    store = tmp_path / "s.sqlite3"
    with serving(store, tokens=TokensFile(tokens_file)) as address:
        with connect(address, token=token["alice"]) as alice:
            kept = alice.jobs.upload_dataset(sent)
        with connect(address, token=token["viewer"]) as viewer:
            with pytest.raises(PermissionDenied, match="UploadDataset needs role programmer"):
                viewer.jobs.upload_dataset(sent)
            assert viewer.jobs.datasets() == []
        with connect(address, token=token["bob"]) as bob:
            assert bob.jobs.datasets() == []
            with pytest.raises(PermissionDenied, match="an admin's right"):
                bob.jobs.datasets("alice")
            with pytest.raises(DatasetNotKept, match="^NOT_FOUND: sha256: no data set file of "):
                bob.jobs.delete_dataset(kept.sha256)
            request = pb.SubmitJobRequest(kind="mlp", dataset_sha256=kept.sha256)
            with pytest.raises(DatasetNotKept, match="kept for principal 'bob'"):
                bob.jobs._call("SubmitJob", request, pb.Job, 30.0)
        with connect(address, token=token["admin"]) as admin:
            assert [f.sha256 for f in admin.jobs.datasets("alice")] == [kept.sha256]
            assert admin.jobs.delete_dataset(kept.sha256, "alice") == kept.size_bytes
    assert _blobs(store) == []


def test_a_job_queued_before_files_were_kept_once_starts_with_its_own_copy(
    tmp_path: Path,
) -> None:
    """A store of schema 10 holds a queued job's file in its row: upgraded, the server
    starts the job with it."""
    store = tmp_path / "s.sqlite3"
    sent = iris_csv(tmp_path, "lab.csv")
    with serving(store) as address, connect(address) as client:  # a store of this version
        done = client.jobs.wait(client.jobs.submit("mlp", MLP, dataset=sent).job_id)
    old = tmp_path / "old.sqlite3"
    db = store_of_schema(old, 10)
    columns = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]  # those of schema 10
    with sqlite3.connect(store) as now:  # the same job, queued, as schema 10 kept it
        row = now.execute(
            f"SELECT {', '.join(columns)} FROM jobs WHERE id = ?", (done.job_id,)
        ).fetchone()
    values = dict(zip(columns, row, strict=True))
    values.update(state="queued", started_unix_s=0.0, ended_unix_s=0.0, summary_json="",
                  dataset_file=sent.read_bytes(), id="0123456789abcdef")  # fmt: skip
    db.execute(
        f"INSERT INTO jobs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        list(values.values()),
    )
    db.commit()
    db.close()
    with serving(old) as address, connect(address) as client:
        again = client.jobs.wait("0123456789abcdef")
        assert again.state == "succeeded", again.error
        assert again.dataset == "lab.csv"


def test_the_async_client_uploads_a_large_file_as_the_sync_one(tmp_path: Path) -> None:
    from sidra.client.aio import connect as aio_connect

    sent = large_npz(tmp_path)

    async def run(address: str) -> tuple[str, list[str]]:
        async with await aio_connect(address) as board:
            job = await board.jobs.submit("mlp", ONE_EPOCH, dataset=sent)
            done = await board.jobs.wait(job.job_id)
            kept = await board.jobs.datasets()
            freed = await board.jobs.delete_dataset(kept[0].sha256)
            assert freed == sent.stat().st_size
            return done.state, [f.name for f in kept]

    with serving(tmp_path / "s.sqlite3", max_message_bytes=MIB) as address:
        assert asyncio.run(run(address)) == ("succeeded", ["large.npz"])


def test_the_client_sends_a_small_file_in_the_request(tmp_path: Path) -> None:
    """Up to 512 KiB a file rides in SubmitJob itself: nothing is kept for the caller."""
    sent = iris_csv(tmp_path)
    assert sent.stat().st_size <= INLINE_DATASET_BYTES
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        client.jobs.wait(client.jobs.submit("mlp", MLP, dataset=sent).job_id)
        assert client.jobs.datasets() == []


def test_sidra_keeps_a_large_file_for_a_remote_job_and_lists_and_deletes_it(
    tmp_path: Path,
) -> None:
    """`sidra train --remote-job --dataset FILE` past a 1 MiB request: the file is kept in
    the server and the job trains; `sidra jobs datasets` lists, uploads and deletes; a
    file past the quota is a usage error naming --dataset and the setting."""
    sent = large_npz(tmp_path)
    digest = hashlib.sha256(sent.read_bytes()).hexdigest()
    limits = LimitsSettings(max_dataset_mb=2)
    with serving(tmp_path / "s.sqlite3", max_message_bytes=MIB, limits=limits) as address:
        cli = run_sidra("train", "mlp", "--server", address, "--remote-job", "--dataset",
                        str(sent), "--epochs", "1", "--hidden", "8", "--out",
                        str(tmp_path / "run"), "--json")  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        listed = run_sidra("jobs", "datasets", "list", "--server", address, columns=120)
        assert listed.returncode == 0, listed.stderr
        assert digest[:16] in listed.stdout and "large.npz" in listed.stdout
        assert unwrapped("1 file, 1.4 MB of 2.1 MB ([limits] max_dataset_mb = 2) allowed") in (
            unwrapped(listed.stdout)
        )

        bigger = large_npz(tmp_path, "bigger.npz", samples=2_200)
        over = run_sidra("train", "mlp", "--server", address, "--remote-job", "--dataset",
                         str(bigger), "--out", str(tmp_path / "run2"))  # fmt: skip
        assert over.returncode == 2
        assert unwrapped(
            f"'--dataset': got {bigger} (1.1 MB), expected at most 2097152 bytes (2 MiB) of "
            "data set files per principal; delete some (sidra jobs datasets delete SHA256)"
        ) in unwrapped(over.stderr)

        deleted = run_sidra("jobs", "datasets", "delete", digest[:10], "--server", address)
        assert deleted.returncode == 0, deleted.stderr
        assert f"large.npz ({digest[:16]}): deleted, 1.4 MB given back" in deleted.stdout
        uploaded = run_sidra("jobs", "datasets", "upload", str(bigger), "--server", address,
                             "--json")  # fmt: skip
        assert uploaded.returncode == 0, uploaded.stderr
        (kept,) = json.loads(uploaded.stdout)
        assert kept["name"] == "bigger.npz" and kept["size_bytes"] == bigger.stat().st_size
        unknown = run_sidra("jobs", "datasets", "delete", "0" * 12, "--server", address)
        assert unknown.returncode == 1
        assert "'000000000000': no kept file's SHA-256 starts so" in unknown.stderr


def test_the_store_keeps_a_principal_within_its_quota_in_the_write_itself(
    tmp_path: Path,
) -> None:
    """Two uploads checked against the quota at once cannot both be kept: the write checks
    again. The store's usage counts each file's bytes once."""
    with StateStore(tmp_path / "s.sqlite3") as store:
        records = DatasetRecords(store)
        first = records.keep("alice", "a.csv", HeldDataset(b"1" * 600), 1.0, max_bytes=1000)
        assert isinstance(first, DatasetFileRow)
        assert records.keep("alice", "b.csv", HeldDataset(b"2" * 600), 2.0, max_bytes=1000) == 600
        again = records.keep("alice", "a2.csv", HeldDataset(b"1" * 600), 3.0, max_bytes=1000)
        assert isinstance(again, DatasetFileRow) and again.name == "a2.csv"  # renamed
        bobs = records.keep("bob", "a.csv", HeldDataset(b"1" * 600), 4.0, max_bytes=1000)
        assert isinstance(bobs, DatasetFileRow)
        usage = store.usage()
        assert (usage.dataset_files, usage.dataset_file_bytes) == (1, 600)
        assert records.delete("alice", first.sha256) == 0  # bob keeps the bytes
        assert records.delete("bob", first.sha256) == 600
        assert records.delete("bob", first.sha256) is None
        assert store.usage().dataset_files == 0


def test_a_file_deleted_between_the_client_s_look_and_its_submission_is_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client asks whether the server keeps the file, then submits naming it: a file
    deleted in between (another of the principal's clients) is uploaded again, once."""
    sent = large_npz(tmp_path)
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        jobs = client.jobs  # one Jobs: the property makes a new one each time
        keep = jobs._keep_in_server
        looked: list[str] = []

        def kept_then_deleted(to_send: Any, on_progress: Any) -> None:
            keep(to_send, on_progress)
            assert jobs.delete_dataset(to_send.sha256) == to_send.size_bytes
            looked.append(to_send.sha256)

        monkeypatch.setattr(jobs, "_keep_in_server", kept_then_deleted)
        job = jobs.submit("mlp", ONE_EPOCH, dataset=sent)
        assert looked == [hashlib.sha256(sent.read_bytes()).hexdigest()]
        assert jobs.wait(job.job_id).state == "succeeded"
        assert [f.name for f in client.jobs.datasets()] == ["large.npz"]


def test_a_job_on_a_kept_file_goes_on_without_the_file_given_again(tmp_path: Path) -> None:
    """`sidra jobs resume ID` of a job that trained on a file the server keeps for the
    caller takes it there (by the SHA-256 its record names); once deleted, it asks for
    the file."""
    sent = iris_csv(tmp_path, "lab.csv")
    long_run = {"epochs": 80, "hidden": [8], "batch_size": 16}
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        kept = client.jobs.upload_dataset(sent)
        job = client.jobs.submit("mlp", long_run, dataset=kept)  # a DatasetInfo: by digest
        assert job.dataset == "lab.csv"
        first_progress(client, job.job_id)
        client.jobs.cancel(job.job_id)
        assert client.jobs.wait(job.job_id).state == "cancelled"
        again = run_sidra("jobs", "resume", job.job_id, "--server", address, "--json")
        assert again.returncode == 0, again.stderr
        resumed = client.jobs.wait(json.loads(again.stdout)["job_id"])
        assert (resumed.state, resumed.dataset) == ("succeeded", "lab.csv")
        assert resumed.summary is not None and resumed.summary["test_accuracy"] > 0.5
        client.jobs.delete_dataset(kept.sha256)
        gone = run_sidra("jobs", "resume", job.job_id, "--server", address)
        assert gone.returncode == 2
        assert unwrapped("which the server does not keep for you") in unwrapped(gone.stderr)


def test_an_upload_tells_its_progress_piece_by_piece(tmp_path: Path) -> None:
    sent = large_npz(tmp_path)
    size = sent.stat().st_size
    told: list[tuple[int, int]] = []
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        kept = client.jobs.upload_dataset(sent, lambda done, total: told.append((done, total)))
    assert kept.size_bytes == size
    pieces = -(-size // DATASET_PIECE_BYTES)
    assert [done for done, _ in told] == [
        min(k * DATASET_PIECE_BYTES, size) for k in range(1, pieces + 1)
    ]
    assert {total for _, total in told} == {size}


def test_the_service_hashes_a_sent_file_once_and_a_kept_one_not_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload hashes its pieces as they arrive; the check, the store and a submission
    naming the kept file take that digest (the store's, for the submission) instead of
    hashing the bytes again, and the job trains on them."""
    hashed: list[int] = []  # the bytes each SHA-256 the service's job modules start is given

    class Counting:
        @staticmethod
        def sha256(data: bytes = b"") -> Any:
            hashed.append(len(data))
            return hashlib.sha256(data)

    for module in (jobs_runner, jobs_datasets, state_datasets):
        monkeypatch.setattr(module, "hashlib", Counting)
    sent = iris_csv(tmp_path, "lab.csv")
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        kept = client.jobs.upload_dataset(sent)
        assert hashed == [0]  # one hash, fed piece by piece
        job = client.jobs.submit("mlp", MLP, dataset=kept)  # named by its digest
        assert client.jobs.wait(job.job_id).state == "succeeded"
    assert hashed == [0]


def test_a_queued_job_s_file_is_read_from_the_store_once_as_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job waiting for tiles is placed again every pass of the queue; its file stays in
    the store (its shape known by digest), and is read once, when the job starts."""
    reads: list[str] = []
    blob = DatasetRecords.blob

    def counted(self: DatasetRecords, sha256: str) -> bytes | None:
        reads.append(sha256)
        return blob(self, sha256)

    monkeypatch.setattr(DatasetRecords, "blob", counted)
    sent = large_npz(tmp_path)
    with (
        serving(tmp_path / "s.sqlite3") as address,
        connect(address) as client,
        connect(address) as other,
        other.session(label="bench", ttl_s=60) as bench,
    ):
        bench.lease([0, 1, 2, 3])
        job = client.jobs.submit("mlp", ONE_EPOCH, dataset=sent, queue=True)
        assert job.state == "queued"
        time.sleep(2.5)  # the queue's passes: at least one a second
        assert reads == []
        bench.release(all_tiles=True)
        done = client.jobs.wait(job.job_id)
        assert done.state == "succeeded", done.error
        lines = [e.message for e in client.jobs.watch(job.job_id) if e.kind == "log"]
    assert reads == [hashlib.sha256(sent.read_bytes()).hexdigest()]
    # Queued, read from the store: still the file it named, uploaded before it.
    assert lines[0].startswith("loading data set large.npz (kept on the server, uploaded "
                               "before the job: ")  # fmt: skip


DAY_S = 86_400.0


def test_files_unused_past_the_retention_are_deleted_and_a_job_s_use_counts(
    tmp_path: Path,
) -> None:
    """[state] dataset_retention_days: a file neither uploaded nor named by a job for that
    long goes when the server starts; one a job named lately stays, and naming one by its
    SHA-256 counts as a use (a refused job does not)."""
    store = tmp_path / "s.sqlite3"
    now = time.time()
    with StateStore(store) as state:
        records = DatasetRecords(state)
        old = records.keep("local", "old.csv", HeldDataset(CSV), now - 40 * DAY_S, max_bytes=MIB)
        used = records.keep("local", "used.csv", HeldDataset(CSV + b"9,9,x\n"), now - 40 * DAY_S,
                            max_bytes=MIB)  # fmt: skip
        assert isinstance(old, DatasetFileRow) and isinstance(used, DatasetFileRow)
        records.used("local", used.sha256, now - 2 * DAY_S)
    with serving(store, dataset_retention_days=30.0) as address, connect(address) as client:
        (kept,) = client.jobs.datasets()
        assert kept.name == "used.csv" and kept.used_unix_s == pytest.approx(now - 2 * DAY_S)
        fresh = client.jobs.upload_dataset(iris_csv(tmp_path, "lab.csv"))
        assert fresh.used_unix_s == 0.0
        with pytest.raises(InvalidArgument, match="epochs"):  # a refused job is no use
            client.jobs.submit("mlp", {**MLP, "epochs": 0}, dataset=fresh)
        assert client.jobs.datasets(sha256=fresh.sha256)[0].used_unix_s == 0.0
        client.jobs.wait(client.jobs.submit("mlp", MLP, dataset=fresh).job_id)
        (named,) = [f for f in client.jobs.datasets() if f.name == "lab.csv"]
        assert named.used_unix_s >= now
    assert old.sha256 not in [d for d, _ in _blobs(store)]


def test_the_store_deletes_files_by_their_last_upload_or_use(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.sqlite3") as store:
        records = DatasetRecords(store)
        first = records.keep("alice", "a.csv", HeldDataset(b"1" * 10), 10.0, max_bytes=MIB)
        assert isinstance(first, DatasetFileRow)
        records.used("alice", first.sha256, 50.0)
        assert records.delete_unused_since(40.0) == []
        # Uploaded again:
        again = records.keep("alice", "b.csv", HeldDataset(b"1" * 10), 70.0, max_bytes=MIB)
        assert isinstance(again, DatasetFileRow)
        assert (again.name, again.used_unix_s) == ("b.csv", 50.0)  # its use kept
        assert [r.name for r in records.delete_unused_since(80.0)] == ["b.csv"]
        assert records.files("alice") == [] and records.blob(first.sha256) is None
