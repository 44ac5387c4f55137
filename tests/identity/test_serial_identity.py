"""A serial board is a board, not a device path.

The virtual board firmware on real pseudo-terminals, driven by the real serial
driver: a driver opened by path refuses another board that turns up at that
path (one HELLO, then nothing), and a driver opened by serial number finds its
board again on a new pty. Serial numbers are random per run (``EMU-<model>-<seed>``),
so a board another test process serves is never taken for ours.
"""

from __future__ import annotations

import logging
import os
import pty
import secrets
import select
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidra.client import connect
from sidra.drivers import BoardReset, BoardUnavailable, InvalidArgument, open_board
from sidra.drivers.serial import SerialDriver, finder
from sidra.drivers.serial.finder import IdentityMismatch, pseudo_terminals
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import PtyServer, TcpServer, VirtualBoard
from sidra.server import SERVICE_NAME, create_server

PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=2, rows=32, cols=16)})
G = np.random.default_rng(9).uniform(1.0, 40.0, (32, 16)).astype(np.float32)
V = np.full((1, 32), 0.1, np.float32)
OPTIONS = "timeout=0.5&retries=1"  # generous: a HELLO retried would be a second frame


def fresh_board() -> VirtualBoard:
    """A virtual board whose serial number no other board on this machine has."""
    return VirtualBoard(PROFILE, seed=secrets.randbits(40))


def serial_of(board: VirtualBoard) -> str:
    return board.driver.info.serial_number


_OURS: set[str] = set()
"""The ptys this test serves boards on: the only ones its searches may ask."""


@pytest.fixture(autouse=True)
def _search_only_our_ptys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A search by serial number says HELLO only to the ptys this test serves boards on.
    Other test processes drive boards on ptys of their own, and a host of theirs that
    opens its pty between the search's count of its openers and the HELLO could read the
    answer meant for the search (the finder counts again right before the HELLO, which
    narrows that window to microseconds, not to nothing)."""
    everything = finder.pseudo_terminals
    monkeypatch.setattr(finder, "pseudo_terminals", lambda: [p for p in everything() if p in _OURS])
    yield
    _OURS.clear()


def serve(board: VirtualBoard) -> PtyServer:
    """``board`` on a new pty (the same board object: its state goes along)."""
    server = PtyServer(board).start()
    _OURS.add(server.path)
    return server


def open_serial(url: str) -> SerialDriver:
    driver = open_board(url)
    assert isinstance(driver, SerialDriver)
    return driver


def lose_the_port(driver: SerialDriver) -> None:
    """The first call after the board's pty vanished finds its port dead."""
    with pytest.raises(BoardUnavailable):
        driver.mvm(0, V)
    assert not driver.link_up


def test_another_board_at_the_old_path_is_refused_then_ours_is_back(tmp_path: Path) -> None:
    """A by-id style path leads to board A; A goes, the path now leads to board B: the
    driver refuses B naming both serial numbers, stays down, and B gets one HELLO and
    nothing more, however often the driver retries. When the path leads to A again
    (A kept its state), calls work and the instance is the same.

    B's pty is held open a second time so that a search by another test process on
    this machine passes it by (a pty open twice is in use) and B's count stays ours."""
    ours, other = fresh_board(), fresh_board()
    by_id = tmp_path / "usb-SIDRA_Y1-if00"
    first = serve(ours)
    by_id.symlink_to(first.path)
    driver = open_serial(f"serial://{by_id}?{OPTIONS}")
    try:
        driver.program(0, G)
        instance = driver.instance_id
        first.hangup()
        squatter = serve(other)
        guard = os.open(squatter.path, os.O_RDWR | os.O_NOCTTY)  # see below
        by_id.unlink()
        by_id.symlink_to(squatter.path)
        lose_the_port(driver)

        with pytest.raises(IdentityMismatch) as refused:
            driver.mvm(0, V)
        assert (refused.value.expected, refused.value.found) == (serial_of(ours), serial_of(other))
        assert serial_of(ours) in str(refused.value) and serial_of(other) in str(refused.value)
        assert refused.value.device == str(by_id)
        assert not driver.link_up
        heard = dict(other.counters)
        assert heard["rx_frames"] == 1 and heard["executed"] == 0  # one HELLO, no command

        for _ in range(3):  # asked again, by calls and by a link watcher's probe
            with pytest.raises(IdentityMismatch):
                driver.read_conductance(0)
            assert driver.probe_link() is False
        assert other.counters == heard  # not one more byte
        assert np.all(other.driver.read_conductance(0).conductances == PROFILE.conductance.g_min_us)

        back = serve(ours)
        by_id.unlink()
        by_id.symlink_to(back.path)
        assert np.array_equal(driver.read_conductance(0).conductances, G)
        assert driver.link_up and driver.instance_id == instance
        os.close(guard)
        squatter.stop()
        back.stop()
    finally:
        driver.close()


