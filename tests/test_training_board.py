"""SPSA with the board in the loop: the analog layer mapping and a short real training run."""

from __future__ import annotations

import numpy as np

from sidra.client import RemoteBoard
from sidra.client.training import (
    AnalogLinear,
    BoardSoftmaxObjective,
    load_dataset,
    train_softmax_spsa,
)
from sidra.drivers import BoardDriver, open_board


def test_layer_forward_equals_host_matmul_on_ideal_board(remote: RemoteBoard) -> None:
    """Offset mapping + digital reference subtraction give exactly [x, 1]·W (float32)."""
    rng = np.random.default_rng(0)
    layer = AnalogLinear(remote, 2, inputs=64, outputs=10)
    w = rng.uniform(-1, 1, layer.shape).astype(np.float32)
    layer.program(w)
    x = rng.normal(size=(32, 64)).astype(np.float32)
    x_clipped = np.clip(x, -layer.input_clip, layer.input_clip)
    expected = np.hstack([x_clipped, np.ones((32, 1), np.float32)]) @ w
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-4, atol=1e-3)


def test_board_perturbation_is_weight_perturbation(remote: RemoteBoard) -> None:
    """Perturb by c in weight units on the board == host weights W ± cΔ(seed)."""
    from sidra.drivers import rademacher

    rng = np.random.default_rng(1)
    layer = AnalogLinear(remote, 0, inputs=8, outputs=3)
    w = rng.uniform(-0.5, 0.5, layer.shape).astype(np.float32)
    layer.program(w)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    xb = np.hstack([x, np.ones((5, 1), np.float32)])
    delta = rademacher(1234, layer.shape)
    for sign in (1, -1):
        layer.perturb(1234, 0.25, sign)
        np.testing.assert_allclose(layer.forward(x), xb @ (w + sign * 0.25 * delta), atol=1e-3)
    layer.restore()
    np.testing.assert_allclose(layer.forward(x), xb @ w, atol=1e-3)


def test_objective_counts_and_programs_only_on_change(ideal_driver: BoardDriver) -> None:
    data = load_dataset("digits")
    layer = AnalogLinear(ideal_driver, 0, data.features, data.classes)
    objective = BoardSoftmaxObjective(
        layer, data.x_train, data.y_train, 64, np.random.default_rng(0)
    )
    w = np.zeros(layer.shape, np.float32)
    objective(w, 1, 0.1)
    objective(w, 2, 0.1)
    assert objective.programs == 1
    objective(w + 0.01, 3, 0.1)
    assert objective.programs == 2
    assert layer.mvm_calls == 6  # one forward per sign per evaluation pair


def test_short_spsa_run_learns_digits_over_grpc(remote: RemoteBoard) -> None:
    """300 SPSA steps over real gRPC lift digits well above chance (10 %)."""
    data = load_dataset("digits")
    result = train_softmax_spsa(remote, data, steps=300, seed=0, a=0.5, c=0.2)
    assert result.loss_evaluations == 600
    # 600 training forwards + 1 test chunk (540) + 2 train chunks (1,257 in chunks of 1,024)
    assert result.mvm_calls == 600 + 1 + 2
    assert result.test_accuracy > 0.5
    assert result.loss_history[-1] < result.loss_history[0]


def test_training_is_reproducible_for_a_seed() -> None:
    data = load_dataset("digits")

    def run() -> np.ndarray:
        with open_board("emu://?preset=sidra-y1&seed=5") as board:
            return train_softmax_spsa(board, data, steps=30, seed=5).weights

    np.testing.assert_array_equal(run(), run())
