"""The estimator comparison: equal budgets, exact evaluation counts, a clear refusal."""

from __future__ import annotations

import pytest
from cli_support import sidra_json

from sidra.drivers import open_board
from sidra.training import CompareOptions, load_dataset
from sidra.training.compare import compare_estimators, standard_estimators


def test_every_estimator_spends_its_budget_in_whole_estimates() -> None:
    data = load_dataset("iris")  # 4 features + bias, 3 classes: 15 parameters
    with open_board("emu://?preset=sidra-y1&seed=0") as board:
        results = compare_estimators(board, data, CompareOptions(budget=100))
    by_name = {r.name: r for r in results}
    assert list(by_name) == list(standard_estimators())
    # evaluations per estimate: 2, 8, 2·15 = 30, 1 + 1 = 2, 2
    assert {n: r.steps for n, r in by_name.items()} == {
        "spsa": 50,
        "spsa-4": 12,
        "central-differences": 3,
        "forward-gradient": 50,
        "antithetic-es": 50,
    }
    assert {n: r.loss_evaluations for n, r in by_name.items()} == {
        "spsa": 100,
        "spsa-4": 96,
        "central-differences": 90,
        "forward-gradient": 100,
        "antithetic-es": 100,
    }
    # Host-held: one board pass per step plus the final test pass.
    assert all(r.mvm_calls == r.steps + 1 for r in results)
    assert all(r.device_writes > 0 for r in results)


def test_a_budget_below_one_estimate_names_the_estimator() -> None:
    data = load_dataset("iris")
    with (
        open_board("emu://?preset=ideal&seed=0") as board,
        pytest.raises(ValueError, match="central-differences needs 30 evaluations"),
    ):
        compare_estimators(board, data, CompareOptions(budget=20))


def test_compare_command_prints_json() -> None:
    rows = sidra_json("train", "compare", "--dataset", "iris", "--budget", "60")
    assert [r["name"] for r in rows] == list(standard_estimators())
    assert rows[2]["loss_evaluations"] == 60  # central differences: 2 steps of 30
