"""Training methods compared on one loss-evaluation budget and one board, over seeds.

The gradient estimators (SPSA with 1 and 4 perturbations, central differences,
forward gradient, antithetic ES) each train the same ``features → classes`` softmax
layer from zero with host-held weights (programmed every ``program_every`` updates,
one board pass per minibatch, the passes of the steps one Program serves drawn ahead
and sent with it in one MVM call, perturbations added digitally), Spall's learning-rate
sequence a_k = a/(A + k)^0.602 with A = 10 % of its steps, and as many steps as the
budget buys: an estimator that needs more evaluations per estimate takes fewer,
better-informed steps. The whole algorithms run as their own jobs do, with their own
defaults, sized by the same budget: on-board SPSA (``sidra train spsa --mode board``)
takes budget / 2 steps; the minibatch algorithms (last-layer, full-depth ``mlp``,
forward-forward with exact local gradients or layer-local SPSA, equilibrium
propagation) run as many whole epochs as the budget buys at their own loss
evaluations per minibatch step (one; forward-forward one per layer, twice that with
SPSA). Their other settings are their jobs' defaults, but for test-accuracy
checkpoints, taken once at the end.

Every method runs once per seed on the same board (its generator seeded alike for
all methods), so the table compares the methods alone; :class:`Comparison` holds the
runs and gives each method's mean and spread over the seeds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sidra.drivers import Board, BoardInfo
from sidra.training.accounting import JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.board_spsa import minibatch_stream, train_softmax_spsa
from sidra.training.compare_record import PLANNED_RUNS, Comparison, MethodResult
from sidra.training.datasets import Dataset, Shaped
from sidra.training.eqprop import eqprop_placement, train_eqprop
from sidra.training.estimators import (
    AntitheticES,
    CentralDifferences,
    ForwardGradient,
    GradientEstimator,
    HostHeldAnyEvaluator,
    SPSAGradient,
    descend,
)
from sidra.training.forward_forward import ff_placement, train_forward_forward
from sidra.training.hybrid import last_layer_placement, train_last_layer
from sidra.training.mlp import mlp_placement, train_mlp
from sidra.training.options import (
    ESTIMATOR_METHODS,
    CompareOptions,
    EqPropOptions,
    EstimatorName,
    FFEstimator,
    FFOptions,
    LastLayerOptions,
    MethodName,
    MLPOptions,
    PerturbationMode,
    SPSAOptions,
)
from sidra.training.placement import LayerShape, Placement, claimed, place
from sidra.training.records import TrainingRecord
from sidra.training.schedules import SPALL_ALPHA, powerseries
from sidra.training.softmax import accuracy
from sidra.training.stopping import RunInterrupted, stopped

__all__ = ["compare_methods", "compare_tiles", "standard_estimators"]


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


def compare_methods(
    board: Board,
    data: Dataset,
    options: CompareOptions | None = None,
    *,
    estimators: Mapping[str, GradientEstimator[Any]] | None = None,
    on_result: Callable[[MethodResult], None] | None = None,
    stop: threading.Event | None = None,
) -> Comparison:
    """Runs every method of ``options.methods`` once per seed of ``options.seeds``
    (seeds outer, so every method has a first result early), each within
    ``options.budget`` loss evaluations. Once ``stop`` is set the comparison ends after
    the run under way, its settings' ``stopped_at_run`` the runs it made.

    ``estimators`` replaces the gradient estimators (``options.methods`` that are
    estimators, built by :func:`standard_estimators` with ``options.c``) by any named
    set, run before the algorithms.

    Raises ``ValueError`` naming the method when the budget does not buy it one step
    (or one epoch), and PlacementError (a ValueError) naming the layer when a method's
    network does not fit the board, before any run starts.
    """
    o = options or CompareOptions()
    compare_tiles(board.info, data, o)  # every method's network fits, or none runs
    runs: dict[str, Callable[[int], MethodResult]] = {}
    standard = standard_estimators(o.c)
    if estimators is not None:
        for name, estimator in estimators.items():
            runs[name] = _estimator_run(board, data, o, name, estimator)
    for method in o.methods:
        if method not in ESTIMATOR_METHODS:
            runs[str(method)] = _ALGORITHMS[method](board, data, o)
        elif estimators is None:
            estimator = standard[EstimatorName(str(method))]
            runs[str(method)] = _estimator_run(board, data, o, str(method), estimator)
    total = len(o.seeds) * len(runs)
    # Its record is saved run by run: the runs it is to make tell one ended part-way
    # (killed, its record then holding fewer) from one finished (sidra.training.saved_runs).
    comparison = Comparison(
        o.settings() | {"job": "compare"} | data.settings() | {PLANNED_RUNS: total}
    )
    for seed in o.seeds:
        for run in runs.values():
            try:
                result = run(seed)
            except RunInterrupted as lost:
                # A comparison keeps whole runs only: one cut short by its board is not
                # one of them, and the board's error ends the comparison as it is.
                raise lost.cause from None
            comparison.runs.append(result)
            if on_result is not None:
                on_result(result)
            if stopped(stop, comparison.settings, len(comparison.runs), total, "run"):
                return comparison
    return comparison


def compare_tiles(
    info: BoardInfo, data: Shaped, o: CompareOptions, order: Sequence[int] = ()
) -> tuple[int, ...]:
    """Every tile the methods of ``o`` place a layer on, for ``data``'s shape on a board
    described by ``info`` whose tiles a layer allowed any takes in ``order``
    (:func:`tile_order`): what a comparison run as a job claims. PlacementError (a
    ValueError) when a method's network does not fit."""
    placements: list[Placement] = []
    if any(m in ESTIMATOR_METHODS or m is MethodName.SPSA_BOARD for m in o.methods):
        placements.append(place(info, [LayerShape("layer", data.features, data.classes)],
                                allowed=o.tiles, order=order))  # fmt: skip
    if MethodName.LAST_LAYER in o.methods:
        placements.append(last_layer_placement(info, data.features, data.classes,
                                               LastLayerOptions(tiles=o.tiles), order))  # fmt: skip
    if MethodName.MLP in o.methods:
        placements.append(mlp_placement(info, data, MLPOptions(tiles=o.tiles), order))
    if MethodName.FF in o.methods or MethodName.FF_SPSA in o.methods:
        placements.append(ff_placement(info, data, FFOptions(tiles=o.tiles), order))
    if MethodName.EQPROP in o.methods:
        placements.append(eqprop_placement(info, data, EqPropOptions(tiles=o.tiles), order))
    return tuple(sorted({t for p in placements for t in p.used}))


