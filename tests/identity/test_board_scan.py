"""``sidra board scan``: virtual boards on real pseudo-terminals found with their serial
numbers and a URL that opens them; a port another process holds is not opened, a port
with no board is reported silent (sidra.drivers.serial.scan)."""

from __future__ import annotations

import json
import os
import pty
import secrets
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from sidra.cli import app, board_scan
from sidra.drivers import open_board
from sidra.drivers.serial import finder
from sidra.drivers.serial.link import LinkSettings
from sidra.drivers.serial.scan import scan_serial_ports
from sidra.emulator import preset
from sidra.emulator.firmware import PtyServer, VirtualBoard

SETTINGS = LinkSettings(timeout_s=0.5, retries=1)


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[str]]]:
    """The ports the scan may ask: only this test's. ``listed``: what pyserial lists
    (the machine's own serial ports are never asked); ``ptys``: the pseudo-terminals
    (other test processes serve boards on theirs); no PCI device."""
    mine: dict[str, list[str]] = {"listed": [], "ptys": []}
    everything = finder.pseudo_terminals
    monkeypatch.setattr(
        finder.list_ports, "comports", lambda: [SimpleNamespace(device=d) for d in mine["listed"]]
    )
    monkeypatch.setattr(
        finder, "pseudo_terminals", lambda: [p for p in everything() if p in mine["ptys"]]
    )
    monkeypatch.setattr(board_scan, "sidra_sized_devices", list)  # the machine's PCI bus: none
    yield mine


def board_on_a_pty() -> tuple[VirtualBoard, PtyServer]:
    board = VirtualBoard(preset("ideal"), seed=secrets.randbits(40))
    return board, PtyServer(board).start()


def test_boards_are_found_with_a_url_that_opens_them(ports: dict[str, list[str]]) -> None:
    (free, free_server), (held, held_server) = board_on_a_pty(), board_on_a_pty()
    silent_end, silent = pty.openpty()  # a pty with nothing behind it
    silent_path = os.ttyname(silent)
    try:
        with open_board(held_server.url):  # a host drives this one (flock)
            heard = dict(held.counters)
            ports["listed"] = [held_server.path]  # as a USB port pyserial lists would be
            ports["ptys"] = [free_server.path, silent_path]
            found = {p.device: p for p in scan_serial_ports(SETTINGS, ptys=True)}
        assert found[held_server.path].state == "busy"
        assert found[held_server.path].hello is None
        assert held.counters == heard  # not opened: not one byte
        board = found[free_server.path]
        assert board.state == "board" and board.hello is not None
        serial_number = free.driver.info.serial_number
        assert board.hello.serial_number == serial_number
        assert board.url == f"serial://?serial_number={serial_number}&search_ptys=1"
        assert found[silent_path].state == "silent"
        assert free.counters["executed"] == 0  # HELLO and nothing else
        with open_board(board.url) as opened:
            assert opened.info.serial_number == serial_number
        # Without --ptys no pseudo-terminal is asked.
        assert [p.device for p in scan_serial_ports(SETTINGS, ptys=False)] == [held_server.path]
    finally:
        os.close(silent)
        os.close(silent_end)
        free_server.stop()
        held_server.stop()


def test_the_command_prints_each_board_and_exits_1_when_there_is_none(
    ports: dict[str, list[str]],
) -> None:
    board, server = board_on_a_pty()
    runner = CliRunner()
    try:
        ports["ptys"] = [server.path]
        shown = runner.invoke(app, ["board", "scan", "--ptys"])
        listed = runner.invoke(app, ["board", "scan", "--ptys", "--json"])
    finally:
        server.stop()
    serial_number = board.driver.info.serial_number
    assert shown.exit_code == 0, shown.output
    assert f"{server.path}: SIDRA-IDEAL {serial_number}, firmware " in shown.output
    assert f"serial://?serial_number={serial_number}&search_ptys=1" in shown.output
    (row,) = json.loads(listed.output)
    assert (row["device"], row["state"], row["serial_number"], row["same_serial_as"]) == (
        server.path, "board", serial_number, [],
    )  # fmt: skip
    ports["ptys"] = []
    nothing = runner.invoke(app, ["board", "scan"])
    assert nothing.exit_code == 1
    assert "no serial ports found (--ptys: virtual boards too)" in nothing.output


def test_two_boards_answering_with_one_serial_number_are_said_to(
    ports: dict[str, list[str]],
) -> None:
    """Emulated boards of one seed share their serial number: a URL by serial number
    would take whichever is found first, so the scan says so."""
    seed = secrets.randbits(40)
    servers = [PtyServer(VirtualBoard(preset("ideal"), seed=seed)).start() for _ in range(2)]
    try:
        ports["ptys"] = [s.path for s in servers]
        shown = CliRunner().invoke(app, ["board", "scan", "--ptys"])
    finally:
        for server in servers:
            server.stop()
    assert shown.exit_code == 0, shown.output
    first, second = (s.path for s in servers)
    assert f"(also answered by {second}: by serial number the first found is taken" in " ".join(
        shown.output.split()
    )
    assert f"(also answered by {first}:" in " ".join(shown.output.split())
