"""Training jobs inside a real server on loopback (jobs.proto): they outlive their
client, can be cancelled, obey roles and leases, and keep their records in the
state store. The board is the ideal emulator, so "restored" is checked exactly.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    SidraError,
    open_board,
)
from sidra.drivers.errors import LeaseHeld
from sidra.hil.v1 import jobs_pb2, jobs_pb2_grpc
from sidra.server.app import create_server
from sidra.server.jobs.live import (
    PROGRESS_INTERVAL_MAX_S,
    PROGRESS_INTERVAL_S,
    progress_interval_s,
)
from sidra.server.security import Role, TokensFile
from sidra.server.settings import LimitsSettings
from sidra.server.state import StateStore
from sidra.server.state.jobs import JobRecords, JobRow
from tests.jobs.jobs_support import first_progress
from tests.server.security_support import principals

IDEAL_URL = "emu://?preset=ideal&seed=1"
SHORT = {"steps": 12, "eval_every": 6, "batch_size": 16}
"""An SPSA job that ends within seconds."""
ENDLESS = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16}
"""An SPSA job that runs until cancelled."""


@contextmanager
def served(
    store_path: Path, tokens_file: Path | None = None, limits: LimitsSettings | None = None
) -> Iterator[int]:
    with open_board(IDEAL_URL) as board, StateStore(store_path) as store:
        server, port = create_server(
            board,
            store=store,
            tokens=TokensFile(tokens_file) if tokens_file else None,
            limits=limits,
        )
        server.start()
        try:
            yield port
        finally:
            server.stop(grace=None).wait()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def port(store_path: Path) -> Iterator[int]:
    with served(store_path) as port:
        yield port


def _client(port: int, token: str = "") -> RemoteBoard:
    return connect(f"127.0.0.1:{port}", token=token)


def test_progress_events_come_about_every_interval_and_at_the_last_step(port: int) -> None:
    """A job of fast steps reports progress at every step; an event comes only when
    PROGRESS_INTERVAL_S has passed since the last one (in a job's first 100 s), and at
    the last step."""
    with _client(port) as board:
        job = board.jobs.submit("spsa", {"steps": 300, "eval_every": 300, "batch_size": 16})
        events = list(board.jobs.watch(job.job_id))
    progress = [e for e in events if e.kind == "progress"]
    assert progress[-1].step == progress[-1].total == 300
    gaps = [b.unix_s - a.unix_s for a, b in zip(progress[:-1], progress[1:-1], strict=False)]
    assert all(gap >= 0.9 * PROGRESS_INTERVAL_S for gap in gaps), gaps
    assert len(progress) < 300


def test_a_long_job_s_progress_events_grow_with_the_logarithm_of_its_length() -> None:
    """Every 100 ms for 100 s, then a thousandth of the time run, at most 10 s apart."""
    assert progress_interval_s(0.0) == progress_interval_s(100.0) == PROGRESS_INTERVAL_S
    assert progress_interval_s(1000.0) == pytest.approx(1.0)
    assert progress_interval_s(86_400.0) == PROGRESS_INTERVAL_MAX_S
    elapsed, events = 0.0, 0
    while elapsed < 7 * 86_400:  # a week-long job's events, one per interval
        elapsed += progress_interval_s(elapsed)
        events += 1
    assert 60_000 < events < 70_000  # at one per 100 ms: 6 million


EVERY_KIND = {
    "last-layer": ("iris", {"epochs": 1, "hidden": 16}),
    "mlp": ("iris", {"epochs": 1, "hidden": [16]}),
    "ff": ("iris", {"epochs": 1, "hidden": [16]}),
    "eqprop": ("iris", {"epochs": 1, "hidden": [16]}),
    "compare": ("iris", {"budget": 40, "seeds": [0], "methods": ["spsa", "last-layer"]}),
    # Its network is first trained digitally, to convergence with 32 hidden units.
    "drift-recovery": ("digits", {"epochs": 1, "hidden": 32, "age_days": 1.0}),
}
"""Every job kind but spsa (above) and pat (tests/jobs/test_pat_job.py): its data set
and options, each job as short as its options allow."""


@pytest.mark.parametrize("kind", list(EVERY_KIND))
def test_every_kind_of_job_runs_inside_the_server_on_the_tiles_it_claimed(
    kind: str, port: int, store_path: Path
) -> None:
    """Each kind runs to its end inside the server, on a lease of the tiles its
    placement claimed (the whole board for drift recovery, which ages every tile), and
    leaves its summary and record in the store; the lease ends with it."""
    dataset, options = EVERY_KIND[kind]
    with _client(port) as board:
        job = board.jobs.submit(kind, options, dataset=dataset)
        whole_board = tuple(range(board.info.tile_count))
        assert (job.tiles == whole_board) == (kind == "drift-recovery")
        events = list(board.jobs.watch(job.job_id))
        assert events[-1].kind == "state", events[-1]
        assert events[-1].state == "succeeded", [e.message for e in events]
        done = board.jobs.get(job.job_id, include_record=True)
        assert done.summary
        settings = json.loads(done.files["settings.json"])
        assert (settings["job"], settings["dataset"]) == (kind, dataset)
        assert board.leases() == []
    with StateStore(store_path, read_only=True) as store:
        stored = JobRecords(store).get(job.job_id, with_files=True)
        assert stored is not None and stored.state == "succeeded"
        assert stored.files == done.files


def test_a_job_survives_its_clients_disconnect_and_leaves_its_record(
    port: int, store_path: Path
) -> None:
    submitter = _client(port)
    job = submitter.jobs.submit("spsa", SHORT | {"tiles": [1]})
    assert (job.state, job.tiles, job.principal) == ("running", (1,), "local")
    assert job.options["steps"] == 12 and job.options["mode"] == "board"  # defaults filled in
    submitter.close()  # the channel goes away while the job runs

    with _client(port) as other:
        events = list(other.jobs.watch(job.job_id))
        assert [e.index for e in events] == list(range(len(events)))  # no gaps
        assert events[-1].kind == "state" and events[-1].state == "succeeded"
        progress = [e for e in events if e.kind == "progress"]
        assert progress[-1].step == progress[-1].total == 12
        # A watcher that resumes from an index gets exactly the rest.
        assert list(other.jobs.watch(job.job_id, from_index=3)) == events[3:]
        done = other.jobs.get(job.job_id, include_record=True)
        assert done.state == "succeeded" and done.summary is not None
        assert done.summary["steps"] == 12
        steps = list(csv.reader(io.StringIO(done.files["steps.csv"].decode())))
        assert steps[0] == ["step", "loss"] and len(steps) == 13
        assert other.leases() == []  # the job's lease ended with it
        assert [j.job_id for j in other.jobs.list()] == [job.job_id]
        on_board = other.read_conductance(1).conductances

    with StateStore(store_path, read_only=True) as store:
        stored = JobRecords(store).get(job.job_id, with_files=True)
        assert stored is not None and stored.state == "succeeded"
        assert stored.files["steps.csv"] == done.files["steps.csv"]
        assert len(JobRecords(store).events(job.job_id)) == len(events)
        # The job's Programs are recorded like any client's, under its principal, every
        # one of them (stored in batches behind the job) before its end was announced.
        assert {r.principal for r in store.history(tile=1)} == {"local"}
        golden = store.golden(other.info.serial_number, 1)
        assert golden.programmed.any()
        np.testing.assert_array_equal(
            on_board[golden.programmed], golden.targets_us[golden.programmed]
        )


def test_a_cancelled_job_stops_releases_its_tiles_and_leaves_none_perturbed(
    port: int, store_path: Path
) -> None:
    with _client(port) as board:
        job = board.jobs.submit("spsa", ENDLESS | {"tiles": [2]})
        index = first_progress(board, job.job_id)
        asked = board.jobs.cancel(job.job_id)
        assert asked.job_id == job.job_id
        events = list(board.jobs.watch(job.job_id, from_index=index))
        assert events[-1].state == "cancelled" and "cancelled by local" in events[-1].message
        ended = board.jobs.get(job.job_id, include_record=True)
        assert ended.state == "cancelled" and ended.step < 1_000_000
        # An SPSA job ends at a step boundary, evaluated, and keeps its record.
        assert ended.summary is not None
        stopped_at = ended.summary["stopped_at_step"]
        assert (
            ended.error == f"cancelled by local; stopped after step {stopped_at}, its record kept"
        )
        assert 1 <= stopped_at == ended.summary["steps"] < 1_000_000
        assert 0.0 <= ended.summary["test_accuracy"] <= 1.0
        settings = json.loads(ended.files["settings.json"])
        assert settings["stopped_at_step"] == stopped_at
        with io.StringIO(ended.files["steps.csv"].decode()) as f:
            assert len(list(csv.reader(f))) == stopped_at + 1  # header + one row per step
        assert board.leases() == []
        # What is on the tile is what was last programmed: no cell left perturbed.
        with StateStore(store_path, read_only=True) as store:
            golden = store.golden(board.info.serial_number, 2)
        read = board.read_conductance(2).conductances
        np.testing.assert_array_equal(read[golden.programmed], golden.targets_us[golden.programmed])
        board.perturb(2, seed=1, amplitude_us=1.0)  # the tile is free for anyone to write
        assert board.jobs.cancel(job.job_id).state == "cancelled"  # again: not an error


@pytest.mark.parametrize("kind", ["last-layer", "mlp", "ff", "eqprop", "drift-recovery"])
def test_a_cancelled_epoch_job_ends_after_its_epoch_with_its_record(
    kind: str, port: int, store_path: Path
) -> None:
    """Each epoch-trained kind, cancelled, finishes the epoch under way (drift-recovery:
    of its retraining), is tested, and keeps a record that says so, in the store too."""
    dataset, options = EVERY_KIND[kind]
    with _client(port) as board:
        job = board.jobs.submit(kind, options | {"epochs": 10_000}, dataset=dataset)
        first_progress(board, job.job_id)
        board.jobs.cancel(job.job_id)
        ended = board.jobs.wait(job.job_id)
        assert ended.state == "cancelled", ended.error
        assert ended.summary is not None
        epoch = ended.summary["stopped_at_epoch"]
        assert 1 <= epoch < 10_000
        assert ended.error == f"cancelled by local; stopped after epoch {epoch}, its record kept"
        assert board.leases() == []
    with StateStore(store_path, read_only=True) as store:
        stored = JobRecords(store).get(job.job_id, with_files=True)
        assert stored is not None and json.loads(stored.summary_json) == ended.summary
        assert json.loads(stored.files["summary.json"])["stopped_at_epoch"] == epoch


def test_the_service_reads_the_stop_key_the_training_records_write() -> None:
    from sidra.server.jobs.runner import STOPPED_AT as read
    from sidra.training import STOPPED_AT as written

    assert read == written


def test_a_cancelled_comparison_keeps_the_runs_it_finished(port: int) -> None:
    """A comparison, cancelled, ends after the method run under way; its record holds
    every run it finished."""
    with _client(port) as board:
        job = board.jobs.submit(
            "compare",
            {"budget": 400, "seeds": list(range(40)), "methods": ["spsa", "last-layer"]},
            dataset="iris",
        )
        first_progress(board, job.job_id)
        board.jobs.cancel(job.job_id)
        ended = board.jobs.wait(job.job_id)
        assert ended.summary is not None, ended.error
        done = ended.summary["stopped_at_run"]
        assert ended.state == "cancelled" and 1 <= done < 80
        assert ended.error == f"cancelled by local; stopped after run {done}, its record kept"
        assert len(ended.summary["runs"]) == done
        files = board.jobs.get(job.job_id, include_record=True).files
        assert len(files["runs.csv"].decode().splitlines()) == done + 1


def test_a_stop_that_takes_longer_than_the_grace_ends_at_a_board_call(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancelled job that does not reach its boundary within CANCEL_GRACE_S is stopped
    at its next board call, with no record, and its error says why."""
    monkeypatch.setattr("sidra.server.jobs.manager.CANCEL_GRACE_S", 0.0)
    with served(store_path) as port, _client(port) as board:
        job = board.jobs.submit("last-layer", {"epochs": 1000, "tiles": [0, 1]})
        first_progress(board, job.job_id)
        board.jobs.cancel(job.job_id)
        ended = board.jobs.wait(job.job_id)
        assert ended.state == "cancelled" and ended.summary is None
        assert ended.error == (
            "cancelled by local; it did not reach a step, epoch or run boundary within 0 s and was "
            "stopped at a board call, no record kept"
        )
        assert board.leases() == []


def test_cancelling_twice_stops_at_the_next_board_call(port: int) -> None:
    """The second CancelJob does not wait for the boundary the first asked for: both come
    while the job is still short of its first epoch's end (it loads the data and places
    and programs its layers first), and it ends with no record."""
    with _client(port) as board:
        job = board.jobs.submit("last-layer", {"epochs": 1000, "tiles": [0, 1]})
        first = board.jobs.cancel(job.job_id)
        assert first.state == "running" and first.message == (
            "stopping at its next step, epoch or run boundary, with its record; cancel it "
            "again to stop it at its next board call, without its record"
        )
        again = board.jobs.cancel(job.job_id)  # the answer says how it stops now
        assert again.message == "stopping at its next board call, without its record"
        ended = board.jobs.wait(job.job_id)
        assert (ended.state, ended.error) == ("cancelled", "cancelled by local")
        assert ended.summary is None and ended.step == 0


def test_a_job_waits_for_or_is_refused_tiles_another_session_leases(port: int) -> None:
    with (
        _client(port) as alice,
        _client(port) as bob,
        alice.session(label="alice's run") as session,
        session.lease([0]),
    ):
        with pytest.raises(LeaseHeld, match="alice's run"):
            bob.jobs.submit("spsa", SHORT | {"tiles": [0]})
        assert bob.jobs.list() == []  # a refused job leaves no record
        job = bob.jobs.submit("spsa", SHORT | {"tiles": [3]})  # another tile is free
        # Shared rules: the job's lease refuses alice's writes to its tile.
        with pytest.raises(LeaseHeld, match=f"job {job.job_id} spsa"):
            alice.perturb(3, seed=1, amplitude_us=1.0)
        assert bob.jobs.wait(job.job_id).state == "succeeded"


def test_a_job_started_when_a_held_tile_frees_within_lease_wait(port: int) -> None:
    import threading

    with _client(port) as alice, _client(port) as bob:
        session = alice.session(label="short hold")
        session.lease([0])
        timer = threading.Timer(0.5, session.close)
        timer.start()
        try:
            job = bob.jobs.submit("spsa", SHORT | {"tiles": [0]}, lease_wait_s=20)
        finally:
            timer.join()
        assert job.tiles == (0,)
        assert bob.jobs.wait(job.job_id).state == "succeeded"


def test_bad_submissions_are_refused_naming_the_field(port: int) -> None:
    with _client(port) as board:
        with pytest.raises(InvalidArgument, match="kind: got 'sgd'"):
            board.jobs.submit("sgd")
        with pytest.raises(InvalidArgument, match="options.*steps") as refused:
            board.jobs.submit("spsa", {"steps": 0})
        assert (refused.value.field, refused.value.value) == ("options.steps", 0)
        assert refused.value.allowed == "greater than or equal to 1"
        # Past 64 bits no store keeps it (the job stayed running for ever), and JSON
        # nested past the parser's stack is no options (it was an INTERNAL error).
        with pytest.raises(InvalidArgument, match=r"options.steps: got 18446744073709551616"):
            board.jobs.submit("spsa", {"steps": 2**64, "tiles": [3]})
        nested = jobs_pb2.SubmitJobRequest(kind="spsa", options_json="[" * 10**5 + "]" * 10**5)
        with (
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            pytest.raises(grpc.RpcError) as raw,
        ):
            jobs_pb2_grpc.JobServiceStub(channel).SubmitJob(nested)
        assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nested deeper than any options go" in (raw.value.details() or "")
        # JSON's true is no step count, nor a string a number: nothing is coerced.
        for loose, shown in ((True, "True"), ("10", "'10'"), (10.5, "10.5")):
            with pytest.raises(InvalidArgument, match=f"options.steps: got {shown}"):
                board.jobs.submit("spsa", {"steps": loose})
        with pytest.raises(InvalidArgument, match="options.*no_such_option") as refused:
            board.jobs.submit("spsa", {"no_such_option": 1})
        assert refused.value.field == "options.no_such_option"
        assert refused.value.allowed.startswith("one of the spsa options (steps, seed, ")
        with pytest.raises(InvalidArgument, match="options: got 'list'"):
            board.jobs.submit("spsa", [("steps", 5)])  # type: ignore[arg-type]
        # A value JSON cannot carry is named by its option (it said only "Object of type
        # ... is not JSON serializable"); NaN would have gone as non-standard JSON.
        for value in (object(), float("nan")):
            with pytest.raises(InvalidArgument) as refused:
                board.jobs.submit("spsa", {"learning_rate": value})
            assert refused.value.field == "options['learning_rate']"
        with pytest.raises(InvalidArgument, match=r"got tile 99, expected tiles in 0 \.\. 3"):
            board.jobs.submit("spsa", {"tiles": [99]})
        with pytest.raises(InvalidArgument, match=r"options.tiles: got \[0, 0\], expected each"):
            board.jobs.submit("spsa", {"tiles": [0, 0]})
        with pytest.raises(InvalidArgument, match="dataset: got '/etc/passwd'"):
            board.jobs.submit("spsa", dataset="/etc/passwd")
        with pytest.raises(OutOfRange, match="lease_wait_s"):
            board.jobs.submit("spsa", lease_wait_s=61)
        no_number = jobs_pb2.SubmitJobRequest(kind="spsa", lease_wait_s=math.nan)
        with (
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
            pytest.raises(grpc.RpcError) as raw,
        ):  # NaN is no wait at all: INVALID_ARGUMENT, as AcquireLease's wait_s
            jobs_pb2_grpc.JobServiceStub(channel).SubmitJob(no_number)
        assert raw.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(NotFound, match="NOT_FOUND"):
            board.jobs.get("0123456789abcdef")
        assert board.jobs.list() == [] and board.leases() == []


def test_options_go_as_an_option_model_or_with_numpy_numbers(port: int) -> None:
    """``SPSAOptions(steps=12)`` was refused ("expected a mapping"), ``np.int64(12)`` was
    'not JSON serializable': the library's own models and NumPy numbers are options."""
    from sidra.training import SPSAOptions

    with _client(port) as board:
        model = board.jobs.submit("spsa", SPSAOptions(steps=12, eval_every=6, batch_size=16))
        assert board.jobs.wait(model.job_id).state == "succeeded"
        numbers = board.jobs.submit("spsa", {k: np.int64(v) for k, v in SHORT.items()})
        assert board.jobs.wait(numbers.job_id).state == "succeeded"
    assert model.options["steps"] == numbers.options["steps"] == 12


def test_roles_who_may_submit_and_cancel(store_path: Path, tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    token = principals(
        tokens_file, viewer=Role.VIEWER, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER,
        admin=Role.ADMIN,
    )  # fmt: skip
    with served(store_path, tokens_file) as port:
        with (
            _client(port, token["viewer"]) as viewer,
            pytest.raises(SidraError, match="SubmitJob needs role programmer"),
        ):
            viewer.jobs.submit("spsa", SHORT)
        with _client(port, token["alice"]) as alice, _client(port, token["bob"]) as bob:
            job = alice.jobs.submit("spsa", ENDLESS)
            assert job.principal == "alice"
            with pytest.raises(SidraError, match="PERMISSION_DENIED.*belongs to 'alice'"):
                bob.jobs.cancel(job.job_id)
            with _client(port, token["viewer"]) as viewer:
                assert [j.job_id for j in viewer.jobs.list()] == [job.job_id]  # viewers see
            with _client(port, token["admin"]) as admin:
                admin.jobs.cancel(job.job_id)
            ended = alice.jobs.wait(job.job_id)
            assert ended.state == "cancelled"
            assert ended.error.startswith("cancelled by admin; stopped after step ")


def test_a_principal_runs_at_most_max_jobs(store_path: Path) -> None:
    with served(store_path, limits=LimitsSettings(max_jobs=1)) as port, _client(port) as board:
        job = board.jobs.submit("spsa", ENDLESS | {"tiles": [0]})
        with pytest.raises(ResourceExhausted, match="limits.max_jobs"):
            board.jobs.submit("spsa", SHORT | {"tiles": [1]})
        board.jobs.cancel(job.job_id)
        board.jobs.wait(job.job_id)
        assert board.jobs.wait(board.jobs.submit("spsa", SHORT | {"tiles": [1]}).job_id).finished


def test_a_server_without_the_training_extra_refuses_jobs_naming_it(
    port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if scikit-learn were not installed: importing it fails (sys.modules None).
    monkeypatch.setitem(sys.modules, "sklearn", None)
    for runner in ("sidra.cli.job_runner", "sidra.training.jobs"):  # loaded again: fails
        monkeypatch.delitem(sys.modules, runner, raising=False)
    with _client(port) as board:
        with pytest.raises(FailedPrecondition, match=r"'training' extra.*sidra-hil\[training\]"):
            board.jobs.submit("spsa", SHORT)
        assert board.jobs.list() == [] and board.leases() == []


def test_jobs_running_when_the_server_stopped_are_interrupted_at_restart(
    store_path: Path,
) -> None:
    with StateStore(store_path) as store:
        records = JobRecords(store)
        records.add(JobRow("00000000000000aa", "spsa", "alice", "digits", "{}", "running", 1.0))
        with open_board(IDEAL_URL) as board:
            server, _ = create_server(board, store=store)  # its JobManager opens the store
            server.stop(grace=None)
        job = records.get("00000000000000aa")
        assert job is not None and job.state == "interrupted"
        assert "server stopped" in job.error
        (event,) = records.events(job.id)
        assert (event.index, event.kind, event.state) == (0, "state", "interrupted")


def test_without_a_state_store_jobs_are_refused() -> None:
    with open_board(IDEAL_URL) as board:
        server, port = create_server(board)
        server.start()
        try:
            with _client(port) as client, pytest.raises(FailedPrecondition, match="state store"):
                client.jobs.submit("spsa", SHORT)
        finally:
            server.stop(grace=None)


def test_open_streams_never_take_every_worker_and_a_refused_watcher_waits_for_a_place(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A server of 4 worker threads keeps at most 2 streams open (half); more watchers
    are refused RESOURCE_EXHAUSTED naming limits.max_streams while unary calls still
    answer at once, and the client's watch asks again until a place frees, saying once
    (a warning) that it waits."""
    import threading

    import grpc

    from sidra.client import jobs as client_jobs
    from sidra.hil.v1 import jobs_pb2

    monkeypatch.setattr(client_jobs, "STREAM_RETRY_S", 0.05)
    with open_board(IDEAL_URL) as board, StateStore(store_path) as store:
        server, port = create_server(board, store=store, max_workers=4)
        server.start()
        try:
            with _client(port) as client, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                watch = channel.unary_stream(
                    "/sidra.hil.v1.JobService/WatchJob",
                    request_serializer=jobs_pb2.WatchJobRequest.SerializeToString,
                    response_deserializer=jobs_pb2.JobEvent.FromString,
                )
                job = client.jobs.submit("spsa", ENDLESS | {"tiles": [1]})
                request = jobs_pb2.WatchJobRequest(job_id=job.job_id)
                held = [watch(request) for _ in range(2)]
                for stream in held:
                    next(stream)  # open: each holds a worker thread
                refused = [watch(request, timeout=10) for _ in range(3)]  # no hang: refused
                for stream in refused:
                    with pytest.raises(grpc.RpcError) as rpc:
                        next(stream)
                    assert rpc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "limits.max_streams" in (rpc.value.details() or "")
                # Two workers are left for unary calls: they answer as ever.
                assert client.stats().mvm_passes >= 0
                assert client.jobs.get(job.job_id).state == "running"

                seen: list[str] = []
                watcher = threading.Thread(
                    target=lambda: seen.extend(e.state for e in client.jobs.watch(job.job_id))
                )
                watcher.start()  # refused, asking again
                deadline = time.monotonic() + 30
                while not any("waiting for a place" in r.getMessage() for r in caplog.records):
                    assert time.monotonic() < deadline, "the watcher never said it waits"
                    time.sleep(0.05)
                time.sleep(0.3)  # several more refusals, each asked again
                client.jobs.cancel(job.job_id)
                for stream in held:
                    stream.cancel()  # places free: the watcher gets one
                watcher.join(timeout=60)
                assert not watcher.is_alive() and seen[-1] == "cancelled"
                waits = [r for r in caplog.records if "waiting for a place" in r.getMessage()]
                assert [r.levelname for r in waits if r.levelname == "WARNING"] == ["WARNING"]
        finally:
            server.stop(grace=None).wait()


def test_the_async_client_runs_jobs_as_the_sync_one(port: int) -> None:
    """Submit, watch (the sync client's events, one by one), get with the record, list,
    cancel and wait, as coroutines; an unknown job is the sync client's error."""

    from sidra.client.aio import connect as aio_connect

    async def run() -> tuple[list[Any], str, Any, str]:
        async with await aio_connect(f"127.0.0.1:{port}") as board:
            job = await board.jobs.submit("spsa", SHORT)
            events = [event async for event in board.jobs.watch(job.job_id)]
            done = await board.jobs.get(job.job_id, include_record=True)
            listed = [listed.job_id for listed in await board.jobs.list()]
            assert job.job_id in listed
            endless = await board.jobs.submit("spsa", ENDLESS | {"tiles": [1]})
            async for event in board.jobs.watch(endless.job_id):
                if event.kind == "progress":
                    break
            await board.jobs.cancel(endless.job_id)
            ended = await board.jobs.wait(endless.job_id)
            with pytest.raises(NotFound, match="NOT_FOUND") as unknown:
                await board.jobs.get("0" * 16)
            return events, job.job_id, (done, ended), str(unknown.value)

    events, job_id, (done, ended), unknown = asyncio.run(run())
    assert done.state == "succeeded" and done.summary is not None
    assert {"settings.json", "steps.csv"} <= set(done.files)
    assert ended.state == "cancelled" and ended.error.endswith("its record kept")
    with _client(port) as board:
        assert events == list(board.jobs.watch(job_id))
        with pytest.raises(NotFound) as sync_unknown:
            board.jobs.get("0" * 16)
    assert unknown == str(sync_unknown.value)


def test_a_job_is_seen_ended_only_once_its_record_is_stored(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's write of a job's end is slowed down: a client that watched the job to
    its end, or asks for it, finds its record in the store all the same."""
    import time

    original = JobRecords.update

    def slow_final_write(self: JobRecords, row: JobRow, *args: Any, **kwargs: Any) -> None:
        if row.state != "running":
            time.sleep(0.5)
        original(self, row, *args, **kwargs)

    monkeypatch.setattr(JobRecords, "update", slow_final_write)
    with served(store_path) as port, _client(port) as board:
        job = board.jobs.submit("spsa", SHORT)
        ended = board.jobs.wait(job.job_id)
        assert ended.state == "succeeded" and ended.summary is not None
        with StateStore(store_path, read_only=True) as store:
            stored = JobRecords(store).get(job.job_id, with_files=True)
        assert stored is not None and stored.state == "succeeded"
        assert json.loads(stored.summary_json) == ended.summary
        assert "summary.json" in stored.files


def test_an_ended_job_is_read_from_the_store_not_held_in_memory(store_path: Path) -> None:
    """A server up for months ran thousands of jobs: once a job's end is stored, the
    manager lets go of it (its events held in memory grew with its run) and answers
    from the store the same."""
    from sidra.server.app import lease_registry
    from sidra.server.jobs.manager import JobManager
    from sidra.server.limits import PrincipalLimits
    from sidra.server.security import principal_name
    from sidra.server.servicer import BoardServicer
    from sidra.server.sessions import LeaseKeeper
    from sidra.server.settings import LeaseSettings
    from sidra.server.turns import BoardTurns

    with open_board(IDEAL_URL) as board, StateStore(store_path) as store:
        turns = BoardTurns()
        keeper = LeaseKeeper(board, turns, lease_registry(board, LeaseSettings()))
        servicer = BoardServicer(
            board, store, principal_name, PrincipalLimits(), turns=turns, leases=keeper
        )
        manager = JobManager(servicer, keeper, store)
        job = manager.submit("local", "spsa", json.dumps(SHORT), "iris", 0.0)
        assert manager.in_memory() == [job.id]
        watched = list(manager.watch(job.id, 0))  # to its end
        assert watched[-1].state == "succeeded"
        assert manager.in_memory() == []
        again = manager.get(job.id, with_files=True)
        assert (again.state, again.events) == ("succeeded", len(watched))
        assert "summary.json" in again.files
        assert list(manager.watch(job.id, 0)) == watched
        assert [j.id for j in manager.recent()] == [job.id]
