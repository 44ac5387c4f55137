"""Gradient estimators compared on the board under one loss-evaluation budget.

Every estimator trains the same ``features → classes`` softmax layer from zero
with host-held weights (programmed every ``program_every`` updates, one board
pass per minibatch, perturbations added digitally), Spall's learning-rate
sequence a_k = a/(A + k)^0.602 with A = 10 % of its steps, and as many steps
as the budget buys: an estimator that needs more evaluations per estimate
takes fewer, better-informed steps. Each run gets its own generator seeded
alike, and the same board, so the table compares the estimators alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sidra.drivers import Board
from sidra.training.analog_layer import AnalogLinear
from sidra.training.datasets import Dataset
from sidra.training.estimators import (
    AntitheticES,
    CentralDifferences,
    ForwardGradient,
    GradientEstimator,
    HostHeldAnyEvaluator,
    SPSAGradient,
    descend,
)
from sidra.training.schedules import SPALL_ALPHA, powerseries
from sidra.training.softmax import accuracy

__all__ = ["EstimatorResult", "compare_estimators", "standard_estimators"]


@dataclass(frozen=True, slots=True)
class EstimatorResult:
    name: str
    steps: int
    loss_evaluations: int
    """Loss evaluations the run asked for (steps × evaluations per estimate)."""
    test_accuracy: float
    mvm_calls: int
    device_writes: int
    modeled_time_ns: float
    modeled_energy_nj: float

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def standard_estimators(c: float = 0.2) -> dict[str, GradientEstimator[Any]]:
    """SPSA with 1 and 4 perturbations, central differences, forward gradient and
    antithetic ES, all with the same perturbation size ``c`` (weight units)."""
    return {
        "spsa": SPSAGradient(c),
        "spsa-4": SPSAGradient(c, resamplings=4),
        "central-differences": CentralDifferences(c),
        "forward-gradient": ForwardGradient(c),
        "antithetic-es": AntitheticES(c),
    }


def compare_estimators(
    board: Board,
    data: Dataset,
    budget: int,
    *,
    estimators: Mapping[str, GradientEstimator[Any]] | None = None,
    a: float = 0.5,
    seed: int = 0,
    batch_size: int = 64,
    program_every: int = 10,
    tile: int = 0,
    on_result: Callable[[EstimatorResult], None] | None = None,
) -> list[EstimatorResult]:
    """Trains one layer per estimator within ``budget`` loss evaluations each."""
    if budget < 1:
        raise ValueError(f"budget: got {budget}, expected >= 1 loss evaluation")
    results = []
    for name, estimator in (estimators or standard_estimators()).items():
        layer = AnalogLinear(board, tile, data.features, data.classes)
        per_step = estimator.evaluations_per_estimate(layer.shape)
        steps = budget // per_step
        if steps < 1:
            raise ValueError(
                f"budget: got {budget}, {name} needs {per_step} evaluations for one step"
            )
        rng = np.random.default_rng(seed)
        evaluator = HostHeldAnyEvaluator(
            layer, data.x_train, data.y_train, batch_size, rng, program_every
        )
        writes = board.stats().cell_writes
        learning_rate = powerseries(a, SPALL_ALPHA, 0.1 * steps)  # Spall's a_k, A = 10 %
        x, nfev = descend(
            estimator,
            evaluator,
            np.zeros(layer.shape, np.float32),
            steps,
            learning_rate,
            rng,
            bounds=(-layer.weight_limit, layer.weight_limit),
        )
        test = accuracy(evaluator.predict(x, data.x_test, final=True), data.y_test)
        result = EstimatorResult(
            name,
            steps,
            nfev,
            test,
            layer.mvm_calls,
            board.stats().cell_writes - writes,
            layer.ledger.total.time_ns,
            layer.ledger.total.energy_nj,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
