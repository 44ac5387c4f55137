"""The jobs' queue (SubmitJob queue, jobs.proto "The queue"): a job that cannot start now
waits instead of being refused, starts once its tiles are free and its principal under
max_jobs, in submission order without starving a job of many tiles, can be cancelled
while it waits, and survives the server stopping. Real server, store and board."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from sidra.client import RemoteBoard, TileLease, connect
from sidra.client.jobs import JobInfo
from sidra.drivers import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    SidraError,
    open_board,
)
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig
from sidra.hil.v1 import jobs_pb2, jobs_pb2_grpc
from sidra.server.security import Role, TokensFile
from sidra.server.settings import LimitsSettings
from sidra.server.state import StateStore
from sidra.server.state.datasets import DatasetRecords
from sidra.server.state.jobs import JobEventRow, JobRecords, JobRow, QueuedJob
from sidra.server.stopping import ServerStop
from sidra.training.records import TrainingRecord
from tests.cli_support import run_sidra
from tests.jobs.jobs_support import first_progress, serving
from tests.jobs.test_jobs_resume import assert_ends_as, finished
from tests.server.security_support import principals

SHORT = {"steps": 12, "eval_every": 6, "batch_size": 16}
"""An SPSA job that ends within seconds."""
ENDLESS = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16}
"""An SPSA job that runs until cancelled."""


def _on(tiles: list[int], options: dict[str, int] = SHORT) -> dict[str, object]:
    return {**options, "tiles": tiles}


def _until(what: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _state(client: RemoteBoard, job_id: str) -> str:
    return client.jobs.get(job_id).state


def _holding(client: RemoteBoard, tiles: list[int]) -> JobInfo:
    """An endless job holding ``tiles``, once it runs."""
    job = client.jobs.submit("spsa", _on(tiles, ENDLESS), dataset="iris")
    first_progress(client, job.job_id)
    return job


def test_a_queued_job_waits_for_its_tiles_and_starts_when_they_are_free(tmp_path: Path) -> None:
    limits = LimitsSettings(max_jobs=4)
    with serving(tmp_path / "s.sqlite3", limits=limits) as address, connect(address) as client:
        holder = _holding(client, [0])
        with pytest.raises(FailedPrecondition, match=r"cannot lease tile 0: held by"):
            client.jobs.submit("spsa", _on([0]), dataset="iris")  # without queue: refused
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        assert waiting.state == "queued" and waiting.started_unix_s == 0.0
        assert waiting.message.startswith("queued, 0 ahead: tile 0 leased by session ")
        assert f"of local (job {holder.job_id} spsa)" in waiting.message
        free = client.jobs.submit("spsa", _on([1]), dataset="iris", queue=True)
        assert free.state == "running"  # its tile is free: it starts at once
        assert {job.job_id: job.state for job in client.jobs.list()}[waiting.job_id] == "queued"
        time.sleep(1.5)  # the queue tries again every second: still held
        assert _state(client, waiting.job_id) == "queued"
        client.jobs.cancel(holder.job_id)
        done = client.jobs.wait(waiting.job_id)
        assert done.state == "succeeded", done.error
        assert done.started_unix_s >= client.jobs.get(holder.job_id).ended_unix_s
        events = list(client.jobs.watch(waiting.job_id))
        assert [e.index for e in events] == list(range(len(events)))
        states = [e.state for e in events if e.kind == "state"]
        assert states == ["queued", "running", "succeeded"]
        assert client.jobs.wait(free.job_id).state == "succeeded"


def test_a_job_lets_go_of_its_tiles_before_its_plot_is_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Drawing a record's plot takes a good part of a second: the job has released its
    lease by then, so a job queued for its tiles starts on them meanwhile, and the job's
    end time is when it let go of them. A plot that cannot be drawn costs the plot only."""
    drawn: list[tuple[list[TileLease], str]] = []
    draw = TrainingRecord.figure

    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        first = client.jobs.submit("spsa", _on([0]), dataset="iris")
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)

        def figure(record: TrainingRecord) -> Any:
            # Whose plot: the job's thread is named after it (which plot comes first, or
            # whether both are drawn at once, is the machine's load's to say).
            if not threading.current_thread().name.endswith(first.job_id):
                drawn.append(([], "second"))
                raise RuntimeError("no room to draw")
            try:
                leases = client.leases()
                with contextlib.suppress(AssertionError):  # still queued: said below
                    _until(lambda: client.jobs.get(waiting.job_id).state != "queued", 10.0)
                drawn.append((leases, client.jobs.get(waiting.job_id).state))
            except Exception as exc:  # said by the assertions below, not lost in the log
                drawn.append(([], f"the first plot's checks failed: {exc!r}"))
                raise
            return draw(record)

        monkeypatch.setattr(TrainingRecord, "figure", figure)
        done = client.jobs.wait(first.job_id)
        second = client.jobs.wait(waiting.job_id)
        said = [e.message for e in client.jobs.watch(second.job_id) if e.kind == "log"]
    assert sorted(state == "second" for _, state in drawn) == [False, True], drawn
    ((leases, state),) = [(lease, s) for lease, s in drawn if s != "second"]
    assert not state.startswith("the first plot's checks failed"), state
    # Drawn with the job's lease released: the queued job started on its tile meanwhile.
    assert [lease.tile for lease in leases if first.job_id in lease.label] == []
    assert state != "queued"
    assert done.state == "succeeded" and "plot.png" in done.record_files
    assert done.ended_unix_s <= second.started_unix_s
    # The second plot failed: its record without it, and its events say why.
    assert second.state == "succeeded" and "plot.png" not in second.record_files
    assert "summary.json" in second.record_files
    assert "plot.png not made: no room to draw" in said


