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
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, InvalidArgument, SidraError
from sidra.training.accounting import JobCounts, JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.datasets import Dataset
from sidra.training.epoch_checkpoint import EXTRAS, EpochCheckpoint
from sidra.training.hybrid import HybridNetwork
from sidra.training.mlp import NetworkFactory, mlp_layers, train_network
from sidra.training.model import TrainedModel
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
    checkpoint: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 0.0,
) -> TrainingRecord:
    """Trains the perceptron of ``options`` with the forward pass on ``board`` and the
    backward pass through ``twin``; returns its record.

    With ``checkpoint`` the board's epochs are saved there (an EpochCheckpoint holding
    the twin's part of the record too) when the run stops in them or the board goes
    away (RunInterrupted); ``resume`` goes on from it, the twin's epochs not run again.
    An in-silico run has no board epochs to go on from.

    The first ``options.twin_epochs`` of the schedule run on ``twin_board`` (an
    emulator with the board's profile), the rest on ``board`` from the weights the
    twin reached: the record's checkpoints, accuracies and board counts are the
    board's; the twin's epochs are in its losses and ``measures``, which say each arm's
    steps (``twin_steps``, ``board_steps``: ``steps`` counts both).
    ``options.in_silico``: every epoch on ``twin_board``, then the trained weights
    programmed into ``board`` and evaluated there. Once ``stop`` is set the run ends
    after the epoch under way (its record's ``stopped_at_epoch``); stopped on the twin,
    the weights it reached are programmed into ``board`` and evaluated there.
    ``checkpoint_every_s``: also saved after an epoch once that long has passed since the
    last save (0: only when it stops early), so that a crash leaves a checkpoint."""
    o = options or PATOptions()

    def network(*args: Any, **kwargs: Any) -> TwinNetwork:
        return TwinNetwork(*args, twin=twin, **kwargs)

    if resume and o.in_silico:
        raise ValueError(
            "resume: an in-silico run trains on the twin and is deployed once; it has no "
            "board epochs to go on from: run it again"
        )
    on_twin = o.twin_epochs
    if on_twin and twin_board is None:
        hint = "" if o.in_silico else " (board_epochs >= epochs trains on the board alone)"
        raise ValueError(f"twin_board: {on_twin} epochs run on the twin emulator, got None{hint}")
    job = "pat-in-silico" if o.in_silico else "pat"
    needs = (*EXTRAS["pat"], TWIN_PART) if on_twin else EXTRAS["pat"]
    saved = EpochCheckpoint.load(checkpoint, o, job, needs, dataset=data) if resume else None
    try:
        if o.in_silico:
            assert twin_board is not None
            record, trained = train_network(
                twin_board, data, o, network, job=job, on_epoch=on_epoch, stop=stop
            )
            _deploy(board, data, o, trained.weights, record)
        elif on_twin and saved is not None:  # the twin's epochs are in the checkpoint
            first = _twin_part_of(saved)
            record = _board_epochs(
                board, data, o, network, job, first, saved, on_epoch=on_epoch, stop=stop,
                checkpoint=checkpoint, checkpoint_every_s=checkpoint_every_s,
            )  # fmt: skip
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
                start = _board_start(record, pretrained.weights, o, job)
                record = _board_epochs(
                    board, data, o, network, job, record, start, on_epoch=on_epoch, stop=stop,
                    checkpoint=checkpoint, checkpoint_every_s=checkpoint_every_s,
                )  # fmt: skip
        else:
            record, _ = train_network(
                board, data, o, network, job=job, on_epoch=on_epoch, stop=stop,
                checkpoint=checkpoint, saved=saved, checkpoint_every_s=checkpoint_every_s,
            )  # fmt: skip
    except RunInterrupted as lost:  # the board went away: what was made is kept
        assert lost.record is not None
        lost.record.settings["twin_stuck_cells"] = twin.stuck_cells
        _steps_per_arm(lost.record)
        raise
    record.settings["twin_stuck_cells"] = twin.stuck_cells
    _steps_per_arm(record)
    return record


