"""A job's store writes run behind it, in order, and a failed one fails the job."""

from __future__ import annotations

import pytest

from sidra.server.jobs.recorder import BehindRecorder
from sidra.server.state import ProgramNotRecorded


def test_recordings_run_in_order_and_all_before_drain_returns() -> None:
    done: list[int] = []
    recorder = BehindRecorder("test-recorder")
    for i in range(100):
        recorder.record(lambda i=i: done.append(i))
    recorder.drain()
    assert done == list(range(100))


def test_the_first_failed_recording_is_raised_and_later_ones_are_skipped() -> None:
    done: list[str] = []
    recorder = BehindRecorder("test-recorder")

    def fail() -> None:
        raise ProgramNotRecorded("tile 0 was programmed but its record was not stored")

    recorder.record(lambda: done.append("first"))
    recorder.record(fail)
    recorder.record(lambda: done.append("after"))
    with pytest.raises(ProgramNotRecorded, match="not stored"):
        recorder.drain()
    with pytest.raises(ProgramNotRecorded):
        recorder.check()  # what the job's next board call asks first
    assert done == ["first"]
