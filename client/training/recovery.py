"""Drift recovery: deploy a digitally trained network, age it, retrain the last layer on board.

The scenario of a deployed analog model: a 64→256→10 ReLU network trained in
software is programmed onto the board, the board ages (drift on its clock),
accuracy falls; the last layer is then retrained in place with exact host
gradients (hybrid training) while the drifted feature layer stays as it is,
and learns to compensate for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sidra.client.training.analog_layer import AnalogLinear
from sidra.client.training.datasets import Dataset
from sidra.client.training.hybrid import HybridNetwork
from sidra.client.training.softmax import accuracy
from sidra.drivers import Board

__all__ = ["RecoveryOptions", "RecoveryReport", "drift_recovery"]


@dataclass(frozen=True, slots=True)
class RecoveryOptions:
    hidden: int = 256
    age_s: float = 30 * 86_400.0
    """Board time between deployment and retraining, s (default 30 days)."""
    epochs: int = 5
    """Last-layer retraining epochs on the board."""
    learning_rate: float = 0.02
    batch_size: int = 32
    threshold: float = 0.1
    """Reprogram a head cell only once its target moved this far (weight units):
    PCM programming noise is ≈ 0.1 weight units here, so smaller writes add noise."""
    read_repeats: int = 4
    reference_column: bool = True
    """Offset mapping with a drifting reference column (see AnalogLinear)."""
    seed: int = 0


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    digital_accuracy: float
    """The software network before deployment."""
    deployed_accuracy: float
    """On the board right after programming."""
    aged_accuracy: float
    """On the board after ``age_s`` of drift."""
    recovered_accuracy: float
    """After last-layer retraining on the aged board."""
    device_writes: int
    """Cell writes spent by the retraining."""

    @property
    def recovered_fraction(self) -> float:
        """Share of the points lost to ageing that retraining won back."""
        lost = self.deployed_accuracy - self.aged_accuracy
        return (self.recovered_accuracy - self.aged_accuracy) / lost if lost > 0 else 1.0


def _train_digital(data: Dataset, hidden: int, seed: int) -> list[np.ndarray]:
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(
        hidden_layer_sizes=(hidden,), activation="relu", max_iter=300, random_state=seed
    )
    mlp.fit(data.x_train, data.y_train)
    return [
        np.vstack([w, b[None, :]]).astype(np.float32)
        for w, b in zip(mlp.coefs_, mlp.intercepts_, strict=True)
    ]


def drift_recovery(
    board: Board, data: Dataset, options: RecoveryOptions | None = None
) -> RecoveryReport:
    """Runs the scenario on ``board`` (needs a virtual clock: an emulated board)."""
    o = options or RecoveryOptions()
    w1, w2 = _train_digital(data, o.hidden, o.seed)
    limit1 = float(np.abs(w1).max()) * 1.05
    limit2 = float(np.abs(w2).max()) * 1.05
    # With a reference column, 256 hidden units need 257 columns: tile 3 takes the rest.
    features = AnalogLinear(
        board,
        (0, 3),
        data.features,
        o.hidden,
        weight_limit=limit1,
        read_repeats=o.read_repeats,
        reference_column=o.reference_column,
    )
    head = AnalogLinear(
        board,
        (1, 2),
        o.hidden,
        data.classes,
        weight_limit=limit2,
        input_clip=8.0,
        read_repeats=o.read_repeats,
        reference_column=o.reference_column,
    )
    h = np.maximum(np.hstack([data.x_test, np.ones((len(data.x_test), 1))]) @ w1, 0)
    digital = accuracy((np.hstack([h, np.ones((len(h), 1))]) @ w2).astype(np.float32), data.y_test)
    net = HybridNetwork([features, head], [w1, w2], trainable=1)
    deployed = accuracy(net.predict(data.x_test), data.y_test)
    board.advance_clock(o.age_s)
    aged = accuracy(net.predict(data.x_test), data.y_test)
    writes = board.stats().cell_writes
    retrain = HybridNetwork(
        [features, head], [w1, w2], trainable=1, program=False, threshold=o.threshold
    )
    rng = np.random.default_rng(o.seed)
    for _ in range(o.epochs):
        order = rng.permutation(len(data.x_train))
        for start in range(0, len(order), o.batch_size):
            batch = order[start : start + o.batch_size]
            retrain.step(data.x_train[batch], data.y_train[batch], o.learning_rate)
    recovered = accuracy(retrain.predict(data.x_test), data.y_test)
    return RecoveryReport(digital, deployed, aged, recovered, board.stats().cell_writes - writes)
