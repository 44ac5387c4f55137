"""Forward-forward on the board (sidra train ff): the local gradients and the SPSA estimates
against the host, no backward pass reaching the board, the counts, a short run learning
digits, the CLI."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import numpy as np
import pytest

from sidra.drivers import open_board
from sidra.drivers.rademacher import rademacher
from sidra.training import FFEstimator, FFOptions, load_dataset, train_forward_forward
from sidra.training.estimators import SPSAGradient
from sidra.training.forward_forward import (
    ForwardForwardNetwork,
    _network,
    ff_placement,
    goodness,
    goodness_loss,
    normalised,
)
from tests.cli_support import assert_model_runs_as_trained, run_sidra


def _batch(net: ForwardForwardNetwork, rows: int = 16) -> np.ndarray:
    """Positive rows of digits, then the same samples with the next label (negative)."""
    data = load_dataset("digits")
    x, y = data.x_train[:rows], data.y_train[:rows]
    return np.vstack([net.labelled(x, y), net.labelled(x, (y + 1) % data.classes)])


def _host_losses(
    net: ForwardForwardNetwork, h: np.ndarray, weights: list[np.ndarray]
) -> list[float]:
    """Each layer's goodness loss through ``weights`` on the host, in float64."""
    losses = []
    for i, w in enumerate(weights):
        y = np.maximum(net.inputs_of(i, h).astype(np.float64) @ w, 0.0)
        losses.append(goodness_loss(y, len(h) // 2, net.theta)[0])
        h = normalised(y.astype(np.float32))
    return losses


def test_each_layers_local_gradient_is_the_derivative_of_its_own_goodness_loss() -> None:
    """On the ideal board the gradient from the board's outputs matches central differences
    of the host loss of that layer, the layers below held fixed."""
    data = load_dataset("digits")
    options = FFOptions(hidden=(12, 8), read_repeats=1)
    with open_board("emu://?preset=ideal&seed=1") as board:
        placement = ff_placement(board.info, data, options)
        net = _network(board, data, options, placement, np.random.default_rng(0))
        h = _batch(net)
        losses, gradients = net.local_gradients(h, len(h) // 2)
        weights = [w.astype(np.float64) for w in net.weights]
        np.testing.assert_allclose(losses, _host_losses(net, h, weights), rtol=1e-3)
        for layer, gradient in enumerate(gradients):
            numeric = np.zeros_like(weights[layer])
            for index in np.ndindex(numeric.shape):
                moved = [w.copy() for w in weights]
                moved[layer][index] += 1e-5
                plus = _host_losses(net, h, moved)[layer]
                moved[layer][index] -= 2e-5
                minus = _host_losses(net, h, moved)[layer]
                numeric[index] = (plus - minus) / 2e-5
            np.testing.assert_allclose(gradient, numeric, rtol=2e-2, atol=2e-4)


def test_the_spsa_estimate_is_the_loss_difference_of_the_boards_perturbed_layer() -> None:
    """Layer-local SPSA: the board evaluates W ± c·Δ(seed) of one layer (PerturbedMVM);
    the estimate is (L⁺ − L⁻)/(2c)·Δ with the losses the host computes at W ± c·Δ."""
    data = load_dataset("digits")
    options = FFOptions(hidden=(12, 8), estimator=FFEstimator.SPSA, read_repeats=1)
    with open_board("emu://?preset=ideal&seed=1") as board:
        placement = ff_placement(board.info, data, options)
        net = _network(board, data, options, placement, np.random.default_rng(0))
        h = _batch(net)
        estimator = SPSAGradient(0.05)
        seeds = np.random.default_rng(7)
        _, estimates = net.spsa_step(h, len(h) // 2, estimator, np.random.default_rng(7))
        weights = [w.astype(np.float64) for w in net.weights]
        for layer, estimate in enumerate(estimates):
            ((seed, c),), _ = estimator.ask(net.weights[layer], seeds)
            delta = rademacher(seed, weights[layer].shape).astype(np.float64)
            at = {}
            for sign in (1, -1):
                moved = [w.copy() for w in weights]
                moved[layer] += sign * c * delta
                at[sign] = _host_losses(net, h, moved)[layer]
            expected = (at[1] - at[-1]) / (2 * c) * delta
            np.testing.assert_allclose(estimate, expected, rtol=1e-2, atol=1e-3)


def _counting(board: Any) -> Counter[str]:
    """Counts every request the real emulator board executes, steps of a sequence too."""
    seen: Counter[str] = Counter()
    execute = board._run_checked

    def counted(request: Any) -> Any:
        seen[type(request).__name__] += 1
        return execute(request)

    board._run_checked = counted
    return seen


@pytest.mark.parametrize("estimator", list(FFEstimator))
def test_no_backward_pass_reaches_the_board_and_the_counts_are_exact(
    estimator: FFEstimator,
) -> None:
    """Two layers, one epoch of 10 steps (batch 128 of 1,257): no TransposeMVM, no Perturb
    APPLY; exact: one MVM per layer and step; spsa: one PerturbedMVM per layer and step
    with 2 × resamplings points, 2 × resamplings loss evaluations per layer and step."""
    data = load_dataset("digits")
    options = FFOptions(hidden=(16, 8), epochs=1, batch_size=128, estimator=estimator,
                        resamplings=2)  # fmt: skip
    with open_board("emu://?preset=sidra-y1&seed=0") as board:
        seen = _counting(board)
        record = train_forward_forward(board, data, options)
    assert record.steps == 10
    assert seen["TransposeMVMRequest"] == 0
    assert seen["PerturbRequest"] == 0
    # The test set and the training set shown with all 10 labels, 102 samples a pass.
    evaluation = 2 * (-(-540 // 102) + -(-1257 // 102))
    if estimator is FFEstimator.SPSA:
        assert seen["PerturbedMVMRequest"] == 10 * 2
        assert record.loss_evaluations == 10 * 2 * 2 * 2
        assert record.mvm_calls == 10 * 2 * 4 + evaluation
        assert seen["MVMRequest"] == evaluation
    else:
        assert seen["PerturbedMVMRequest"] == 0
        assert record.loss_evaluations == 10 * 2
        assert record.mvm_calls == seen["MVMRequest"] == 10 * 2 + evaluation
    assert record.device_writes > 0 and record.modeled_time_ns > 0


def test_a_short_run_on_the_ideal_board_learns_well_above_chance() -> None:
    data = load_dataset("digits")
    options = FFOptions(hidden=(64, 32), epochs=3, learning_rate=0.02, eval_every=2)
    epochs: list[tuple[int, float | None]] = []
    with open_board("emu://?preset=ideal&seed=0") as board:
        record = train_forward_forward(board, data, options, on_epoch=lambda *e: epochs.append(e))
    # Every epoch reported; test checkpoints every second epoch and after the last.
    assert [(e, t is None) for e, t in epochs] == [(1, True), (2, False), (3, False)]
    assert [c.step for c in record.checkpoints] == [80, 120]
    summary = record.summary()
    assert summary["test_accuracy"] > 0.8  # chance: 0.1
    assert summary["placement"] == {"layer0": [0], "layer1": [1]}
    assert len(summary["goodness_separation"]) == 2
    assert all(s > 0.0 for s in summary["goodness_separation"])  # right labels: higher


def test_goodness_is_the_mean_squared_activation_and_the_loss_its_softplus() -> None:
    y = np.array([[1.0, 3.0], [0.0, 2.0]], np.float32)
    np.testing.assert_allclose(goodness(y), [5.0, 2.0])
    loss, slope = goodness_loss(y, 1, theta=2.0)  # row 0 positive, row 1 negative
    np.testing.assert_allclose(loss, np.log1p(np.exp(-3.0)) + np.log(2.0))
    np.testing.assert_allclose(slope, [-1 / (1 + np.exp(3.0)), 0.5])


def test_the_cli_prints_the_summary_and_refuses_bad_options(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_sidra(
        "train", "ff", "--board", "emu://?preset=ideal", "--hidden", "16", "--epochs", "1",
        "--estimator", "spsa", "--json", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {"test_accuracy", "loss_evaluations", "mvm_calls", "device_writes",
            "modeled_time_ns", "modeled_energy_nj", "placement",
            "goodness_separation"} <= set(summary)  # fmt: skip
    saved = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"settings.json", "summary.json", "steps.csv", "checkpoints.csv", "plot.png",
            "model.npz"} <= saved  # fmt: skip
    # The trained network runs from its file on another noiseless board, scored as the
    # run scored it; predict writes each label's summed goodness.
    assert_model_runs_as_trained(tmp_path / "run", summary, "goodness;", "goodness", tmp_path)
    refused = run_sidra("train", "ff", "--estimator", "spsa", "--digital-bias")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--digital-bias: got True with estimator spsa" in " ".join(refused.stderr.split())
    refused = run_sidra("train", "ff", "--goodness-threshold", "0")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--goodness-threshold: got 0.0; input should be greater than 0" in " ".join(
        refused.stderr.split()
    )


def test_the_service_runs_ff_as_a_job_kind() -> None:
    """What ``sidra serve`` does with an ``ff`` job: options from JSON, the tiles it claims
    (where its layers are placed), the run with progress after every epoch."""
    from sidra.training.jobs import TrainingJobs

    jobs = TrainingJobs()
    options = jobs.options("ff", json.dumps({"hidden": [16, 8], "epochs": 2, "eval_every": 2}))
    assert isinstance(options, FFOptions)
    progress: list[tuple[int, int, str]] = []

    class Reporter:
        def progress(self, step: int, total: int, message: str) -> None:
            progress.append((step, total, message))

        def log(self, line: str) -> None:
            pass

    with open_board("emu://?preset=ideal&seed=0") as board:
        assert jobs.claim("ff", options, "digits", board.info) == ((0, 1), False)
        summary, files = jobs.run("ff", options, "digits", board, Reporter(), threading.Event())
    assert [(step, total) for step, total, _ in progress] == [(1, 2), (2, 2)]
    assert progress[0][2] == "" and progress[1][2].startswith("test ")
    assert summary["placement"] == {"layer0": [0], "layer1": [1]}
    assert {"summary.json", "steps.csv", "checkpoints.csv"} <= set(files)
