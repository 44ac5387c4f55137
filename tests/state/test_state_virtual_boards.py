"""A state store and virtual boards started with ``sidra board serve``: each its own board.

The store keeps programmed targets (and deployments) under the board's serial number.
Two boards served from one seed are two boards: what was programmed on one is not
restored onto the other. A board given its serial (``--serial``) is the same board when
it is started again, and a restore brings its targets back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cli_support import process
from state_support import served_with_store, targets

from sidra.client import connect
from sidra.drivers import open_board
from sidra.server.state import StateStore, restore

BOARD = ("board", "serve", "--pty", "--preset", "ideal", "--seed", "7")


def test_a_restore_writes_one_boards_targets_onto_no_other_board_of_its_seed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    g = targets(np.random.default_rng(3), (8, 8))
    with process(*BOARD) as (url_a, _), process(*BOARD) as (url_b, _):
        with (
            open_board(url_a) as board_a,
            StateStore(path) as store,
            served_with_store(board_a, store) as port,
            connect(f"127.0.0.1:{port}") as client,
        ):
            client.program(1, g)
        with open_board(url_b) as board_b, StateStore(path) as store:
            report = restore(board_b, store)
            assert board_b.stats().cell_writes == 0
    assert not report.known and report.cells == 0, report.describe()


def test_a_board_started_again_with_its_serial_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    g = targets(np.random.default_rng(4), (8, 8))
    with (
        process(*BOARD, "--serial", "LAB-VB-7") as (url, _),
        open_board(url) as board,
        StateStore(path) as store,
        served_with_store(board, store) as port,
        connect(f"127.0.0.1:{port}") as client,
    ):
        client.program(1, g)
    with (
        process(*BOARD, "--serial", "LAB-VB-7") as (url, _),
        open_board(url) as again,
        StateStore(path) as store,
    ):
        report = restore(again, store)
        restored = again.read_conductance(1).conductances[:8, :8]
    assert report.known and report.cells == g.size, report.describe()
    assert np.array_equal(restored, g)  # the ideal preset reads back bit for bit
