"""Faults of a PCIe board, each ending in a clear typed error or the right result.

Real processes: the virtual PCIe board runs in its own process behind a real
mmapped file and injects its faults itself (``--faults``), or is killed, or has
its file removed. The gRPC server in front of the driver stays up, and health
follows the board: NOT_SERVING while it is gone, SERVING when it is back.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pcie_support import FAST_S, board, driver

from sidra.client import connect
from sidra.drivers.errors import BoardFault, BoardReset, BoardUnavailable, DeadlineExceeded
from sidra.drivers.pcie.driver import PcieDriver
from sidra.server import create_server
from sidra.server.state import StateStore

G = np.random.default_rng(5).uniform(1.0, 40.0, (16, 16)).astype(np.float32)
V = np.full((2, 256), 0.1, np.float32)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _mvm_ok(d: PcieDriver) -> None:
    """A call that works and gives the exact ideal answer on whatever the array holds."""
    g = d.read_conductance(0).conductances
    assert np.allclose(d.mvm(0, V).currents, V @ g, rtol=1e-5)


def test_a_completion_that_never_comes_is_a_deadline_then_the_board_works() -> None:
    """Command 3 hangs: DeadlineExceeded after modeled time + margin; the driver aborts
    it with a ring reset, the link stays up, and the next call is right."""
    with board("hang=3") as served, driver(served) as d:
        d.program(0, G)  # command 2
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="answered a ring reset"):
            d.mvm(0, V)
        assert FAST_S <= time.monotonic() - start < FAST_S + 2.0
        assert d.link_up
        _mvm_ok(d)


def test_an_error_status_is_the_typed_exception() -> None:
    """Command 2 answers INTERNAL: BoardFault naming the operation and the board's text."""
    with board("error=2") as served, driver(served) as d:
        with pytest.raises(BoardFault, match=r"MVM failed on the board \(INTERNAL\): injected"):
            d.mvm(0, V)
        _mvm_ok(d)


def test_a_board_reset_is_reported_once_and_the_state_is_lost() -> None:
    """Command 3 power-cycles the board: BoardReset saying so; the next call runs on the
    new boot, whose array is back at power-up (g_min everywhere)."""
    with board("reset_after=3") as served, driver(served) as d:
        d.program(0, G)
        with pytest.raises(BoardReset, match="restarted .boot count"):
            d.mvm(0, V)
        g = d.read_conductance(0).conductances
        assert np.all(g == d.info.g_min_us)
        _mvm_ok(d)


def test_a_reset_notice_is_kept_past_the_board_s_totals_for_the_next_array_call() -> None:
    """Command 3, a viewer's GET_STATS (``sidra status``), power-cycles the board: the
    totals are the new boot's and the notice waits for the next call that uses the array
    (it read the fresh board's currents as if nothing had happened)."""
    with board("reset_after=3") as served, driver(served) as d:
        d.program(0, G)
        assert d.stats().cell_writes == 0  # the fresh board's totals, not an error
        with pytest.raises(BoardReset, match="restarted .boot count"):
            d.mvm(0, V)
        assert np.all(d.read_conductance(0).conductances == d.info.g_min_us)


def test_the_board_process_killed_mid_command() -> None:
    """The device dies while it holds a command: DeadlineExceeded saying the device does
    not answer; the link is down and later calls are BoardUnavailable, not hangs."""
    with board("hang=2") as served, driver(served) as d:
        threading.Timer(0.1, served.kill).start()
        with pytest.raises(DeadlineExceeded, match="does not answer at all"):
            d.mvm(0, V)
        assert not d.link_up
        with pytest.raises(BoardUnavailable, match="does not answer"):
            d.mvm(0, V)


def test_surprise_removal_mid_session() -> None:
    """After 3 commands the board is removed (registers read 0xFFFFFFFF, file gone): the
    command in flight ends in BoardUnavailable, and so does every call after it."""
    with board("remove_after=3") as served, driver(served) as d:
        _mvm_ok(d)
        with pytest.raises(BoardUnavailable, match="0xFFFFFFFF|gone"):
            d.mvm(0, V)
        assert not d.link_up
        with pytest.raises(BoardUnavailable, match="no such BAR file"):
            d.mvm(0, V)


def test_the_file_removed_under_a_running_board() -> None:
    with board() as served, driver(served) as d:
        _mvm_ok(d)
        os.unlink(served.path)
        with pytest.raises(BoardUnavailable, match="gone"):
            d.mvm(0, V)
        assert not d.link_up


@contextmanager
def _grpc_health(
    d: PcieDriver, store: StateStore | None = None
) -> Iterator[tuple[health_pb2_grpc.HealthStub, str]]:
    """A gRPC server of ``d`` on loopback (with ``store``: jobs too), its health stub
    and its address."""
    server, port = create_server(d, "127.0.0.1:0", store=store)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield health_pb2_grpc.HealthStub(channel), f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait()


def _wait_for(health: health_pb2_grpc.HealthStub, status: int, within_s: float = 10.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"health did not become {status} within {within_s} s")


