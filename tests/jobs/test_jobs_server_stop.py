"""A server told to stop lets its running jobs reach their next boundary first: they end
interrupted keeping their record and checkpoint, and a job submitted with that
checkpoint goes on (sidra.server.stopping, jobs.proto "Going on from a checkpoint").
Before, a job running when ``sidra serve`` stopped was found interrupted with nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import FailedPrecondition
from sidra.server.stopping import ServerStop
from tests.cli_support import SIDRA, run_sidra, unwrapped
from tests.jobs.jobs_support import IDEAL_URL, first_progress, serving

LONG_MLP = {"epochs": 400, "hidden": [16]}
"""An mlp job on iris of some seconds: stopped long before its end."""


@contextmanager
def _served(store: Path, **server: Any) -> Iterator[RemoteBoard]:
    """A server of the ideal board with its state in ``store``, and a client of it."""
    with serving(store, **server) as address, connect(address) as client:
        yield client


def test_a_stopping_server_ends_its_jobs_at_a_boundary_with_their_record(
    tmp_path: Path,
) -> None:
    stopping = ServerStop()
    with _served(tmp_path / "s.sqlite3", stopping=stopping) as client:
        job = client.jobs.submit("mlp", LONG_MLP, dataset="iris")
        first_progress(client, job.job_id)
        stopping.run(30.0)
        done = client.jobs.get(job.job_id, include_record=True)
        with pytest.raises(FailedPrecondition, match="the server is stopping"):
            client.jobs.submit("mlp", LONG_MLP, dataset="iris")
    assert done.state == "interrupted"
    match = re.fullmatch(
        r"the server stopped; the job stopped after epoch (\d+), its record kept", done.error
    )
    assert match, done.error
    epoch = int(match.group(1))
    assert 1 <= epoch < LONG_MLP["epochs"]
    assert done.summary is not None and done.summary["stopped_at_epoch"] == epoch
    assert {"checkpoint.json", "weights.npy", "steps.csv"} <= done.files.keys()
    with _served(tmp_path / "back.sqlite3") as client:
        again = client.jobs.submit(
            "mlp", LONG_MLP, dataset="iris",
            resume_checkpoint=done.files["checkpoint.json"],
        )  # fmt: skip
        resumed = client.jobs.wait(again.job_id)
    assert resumed.state == "succeeded", resumed.error
    assert resumed.summary is not None and "stopped_at_epoch" not in resumed.summary


def test_a_job_that_reaches_no_boundary_in_time_is_stopped_at_its_next_board_call(
    tmp_path: Path,
) -> None:
    stopping = ServerStop()
    with _served(tmp_path / "s.sqlite3", stopping=stopping) as client:
        job = client.jobs.submit("mlp", LONG_MLP, dataset="iris")
        first_progress(client, job.job_id)
        stopping.run(0.0)  # no time to reach a boundary
        done = client.jobs.get(job.job_id, include_record=True)
    assert done.state == "interrupted"
    # Almost always stopped mid-epoch; in the microseconds between an epoch's last board
    # call and its boundary, it keeps its record as in the test above.
    if "no record kept" in done.error:
        assert done.error.startswith("the server stopped before the job reached a step")
        assert done.files == {}
    else:
        assert "checkpoint.json" in done.files


def _serve(
    env: dict[str, str], log: list[str] | None = None, listen: str = "127.0.0.1:0"
) -> tuple[subprocess.Popen[str], str]:
    """``sidra serve`` of the ideal board on ``listen`` (a free loopback port), with
    ``env``; its log lines after the first go to ``log`` as they come."""
    proc = subprocess.Popen(
        [*SIDRA, "serve", "--board", IDEAL_URL, "--listen", listen],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    stderr = proc.stderr
    assert stderr is not None

    def drain() -> None:  # its log lines read on, so that a full pipe never stalls it
        with stderr:
            for line in stderr:
                if log is not None:
                    log.append(line)

    for line in stderr:
        found = re.search(r"serving .* on (127\.0\.0\.1:\d+)", line)
        if found:
            threading.Thread(target=drain, daemon=True).start()
            return proc, found.group(1)
    stderr.close()
    raise AssertionError(f"sidra serve exited {proc.wait()} without serving")


def _ended(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()


def test_sidra_serve_stopped_keeps_its_running_job_s_record(tmp_path: Path) -> None:
    """SIGTERM to ``sidra serve`` with a job running; the server started again on the
    same state store reports the job interrupted with its record and checkpoint."""
    env = {
        **os.environ,
        "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3"),
        "SIDRA_JOB_STOP_WAIT_S": "45",
    }
    log: list[str] = []
    proc, address = _serve(env, log)
    try:
        with connect(address) as client:
            job = client.jobs.submit("mlp", LONG_MLP, dataset="iris")
            first_progress(client, job.job_id)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        _ended(proc)
    assert any("1 running job stops at its next boundary (up to 45 s)" in line for line in log)
    proc, address = _serve(env)
    try:
        with connect(address) as client:
            done = client.jobs.get(job.job_id, include_record=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        _ended(proc)
    assert done.state == "interrupted"
    assert done.error.startswith("the server stopped; the job stopped after epoch ")
    assert "checkpoint.json" in done.files
    weights = np.load(io.BytesIO(done.files["weights.npy"]))
    assert weights.shape == (17, 3)  # iris: 16 hidden units and a bias row, 3 classes


# -- a server that dies mid-job ------------------------------------------------------


def _kept_checkpoint(client: Any, job_id: str, timeout_s: float = 60.0) -> None:
    """Waits until the running job has kept a checkpoint in the store."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.jobs.get(job_id)
        assert job.state == "running", job.error
        if "checkpoint.json" in job.record_files:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint kept")


