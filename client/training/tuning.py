"""A trained model fine-tuned on the board it runs on: hybrid training of its last layers.

A network trained in software (or on another board) loses accuracy on a given board:
its cells are written with noise, some are stuck, gains vary, drift moves them. The
roadmap's hybrid stage wins it back without leaving the board: the model is programmed
as ``sidra model deploy`` places it, then its top ``trainable`` layers are trained again
with exact host gradients computed from the board's own forward passes (δ carried
down by TransposeMVM), the layers below frozen as the board holds them
(:class:`sidra.training.hybrid.HybridNetwork`). What comes out is a model of the same
layout whose weights fit this board; its tiles hold it when the tuning ends.

Accuracy before and after is measured on the test part with ``eval_read_repeats``
passes per input, so read noise does not hide a difference of a few samples.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, InvalidArgument
from sidra.training.accounting import JobCounts, JobMeter
from sidra.training.datasets import Dataset
from sidra.training.deployment import DeployedModel, LayerProgramming
from sidra.training.hybrid import HybridNetwork
from sidra.training.model import MODEL_FILE, TrainedModel
from sidra.training.options import TuneOptions
from sidra.training.records import STOPPED_AT
from sidra.training.softmax import accuracy

__all__ = ["TuneResult", "tune_model", "tune_settings"]

Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TuneResult:
    """What a tuning reached and spent."""

    model: TrainedModel
    """The tuned model: the same layout, its trained layers' weights as the board learned
    them; :attr:`TrainedModel.trained` says where and from what."""
    accuracy_before: float
    """Test accuracy of the model as given, programmed on the board."""
    accuracy_after: float
    """Test accuracy once tuned (the tiles as the tuning left them)."""
    epoch_accuracies: list[float] = field(default_factory=list)
    """Test accuracy after each epoch (``read_repeats`` passes per input)."""
    losses: list[float] = field(default_factory=list)
    """Every training step's loss."""
    placement: dict[str, list[int]] = field(default_factory=dict)
    """The tiles each layer is on (layer name -> tiles), input layer first."""
    programming: tuple[LayerProgramming, ...] = ()
    """What write-verify reached on each layer when the model was first programmed."""
    programs: int = 0
    """Program calls the training's updates issued."""
    counts: JobCounts = field(default_factory=JobCounts)
    """Board calls, cell writes and modeled cost from the model's first programming on
    (what that reached: :attr:`programming`) to the end."""
    stopped_at_epoch: int | None = None
    """The epoch after which a stop request ended it; None when it ran every epoch."""

    def files(
        self, settings: dict[str, Any], summary: dict[str, Any], model_file: bytes
    ) -> dict[str, bytes]:
        """The tuning's record by file name, as ``sidra model tune`` saves it in runs/ and
        a tune job keeps it: ``settings.json`` (:func:`tune_settings`), ``summary.json``
        (``summary``), ``steps.csv`` (every step's loss) and ``model.npz`` (``model_file``,
        the tuned model's bytes as the caller already made them); ``sidra runs`` lists
        it."""
        steps = io.StringIO(newline="")
        writer = csv.writer(steps)
        writer.writerow(["step", "loss"])
        writer.writerows((i + 1, loss) for i, loss in enumerate(self.losses))
        return {
            "settings.json": json.dumps(settings, indent=2, default=str).encode(),
            "summary.json": json.dumps(summary, indent=2, default=str).encode(),
            "steps.csv": steps.getvalue().encode(),
            MODEL_FILE: model_file,
        }

    def summary(self) -> dict[str, Any]:
        """The figures a run's summary shows (JSON values)."""
        return {
            "untuned_test_accuracy": self.accuracy_before,
            "test_accuracy": self.accuracy_after,
            "epochs": len(self.epoch_accuracies),
            "steps": len(self.losses),
            "programs": self.programs,
            "placement": self.placement,
            **dataclasses.asdict(self.counts),
            **(
                {}
                if self.stopped_at_epoch is None
                else {f"{STOPPED_AT}epoch": self.stopped_at_epoch}
            ),
        }


def tune_settings(options: dict[str, Any], data: Dataset, model: TrainedModel) -> dict[str, Any]:
    """A tuning's ``settings.json``: its ``options`` (JSON values), the data set as every
    run's record names it, and what the model was before (its job and trained figures)."""
    return options | {"job": "tune"} | data.settings() | {
        "dataset": data.named_as, "tuned_from": {"job": model.job, **model.trained},
    }  # fmt: skip