@contextmanager
def _device(path: str) -> Iterator[subprocess.Popen[str]]:
    """A virtual PCIe board started the way a user does, at ``path``; stopped (if a test
    has not killed it) and its pipe closed on leaving."""
    argv = [sys.executable, "-m", "sidra.cli", "board", "serve", "--pcie-file", path]
    process = subprocess.Popen([*argv, "--preset", "ideal"], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == f"pcie+file://{path}"
        yield process
    finally:
        process.terminate()  # nothing once it has been killed and waited for
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _pull(device: subprocess.Popen[str], path: str) -> None:
    """Kills the board process and removes its file: a killed board leaves its file, and
    the bus forgets the device."""
    device.kill()
    device.wait()
    os.unlink(path)


def _driver_of(path: str) -> PcieDriver:
    return PcieDriver.from_url(urlsplit(f"pcie+file://{path}?timeout={FAST_S}"))


def test_grpc_server_stays_up_health_follows_the_board(
    tmp_path: os.PathLike[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Board killed: the server answers UNAVAILABLE, health NOT_SERVING; a new board at
    the same path: health SERVING, a viewer's totals (``sidra status``) work, the first
    call that uses the array says the board was reset, then calls work again. The
    server process never stops, and its log says when the link went and came back."""
    caplog.set_level(logging.WARNING, logger="sidra.server.link_watch")
    path = os.path.join(tmp_path, "bar0")
    with (
        _device(path) as first,
        _driver_of(path) as d,
        _grpc_health(d) as (health, address),
        connect(address) as remote,
    ):
        _wait_for(health, SERVING)
        remote.program(0, G)
        _pull(first, path)
        _wait_for(health, NOT_SERVING)
        with pytest.raises(BoardUnavailable):
            remote.mvm(0, V)
        with _device(path):
            _wait_for(health, SERVING)
            with connect(address) as viewer:
                assert viewer.stats().cell_writes == 0  # the new boot's totals, no error
                with pytest.raises(BoardReset, match="restarted while the link was down"):
                    viewer.mvm(0, V)  # not the old instance's client: the server says so
            with pytest.raises(BoardReset, match="board instance changed"):
                remote.mvm(0, V)  # the client that saw the old boot learns it by the id
            assert remote.mvm(0, V).currents.shape == (2, 256)
    said = [r.getMessage() for r in caplog.records if r.name == "sidra.server.link_watch"]
    # Why the link went (the error the call that met it got), as a serial board's says.
    down = [m for m in said if m.startswith("board link down: pcie+file://")]
    assert down and re.search(r"\(serial number [^)]+\): \w+: .+; health NOT_SERVING", down[0])
    assert any(m.startswith("board link up: pcie+file://") for m in said), said


def test_a_job_whose_board_is_pulled_mid_run_fails_naming_it_and_frees_its_tiles(
    tmp_path: os.PathLike[str],
) -> None:
    """A training job runs inside the server on a PCIe board whose process is killed
    mid-run: the job ends failed, its error naming the board that went away, its lease
    ends, the server keeps answering (health NOT_SERVING); a board back at the same
    path takes the next job, which logs the restart and runs to its end."""
    path = os.path.join(tmp_path, "bar0")
    endless = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16, "tiles": [1]}
    short = {"steps": 4, "eval_every": 4, "batch_size": 16, "tiles": [1]}
    with (
        _device(path) as first,
        _driver_of(path) as d,
        StateStore(os.path.join(tmp_path, "state.sqlite3")) as store,
        _grpc_health(d, store) as (health, address),
        connect(address) as remote,
    ):
        job = remote.jobs.submit("spsa", endless, dataset="iris")
        for event in remote.jobs.watch(job.job_id):
            if event.kind == "progress":  # it is training: pull the board
                break
        _pull(first, path)
        ended = remote.jobs.wait(job.job_id)
        assert ended.state == "failed"
        assert "BoardUnavailable" in ended.error and path in ended.error
        assert remote.leases() == []
        _wait_for(health, NOT_SERVING)
        with _device(path):
            _wait_for(health, SERVING)
            again = remote.jobs.submit("spsa", short, dataset="iris")
            done = remote.jobs.wait(again.job_id)
            assert done.state == "succeeded", done.error
            said = [e.message for e in remote.jobs.watch(again.job_id)]
            assert any("restarted before this job began" in m for m in said)


def test_a_health_check_that_fails_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A server's idle GET_STATS met the injected hang and left no trace while later calls
    worked: the failure is logged, once per distinct error, and the board still works."""
    with board("hang=2") as served, driver(served) as d:
        with caplog.at_level(logging.WARNING, logger="sidra.drivers.pcie.driver"):
            d.probe_link()  # command 2: never answered
            d.probe_link()  # answered
        failed = [r for r in caplog.records if "health check (GET_STATS) failed" in r.message]
        assert len(failed) == 1 and "DeadlineExceeded" in failed[0].message
        _mvm_ok(d)
