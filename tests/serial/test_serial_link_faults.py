"""Board reset and unplug mid-operation: clear errors, the server stays up, health follows.

The virtual board runs on a real pty behind the fault shim; the serial driver
is served over gRPC exactly as ``sidra serve --board serial://...`` does.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidra.client import RemoteBoard, connect
from sidra.drivers import BoardReset, BoardUnavailable, open_board
from sidra.drivers.serial import SerialDriver
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import LinkServer, PtyServer, TcpServer, serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig
from sidra.server import SERVICE_NAME, create_server

PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=2, rows=32, cols=16)})
FAST = "timeout=0.05&retries=2&max_payload=256"  # 2 KiB image = 9 chunks
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
G = np.random.default_rng(4).uniform(1.0, 40.0, (32, 16)).astype(np.float32)


@dataclass
class Rig:
    server: LinkServer
    driver: SerialDriver
    remote: RemoteBoard
    health: health_pb2_grpc.HealthStub
    link: Path | None = None

    def status(self, service: str = "") -> int:
        request = health_pb2.HealthCheckRequest(service=service)
        return int(self.health.Check(request, timeout=5).status)

    def wait_for(self, status: int, within_s: float = 5.0) -> float:
        start = time.monotonic()
        while time.monotonic() - start < within_s:
            if self.status() == status and self.status(SERVICE_NAME) == status:
                return time.monotonic() - start
            time.sleep(0.02)
        raise AssertionError(f"health did not become {status} within {within_s} s")


def rig(tcp: bool = False, by_link: bool = False) -> Callable[[], Iterator[Rig]]:
    """A served board on a pty (or TCP). ``by_link``: the driver opens it through a link
    of its own (as udev's /dev/serial/by-id/... names an adapter), :attr:`Rig.link`."""

    def make() -> Iterator[Rig]:
        address = ("127.0.0.1", 0) if tcp else None
        with (
            serve_virtual_board(PROFILE, 1, faults=FaultConfig(), tcp=address) as server,
            tempfile.TemporaryDirectory() as links,
        ):
            link = Path(links) / "sidra-board" if by_link else None
            if link is not None:
                assert isinstance(server, PtyServer)
                link.symlink_to(server.path)
            url = f"serial://{link}" if link is not None else server.url
            with open_board(f"{url}?{FAST}") as driver:
                assert isinstance(driver, SerialDriver)
                grpc_server, port = create_server(driver, "127.0.0.1:0")
                grpc_server.start()
                try:
                    with (
                        connect(f"127.0.0.1:{port}") as remote,
                        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
                    ):
                        health = health_pb2_grpc.HealthStub(channel)
                        yield Rig(server, driver, remote, health, link)
                finally:
                    grpc_server.stop(grace=None)

    return make


pty_rig = pytest.fixture(rig())
tcp_rig = pytest.fixture(rig(tcp=True))
linked_pty_rig = pytest.fixture(rig(by_link=True))


def test_unplug_mid_program_then_replug(pty_rig: Rig) -> None:
    """The cable goes dead in the middle of a staged Program: the call fails UNAVAILABLE
    naming the board, health turns NOT_SERVING, and SERVING again once the cable is back;
    the board kept its state and the next Program works."""
    r = pty_rig
    r.remote.program(0, G)
    assert r.status() == SERVING
    shim = r.server.shim
    assert shim is not None
    shim.arm(unplug_in=4, unplug_s=float("inf"))  # during the image chunks
    with pytest.raises(BoardUnavailable, match=r"UNAVAILABLE: .*serial:///dev/pts/\d+.*down"):
        r.remote.program(1, G[::-1].copy())
    r.wait_for(NOT_SERVING)
    with pytest.raises(BoardUnavailable):  # fails fast while down, server still up
        r.remote.mvm(0, np.zeros((1, 32), np.float32))
    shim.replug()
    r.wait_for(SERVING)
    assert np.array_equal(r.remote.read_conductance(0).conductances, G)  # state survived
    r.remote.program(1, G)
    assert np.array_equal(r.remote.read_conductance(1).conductances, G)
    link = r.remote.stats().link  # the link counters reach gRPC clients
    assert link is not None
    assert link.up and link.timeouts > 0 and link.resyncs > 0 and link.exchanges > 10


def test_reset_mid_program_is_reported_and_link_recovers(pty_rig: Rig) -> None:
    """The board power-cycles in the middle of a staged Program: the call fails ABORTED
    (BoardReset) saying the state is lost; health stays SERVING (the link is fine); the
    next calls run on the fresh board, where nothing of the old state remains."""
    r = pty_rig
    r.remote.program(0, G)
    shim = r.server.shim
    assert shim is not None
    shim.arm(reset_in=3)
    with pytest.raises(BoardReset, match=r"ABORTED: .*restarted.*lost"):
        r.remote.program(1, G)
    assert r.status() == SERVING
    fresh = r.remote.read_conductance(0).conductances
    assert np.all(fresh == PROFILE.conductance.g_min_us)  # power-up state: the old G is gone
    assert r.remote.stats().cell_writes == 0
    r.remote.program(1, G)
    assert np.array_equal(r.remote.read_conductance(1).conductances, G)
    assert r.driver.link_stats().resets == 1


def test_reset_while_idle_is_reported_on_the_next_call(pty_rig: Rig) -> None:
    """A reset between calls announces itself (BOOT notice, new epoch): the next call
    raises BoardReset, the one after works."""
    r = pty_rig
    r.remote.program(0, G)
    r.server.reset_board()
    with pytest.raises(BoardReset):
        r.remote.mvm(0, np.zeros((1, 32), np.float32))
    assert r.remote.mvm(0, np.zeros((1, 32), np.float32)).currents.shape == (1, 16)


def test_a_reset_notice_is_kept_past_the_board_s_totals_for_the_next_array_call(
    pty_rig: Rig,
) -> None:
    """A viewer's totals (GET_STATS: ``sidra status``) depend on no cell: they neither
    fail nor take the notice, so the next call that uses the array still learns its
    state is lost (it read the fresh board's currents as if nothing had happened)."""
    r = pty_rig
    r.driver.program(0, G)
    r.server.reset_board()
    assert r.driver.stats().cell_writes == 0  # the fresh board's totals
    assert r.driver.stats().cell_writes == 0
    with pytest.raises(BoardReset, match=r"restarted \(boot counter .*are lost"):
        r.driver.mvm(0, np.zeros((1, 32), np.float32))
    assert r.driver.mvm(0, np.zeros((1, 32), np.float32)).currents.shape == (1, 16)


def test_pty_hangup_is_unavailable_and_not_serving(linked_pty_rig: Rig) -> None:
    """The pty disappears (USB adapter pulled, its by-id link with it): UNAVAILABLE, health
    NOT_SERVING for good. Opened through a link of its own: the kernel hands a freed
    /dev/pts number to the next pty opened, and a driver probing that path would find
    another test's board (which then saw this driver's frames)."""
    r = linked_pty_rig
    assert isinstance(r.server, PtyServer) and r.link is not None
    r.link.unlink()
    r.server.hangup()
    with pytest.raises(BoardUnavailable, match="UNAVAILABLE"):
        r.remote.mvm(0, np.zeros((1, 32), np.float32))
    r.wait_for(NOT_SERVING)
    time.sleep(1.0)  # probes keep failing: the device node is gone
    assert r.status() == NOT_SERVING


def test_tcp_disconnect_is_noticed_and_reconnected_while_idle(tcp_rig: Rig) -> None:
    """socket://: the board drops the connection while nobody calls; the watcher's probe
    notices (link down: NOT_SERVING), reconnects (link up: SERVING) and the board state is
    intact."""
    r = tcp_rig
    r.remote.program(0, G)
    transitions: list[bool] = []
    r.driver.add_link_listener(transitions.append)
    assert isinstance(r.server, TcpServer)
    r.server.disconnect()
    deadline = time.monotonic() + 5
    while transitions != [False, True] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert transitions == [False, True]
    assert r.driver.link_stats().reconnects == 1
    r.wait_for(SERVING)
    assert np.array_equal(r.remote.read_conductance(0).conductances, G)


def test_a_pty_number_another_pty_took_is_not_written_to() -> None:
    """The virtual board's process ends and the kernel gives its /dev/pts number to the
    next pty opened: the link, reopening the path, wrote HELLO frames into that one (once
    another test's terminal, which then never saw its end). It is refused, naming why, and
    nothing is written to it."""
    import os

    for _ in range(5):  # another process may take the freed number first: staged again
        with serve_virtual_board(PROFILE, 1) as server:
            assert isinstance(server, PtyServer)
            path = server.path
            driver = open_board(f"{server.url}?{FAST}")
        # The call meets the hang-up and the link lets go of the pty: its number is free.
        with pytest.raises(BoardUnavailable):
            driver.mvm(0, np.zeros((1, 32), np.float32))
        time.sleep(0.05)  # a node made a clock tick later: another pty, as in use
        leader, follower = os.openpty()
        if os.ttyname(follower) == path:
            break
        driver.close()
        os.close(leader)
        os.close(follower)
    else:
        raise AssertionError(f"{path} was taken by another process five times over")
    try:
        os.set_blocking(leader, False)
        with pytest.raises(BoardUnavailable, match=f"{path} is another pseudo-terminal now"):
            driver.mvm(0, np.zeros((1, 32), np.float32))
        with pytest.raises(BlockingIOError):  # not a byte written to it
            os.read(leader, 4096)
    finally:
        driver.close()
        os.close(leader)
        os.close(follower)


def test_a_terminal_is_never_opened_as_a_board() -> None:
    """A serial URL naming a pty that is a session's controlling terminal (a shell's, an
    ssh login's: a typo in the number) is refused before a byte is written to it."""
    import os
    import subprocess
    import sys

    leader, follower = os.openpty()
    path = os.ttyname(follower)
    # A new session whose leader opens the pty without O_NOCTTY: its controlling terminal.
    shell = subprocess.Popen(
        [sys.executable, "-c", f"import os, sys; os.open({path!r}, os.O_RDWR); "
         "print('ready', flush=True); sys.stdin.read()"],
        start_new_session=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert shell.stdout is not None and shell.stdout.readline().strip() == "ready"
        os.set_blocking(leader, False)
        with pytest.raises(BoardUnavailable, match=f"{path} is a terminal"):
            open_board(f"serial://{path}?{FAST}")
        with pytest.raises(BlockingIOError):
            os.read(leader, 4096)
    finally:
        shell.communicate("")
        os.close(leader)
        os.close(follower)


def test_a_line_that_damages_every_answer_is_told_from_a_silent_one() -> None:
    """A board behind a line that damages every frame (on a UART: another line rate) gave
    the same error as a board that is not there; the answers that came damaged are
    counted in it, with the line rate to check."""
    with serve_virtual_board(PROFILE, 1, faults=FaultConfig(ber=0.05)) as server:
        with pytest.raises(BoardUnavailable, match="answered but damaged on the line") as e:
            open_board(f"{server.url}?timeout=0.05&retries=2")
        assert "?baud=" in str(e.value)


def test_a_tcp_board_another_host_holds_says_so() -> None:
    """A second host on a TCP board that serves one at a time waits unanswered behind the
    first: it said only that the link was down, as for a board not there."""
    with serve_virtual_board(PROFILE, 1, tcp=("127.0.0.1", 0)) as server:
        first = open_board(f"{server.url}?{FAST}")
        try:
            with pytest.raises(BoardUnavailable, match="answers one host at a time"):
                open_board(f"{server.url}?timeout=0.05&retries=1")
        finally:
            first.close()


def _link_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sidra.server.link_watch"]


def _wait_for_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(_link_lines(caplog)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return _link_lines(caplog)


def test_the_log_names_the_board_why_its_link_went_and_whether_it_came_back_restarted(
    pty_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """The admin reading the log after a board was pulled saw `board link down: the
    board; health NOT_SERVING` and `board link up: the board answers again`: no URL, no
    serial number, no cause, and nothing of a board that came back restarted with its
    cells lost (what `--restore` is for)."""
    caplog.set_level("WARNING", logger="sidra.server.link_watch")
    r = pty_rig
    r.remote.program(0, G)
    url, serial = r.server.url, r.driver.info.serial_number
    shim = r.server.shim
    assert shim is not None
    shim.arm(unplug_in=1, unplug_s=float("inf"))
    with pytest.raises(BoardUnavailable):
        r.remote.program(1, G)
    r.wait_for(NOT_SERVING)
    shim.replug()
    r.wait_for(SERVING)
    down, up = _wait_for_lines(caplog, 2)
    assert down.startswith(f"board link down: {url} (serial number {serial}): ")
    device = url.removeprefix("serial://")
    assert "no valid response" in down and down.endswith(
        f"health NOT_SERVING until it answers again; retrying {device} every 0.5 s"
    )
    assert up.startswith(f"board link up: {url} (serial number {serial}) answers again")
    assert up.endswith(f"the same instance {r.driver.instance_id}, its cells as they were")

    before = r.driver.instance_id
    shim.arm(unplug_in=1, unplug_s=float("inf"))
    with pytest.raises(BoardUnavailable):
        r.remote.program(1, G)
    r.wait_for(NOT_SERVING)
    r.server.reset_board()  # power-cycled while its cable was out
    shim.replug()
    r.wait_for(SERVING)
    *_, again = _wait_for_lines(caplog, 4)
    assert f"it restarted meanwhile (instance {before} -> {r.driver.instance_id})" in again
    assert "sidra serve --restore" in again
