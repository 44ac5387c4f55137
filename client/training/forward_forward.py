"""Forward-forward training (Hinton 2022): every layer's forward pass on the board, no
backward pass.

The label goes into the input: the features with the label's one-hot vector
appended (``label_scale`` in the label's place, 0 elsewhere; a variant of Hinton's
label in the first pixels that keeps every feature). Each sample is shown once with
its own label (positive data) and once with a wrong label drawn at random (negative
data), both halves in one batch, so a step is one MVM per layer block. A layer's
output goes to the next layer normalised to a root-mean-square of 1: only its
direction passes on, the goodness it was judged by does not.

Each layer learns alone: its goodness g = mean over its units of the squared ReLU
activation should exceed θ (``goodness_threshold``) for positive data and stay below
it for negative data; its loss is mean softplus(θ − g⁺) + mean softplus(g⁻ − θ).
The update of a layer comes from that layer's own input and output only:

- ``exact``: the loss's gradient, [h, 1]ᵀ·(∂L/∂g · 2y/n), from the board's outputs y
  and the inputs h the board was given; Adam on the host turns it into a step.
- ``spsa``: layer-local SPSA on the same loss. The board evaluates the layer at its
  programmed weights ±c·Δ (one PerturbedMVM with both points; Δ from a seed, applied
  next to the array), the host computes the two losses and moves the weights by
  a_k·(L⁺ − L⁻)/(2c_k)·Δ: no gradient is ever formed, only a difference of two
  goodness losses. The mean of the ± outputs is the unperturbed pre-activation
  (the perturbation enters linearly), which feeds the next layer.

Either way no error travels down: no TransposeMVM is issued. The updates are kept on
the host and a cell is reprogrammed once its target moved past ``threshold``
(:class:`~sidra.training.hybrid.HybridNetwork`).

Classification: each test sample is run once per label; the label whose input gives
the highest goodness summed over all layers wins. The run keeps its network as
``model.npz`` with a goodness readout (sidra.training.model.GoodnessReadout), which
``sidra model eval|predict|deploy`` run the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, BoardInfo
from sidra.training.accounting import JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.datasets import Dataset, Shaped
from sidra.training.epoch_checkpoint import EpochCheckpoint
from sidra.training.estimators import SPSAGradient
from sidra.training.hybrid import HybridNetwork
from sidra.training.mlp import HIDDEN_INPUT_CLIP
from sidra.training.model import GoodnessReadout, TrainedModel
from sidra.training.options import FFEstimator, FFOptions
from sidra.training.placement import Placement, chain, claimed, named_tiles, place
from sidra.training.records import Checkpoint, TrainingRecord, array_from_json, array_to_json
from sidra.training.schedules import spall_gains
from sidra.training.stopping import EpochsKept, stopped

__all__ = [
    "ForwardForwardNetwork",
    "ff_placement",
    "goodness",
    "goodness_by_label",
    "goodness_loss",
    "train_forward_forward",
]

Array = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]

INPUT_CLIP = 4.0
"""Standardised features (and the label inputs) map to the read voltages up to this."""


def goodness(outputs: Array) -> npt.NDArray[np.float64]:
    """Each row's goodness: the mean over the units of the squared activation."""
    y = outputs.astype(np.float64)
    result: npt.NDArray[np.float64] = np.mean(y * y, axis=1)
    return result


def goodness_loss(
    outputs: Array, positives: int, theta: float
) -> tuple[float, npt.NDArray[np.float64]]:
    """The layer's loss on ``outputs`` (its first ``positives`` rows positive data, the
    rest negative) and ∂loss/∂g of every row."""
    g = goodness(outputs)
    margin = np.concatenate([theta - g[:positives], g[positives:] - theta])
    loss = float(np.mean(np.logaddexp(0.0, margin[:positives]))
                 + np.mean(np.logaddexp(0.0, margin[positives:])))  # fmt: skip
    slope = 0.5 * (1.0 + np.tanh(0.5 * margin))  # sigmoid(margin), without overflow
    slope[:positives] *= -1.0 / positives
    slope[positives:] *= 1.0 / (len(g) - positives)
    return loss, slope


def normalised(outputs: Array) -> Array:
    """``outputs`` scaled row by row to a root-mean-square of 1 (a silent row stays 0)."""
    rms = np.sqrt(np.mean(np.square(outputs, dtype=np.float64), axis=1, keepdims=True))
    result: Array = (outputs / (rms + 1e-6)).astype(np.float32)
    return result