def test_a_running_job_keeps_its_checkpoint_in_the_store_as_it_goes(tmp_path: Path) -> None:
    """Readable while the job runs (ReadJobFile); a job stopped without a record (cancelled
    twice) still leaves it, and a new job goes on from it."""
    with _served(tmp_path / "s.sqlite3", job_checkpoint_every_s=0.05) as client:
        job = client.jobs.submit("mlp", LONG_MLP, dataset="iris")
        _kept_checkpoint(client, job.job_id)
        running = json.loads(client.jobs.read_file(job.job_id, "checkpoint.json"))
        assert 1 <= running["epoch"] < LONG_MLP["epochs"]
        client.jobs.cancel(job.job_id)
        client.jobs.cancel(job.job_id)  # again: at once, no record
        done = client.jobs.wait(job.job_id)
        assert done.state == "cancelled"
        kept = client.jobs.get(job.job_id, include_record=True).files
        # Stopped at once, no record: the checkpoint it kept as it ran is left.
        # (When the first cancel's boundary came before the second, its record
        # holds a newer one.)
        assert kept.keys() == {"checkpoint.json"} or done.summary is not None
        assert "checkpoint.json" in kept
        if done.summary is None:  # its error says what is left
            assert done.error == (
                "cancelled by local; its last checkpoint is kept (checkpoint.json), to go on from"
            )
        resumed = client.jobs.wait(
            client.jobs.submit(
                "mlp",
                LONG_MLP,
                dataset="iris",
                resume_checkpoint=kept["checkpoint.json"],
            ).job_id  # fmt: skip
        )
        assert resumed.state == "succeeded", resumed.error
        final = client.jobs.get(resumed.job_id, include_record=True).files
    assert "checkpoint.json" not in final  # a finished job's record has none