def _steps_per_arm(record: TrainingRecord) -> None:
    """Says in ``record``'s measures how many of its steps ran on each arm: ``twin_steps``
    on the twin emulator, ``board_steps`` on the board. Its ``steps`` counts both (the
    rows of steps.csv, the twin's first), which the summary showed alone, beside the
    board's MVM calls and cell writes, as if the board had made them all."""
    twin = int(record.measures.pop("twin_steps", 0))  # none: every step on the board
    record.measures |= {"twin_steps": twin, "board_steps": record.steps - twin}


def _board_epochs(
    board: Board,
    data: Dataset,
    o: PATOptions,
    network: NetworkFactory,
    job: str,
    first: TrainingRecord,
    start: EpochCheckpoint,
    *,
    on_epoch: Callable[[int, float], None] | None,
    stop: threading.Event | None,
    checkpoint: str | Path | None,
    checkpoint_every_s: float = 0.0,
) -> TrainingRecord:
    """The schedule's epochs after the twin's (``first``), on ``board`` from ``start``
    (the weights the twin reached, or a checkpoint of the board's epochs): one record,
    the board's steps and checkpoints after the twin's. The board gone mid-way, even
    while the layers are first programmed: :class:`RunInterrupted` with that record up
    to the board's last whole epoch (the twin's alone before the board made one) and,
    with ``checkpoint``, the run saved there (``start`` at the least)."""
    try:
        record, _ = train_network(
            board, data, o, network, job=job, on_epoch=on_epoch,
            epochs=slice(o.twin_epochs, None), stop=stop, checkpoint=checkpoint, saved=start,
            checkpoint_every_s=checkpoint_every_s,
        )  # fmt: skip
    except RunInterrupted as lost:  # from start on: the twin's epochs at the least
        assert lost.record is not None
        joined = _after_twin(first, lost.record, o)
        raise RunInterrupted(
            lost.cause, lost.steps, lost.checkpoint, unit="epoch", record=joined
        ) from lost.cause
    return _after_twin(first, record, o)


TWIN_PART = "twin"
"""The extra of a pat checkpoint holding the twin's part of the record."""


def _board_start(
    first: TrainingRecord, weights: Sequence[Array], o: PATOptions, job: str
) -> EpochCheckpoint:
    """Where the board's epochs start: the weights the twin reached, at the twin's last
    epoch, nothing spent on the board yet; the twin's part of the record (``first``)
    kept beside, so that a checkpoint of the board's epochs holds the whole run."""
    twin_part = {"losses": first.losses, "steps": first.steps,
                 "test_accuracy": first.test_accuracy}  # fmt: skip
    programmed = [np.array(w, np.float32) for w in weights]
    return EpochCheckpoint(
        settings=o.settings() | {"job": job},
        epoch=o.twin_epochs,
        # The board's epochs draw their minibatches from a stream of their own (train_network).
        generator=dict(np.random.default_rng([o.seed, o.twin_epochs]).bit_generator.state),
        weights=programmed,
        targets=[w.copy() for w in programmed],
        programs=0,
        losses=[],
        checkpoints=[],
        counts=JobCounts(),
        extras={"cosines": [], TWIN_PART: twin_part},
    )


def _twin_part_of(saved: EpochCheckpoint) -> TrainingRecord:
    """The twin's part of the record a checkpoint of the board's epochs holds."""
    part = saved.extras[TWIN_PART]
    return TrainingRecord(
        settings={}, losses=[float(x) for x in part["losses"]], steps=int(part["steps"]),
        test_accuracy=float(part["test_accuracy"]),
    )  # fmt: skip


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
    """The figures of a run on the twin alone, kept as the twin's when the board's
    replace them (every step the twin's: the board trained none)."""
    return {
        "twin_steps": record.steps,
        "twin_test_accuracy": record.test_accuracy,
        "twin_train_accuracy": record.train_accuracy,
        "twin_device_writes": record.device_writes,
        "twin_programs": record.programs,
    }


def _deployed(
    board: Board, data: Dataset, o: PATOptions, weights: Sequence[Array], record: TrainingRecord
) -> None:
    layers, placement = mlp_layers(board, data, o)
    meter = JobMeter(board, layers)
    deployed = HybridNetwork(layers, weights, trainable=len(layers))
    record.model = TrainedModel.of(layers, weights, data, str(record.settings.get("job", "pat")))
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
    # The board's: one Program of each layer, the deployment (the twin's, thousands, were
    # reported beside the board's 9 MVM calls as if the board had made them).
    record.programs = len(layers)