def _estimate_steps(
    name: str, estimator: GradientEstimator[Any], data: Dataset, o: CompareOptions
) -> int:
    """Steps ``o.budget`` buys ``estimator`` on the softmax layer of ``data``."""
    per_step = estimator.evaluations_per_estimate((data.features + 1, data.classes))
    return _whole(name, o.budget, per_step, "one step")


def _whole(name: str, budget: int, per_unit: int, unit: str) -> int:
    """Whole units of ``per_unit`` loss evaluations within ``budget``; at least one."""
    count = budget // per_unit
    if count < 1:
        raise ValueError(
            f"budget: got {budget}, expected at least {per_unit}: {name} needs {per_unit} "
            f"evaluations for {unit}"
        )
    return count


def _estimator_run(
    board: Board, data: Dataset, o: CompareOptions, name: str, estimator: GradientEstimator[Any]
) -> Callable[[int], MethodResult]:
    steps = _estimate_steps(name, estimator, data, o)

    def run(seed: int) -> MethodResult:
        """One estimator's run: as many steps as the budget buys, from zero weights."""
        shape = LayerShape("layer", data.features, data.classes)
        tiles = claimed(
            board,
            lambda order: place(board.info, [shape], allowed=o.tiles, order=order),
            named=o.tiles,
        )
        layer = AnalogLinear(board, tiles.of("layer"), data.features, data.classes)
        rng = np.random.default_rng(seed)
        # Minibatches from a stream of their own: the evaluator draws them ahead, and
        # a shared stream would interleave them with the estimator's directions.
        evaluator = HostHeldAnyEvaluator(
            layer, data.x_train, data.y_train, o.batch_size, minibatch_stream(seed),
            o.program_every,
        )  # fmt: skip
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
        return MethodResult(
            name, seed, steps, spent.loss_evaluations, test, spent.mvm_calls,
            spent.device_writes, spent.modeled_time_ns, spent.modeled_energy_nj,
        )  # fmt: skip

    return run


