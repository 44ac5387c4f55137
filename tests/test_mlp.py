"""Full-depth analog training (sidra train mlp): the board's gradients through every layer,
the exact gradients they are compared with, and a short run learning digits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sidra.drivers import open_board
from sidra.training import (
    AnalogLinear,
    HybridNetwork,
    MLPOptions,
    exact_gradients,
    load_dataset,
    train_mlp,
)
from sidra.training.mlp import epoch_rates, train_network
from tests.cli_support import run_sidra


def _network(board, sizes, seed=0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    layers, weights = [], []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weights.append(rng.normal(0, np.sqrt(2 / n_in), (n_in + 1, n_out)).astype(np.float32) / 2)
        layers.append(AnalogLinear(board, i, n_in, n_out, weight_limit=1.0, digital_bias=True,
                                   input_clip=4.0 if i == 0 else 6.0))  # fmt: skip
    return HybridNetwork(layers, weights, trainable=len(layers))


def test_exact_gradients_are_the_host_networks_derivatives() -> None:
    """exact_gradients against central differences of the host network's loss."""
    with open_board("emu://?preset=ideal&seed=2") as board:
        net = _network(board, [6, 5, 4, 3])
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=(8, 6)).astype(np.float32), rng.integers(0, 3, 8)

        def loss(layer: int, w: np.ndarray) -> float:
            weights = [v.astype(np.float64) for v in net.weights]
            weights[layer] = w
            h = x.astype(np.float64)
            for i, (lay, v) in enumerate(zip(net.layers, weights, strict=True)):
                h = np.hstack([np.clip(h, -lay.input_clip, lay.input_clip), np.ones((8, 1))]) @ v
                if i < len(weights) - 1:
                    h = np.maximum(h, 0.0)
            h = h - h.max(axis=1, keepdims=True)  # float64 cross-entropy
            return float(np.mean(np.log(np.exp(h).sum(axis=1)) - h[np.arange(8), y]))

        for layer, exact in enumerate(exact_gradients(net, x, y)):
            w0 = net.weights[layer].astype(np.float64)
            numeric = np.zeros_like(w0)
            for index in np.ndindex(w0.shape):
                step = np.zeros_like(w0)
                step[index] = 1e-6
                numeric[index] = (loss(layer, w0 + step) - loss(layer, w0 - step)) / 2e-6
            np.testing.assert_allclose(exact, numeric, rtol=1e-5, atol=1e-8)


def test_the_boards_gradients_through_every_layer_match_on_an_ideal_board() -> None:
    """Forward by MVM and δ down by TransposeMVM on the ideal board give every layer the
    exact gradient (cosine > 0.999): what noise then degrades on a real board."""
    data = load_dataset("digits")
    with open_board("emu://?preset=ideal&seed=3") as board:
        net = _network(board, [data.features, 32, 16, data.classes])
        x, y = data.x_train[:64], data.y_train[:64]
        _, analog = net.gradients(x, y)
        for a, e in zip(analog, exact_gradients(net, x, y), strict=True):
            assert a is not None
            cosine = float(np.ravel(a) @ np.ravel(e)) / (np.linalg.norm(a) * np.linalg.norm(e))
            assert cosine > 0.999


def test_a_short_run_learns_and_reports_each_layers_cosine() -> None:
    data = load_dataset("digits")
    options = MLPOptions(hidden=(32,), epochs=3, learning_rate=0.2, cosine_every=10)
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        record = train_mlp(board, data, options)
    summary = record.summary()
    assert summary["test_accuracy"] > 0.8
    assert summary["placement"] == {"layer0": [0], "layer1": [1]}
    assert len(summary["gradient_cosine"]) == 2
    assert all(0.0 < c <= 1.0 for c in summary["gradient_cosine"])
    assert summary["mvm_calls"] > 0 and summary["device_writes"] > 0