def test_another_board_at_a_socket_address_is_refused_and_the_link_stays_down() -> None:
    """A board on a TCP address gives way to another on the same address: health went
    SERVING and NOT_SERVING every 0.8 s, for the link went up on the HELLO answer before
    its identity check, and an address (no device node) kept no verdict, so every probe
    said HELLO again. The link stays down, and the other board hears HELLO once in
    SILENT_RETRY_S however often it is probed."""
    ours, other = fresh_board(), fresh_board()
    first = TcpServer(ours).start()
    driver = open_serial(f"{first.url}?{OPTIONS}")
    changes: list[bool] = []
    driver.add_link_listener(changes.append)
    try:
        driver.program(0, G)
        port = first.port
        first.stop()
        squatter = TcpServer(other, port=port).start()
        lose_the_port(driver)
        with pytest.raises(IdentityMismatch):
            driver.mvm(0, V)
        heard = dict(other.counters)
        assert heard["rx_frames"] == 1 and heard["executed"] == 0  # one HELLO, no command
        for _ in range(5):  # a link watcher's probes, and calls
            assert driver.probe_link() is False
            with pytest.raises(IdentityMismatch):
                driver.read_conductance(0)
        assert other.counters == heard
        assert True not in changes  # never up in between: health never SERVING
        squatter.stop()
    finally:
        driver.close()


def test_a_board_opened_by_serial_number_is_found_on_its_new_pty() -> None:
    """The board re-enumerates on another pty (no power loss): the driver, opened by
    serial number, searches the ptys, passes over another board, finds ours, and the
    state and instance are as they were."""
    ours, other = fresh_board(), fresh_board()
    decoy, first = serve(other), serve(ours)
    driver = open_serial(f"serial://?serial_number={serial_of(ours)}&search_ptys=1&{OPTIONS}")
    try:
        assert driver.device == first.path
        driver.program(0, G)
        instance = driver.instance_id
        second = serve(ours)  # the new node exists before the old one is gone: a new path
        first.hangup()
        lose_the_port(driver)

        assert np.array_equal(driver.read_conductance(0).conductances, G)
        assert driver.device == second.path != first.path
        assert driver.link_up and driver.instance_id == instance
        assert driver.link_stats().resets == 0 and driver.link_stats().reconnects == 1
        assert other.counters["executed"] == 0  # the decoy was asked HELLO, nothing else
        second.stop()
        decoy.stop()
    finally:
        driver.close()


def test_a_board_that_restarted_elsewhere_is_found_and_its_reset_reported_once() -> None:
    """The board power-cycles and comes back on a new pty: found by serial number, the
    next call raises BoardReset once, the instance id names the new boot, the state is
    the power-up state."""
    ours = fresh_board()
    first = serve(ours)
    driver = open_serial(f"serial://?serial_number={serial_of(ours)}&search_ptys=1&{OPTIONS}")
    try:
        driver.program(0, G)
        instance = driver.instance_id
        first.hangup()
        ours.reset()  # power lost while unplugged
        second = serve(ours)
        lose_the_port(driver)
        with pytest.raises(BoardReset, match="restarted while the link was down"):
            driver.mvm(0, V)
        assert driver.instance_id != instance
        assert driver.instance_id == f"{serial_of(ours)}/boot-{ours.boot_counter}"
        assert np.all(driver.read_conductance(0).conductances == PROFILE.conductance.g_min_us)
        second.stop()
    finally:
        driver.close()


def test_no_board_with_that_serial_number_names_what_it_found() -> None:
    other = fresh_board()
    server = serve(other)
    try:
        wanted = f"EMU-missing-{secrets.token_hex(4)}"
        with pytest.raises(
            BoardUnavailable, match=f"no serial port answers HELLO as .*{wanted}"
        ) as e:
            open_board(f"serial://?serial_number={wanted}&search_ptys=1&timeout=0.2&retries=0")
        assert f"{server.path} is '{serial_of(other)}'" in str(e.value)
        assert other.counters["executed"] == 0
    finally:
        server.stop()