def test_a_queued_job_given_no_tiles_starts_on_the_first_tile_that_frees(
    tmp_path: Path,
) -> None:
    """Queued while every tile was leased, it was placed on tile 0; tile 2 frees first:
    it is placed again there and starts, instead of waiting on for tile 0. A job whose
    options name its tile keeps waiting for it."""
    with (
        serving(tmp_path / "s.sqlite3", limits=LimitsSettings(max_jobs=4)) as address,
        connect(address) as client,
        connect(address) as other,
        other.session(label="bench", ttl_s=60) as bench,
    ):
        bench.lease([0, 1, 2, 3])
        named = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        anywhere = client.jobs.submit("spsa", SHORT, dataset="iris", queue=True)
        assert anywhere.state == "queued" and anywhere.tiles == (0,)
        bench.release([2])
        _until(lambda: _state(client, anywhere.job_id) != "queued")
        ended = client.jobs.wait(anywhere.job_id)
        assert ended.state == "succeeded", ended.message
        assert ended.tiles == (2,)
        assert ended.summary is not None and ended.summary["placement"] == {"layer": [2]}
        said = [e.message for e in client.jobs.watch(anywhere.job_id) if e.kind == "log"]
        assert "tile 0 held: placed again on tile 2, free now" in said
        assert client.jobs.get(named.job_id).state == "queued"  # its own tile 0, still held
        assert client.jobs.get(named.job_id).tiles == (0,)
        client.jobs.cancel(named.job_id)


def test_a_job_of_the_whole_board_is_not_starved_by_later_small_ones(tmp_path: Path) -> None:
    limits = LimitsSettings(max_jobs=4)
    with serving(tmp_path / "s.sqlite3", limits=limits) as address, connect(address) as client:
        holder = _holding(client, [0])
        quick = {"epochs": 1, "read_repeats": 1, "eval_read_repeats": 1}
        wide = client.jobs.submit("drift-recovery", quick, dataset="wine", queue=True)
        assert wide.whole_board and wide.state == "queued"
        small = client.jobs.submit("spsa", _on([1]), dataset="iris", queue=True)
        # Tile 1 is free, but the job ahead waits for it: the later one waits behind.
        assert small.state == "queued"
        _until(lambda: "a job ahead in the queue waits" in client.jobs.get(small.job_id).message)
        assert client.jobs.get(small.job_id).message.startswith("queued, 1 ahead: ")
        client.jobs.cancel(holder.job_id)
        first, second = client.jobs.wait(wide.job_id), client.jobs.wait(small.job_id)
        assert first.state == second.state == "succeeded"
        assert second.started_unix_s >= first.ended_unix_s  # it needed tile 1 too


