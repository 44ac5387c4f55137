"""Drift recovery: deploy a digitally trained network, age it, win the accuracy back on board.

The scenario of a deployed analog model: a 64→256→10 ReLU network trained in
software is programmed onto the board and the board ages (drift on its
clock), so accuracy falls. Recovery has two stages, reported separately:

1. **Calibrate** (optional, no writes): global drift compensation of every
   tile. It removes the drift common to a tile's cells, including the drift
   of the g_ref offset when that offset is subtracted digitally; the spread
   of drift between cells stays.
2. **Retrain the last layer** on the aged board with exact host gradients
   (hybrid training): the head is first rewritten to its weights (write-verify
   only pulses the cells drift moved off target) and recalibrated, then
   trained on the board's own drifted features while those stay frozen, so it
   learns to compensate for them.

Accuracy is measured with ``eval_read_repeats`` passes per input, so that
read noise does not hide differences of a few test samples.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from sidra.drivers import Board
from sidra.training.accounting import JobCounts, JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.datasets import Dataset
from sidra.training.hybrid import HybridNetwork
from sidra.training.options import RecoveryOptions
from sidra.training.records import STOPPED_AT
from sidra.training.softmax import accuracy
from sidra.training.stopping import stopped

__all__ = ["RecoveryReport", "drift_recovery", "recovery_files"]


def recovery_files(
    options: RecoveryOptions, data: Dataset, summary: dict[str, Any], named: str = ""
) -> dict[str, bytes]:
    """A drift-recovery run's record, by file name: ``settings.json`` (its options, job and
    data set: as ``named`` (default: as the run was told of it, :attr:`Dataset.named_as`),
    with a file's SHA-256, as every run's record names it) and ``summary.json``
    (``summary``), as a job keeps it in the server and ``sidra train drift-recovery`` saves
    it in ``--out``: ``sidra runs`` lists either, and ``--like`` takes its file again."""
    named_as = {"dataset": named or data.named_as}
    settings = options.settings() | {"job": "drift-recovery"} | data.settings() | named_as
    return {
        "settings.json": json.dumps(settings, indent=2).encode(),
        "summary.json": json.dumps(summary, indent=2).encode(),
    }


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    digital_accuracy: float
    """The software network before deployment."""
    deployed_accuracy: float
    """On the board right after programming."""
    aged_accuracy: float
    """On the board after ``age_days`` of drift."""
    calibrated_accuracy: float
    """After global drift compensation (equals ``aged_accuracy`` without it)."""
    recovered_accuracy: float
    """After last-layer retraining on the aged board."""
    retraining: JobCounts
    """What the retraining spent (head rewrite and recalibration included)."""
    calibration_gains: tuple[float, ...] = ()
    """Output gain Calibrate applied to each tile of the network, features first."""
    stopped_at_epoch: int | None = None
    """The retraining epochs made when a stop ended it early (None: all of them)."""
    digital_iterations: int = 0
    """Epochs the software network trained for (scikit-learn's ``n_iter_``)."""
    digital_converged: bool = True
    """Whether its training converged before ``DIGITAL_MAX_ITER`` epochs (scikit-learn
    says so in a ConvergenceWarning, reported here instead)."""

    @property
    def device_writes(self) -> int:
        """Cell writes spent by the retraining (head rewrite included)."""
        return self.retraining.device_writes

    @property
    def recovered_fraction(self) -> float:
        """Share of the points lost to ageing that the whole recovery won back."""
        return _share(self.deployed_accuracy, self.aged_accuracy, self.recovered_accuracy)

    @property
    def retraining_fraction(self) -> float:
        """Share of the points still lost after calibration that retraining won back."""
        return _share(self.deployed_accuracy, self.calibrated_accuracy, self.recovered_accuracy)

    def summary(self) -> dict[str, Any]:
        """The figures ``sidra train drift-recovery --json`` prints (time ns, energy nJ)."""
        spent = self.retraining
        return {
            "digital_accuracy": self.digital_accuracy,
            "deployed_accuracy": self.deployed_accuracy,
            "aged_accuracy": self.aged_accuracy,
            "calibrated_accuracy": self.calibrated_accuracy,
            "recovered_accuracy": self.recovered_accuracy,
            "recovered_fraction": self.recovered_fraction,
            "retraining_fraction": self.retraining_fraction,
            "device_writes": self.device_writes,
            "calibration_gains": list(self.calibration_gains),
            "digital_iterations": self.digital_iterations,
            "digital_converged": self.digital_converged,
            "retraining_loss_evaluations": spent.loss_evaluations,
            "retraining_mvm_calls": spent.mvm_calls,
            "retraining_time_ns": spent.modeled_time_ns,
            "retraining_energy_nj": spent.modeled_energy_nj,
        } | ({} if self.stopped_at_epoch is None else {"stopped_at_epoch": self.stopped_at_epoch})


def _share(before: float, after: float, recovered: float) -> float:
    lost = before - after
    return (recovered - after) / lost if lost > 0 else 1.0


@dataclass(frozen=True, slots=True)
class _Digital:
    weights: list[np.ndarray]
    """[W; b] of each layer."""
    accuracy: float
    iterations: int
    converged: bool


DIGITAL_MAX_ITER = 300
"""Most epochs the software network trains for, epochs."""


def _train_digital(data: Dataset, hidden: int, seed: int) -> _Digital:
    """A scikit-learn MLP trained on ``data``: its weights, test accuracy and whether it
    converged (not printed as a warning: the report says so)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(
        hidden_layer_sizes=(hidden,), activation="relu", max_iter=DIGITAL_MAX_ITER,
        random_state=seed,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(data.x_train, data.y_train)
    weights = [
        np.vstack([w, b[None, :]]).astype(np.float32)
        for w, b in zip(mlp.coefs_, mlp.intercepts_, strict=True)
    ]
    if weights[-1].shape[1] == 1:
        # Two classes: scikit-learn keeps one logistic output z, P(1) = σ(z). The head has
        # one output per class; logits (−z/2, z/2) give the same P(1) under softmax.
        half = weights[-1] / 2
        weights[-1] = np.hstack([-half, half])
    iterations = int(mlp.n_iter_)
    accuracy = float(mlp.score(data.x_test, data.y_test))
    return _Digital(weights, accuracy, iterations, iterations < DIGITAL_MAX_ITER)


@contextmanager
def _read_repeats(layers: Sequence[AnalogLinear], repeats: int) -> Iterator[None]:
    saved = [layer.read_repeats for layer in layers]
    for layer in layers:
        layer.read_repeats = repeats
    try:
        yield
    finally:
        for layer, value in zip(layers, saved, strict=True):
            layer.read_repeats = value


def drift_recovery(
    board: Board,
    data: Dataset,
    options: RecoveryOptions | None = None,
    *,
    stop: threading.Event | None = None,
) -> RecoveryReport:
    """Runs the scenario on ``board`` (needs a virtual clock: an emulated board). Once
    ``stop`` is set the retraining ends after the epoch under way (its first, if set
    before), the recovered accuracy is measured there and the report's
    ``stopped_at_epoch`` says after which."""
    o = options or RecoveryOptions()
    trained = _train_digital(data, o.hidden, o.seed)
    (w1, w2), digital = trained.weights, trained.accuracy
    net = _deploy(board, data, o, w1, w2)
    features, head = net.layers

    def test_accuracy() -> float:
        with _read_repeats(net.layers, o.eval_read_repeats):
            return accuracy(net.predict(data.x_test), data.y_test)

    deployed = test_accuracy()
    board.advance_clock(o.age_days * 86_400.0)
    aged = calibrated = test_accuracy()
    gains: list[float] = []
    if o.calibrate:
        gains = features.calibrate() + head.calibrate()
        calibrated = test_accuracy()
    meter = JobMeter(board, net.layers)
    # Rewrite the head as deployed: drift moved its cells; features stay aged.
    head.program(w2)
    if o.calibrate:
        head.calibrate()
    rng = np.random.default_rng(o.seed)
    ended: dict[str, Any] = {}
    for epoch in range(1, o.epochs + 1):
        losses = net.epoch(data.x_train, data.y_train, o.learning_rate, o.batch_size, rng)
        meter.charge_losses(len(losses))
        if stopped(stop, ended, epoch, o.epochs):
            break
    retraining = meter.read()
    recovered = test_accuracy()
    return RecoveryReport(
        digital, deployed, aged, calibrated, recovered, retraining, tuple(gains),
        ended.get(f"{STOPPED_AT}epoch"), trained.iterations, trained.converged,
    )  # fmt: skip


def _deploy(
    board: Board, data: Dataset, o: RecoveryOptions, w1: np.ndarray, w2: np.ndarray
) -> HybridNetwork:
    """The digital weights programmed on the board, each layer mapped to 1.05× its
    largest weight; only the head is trainable."""
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
    return HybridNetwork([features, head], [w1, w2], trainable=1, threshold=o.threshold)