def test_a_search_that_left_ptys_out_says_how_to_have_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At the bench, ``serial://?serial_number=`` of a virtual board finds nothing unless
    ptys are searched: the error says so and names the option (it said 'pseudo-terminals
    not searched', and not how). pyserial's port list is emptied: no HELLO goes to this
    machine's real serial ports."""
    monkeypatch.setattr(finder.list_ports, "comports", list)
    other = fresh_board()
    server = serve(other)
    try:
        wanted = f"EMU-missing-{secrets.token_hex(4)}"
        with pytest.raises(BoardUnavailable) as e:
            open_board(f"serial://{server.path}?serial_number={wanted}&timeout=0.2&retries=0")
        assert f"{server.path} is '{serial_of(other)}'" in str(e.value)
        assert "pseudo-terminals not searched: add search_ptys=1 to the URL" in str(e.value)
    finally:
        server.stop()


def test_a_pty_a_host_opened_after_the_listing_is_not_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The list of candidates is old by the time the search reaches a pty: a host that
    opened it meanwhile is talking to that board, so the search counts the pty's openers
    again, its own end open, just before the HELLO, and passes over it without a byte."""
    board = fresh_board()
    server = serve(board)
    host = os.open(server.path, os.O_RDWR | os.O_NOCTTY)  # a host, opened after the listing
    monkeypatch.setattr(finder, "pseudo_terminals", lambda: [server.path])  # the old list
    try:
        wanted = serial_of(board)
        with pytest.raises(BoardUnavailable, match="no serial port answers HELLO") as e:
            open_board(f"serial://?serial_number={wanted}&search_ptys=1&timeout=0.2&retries=0")
        assert server.path not in str(e.value)  # not asked (other serial ports may be)
        assert board.counters["rx_bytes"] == 0
    finally:
        os.close(host)
        server.stop()


def test_the_search_never_touches_a_terminal_or_a_pty_a_host_holds() -> None:
    """A pty that is someone's controlling terminal (a shell) is never a candidate; a
    board's pty is, until a host opens it."""
    with shell_terminal() as terminal:
        assert terminal not in pseudo_terminals()
    board = fresh_board()
    server = serve(board)
    try:
        assert server.path in pseudo_terminals()
        with open_board(server.url):
            assert server.path not in pseudo_terminals()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("serial://", "url"),
        ("serial:///dev/ttyUSB0?search_ptys=1", "url search_ptys"),
        ("serial://?serial_number=", "url serial_number"),
        ("serial://?serial_number=" + "x" * 256, "url serial_number"),
        ("socket://127.0.0.1:1?search_ptys=1", "board url option"),
        ("serial://dev/pts/1", "url"),  # two slashes: opened dev/pts/1 in this folder
    ],
)
def test_url_mistakes_name_the_option(url: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        open_board(url)
    assert caught.value.field == field
    if url.startswith("serial://dev"):
        assert caught.value.value == url and "three slashes" in str(caught.value)


# -- a shell's terminal --------------------------------------------------------------------


@contextmanager
def shell_terminal() -> Iterator[str]:
    """A child process in a session of its own whose controlling terminal is a fresh pty
    (what a shell in a terminal window is); yields the pty's path."""
    script = "import os, time; print(os.ttyname(0), flush=True); time.sleep(30)"
    pid, master = pty.fork()
    if pid == 0:  # the child: pty.fork made the pty its controlling terminal
        os.execv(sys.executable, [sys.executable, "-c", script])
    try:
        yield read_line(master)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(master)


def read_line(fd: int, timeout_s: float = 10.0) -> str:
    data = b""
    while b"\n" not in data:
        ready, _, _ = select.select([fd], [], [], timeout_s)
        assert ready, "the child did not print its terminal"
        data += os.read(fd, 1024)
    return data.decode().splitlines()[0].strip()


def test_a_served_board_found_again_by_serial_number_needs_no_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``sidra serve --board serial://?serial_number=...``: the board's pty vanishes and
    health turns NOT_SERVING; the board comes back on a new pty and, with no client
    calling, the server's link watcher finds it: SERVING again, state intact. The
    server's log says why the link went down and where the board was found again (its
    URL names a serial number, not the new pty)."""
    caplog.set_level(logging.WARNING, logger="sidra.server.link_watch")
    ours = fresh_board()
    first = serve(ours)
    driver = open_serial(f"serial://?serial_number={serial_of(ours)}&search_ptys=1&{OPTIONS}")
    server, port = create_server(driver, "127.0.0.1:0")
    server.start()
    try:
        with (
            connect(f"127.0.0.1:{port}") as client,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            health = health_pb2_grpc.HealthStub(channel)
            client.program(0, G)
            second = serve(ours)
            first.hangup()
            wait_for_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
            wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)
            assert driver.device == second.path
            assert np.array_equal(client.read_conductance(0).conductances, G)
            second.stop()
    finally:
        server.stop(grace=None)
        driver.close()
    said = [r.getMessage() for r in caplog.records if r.name == "sidra.server.link_watch"]
    down = [m for m in said if m.startswith("board link down: serial://?serial_number=")]
    assert down and "lost" in down[0] and "health NOT_SERVING" in down[0], said
    up = [m for m in said if m.startswith("board link up: serial://?serial_number=")]
    assert up and f"answers again at {second.path}; health SERVING" in up[0], said


def wait_for_health(health: health_pb2_grpc.HealthStub, status: int, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
        if reply.status == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"health did not become {status} within {within_s} s")
