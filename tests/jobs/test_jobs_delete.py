"""Ended jobs leave the store when asked (DeleteJob, ``sidra jobs delete``) or once they
are older than ``[state] job_retention_days``: row, events and record files together;
a running job, another principal's (unless admin) and an unknown one are refused and
nothing is deleted (jobs.proto, "Records")."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from sidra.client import RemoteBoard, connect
from sidra.client.aio import connect as connect_aio
from sidra.drivers import FailedPrecondition, NotFound, SidraError
from sidra.server.security import Role, TokensFile
from sidra.server.state import StateStore
from sidra.server.state.jobs import JobRecords, JobRow
from tests.cli_support import run_sidra
from tests.jobs.jobs_support import add_ended_job, serving
from tests.server.security_support import principals

SHORT = {"steps": 12, "eval_every": 6, "batch_size": 16}
"""An SPSA job that ends within seconds."""
ENDLESS = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16}
"""An SPSA job that runs until cancelled."""
DAY_S = 86_400.0


def _rows(store: Path, job_id: str) -> dict[str, int]:
    """How many rows of each job table name ``job_id``, read with sqlite3 itself."""
    db = sqlite3.connect(store)
    try:
        return {
            "jobs": db.execute("SELECT count(*) FROM jobs WHERE id = ?", (job_id,)).fetchone()[0],
            **{
                table: db.execute(
                    f"SELECT count(*) FROM {table} WHERE job_id = ?", (job_id,)
                ).fetchone()[0]
                for table in ("job_events", "job_files")
            },
        }
    finally:
        db.close()


def _ended(client: RemoteBoard, options: dict[str, Any] = SHORT) -> str:
    job = client.jobs.submit("spsa", options, dataset="iris")
    done = client.jobs.wait(job.job_id)
    assert done.state == "succeeded", done.error
    return job.job_id


def test_an_ended_job_goes_with_its_events_and_record(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    with serving(store) as address, connect(address) as client:
        job_id, kept_id = _ended(client), _ended(client)
        sizes = client.jobs.get(job_id).record_files
        assert _rows(store, job_id)["job_files"] == len(sizes) > 0
        assert client.jobs.delete(job_id) == sum(sizes.values())
        assert _rows(store, job_id) == {"jobs": 0, "job_events": 0, "job_files": 0}
        with StateStore(store, read_only=True) as state:  # its pages given back at once
            assert state.usage().free_bytes == 0
        for gone in (
            lambda: client.jobs.get(job_id),
            lambda: list(client.jobs.watch(job_id)),
            lambda: client.jobs.read_file(job_id, "summary.json"),
            lambda: client.jobs.delete(job_id),  # again: nothing left to delete
        ):
            with pytest.raises(NotFound, match=f"no job '{job_id}'"):
                gone()
        assert [job.job_id for job in client.jobs.list()] == [kept_id]  # the other stays
        assert client.jobs.get(kept_id, include_record=True).files

        async def deleted_by_the_asyncio_client() -> int:
            async with await connect_aio(address) as board:
                return await board.jobs.delete(kept_id)

        assert asyncio.run(deleted_by_the_asyncio_client()) > 0
        assert client.jobs.list() == []


def test_a_running_job_is_refused_and_deleted_once_it_has_ended(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    with serving(store) as address, connect(address) as client:
        job = client.jobs.submit("spsa", ENDLESS, dataset="iris")
        with pytest.raises(FailedPrecondition) as refused:
            client.jobs.delete(job.job_id)
        assert str(refused.value) == (
            f"FAILED_PRECONDITION: job_id: job {job.job_id} is running; cancel it (CancelJob) "
            "and delete it once it has ended"
        )
        assert client.jobs.get(job.job_id).state == "running"  # untouched
        client.jobs.cancel(job.job_id)
        assert client.jobs.wait(job.job_id).state == "cancelled"
        assert client.jobs.delete(job.job_id) > 0  # its record, stopped at a step
        assert _rows(store, job.job_id)["jobs"] == 0


def test_a_principal_deletes_its_own_jobs_and_an_admin_anyone_s(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    token = principals(
        tokens_file, viewer=Role.VIEWER, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER,
        admin=Role.ADMIN,
    )  # fmt: skip
    store = tmp_path / "s.sqlite3"
    with serving(store, tokens=TokensFile(tokens_file)) as address:
        with connect(address, token=token["alice"]) as alice:
            first, second = _ended(alice), _ended(alice)
        with (
            connect(address, token=token["viewer"]) as viewer,
            pytest.raises(SidraError, match="DeleteJob needs role programmer"),
        ):
            viewer.jobs.delete(first)
        with (
            connect(address, token=token["bob"]) as bob,
            pytest.raises(SidraError, match="PERMISSION_DENIED.*belongs to 'alice'"),
        ):
            bob.jobs.delete(first)
        assert _rows(store, first)["jobs"] == 1  # refused: nothing deleted
        with connect(address, token=token["alice"]) as alice:
            assert alice.jobs.delete(first) > 0
        with connect(address, token=token["admin"]) as admin:
            assert admin.jobs.delete(second) > 0
            assert admin.jobs.list() == []


def test_jobs_past_the_retention_are_deleted_when_the_server_starts(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    now = time.time()
    with StateStore(store) as state:
        records = JobRecords(state)
        add_ended_job(records, "0" * 16, now - 31 * DAY_S)
        add_ended_job(records, "1" * 16, now - 29 * DAY_S)
        records.add(JobRow("2" * 16, "spsa", "local", "iris", "{}", "running", now - 99 * DAY_S))
    with serving(store, job_retention_days=30.0) as address, connect(address) as client:
        listed = {job.job_id: job.state for job in client.jobs.list()}
    # The old one went; the recent one stays, as does the one a dead server ran 99 days
    # ago: it ends (interrupted) only now.
    assert listed == {"1" * 16: "succeeded", "2" * 16: "interrupted"}
    assert _rows(store, "0" * 16) == {"jobs": 0, "job_events": 0, "job_files": 0}


def test_without_a_retention_every_job_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    with StateStore(store) as state:
        add_ended_job(JobRecords(state), "0" * 16, time.time() - 3650 * DAY_S)
    with serving(store) as address, connect(address) as client:
        assert [job.job_id for job in client.jobs.list()] == ["0" * 16]


def test_a_job_s_end_deletes_the_jobs_past_the_retention_at_most_hourly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server up for months deletes as it goes, not only when it starts."""
    store = tmp_path / "s.sqlite3"
    with serving(store, job_retention_days=1.0) as address, connect(address) as client:
        with StateStore(store) as state:  # aged past the retention while the server runs
            add_ended_job(JobRecords(state), "0" * 16, time.time() - 2 * DAY_S)
        _ended(client)  # within the hour of the start: kept
        assert _rows(store, "0" * 16)["jobs"] == 1
        monkeypatch.setattr("sidra.server.jobs.manager.PRUNE_EVERY_S", 0.0)
        recent = _ended(client)
        assert _rows(store, "0" * 16)["jobs"] == 0
        assert _rows(store, recent)["jobs"] == 1