def tune_model(
    model: TrainedModel,
    board: Board,
    data: Dataset,
    options: TuneOptions | None = None,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
    held: bool = False,
    calibrate: bool = False,
) -> TuneResult:
    """``model`` programmed on ``board`` (in ``options.tiles``) and its top
    ``options.trainable`` layers trained there on ``data``'s training part (taken as the
    model takes its inputs: :meth:`ModelInputs.take`). ``held``: nothing programmed to
    start, the model found on the tiles that hold it (ModelNotHeld otherwise), aged as
    they are; its trained layers are then written back to its weights before training.
    ``calibrate``: its tiles calibrated first (the trained ones again after that
    rewrite). ``on_epoch(epoch, test_accuracy)`` after each epoch; once ``stop`` is set it
    ends after the epoch under way.

    InvalidArgument before any board call for a model that is not a ReLU network read
    out by its logits (a forward-forward or settling one trains otherwise), ``trainable``
    above its layer count, or data it does not take."""
    o = options or TuneOptions()
    if model.readout is not None:
        raise InvalidArgument(
            "model.readout", model.score_name,
            "logits (a ReLU network); a forward-forward or equilibrium-propagation model is "
            "trained by its own command",
        )  # fmt: skip
    if o.trainable > len(model.layers):
        raise InvalidArgument(
            "trainable", o.trainable, f"1 .. {len(model.layers)}, the model's layers"
        )
    try:
        model.check_data(data)
    except ValueError as exc:
        raise InvalidArgument("data", data.name, str(exc)) from exc
    x_train = model.inputs.take(data, data.x_train)
    x_test = model.inputs.take(data, data.x_test)
    deployed = DeployedModel(model, board, tiles=o.tiles, read_repeats=o.read_repeats,
                             held=held, calibrate=calibrate)  # fmt: skip
    meter = JobMeter(board, deployed.layers)

    def test_accuracy(repeats: int) -> float:
        return accuracy(net.predict(x_test, read_repeats=repeats), data.y_test)

    weights = [layer.weights for layer in model.layers]
    thresholds = [o.threshold_share * layer.weight_limit for layer in model.layers]
    net = HybridNetwork(deployed.layers, weights, trainable=o.trainable, threshold=thresholds,
                        programmed=True)  # fmt: skip
    before = test_accuracy(o.eval_read_repeats)
    if held:
        # The trained layers are written again before training (write-verify pulses only
        # the cells drift moved off target) and, calibrated, calibrated again: a gain
        # found for drifted cells would scale the rewritten ones wrongly. The layers
        # below keep what they hold, the drift training learns to compensate.
        first = len(model.layers) - o.trainable
        for layer, w in zip(deployed.layers[first:], weights[first:], strict=True):
            layer.program(w)
            if calibrate:
                layer.calibrate()
    rng = np.random.default_rng(o.seed)
    final = o.learning_rate if o.final_learning_rate is None else o.final_learning_rate
    rates = np.linspace(o.learning_rate, final, o.epochs)
    losses: list[float] = []
    epoch_accuracies: list[float] = []
    stopped_at = None
    for epoch in range(1, o.epochs + 1):
        taken = net.epoch(x_train, data.y_train, float(rates[epoch - 1]), o.batch_size, rng)
        losses += taken
        meter.charge_losses(len(taken))
        epoch_accuracies.append(test_accuracy(o.read_repeats))
        if on_epoch is not None:
            on_epoch(epoch, epoch_accuracies[-1])
        if stop is not None and stop.is_set() and epoch < o.epochs:
            stopped_at = epoch
            break
    after = test_accuracy(o.eval_read_repeats)
    figures = {"trainable": o.trainable, "epochs": len(epoch_accuracies),
               "untuned_test_accuracy": before, "test_accuracy": after}  # fmt: skip
    return TuneResult(
        _tuned(model, net.targets, board, figures), before, after, epoch_accuracies, losses,
        deployed.placement.summary(), deployed.programming, net.programs, meter.read(),
        stopped_at,
    )  # fmt: skip


def _tuned(
    model: TrainedModel, targets: Sequence[Array], board: Board, figures: dict[str, Any]
) -> TrainedModel:
    """``model`` with the weights the board's cells were last programmed to, the board it
    was tuned on and ``figures`` in its figures (what it was trained as kept under
    ``tuned_from``)."""
    layers = tuple(
        replace(layer, weights=np.array(w, np.float32))
        for layer, w in zip(model.layers, targets, strict=True)
    )
    info = board.info
    where = {"board_model": info.model, "board_serial": info.serial_number}
    if info.emulated:
        where["emulator_preset"] = info.emulator_preset
    trained = {**where, "tuned_from": {"job": model.job, **model.trained}, **figures}
    return TrainedModel(layers, model.inputs, "tuned", trained, model.readout)
