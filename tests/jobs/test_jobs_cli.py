"""``sidra train … --remote-job`` and ``sidra jobs`` against a real ``sidra serve``."""

from __future__ import annotations

import csv
import json
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sidra.client import RemoteBoard
from sidra.drivers.host_machine import software
from sidra.training.provenance import MACHINE_KEYS
from tests.cli_support import SIDRA, run_sidra, served, sidra_json, unwrapped


def _address(board: RemoteBoard) -> str:
    assert board.address is not None
    return board.address


def test_train_remote_job_then_jobs_list_show_logs_cancel(tmp_path: Path) -> None:
    with served("emu://?preset=ideal&seed=3") as board:
        server = _address(board)
        out = tmp_path / "record"
        summary = sidra_json(
            "train", "spsa", "--server", server, "--remote-job", "--steps", "8",
            "--batch-size", "16", "--tile", "1", "--out", str(out),
        )  # fmt: skip
        assert summary["steps"] == 8 and summary["record"] == str(out)
        job_id = summary["job_id"]
        with (out / "steps.csv").open() as f:
            assert len(list(csv.reader(f))) == 9  # header + one row per step
        settings = json.loads((out / "settings.json").read_text())
        assert (settings["tiles"], settings["placement"]) == ([1], {"layer": [1]})
        # The record as a local run saves it, its plot too (drawn in the server).
        assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"

        # The state store is the test session's: other tests' jobs may be listed too.
        listed = sidra_json("jobs", "list", "--server", server)
        assert listed[0]["job_id"] == job_id  # newest first
        assert (listed[0]["state"], listed[0]["step"]) == ("succeeded", 8)
        shown = sidra_json("jobs", "show", job_id, "--server", server)
        assert shown["options"]["steps"] == 8 and shown["summary"]["steps"] == 8
        plain = run_sidra("jobs", "show", job_id, "--server", server)  # as a person reads it
        assert plain.returncode == 0, plain.stderr
        assert re.search(r"^\s*tiles\s+tile 1\s*$", plain.stdout, re.M), plain.stdout
        assert re.search(r"^\s*test_accuracy\s+\d+\.\d\d %\s*$", plain.stdout, re.M)
        # run.json: the job as the server ran it, on which board, for whom.
        run = json.loads((out / "run.json").read_text())
        assert (run["where"], run["job_id"], run["server"], run["principal"]) == (
            "job", job_id, server, shown["principal"],
        )  # fmt: skip
        assert run["board"]["serial_number"] == board.info.serial_number
        # The machine and software that ran it, the server's (its record's run.json), as a
        # run from here names its own; the saving client's apart. The server here runs
        # from this checkout, on this machine.
        ran_here = software()
        for key in MACHINE_KEYS:
            assert key in run, key
        assert (run["host"], run["cpu"], run["cpus"], run["blas"]) == (
            socket.gethostname(), ran_here["cpu"], ran_here["cpus"], ran_here["blas"],
        )  # fmt: skip
        assert run["commit"] is not None
        assert run["commit"].split("+")[0] == ran_here["commit"].split("+")[0]
        assert run["saved_by"]["command"][:2] == ["sidra", "train"]
        kept = json.loads(board.jobs.get(job_id, include_record=True).files["run.json"])
        assert (kept["where"], kept["job_id"], kept["cpu"]) == ("job", job_id, run["cpu"])
        assert run["wall_s"] == round(shown["ended_unix_s"] - shown["started_unix_s"], 3)

        logs = run_sidra("jobs", "logs", job_id, "--server", server)
        assert logs.returncode == 0, logs.stderr
        lines = logs.stdout.splitlines()
        assert "running" in lines[0] and "succeeded" in lines[-1]
        assert [int(line.split()[0]) for line in lines] == list(range(len(lines)))

        # A job left running is cancelled from another command.
        job = board.jobs.submit("spsa", {"steps": 1_000_000, "batch_size": 16})
        cancelled = run_sidra("jobs", "cancel", job.job_id, "--server", server)
        assert cancelled.returncode == 0 and unwrapped(
            "stopping at its next step, epoch or run boundary, with its record; cancel it "
            "again to stop it at its next board call, without its record"
        ) in unwrapped(cancelled.stdout)
        followed = run_sidra("jobs", "logs", job.job_id, "--server", server, "--follow")
        last = followed.stdout.splitlines()[-1].split(maxsplit=3)[3]
        assert re.fullmatch(r"cancelled: cancelled by local; stopped after step \d+, its "
                            r"record kept", last), last  # fmt: skip

        missing = run_sidra("jobs", "show", "0000000000000000", "--server", server)
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr

        # --out: the same job's record saved again; another run's is not written over.
        again = run_sidra("jobs", "show", job_id, "--server", server, "--out", str(out))
        assert again.returncode == 0, again.stderr
        assert json.loads((out / "run.json").read_text())["job_id"] == job_id
        other = tmp_path / "other"
        other.mkdir()
        (other / "summary.json").write_text('{"steps": 3}')
        refused = run_sidra("jobs", "show", job_id, "--server", server, "--out", str(other))
        assert refused.returncode == 2
        assert unwrapped("which holds another run's record (summary.json)") in unwrapped(
            refused.stderr
        )
        assert [p.name for p in other.iterdir()] == ["summary.json"]


