"""A trained model on a board: placed, programmed, then run for inference.

:class:`DeployedModel` programs each layer of a :class:`~sidra.training.model.TrainedModel`
with write-verify (keeping what each layer's write-verify reached), then computes
logits by MVM layer by layer, ReLU on the host between layers, as the network was
trained (a forward-forward network: each sample once per class, with that class's
one-hot appended, scored by its goodness summed over the layers; an
equilibrium-propagation network: its states settled by MVM and TransposeMVM sweeps).
:meth:`DeployedModel.evaluate` measures it on labelled data: accuracy, the confusion
matrix and what the inference cost the board (MVM calls, modeled time and energy, per
sample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, Cost, InvalidArgument, ProgramReport, Region, tiles_text
from sidra.drivers.matching import match_conductances
from sidra.training.accounting import JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.eqprop import EquilibriumNetwork
from sidra.training.figures import new_figure
from sidra.training.forward_forward import goodness_by_label
from sidra.training.held import MIN_HELD_CORRELATION, holds
from sidra.training.model import GoodnessReadout, ModelLayer, SettleReadout, TrainedModel
from sidra.training.placement import LayerShape, Placement

__all__ = [
    "MIN_HELD_CORRELATION",
    "DeployedModel",
    "LayerHeld",
    "LayerProgramming",
    "ModelEvaluation",
    "ModelNotHeld",
]

Array = npt.NDArray[np.float32]

CHUNK_VECTORS = 1024
"""Input vectors per pass of a layer (times the read repeats)."""


@dataclass(frozen=True, slots=True)
class LayerProgramming:
    """What write-verify reached on one layer's tiles when the model was programmed."""

    layer: str
    tiles: tuple[int, ...]
    cells: int
    """Cells the layer's regions hold."""
    cells_written: int
    """Cells that took at least one pulse."""
    rms_error_us: float
    """RMS of measured minus target conductance over the layer's cells, µS."""
    max_error_us: float
    """Largest |measured − target| over them, µS."""
    unconverged_cells: int
    """Cells left outside the write-verify tolerance (stuck or out of pulses)."""

    @classmethod
    def of(
        cls, name: str, layer: AnalogLinear, reports: Sequence[ProgramReport]
    ) -> LayerProgramming:
        sizes = [b.region.rows * b.region.cols for b in layer.blocks]
        squares = sum(n * r.rms_error_us**2 for n, r in zip(sizes, reports, strict=True))
        return cls(
            layer=name,
            tiles=tuple(b.tile for b in layer.blocks),
            cells=sum(sizes),
            cells_written=sum(r.cells_written for r in reports),
            rms_error_us=math.sqrt(squares / sum(sizes)),
            max_error_us=max(r.max_error_us for r in reports),
            unconverged_cells=sum(r.unconverged_cells for r in reports),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "tiles": list(self.tiles),
            "cells": self.cells,
            "cells_written": self.cells_written,
            "rms_error_us": self.rms_error_us,
            "max_error_us": self.max_error_us,
            "unconverged_cells": self.unconverged_cells,
        }