def test_a_job_of_several_tiles_waits_for_all_and_holds_them_all(tmp_path: Path) -> None:
    limits = LimitsSettings(max_jobs=4)
    with serving(tmp_path / "s.sqlite3", limits=limits) as address, connect(address) as client:
        holder = _holding(client, [1])
        options = {"epochs": 2, "hidden": [16], "tiles": [0, 1]}
        wide = client.jobs.submit("mlp", options, dataset="iris", queue=True)
        assert wide.state == "queued" and wide.tiles == (0, 1)
        assert "tile 1 leased by session" in wide.message  # tile 0 is free: not named
        client.jobs.cancel(holder.job_id)
        assert client.jobs.wait(wide.job_id).state == "succeeded"


def test_a_job_waits_for_its_principal_s_max_jobs_without_keeping_tiles(tmp_path: Path) -> None:
    limits = LimitsSettings(max_jobs=1)
    with serving(tmp_path / "s.sqlite3", limits=limits) as address, connect(address) as client:
        holder = _holding(client, [0])
        waiting = client.jobs.submit("spsa", _on([1]), dataset="iris", queue=True)
        assert waiting.state == "queued"
        assert "limits.max_jobs" in waiting.message
        client.jobs.cancel(holder.job_id)
        assert client.jobs.wait(waiting.job_id).state == "succeeded"


def test_the_queue_of_a_principal_is_bounded(tmp_path: Path) -> None:
    limits = LimitsSettings(max_queued_jobs=1)
    with serving(tmp_path / "s.sqlite3", limits=limits) as address, connect(address) as client:
        holder = _holding(client, [0])
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        with pytest.raises(ResourceExhausted) as refused:
            client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        assert refused.value.field == "limits.max_queued_jobs"
        assert "at most 1 queued jobs per principal" in str(refused.value)
        assert len(client.jobs.list()) == 2  # the refused one left no trace
        client.jobs.cancel(waiting.job_id)
        client.jobs.cancel(holder.job_id)


