"""Jobs sent a data set file of the client's own (SubmitJob dataset_file, jobs.proto "Data
sets"): trained on as a run here reads the file, refused at submission naming what is
wrong and leaving nothing stored, kept in the store while queued (a restarted server
starts the job with it) and dropped once the job starts, sent again to go on from a
checkpoint. Real server, store, board and command line."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from sidra.client import connect
from sidra.drivers import InvalidArgument
from sidra.hil.v1 import jobs_pb2
from sidra.server.stopping import ServerStop
from tests.cli_support import run_sidra, unwrapped
from tests.jobs.jobs_support import first_progress, serving
from tests.jobs.test_jobs_resume import assert_ends_as, finished

MLP = {"epochs": 3, "hidden": [8], "batch_size": 16}
"""A network trained in a few seconds on iris."""
ENDLESS = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16}


def iris_csv(folder: Path, name: str = "iris.csv", delimiter: str = ",") -> Path:
    """The bundled iris set as a spreadsheet writes it: a header, the species by name."""
    iris = load_iris()
    decimal = "," if delimiter != "," else "."
    lines = [delimiter.join(["sepal length", "sepal width", "petal length", "petal width",
                             "species"])]  # fmt: skip
    for row, target in zip(iris.data, iris.target, strict=True):
        numbers = [repr(float(v)).replace(".", decimal) for v in row]
        lines.append(delimiter.join([*numbers, str(iris.target_names[target])]))
    path = folder / name
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    return path


@pytest.mark.parametrize("delimiter", [",", ";"], ids=["points", "decimal-commas"])
def test_a_job_sent_a_file_trains_as_on_the_same_data_bundled(
    delimiter: str, tmp_path: Path
) -> None:
    """The iris set written as a CSV and sent with the job trains to the same weights,
    losses and accuracies as the server's bundled iris; the job names the file, its first
    log line its size and SHA-256."""
    sent = iris_csv(tmp_path, delimiter=delimiter)
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        bundled = finished(client, "mlp", MLP)
        job = client.jobs.submit("mlp", MLP, dataset=sent)
        assert job.dataset == "iris.csv"
        done = client.jobs.wait(job.job_id)
        record = client.jobs.get(done.job_id, include_record=True)
        lines = [e.message for e in client.jobs.watch(job.job_id) if e.kind == "log"]
    assert_ends_as(record, bundled)
    settings = json.loads(record.files["settings.json"])
    content = sent.read_bytes()
    assert settings["dataset"] == "iris.csv"  # as sent
    assert settings["dataset_sha256"] == hashlib.sha256(content).hexdigest()  # which version
    digest = hashlib.sha256(content).hexdigest()[:16]
    assert lines[0] == (
        f"loading data set iris.csv (sent with the job: {len(content):,} bytes, SHA-256 {digest})"
    )


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


GOOD_CSV = b"1,2,x\n3,4,y\n5,6,x\n7,8,y\n"


@pytest.mark.parametrize(
    ("dataset", "content", "field", "says"),
    [
        ("../lab.csv", GOOD_CSV, "dataset", "the sent file's name without its folder"),
        ("runs/lab.csv", GOOD_CSV, "dataset", "the sent file's name without its folder"),
        ("lab\n.csv", GOOD_CSV, "dataset", "the sent file's name without its folder"),
        ("x" * 252 + ".csv", GOOD_CSV, "dataset", "up to 255 characters"),
        ("lab.txt", GOOD_CSV, "dataset", "ending in .npz or .csv (the file types"),
        ("", GOOD_CSV, "dataset", "the sent file's name without its folder"),
        ("lab.csv", b"a,b,c\n1,2,x\n3,zz,y\n", "dataset_file",
         "lab.csv line 3, column 2 (b): got 'zz', expected a number"),
        ("lab.csv", b"1,2,x\n3,4,x\n", "dataset_file", "got one class ('x')"),
        ("lab.csv", b"\xff\xfe1,2\n", "dataset_file", "lab.csv: cannot be read as text"),
        ("lab.npz", b"PK not a zip", "dataset_file", "lab.npz is not an .npz archive"),
        ("lab.npz", _npz(X=np.zeros((4, 2))), "dataset_file",
         "lab.npz holds ['X'], expected arrays X and y"),
    ],
    ids=["parent", "folder", "control", "long", "suffix", "empty-name", "csv-cell", "one-class",
         "not-text", "not-zip", "no-y"],
)  # fmt: skip
def test_a_file_that_cannot_train_is_refused_naming_its_field_and_nothing_is_stored(
    dataset: str, content: bytes, field: str, says: str, tmp_path: Path
) -> None:
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        # the request as any client may send it, past this client's own checks
        request = jobs_pb2.SubmitJobRequest(kind="mlp", options_json=json.dumps(MLP),
                                            dataset=dataset, dataset_file=content)  # fmt: skip
        with pytest.raises(InvalidArgument) as refused:
            client.jobs._call("SubmitJob", request, jobs_pb2.Job, 30.0)
        assert refused.value.field == field
        assert says in str(refused.value)
        assert client.jobs.list() == []


def test_a_bundled_name_that_is_not_one_says_a_file_is_sent_with_its_content(
    tmp_path: Path,
) -> None:
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        request = jobs_pb2.SubmitJobRequest(kind="mlp", dataset="mnist")
        with pytest.raises(InvalidArgument) as refused:
            client.jobs._call("SubmitJob", request, jobs_pb2.Job, 30.0)
    assert refused.value.field == "dataset"
    assert refused.value.allowed == (
        "one of digits, iris, wine, breast_cancer (bundled data sets), or a file's name "
        "(.npz or .csv) with its content in dataset_file"
    )


def test_the_client_sends_a_path_and_refuses_a_file_name_given_as_text(tmp_path: Path) -> None:
    """A ``Path`` is read and sent; a str naming a file is refused before any call, saying
    to pass a Path (the server reads no file of a client's disk); a file that cannot be
    read is refused naming it."""
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        with pytest.raises(InvalidArgument) as as_text:
            client.jobs.submit("mlp", MLP, dataset="lab.csv")
        assert as_text.value.field == "dataset"
        assert "or a Path to a local .npz or .csv file" in as_text.value.allowed
        assert as_text.value.allowed.endswith("Path('lab.csv')")
        with pytest.raises(InvalidArgument) as missing:
            client.jobs.submit("mlp", MLP, dataset=tmp_path / "none.csv")
        assert missing.value.value == str(tmp_path / "none.csv")
        assert "(No such file or directory)" in missing.value.allowed
        assert client.jobs.list() == []  # refused here: nothing reached the server


def test_a_queued_job_s_file_outlives_the_server_and_is_dropped_once_it_starts(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s.sqlite3"
    sent = iris_csv(tmp_path)
    stopping = ServerStop()
    with serving(store, stopping=stopping) as address, connect(address) as client:
        holder = client.jobs.submit("spsa", {**ENDLESS, "tiles": [0]}, dataset="iris")
        first_progress(client, holder.job_id)
        waiting = client.jobs.submit("mlp", {**MLP, "tiles": [0, 1]}, dataset=sent, queue=True)
        assert waiting.state == "queued"
        stopping.run(30.0)
    kept_file = (
        "SELECT b.content FROM jobs j JOIN dataset_blobs b ON b.sha256 = j.dataset_sha256 "
        "WHERE j.id = ?"
    )
    with sqlite3.connect(store) as db:
        assert db.execute(kept_file, (waiting.job_id,)).fetchall() == [(sent.read_bytes(),)]
    with serving(store) as address, connect(address) as client:
        done = client.jobs.wait(waiting.job_id)
        assert done.state == "succeeded", done.error
        assert done.dataset == "iris.csv" and done.summary["test_accuracy"] > 0.5
        lines = [e.message for e in client.jobs.watch(waiting.job_id) if e.kind == "log"]
    # The store kept the file, and not whether it was sent or named: said as known.
    assert lines[0].startswith(
        "loading data set iris.csv (kept on the server while the job was queued: "
    )
    with sqlite3.connect(store) as db:
        assert db.execute(kept_file, (waiting.job_id,)).fetchall() == []
        assert db.execute("SELECT count(*) FROM dataset_blobs").fetchone() == (0,)


def test_sidra_trains_a_remote_job_on_a_file_and_resumes_it_with_the_file_again(
    tmp_path: Path,
) -> None:
    """`sidra train --remote-job --dataset FILE` sends the file; a job cancelled mid-way
    goes on with `sidra jobs resume ID --dataset FILE` (refused naming the file without
    it) and ends as the uninterrupted job."""
    sent = iris_csv(tmp_path, "lab.csv")
    long_run = {"epochs": 80, "hidden": [8], "batch_size": 16}
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        run = str(tmp_path / "run")
        cli = run_sidra("train", "mlp", "--server", address, "--remote-job", "--dataset",
                        str(sent), "--epochs", "2", "--out", run, "--json")  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        summary = json.loads(cli.stdout)
        assert client.jobs.get(summary["job_id"]).dataset == "lab.csv"
        settings = json.loads((tmp_path / "run" / "settings.json").read_text())
        assert settings["dataset"] == "lab.csv"  # the file as it was named: --like takes it

        whole = client.jobs.wait(client.jobs.submit("mlp", long_run, dataset=sent).job_id)
        whole = client.jobs.get(whole.job_id, include_record=True)
        job = client.jobs.submit("mlp", long_run, dataset=sent)
        first_progress(client, job.job_id)
        client.jobs.cancel(job.job_id)
        assert client.jobs.wait(job.job_id).state == "cancelled"

        without = run_sidra("jobs", "resume", job.job_id, "--server", address)
        assert without.returncode == 2
        assert unwrapped(
            f"'--dataset': got nothing; job {job.job_id} trained on a file it was sent, "
            "lab.csv, which the server does not keep for you (sidra jobs datasets list): "
            "give that file"
        ) in unwrapped(without.stderr)
        again = run_sidra("jobs", "resume", job.job_id, "--server", address, "--dataset",
                          str(sent), "--json")  # fmt: skip
        assert again.returncode == 0, again.stderr
        resumed_id = json.loads(again.stdout)["job_id"]
        client.jobs.wait(resumed_id)
        assert_ends_as(client.jobs.get(resumed_id, include_record=True), whole)


def test_two_files_of_one_name_are_placed_by_their_own_shape() -> None:
    """The shapes the queue places jobs by are known by the file's content, not its name:
    a file sent again under the same name with other columns is read again."""
    from sidra.training.jobs import placed_shape

    two = placed_shape("lab.csv", b"1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    three = placed_shape("lab.csv", b"1,2,0,x\n3,4,0,y\n5,6,0,z\n7,8,0,y\n")
    assert (two.features, two.classes) == (2, 2)
    assert (three.features, three.classes) == (3, 3)
    assert placed_shape("lab.csv", b"1,2,x\n3,4,y\n5,6,x\n7,8,y\n") is two  # read once


def test_the_async_client_sends_a_file_as_the_sync_one(tmp_path: Path) -> None:
    import asyncio

    from sidra.client.aio import connect as aio_connect

    sent = iris_csv(tmp_path, "lab.csv")

    async def run(address: str) -> tuple[str, str, dict[str, object]]:
        async with await aio_connect(address) as board:
            job = await board.jobs.submit("mlp", MLP, dataset=sent)
            done = await board.jobs.wait(job.job_id)
            return job.dataset, done.state, done.summary or {}

    with serving(tmp_path / "s.sqlite3") as address:
        dataset, state, summary = asyncio.run(run(address))
    assert (dataset, state) == ("lab.csv", "succeeded")
    assert summary["test_accuracy"] > 0.5


LONG = {
    "mlp": {"epochs": 80, "hidden": [8], "batch_size": 16},
    "spsa": {"steps": 4000, "eval_every": 500, "batch_size": 16},
}
"""Jobs long enough that a cancel lands before their end (and so they keep a checkpoint)."""


@pytest.mark.parametrize("kind", list(LONG))
def test_a_checkpoint_goes_on_only_with_the_same_version_of_its_file(
    kind: str, tmp_path: Path
) -> None:
    """A checkpoint names the SHA-256 of the file its run trained on: the file edited since
    (one value, same name and shape) is refused naming both digests, before any lease; the
    same bytes go on."""
    sent = iris_csv(tmp_path, "lab.csv")
    (tmp_path / "edited").mkdir()
    edited = tmp_path / "edited" / "lab.csv"
    edited.write_bytes(sent.read_bytes().replace(b"5.1,3.5", b"5.2,3.5", 1))
    long_run = LONG[kind]
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        job = client.jobs.submit(kind, long_run, dataset=sent)
        first_progress(client, job.job_id)
        client.jobs.cancel(job.job_id)
        client.jobs.wait(job.job_id)
        checkpoint = client.jobs.get(job.job_id, include_record=True).files["checkpoint.json"]
        with pytest.raises(InvalidArgument) as refused:
            client.jobs.submit(kind, long_run, dataset=edited, resume_checkpoint=checkpoint)
        assert refused.value.field == "resume_checkpoint"
        old, new = (hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in (sent, edited))
        assert (
            f"a run on another version of data set 'lab': its file's SHA-256 {old}…, this "
            f"one's {new}…"
        ) in str(refused.value)
        assert len(client.jobs.list()) == 1  # refused: nothing stored
        again = client.jobs.submit(kind, long_run, dataset=sent, resume_checkpoint=checkpoint)
        assert client.jobs.wait(again.job_id).state == "succeeded"

        # A file named as a bundled set is not that set: its run goes on only with the file.
        own_iris = iris_csv(tmp_path, "iris.csv")
        job = client.jobs.submit(kind, long_run, dataset=own_iris)
        first_progress(client, job.job_id)
        client.jobs.cancel(job.job_id)
        client.jobs.wait(job.job_id)
        checkpoint = client.jobs.get(job.job_id, include_record=True).files["checkpoint.json"]
        with pytest.raises(InvalidArgument) as refused:
            client.jobs.submit(kind, long_run, dataset="iris", resume_checkpoint=checkpoint)
        digest = hashlib.sha256(own_iris.read_bytes()).hexdigest()[:16]
        assert (
            f"a run on a data set file 'iris' (SHA-256 {digest}…), not the bundled data set "
            "'iris': give that file"
        ) in str(refused.value)


def test_a_comparison_job_s_record_names_the_file_as_sent(tmp_path: Path) -> None:
    sent = iris_csv(tmp_path, "lab.csv")
    options = {"budget": 40, "seeds": [0], "methods": ["spsa", "mlp"]}
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        job = client.jobs.submit("compare", options, dataset=sent)
        client.jobs.wait(job.job_id)
        done = client.jobs.get(job.job_id, include_record=True)
    assert done.state == "succeeded", done.error
    settings = json.loads(done.files["settings.json"])
    assert settings["dataset"] == done.summary["dataset"] == "lab.csv"
    assert settings["dataset_sha256"] == hashlib.sha256(sent.read_bytes()).hexdigest()