@dataclass(frozen=True, slots=True)
class ModelEvaluation:
    """A deployed model measured on labelled samples."""

    labels: tuple[str, ...]
    confusion: npt.NDArray[np.int64]
    """[true class, predicted class] sample counts."""
    read_repeats: int
    """Analog passes averaged per input vector and layer."""
    mvm_calls: int
    """MVM calls the evaluation issued (one per layer block and chunk of samples)."""
    modeled_time_ns: float
    """Modeled board time of the evaluation's MVMs, ns."""
    modeled_energy_nj: float
    """Modeled board energy of the same, nJ."""

    @property
    def samples(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion)) / self.samples

    @property
    def recall(self) -> tuple[float, ...]:
        """Per class: the share of its samples classified as it (NaN with none)."""
        totals = self.confusion.sum(axis=1)
        return tuple(
            float(self.confusion[k, k] / n) if n else math.nan for k, n in enumerate(totals)
        )

    @property
    def time_per_sample_ns(self) -> float:
        return self.modeled_time_ns / self.samples

    @property
    def energy_per_sample_nj(self) -> float:
        return self.modeled_energy_nj / self.samples

    def plot(self, path: str | Path, title: str) -> None:
        """The confusion matrix as a figure (PNG, SVG, PDF by ``path``'s suffix): each
        true class's row coloured by the share of its samples predicted as each class,
        the counts written in the cells, recall per class on the right."""
        counts = self.confusion
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        classes = len(self.labels)
        side = min(12.0, 2.5 + 0.55 * classes)
        fig = new_figure(figsize=(side + 1.5, side))
        axes = fig.subplots()
        image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        if classes <= 30:  # past that the numbers would not be legible
            for (row, col), n in np.ndenumerate(counts):
                if n:
                    dark = shares[row, col] > 0.5
                    axes.text(col, row, str(n), ha="center", va="center", fontsize=8,
                              color="white" if dark else "black")  # fmt: skip
        axes.set_xticks(range(classes), self.labels, rotation=45 if classes > 10 else 0)
        recall = ["-" if math.isnan(r) else f"{100 * r:.0f} %" for r in self.recall]
        rows = [f"{k} ({r})" for k, r in zip(self.labels, recall, strict=True)]
        axes.set_yticks(range(classes), rows)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true (recall)")
        axes.set_title(f"{title}\naccuracy {100 * self.accuracy:.2f} % of {self.samples}")
        fig.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "accuracy": self.accuracy,
            # A class without samples has no recall: null, as JSON has no NaN.
            "recall": {
                label: None if math.isnan(share) else share
                for label, share in zip(self.labels, self.recall, strict=True)
            },
            "confusion": self.confusion.tolist(),
            "labels": list(self.labels),
            "read_repeats": self.read_repeats,
            "mvm_calls": self.mvm_calls,
            "modeled_time_ns": self.modeled_time_ns,
            "modeled_energy_nj": self.modeled_energy_nj,
            "time_per_sample_ns": self.time_per_sample_ns,
            "energy_per_sample_nj": self.energy_per_sample_nj,
        }


class ModelNotHeld(ValueError):
    """The tiles do not hold the model (``held=True``): the message names the layer, its
    tiles and the correlation found."""


@dataclass(frozen=True, slots=True)
class LayerHeld:
    """How closely a layer's tiles hold the model's conductances now, without writing."""

    layer: str
    tiles: tuple[int, ...]
    correlation: float
    """Pearson correlation of the conductances read with the model's targets."""
    rms_deviation_us: float
    """RMS of read minus target conductance, µS (drift, noise, what the write left)."""
    mean_deviation_us: float
    """Mean of read minus target conductance, µS (a common shift: drift's decay)."""
    read_cost: Cost = Cost()
    """Modeled board time (ns) and energy (nJ) of the reads this check made."""

    @classmethod
    def read(cls, name: str, layer: AnalogLinear, weights: Array) -> LayerHeld:
        """Reads every block of ``layer`` once and compares it with ``weights``' targets."""
        read, target, cost = [], [], Cost()
        for block in layer.blocks:
            found = layer.board.read_conductance(block.tile, block.region)
            read.append(found.conductances)
            cost += found.cost
            target.append(layer.conductances(weights[block.rows, block.outputs]))
        match = match_conductances(
            np.concatenate([a.ravel() for a in read]), np.concatenate([a.ravel() for a in target])
        )
        return cls(
            layer=name,
            tiles=tuple(b.tile for b in layer.blocks),
            correlation=match.correlation,
            rms_deviation_us=match.rms_deviation_us,
            mean_deviation_us=match.mean_deviation_us,
            read_cost=cost,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "tiles": list(self.tiles),
            "correlation": self.correlation,
            "rms_deviation_us": self.rms_deviation_us,
            "mean_deviation_us": self.mean_deviation_us,
            "read_time_ns": self.read_cost.time_ns,
            "read_energy_nj": self.read_cost.energy_nj,
        }


def _analog_layers(
    model: TrainedModel, board: Board, placement: Placement, read_repeats: int
) -> list[AnalogLinear]:
    """``model``'s layers as analog layers on ``placement``'s tiles (nothing written)."""
    return [
        AnalogLinear(
            board, placement.of(shape.name), layer.inputs, layer.outputs,
            weight_limit=layer.weight_limit, input_clip=layer.input_clip,
            read_repeats=read_repeats, mapping=layer.mapping,
            reference_column=layer.reference_column, digital_bias=layer.digital_bias,
        )
        for shape, layer in zip(model.shapes(), model.layers, strict=True)
    ]  # fmt: skip