def test_a_queued_job_is_cancelled_at_once_and_deleted_only_then(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    with serving(store) as address, connect(address) as client:
        holder = _holding(client, [0])
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        with pytest.raises(FailedPrecondition, match=f"job {waiting.job_id} is queued; cancel"):
            client.jobs.delete(waiting.job_id)
        cancelled = client.jobs.cancel(waiting.job_id)
        assert cancelled.state == "cancelled"
        assert cancelled.error == "cancelled by local while queued"
        assert [e.state for e in client.jobs.watch(waiting.job_id)] == ["queued", "cancelled"]
        client.jobs.cancel(holder.job_id)
        client.jobs.wait(holder.job_id)
        time.sleep(1.5)  # the queue does not start a cancelled job
        assert _state(client, waiting.job_id) == "cancelled"
        assert client.jobs.delete(waiting.job_id) == 0
    db = sqlite3.connect(store)
    assert db.execute("SELECT count(*) FROM jobs WHERE id = ?", (waiting.job_id,)).fetchone() == (
        0,
    )
    db.close()


def test_queued_jobs_outlive_the_server_and_start_when_it_is_back(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    stopping = ServerStop()
    with serving(store, stopping=stopping) as address, connect(address) as client:
        holder = _holding(client, [0])
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        stopping.run(30.0)
        assert _state(client, holder.job_id) == "interrupted"
        assert _state(client, waiting.job_id) == "queued"  # the stopping server starts none
    with serving(store) as address, connect(address) as client:
        done = client.jobs.wait(waiting.job_id)
        assert done.state == "succeeded", done.error
        events = list(client.jobs.watch(waiting.job_id))
        assert [e.index for e in events] == list(range(len(events)))
        assert [e.state for e in events if e.kind == "state"] == ["queued", "running", "succeeded"]


def test_a_queued_job_keeps_the_checkpoint_and_data_set_file_it_was_sent_until_it_starts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    with StateStore(path) as store:
        records = JobRecords(store)
        row = JobRow("ab" * 8, "spsa", "local", "lab.csv", "{}", "queued", 1.0)
        content = b"1,2,a\n3,4,b\n"
        digest = hashlib.sha256(content).hexdigest()
        records.add(row, b'{"step": 3}', content)
        other = JobRow("cd" * 8, "spsa", "local", "iris", "{}", "queued", 2.0)
        records.add(other)
        assert records.queued() == [
            QueuedJob(row, b'{"step": 3}', digest, None),
            QueuedJob(other, None, None, None),
        ]
        assert DatasetRecords(store).blob(digest) == content
        row.state = "running"
        records.update(row)
        assert records.queued() == [QueuedJob(other, None, None, None)]
        assert records.delete(row.id) is None  # running: not deleted
        assert DatasetRecords(store).blob(digest) is None  # nothing else held the bytes
    db = sqlite3.connect(path)
    kept = "SELECT id, resume_checkpoint, dataset_file, dataset_sha256 FROM jobs ORDER BY id"
    assert db.execute(kept).fetchall() == [(row.id, None, None, None), (other.id, None, None, None)]
    db.close()


def test_a_queued_job_this_server_cannot_run_ends_failed_saying_why(tmp_path: Path) -> None:
    """A job queued by an older server whose options this one refuses: it ends failed
    when the server starts, its events going on from the stored ones."""
    store = tmp_path / "s.sqlite3"
    with StateStore(store) as state:
        records = JobRecords(state)
        row = JobRow("cd" * 8, "spsa", "local", "iris", '{"steps": -3}', "queued", 1.0)
        records.add(row)
        records.update(row, [JobEventRow(0, 1.0, "state", state="queued")])
    with serving(store) as address, connect(address) as client:
        job = client.jobs.get(row.id)
        assert job.state == "failed"
        assert job.error.startswith(
            "queued when the server stopped, and this server cannot run it: "
        )
        assert "steps" in job.error
        assert [e.state for e in client.jobs.watch(row.id)] == ["queued", "failed"]


def test_a_queued_job_goes_on_from_its_checkpoint_after_a_restart(tmp_path: Path) -> None:
    """The checkpoint a queued job is to go on from is kept with it in the store: queued,
    the server restarted, started by the next server, it ends as the uninterrupted run."""
    # Long enough that the cancel lands before the last step (a run that ends keeps no
    # checkpoint): 40 and 400 steps sometimes finished first.
    options = {"steps": 4000, "eval_every": 500, "batch_size": 16}
    store = tmp_path / "s.sqlite3"
    stopping = ServerStop()
    with serving(store, stopping=stopping) as address, connect(address) as client:
        whole = finished(client, "spsa", options)
        job = client.jobs.submit("spsa", options, dataset="iris")
        first_progress(client, job.job_id)
        client.jobs.cancel(job.job_id)
        stopped = client.jobs.wait(job.job_id)
        assert stopped.state == "cancelled"
        checkpoint = client.jobs.get(job.job_id, include_record=True).files["checkpoint.json"]
        holder = _holding(client, list(whole.tiles))
        queued = client.jobs.submit(
            "spsa", options, dataset="iris", resume_checkpoint=checkpoint, queue=True
        )
        assert queued.state == "queued"
        stopping.run(30.0)
        assert _state(client, holder.job_id) == "interrupted"
    with serving(store) as address, connect(address) as client:
        client.jobs.wait(queued.job_id)
        assert_ends_as(client.jobs.get(queued.job_id, include_record=True), whole)
        lines = [e.message for e in client.jobs.watch(queued.job_id) if e.kind == "log"]
        assert f"going on from the checkpoint sent ({len(checkpoint)} bytes)" in lines


def test_a_job_past_the_time_limit_stops_at_a_step_and_the_queue_moves_on(
    tmp_path: Path,
) -> None:
    """[limits] max_job_hours: the job holding a tile stops at its next step once it has
    run that long, keeping its record and checkpoint; the job queued for the tile runs."""
    limits = LimitsSettings(max_job_hours=3 / 3600)  # 3 s: a short job ends well within
    with serving(tmp_path / "s.sqlite3", limits=limits) as address, connect(address) as client:
        holder = _holding(client, [0])
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        assert waiting.state == "queued"
        stopped = client.jobs.wait(holder.job_id)
        assert stopped.state == "cancelled"
        assert re.fullmatch(
            r"stopped by the server's time limit: it ran 0\.000833333 h \(\[limits\] "
            r"max_job_hours\); stopped after step \d+, its record kept",
            stopped.error,
        ), stopped.error
        assert stopped.ended_unix_s - stopped.started_unix_s >= 3.0
        kept = client.jobs.get(holder.job_id, include_record=True).files
        assert "checkpoint.json" in kept  # to go on from, later
        done = client.jobs.wait(waiting.job_id)
        assert done.state == "succeeded", done.error


def test_principals_take_turns_in_the_queue(tmp_path: Path) -> None:
    """Alice's job holds a tile, she queues two more for it, then Bob one: when hers
    ends, Bob's goes first (Alice has just had her turn), then Alice's two."""
    tokens_file = tmp_path / "tokens.toml"
    token = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    store = tmp_path / "s.sqlite3"
    with (
        serving(store, tokens=TokensFile(tokens_file)) as address,
        connect(address, token=token["alice"]) as alice,
        connect(address, token=token["bob"]) as bob,
    ):
        holder = _holding(alice, [0])
        first, second = (
            alice.jobs.submit("spsa", _on([0]), dataset="iris", queue=True) for _ in range(2)
        )
        later = bob.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        alice.jobs.cancel(holder.job_id)
        done = [bob.jobs.wait(later.job_id), alice.jobs.wait(first.job_id)]
        done.append(alice.jobs.wait(second.job_id))
        assert [job.state for job in done] == ["succeeded"] * 3
        starts = [job.started_unix_s for job in done]
        assert starts == sorted(starts)  # Bob's, then Alice's first, then her second


def test_the_turns_outlive_the_server(tmp_path: Path) -> None:
    """Alice's job ran, then Alice and Bob queued one each and the server stopped: the
    next server starts Bob's first (Alice had the last turn: the store says when), not
    Alice's, though hers was submitted first."""
    tokens_file = tmp_path / "tokens.toml"
    token = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    store = tmp_path / "s.sqlite3"
    stopping = ServerStop()
    with (
        serving(store, tokens=TokensFile(tokens_file), stopping=stopping) as address,
        connect(address, token=token["alice"]) as alice,
        connect(address, token=token["bob"]) as bob,
    ):
        _holding(alice, [0])
        hers = alice.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        his = bob.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        stopping.run(30.0)
    with (
        serving(store, tokens=TokensFile(tokens_file)) as address,
        connect(address, token=token["alice"]) as alice,
        connect(address, token=token["bob"]) as bob,
    ):
        first, second = bob.jobs.wait(his.job_id), alice.jobs.wait(hers.job_id)
        assert first.state == second.state == "succeeded"
        assert first.started_unix_s < second.started_unix_s


def test_the_queue_waits_for_a_board_that_went_away_to_come_back(tmp_path: Path) -> None:
    """A serial board unplugged under a running job for 3 s: that job fails, and the job
    queued for its tile waits, saying why, instead of starting on a board that is not
    there and failing too; it starts once the link is back (the server's link watch)."""
    faults = FaultConfig(unplug_after=400, unplug_s=3.0)
    with (
        serve_virtual_board(preset("ideal"), 0, faults=faults) as virtual,
        open_board(f"{virtual.url}?timeout=0.05&retries=1") as board,
        serving(tmp_path / "s.sqlite3", board) as address,
        connect(address) as client,
    ):
        holder = client.jobs.submit("spsa", _on([0], ENDLESS), dataset="iris")
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        assert waiting.state == "queued"
        lost = client.jobs.wait(holder.job_id)
        assert lost.state == "failed" and lost.error.startswith("BoardUnavailable: ")
        _until(lambda: "the board is unavailable" in client.jobs.get(waiting.job_id).message)
        done = client.jobs.wait(waiting.job_id)
        assert done.state == "succeeded", done.error


def test_jobs_are_listed_by_state(tmp_path: Path) -> None:
    """ListJobs states: the queue and what holds the board, from the clients and the CLI;
    a state no one knows is refused naming the field."""
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        done = client.jobs.wait(client.jobs.submit("spsa", _on([1]), dataset="iris").job_id)
        holder = _holding(client, [0])
        waiting = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)

        def ids(*states: str) -> list[str]:
            return [job.job_id for job in client.jobs.list(states=states)]

        assert ids("queued") == [waiting.job_id]
        assert ids("queued", "running") == [waiting.job_id, holder.job_id]  # newest first
        assert ids("succeeded") == [done.job_id]
        assert ids() == [waiting.job_id, holder.job_id, done.job_id]
        with pytest.raises(InvalidArgument) as refused:
            client.jobs.list(states=["waiting"])
        assert refused.value.field == "states" and "interrupted, queued" in str(refused.value)
        listed = run_sidra("jobs", "list", "--server", address, "--state", "queued", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [job["job_id"] for job in json.loads(listed.stdout)] == [waiting.job_id]
        bad = run_sidra("jobs", "list", "--server", address, "--state", "waiting")
        assert bad.returncode == 2 and "--state" in bad.stderr
        with grpc.insecure_channel(address) as channel:  # a client of another language
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            for value in (0, 99):
                with pytest.raises(grpc.RpcError) as raw:
                    stub.ListJobs(jobs_pb2.ListJobsRequest(states=[value]))
                assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert raw.value.details().startswith(f"states: got {value}, expected JobState")
        # The table shows a priority column only once a job has one.
        assert "priority" not in _jobs_table(address)
        lowered = client.jobs.submit("spsa", _on([0]), dataset="iris", queue=True, priority=-3)
        table = _jobs_table(address, "--state", "queued")
        assert "priority" in table.splitlines()[1] and f"{lowered.job_id} spsa" in table
        assert " -3 " in table
        client.jobs.cancel(lowered.job_id)
        client.jobs.cancel(waiting.job_id)
        client.jobs.cancel(holder.job_id)


def test_an_admin_s_urgent_job_goes_first_and_only_an_admin_may_raise_one(
    tmp_path: Path,
) -> None:
    """Alice's job holds tile 0; Bob queues two for it (the first lowered to -2), then the
    admin one of priority 5: when Alice's ends, the admin's starts first, whatever the
    turns and submission, then Bob's of 0, then his lowered one. Bob may lower his own
    job's priority, not raise it; a priority out of range is refused naming it; a
    job's priority is kept, in the store too."""
    tokens_file = tmp_path / "tokens.toml"
    token = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER, root=Role.ADMIN)
    store = tmp_path / "s.sqlite3"
    with (
        serving(store, tokens=TokensFile(tokens_file)) as address,
        connect(address, token=token["alice"]) as alice,
        connect(address, token=token["bob"]) as bob,
        connect(address, token=token["root"]) as root,
    ):
        with pytest.raises(SidraError, match="PERMISSION_DENIED.*priority: got 1.*admin role"):
            bob.jobs.submit("spsa", _on([0]), dataset="iris", queue=True, priority=1)
        with pytest.raises(InvalidArgument, match=r"priority: got 11, expected an integer"):
            root.jobs.submit("spsa", _on([0]), dataset="iris", queue=True, priority=11)
        with pytest.raises(InvalidArgument, match=r"priority: got 2, expected 0 without queue"):
            root.jobs.submit("spsa", _on([0]), dataset="iris", priority=2)  # as the CLI
        with pytest.raises(SidraError, match=r"job_id: no job 'ab'.*first 4 digits or more"):
            root.jobs.get("ab")
        with pytest.raises(grpc.RpcError) as missing:  # NOT_FOUND with its ErrorInfo
            jobs_pb2_grpc.JobServiceStub(grpc.insecure_channel(address)).GetJob(
                jobs_pb2.GetJobRequest(job_id="ffff"),
                metadata=[("authorization", f"Bearer {token['root']}")],
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        details = rpc_status.from_call(missing.value)
        assert details is not None and details.details  # an ErrorInfo, as every error
        stub = jobs_pb2_grpc.JobServiceStub(grpc.insecure_channel(address))
        with pytest.raises(grpc.RpcError) as raw:
            stub.SubmitJob(
                jobs_pb2.SubmitJobRequest(kind="spsa", queue=True, priority=-11),
                metadata=[("authorization", f"Bearer {token['root']}")],
            )
        assert raw.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "priority: got -11, expected -10 .. 10" in (raw.value.details() or "")
        assert not bob.jobs.list(states=["queued"])  # nothing refused was kept
        holder = _holding(alice, [0])
        polite = bob.jobs.submit("spsa", _on([0]), dataset="iris", queue=True, priority=-2)
        plain = bob.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        urgent = root.jobs.submit("spsa", _on([0]), dataset="iris", queue=True, priority=5)
        assert (polite.priority, plain.priority, urgent.priority) == (-2, 0, 5)
        assert "queued, 0 ahead" in _until_message(root, urgent.job_id)
        alice.jobs.cancel(holder.job_id)
        done = [root.jobs.wait(urgent.job_id), bob.jobs.wait(plain.job_id)]
        done.append(bob.jobs.wait(polite.job_id))
    assert [job.state for job in done] == ["succeeded"] * 3
    starts = [job.started_unix_s for job in done]
    assert starts == sorted(starts)  # the admin's, Bob's plain one, then the one he lowered
    with StateStore(store) as kept:
        assert JobRecords(kept).get(urgent.job_id).priority == 5


def _until_message(client: RemoteBoard, job_id: str) -> str:
    """The queued job's message once a queue pass has placed it."""
    _until(lambda: client.jobs.get(job_id).message.startswith("queued, "))
    return client.jobs.get(job_id).message


def _jobs_table(address: str, *args: str) -> str:
    """``sidra jobs list`` as a 200-column terminal shows it, runs of spaces as one."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    shown = CliRunner().invoke(app, ["jobs", "list", "--server", address, *args],
                               env={"COLUMNS": "200"})  # fmt: skip
    assert shown.exit_code == 0, shown.output
    return re.sub(r" +", " ", shown.output)  # one space between columns


def test_a_queued_job_s_priority_changes_its_place_and_only_as_submission_allows(
    tmp_path: Path,
) -> None:
    """Bob queues two jobs for a tile Alice's holds; lowering the first (his own) puts the
    second ahead, which starts first; he may not raise his, nor change Alice's; the
    admin raises one above 0; a running job, an unknown one and a priority out of range
    are refused, naming why; the change is stored and logged."""
    tokens_file = tmp_path / "tokens.toml"
    token = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER, root=Role.ADMIN)
    store = tmp_path / "s.sqlite3"
    with (
        serving(store, tokens=TokensFile(tokens_file)) as address,
        connect(address, token=token["alice"]) as alice,
        connect(address, token=token["bob"]) as bob,
        connect(address, token=token["root"]) as root,
    ):
        holder = _holding(alice, [0])
        first = bob.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        second = bob.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        assert "queued, 1 ahead" in _until_message(bob, second.job_id)
        lowered = bob.jobs.set_priority(first.job_id, -4)
        assert (lowered.state, lowered.priority) == ("queued", -4)
        _until(lambda: bob.jobs.get(second.job_id).message.startswith("queued, 0 ahead"))
        with pytest.raises(SidraError, match="PERMISSION_DENIED.*priority: got 2.*admin role"):
            bob.jobs.set_priority(first.job_id, 2)
        with pytest.raises(SidraError, match="PERMISSION_DENIED.*belongs to 'bob'"):
            alice.jobs.set_priority(first.job_id, -1)
        with pytest.raises(FailedPrecondition, match="is running, not queued"):
            alice.jobs.set_priority(holder.job_id, -1)
        with pytest.raises(SidraError, match="NOT_FOUND"):
            root.jobs.set_priority("0123456789abcdef", 1)
        with pytest.raises(InvalidArgument, match=r"priority: got 11, expected an integer"):
            root.jobs.set_priority(first.job_id, 11)
        stub = jobs_pb2_grpc.JobServiceStub(grpc.insecure_channel(address))
        with pytest.raises(grpc.RpcError) as raw:
            stub.SetJobPriority(
                jobs_pb2.SetJobPriorityRequest(job_id=first.job_id, priority=-11),
                metadata=[("authorization", f"Bearer {token['root']}")],
            )
        assert raw.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert root.jobs.set_priority(second.job_id, 3).priority == 3  # an admin's to raise
        alice.jobs.cancel(holder.job_id)
        done = [bob.jobs.wait(second.job_id), bob.jobs.wait(first.job_id)]
        events = [e.message for e in bob.jobs.watch(first.job_id) if e.kind == "log"]
    assert [job.state for job in done] == ["succeeded"] * 2
    assert done[0].started_unix_s < done[1].started_unix_s  # the second went first
    assert "priority 0 -> -4, set by bob" in events
    with StateStore(store) as kept:
        assert JobRecords(kept).get(first.job_id).priority == -4
        assert JobRecords(kept).get(second.job_id).priority == 3


def test_sidra_jobs_priority_reorders_the_queue(tmp_path: Path) -> None:
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        holder = _holding(client, [1])
        queued = client.jobs.submit("spsa", _on([1]), dataset="iris", queue=True)
        said = run_sidra("jobs", "priority", queued.job_id, "--priority", "-3", "--server", address)
        shown = client.jobs.get(queued.job_id)
        refused = run_sidra(
            "jobs", "priority", holder.job_id, "--priority", "1", "--server", address
        )
        out_of_range = run_sidra(
            "jobs", "priority", queued.job_id, "--priority", "12", "--server", address
        )
        client.jobs.cancel(holder.job_id)
        client.jobs.wait(queued.job_id)
    assert said.returncode == 0, said.stderr
    assert f"job {queued.job_id}: priority -3; queued" in said.stdout
    assert shown.priority == -3
    assert refused.returncode == 1 and "is running, not queued" in refused.stderr
    assert out_of_range.returncode == 2


def test_a_job_starting_is_counted_once_against_max_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """max_jobs = 2, nothing running: a SubmitJob made while the first job is being
    launched (running, its start's reservation not yet given back) is the principal's
    second job, admitted; it was refused as a third for the moment both counted."""
    from sidra.server.jobs.starting import JobStarter

    launch = JobStarter._launch
    second: list[Any] = []

    def launching(self: JobStarter, live: Any, runner: Any) -> None:
        if not second:  # the first job's launch: submit the second meanwhile
            second.append(None)
            with connect(address) as other:
                try:
                    second[0] = other.jobs.submit("spsa", _on([2], ENDLESS), dataset="iris")
                except SidraError as exc:
                    second[0] = exc
        launch(self, live, runner)

    monkeypatch.setattr(JobStarter, "_launch", launching)
    with (
        serving(tmp_path / "s.sqlite3", limits=LimitsSettings(max_jobs=2)) as address,
        connect(address) as client,
    ):
        first = client.jobs.submit("spsa", _on([1], ENDLESS), dataset="iris")
        assert isinstance(second[0], JobInfo), second[0]
        assert {first.state, second[0].state} == {"running"}
        with pytest.raises(ResourceExhausted, match="limits.max_jobs"):
            client.jobs.submit("spsa", _on([3], ENDLESS), dataset="iris")  # a third
        for job in (first, second[0]):
            client.jobs.cancel(job.job_id)


@pytest.mark.parametrize("taken_away", ["removed", "demoted"])
def test_a_queued_job_of_a_principal_whose_rights_went_since_fails_at_its_turn(
    tmp_path: Path, taken_away: str
) -> None:
    """Mallory queued a job while a programmer; her token is then removed (or her role
    lowered to viewer): the job ran at its turn with the rights taken away. It ends
    failed at its turn, before any board call, saying why; others' jobs run on."""
    from sidra.server.security import add_principal, remove_principal

    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, mallory=Role.PROGRAMMER)
    limits = LimitsSettings(max_jobs=1)
    with (
        serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file), limits=limits) as address,
        connect(address, token=tokens["alice"]) as alice,
        connect(address, token=tokens["mallory"]) as mallory,
    ):
        holder = alice.jobs.submit("spsa", _on([0], ENDLESS), dataset="iris")
        queued = mallory.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        assert queued.state == "queued"
        writes = alice.stats().cell_writes
        if taken_away == "removed":
            remove_principal(tokens_file, "mallory")
            why = "principal 'mallory' is no longer in the tokens file"
        else:
            add_principal(tokens_file, "mallory", Role.VIEWER, replace=True)
            why = "'mallory' has role viewer now, and this needs programmer or above"
        alice.jobs.cancel(holder.job_id)
        ended = alice.jobs.wait(queued.job_id)
        assert ended.state == "failed" and not ended.started_unix_s  # never started
        assert ended.error == f"not started: {why} since it was queued"
        assert alice.jobs.wait(holder.job_id).state == "cancelled"
        after = alice.jobs.submit("spsa", _on([0]), dataset="iris", queue=True)
        assert alice.jobs.wait(after.job_id).state == "succeeded"  # the queue goes on
        assert alice.stats().cell_writes > writes