def test_sidra_jobs_delete_deletes_each_job_it_can_and_names_the_others(
    tmp_path: Path,
) -> None:
    with serving(tmp_path / "s.sqlite3") as address:
        with connect(address) as client:
            job_id = _ended(client)
        done = run_sidra("jobs", "delete", job_id, "0123456789abcdef", "--server", address)
        assert done.returncode == 1
        assert done.stdout.startswith(f"job {job_id}: deleted (")
        assert "of record files)" in done.stdout
        assert "sidra jobs delete: NOT_FOUND: job_id: no job '0123456789abcdef'" in done.stderr
        with connect(address) as client:
            assert client.jobs.list() == []


def test_an_idle_server_s_list_drops_the_jobs_past_the_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No job ends on an idle server: listing the jobs deletes the expired ones too."""
    store = tmp_path / "s.sqlite3"
    with serving(store, job_retention_days=1.0) as address, connect(address) as client:
        with StateStore(store) as state:
            add_ended_job(JobRecords(state), "0" * 16, time.time() - 2 * DAY_S)
            add_ended_job(JobRecords(state), "1" * 16, time.time() - 0.5 * DAY_S)
        assert len(client.jobs.list()) == 2  # within the hour of the start: kept
        monkeypatch.setattr("sidra.server.jobs.manager.PRUNE_EVERY_S", 0.0)
        assert [job.job_id for job in client.jobs.list()] == ["1" * 16]
        assert _rows(store, "0" * 16)["jobs"] == 0
