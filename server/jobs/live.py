"""A job as the server holds it while it runs (or waits in the queue), how often
its progress becomes an event, and how its end is told (its state and error)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sidra.server.jobs.runner import STOPPED_AT, SentDataset
from sidra.server.state.jobs import JobEventRow, JobRow

__all__ = [
    "PROGRESS_INTERVAL_MAX_S",
    "PROGRESS_INTERVAL_S",
    "PROGRESS_SHARE",
    "LiveJob",
    "cancelled_text",
    "ended",
    "over_time_text",
    "progress_interval_s",
]

PROGRESS_INTERVAL_S = 0.1
"""A progress report becomes an event when :func:`progress_interval_s` has passed since
the last one, at least this long, s, or when it is the last step. (Not at every
hundredth of the run as well: a job of millisecond steps then made an event every few
steps, and each one wakes every watcher's stream on the job's CPUs.)"""

PROGRESS_SHARE = 1e-3
"""Past its first 100 s, a job's progress events come every this share of the time it
has run: its events grow with the logarithm of its length, not with its length (a
week-long job made 6 million events at one every 100 ms, stored and replayed by every
``sidra jobs logs``; now about 65 thousand)."""

PROGRESS_INTERVAL_MAX_S = 10.0
"""Most time between two progress events of a job that reports progress, s."""


def progress_interval_s(elapsed_s: float) -> float:
    """Least time between two progress events of a job that has run ``elapsed_s``, s."""
    return min(PROGRESS_INTERVAL_MAX_S, max(PROGRESS_INTERVAL_S, elapsed_s * PROGRESS_SHARE))


@dataclass(eq=False)
class LiveJob:
    """A job this process holds (the condition of sidra.server.jobs.table guards it)."""

    row: JobRow
    session_id: str
    events: list[JobEventRow] = field(default_factory=list)
    stored: int = 0
    """Events already written to the store."""
    stop: threading.Event = field(default_factory=threading.Event)
    """Set by the first CancelJob: end at the next boundary, record kept."""
    stop_asked_s: float = math.inf
    """time.monotonic() of that CancelJob."""
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set to stop at the next board call, with no record: a second CancelJob, or the
    grace running out."""
    cancelled_by: str = ""
    grace_ran_out: bool = False
    over_time: bool = False
    """Stopped because it ran longer than the server's ``[limits] max_job_hours``."""
    server_stopping: bool = False
    """Stopped because the server stops (JobManager.stop_all): it ends
    interrupted, with its record when it reached a boundary."""
    last_progress_s: float = -math.inf
    started_s: float = field(default_factory=time.monotonic)
    """time.monotonic() when the job started."""
    last_flush_s: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)
    options: Any = None
    """The job's options, parsed (a queued job's, for when it starts)."""
    resume: bytes | None = None
    """The checkpoint the job goes on from (None: none); a queued job keeps it until it
    starts."""
    dataset_file: bytes | None = None
    """The content of the data set file the job was sent, while it runs (None: a bundled
    set, or a queued job's, which the store keeps: :attr:`queued_file`)."""
    dataset_origin: str = ""
    """How the data set file reached the server (runner.DATASET_SENT, ...), for the
    job's log; empty: a bundled set."""
    queued_file: SentDataset | None = None
    """A queued job's data set file, read from the store when asked (its placement's
    shape is kept by digest, so once) and as the job starts."""


def ended(live: LiveJob, summary: dict[str, Any], max_job_s: float | None) -> tuple[str, str]:
    """State and error of a job whose run returned: cancelled when a stop ended it early
    (its summary says where), else succeeded (a stop asked during its last step, epoch or
    run came too late to change anything)."""
    where = [(k.removeprefix(STOPPED_AT), v) for k, v in summary.items()
             if k.startswith(STOPPED_AT)]  # fmt: skip
    if not (live.stop.is_set() and where):
        return "succeeded", ""
    unit, done = where[0]
    kept = f"stopped after {unit} {done}, its record kept"
    if live.over_time and not live.cancelled_by:
        return "cancelled", f"{over_time_text(max_job_s)}; {kept}"
    if live.server_stopping and not live.cancelled_by:
        return "interrupted", f"the server stopped; the job {kept}"
    return "cancelled", f"cancelled by {live.cancelled_by}; {kept}"


def over_time_text(max_job_s: float | None) -> str:
    """Why a job past the server's time limit stopped."""
    assert max_job_s is not None
    return (
        f"stopped by the server's time limit: it ran {max_job_s / 3600:g} h "
        "([limits] max_job_hours)"
    )


def cancelled_text(live: LiveJob, grace_s: float, max_job_s: float | None) -> str:
    """The error of a job stopped with no record (JobCancelled): by whom or what, and
    whether the grace to reach a boundary ran out."""
    late = (
        f"it did not reach a step, epoch or run boundary within {grace_s:g} s and was "
        "stopped at a board call, no record kept"
    )
    if live.over_time and not live.cancelled_by:
        return over_time_text(max_job_s) + (f"; {late}" if live.grace_ran_out else "")
    if live.grace_ran_out:
        return f"cancelled by {live.cancelled_by}; {late}"
    return f"cancelled by {live.cancelled_by}"
