"""``sidra jobs show``'s view of a job (sidra.cli.jobs.job_table): its state, times and
tiles as sentences, its options, its summary as the run's end prints it, its files."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from rich.console import Console

from sidra.cli.jobs import job_table
from sidra.client import JobInfo

SUBMITTED = time.mktime((2026, 12, 6, 16, 36, 30, 0, 0, -1))

SUCCEEDED = JobInfo(
    job_id="bf66e6055869f70d", kind="spsa", principal="alice", dataset="digits",
    options={"steps": 300, "a": 0.5, "tiles": [], "blocking": False},
    state="succeeded", submitted_unix_s=SUBMITTED, started_unix_s=SUBMITTED + 4.25,
    ended_unix_s=SUBMITTED + 130.0, step=300, total=300, message="loss 1.023", error="",
    tiles=(0,), whole_board=False, events=14,
    summary={"test_accuracy": 0.6759259259259259, "device_writes": 728107,
             "modeled_time_ns": 1642410.0, "placement": {"layer": [0]}},
    record_files={"plot.png": 87_189, "summary.json": 307},
)  # fmt: skip


def _shown(job: JobInfo, out: Path | None = None, now: float = SUBMITTED + 60.0) -> list[str]:
    console = Console(width=100, record=True, color_system=None)
    console.print(job_table(job, out, now_unix_s=now))
    return [" ".join(line.split()) for line in console.export_text().splitlines()]


def test_a_finished_job_reads_as_its_run_s_end_does() -> None:
    lines = _shown(SUCCEEDED)
    assert lines[0] == "job bf66e6055869f70d: spsa on digits"
    assert "state succeeded" in lines and "principal alice" in lines
    assert "submitted 2026-12-06 16:36:30" in lines
    assert "started 2026-12-06 16:36:34 (queued 4.2 s)" in lines
    assert "ended 2026-12-06 16:38:40 (ran 2.1 min)" in lines
    assert "progress 300/300 loss 1.023" in lines
    assert "tiles tile 0" in lines
    assert "events 14 (sidra jobs logs bf66e6055869f70d)" in lines
    # Options as given, lists as JSON; figures as `sidra train` prints them.
    assert "steps 300" in lines and "tiles []" in lines and "blocking False" in lines
    assert "test_accuracy 67.59 %" in lines
    assert "device_writes 728,107" in lines and "modeled_time_ns 1,642,410" in lines
    assert "placement layer: tile 0" in lines
    assert "record files 87.5 kB (--out DIR saves them)" in lines
    assert "plot.png 87.2 kB" in lines and "summary.json 307 B" in lines
    assert not any(line.startswith(("error", "priority")) for line in lines)


def test_where_its_record_was_saved() -> None:
    assert "record files 87.5 kB (in runs/again)" in _shown(SUCCEEDED, Path("runs/again"))


def test_a_queued_job_says_how_long_it_has_waited_and_that_it_is_not_placed_yet() -> None:
    queued = dataclasses.replace(
        SUCCEEDED, state="queued", started_unix_s=0.0, ended_unix_s=0.0, step=0, total=0,
        message="queued, 0 ahead: tile 0 leased by session 02462411… of bob", tiles=(),
        summary=None, record_files={}, priority=3,
    )  # fmt: skip
    lines = _shown(queued, now=SUBMITTED + 300.0)
    assert "started not yet (queued for 5.0 min)" in lines
    assert "tiles placed when it starts" in lines and "priority +3" in lines
    assert "progress queued, 0 ahead: tile 0 leased by session 02462411… of bob" in lines
    assert not any(line.startswith(("ended", "summary", "record files")) for line in lines)


def test_a_running_job_on_the_whole_board_says_how_long_it_has_run() -> None:
    running = dataclasses.replace(
        SUCCEEDED, state="running", ended_unix_s=0.0, step=120, summary=None,
        record_files={}, tiles=(0, 1, 2, 3), whole_board=True,
    )  # fmt: skip
    lines = _shown(running, now=SUBMITTED + 64.25)
    assert "ended not yet (running for 60.0 s)" in lines
    assert "progress 120/300 loss 1.023" in lines and "tiles the whole board" in lines


def test_a_failed_job_says_why_under_its_state() -> None:
    failed = dataclasses.replace(
        SUCCEEDED, state="failed", error="BoardUnavailable: the board's link is down",
        summary=None, record_files={},
    )  # fmt: skip
    lines = _shown(failed)
    at = lines.index("state failed")
    assert lines[at + 1] == "error BoardUnavailable: the board's link is down"
