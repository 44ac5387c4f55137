"""Every board names its instance, and the name changes exactly when its state is lost.

Real boards only: emulators in this process and in others, the virtual board
firmware on a real pty (restarted under the driver), the virtual PCIe board in
its own process (reset by its own fault injection).
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from sidra.drivers import BoardDriver, BoardReset, open_board
from sidra.drivers.base import INSTANCE_ID_LIMIT, boot_instance_id, run_instance_id
from sidra.drivers.pcie.driver import PcieDriver
from sidra.drivers.requests import GetBoardInfoRequest
from sidra.drivers.serial import SerialDriver
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.pcie import serve_virtual_pcie_board
from sidra.hil.v1 import board_pb2 as pb

PROFILE = preset("ideal")
G = np.random.default_rng(8).uniform(1.0, 40.0, (16, 16)).astype(np.float32)
V = np.full((2, PROFILE.geometry.rows), 0.1, np.float32)
PRINTABLE = re.compile(r"[!-~]{1,200}")


def calls(board: BoardDriver) -> None:
    """A bit of everything: a write, reads, passes, the totals."""
    board.program(0, G)
    board.read_conductance(0)
    board.mvm(0, V)
    board.stats()


def test_two_emulators_with_one_seed_are_two_instances() -> None:
    """Same preset, same seed, same serial number: still two boards with their own state."""
    with (
        open_board("emu://?preset=ideal&seed=5") as a,
        open_board("emu://?preset=ideal&seed=5") as b,
    ):
        assert a.info.serial_number == b.info.serial_number == "EMU-IDEAL-5"
        assert a.instance_id != b.instance_id
        assert a.instance_id.startswith("EMU-IDEAL-5/run-") and PRINTABLE.fullmatch(a.instance_id)


def test_emulators_in_two_processes_with_one_seed_are_two_instances() -> None:
    """The id is random, never derived from the seed: a server restarted on a fresh
    emulator (state lost) names another instance."""
    script = "from sidra.drivers import open_board; print(open_board('emu://?seed=5').instance_id)"
    ids = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(ids) == 2 and all(i.startswith("EMU-Y1-5/run-") for i in ids)


def test_the_instance_stays_put_across_calls_and_get_board_info_names_it() -> None:
    with open_board("emu://?preset=ideal&seed=2") as board:
        assert isinstance(board, BoardDriver)
        first = board.instance_id
        calls(board)
        assert board.instance_id == first
        description = board.run(GetBoardInfoRequest())
        assert description.instance_id == first


def test_a_serial_board_names_its_boot_and_a_restart_changes_it() -> None:
    """<serial>/boot-<counter> from HELLO: the same across calls and across drivers (a
    second host meets the same instance), new once the driver sees the board restart,
    and the new id is known when the reset is reported, not a call later."""
    with serve_virtual_board(PROFILE, seed=11) as server:
        with open_board(server.url + "?timeout=0.05") as driver:
            assert isinstance(driver, SerialDriver)
            first = driver.instance_id
            assert first == f"EMU-IDEAL-11/boot-{server.board.boot_counter}"
            calls(driver)
            assert driver.instance_id == first
        with open_board(server.url + "?timeout=0.05") as driver:
            assert driver.instance_id == first  # the board kept its state: same instance
            server.reset_board()
            with pytest.raises(BoardReset, match="restarted"):
                driver.mvm(0, V)
            second = driver.instance_id
            assert second == f"EMU-IDEAL-11/boot-{server.board.boot_counter}" != first
            assert driver.run(GetBoardInfoRequest()).instance_id == second
            calls(driver)
            assert driver.instance_id == second


def test_a_pcie_reset_changes_the_instance_once() -> None:
    """The virtual PCIe board power-cycles at its third command: BoardReset, and the
    instance id names the new BOOT_COUNT from then on."""
    with (
        serve_virtual_pcie_board(PROFILE, seed=12, faults="reset_after=3") as served,
        open_board(served.url + "?timeout=0.3") as driver,
    ):
        assert isinstance(driver, PcieDriver)
        first = driver.instance_id
        assert first == f"EMU-IDEAL-12/boot-{driver.boot_count}"
        driver.program(0, G)
        with pytest.raises(BoardReset):
            driver.mvm(0, V)
        second = driver.instance_id
        assert second == f"EMU-IDEAL-12/boot-{driver.boot_count}" != first
        calls(driver)
        assert driver.instance_id == second


def test_instance_ids_are_printable_ascii_whatever_the_serial_number() -> None:
    """They travel as gRPC metadata, which takes printable ASCII only."""
    for serial in ("SIDRA-Y1-0007", "Ünïcødé böard", "tab\there", "x" * 300, "50%/a b"):
        for instance in (boot_instance_id(serial, 2**32 - 1), run_instance_id(serial)):
            assert PRINTABLE.fullmatch(instance), instance
            assert len(instance) <= INSTANCE_ID_LIMIT
    assert boot_instance_id("a b", 1) != boot_instance_id("a%20b", 1)  # escapes stay distinct


def test_the_proto_field_sits_beside_info_and_stats() -> None:
    fields = pb.GetBoardInfoResponse.DESCRIPTOR.fields_by_name
    assert fields["instance_id"].number == 3
    assert "instance_id" not in pb.BoardInfo.DESCRIPTOR.fields_by_name
