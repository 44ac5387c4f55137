"""Modeled time and energy: the SIDRA SPSA lab figures on the sidra-y1 preset."""

from __future__ import annotations

import numpy as np
import pytest

from sidra.drivers import Region, open_board
from sidra.training import SPSAOptions, load_dataset, train_softmax_spsa
from sidra.training.accounting import CostLedger


def test_spsa_iteration_costs_220_ns_and_100_iterations_22_us_66_uj() -> None:
    """2 MVMs × 10 ns + 1 host loss × 100 ns + 1 perturbation write × 100 ns = 220 ns;
    × 100 iterations = 22 µs, at 3 W = 66 µJ (SIDRA design notes, SPSA lab exercise)."""
    with open_board("emu://?preset=sidra-y1&seed=0") as board:
        ledger = CostLedger.for_board(board)
        rng = np.random.default_rng(0)
        region = Region(0, 0, 64, 10)
        board.program(0, np.full(region.shape, 20.0, np.float32))
        v = rng.uniform(-0.1, 0.1, (1, board.info.rows)).astype(np.float32)
        first = None
        for k in range(100):
            ledger.add(board.perturb(0, seed=k, amplitude_us=0.5, sign=1, region=region).cost)
            ledger.add(board.mvm(0, v).cost)
            ledger.add(board.mvm(0, v).cost)
            ledger.charge_host_loss()
            if first is None:
                first = ledger.total
    assert first is not None
    assert first.time_ns == pytest.approx(220.0)
    assert first.energy_nj == pytest.approx(660.0)
    assert ledger.total.time_ns == pytest.approx(22_000.0)  # 22 µs
    assert ledger.total.energy_nj == pytest.approx(66_000.0)  # 66 µJ
    assert ledger.loss_evaluations == 100


def test_board_totals_match_the_sum_of_responses() -> None:
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        ledger = CostLedger.for_board(board)
        ledger.add(board.program(1, np.full((4, 4), 10.0, np.float32)).cost)
        ledger.add(board.mvm(1, np.zeros((8, 256), np.float32)).cost)
        ledger.add(board.read_conductance(1, Region(0, 0, 4, 4)).cost)
        assert board.stats().total_cost.time_ns == pytest.approx(ledger.board.time_ns)
        assert board.stats().total_cost.energy_nj == pytest.approx(ledger.board.energy_nj)


def test_training_reports_modeled_cost() -> None:
    data = load_dataset("digits")
    with open_board("emu://?preset=sidra-y1&seed=2") as board:
        result = train_softmax_spsa(board, data, SPSAOptions(steps=20, seed=2))
    # At least: 20 steps × (2 perturbation writes + 2 batched forwards of 64 vectors)
    # + 40 host losses.
    floor = 20 * (2 * 100 + 2 * 64 * 10) + 40 * 100
    assert result.modeled_time_ns > floor
    assert result.modeled_energy_nj == pytest.approx(3.0 * result.modeled_time_ns)


def test_job_meter_counts_from_its_start_plus_what_it_carries() -> None:
    from sidra.training import AnalogLinear, JobCounts, JobMeter

    with open_board("emu://?preset=sidra-y1&seed=3") as board:
        layer = AnalogLinear(board, 0, 4, 2)
        layer.program(np.zeros(layer.shape, np.float32))  # before the meter: not counted
        layer.forward(np.zeros((1, 4), np.float32))
        carried = JobCounts(5, 6, 7, 8.0, 9.0)
        meter = JobMeter(board, [layer], carried)
        assert meter.read() == carried
        writes = board.stats().cell_writes
        layer.program(np.full(layer.shape, 0.5, np.float32))
        layer.forward(np.zeros((3, 4), np.float32))
        meter.charge_losses(3)
        spent = meter.read()
        assert spent.device_writes == 7 + board.stats().cell_writes - writes > 7
    assert spent.loss_evaluations == 5 + 3
    assert spent.mvm_calls == 6 + 1
    # One 3-vector MVM pass (10 ns per vector) and three host losses (100 ns) at
    # least, on top of the carried 8 ns; energy at the board's 3 W.
    assert spent.modeled_time_ns > 8.0 + 3 * 10 + 3 * 100
    assert spent.modeled_energy_nj - 9.0 == pytest.approx(3.0 * (spent.modeled_time_ns - 8.0))
