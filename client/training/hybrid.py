"""Hybrid training: frozen analog feature layers, the last N layers trained with exact gradients.

SIDRA's Y3/Y10 path. Forward passes run on the board. The output error
δ = softmax(z) − onehot(y) is computed on the host; for earlier trainable
layers δ flows back through TransposeMVM and the ReLU derivative; the weight
gradient is the host outer product [h, 1]ᵀ·δ. Updates are kept on the host
and programmed with write-verify only for cells whose target moved by more
than ``threshold`` (weight units), so tiny updates do not burn writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, BoardInfo
from sidra.training.accounting import JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.datasets import Dataset
from sidra.training.epoch_checkpoint import EpochCheckpoint
from sidra.training.model import TrainedModel
from sidra.training.options import LastLayerOptions
from sidra.training.placement import LayerShape, Placement, claimed, named_tiles, place
from sidra.training.records import Checkpoint, TrainingRecord
from sidra.training.softmax import accuracy, cross_entropy, softmax
from sidra.training.stopping import EpochsKept, stopped

__all__ = ["HybridNetwork", "last_layer_placement", "train_last_layer"]

Array = npt.NDArray[np.float32]


class HybridNetwork:
    """Analog layers with ReLU between them; the last ``trainable`` ones learn."""

    def __init__(
        self,
        layers: Sequence[AnalogLinear],
        weights: Sequence[Array],
        trainable: int = 1,
        *,
        threshold: float | Sequence[float] = 0.0,
        programmed: bool = False,
    ) -> None:
        """Programs ``weights`` into ``layers`` (not with ``programmed``: they hold them
        already, a deployed model). ``threshold``: one for every layer, or one per layer
        (weight units)."""
        if not 1 <= trainable <= len(layers):
            raise ValueError(f"trainable: got {trainable}, expected 1 .. {len(layers)}")
        self.layers = list(layers)
        self.weights = [np.array(w, dtype=np.float32) for w in weights]
        self.targets = [w.copy() for w in self.weights]
        self.trainable = trainable
        given = [threshold] * len(layers) if isinstance(threshold, float | int) else threshold
        self.thresholds = [float(t) for t in given]
        """Per layer: the weight change below which a cell is not programmed again."""
        self.programs = 0
        """Program calls issued by training updates."""
        if not programmed:
            for layer, w in zip(self.layers, self.weights, strict=True):
                layer.program(w)

    def forward(
        self, x: Array, *, read_repeats: int | None = None
    ) -> tuple[list[Array], list[Array]]:
        """Inputs of every layer (after ReLU) and pre-activations of every layer, each pass
        the mean of ``read_repeats`` reads (default: each layer's own)."""
        inputs, pre = [x], []
        for i, layer in enumerate(self.layers):
            z = layer.forward(inputs[-1], read_repeats=read_repeats)
            pre.append(z)
            if i < len(self.layers) - 1:
                inputs.append(np.maximum(z, 0.0))
        return inputs, pre

    def predict(self, x: Array, chunk: int = 1024, *, read_repeats: int | None = None) -> Array:
        """The output layer's pre-activations (logits) for ``x``, ``chunk`` vectors a pass."""
        return np.concatenate(
            [
                self.forward(x[i : i + chunk], read_repeats=read_repeats)[1][-1]
                for i in range(0, len(x), chunk)
            ]
        )

    def step(self, x: Array, y: npt.NDArray[np.int64], learning_rate: float) -> float:
        """One exact-gradient step on a minibatch; returns its loss before the update."""
        loss, gradients = self.gradients(x, y)
        self.apply(gradients, learning_rate)
        return loss

    def gradients(self, x: Array, y: npt.NDArray[np.int64]) -> tuple[float, list[Array | None]]:
        """The minibatch's loss and each layer's weight gradient (None for a frozen layer),
        from the board's forward pass; δ goes down each layer by TransposeMVM on the
        board, with the ReLU derivative on the host."""
        inputs, pre = self.forward(x)
        logits = pre[-1]
        delta = softmax(logits)
        delta[np.arange(len(y)), y] -= 1.0
        delta /= np.float32(len(y))
        loss = cross_entropy(logits, y)
        gradients: list[Array | None] = [None] * len(self.layers)
        first = len(self.layers) - self.trainable
        for i in range(len(self.layers) - 1, first - 1, -1):
            layer = self.layers[i]
            delta = self.output_error(i, inputs[i], delta)
            h = np.hstack(
                [
                    np.clip(inputs[i], -layer.input_clip, layer.input_clip),
                    np.ones((len(x), 1), np.float32),
                ]
            )
            gradients[i] = h.T @ delta
            if i > first:  # δ for the layer below: TransposeMVM, then ReLU'
                delta = self.input_error(i, inputs[i], delta) * (pre[i - 1] > 0.0)
        return loss, gradients

    def output_error(self, i: int, x: Array, delta: Array) -> Array:
        """The error at layer ``i``'s outputs before its clipping, given the error after
        it and the layer's inputs ``x``: here no output clips, and δ passes as it is."""
        return delta

    def apply(self, gradients: Sequence[Array | None], learning_rate: float) -> None:
        """Weights -= learning_rate · gradient, clipped to each window, then programmed
        where a weight moved past the threshold (top layer first)."""
        for i in range(len(self.layers) - 1, -1, -1):
            gradient = gradients[i]
            if gradient is None:
                continue
            layer = self.layers[i]
            self.weights[i] -= np.float32(learning_rate) * gradient
            # Only what the array holds is bounded by its conductance window.
            analog = self.weights[i][: layer.analog_rows]
            np.clip(analog, -layer.weight_limit, layer.weight_limit, out=analog)
            self._program(i)

    def epoch(
        self,
        x: Array,
        y: npt.NDArray[np.int64],
        learning_rate: float,
        batch_size: int,
        rng: np.random.Generator,
    ) -> list[float]:
        """One pass over ``(x, y)`` in shuffled minibatches; returns every step's loss."""
        order = rng.permutation(len(x))
        batches = (order[i : i + batch_size] for i in range(0, len(order), batch_size))
        return [self.step(x[b], y[b], learning_rate) for b in batches]

    def input_error(self, i: int, x: Array, delta: Array) -> Array:
        """The error at layer ``i``'s inputs ``x`` (before the ReLU derivative of the layer
        below): :meth:`backward`, which does not see the inputs' clipping."""
        return self.backward(i, delta)

    def backward(self, i: int, delta: Array) -> Array:
        """Error at the input of layer ``i``: δ·W_iᵀ by TransposeMVM on the board."""
        return self.layers[i].backward(delta)

    def _program(self, i: int) -> None:
        moved = np.abs(self.weights[i] - self.targets[i]) > self.thresholds[i]
        if moved.any():
            self.targets[i][moved] = self.weights[i][moved]
            self.layers[i].program(self.targets[i])
            self.programs += 1


def train_last_layer(
    board: Board,
    data: Dataset,
    options: LastLayerOptions | None = None,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 0.0,
) -> TrainingRecord:
    """Random features W1 ~ N(0, 1/n_in), b1 ~ N(0, 0.25) frozen on a tile; the head is
    trained with exact host gradients and programmed with write-verify. Once ``stop`` is
    set the run ends after the epoch under way, its record's ``stopped_at_epoch`` that
    epoch. With ``checkpoint`` the run is saved there (an EpochCheckpoint) when it stops
    so or its board goes away (RunInterrupted); ``resume`` goes on from it (the same
    options).
    ``checkpoint_every_s``: also saved after an epoch once that long has passed since the
    last save (0: only when it stops early), so that a crash leaves a checkpoint."""
    o = options or LastLayerOptions()
    saved = EpochCheckpoint.load(checkpoint, o, "last-layer", dataset=data) if resume else None
    rng = np.random.default_rng(o.seed)
    tiles = claimed(
        board,
        lambda order: last_layer_placement(board.info, data.features, data.classes, o, order),
        None if saved is None else saved.settings,
        named=named_tiles(o),
    )
    features, head, w1 = _last_layer_tiles(board, data, o, rng, tiles)
    placed = {"features": [b.tile for b in features.blocks], "head": [b.tile for b in head.blocks]}
    record = TrainingRecord(
        settings=o.settings() | {"job": "last-layer"} | data.settings() | {"placement": placed}
    )
    place = None if checkpoint is None else Path(checkpoint)

    def model_of(net: HybridNetwork) -> TrainedModel:
        return TrainedModel.of(net.layers, net.targets, data, "last-layer")

    kept = EpochsKept(record, place, saved, every_s=checkpoint_every_s, model_of=model_of)
    with kept.guard():  # a resumed run's board gone while it is programmed again
        meter = JobMeter(board, [features, head])
        initial = [w1, np.zeros(head.shape, np.float32)]
        net = HybridNetwork(
            [features, head],
            initial if saved is None else saved.targets,
            trainable=o.trainable,
            threshold=o.threshold,
        )
        if saved is not None:
            saved.restore(record, meter, net, rng)
    final = o.learning_rate if o.final_learning_rate is None else o.final_learning_rate
    rates = np.linspace(o.learning_rate, final, o.epochs)
    with kept.guard():  # the board gone mid-way: the epochs made are kept
        for epoch in range(1 if saved is None else saved.epoch + 1, o.epochs + 1):
            rate = float(rates[epoch - 1])
            losses = net.epoch(data.x_train, data.y_train, rate, o.batch_size, rng)
            record.losses += losses
            meter.charge_losses(len(losses))
            test = accuracy(net.predict(data.x_test), data.y_test)
            record.checkpoints.append(Checkpoint(len(record.losses), test, meter.device_writes))
            kept.passed(epoch, net, rng, meter.read())
            if on_epoch is not None:
                on_epoch(epoch, test)
            if stopped(stop, record.settings, epoch, o.epochs):
                kept.save()  # to go on from, as from a board gone
                break
        record.weights = net.weights[-1]
        record.model = model_of(net)
        record.steps = len(record.losses)
        record.test_accuracy = record.checkpoints[-1].test_accuracy  # after the last epoch
        record.train_accuracy = accuracy(net.predict(data.x_train), data.y_train)
        record.count(meter.read())
        record.programs = net.programs
    return record


def last_layer_placement(
    info: BoardInfo, inputs: int, classes: int, o: LastLayerOptions, order: Sequence[int] = ()
) -> Placement:
    """The tiles of the feature layer and the head: those the options fix, the rest placed
    in ``o.tiles`` (features first; none given: in ``order``, :func:`tile_order`)."""
    layers = [
        LayerShape("features", inputs, o.hidden, digital_bias=o.digital_bias),
        LayerShape("head", o.hidden, classes, digital_bias=o.digital_bias),
    ]
    fixed: dict[str, tuple[int, ...]] = {}
    if o.feature_tile is not None:
        fixed["features"] = (o.feature_tile,)
    if o.head_tiles is not None:
        fixed["head"] = o.head_tiles
    return place(info, layers, allowed=o.tiles, fixed=fixed, order=order)


def _last_layer_tiles(
    board: Board,
    data: Dataset,
    o: LastLayerOptions,
    rng: np.random.Generator,
    tiles: Placement,
) -> tuple[AnalogLinear, AnalogLinear, Array]:
    """The feature and head layers on ``tiles`` (:func:`last_layer_placement`), and the
    random feature weights [W1; b1] (drawn first from ``rng``)."""
    n_in = data.features
    w1 = np.vstack(
        [rng.normal(0, 1 / np.sqrt(n_in), (n_in, o.hidden)), rng.normal(0, 0.5, (1, o.hidden))]
    ).astype(np.float32)
    # The feature range is the largest weight the tile holds (the bias too, on the array).
    analog_rows = n_in + int(not o.digital_bias)
    features = AnalogLinear(
        board,
        tiles.of("features"),
        n_in,
        o.hidden,
        weight_limit=float(np.abs(w1[:analog_rows]).max()),
        read_repeats=o.read_repeats,
        digital_bias=o.digital_bias,
    )
    head = AnalogLinear(
        board,
        tiles.of("head"),
        o.hidden,
        data.classes,
        weight_limit=o.head_weight_limit,
        input_clip=6.0,
        read_repeats=o.read_repeats,
        digital_bias=o.digital_bias,
    )
    return features, head, w1