def test_a_job_whose_server_was_killed_goes_on_from_its_last_checkpoint(
    tmp_path: Path,
) -> None:
    """``kill -9`` of ``sidra serve`` mid-job: started again, the server reports the job
    interrupted with the checkpoint it kept ([state] job_checkpoint_every_s), and a new
    job goes on from it to the end."""
    env = {
        **os.environ,
        "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3"),
        "SIDRA_STATE__JOB_CHECKPOINT_EVERY_S": "1",
    }
    options = {"epochs": 1500, "hidden": [16]}
    proc, address = _serve(env)
    try:
        with connect(address) as client:
            job = client.jobs.submit("mlp", options, dataset="iris")
            _kept_checkpoint(client, job.job_id)
        proc.kill()  # SIGKILL: nothing runs on its way out
        proc.wait(timeout=60)
    finally:
        _ended(proc)
    proc, address = _serve(env)
    try:
        with connect(address) as client:
            found = client.jobs.get(job.job_id, include_record=True)
            again = client.jobs.submit(
                "mlp", options, dataset="iris", resume_checkpoint=found.files["checkpoint.json"]
            )
            resumed = client.jobs.wait(again.job_id)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        _ended(proc)
    assert found.state == "interrupted"
    assert "its last checkpoint is kept (checkpoint.json)" in found.error
    epoch = json.loads(found.files["checkpoint.json"])["epoch"]
    assert 1 <= epoch < options["epochs"]
    assert resumed.state == "succeeded", resumed.error
    assert resumed.summary is not None
    assert resumed.summary["steps"] == options["epochs"] * 4  # iris: 105 samples, 32 a batch


def test_sidra_jobs_resume_goes_on_from_where_a_job_stopped(tmp_path: Path) -> None:
    """``sidra jobs resume ID``: the stopped job's kind, options and data set, sent with
    the checkpoint it kept; a job that kept none is refused naming what it has (exit 1)."""
    with _served(tmp_path / "s.sqlite3") as client:
        address = client.address
        assert address is not None
        short = client.jobs.wait(
            client.jobs.submit("mlp", {"epochs": 2, "hidden": [16]}, dataset="iris").job_id
        )
        job = client.jobs.submit("mlp", LONG_MLP, dataset="iris")
        first_progress(client, job.job_id)
        client.jobs.cancel(job.job_id)  # at its next epoch, keeping its checkpoint
        cancelled = client.jobs.wait(job.job_id)
        assert cancelled.state == "cancelled"
        resumed = run_sidra("jobs", "resume", job.job_id, "--server", address, "--json")
        assert resumed.returncode == 0, resumed.stderr
        new = json.loads(resumed.stdout)
        done = client.jobs.wait(new["job_id"])
        refused = run_sidra("jobs", "resume", short.job_id, "--server", address)
    assert (new["kind"], new["dataset"], new["options"]) == ("mlp", "iris", cancelled.options)
    assert done.state == "succeeded", done.error
    assert done.summary is not None
    assert done.summary["steps"] == LONG_MLP["epochs"] * 4  # iris: 105 samples, 32 a batch
    assert refused.returncode == 1
    said = unwrapped(f"job {short.job_id} (succeeded) kept no checkpoint.json to go on from")
    assert said in unwrapped(refused.stderr)


