"""Physics-aware training: the board's forward pass, the twin's backward pass.

Wright et al. (2022, "Deep physical neural networks trained with backpropagation"):
a network on imperfect hardware learns best from the hardware's own outputs, with
gradients from a model of it. Here every step runs the forward pass on the board
(its noise, quantisation, gains and stuck cells all in the activations); the
output error is taken on the host and carried down through each layer's twin
(:class:`~sidra.training.twin.TwinLayer`: the programmed weights with the board's
stuck cells at their bound, no gradient through a clipped output or input), at the
activations the board gave. No TransposeMVM is issued, so no read noise enters the
backward pass; what the twin does not know (each cell's own gain, the read noise
of this pass) is still in the forward pass the gradient is taken at.

The schedule starts on the twin itself (an emulator with the board's profile and
devices of its own: ``PATOptions.board_epochs``), as chip-in-the-loop fine-tuning
does (Wan et al. 2022, NeuRRAM): those epochs cost the board nothing, and the last
ones, on the board, correct what the twin does not know of it (each cell's gain
and programming error). The baseline, ``in_silico``: the same schedule run entirely
on the twin, then the weights deployed to the board once and evaluated there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, InvalidArgument, SidraError
from sidra.training.accounting import JobCounts, JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.datasets import Dataset
from sidra.training.hybrid import HybridNetwork
from sidra.training.mlp import NetworkFactory, mlp_layers, train_network
from sidra.training.options import PATOptions
from sidra.training.records import INTERRUPTED, TrainingRecord
from sidra.training.softmax import accuracy
from sidra.training.stopping import RunInterrupted
from sidra.training.twin import TwinLayer, TwinPhysics

__all__ = ["TwinNetwork", "train_pat"]

Array = npt.NDArray[np.float32]


class TwinNetwork(HybridNetwork):
    """A :class:`HybridNetwork` whose backward pass runs through the twin of each layer."""

    def __init__(
        self,
        layers: Sequence[AnalogLinear],
        weights: Sequence[Array],
        trainable: int = 1,
        *,
        threshold: float = 0.0,
        twin: TwinPhysics,
    ) -> None:
        super().__init__(layers, weights, trainable, threshold=threshold)
        self.twins = [TwinLayer(layer, twin) for layer in self.layers]
        for layer_twin, programmed in zip(self.twins, self.targets, strict=True):
            layer_twin.update(programmed)

    def output_error(self, i: int, x: Array, delta: Array) -> Array:
        """No gradient through an output whose column current clipped at the ADC."""
        passes: Array = delta * self.twins[i].unclipped(x)
        return passes

    def input_error(self, i: int, x: Array, delta: Array) -> Array:
        """δ·W_boardᵀ through the twin, none through an input clipped at the DAC."""
        inside = np.abs(x) < self.layers[i].input_clip
        error: Array = self.twins[i].input_gradient(delta) * inside
        return error

    def gradients(self, x: Array, y: npt.NDArray[np.int64]) -> tuple[float, list[Array | None]]:
        """As :meth:`HybridNetwork.gradients`, with a stuck weight's gradient scaled by how
        far the board can move it (0 where every cell of the weight is stuck)."""
        loss, gradients = super().gradients(x, y)
        for layer_twin, gradient in zip(self.twins, gradients, strict=True):
            if gradient is not None:
                gradient[: layer_twin.layer.analog_rows] *= layer_twin.movable
        return loss, gradients

    def _program(self, i: int) -> None:
        before = self.programs
        super()._program(i)
        if self.programs != before:
            self.twins[i].update(self.targets[i])


def train_pat(
    board: Board,
    twin: TwinPhysics,
    data: Dataset,
    options: PATOptions | None = None,
    *,
    twin_board: Board | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
) -> TrainingRecord:
    """Trains the perceptron of ``options`` with the forward pass on ``board`` and the
    backward pass through ``twin``; returns its record.

    The first ``options.twin_epochs`` of the schedule run on ``twin_board`` (an
    emulator with the board's profile), the rest on ``board`` from the weights the
    twin reached: the record's checkpoints, accuracies and board counts are the
    board's; the twin's epochs are in its losses and ``measures``.
    ``options.in_silico``: every epoch on ``twin_board``, then the trained weights
    programmed into ``board`` and evaluated there. Once ``stop`` is set the run ends
    after the epoch under way (its record's ``stopped_at_epoch``); stopped on the twin,
    the weights it reached are programmed into ``board`` and evaluated there.
    """
    o = options or PATOptions()

    def network(*args: Any, **kwargs: Any) -> TwinNetwork:
        return TwinNetwork(*args, twin=twin, **kwargs)

    on_twin = o.twin_epochs
    if on_twin and twin_board is None:
        hint = "" if o.in_silico else " (board_epochs >= epochs trains on the board alone)"
        raise ValueError(f"twin_board: {on_twin} epochs run on the twin emulator, got None{hint}")
    job = "pat-in-silico" if o.in_silico else "pat"
    try:
        if o.in_silico:
            assert twin_board is not None
            record, trained = train_network(
                twin_board, data, o, network, job=job, on_epoch=on_epoch, stop=stop
            )
            _deploy(board, data, o, trained.weights, record)
        elif on_twin:
            assert twin_board is not None
            record, pretrained = train_network(
                twin_board, data, o, network, job=job, on_epoch=on_epoch,
                epochs=slice(0, on_twin),
                train_accuracy=False,  # only its weights and test accuracy go on
                stop=stop,
            )  # fmt: skip
            if "stopped_at_epoch" in record.settings:  # the board's epochs never began
                _deploy(board, data, o, pretrained.weights, record)
            else:
                record = _board_epochs(
                    board, data, o, network, job, record, pretrained, on_epoch=on_epoch, stop=stop
                )
        else:
            record, _ = train_network(
                board, data, o, network, job=job, on_epoch=on_epoch, stop=stop
            )
    except RunInterrupted as lost:  # the board went away: what was made is kept
        assert lost.record is not None
        lost.record.settings["twin_stuck_cells"] = twin.stuck_cells
        raise
    record.settings["twin_stuck_cells"] = twin.stuck_cells
    return record


def _board_epochs(
    board: Board,
    data: Dataset,
    o: PATOptions,
    network: NetworkFactory,
    job: str,
    first: TrainingRecord,
    pretrained: HybridNetwork,
    *,
    on_epoch: Callable[[int, float], None] | None,
    stop: threading.Event | None,
) -> TrainingRecord:
    """The schedule's epochs after the twin's (``first``), on ``board`` from the weights
    the twin reached: one record, the board's steps and checkpoints after the twin's.
    The board gone mid-way: :class:`RunInterrupted` with that record up to the board's
    last whole epoch, or the twin's alone before the board made one."""
    try:
        record, _ = train_network(
            board, data, o, network, job=job, on_epoch=on_epoch,
            epochs=slice(o.twin_epochs, None), initial=pretrained.weights, stop=stop,
        )  # fmt: skip
    except RunInterrupted as lost:
        assert lost.record is not None
        joined = _after_twin(first, lost.record, o)
        raise RunInterrupted(lost.cause, lost.steps, unit="epoch", record=joined) from lost.cause
    except SidraError as exc:
        if isinstance(exc, InvalidArgument):  # a refused value is the run's own mistake
            raise
        raise _twin_only(first, exc) from exc
    return _after_twin(first, record, o)


def _after_twin(first: TrainingRecord, record: TrainingRecord, o: PATOptions) -> TrainingRecord:
    """``record`` of the board's epochs after ``first``, the twin's: one record."""
    record.losses = first.losses + record.losses
    record.steps = len(record.losses)
    record.checkpoints = [replace(c, step=c.step + first.steps) for c in record.checkpoints]
    record.measures |= {
        "twin_epochs": o.twin_epochs,
        "twin_steps": first.steps,
        "twin_test_accuracy": first.test_accuracy,
    }
    return record


def _deploy(
    board: Board, data: Dataset, o: PATOptions, weights: Sequence[Array], record: TrainingRecord
) -> None:
    """Programs ``weights`` into the perceptron's layers on ``board`` and replaces the
    record's accuracies and board counts with the board's (the twin's kept in
    ``measures``). The board gone meanwhile: :class:`RunInterrupted` with the twin's
    record."""
    try:
        _deployed(board, data, o, weights, record)
    except SidraError as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise _twin_only(record, exc) from exc


def _twin_only(record: TrainingRecord, cause: SidraError) -> RunInterrupted:
    """The run ended by ``cause`` before the board measured anything: ``record``, the
    twin's epochs, as :class:`RunInterrupted` (its accuracies and counts the twin's, in
    ``measures`` as a deployed run's are; the board's 0)."""
    record.measures |= _twin_measures(record)
    record.test_accuracy = record.train_accuracy = 0.0
    record.count(JobCounts())
    epochs = len(record.checkpoints)  # one a twin epoch
    record.settings |= {f"{INTERRUPTED}at_epoch": epochs,
                        f"{INTERRUPTED}by": f"{type(cause).__name__}: {cause}"}  # fmt: skip
    return RunInterrupted(cause, epochs, unit="epoch", record=record)


def _twin_measures(record: TrainingRecord) -> dict[str, Any]:
    return {
        "twin_test_accuracy": record.test_accuracy,
        "twin_train_accuracy": record.train_accuracy,
        "twin_device_writes": record.device_writes,
    }


def _deployed(
    board: Board, data: Dataset, o: PATOptions, weights: Sequence[Array], record: TrainingRecord
) -> None:
    layers, placement = mlp_layers(board, data, o)
    meter = JobMeter(board, layers)
    deployed = HybridNetwork(layers, weights, trainable=len(layers))
    record.measures |= _twin_measures(record)
    record.settings["placement"] = placement.summary()
    repeats = o.eval_read_repeats
    record.test_accuracy = accuracy(
        deployed.predict(data.x_test, read_repeats=repeats), data.y_test
    )
    record.train_accuracy = accuracy(
        deployed.predict(data.x_train, read_repeats=repeats), data.y_train
    )
    trained_losses = record.loss_evaluations  # on the twin; the board ran none
    record.count(meter.read())
    record.loss_evaluations = trained_losses
