"""Metrics of what the service runs and keeps, scraped over HTTP: calls queued for the
board and how long they waited, running and queued training jobs and how long the
queued ones waited, jobs ended by final state, and the state store's size on disk."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from observability_support import IDEAL_URL, sample, served_with_metrics

from sidra.client import connect
from sidra.drivers import open_board
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig
from sidra.server.state import StateStore

# On tile 0 both: the short job queues for the endless one's tile.
SHORT = {"steps": 12, "eval_every": 6, "batch_size": 16, "tiles": [0]}
ENDLESS = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16, "tiles": [0]}
STATES = ("succeeded", "failed", "cancelled", "interrupted")


def _on_disk(path: Path) -> int:
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return sum(file.stat().st_size for file in files if file.exists())


def test_calls_queued_behind_a_busy_board_raise_the_gauge_and_their_waits_are_observed() -> None:
    """The board is held by a call it does not answer (a serial board whose cable is out:
    the call retries, its turn held, for as long as the URL lets it), and two more calls
    queue behind it: the gauge shows them while they wait, and once the cable is back
    and they have run, each one's wait is in the histogram."""
    waiting = sample("sidra_board_calls_waiting")
    waits, waited_s = (
        sample("sidra_board_wait_seconds_count"),
        sample("sidra_board_wait_seconds_sum"),
    )
    profile = preset("ideal").model_copy(update={"geometry": Geometry(tiles=1, rows=8, cols=8)})
    voltages = np.zeros((1, 8), np.float32)
    # Up to 51 attempts of two rounds, each waiting at most 0.5 s: the board stays held
    # until the cable is back, and is answered at most 0.5 s after.
    with (
        serve_virtual_board(profile, 1, faults=FaultConfig()) as board_server,
        open_board(f"{board_server.url}?timeout=0.5&retries=50") as driver,
        served_with_metrics(driver) as served,
        connect(f"127.0.0.1:{served.port}") as client,
    ):
        shim = board_server.shim
        assert shim is not None
        client.mvm(0, voltages)
        first = served.scrape()
        assert first[waiting] == 0 and first[waits] == 0  # a free board: nobody queued
        shim.unplug(float("inf"))
        with ThreadPoolExecutor(max_workers=3) as pool:
            calls = [pool.submit(client.mvm, 0, voltages) for _ in range(3)]
            served.wait_for(waiting, 2)  # one call holds the board, two wait for it
            shim.replug()
            for call in calls:
                assert call.result(timeout=60).currents.shape == (1, 8)
        after = served.scrape()
    assert after[waiting] == 0
    assert after[waits] == 2 and after[waited_s] > 0


def test_jobs_are_counted_as_they_run_and_end(tmp_path: Path) -> None:
    running, queued = sample("sidra_jobs_running"), sample("sidra_jobs_queued")
    ended = {state: sample("sidra_jobs_ended_total", state=state) for state in STATES}
    with (
        open_board(IDEAL_URL) as board,
        StateStore(tmp_path / "state.sqlite3") as store,
        served_with_metrics(board, store=store) as served,
        connect(f"127.0.0.1:{served.port}") as client,
    ):
        first = served.scrape()
        assert first[running] == first[queued] == 0
        assert [first[ended[state]] for state in STATES] == [0, 0, 0, 0]  # there from the start
        job = client.jobs.submit("spsa", ENDLESS, dataset="iris")
        served.wait_for(running, 1)
        waiting = client.jobs.submit("spsa", SHORT, dataset="iris", queue=True)  # same tile
        assert served.scrape()[queued] == 1
        client.jobs.cancel(job.job_id)
        client.jobs.wait(job.job_id)
        client.jobs.wait(waiting.job_id)
        last = served.scrape()
        assert last[running] == last[queued] == 0
        assert last[sample("sidra_job_queue_wait_seconds_count")] == 1  # it waited, once
        assert 0 < last[sample("sidra_job_queue_wait_seconds_sum")] < 60
        assert [last[ended[state]] for state in STATES] == [1, 0, 1, 0]