def test_a_remote_job_s_command_that_loses_its_server_says_how_to_find_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server killed while ``--remote-job`` follows: the command said gRPC's
    'failed to connect to all addresses' and nothing of its job. Now it names the job
    and the commands that find it once the server is back (the watch's wait for a
    server to come back shortened to 1 s here)."""
    import typer
    from rich.console import Console

    from sidra.cli import jobs as cli_jobs
    from sidra.cli.jobs import run_remote_job
    from sidra.client import jobs as client_jobs

    monkeypatch.setattr(client_jobs, "RECONNECT_LIMIT_S", 1.0)
    env = {**os.environ, "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3")}
    proc, address = _serve(env)
    gone, following = threading.Event(), threading.Event()
    follow = cli_jobs._follow

    def followed(*args: Any, **kwargs: Any) -> None:  # the submission answered
        following.set()
        follow(*args, **kwargs)

    monkeypatch.setattr(cli_jobs, "_follow", followed)

    def kill_once_the_job_runs() -> None:  # not on a timer: a loaded machine submits late
        # Once the command follows the job: a job listed may still have its SubmitJob
        # answer on the way (that loss is the next test's).
        following.wait(timeout=60.0)
        proc.kill()

    killer = threading.Thread(target=kill_once_the_job_runs, daemon=True)
    try:
        killer.start()
        with pytest.raises(typer.Exit) as ended:
            run_remote_job(address, "mlp", LONG_MLP, "iris", tmp_path / "out",
                           Console(stderr=True, quiet=True))  # fmt: skip
    finally:
        gone.set()
        killer.join(timeout=70)
        _ended(proc)
    assert ended.value.exit_code == 1
    said = " ".join(capsys.readouterr().err.split())
    job = re.search(rf"sidra train mlp: lost {re.escape(address)} while following job (\w+) ", said)
    assert job, said
    assert "(BoardUnavailable: UNAVAILABLE: " in said
    # The record it kept is not in --out: the command that says where it is saves it.
    out = tmp_path / "out"
    assert f"sidra jobs show {job.group(1)} --out {out} --server {address} says where" in said
    assert f"sidra jobs resume {job.group(1)} --server {address} goes on" in said


def test_a_remote_job_whose_submission_goes_unanswered_says_how_to_find_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The connection lost after the server took the job, before its answer came back
    (behind a proxy adding 1 s each way, closed once the job is listed): the command
    said only that the server could not be reached, and the user could submit it twice."""
    import typer
    from rich.console import Console

    from sidra.cli.delay_proxy import DelayProxy
    from sidra.cli.jobs import run_remote_job

    env = {**os.environ, "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3")}
    proc, address = _serve(env)
    try:
        with DelayProxy(address, 1.0) as proxy:

            def cut_once_the_job_is_taken() -> None:
                with connect(address) as watcher:  # directly: no delay on this path
                    deadline = time.monotonic() + 60.0
                    while not watcher.jobs.list() and time.monotonic() < deadline:
                        time.sleep(0.02)
                proxy.close()

            cutter = threading.Thread(target=cut_once_the_job_is_taken, daemon=True)
            cutter.start()
            with pytest.raises(typer.Exit) as ended:
                run_remote_job(proxy.address, "mlp", LONG_MLP, "iris", tmp_path / "out",
                               Console(stderr=True, quiet=True))  # fmt: skip
            cutter.join(timeout=70)
        with connect(address) as client:
            assert len(client.jobs.list()) == 1  # taken, though its answer was lost
    finally:
        _ended(proc)
    assert ended.value.exit_code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert f"lost {proxy.address} before it answered the job's submission" in said, said
    assert f"sidra jobs list --server {proxy.address} shows your jobs" in said


def test_a_watch_across_a_killed_server_ends_with_how_the_job_ended(tmp_path: Path) -> None:
    """``kill -9`` while a client watches a job: the server started again at the same
    address has only the events it had stored (its checkpoints an hour apart: hardly
    any), and marks the job interrupted. The watch, resumed, was refused for an index
    past them; now it goes on from the events the server has and ends with that state."""
    env = {
        **os.environ,
        "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3"),
        "SIDRA_STATE__JOB_CHECKPOINT_EVERY_S": "3600",
    }
    proc, address = _serve(env)
    given: list[Any] = []
    failed: list[BaseException] = []

    def follow(job_id: str) -> None:
        try:
            with connect(address) as watcher:
                given.extend(watcher.jobs.watch(job_id))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            failed.append(exc)

    try:
        with connect(address) as client:
            job = client.jobs.submit("mlp", {"epochs": 100_000, "hidden": [16]}, dataset="iris")
        follower = threading.Thread(target=follow, args=(job.job_id,), daemon=True)
        follower.start()
        deadline = time.monotonic() + 60
        while sum(e.kind == "progress" for e in given) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        seen_before = len(given)
        proc.kill()  # SIGKILL: the events since the last checkpoint were never stored
        proc.wait(timeout=60)
    finally:
        _ended(proc)
    proc, _ = _serve(env, listen=address)  # the same address: the watcher resumes there
    try:
        follower.join(timeout=90)
        with connect(address) as client:
            stored = client.jobs.get(job.job_id)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        _ended(proc)
    assert not follower.is_alive() and not failed, failed
    assert stored.state == "interrupted" and stored.events < seen_before  # events were lost
    last = given[-1]
    assert (last.kind, last.state) == ("state", "interrupted")
    times = [e.unix_s for e in given]
    assert times == sorted(times)  # nothing given twice, nothing older given after