def goodness_by_label(
    layers: Sequence[AnalogLinear],
    x: Array,
    classes: int,
    label_scale: float,
    chunk: int = 1024,
    read_repeats: int | None = None,
) -> npt.NDArray[np.float64]:
    """Goodness [layers, samples, labels] of every sample of ``x`` shown with every label
    (its one-hot, scaled by ``label_scale``, appended), ``chunk`` rows a pass: how a
    forward-forward network classifies, in training and as a deployed model."""
    per = max(1, chunk // classes)
    onehot = np.eye(classes, dtype=np.float32) * np.float32(label_scale)
    result = np.zeros((len(layers), len(x), classes))
    for start in range(0, len(x), per):
        part = x[start : start + per]
        h = np.hstack([np.repeat(part, classes, axis=0), np.tile(onehot, (len(part), 1))])
        for i, layer in enumerate(layers):
            y = np.maximum(layer.forward(h, read_repeats=read_repeats), np.float32(0.0))
            result[i, start : start + len(part)] = goodness(y).reshape(len(part), -1)
            h = normalised(y)
    return result


class ForwardForwardNetwork:
    """Analog layers whose goodness tells a right label from a wrong one."""

    def __init__(
        self,
        layers: Sequence[AnalogLinear],
        weights: Sequence[Array],
        *,
        classes: int,
        label_scale: float,
        theta: float,
        threshold: float,
    ) -> None:
        """Programs ``weights`` into ``layers`` (the first takes features + classes inputs)."""
        self.hybrid = HybridNetwork(layers, weights, trainable=len(layers), threshold=threshold)
        self.layers = self.hybrid.layers
        self.classes = classes
        self.label_scale = label_scale
        self.theta = theta

    @property
    def weights(self) -> list[Array]:
        """Each layer's weights [W; b] as the host holds them."""
        return self.hybrid.weights

    def labelled(self, x: Array, labels: Labels) -> Array:
        """The first layer's input: ``x`` with each row's label one-hot appended."""
        onehot = np.zeros((len(x), self.classes), np.float32)
        onehot[np.arange(len(x)), labels] = self.label_scale
        return np.hstack([x, onehot])

    def inputs_of(self, layer: int, rows: Array) -> Array:
        """[h, 1] as layer ``layer`` sees it: clipped like its read voltages, bias input 1."""
        clip = self.layers[layer].input_clip
        return np.hstack([np.clip(rows, -clip, clip), np.ones((len(rows), 1), np.float32)])

    def goodness_by_label(self, x: Array, chunk: int = 1024) -> npt.NDArray[np.float64]:
        """Goodness [layers, samples, labels] of every sample shown with every label."""
        return goodness_by_label(self.layers, x, self.classes, self.label_scale, chunk)

    def predict(self, x: Array) -> Labels:
        """The label with the highest goodness summed over the layers, per sample."""
        predicted: Labels = self.goodness_by_label(x).sum(axis=0).argmax(axis=1)
        return predicted

    def local_gradients(self, h: Array, positives: int) -> tuple[list[float], list[Array]]:
        """Each layer's goodness loss and its exact gradient, from the board's forward
        pass of that layer alone; ``h`` holds the first layer's positive rows, then its
        negative rows. Layer i's gradient uses its own input and output only."""
        losses, gradients = [], []
        for i, layer in enumerate(self.layers):
            y = np.maximum(layer.forward(h), 0.0)
            loss, slope = goodness_loss(y, positives, self.theta)
            # ∂L/∂z = ∂L/∂g · 2y/n (y is 0 where the ReLU is off, so its derivative is in).
            delta = (slope[:, None] * (2.0 / y.shape[1]) * y).astype(np.float32)
            gradients.append(self.inputs_of(i, h).T @ delta)
            losses.append(loss)
            h = normalised(y)
        return losses, gradients

    def spsa_step(
        self, h: Array, positives: int, estimator: SPSAGradient, rng: np.random.Generator
    ) -> tuple[float, list[Array]]:
        """Each layer's loss (mean over the perturbed points) and SPSA gradient estimate,
        the layer perturbed on the board around its programmed weights."""
        losses, estimates = [], []
        for i, layer in enumerate(self.layers):
            targets = self.hybrid.targets[i]  # what the board holds
            points = estimator.ask(targets, rng)
            perturbations = [(p[0][0], abs(p[0][1]), 1 if p[0][1] > 0 else -1) for p in points]
            outputs = layer.perturbed_forward(h, perturbations)  # [points, rows, units]
            point_losses = [
                goodness_loss(np.maximum(z, 0.0), positives, self.theta)[0] for z in outputs
            ]
            estimates.append(estimator.tell(targets, points, point_losses))
            losses.append(float(np.mean(point_losses)))
            # ±c·Δ cancel in the mean of each pair: the unperturbed pre-activation.
            h = normalised(np.maximum(outputs.mean(axis=0), 0.0))
        return float(np.mean(losses)), estimates


class Adam:
    """Adam (Kingma & Ba 2015) on each layer's gradient: the step per unit learning rate."""

    def __init__(self, shapes: Sequence[tuple[int, ...]], beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8) -> None:  # fmt: skip
        self.m = [np.zeros(s, np.float32) for s in shapes]
        self.v = [np.zeros(s, np.float32) for s in shapes]
        self.t = [0] * len(shapes)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def step(self, i: int, gradient: Array) -> Array:
        self.t[i] += 1
        b1, b2 = np.float32(self.beta1), np.float32(self.beta2)
        self.m[i] = b1 * self.m[i] + (1 - b1) * gradient
        self.v[i] = b2 * self.v[i] + (1 - b2) * gradient * gradient
        m_hat = self.m[i] / np.float32(1.0 - self.beta1 ** self.t[i])
        v_hat = self.v[i] / np.float32(1.0 - self.beta2 ** self.t[i])
        result: Array = (m_hat / (np.sqrt(v_hat) + np.float32(self.epsilon))).astype(np.float32)
        return result

    def state(self) -> dict[str, Any]:
        """The moments and step counts, as JSON (an epoch checkpoint's)."""
        return {"m": [array_to_json(m) for m in self.m], "v": [array_to_json(v) for v in self.v],
                "t": list(self.t)}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        """Back to :meth:`state`'s moments and step counts."""
        self.m = [array_from_json(m) for m in state["m"]]
        self.v = [array_from_json(v) for v in state["v"]]
        self.t = [int(t) for t in state["t"]]


def ff_placement(
    info: BoardInfo, data: Shaped, o: FFOptions, order: Sequence[int] = ()
) -> Placement:
    """The tiles of each layer, input side first (``layer0``, ``layer1``, ...)."""
    widths = [data.features + data.classes, *o.hidden]
    layers = chain(widths, "layer", digital_bias=o.bias_on_host)
    return place(info, layers, allowed=o.tiles, order=order)


def train_forward_forward(
    board: Board,
    data: Dataset,
    options: FFOptions | None = None,
    *,
    on_epoch: Callable[[int, float | None], None] | None = None,
    stop: threading.Event | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 0.0,
) -> TrainingRecord:
    """Trains the layers on ``board`` by forward-forward; returns the run's record.

    ``on_epoch(epoch, test_accuracy)`` is called after every epoch (where a job can be
    stopped), with None for an epoch without a test checkpoint (``eval_every``). Once
    ``stop`` is set the run ends after the epoch under way (tested then, as a last
    epoch is, after ``on_epoch``), its record's ``stopped_at_epoch`` that epoch. With
    ``checkpoint`` the run is saved there (an EpochCheckpoint) when it stops so or its
    board goes away (RunInterrupted); ``resume`` goes on from it (the same options).
    ``checkpoint_every_s``: also saved after an epoch once that long has passed since the
    last save (0: only when it stops early), so that a crash leaves a checkpoint."""
    o = options or FFOptions()
    saved = EpochCheckpoint.load(checkpoint, o, "ff", dataset=data) if resume else None
    rng = np.random.default_rng(o.seed)
    earlier = None if saved is None else saved.settings
    placement = claimed(
        board, lambda order: ff_placement(board.info, data, o, order), earlier,
        named=named_tiles(o),
    )  # fmt: skip
    record = TrainingRecord(
        settings=o.settings() | {"job": "ff"} | data.settings() | {"placement": placement.summary()}
    )
    place = None if checkpoint is None else Path(checkpoint)

    def model_of(hybrid: HybridNetwork) -> TrainedModel:
        readout = GoodnessReadout(o.label_scale)
        return TrainedModel.of(hybrid.layers, hybrid.targets, data, "ff", readout)

    kept = EpochsKept(record, place, saved, every_s=checkpoint_every_s, model_of=model_of)
    with kept.guard():  # a resumed run's board gone while it is programmed again
        net = _network(board, data, o, placement, rng, None if saved is None else saved.targets)
        meter = JobMeter(board, net.layers)
    batches = -(-len(data.x_train) // o.batch_size)
    adam = Adam([w.shape for w in net.weights])
    spsa_rates, spsa_sizes = (g() for g in spall_gains(o.spsa_a, o.spsa_c, o.epochs * batches))
    final = o.learning_rate if o.final_learning_rate is None else o.final_learning_rate
    evaluations = len(net.layers) * (2 * o.resamplings if o.estimator is FFEstimator.SPSA else 1)
    by_label = np.zeros(0)
    if saved is not None:
        saved.restore(record, meter, net.hybrid, rng)
        adam.restore(saved.extras["adam"])
        by_label = np.array(saved.extras["by_label"])
        if o.estimator is FFEstimator.SPSA:  # the gains of the steps made are spent
            for _ in range(saved.epoch * batches):
                next(spsa_rates), next(spsa_sizes)

    def going_on() -> dict[str, Any]:
        """What else the run needs to go on from an epoch (its checkpoint's extras)."""
        return {"adam": adam.state(), "by_label": by_label.tolist()}

    with kept.guard():  # the board gone mid-way: the epochs made are kept
        for epoch, rate in enumerate(np.linspace(o.learning_rate, final, o.epochs), start=1):
            if saved is not None and epoch <= saved.epoch:
                continue
            order = rng.permutation(len(data.x_train))
            for start in range(0, len(order), o.batch_size):
                batch = order[start : start + o.batch_size]
                x, y = data.x_train[batch], data.y_train[batch]
                wrong = (y + rng.integers(1, data.classes, len(y))) % data.classes
                h = np.vstack([net.labelled(x, y), net.labelled(x, wrong)])
                if o.estimator is FFEstimator.SPSA:
                    estimator = SPSAGradient(next(spsa_sizes), o.resamplings)
                    loss, updates = net.spsa_step(h, len(y), estimator, rng)
                    step_size = next(spsa_rates)
                else:
                    losses, gradients = net.local_gradients(h, len(y))
                    loss = float(np.mean(losses))
                    updates = [adam.step(i, g) for i, g in enumerate(gradients)]
                    step_size = float(rate)
                net.hybrid.apply(list(updates), step_size)
                record.losses.append(loss)
            meter.charge_losses(batches * evaluations)
            test: float | None = None
            if epoch % o.eval_every == 0 or epoch == o.epochs:
                by_label, test = _tested(net, data, record, meter)
            kept.passed(epoch, net.hybrid, rng, meter.read(), going_on)
            if on_epoch is not None:
                on_epoch(epoch, test)
            if stopped(stop, record.settings, epoch, o.epochs):
                kept.save()  # to go on from (the epoch's state before its test below)
                if test is None:  # a run's last epoch is tested, a stopped run's too
                    by_label, test = _tested(net, data, record, meter)
                break
        record.weights = net.weights[-1]
        record.steps = len(record.losses)
        record.test_accuracy = record.checkpoints[-1].test_accuracy
        record.train_accuracy = float(np.mean(net.predict(data.x_train) == data.y_train))
        record.count(meter.read())
        record.programs = net.hybrid.programs
        record.model = model_of(net.hybrid)
    record.measures = {"goodness_separation": goodness_separation(by_label, data.y_test)}
    return record


def _tested(
    net: ForwardForwardNetwork, data: Dataset, record: TrainingRecord, meter: JobMeter
) -> tuple[npt.NDArray[np.float64], float]:
    """The test set's goodness by label and accuracy, as a checkpoint of ``record``."""
    by_label = net.goodness_by_label(data.x_test)
    test = float(np.mean(by_label.sum(axis=0).argmax(axis=1) == data.y_test))
    record.checkpoints.append(Checkpoint(len(record.losses), test, meter.device_writes))
    return by_label, test


def goodness_separation(by_label: npt.NDArray[np.float64], labels: Labels) -> list[float]:
    """Per layer: mean goodness with the right label minus mean goodness with a wrong one
    (``by_label`` [layers, samples, labels], from :meth:`goodness_by_label`)."""
    right = np.zeros(by_label.shape[1:], bool)
    right[np.arange(len(labels)), labels] = True
    return [round(float(g[right].mean() - g[~right].mean()), 4) for g in by_label]


def _network(
    board: Board,
    data: Dataset,
    o: FFOptions,
    placement: Placement,
    rng: np.random.Generator,
    programmed: Sequence[Array] | None = None,
) -> ForwardForwardNetwork:
    """The layers on ``placement``'s tiles, programmed with N(0, 1/n_in) weights, biases
    0, or with ``programmed`` (a run gone on with: its layers as last programmed)."""
    widths = [data.features + data.classes, *o.hidden]
    layers, weights = [], []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = rng.normal(0.0, np.sqrt(1.0 / n_in), (n_in + 1, n_out)).astype(np.float32)
        w[-1] = 0.0
        np.clip(w, -o.weight_limit, o.weight_limit, out=w)
        weights.append(w)
        layers.append(
            AnalogLinear(
                board, placement.of(f"layer{i}"), n_in, n_out,
                weight_limit=o.weight_limit, read_repeats=o.read_repeats,
                digital_bias=o.bias_on_host,
                input_clip=INPUT_CLIP if i == 0 else HIDDEN_INPUT_CLIP,
            )
        )  # fmt: skip
    if programmed is not None:
        weights = [np.array(w, np.float32) for w in programmed]
    return ForwardForwardNetwork(
        layers, weights, classes=data.classes, label_scale=o.label_scale,
        theta=o.goodness_threshold, threshold=o.threshold,
    )  # fmt: skip
