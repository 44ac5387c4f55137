"""Board-interface conformance on any board URL: emu://, the virtual board over a pty, and
real hardware when ``SIDRA_HW_URL`` names one (e.g. ``serial:///dev/ttyUSB0?baud=921600``).

Unlike the ideal-preset suite (``ideal_driver`` in conftest), these checks hold on a noisy
physical board too: shapes, dtypes, ranges, validation, write counting, reproducible
regeneration of Δ, and tolerances instead of exact values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest

from sidra.client import connect
from sidra.drivers import BoardDriver, OutOfRange, Region, open_board
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.server import create_server

HW_URL = os.environ.get("SIDRA_HW_URL", "")


@pytest.fixture(params=["emu", "serial", "hw"])
def board(request: pytest.FixtureRequest) -> Iterator[BoardDriver]:
    if request.param == "emu":
        with open_board("emu://?preset=sidra-y1&seed=2") as driver:
            yield driver
    elif request.param == "serial":
        with (
            serve_virtual_board(preset("sidra-y1"), seed=2) as server,
            open_board(server.url) as driver,
        ):
            yield driver
    else:
        if not HW_URL:
            pytest.skip("no hardware: set SIDRA_HW_URL to a board URL to run these on it")
        with open_board(HW_URL) as driver:
            yield driver


def test_info_is_consistent(board: BoardDriver) -> None:
    info = board.info
    assert info.tile_count >= 1 and info.rows >= 1 and info.cols >= 1
    assert 0 <= info.g_min_us < info.g_max_us and info.read_voltage_max_v > 0
    assert info.model and info.serial_number and info.firmware_version


def test_program_read_mvm_round_trip(board: BoardDriver) -> None:
    """Programmed targets read back within a few % of the range (rms; the worst cell within
    15 %); MVM follows V·G within 10 % of full scale."""
    info = board.info
    span = info.g_max_us - info.g_min_us
    rng = np.random.default_rng(7)
    g = rng.uniform(info.g_min_us + 0.2 * span, info.g_max_us - 0.2 * span, (8, 12))
    report = board.program(0, g.astype(np.float32), row_offset=1, col_offset=2)
    assert report.cells_written == 96
    read = board.read_conductance(0, Region(1, 2, 8, 12)).conductances
    assert read.dtype == np.float32 and read.shape == (8, 12)
    assert np.sqrt(np.mean((read - g) ** 2)) < 0.05 * span
    assert np.abs(read - g).max() < 0.15 * span
    v = np.zeros((3, info.rows), np.float32)
    v[:, 1:9] = rng.uniform(0, info.read_voltage_max_v / 2, (3, 8))
    currents = board.mvm(0, v).currents
    assert currents.dtype == np.float32 and currents.shape == (3, info.cols)
    ideal = v[:, 1:9].astype(np.float64) @ read
    scale = float(np.abs(ideal).max())
    assert np.abs(currents[:, 2:14] - ideal).max() < 0.1 * scale + 1e-3
    assert board.transpose_mvm(0, np.zeros((2, info.cols), np.float32)).currents.shape == (
        2,
        info.rows,
    )


def test_perturb_restore_count_writes(board: BoardDriver) -> None:
    region = Region(0, 0, 4, 4)
    before = board.read_write_counts(1, region).counts
    assert board.perturb(1, seed=3, amplitude_us=0.5, region=region).cells_written == 16
    assert board.restore(1, region).cells_written == 16
    after = board.read_write_counts(1, region)
    assert after.counts.dtype == np.uint32
    assert np.array_equal(after.counts - before, np.full((4, 4), 2))


def test_out_of_range_is_refused_before_the_board(board: BoardDriver) -> None:
    info = board.info
    stats = board.stats()
    with pytest.raises(OutOfRange) as caught:
        board.program(0, np.full((2, 2), info.g_max_us * 2, np.float32))
    assert caught.value.field == "conductances"
    assert board.stats() == stats


def test_link_stats_reach_grpc_clients(board: BoardDriver) -> None:
    """GetBoardInfo carries link counters for a board behind a link, none in process."""
    server, port = create_server(board, "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as remote:
            link = remote.stats().link
    finally:
        server.stop(grace=None)
    if board.info.emulated and link is None:
        return  # emu:// in process
    assert link is not None and link.up and link.exchanges > 0
