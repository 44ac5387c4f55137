"""A job is named by the start of its id, 4 digits or more, where only it starts so
(jobs.proto, "Naming a job"): every request that names one job, and the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sidra.client import FailedPrecondition, InvalidArgument, NotFound, connect
from sidra.server.state import StateStore
from sidra.server.state.jobs import JobRecords
from tests.cli_support import run_sidra, unwrapped
from tests.jobs.jobs_support import add_ended_job, serving

TWINS = ("abcd" + "0" * 12, "abcd" + "1" * 12)
"""Two stored jobs whose ids share their first four digits."""
LONE = "ef01" + "2" * 12


def _stored(store: Path) -> None:
    now = time.time()
    with StateStore(store) as state:
        for job_id in (*TWINS, LONE):
            add_ended_job(JobRecords(state), job_id, now, summary=b'{"steps": 3}')


def test_the_start_of_one_job_s_id_names_it_in_every_request(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    _stored(store)
    with serving(store) as address, connect(address) as client:
        ran = client.jobs.submit("spsa", {"steps": 4, "eval_every": 2, "batch_size": 8},
                                 dataset="iris")  # fmt: skip
        client.jobs.wait(ran.job_id[:6])  # a job this server ran, held in its memory
        assert client.jobs.get(ran.job_id[:5]).job_id == ran.job_id
        assert client.jobs.get("abcd1").job_id == TWINS[1]
        assert client.jobs.get(TWINS[0]).job_id == TWINS[0]  # a whole id as before
        assert client.jobs.read_file("ef01", "summary.json") == b'{"steps": 3}'
        assert [e.index for e in client.jobs.watch("ef01")] == [
            e.index for e in client.jobs.watch(LONE)
        ]
        assert client.jobs.cancel("abcd0").job_id == TWINS[0]  # ended: answered as it is
        with pytest.raises(FailedPrecondition, match=f"job {TWINS[0]} is succeeded, not queued"):
            client.jobs.set_priority("abcd0", 1)

        with pytest.raises(InvalidArgument) as several:
            client.jobs.get("abcd")
        assert several.value.field == "job_id" and several.value.value == "abcd"
        assert f"{TWINS[0]}, {TWINS[1]} start with it" in str(several.value)
        with pytest.raises(NotFound, match="no job 'abc' "):  # 3 digits: not a prefix
            client.jobs.get("abc")
        with pytest.raises(NotFound, match="no job 'ef02' "):
            client.jobs.get("ef02")

        assert client.jobs.delete("ef01") > 0  # refused ones delete nothing
        with pytest.raises(InvalidArgument):
            client.jobs.delete("abcd")
        assert {job.job_id for job in client.jobs.list()} == {*TWINS, ran.job_id}


def test_sidra_jobs_takes_the_start_of_an_id(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    _stored(store)
    with serving(store) as address:
        shown = run_sidra("jobs", "show", "ef01", "--server", address)
        assert shown.returncode == 0, shown.stderr
        assert f"job {LONE}" in shown.stdout
        deleted = run_sidra("jobs", "delete", "ef01", "--server", address)
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout.startswith(f"job {LONE}: deleted (")  # the whole id
        several = run_sidra("jobs", "show", "abcd", "--server", address)
        assert several.returncode == 1
        assert unwrapped("job_id: got 'abcd', expected a job's id, or the start of one job's "
                         "id only") in unwrapped(several.stderr)  # fmt: skip
        short = run_sidra("jobs", "show", "abc", "--server", address)  # 3 digits: no prefix
        assert short.returncode == 1 and "no job 'abc'" in short.stderr
        # On a laptop's 80 columns the ids stay whole, to be copied, and each job is a line.
        listed = run_sidra("jobs", "list", "--server", address, columns=80)
        lines = listed.stdout.splitlines()
        assert all(len(line) <= 80 for line in lines) and "…" not in listed.stdout
        assert {line.split()[0] for line in lines if "succeeded" in line} == set(TWINS)


def test_on_80_columns_a_job_list_keeps_whose_job_it_is() -> None:
    """A lab's list on a laptop left out the principal before the job's kind: whose job
    is the last thing a shared board's list should lose."""
    from sidra.cli.jobs import LAST_WIDTH, LIST_DROPPED_FIRST
    from sidra.cli.tables import columns_that_fit

    row = {
        "job": "0123456789abcdef", "kind": "drift-recovery", "principal": "alice",
        "state": "succeeded", "priority": "+2", "progress": "1000/1000",
        "submitted": "2026-12-07 17:20:01",
        "last": "stopped by bob: the board's clock was advanced under it",
    }  # fmt: skip
    shown = columns_that_fit(
        [row], list(row), LIST_DROPPED_FIRST, 80, ["last"], wrapped_width=LAST_WIDTH
    )
    assert shown == ["job", "principal", "state", "progress", "last"]