def test_the_store_s_size_is_its_files_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    size = sample("sidra_state_store_size_bytes")
    with (
        open_board(IDEAL_URL) as board,
        StateStore(path) as store,
        served_with_metrics(board, store=store) as served,
        connect(f"127.0.0.1:{served.port}") as client,
    ):
        before = served.scrape()[size]
        assert before == _on_disk(path) > 0
        client.jobs.wait(client.jobs.submit("spsa", SHORT, dataset="iris").job_id)
        after = served.scrape()[size]
        assert after == _on_disk(path) > before  # the job's record and events were written


def test_deployments_and_those_written_over_are_counted(tmp_path: Path) -> None:
    from sidra.drivers import Region
    from sidra.drivers.requests import ProgramRequest

    kept, rewritten = sample("sidra_deployments"), sample("sidra_deployments_rewritten")
    layer = Region(0, 0, 8, 4)
    with (
        open_board(IDEAL_URL) as board,
        StateStore(tmp_path / "state.sqlite3") as store,
        served_with_metrics(board, store=store) as served,
        connect(f"127.0.0.1:{served.port}") as client,
    ):
        first = served.scrape()
        assert first[kept] == first[rewritten] == 0
        for tile, name in ((0, "a"), (1, "b")):
            client.run(ProgramRequest(tile, np.full((8, 4), 20.0, np.float32)))
            client.deployments.add(name, b"PK\x03\x04 a model", [(tile, layer)])
        assert (served.scrape()[kept], served.scrape()[rewritten]) == (2, 0)
        client.run(ProgramRequest(1, np.full((1, 1), 30.0, np.float32), 7, 3))
        assert (served.scrape()[kept], served.scrape()[rewritten]) == (2, 1)
        client.deployments.delete("b")
        assert (served.scrape()[kept], served.scrape()[rewritten]) == (1, 0)
        # A check's figures, by deployment, until it is forgotten.
        correlation = sample("sidra_deployment_correlation", deployment="a")
        rms = sample("sidra_deployment_rms_deviation_microsiemens", deployment="a")
        when = sample("sidra_deployment_checked_timestamp_seconds", deployment="a")
        assert correlation not in served.scrape()
        checked = client.deployments.check("a")
        after = served.scrape()
        assert (after[correlation], after[rms]) == (checked.correlation, checked.rms_deviation_us)
        assert after[when] == checked.checked_unix_s
        noise = sample("sidra_deployment_read_noise_microsiemens", deployment="a")
        assert noise not in after  # one read measures no read noise
        board.program(1, np.full((8, 4), 20.0, np.float32))  # beside it: still intact
        repeated = client.deployments.check("a", read_repeats=3)
        assert served.scrape()[noise] == repeated.read_noise_us == 0.0  # the ideal board
        client.deployments.delete("a")
        assert correlation not in served.scrape()


def test_the_latest_checks_outlive_the_server(tmp_path: Path) -> None:
    """The store keeps each check: a server started again shows the figures of the latest
    check before it (not due: none made since), and the server's own check once due."""
    from sidra.drivers import Region
    from sidra.drivers.requests import ProgramRequest

    correlation = sample("sidra_deployment_correlation", deployment="a")
    when = sample("sidra_deployment_checked_timestamp_seconds", deployment="a")
    with open_board(IDEAL_URL) as board, StateStore(tmp_path / "state.sqlite3") as store:
        with (
            served_with_metrics(board, store=store) as served,
            connect(f"127.0.0.1:{served.port}") as client,
        ):
            client.run(ProgramRequest(0, np.full((8, 4), 20.0, np.float32)))
            client.deployments.add("a", b"PK\x03\x04 a model", [(0, Region(0, 0, 8, 4))])
            checked = client.deployments.check("a")
        with served_with_metrics(board, store=store, deployment_check_every_s=3600.0) as served:
            again = served.scrape()
            assert (again[correlation], again[when]) == (
                checked.correlation,
                checked.checked_unix_s,
            )
        with served_with_metrics(board, store=store, deployment_check_every_s=1e-3) as served:
            deadline = time.monotonic() + 30  # due: the next scrapes show the server's check
            while served.scrape()[when] == checked.checked_unix_s:
                assert time.monotonic() < deadline
                time.sleep(0.05)


