"""Endurance: per-cell write counters, the REFUSE and WARN policies, locally and over gRPC."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import numpy as np
import pytest
from board_data import uniform_g
from emu_support import make_driver, make_profile, read64, serve

from sidra.drivers import OutOfRange, Region, rademacher
from sidra.emulator.config import Endurance, EndurancePolicy, Programming
from sidra.emulator.driver import EmulatorDriver
from sidra.hil.v1 import board_pb2 as pb

ROWS, COLS = 64, 32


def test_write_counter_counts_program_pulses_and_perturb_writes() -> None:
    """Counters add one per programming pulse of a cell and one per Perturb APPLY or
    RESTORE covering it; stats report their sum and maximum; gRPC ReadWriteCounts
    returns the same counters."""
    board = make_driver(
        make_profile(programming=Programming(tolerance_us=0.1, max_iterations=6, pulse_gain=0.5))
    )
    rng = np.random.default_rng(51)
    report = board.program(0, uniform_g(rng, (ROWS, COLS), 2.0, 40.0))  # all off g_min
    counts = board.read_write_counts(0).counts
    assert counts.dtype == np.uint32 and counts.shape == (ROWS, COLS)
    assert report.pulses == int(counts.sum())
    assert counts.min() >= 1 and counts.max() <= 6
    assert np.unique(counts).size > 1  # half-gain pulses: far targets take more of them
    expected = counts.astype(np.int64)

    region = Region(8, 4, 16, 8)
    board.perturb(0, seed=3, amplitude_us=0.5, region=region)
    expected[region.slices] += 1
    board.restore(0, region)
    expected[region.slices] += 1
    board.perturb(0, seed=4, amplitude_us=0.5, sign=-1)
    expected += 1
    board.restore(0, Region(0, 0, 1, 1))
    expected[0, 0] += 1
    np.testing.assert_array_equal(board.read_write_counts(0).counts, expected)
    np.testing.assert_array_equal(
        board.read_write_counts(0, region).counts, expected[region.slices]
    )
    # Reads, MVMs and the other tile's writes do not count here.
    board.read_conductance(0)
    board.mvm(0, np.zeros((2, ROWS), np.float32))
    board.program(1, np.full((2, 2), 5.0, np.float32))
    np.testing.assert_array_equal(board.read_write_counts(0).counts, expected)
    other = board.read_write_counts(1).counts
    stats = board.stats()
    assert stats.cell_writes == int(expected.sum()) + int(other.sum())
    assert stats.max_cell_writes == int(max(expected.max(), other.max()))
    assert board.read_write_counts(0).write_budget == 0

    with serve(board) as (remote, _):
        remote_counts = remote.read_write_counts(0)
        assert remote_counts.counts.dtype == np.uint32
        np.testing.assert_array_equal(remote_counts.counts, expected)
        np.testing.assert_array_equal(
            remote.read_write_counts(0, region).counts, expected[region.slices]
        )
        remote.perturb(0, seed=5, amplitude_us=0.5, region=region)
        expected[region.slices] += 1
        np.testing.assert_array_equal(remote.read_write_counts(0).counts, expected)
        assert remote.stats().max_cell_writes == int(expected.max())


def _refuse_board(budget: int, **programming: float) -> EmulatorDriver:
    return make_driver(
        make_profile(
            endurance=Endurance(write_budget=budget, policy=EndurancePolicy.REFUSE),
            programming=Programming(**programming),
        )
    )


def test_refuse_policy_refuses_and_leaves_the_board_unchanged() -> None:
    """REFUSE: a Perturb, RESTORE or Program touching a cell at its budget raises OutOfRange
    with field "endurance" (gRPC OUT_OF_RANGE remotely) and changes neither conductances
    nor counters; writes to cells with budget left still go through."""
    board = _refuse_board(3)  # exact pulses: Program costs one write per cell
    rng = np.random.default_rng(52)
    g = uniform_g(rng, (ROWS, COLS), 5.0, 35.0)
    board.program(0, g)  # 1
    board.perturb(0, seed=1, amplitude_us=1.0)  # 2
    exhausted = Region(0, 0, 8, 8)
    board.restore(0, exhausted)  # 3 in the corner, 2 elsewhere
    # An APPLY needs room for its RESTORE too: at 2 of 3 writes a cell takes no new one.
    with pytest.raises(OutOfRange, match="endurance"):
        board.perturb(0, seed=2, amplitude_us=1.0, region=Region(8, 0, 8, 8))
    board.restore(0, Region(8, 0, 8, 8))  # 3 there too

    def snapshot() -> tuple[np.ndarray, np.ndarray]:
        return read64(board), board.read_write_counts(0).counts.copy()

    before = snapshot()
    straddling = Region(4, 4, 8, 8)  # partly exhausted, partly not
    attempts: list[Callable[[], object]] = [
        lambda: board.perturb(0, seed=7, amplitude_us=1.0, region=exhausted),
        lambda: board.perturb(0, seed=7, amplitude_us=1.0, region=straddling),
        lambda: board.restore(0, straddling),
        lambda: board.restore(0),
        lambda: board.program(0, np.full((8, 8), 9.0, np.float32), row_offset=4, col_offset=4),
    ]
    for attempt in attempts:
        with pytest.raises(OutOfRange) as info:
            attempt()
        assert info.value.field == "endurance"
        after = snapshot()
        np.testing.assert_array_equal(after[0], before[0])
        np.testing.assert_array_equal(after[1], before[1])

    with serve(board) as (remote, stub):
        with pytest.raises(OutOfRange) as info:
            remote.perturb(0, seed=7, amplitude_us=1.0, region=exhausted)
        assert info.value.field == "endurance"
        with pytest.raises(grpc.RpcError) as raw:
            stub.Perturb(
                pb.PerturbRequest(
                    tile=0, mode=pb.PERTURB_MODE_RESTORE, region=pb.Region(rows=8, cols=8)
                )
            )
        assert raw.value.code() is grpc.StatusCode.OUT_OF_RANGE
        assert "endurance" in (raw.value.details() or "")
        with pytest.raises(OutOfRange):
            remote.program(0, np.full((2, 2), 9.0, np.float32))
        np.testing.assert_array_equal(remote.read_conductance(0).conductances, before[0])
        np.testing.assert_array_equal(remote.read_write_counts(0).counts, before[1])
        assert remote.read_write_counts(0).write_budget == 3

    # Cells with budget left can still be written (2 → 3: the perturbation of the whole
    # tile taken back there), then they are exhausted too. A perturbation there had been
    # allowed at 2 and its restore refused at 3: cells left off their targets for good.
    free = Region(32, 16, 8, 8)
    board.restore(0, free)
    np.testing.assert_array_equal(board.read_write_counts(0, free).counts, 3)
    with pytest.raises(OutOfRange):
        board.perturb(0, seed=8, amplitude_us=1.0, region=free)


def test_refuse_policy_caps_programming_pulses_at_the_budget() -> None:
    """Under REFUSE a multi-pulse Program stops each cell at its remaining budget (reported
    unconverged) instead of exceeding it; the next write is refused."""
    board = _refuse_board(4, tolerance_us=0.01, max_iterations=20, pulse_gain=0.5)
    rng = np.random.default_rng(53)
    targets = uniform_g(rng, (ROWS, COLS), 20.0, 40.0)  # ≥ 19 µS from g_min: > 4 halvings
    report = board.program(0, targets)
    counts = board.read_write_counts(0).counts
    np.testing.assert_array_equal(counts, 4)
    assert report.pulses == 4 * targets.size
    assert report.unconverged_cells == targets.size
    assert board.stats().max_cell_writes == 4
    with pytest.raises(OutOfRange):
        board.program(0, targets)


def test_warn_policy_writes_and_reports_cells_over_budget() -> None:
    """WARN: writes past the budget happen; cells_over_budget counts the region's cells
    whose counter now exceeds the budget, and max_cell_writes shows it."""
    board = make_driver(
        make_profile(endurance=Endurance(write_budget=2, policy=EndurancePolicy.WARN))
    )
    rng = np.random.default_rng(54)
    g = uniform_g(rng, (ROWS, COLS), 5.0, 35.0)
    assert board.program(0, g).cells_over_budget == 0  # 1
    assert board.perturb(0, seed=1, amplitude_us=1.0).cells_over_budget == 0  # 2
    region = Region(0, 0, 8, 4)
    report = board.perturb(0, seed=2, amplitude_us=2.0, region=region)  # 3 in the region
    assert report.cells_over_budget == region.rows * region.cols
    expected = g[region.slices] + 2.0 * rademacher(2, region.shape)
    np.testing.assert_allclose(board.read_conductance(0, region).conductances, expected)
    assert board.restore(0).cells_over_budget == ROWS * COLS  # 3 everywhere, 4 in the region
    np.testing.assert_array_equal(read64(board), g)
    assert board.program(0, g + 1.0).cells_over_budget == ROWS * COLS  # one pulse each
    assert board.stats().max_cell_writes == 5
    with serve(board) as (remote, _):
        assert remote.perturb(0, seed=3, amplitude_us=1.0).cells_over_budget == ROWS * COLS
        assert remote.stats().max_cell_writes == 6


def test_program_clearing_a_perturbation_is_a_counted_write() -> None:
    """Program clears any perturbation in its region (board.proto). Taking a cell from
    G_prog ± c back to G_prog changes its conductance, so it takes at least one pulse,
    which the write counter must show: a perturbation cannot be undone for free.

    Fails since commit 2af640f: verify compares targets with g_prog, not the perturbed
    conductance, so no cell is pulsed, yet `self.g[sl] = g` silently clears the
    perturbation (no write counted, no endurance budget spent, drift clock not reset).
    """
    board = make_driver(make_profile())  # exact pulses, tolerance 0
    rng = np.random.default_rng(55)
    g = uniform_g(rng, (ROWS, COLS), 5.0, 35.0)
    board.program(0, g)
    board.perturb(0, seed=1, amplitude_us=2.0)
    np.testing.assert_allclose(np.abs(read64(board) - g), 2.0, rtol=0, atol=1e-5)
    counts = board.read_write_counts(0).counts.copy()

    report = board.program(0, g)  # the targets of the programmed state
    np.testing.assert_array_equal(read64(board), g)
    after = board.read_write_counts(0).counts
    assert np.all(after >= counts + 1)
    assert report.pulses == int(after.sum() - counts.sum()) >= g.size