def _regions(layers: Sequence[AnalogLinear]) -> list[tuple[int, Region]]:
    return [(block.tile, block.region) for layer in layers for block in layer.blocks]


class DeployedModel:
    """A :class:`TrainedModel` on a board, ready for inference: programmed there, or
    found held by tiles programmed before (``held=True``)."""

    def __init__(
        self,
        model: TrainedModel,
        board: Board,
        *,
        tiles: Sequence[int] = (),
        read_repeats: int = 1,
        held: bool = False,
        calibrate: bool = False,
    ) -> None:
        """Places the model in ``tiles`` (empty: any of the board's) and programs every
        layer; PlacementError when it does not fit, ``read_repeats`` < 1 refused before
        any board call. ``held``: nothing is written; each layer's tiles are read and
        must hold its conductances (:data:`MIN_HELD_CORRELATION`), else ModelNotHeld:
        the model deployed earlier with the same ``tiles``, then aged or not.
        ``calibrate``: then each of its tiles is calibrated (the board rescales the tile's
        outputs so that a probe reads as when its cells were programmed: a common drift
        cancels), the gains found in :attr:`gains`."""
        if not isinstance(read_repeats, int) or read_repeats < 1:
            raise InvalidArgument("read_repeats", read_repeats, "an integer >= 1")
        self.model = model
        self.board = board
        self.placement: Placement = model.placement(board.info, tiles)
        shapes = model.shapes()
        self.layers = _analog_layers(model, board, self.placement, read_repeats)
        named = list(zip(shapes, self.layers, model.layers, strict=True))
        self.programming: tuple[LayerProgramming, ...] = ()
        """What write-verify reached on each layer, input side first (none when held)."""
        self.held: tuple[LayerHeld, ...] = ()
        """How closely each layer's tiles held the model (only when held)."""
        self.gains: dict[int, float] = {}
        """Output gain the calibration set on each tile (only with ``calibrate``)."""
        if held:
            self._find_held(named)
        else:
            self.programming = tuple(
                LayerProgramming.of(shape.name, analog, analog.program(layer.weights))
                for shape, analog, layer in named
            )
        if calibrate:
            for analog in self.layers:
                tiles = [block.tile for block in analog.blocks]
                self.gains.update(zip(tiles, analog.calibrate(), strict=True))

    def regions(self) -> list[tuple[int, Region]]:
        """The tile regions the model's layers take, input layer first (one per tile):
        what a server keeps of a deployment (deployments.proto)."""
        return _regions(self.layers)

    @staticmethod
    def planned_regions(
        model: TrainedModel, board: Board, tiles: Sequence[int] = ()
    ) -> list[tuple[int, Region]]:
        """The regions :meth:`regions` would give once ``model`` is deployed on ``board``
        with ``tiles``, found without a board call (PlacementError when it does not fit)."""
        placement = model.placement(board.info, tiles)
        return _regions(_analog_layers(model, board, placement, 1))

    def _find_held(self, named: list[tuple[LayerShape, AnalogLinear, ModelLayer]]) -> None:
        for _, analog, layer in named:
            analog.adopt(layer.weights)
        self.held = tuple(
            LayerHeld.read(shape.name, analog, layer.weights) for shape, analog, layer in named
        )
        for found in self.held:
            if not holds(found.correlation):
                raise ModelNotHeld(
                    f"{found.layer} on {tiles_text(found.tiles)}: what they hold correlates "
                    f"{found.correlation:.3f} with the model's conductances, expected >= "
                    f"{MIN_HELD_CORRELATION} (deployed there with the same tiles?); program "
                    "it again without held"
                )

    def scores(self, x: npt.ArrayLike, *, read_repeats: int | None = None) -> Array:
        """Each class's score [samples, classes] for standardised inputs ``x`` [samples,
        features] (TrainedModel.standardize makes them from raw ones), the largest the
        class: the output layer's pre-activations (logits); with a goodness readout
        the goodness of the sample shown with each class, summed over the layers; with a
        settle readout the output states once settled (:attr:`TrainedModel.score_name`
        says which). Each layer's pass is the mean of
        ``read_repeats`` reads (default: the deployment's)."""
        x = self._checked_inputs(x)
        return self._scores(x, read_repeats)

    def _checked_inputs(self, x: npt.ArrayLike) -> Array:
        """``x`` as float32 [samples, features] (InvalidArgument naming ``x``)."""
        return self.layers[0].checked_inputs(x, self.model.features)

    def _scores(self, h: Array, read_repeats: int | None) -> Array:
        """:meth:`scores` of inputs already checked."""
        readout = self.model.readout
        if isinstance(readout, GoodnessReadout):
            return self._goodness(h, readout, read_repeats)
        if isinstance(readout, SettleReadout):
            return self._settled(h, readout, read_repeats)
        chunks = []
        for start in range(0, len(h), CHUNK_VECTORS):
            z = h[start : start + CHUNK_VECTORS]
            for k, layer in enumerate(self.layers):
                z = layer.forward(z, read_repeats=read_repeats)
                if k < len(self.layers) - 1:
                    z = np.maximum(z, np.float32(0.0))
            chunks.append(z)
        return np.concatenate(chunks)

    def _goodness(self, h: Array, readout: GoodnessReadout, read_repeats: int | None) -> Array:
        """Goodness summed over the layers [samples, classes] of each sample shown with
        each class (as sidra.training.forward_forward trained and tested it)."""
        by_label = goodness_by_label(self.layers, h, self.model.classes, readout.label_scale,
                                     CHUNK_VECTORS, read_repeats)  # fmt: skip
        summed: Array = by_label.sum(axis=0).astype(np.float32)
        return summed

    def _settled(self, h: Array, readout: SettleReadout, read_repeats: int | None) -> Array:
        """Output states [samples, classes] of the free equilibrium (as
        sidra.training.eqprop trained and tested it), every MVM the mean of
        ``read_repeats`` reads (the TransposeMVMs one read each, as in training)."""
        net = EquilibriumNetwork(self.layers, tolerance=readout.tolerance,
                                 damping=readout.damping, read_repeats=read_repeats)  # fmt: skip
        return net.predict(h, readout.max_iterations, chunk=CHUNK_VECTORS)

    def classify(self, x: npt.ArrayLike, *, read_repeats: int | None = None) -> npt.NDArray[Any]:
        """The class index of each of ``x``'s samples (the largest score)."""
        classes: npt.NDArray[Any] = np.argmax(self.scores(x, read_repeats=read_repeats), axis=1)
        return classes

    def evaluate(
        self, x: npt.ArrayLike, y: npt.ArrayLike, *, read_repeats: int | None = None
    ) -> ModelEvaluation:
        """Accuracy, confusion and inference cost on standardised ``x`` with class
        indices ``y``."""
        labels = np.asarray(y)
        classes = self.model.classes
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise InvalidArgument("y", f"{labels.dtype} {list(labels.shape)}",
                                  "class indices, one per sample")  # fmt: skip
        if len(labels) and not (labels.min() >= 0 and labels.max() < classes):
            raise InvalidArgument("y", f"{labels.min()} .. {labels.max()}",
                                  f"class indices in 0 .. {classes - 1}")  # fmt: skip
        inputs = self._checked_inputs(x)
        if len(inputs) != len(labels):
            raise InvalidArgument("y", f"{len(labels)} labels",
                                  f"{len(inputs)}, one per sample of x")  # fmt: skip
        repeats = self.layers[0].read_repeats if read_repeats is None else read_repeats
        meter = JobMeter(self.board, self.layers)
        predicted = np.argmax(self._scores(inputs, repeats), axis=1)
        spent = meter.read(fresh_writes=False)
        confusion = np.zeros((classes, classes), np.int64)
        np.add.at(confusion, (labels.astype(np.int64), predicted), 1)
        return ModelEvaluation(
            labels=self.model.inputs.labels,
            confusion=confusion,
            read_repeats=repeats,
            mvm_calls=spent.mvm_calls,
            modeled_time_ns=spent.modeled_time_ns,
            modeled_energy_nj=spent.modeled_energy_nj,
        )
