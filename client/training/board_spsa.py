"""SPSA training of an analog softmax layer with the board in the loop.

Host-held weights are programmed as absolute targets whenever they change;
the ± perturbations are applied on the board with the Perturb RPC (Δ from a
seed, never sent); the board computes the logits; the host computes the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sidra.client.training.analog_layer import AnalogLinear
from sidra.client.training.datasets import Dataset
from sidra.client.training.schedules import spall_gains
from sidra.client.training.softmax import accuracy, cross_entropy
from sidra.client.training.spsa import SPSAStep, minimize_spsa
from sidra.drivers import Board

__all__ = ["BoardSoftmaxObjective", "SPSATrainingResult", "evaluate_accuracy", "train_softmax_spsa"]

Array = npt.NDArray[np.float32]


class BoardSoftmaxObjective:
    """Cross-entropy of one minibatch at W ± cΔ, measured on the board.

    The same minibatch serves both signs (common random numbers: the loss
    difference then reflects the perturbation, not the sampling).
    """

    def __init__(
        self,
        layer: AnalogLinear,
        x: Array,
        y: npt.NDArray[np.int64],
        batch_size: int,
        rng: np.random.Generator,
    ) -> None:
        self.layer, self.x, self.y = layer, x, y
        self.batch_size = min(batch_size, len(x))
        self.rng = rng
        self.programmed: Array | None = None
        self.programs = 0

    def sync(self, weights: Array) -> None:
        """Program ``weights`` unless the board already holds them."""
        if self.programmed is None or not np.array_equal(weights, self.programmed):
            self.layer.program(weights)
            self.programmed = weights.copy()
            self.programs += 1

    def __call__(self, x: Array, seed: int, c: float) -> tuple[float, float]:
        self.sync(x)
        batch = self.rng.choice(len(self.x), self.batch_size, replace=False)
        xb, yb = self.x[batch], self.y[batch]
        losses = []
        for sign in (1, -1):
            self.layer.perturb(seed, c, sign)
            losses.append(cross_entropy(self.layer.forward(xb), yb))
            self.layer.ledger.charge_host_loss()
        return losses[0], losses[1]


@dataclass(frozen=True, slots=True)
class SPSATrainingResult:
    weights: Array
    test_accuracy: float
    train_accuracy: float
    steps: int
    loss_evaluations: int
    mvm_calls: int
    programs: int
    modeled_time_ns: float
    """Modeled hardware time of the whole run: board operations plus host losses."""
    modeled_energy_nj: float
    loss_history: list[float] = field(default_factory=list)


def evaluate_accuracy(
    layer: AnalogLinear, x: Array, y: npt.NDArray[np.int64], chunk: int = 1024
) -> float:
    """Accuracy of the programmed (unperturbed) layer on the board."""
    layer.restore()
    logits = np.concatenate([layer.forward(x[i : i + chunk]) for i in range(0, len(x), chunk)])
    return accuracy(logits, y)


def train_softmax_spsa(
    board: Board,
    data: Dataset,
    *,
    steps: int,
    seed: int,
    tile: int = 0,
    batch_size: int = 64,
    a: float = 0.3,
    c: float = 0.1,
    resamplings: int = 1,
    on_step: Callable[[SPSAStep], None] | None = None,
) -> SPSATrainingResult:
    """Trains a ``features → classes`` softmax layer on ``board`` with SPSA.

    ``a`` and ``c`` are Spall's gains in weight units (A = 10 % of ``steps``,
    α = 0.602, γ = 0.101); ``seed`` drives minibatches and perturbations.
    """
    rng = np.random.default_rng(seed)
    layer = AnalogLinear(board, tile, data.features, data.classes)
    objective = BoardSoftmaxObjective(layer, data.x_train, data.y_train, batch_size, rng)
    learning_rate, perturbation = spall_gains(a, c, steps)
    losses: list[float] = []

    def record(step: SPSAStep) -> None:
        losses.append(step.loss)
        if on_step is not None:
            on_step(step)

    result = minimize_spsa(
        objective,
        np.zeros(layer.shape, np.float32),
        steps=steps,
        learning_rate=learning_rate,
        perturbation=perturbation,
        rng=rng,
        resamplings=resamplings,
        bounds=(-layer.weight_limit, layer.weight_limit),
        callback=record,
    )
    objective.sync(result.x)
    test_accuracy = evaluate_accuracy(layer, data.x_test, data.y_test)
    train_accuracy = evaluate_accuracy(layer, data.x_train, data.y_train)
    return SPSATrainingResult(
        weights=result.x,
        test_accuracy=test_accuracy,
        train_accuracy=train_accuracy,
        steps=result.nit,
        loss_evaluations=result.nfev,
        mvm_calls=layer.mvm_calls,
        programs=objective.programs,
        modeled_time_ns=layer.ledger.total.time_ns,
        modeled_energy_nj=layer.ledger.total.energy_nj,
        loss_history=losses,
    )