def _from_record(name: str, seed: int, record: TrainingRecord) -> MethodResult:
    return MethodResult(
        name, seed, record.steps, record.loss_evaluations, record.test_accuracy,
        record.mvm_calls, record.device_writes, record.modeled_time_ns,
        record.modeled_energy_nj,
    )  # fmt: skip


def _spsa_board(board: Board, data: Dataset, o: CompareOptions) -> Callable[[int], MethodResult]:
    steps = _whole(str(MethodName.SPSA_BOARD), o.budget, 2, "one step")

    def run(seed: int) -> MethodResult:
        # One read pass per test input, as the host-held estimators above measure.
        options = SPSAOptions(
            steps=steps, seed=seed, batch_size=o.batch_size, a=o.a, c=o.c,
            mode=PerturbationMode.BOARD, eval_every=steps, tiles=o.tiles,
            eval_read_repeats=1,
        )  # fmt: skip
        record = train_softmax_spsa(board, data, options)
        return _from_record(str(MethodName.SPSA_BOARD), seed, record)

    return run


def _epochs(
    name: MethodName, o: CompareOptions, data: Dataset, batch_size: int, per_step: int = 1
) -> int:
    """Whole epochs of ``per_step`` loss evaluations per minibatch within the budget."""
    per_epoch = math.ceil(len(data.x_train) / batch_size) * per_step
    return _whole(str(name), o.budget, per_epoch, "one epoch")


def _by_epochs(
    name: MethodName,
    options_type: type[LastLayerOptions] | type[MLPOptions] | type[EqPropOptions],
    train: Callable[[Board, Dataset, Any], TrainingRecord],
) -> Algorithm:
    """A minibatch algorithm of one loss evaluation per step, run with its job's
    defaults for as many whole epochs as the budget buys."""

    def algorithm(board: Board, data: Dataset, o: CompareOptions) -> Callable[[int], MethodResult]:
        epochs = _epochs(name, o, data, options_type().batch_size)

        def run(seed: int) -> MethodResult:
            options = options_type(epochs=epochs, seed=seed, tiles=o.tiles)
            return _from_record(str(name), seed, train(board, data, options))

        return run

    return algorithm


def _ff(estimator: FFEstimator) -> Algorithm:
    name = MethodName.FF if estimator is FFEstimator.EXACT else MethodName.FF_SPSA

    def algorithm(board: Board, data: Dataset, o: CompareOptions) -> Callable[[int], MethodResult]:
        defaults = FFOptions(estimator=estimator)
        per_layer = 1 if estimator is FFEstimator.EXACT else 2 * defaults.resamplings
        per_step = len(defaults.hidden) * per_layer
        epochs = _epochs(name, o, data, defaults.batch_size, per_step)

        def run(seed: int) -> MethodResult:
            options = FFOptions(
                estimator=estimator, epochs=epochs, eval_every=epochs, seed=seed, tiles=o.tiles
            )
            return _from_record(str(name), seed, train_forward_forward(board, data, options))

        return run

    return algorithm


Algorithm = Callable[[Board, Dataset, CompareOptions], Callable[[int], MethodResult]]
"""Given the board, the data and the options, checks that the budget buys the method a
run, and returns the run of one seed."""

_ALGORITHMS: dict[MethodName, Algorithm] = {
    MethodName.SPSA_BOARD: _spsa_board,
    MethodName.LAST_LAYER: _by_epochs(MethodName.LAST_LAYER, LastLayerOptions, train_last_layer),
    MethodName.MLP: _by_epochs(MethodName.MLP, MLPOptions, train_mlp),
    MethodName.FF: _ff(FFEstimator.EXACT),
    MethodName.FF_SPSA: _ff(FFEstimator.SPSA),
    MethodName.EQPROP: _by_epochs(MethodName.EQPROP, EqPropOptions, train_eqprop),
}
"""The whole training algorithms ``compare`` runs beside the estimators."""
