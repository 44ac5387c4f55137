"""The comparison: equal budgets, exact evaluation counts, seeds with mean and spread, a
record with a plot, clear refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli_support import sidra_json

from sidra.drivers import open_board
from sidra.training import CompareOptions, MethodName, load_dataset
from sidra.training.compare import compare_methods, compare_tiles, standard_estimators

ESTIMATORS = tuple(MethodName(str(name)) for name in standard_estimators())


def test_every_estimator_spends_its_budget_in_whole_estimates() -> None:
    data = load_dataset("iris")  # 4 features + bias, 3 classes: 15 parameters
    options = CompareOptions(budget=100, seeds=(0,), methods=ESTIMATORS)
    with open_board("emu://?preset=sidra-y1&seed=0") as board:
        runs = compare_methods(board, data, options).runs
    by_name = {r.name: r for r in runs}
    assert list(by_name) == [str(m) for m in ESTIMATORS]
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
    # Host-held: one MVM call per Program (every 10 updates) passes the minibatches of
    # the steps it serves, drawn ahead; then the final test pass.
    assert {n: r.mvm_calls for n, r in by_name.items()} == {
        n: math.ceil(r.steps / options.program_every) + 1 for n, r in by_name.items()
    }
    assert all(r.device_writes > 0 for r in runs)


def test_the_algorithms_run_within_the_budget_in_whole_steps_or_epochs() -> None:
    """iris: 105 training samples, so an epoch is 4 minibatches of 32. On-board SPSA
    spends 2 evaluations per step; last-layer, mlp and eqprop 1 per minibatch;
    forward-forward 1 per layer (two layers) and minibatch, twice that with SPSA."""
    data = load_dataset("iris")
    methods = (
        MethodName.SPSA_BOARD, MethodName.LAST_LAYER, MethodName.MLP, MethodName.FF,
        MethodName.FF_SPSA, MethodName.EQPROP,
    )  # fmt: skip
    options = CompareOptions(budget=17, seeds=(0,), methods=methods)
    with open_board("emu://?preset=ideal&seed=0") as board:
        runs = {r.name: r for r in compare_methods(board, data, options).runs}
    assert {n: (r.steps, r.loss_evaluations) for n, r in runs.items()} == {
        "spsa-board": (8, 16),
        "last-layer": (16, 16),  # 4 epochs of 4 steps
        "mlp": (16, 16),
        "ff": (8, 16),  # 2 epochs: 8 steps of 2 layers
        "ff-spsa": (4, 16),  # 1 epoch: 4 steps of 2 layers x 2 evaluations
        "eqprop": (16, 16),
    }
    assert all(r.device_writes > 0 and r.mvm_calls > 0 for r in runs.values())


def test_every_method_runs_once_per_seed_and_is_summarised_over_them() -> None:
    data = load_dataset("iris")
    methods = (MethodName.SPSA, MethodName.MLP)
    options = CompareOptions(budget=40, seeds=(3, 5, 8), methods=methods)
    seen = []
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        comparison = compare_methods(board, data, options, on_result=seen.append)
    assert [(r.name, r.seed) for r in comparison.runs] == [
        ("spsa", 3), ("mlp", 3), ("spsa", 5), ("mlp", 5), ("spsa", 8), ("mlp", 8),
    ]  # fmt: skip
    assert seen == comparison.runs
    for summary in comparison.summaries():
        accuracy = [r.test_accuracy for r in comparison.runs if r.name == summary.name]
        assert summary.seeds == (3, 5, 8)
        assert summary.test_accuracy == pytest.approx(np.mean(accuracy))
        assert summary.test_accuracy_std == pytest.approx(np.std(accuracy, ddof=1))
        assert (summary.test_accuracy_min, summary.test_accuracy_max) == (
            min(accuracy),
            max(accuracy),
        )
    spsa = next(s for s in comparison.summaries() if s.name == "spsa")
    assert spsa.loss_evaluations == 40 and spsa.steps == 20


def test_a_stopped_comparison_ends_after_the_run_under_way() -> None:
    """A stop set before the first run ends the comparison after it, the summary saying
    so; a stop that comes during the last run changes nothing."""
    import threading

    data = load_dataset("iris")
    options = CompareOptions(budget=40, seeds=(3, 5), methods=(MethodName.SPSA,))
    stop = threading.Event()
    stop.set()
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        stopped = compare_methods(board, data, options, stop=stop)
    assert [(r.name, r.seed) for r in stopped.runs] == [("spsa", 3)]
    assert stopped.settings["stopped_at_run"] == 1 and stopped.summary()["stopped_at_run"] == 1
    late = threading.Event()
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        whole = compare_methods(
            board, data, options, stop=late, on_result=lambda r: late.set() if r.seed == 5 else None
        )
    assert len(whole.runs) == 2 and "stopped_at_run" not in whole.summary()


def test_a_budget_below_one_step_or_epoch_names_the_method_before_anything_runs() -> None:
    data = load_dataset("iris")
    with open_board("emu://?preset=ideal&seed=0") as board:
        with pytest.raises(ValueError, match="central-differences needs 30 evaluations"):
            compare_methods(board, data, CompareOptions(budget=20))
        with pytest.raises(ValueError, match="mlp needs 4 evaluations for one epoch"):
            compare_methods(board, data, CompareOptions(budget=3, methods=(MethodName.MLP,)))
        assert board.stats().cell_writes == 0  # refused before any run


def test_a_method_whose_network_does_not_fit_is_refused_before_anything_runs() -> None:
    """On a board of one 256 x 256 tile the mlp (64 -> 128 -> 64 -> 10, a tile per layer)
    does not fit: refused naming the layer, and the estimators before it never ran."""
    data = load_dataset("digits")
    methods = (MethodName.SPSA, MethodName.MLP)
    with open_board("emu://?preset=ideal&seed=0") as board:
        with pytest.raises(ValueError, match="layer1"):
            compare_methods(board, data, CompareOptions(budget=100, methods=methods, tiles=(0,)))
        assert board.stats().mvm_passes == 0 and board.stats().cell_writes == 0


def test_seeds_and_methods_are_each_given_once() -> None:
    with pytest.raises(ValueError, match=r"seeds: got \['1', '1'\], each at most once"):
        CompareOptions(seeds=(1, 1))
    with pytest.raises(ValueError, match="methods: got"):
        CompareOptions(methods=(MethodName.MLP, MethodName.MLP))


def test_a_comparison_claims_every_tile_its_methods_place_layers_on() -> None:
    data = load_dataset("digits")
    with open_board("emu://?preset=ideal") as board:
        info = board.info
    estimators_only = CompareOptions(methods=ESTIMATORS)
    assert compare_tiles(info, data, estimators_only) == (0,)
    # mlp: 64 -> 128 -> 64 -> 10, one tile per layer; last-layer: features, head.
    assert compare_tiles(info, data, CompareOptions()) == (0, 1, 2)


def test_compare_command_prints_json_and_saves_a_record_with_a_plot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "record"
    done = sidra_json(
        "train", "compare", "--dataset", "iris", "--budget", "20", "--seeds", "0",
        "--seeds", "2", "--method", "spsa", "--method", "antithetic-es",
        "--out", str(out),
    )  # fmt: skip
    assert [m["name"] for m in done["methods"]] == ["spsa", "antithetic-es"]
    assert [(r["name"], r["seed"]) for r in done["runs"]] == [
        ("spsa", 0), ("antithetic-es", 0), ("spsa", 2), ("antithetic-es", 2),
    ]  # fmt: skip
    assert [r["loss_evaluations"] for r in done["runs"]] == [20] * 4
    assert done["methods"][0]["seeds"] == [0, 2]
    assert done["record"] == str(out)
    assert json.loads((out / "summary.json").read_text()) == {
        k: done[k] for k in ("methods", "runs")
    }
    assert (out / "runs.csv").read_text().count("\n") == 5  # header + 4 runs
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_a_comparison_stopped_midway_keeps_every_run_it_finished(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """runs.csv and summary.json are written after each run: killed while the second
    method trains, the record holds the first method's run and nothing half-done."""
    import subprocess
    import time

    from cli_support import SIDRA

    out = tmp_path / "record"
    child = subprocess.Popen(
        [*SIDRA, "train", "compare", "--budget", "200", "--seeds", "0",
         "--method", "spsa", "--method", "eqprop", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120.0
        while not (out / "runs.csv").exists():  # written last of the record
            assert child.poll() is None, "the comparison ended before its first run was kept"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:  # killed at once: each file is replaced whole, never seen half-written
        child.kill()
        child.wait(timeout=30)
    assert child.returncode != 0  # killed: eqprop (5 epochs of settling) had not finished
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["name"], r["seed"]) for r in summary["runs"]] == [("spsa", 0)]
    assert [m["name"] for m in summary["methods"]] == ["spsa"]
    rows = (out / "runs.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("spsa,0,100,200,")
    assert not list(out.glob(".*.partial"))


def test_ctrl_c_stops_a_comparison_after_its_run_and_keeps_the_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The first SIGINT lets the run under way end: the record is saved with every run
    finished, where it stopped is said, and the exit status is 130."""
    from cli_support import file_written, interrupted

    out = tmp_path / "record"
    status, stdout, stderr = interrupted(
        "train", "compare", "--budget", "200",
        *(a for seed in range(10) for a in ("--seeds", str(seed))),
        "--method", "spsa", "--method", "last-layer", "--out", str(out), "--json",
        under_way=file_written(out / "runs.csv"),  # the first run is kept
    )  # fmt: skip
    assert status == 130, stderr
    summary = json.loads(stdout)
    done = summary["stopped_at_run"]
    assert 1 <= done < 20 and len(summary["runs"]) == done
    assert f"stopped after run {done} of 20" in " ".join(stderr.split())
    assert len((out / "runs.csv").read_text().splitlines()) == done + 1
    assert (out / "plot.png").stat().st_size > 0


def test_runs_compare_plots_no_empty_axes_for_compare_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A compare record keeps its methods' results, not figures per step: ``runs compare
    --plot`` of two wrote three empty axes and printed the plot's path."""
    from cli_support import run_sidra, unwrapped

    records = []
    for seed in (0, 1):
        records.append(tmp_path / f"cmp{seed}")
        sidra_json("train", "compare", "--dataset", "iris", "--budget", "20", "--seeds",
                   str(seed), "--method", "spsa", "--out", str(records[-1]))  # fmt: skip
    plot = tmp_path / "both.png"
    refused = run_sidra("runs", "compare", *map(str, records), "--plot", str(plot))
    assert refused.returncode == 2 and not plot.exists()
    said = unwrapped(refused.stderr)
    assert unwrapped("none of the runs keeps figures per step") in said, said
    assert "cmp0" in said and "cmp1" in said