def test_a_remote_job_cancelled_from_elsewhere_leaves_its_record_in_out(tmp_path: Path) -> None:
    """``sidra train --remote-job`` following a job that someone cancels: the job stops at
    a step boundary, and what it kept lands in --out; the command says so and fails."""
    with served("emu://?preset=ideal&seed=5") as board:
        out = tmp_path / "record"
        proc = subprocess.Popen(
            [*SIDRA, "train", "spsa", "--server", _address(board), "--remote-job",
             "--steps", "1000000", "--batch-size", "16", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            job_id = _running_job(board)
            for event in board.jobs.watch(job_id):
                if event.kind == "progress":
                    break
            board.jobs.cancel(job_id)
            _, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 1
    message = unwrapped(stderr)
    assert unwrapped(f"job {job_id} cancelled: cancelled by local; stopped after step") in message
    assert unwrapped(f"its record kept; record in {out}") in message
    settings = json.loads((out / "settings.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= settings["stopped_at_step"] == summary["steps"] < 1_000_000


def _running_job(board: RemoteBoard) -> str:
    for _ in range(600):
        running = [job.job_id for job in board.jobs.list() if job.state == "running"]
        if running:
            return running[0]
        time.sleep(0.05)
    raise AssertionError("no job started")


def test_remote_job_needs_a_server_and_takes_the_lab_s_from_sidra_server(
    tmp_path: Path,
) -> None:
    result = run_sidra("train", "spsa", "--remote-job", "--steps", "2", timeout=60,
                       env={"SIDRA_SERVER": ""})  # fmt: skip
    assert result.returncode == 2
    assert unwrapped("give --server (or set SIDRA_SERVER)") in unwrapped(result.stderr)
    with served("emu://?preset=ideal") as board:
        ran = run_sidra("train", "spsa", "--remote-job", "--steps", "2", "--eval-every", "2",
                        "--out", str(tmp_path / "run"), "--json",
                        env={"SIDRA_SERVER": _address(board)})  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert board.jobs.get(json.loads(ran.stdout)["job_id"]).state == "succeeded"  # its job
        told = run_sidra("train", "spsa", "--remote-job", "--steps", "2", "--eval-every", "2",
                         "--out", str(tmp_path / "told"),
                         env={"SIDRA_SERVER": _address(board)})  # fmt: skip
    assert told.returncode == 0, told.stderr
    # As a person reads it in a log: the job's lines first (no empty line where an unused
    # upload bar stopped), stamped with the time and naming none of our source files.
    first, second = told.stdout.splitlines()[:2]
    assert re.match(r"\[\d\d:\d\d:\d\d\] submitting the spsa job on digits to ", first), first
    assert re.match(r"(\[\d\d:\d\d:\d\d\]| {10}) job [0-9a-f]{16} running on ", second), second
    assert ".py:" not in told.stdout


def test_a_queued_remote_job_waits_for_its_tile_and_runs_when_it_is_free(
    tmp_path: Path,
) -> None:
    """``--remote-job --queue`` on a tile another job holds: the command says the job is
    queued and why, follows it, and saves its record once it has run."""
    with served("emu://?preset=ideal&seed=6") as board:
        holder = board.jobs.submit("spsa", {"steps": 1_000_000, "batch_size": 16, "tiles": [2]})
        out = tmp_path / "record"
        proc = subprocess.Popen(
            [*SIDRA, "train", "spsa", "--server", _address(board), "--remote-job", "--queue",
             "--steps", "6", "--batch-size", "16", "--tile", "2", "--out", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            for _ in range(600):
                queued = [job for job in board.jobs.list() if job.state == "queued"]
                if queued:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("no job queued")
            board.jobs.cancel(holder.job_id)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert unwrapped(f"job {queued[0].job_id} queued on") in unwrapped(stderr)
    assert unwrapped("0 ahead: tile 2 leased by session") in unwrapped(stderr)
    summary = json.loads(stdout)
    assert summary["job_id"] == queued[0].job_id and summary["steps"] == 6
    assert (out / "steps.csv").is_file()


def test_queue_is_for_remote_jobs() -> None:
    result = run_sidra("train", "spsa", "--queue", "--steps", "2", timeout=60)
    assert result.returncode == 2
    assert unwrapped("a run from here has no queue") in unwrapped(result.stderr)


def test_options_the_server_refuses_are_named_without_the_json_sent() -> None:
    with served("emu://?preset=ideal&seed=3") as board:
        result = run_sidra(
            "train", "spsa", "--server", _address(board), "--remote-job", "--steps", "2",
            "--tile", "7", timeout=60,
        )  # fmt: skip
    message = " ".join(result.stderr.replace("│", " ").split())  # the box unwrapped
    assert result.returncode == 2
    assert "the server refused the job: spsa options: tiles: got tile 7" in message
    assert "expected tiles in 0 .. 3 (the board's 4; --tile" in message
    assert '"steps"' not in message


def test_a_comparison_runs_as_a_remote_job_and_its_record_gets_the_plot(tmp_path: Path) -> None:
    with served("emu://?preset=ideal&seed=4") as board:
        out = tmp_path / "record"
        summary = sidra_json(
            "train", "compare", "--server", _address(board), "--remote-job", "--dataset",
            "iris", "--budget", "12", "--seeds", "1", "--method", "spsa", "--method",
            "spsa-board", "--out", str(out),
        )  # fmt: skip
    assert [(r["name"], r["seed"], r["steps"]) for r in summary["runs"]] == [
        ("spsa", 1, 6), ("spsa-board", 1, 6),
    ]  # fmt: skip
    assert [m["name"] for m in summary["methods"]] == ["spsa", "spsa-board"]
    assert json.loads((out / "summary.json").read_text())["runs"] == summary["runs"]
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_a_priority_needs_the_queue() -> None:
    """--priority orders the server's queue: without --queue (and --remote-job) it is a
    usage error naming the flag, before anything is sent."""
    for args in (
        ("train", "spsa", "--priority", "2"),
        ("train", "mlp", "--server", "127.0.0.1:1", "--remote-job", "--priority", "-1"),
        ("jobs", "resume", "0123456789abcdef", "--server", "127.0.0.1:1", "--priority", "3"),
    ):
        refused = run_sidra(*args)
        assert refused.returncode == 2, args
        assert unwrapped("Invalid value for --priority") in unwrapped(refused.stderr)


def test_a_remote_job_followed_off_a_terminal_writes_its_progress_as_lines(
    tmp_path: Path,
) -> None:
    """A --remote-job followed where stdout is no terminal (a log under nohup, a batch
    system) wrote nothing between its start and its summary, however long the job ran:
    its progress is written as lines, as a run from here writes its own."""
    with served("emu://?preset=ideal&seed=4") as board:
        done = run_sidra("train", "spsa", "--server", _address(board), "--remote-job",
                         "--steps", "12", "--batch-size", "16",
                         "--out", str(tmp_path / "record"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"^spsa \d+/12 loss \d+\.\d{3}$", done.stdout, re.MULTILINE), done.stdout
    # Said before connecting: over a long link that and the submission take seconds.
    said = unwrapped(done.stdout)
    submitting = said.find(unwrapped("submitting the spsa job on digits to 127.0.0.1:"))
    assert 0 <= submitting < said.find(unwrapped("running on")), done.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_remote_job_left_with_ctrl_c_says_how_to_follow_it_and_save_its_record(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C stops following, not the job, and leaves --out without the record: the
    command says so and names the commands that follow the job again and save its record
    there, ready to paste (quoted: a grpcs:// server's URL holds '&', an --out a space).
    SIGTERM (a batch system's limit) and SIGHUP (the terminal closed) do as Ctrl-C does,
    exit status 128 + the signal's number: they ended the command without a word."""
    with served("emu://?preset=ideal&seed=6") as board:
        server = _address(board)
        out = tmp_path / "my record"
        proc = subprocess.Popen(
            [*SIDRA, "train", "spsa", "--server", server, "--remote-job",
             "--steps", "1000000", "--batch-size", "16", "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # the job's log lines: the command follows it
                if "training samples" in line:
                    break
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
        assert proc.returncode == 128 + signum, stderr
        job_id = _running_job(board)
        assert f"job {job_id} keeps running in the server" in stderr
        follow = re.search(r"once it has ended: (sidra jobs follow .*)$", stderr, re.M)
        assert follow, stderr
        followed = shlex.split(follow[1])[1:]
        assert followed == ["jobs", "follow", job_id, "--out", str(out), "--server", server]
        board.jobs.cancel(job_id)
        assert board.jobs.wait(job_id).state == "cancelled"
        saved = run_sidra(*followed)
    assert saved.returncode == 1, saved.stderr  # followed to its end: cancelled
    assert f"job {job_id} cancelled" in saved.stderr and f"record in {out}" in saved.stderr
    assert json.loads((out / "summary.json").read_text())["stopped_at_step"] >= 1


def test_jobs_follow_shows_a_running_job_to_its_end_and_saves_its_record(
    tmp_path: Path,
) -> None:
    """Left once, a job is followed again as its submitting command followed it (the
    progress as lines off a terminal, its log lines) and its record saved into --out when
    it ends, with the run.json naming where it ran; a folder holding another run's
    record is refused before anything is followed."""
    with served("emu://?preset=ideal&seed=7") as board:
        server = _address(board)
        job = board.jobs.submit("spsa", {"steps": 400, "batch_size": 16}, dataset="digits")
        out = tmp_path / "followed"
        done = run_sidra("jobs", "follow", job.job_id[:6], "--out", str(out),
                         "--server", server, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert re.search(r"^spsa \d+/400 loss \d+\.\d{3}$", done.stdout, re.M), done.stdout
        said = unwrapped(f"job {job.job_id} succeeded; record in {out}")
        assert said in unwrapped(done.stdout), done.stdout
        summary = json.loads((out / "summary.json").read_text())
        assert summary["steps"] == 400
        assert json.loads((out / "run.json").read_text())["job_id"] == job.job_id
        other = tmp_path / "other"
        other.mkdir()
        (other / "summary.json").write_text("{}")
        refused = run_sidra("jobs", "follow", job.job_id, "--out", str(other), "--server", server)
    assert refused.returncode == 2, refused.stderr
    assert unwrapped("holds another run's record") in unwrapped(refused.stderr)


def test_a_remote_job_on_a_data_set_the_server_has_not_says_what_the_command_takes() -> None:
    """--dataset mnist (no bundled set, no file here) was refused in the server's API
    words: "a file's name (.npz or .csv) with its content in dataset_file", a proto field
    the command line has no option for."""
    with served("emu://?preset=ideal&seed=2") as board:
        refused = run_sidra("train", "mlp", "--server", _address(board), "--remote-job",
                            "--dataset", "mnist", "--epochs", "1")  # fmt: skip
        # The state store is the test session's: other tests' jobs may be listed too.
        assert [job for job in board.jobs.list() if job.dataset == "mnist"] == []
    assert refused.returncode == 2, refused.stderr
    said = unwrapped(refused.stderr)
    assert unwrapped("'--dataset': got 'mnist', which the server has no bundled data set of; "
                     "expected one of digits, iris, wine, breast_cancer, an .npz or .csv file "
                     "here") in said, refused.stderr  # fmt: skip
    assert "dataset_file" not in said


def test_a_remote_job_refused_its_tiles_names_queue() -> None:
    """A job whose tiles another holds is refused in the lease's API words ("lease with
    wait_s to wait for it"), which no option of the command sets: the refusal says the
    job was not submitted and that --queue waits for the tiles."""
    with served("emu://?preset=ideal&seed=8") as board:
        holder = board.jobs.submit("spsa", {"steps": 1_000_000, "batch_size": 16, "tiles": [3]})
        try:
            refused = run_sidra("train", "spsa", "--server", _address(board), "--remote-job",
                                "--steps", "6", "--tile", "3")  # fmt: skip
        finally:
            board.jobs.cancel(holder.job_id)
    assert refused.returncode == 1, refused.stderr
    said = unwrapped(refused.stderr)
    assert unwrapped("sidra train spsa: LeaseHeld: FAILED_PRECONDITION:") in said
    assert unwrapped("The job was not submitted: sidra train spsa ... --remote-job --queue "
                     "waits in the server's queue until those tiles are free") in said  # fmt: skip
