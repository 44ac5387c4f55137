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
from sidra.training.accounting import JobMeter
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
from sidra.training.options import CompareOptions, EstimatorName
from sidra.training.placement import LayerShape, place
from sidra.training.schedules import SPALL_ALPHA, powerseries
from sidra.training.softmax import accuracy

__all__ = ["EstimatorResult", "compare_estimators", "standard_estimators"]


@dataclass(frozen=True, slots=True)
class EstimatorResult:
    """One estimator's run."""

    name: str
    steps: int
    """Steps the budget bought (budget // evaluations per estimate)."""
    loss_evaluations: int
    """Loss evaluations the run asked for (steps × evaluations per estimate)."""
    test_accuracy: float
    """Final test accuracy, the weights programmed (fraction, 0 … 1)."""
    mvm_calls: int
    device_writes: int
    """Cell writes the run spent."""
    modeled_time_ns: float
    """Modeled hardware time, ns."""
    modeled_energy_nj: float
    """Modeled hardware energy, nJ."""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def standard_estimators(c: float = 0.2) -> dict[EstimatorName, GradientEstimator[Any]]:
    """SPSA with 1 and 4 perturbations, central differences, forward gradient and
    antithetic ES, all with the same perturbation size ``c`` (weight units)."""
    return {
        EstimatorName.SPSA: SPSAGradient(c),
        EstimatorName.SPSA_4: SPSAGradient(c, resamplings=4),
        EstimatorName.CENTRAL_DIFFERENCES: CentralDifferences(c),
        EstimatorName.FORWARD_GRADIENT: ForwardGradient(c),
        EstimatorName.ANTITHETIC_ES: AntitheticES(c),
    }


def compare_estimators(
    board: Board,
    data: Dataset,
    options: CompareOptions | None = None,
    *,
    estimators: Mapping[str, GradientEstimator[Any]] | None = None,
    on_result: Callable[[EstimatorResult], None] | None = None,
) -> list[EstimatorResult]:
    """Trains one layer per estimator within ``options.budget`` loss evaluations each.

    ``estimators`` replaces the standard ones (``options.estimators`` of
    :func:`standard_estimators` with ``options.c``) by any named set.
    """
    o = options or CompareOptions()
    if estimators is None:
        standard = standard_estimators(o.c)
        estimators = {str(name): standard[name] for name in o.estimators}
    results = []
    for name, estimator in estimators.items():
        result = _train(board, data, name, estimator, o)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _train(
    board: Board,
    data: Dataset,
    name: str,
    estimator: GradientEstimator[Any],
    o: CompareOptions,
) -> EstimatorResult:
    """One estimator's run: as many steps as the budget buys, from zero weights."""
    tiles = place(board.info, [LayerShape("layer", data.features, data.classes)], allowed=o.tiles)
    layer = AnalogLinear(board, tiles.of("layer"), data.features, data.classes)
    per_step = estimator.evaluations_per_estimate(layer.shape)
    steps = o.budget // per_step
    if steps < 1:
        raise ValueError(
            f"budget: got {o.budget}, {name} needs {per_step} evaluations for one step"
        )
    rng = np.random.default_rng(o.seed)
    evaluator = HostHeldAnyEvaluator(
        layer, data.x_train, data.y_train, o.batch_size, rng, o.program_every
    )
    meter = JobMeter(board, [layer])
    learning_rate = powerseries(o.a, SPALL_ALPHA, 0.1 * steps)  # Spall's a_k, A = 10 %
    x, _ = descend(
        estimator,
        evaluator,
        np.zeros(layer.shape, np.float32),
        steps,
        learning_rate,
        rng,
        bounds=(-layer.weight_limit, layer.weight_limit),
    )
    test = accuracy(evaluator.predict(x, data.x_test, final=True), data.y_test)
    spent = meter.read()
    return EstimatorResult(
        name,
        steps,
        spent.loss_evaluations,
        test,
        spent.mvm_calls,
        spent.device_writes,
        spent.modeled_time_ns,
        spent.modeled_energy_nj,
    )