def test_the_cli_runs_an_mlp_and_refuses_one_that_does_not_fit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_sidra(
        "train", "mlp", "--board", "emu://?preset=ideal", "--hidden", "16", "--epochs", "1",
        "--json", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert {"test_accuracy", "loss_evaluations", "mvm_calls", "device_writes",
            "modeled_time_ns", "modeled_energy_nj", "gradient_cosine"} <= set(summary)  # fmt: skip
    refused = run_sidra(
        "train", "mlp", "--board", "emu://?preset=ideal", "--hidden", "16", "--hidden", "16",
        "--tiles", "0", "--tiles", "1",
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "layer layer2: 16 x 10 needs 1 tile(s)" in refused.stderr


@pytest.mark.parametrize("hidden", [(), (0,)])
def test_options_refuse_an_empty_or_zero_width_hidden_layer(hidden: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="hidden"):
        MLPOptions(hidden=hidden)


def test_trainable_freezes_the_lower_layers_and_their_cosine_is_none() -> None:
    """--trainable 1: the same network with the output layer trained alone: the hidden
    layer's tile is programmed once (its initial weights) and never again, no
    TransposeMVM runs, and the frozen layer's cosine is None."""
    from collections import Counter

    from sidra.drivers.requests import ProgramRequest

    data = load_dataset("digits")
    options = MLPOptions(hidden=(32,), epochs=1, cosine_every=10, trainable=1)
    calls: Counter[tuple[str, int]] = Counter()
    with open_board("emu://?preset=ideal&seed=1") as board:
        run = board.run

        def counting(request):  # type: ignore[no-untyped-def]
            calls[(type(request).__name__, getattr(request, "tile", -1))] += 1
            return run(request)

        board.run = counting  # type: ignore[method-assign]
        record = train_mlp(board, data, options)
    summary = record.summary()
    assert calls[(ProgramRequest.__name__, 0)] == 1  # the hidden layer: placed on tile 0
    assert calls[(ProgramRequest.__name__, 1)] > 1  # the output layer learns
    assert not any(name == "TransposeMVMRequest" for name, _ in calls)
    assert summary["gradient_cosine"][0] is None and summary["gradient_cosine"][1] > 0.99
    assert summary["test_accuracy"] > 0.5


def test_trainable_beyond_the_depth_is_refused_naming_the_layers() -> None:
    with pytest.raises(ValueError, match=r"trainable: got 3, expected 1 \.\. 2"):
        MLPOptions(hidden=(32,), trainable=3)


def test_a_schedule_runs_in_parts_from_given_weights() -> None:
    """train_network runs a part of the schedule (its epochs numbered as in the whole,
    its learning rates those epochs'), from weights it is given; a part outside the
    schedule and weights of the wrong shape are refused, naming what was wrong."""
    data = load_dataset("digits")
    options = MLPOptions(hidden=(16,), epochs=4, learning_rate=0.2, final_learning_rate=0.05)
    assert np.allclose(epoch_rates(options), [0.2, 0.15, 0.1, 0.05])
    with open_board("emu://?preset=ideal&seed=4") as board:
        _, first = train_network(board, data, options, HybridNetwork, epochs=slice(0, 3))
        epochs: list[int] = []
        record, last = train_network(
            board, data, options, HybridNetwork, epochs=slice(3, None),
            initial=first.weights, on_epoch=lambda epoch, _: epochs.append(epoch),
        )  # fmt: skip
        assert epochs == [4]
        assert record.steps == -(-len(data.x_train) // options.batch_size)
        assert record.test_accuracy > 0.85  # went on from the first part's weights
        with pytest.raises(ValueError, match=r"epochs: got slice\(4, None, None\)"):
            train_network(board, data, options, HybridNetwork, epochs=slice(4, None))
        wrong = [w[:-1] for w in last.weights]
        with pytest.raises(
            ValueError, match=r"initial\[0\]: got shape \(64, 16\), expected \(65, 16\)"
        ):
            train_network(board, data, options, HybridNetwork, initial=wrong)
