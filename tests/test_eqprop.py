"""Equilibrium propagation (sidra train eqprop): the exact gradient at the free equilibrium,
the update's agreement with it for small β, the settling loop's termination and call count
on an emulator board, a short run learning digits, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sidra.drivers import Board, open_board
from sidra.training import (
    AnalogLinear,
    EqPropOptions,
    EquilibriumNetwork,
    HybridNetwork,
    equilibrium_gradients,
    load_dataset,
    train_eqprop,
)
from sidra.training.eqprop import host_equilibrium, state_clip
from sidra.training.gradients import cosine, numerical_gradient
from tests.cli_support import assert_model_runs_as_trained, run_sidra


def _problem(sizes: list[int], seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Couplings large enough that the feedback matters, a minibatch and one-hot targets."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        w = rng.uniform(-0.8, 0.8, (n_in + 1, n_out)).astype(np.float32)
        w[-1] = rng.uniform(0.0, 0.5, n_out)
        weights.append(w)
    x = rng.normal(size=(8, sizes[0])).astype(np.float32)
    target = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], 8)]
    return weights, x, target


def _network(board: Board, sizes: list[int], weights: list[np.ndarray], **settle: float
             ) -> EquilibriumNetwork:  # fmt: skip
    layers, tile = [], 0
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        # Each coupling on the next free tiles (as many as it needs).
        layer = AnalogLinear(board, list(range(tile, board.info.tile_count)), n_in, n_out,
                             weight_limit=1.0, digital_bias=True,
                             input_clip=state_clip(board.info, n_in) if i else 4.0)  # fmt: skip
        tile += len(layer.blocks)
        layers.append(layer)
    programmed = HybridNetwork(layers, weights, trainable=len(layers))
    return EquilibriumNetwork(programmed.layers, **settle)


def test_the_exact_gradient_is_the_derivative_of_the_cost_at_the_free_equilibrium() -> None:
    """equilibrium_gradients (implicit differentiation) against central differences of the
    cost at the host's free equilibrium, for every coupling and bias of a 5-6-4-3 network."""
    weights, x, target = _problem([5, 6, 4, 3])
    exact = equilibrium_gradients(weights, x, target)

    def cost(k: int, flat: np.ndarray) -> float:
        changed = [w.astype(np.float64) for w in weights]
        changed[k] = flat.reshape(changed[k].shape)
        output = host_equilibrium(changed, x)[-1]
        return float(0.5 * np.mean(np.sum((output - target) ** 2, axis=1)))

    for k, w in enumerate(weights):
        flat = w.astype(np.float64).ravel()
        numeric = numerical_gradient(lambda v, k=k: cost(k, v), flat, 1e-6).reshape(w.shape)
        assert np.abs(exact[k]).max() > 1e-3  # every coupling matters to the cost
        np.testing.assert_allclose(exact[k], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("symmetric", [True, False])
def test_the_update_points_along_the_exact_gradient_for_a_small_beta(symmetric: bool) -> None:
    """On the ideal board, free and nudged phases settled by MVM and TransposeMVM: the
    contrast of the two equilibria over β is the exact gradient (cosine near 1)."""
    sizes = [5, 6, 4, 3]
    weights, x, target = _problem(sizes)
    beta = 0.005
    with open_board("emu://?preset=ideal") as board:
        net = _network(board, sizes, weights, tolerance=1e-7)
        drive = net.input_drive(x)
        free = net.settle(drive, net.zero_states(len(x)), 1000)
        plus = net.settle(drive, free.states, 1000, beta=beta, target=target)
        if symmetric:
            minus = net.settle(drive, free.states, 1000, beta=-beta, target=target)
            estimate = net.estimate(x, plus, minus, beta, -beta)
        else:
            estimate = net.estimate(x, plus, free, beta, 0.0)
    assert free.settled and plus.settled
    for k, exact in enumerate(equilibrium_gradients(weights, x, target)):
        assert cosine(estimate[k], exact) > 0.999, k


def test_settling_stops_at_the_tolerance_or_the_cap_and_counts_every_call() -> None:
    """A 64 → 300 → 10 network on an emulator board: each coupling spans two tiles, so a
    sweep is two MVMs and two TransposeMVMs of the upper coupling; the board's own count
    of vectors passed agrees with the calls counted."""
    sizes = [64, 300, 10]
    rng = np.random.default_rng(4)
    weights = [rng.uniform(-0.1, 0.1, (n + 1, m)).astype(np.float32)
               for n, m in zip(sizes[:-1], sizes[1:], strict=True)]  # fmt: skip
    x = rng.normal(size=(16, 64)).astype(np.float32)
    with open_board("emu://?preset=ideal") as board:
        net = _network(board, sizes, weights, tolerance=1e-4)
        assert [len(layer.blocks) for layer in net.layers] == [2, 2]
        passes = board.stats().mvm_passes
        drive = net.input_drive(x)
        settled = net.settle(drive, net.zero_states(len(x)), 200)
        assert settled.settled and 1 < settled.iterations < 200
        assert settled.mvm_calls == 4 * settled.iterations
        repeats = net.layers[0].read_repeats
        calls = 2 + settled.mvm_calls  # the input's drive: one MVM per block
        assert board.stats().mvm_passes - passes == calls * len(x) * repeats
    with open_board("emu://?preset=sidra-y1&seed=3") as board:  # read noise: never settles
        net = _network(board, sizes, weights, tolerance=1e-6)
        capped = net.settle(net.input_drive(x), net.zero_states(len(x)), 3)
        assert (capped.settled, capped.iterations, capped.mvm_calls) == (False, 3, 12)


def test_a_short_run_learns_and_reports_the_settling_cost() -> None:
    data = load_dataset("digits")
    # Noiseless: plain fixed-point sweeps, the whole window, a constant rate.
    options = EqPropOptions(hidden=(32,), epochs=2, final_learning_rate=None, damping=1.0,
                            weight_limit=1.0, cosine_every=10)  # fmt: skip
    with open_board("emu://?preset=ideal") as board:
        record = train_eqprop(board, data, options)
    summary = record.summary()
    assert summary["test_accuracy"] > 0.6  # chance: 0.1
    assert summary["placement"] == {"coupling0": [0], "coupling1": [1]}
    steps = summary["steps"]
    assert steps == 2 * int(np.ceil(len(data.x_train) / 32))
    assert 1 <= summary["free_iterations_mean"] <= summary["free_iterations_max"] <= 20
    assert 1 <= summary["nudged_iterations_mean"] <= summary["nudged_iterations_max"] <= 10
    # Training: per step the input's drive, then 2 calls a sweep of the free and of both
    # nudged phases; the test and training accuracy passes come on top.
    per_step = summary["free_mvm_calls_per_step"] + summary["nudged_mvm_calls_per_step"]
    assert summary["training_mvm_calls"] == pytest.approx(steps * (1 + per_step), abs=1)
    assert summary["mvm_calls"] > summary["training_mvm_calls"]
    assert len(summary["gradient_cosine"]) == 2
    assert all(0.0 < c <= 1.0 for c in summary["gradient_cosine"])


def test_the_cli_runs_eqprop_and_refuses_a_bad_option(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_sidra(
        "train", "eqprop", "--board", "emu://?preset=ideal", "--hidden", "16", "--epochs", "1",
        "--batch-size", "256", "--free-iterations", "5", "--nudged-iterations", "3",
        "--json", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {"test_accuracy", "loss_evaluations", "mvm_calls", "device_writes",
            "modeled_time_ns", "modeled_energy_nj", "free_iterations_mean",
            "nudged_iterations_max", "training_mvm_calls_per_example"} <= set(summary)  # fmt: skip
    saved = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"summary.json", "settings.json", "steps.csv", "checkpoints.csv", "plot.png",
            "model.npz"} <= saved  # fmt: skip
    # The network runs from its file on another noiseless board, settled as the run
    # settled it; predict writes the settled output states.
    states = assert_model_runs_as_trained(
        tmp_path / "run", summary, "settle; states in [0, 1] swept", "outputs", tmp_path
    )
    assert states.min() >= 0.0 and states.max() <= 1.0
    refused = run_sidra("train", "eqprop", "--beta", "1.5", "--nudging", "symmetric")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--beta: got 1.5; input should be less than 1" in " ".join(refused.stderr.split())


def test_the_state_voltage_keeps_a_couplings_outputs_inside_the_adc() -> None:
    """States are all non-negative, so a column carries g_ref·ΣV besides its signal: at
    the full voltage 128 states of a 128→10 coupling clip sidra-y1's ADC on every
    output; at state_clip's scale none clip."""
    rng = np.random.default_rng(0)
    states = rng.uniform(0.0, 1.0, (64, 128)).astype(np.float32)
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        assert state_clip(board.info, 128) == pytest.approx(128 * 20.5 * 0.2 / 160.0)
        saturated = {}
        for clip in (1.0, state_clip(board.info, 128)):
            layer = AnalogLinear(board, 1, 128, 10, weight_limit=0.3, digital_bias=True,
                                 input_clip=clip)  # fmt: skip
            layer.program(rng.uniform(-0.2, 0.2, (129, 10)).astype(np.float32))
            volts = layer.input_volts(states)
            saturated[clip] = board.mvm(1, volts, layer.region).saturated_outputs
    assert saturated[1.0] == 64 * 10
    assert saturated[state_clip(board.info, 128)] == 0
    with open_board("emu://?preset=ideal") as ideal:
        assert state_clip(ideal.info, 128) == 1.0  # ideal converters never clip