def test_a_scrape_checks_a_deployment_once_its_latest_check_is_due(tmp_path: Path) -> None:
    """With deployment_check_every_s the scrape itself reads the cells (as the server)
    when the latest check is older: the figure appears without anyone asking, stays
    until due again, follows cells written around the server, and goes once the
    deployment is not intact."""
    from sidra.drivers import Region
    from sidra.drivers.requests import ProgramRequest

    correlation = sample("sidra_deployment_correlation", deployment="a")
    when = sample("sidra_deployment_checked_timestamp_seconds", deployment="a")
    rng = np.random.default_rng(1)
    targets = rng.uniform(5.0, 35.0, (8, 4)).astype(np.float32)
    with (
        open_board(IDEAL_URL) as board,
        StateStore(tmp_path / "state.sqlite3") as store,
        served_with_metrics(board, store=store, deployment_check_every_s=0.5) as served,
        connect(f"127.0.0.1:{served.port}") as client,
    ):
        client.run(ProgramRequest(0, targets))
        client.deployments.add("a", b"PK\x03\x04 a model", [(0, Region(0, 0, 8, 4))])
        served.wait_for(correlation, 1.0)  # the ideal board holds its targets exactly
        first = served.scrape()
        assert served.scrape()[when] == first[when]  # not due yet: the same check
        board.program(0, rng.uniform(5.0, 35.0, (8, 4)).astype(np.float32))  # around it
        deadline = time.monotonic() + 30
        while served.scrape()[when] == first[when]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert abs(served.scrape()[correlation]) < 0.5
        client.run(ProgramRequest(0, np.full((1, 1), 20.0, np.float32)))  # through it
        assert correlation not in served.scrape()


def test_a_refused_scrape_check_waits_as_long_as_a_made_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A tile leased with exclusive reads refuses the server's own check: the scrape logs
    it once, keeps no figure, and does not ask again until the interval has passed."""
    from sidra.drivers import Region
    from sidra.drivers.requests import ProgramRequest
    from sidra.server.settings import LeaseSettings

    correlation = sample("sidra_deployment_correlation", deployment="a")
    with (
        open_board(IDEAL_URL) as board,
        StateStore(tmp_path / "state.sqlite3") as store,
        served_with_metrics(
            board, store=store, deployment_check_every_s=3600.0,
            leases=LeaseSettings(reads="exclusive"),
        ) as served,
        connect(f"127.0.0.1:{served.port}") as client,
        connect(f"127.0.0.1:{served.port}") as holder,
    ):  # fmt: skip
        client.run(ProgramRequest(0, np.full((8, 4), 20.0, np.float32)))
        client.deployments.add("a", b"PK\x03\x04 a model", [(0, Region(0, 0, 8, 4))])
        with holder.session(label="bench") as session, session.lease([0]):
            caplog.set_level("INFO", logger="sidra.server.deployments")

            def refused() -> list[str]:
                return [m for m in caplog.messages if "deployment a not checked" in m]

            deadline = time.monotonic() + 30
            while not refused():  # the round runs beside the scrape, not in it
                assert correlation not in served.scrape() and time.monotonic() < deadline
                time.sleep(0.05)
            for _ in range(3):
                assert correlation not in served.scrape()
            time.sleep(0.2)  # time for a round those scrapes might have started
        assert len(refused()) == 1 and "leased" in refused()[0]
