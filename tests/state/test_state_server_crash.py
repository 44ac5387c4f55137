"""The server killed with SIGKILL at random points during Programs: the store is never
corrupt, holds every acknowledged Program, and a restore brings the board back bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
from crash_writer import Replay, program_of
from state_support import IDEAL_URL

from sidra.client import connect
from sidra.drivers import SidraError, open_board
from sidra.server.state import ProgramKind, StateStore, restore

SERVER = Path(__file__).with_name("crash_server.py")
KILLS = 20
TILES = 2  # the tiles program_of writes
BOARD_SERIAL = "EMU-IDEAL-1"  # the ideal emulator with seed 1


def _start(path: Path) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, str(SERVER), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
    )
    assert server.stdout is not None and server.stderr is not None
    line = server.stdout.readline()
    if not line.startswith("port "):
        server.kill()
        raise AssertionError(f"the server did not start: {line}{server.stderr.read()}")
    return server, int(line.split()[1])


def test_killed_servers_keep_every_acknowledged_program_and_restore_bit_for_bit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    rng = np.random.default_rng(11)
    replay = Replay()
    acknowledged = -1  # number of the last Program whose RPC returned OK
    committed = 0
    for kill in range(KILLS):
        server, port = _start(path)
        with connect(f"127.0.0.1:{port}") as client:
            # The restarted server restored the store's golden targets onto a fresh board.
            with StateStore(path, read_only=True) as reader:
                golden = [reader.golden(client.info.serial_number, t) for t in range(TILES)]
            for tile, (targets_us, programmed) in enumerate(golden):
                on_board = client.read_conductance(tile).conductances
                assert on_board[programmed].tobytes() == targets_us[programmed].tobytes()

            killer = threading.Timer(rng.uniform(0.05, 0.4), os.kill, (server.pid, signal.SIGKILL))
            killer.start()
            n = acknowledged + 1
            try:
                while True:
                    tile, r0, c0, g = program_of(n)
                    client.program(tile, g, row_offset=r0, col_offset=c0)
                    acknowledged, n = n, n + 1
            except SidraError:
                pass  # the server died under the call
            finally:
                killer.join()
        server.communicate(timeout=60)
        assert server.returncode == -signal.SIGKILL

        with StateStore(path) as store:
            assert store.integrity_check() == "ok", f"kill {kill}"
            programs = [r for r in store.history() if r.kind is ProgramKind.PROGRAM]
            golden = [store.golden(BOARD_SERIAL, t) for t in range(TILES)]
        committed = sum(record.programs for record in programs)
        # Every acknowledged Program is stored; at most one more, stored but killed
        # before its answer left.
        assert committed - 1 in (acknowledged, acknowledged + 1), f"kill {kill}"
        expected = replay.after(committed)
        for tile, (targets_us, programmed) in enumerate(golden):
            assert targets_us.tobytes() == expected.targets_us[tile].tobytes(), f"kill {kill}"
            assert np.array_equal(programmed, expected.programmed[tile]), f"kill {kill}"
        acknowledged = committed - 1  # the next round continues after what was stored

    # The last round's state, restored onto a fresh board as the next start would.
    with open_board(IDEAL_URL) as board, StateStore(path) as store:
        restore(board, store)
        for tile in range(TILES):
            on_board = board.read_conductance(tile).conductances
            programmed = replay.programmed[tile]
            assert on_board[programmed].tobytes() == replay.targets_us[tile][programmed].tobytes()
    print(f"{KILLS} server kills, {committed} Programs stored")
