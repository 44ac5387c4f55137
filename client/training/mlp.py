"""Full-depth analog training: every layer forward by MVM and backward by TransposeMVM.

The SIDRA roadmap's full analog backward pass: a multi-layer perceptron whose layers
all sit on the board. Each step runs the forward pass on the board (one MVM per
layer block), takes the output error on the host, and carries it down layer by layer
with TransposeMVM (δ·Wᵀ, then the ReLU derivative on the host); the outer products
and the updates are the host's, and a weight is reprogrammed once it has moved past
a threshold (:class:`~sidra.training.hybrid.HybridNetwork`, every layer trainable).

The noise each analog pass adds accumulates with depth. Every ``cosine_every``
steps the gradient the board gave each layer is compared with the exact one, host
backpropagation through the host's copy of the same weights on the same minibatch
(the inputs' clipping included): the cosine per layer, input side first, goes in
the record (``gradient_cosine``: the mean over the run; ``gradient_cosine_last``:
over its last tenth).
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
from sidra.training.gradients import cosine, cosine_measures
from sidra.training.hybrid import HybridNetwork
from sidra.training.model import TrainedModel
from sidra.training.options import MLPOptions
from sidra.training.placement import Placement, chain, claimed, named_tiles, place
from sidra.training.records import Checkpoint, TrainingRecord
from sidra.training.softmax import accuracy, softmax
from sidra.training.stopping import EpochsKept, stopped

__all__ = [
    "NetworkFactory",
    "epoch_rates",
    "exact_gradients",
    "mlp_layers",
    "mlp_placement",
    "train_mlp",
    "train_network",
]

Array = npt.NDArray[np.float32]

HIDDEN_INPUT_CLIP = 6.0
"""Hidden activations map to the read voltages up to this value (ReLU outputs of a
He-initialised layer rarely pass it); the input layer keeps AnalogLinear's 4.0 for
standardised features."""


def mlp_placement(
    info: BoardInfo, data: Shaped, o: MLPOptions, order: Sequence[int] = ()
) -> Placement:
    """The tiles of each layer, input side first (``layer0``, ``layer1``, ...)."""
    widths = [data.features, *o.hidden, data.classes]
    layers = chain(widths, "layer", digital_bias=o.digital_bias)
    return place(info, layers, allowed=o.tiles, order=order)


def mlp_layers(
    board: Board, data: Dataset, o: MLPOptions, going_on_from: EpochCheckpoint | None = None
) -> tuple[list[AnalogLinear], Placement]:
    """The perceptron's analog layers on ``board``, input side first, and where they sit
    (``going_on_from``: a checkpoint whose tiles it takes first, :func:`tile_order`)."""
    earlier = None if going_on_from is None else going_on_from.settings
    placement = claimed(
        board, lambda order: mlp_placement(board.info, data, o, order), earlier,
        named=named_tiles(o),
    )  # fmt: skip
    widths = [data.features, *o.hidden, data.classes]
    layers = [
        AnalogLinear(
            board, placement.of(f"layer{i}"), n_in, n_out,
            weight_limit=o.weight_limit, read_repeats=o.read_repeats,
            digital_bias=o.digital_bias,
            input_clip=4.0 if i == 0 else HIDDEN_INPUT_CLIP,
        )
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    ]  # fmt: skip
    return layers, placement


NetworkFactory = Callable[..., HybridNetwork]
"""Builds the trained network: ``(layers, weights, trainable=, threshold=)``, as
:class:`HybridNetwork` takes them."""


def train_mlp(
    board: Board,
    data: Dataset,
    options: MLPOptions | None = None,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 0.0,
) -> TrainingRecord:
    """Trains the perceptron on ``board``; returns its record (``stop``: as for
    :func:`train_network`). With ``checkpoint`` the run is saved there (an
    EpochCheckpoint) when it stops so or its board goes away (RunInterrupted);
    ``resume`` goes on from it (the same options).
    ``checkpoint_every_s``: also saved after an epoch once that long has passed since the
    last save (0: only when it stops early), so that a crash leaves a checkpoint."""
    o = options or MLPOptions()
    saved = EpochCheckpoint.load(checkpoint, o, "mlp", dataset=data) if resume else None
    record, _ = train_network(
        board, data, o, HybridNetwork, on_epoch=on_epoch, stop=stop,
        checkpoint=checkpoint, saved=saved, checkpoint_every_s=checkpoint_every_s,
    )  # fmt: skip
    return record


def train_network(
    board: Board,
    data: Dataset,
    o: MLPOptions,
    network: NetworkFactory,
    *,
    job: str = "mlp",
    on_epoch: Callable[[int, float], None] | None = None,
    epochs: slice | None = None,
    initial: Sequence[Array] | None = None,
    train_accuracy: bool = True,
    stop: threading.Event | None = None,
    checkpoint: str | Path | None = None,
    saved: EpochCheckpoint | None = None,
    checkpoint_every_s: float = 0.0,
) -> tuple[TrainingRecord, HybridNetwork]:
    """The perceptron of ``o`` trained on ``board``, its backward pass as ``network``'s
    class computes it (:class:`HybridNetwork`: TransposeMVM on the board); the record
    and the trained network.

    ``epochs``: the part of ``o``'s schedule to run here (default: all of it; epochs
    are numbered from 1 in ``on_epoch`` and the checkpoints as in the whole schedule),
    so one schedule can be split between two boards (``sidra.training.pat``: the twin
    first, then the board). ``initial``: the weights to start from instead of He
    initialisation (the full matrices, bias rows included). ``train_accuracy`` False
    leaves the record's at 0.0 rather than reading the whole training set once more (a
    first part whose record only hands its weights on). Once ``stop`` is set the run
    ends after the epoch under way, its record's ``stopped_at_epoch`` that epoch.
    ``checkpoint``: where the run is saved when it stops so or its board goes away;
    ``saved``: the run to go on from, at its epoch (``epochs`` where it starts), its
    extras but the cosines carried into every checkpoint after it.
    ``checkpoint_every_s``: also saved after an epoch once that long has passed since the
    last save (0: only when it stops early), so that a crash leaves a checkpoint."""
    rates = epoch_rates(o)
    first, end, _ = (epochs or slice(None)).indices(len(rates))
    if not 0 <= first < end:
        raise ValueError(f"epochs: got {epochs}, expected a part of the {len(rates)} epochs")
    # A later part of a schedule draws its minibatches from a stream of its own.
    rng = np.random.default_rng(o.seed if first == 0 else [o.seed, first])
    layers, placement = mlp_layers(board, data, o, saved)
    if saved is not None:  # programmed as they were last, then held as they were
        weights = _copied(saved.targets, layers)
    else:
        weights = _initial_weights(layers, o, rng) if initial is None else _copied(initial, layers)
    record = TrainingRecord(
        settings=o.settings() | {"job": job} | data.settings() | {"placement": placement.summary()}
    )
    place = None if checkpoint is None else Path(checkpoint)

    def model_of(net: HybridNetwork) -> TrainedModel:
        return TrainedModel.of(net.layers, net.targets, data, job)

    kept = EpochsKept(record, place, saved, every_s=checkpoint_every_s, model_of=model_of)
    with kept.guard():  # a resumed run's board gone while it is programmed again
        meter = JobMeter(board, layers)
        trainable = len(layers) if o.trainable is None else o.trainable
        net = network(layers, weights, trainable=trainable, threshold=o.threshold)
        if saved is not None:
            saved.restore(record, meter, net, rng)
    cosines: list[list[float]] = []
    carried: dict[str, Any] = {}  # what a caller saved beside (pat's twin epochs)
    if saved is not None:
        cosines = [list(c) for c in saved.extras["cosines"]]
        carried = {k: v for k, v in saved.extras.items() if k != "cosines"}
        first = saved.epoch
    with kept.guard():  # the board gone mid-way: the epochs made are kept
        for epoch, rate in enumerate(rates[first:end], start=first + 1):
            order = rng.permutation(len(data.x_train))
            starts = range(0, len(order), o.batch_size)
            for start in starts:
                batch = order[start : start + o.batch_size]
                x, y = data.x_train[batch], data.y_train[batch]
                if len(record.losses) % o.cosine_every == 0:
                    exact = exact_gradients(net, x, y)  # the weights before this step's update
                    loss, analog = net.gradients(x, y)
                    pairs = zip(analog, exact, strict=True)
                    cosines.append([np.nan if a is None else cosine(a, e) for a, e in pairs])
                else:
                    loss, analog = net.gradients(x, y)
                net.apply(analog, float(rate))
                record.losses.append(loss)
            meter.charge_losses(len(starts))  # each step's loss, counted by the epoch
            tested = net.predict(data.x_test, read_repeats=o.eval_read_repeats)
            test = accuracy(tested, data.y_test)
            record.checkpoints.append(Checkpoint(len(record.losses), test, meter.device_writes))
            kept.passed(epoch, net, rng, meter.read(), lambda: carried | {"cosines": cosines})
            if on_epoch is not None:
                on_epoch(epoch, test)
            # Against the whole schedule's last epoch: a part of it (pat's) stops too.
            if stopped(stop, record.settings, epoch, len(rates)):
                kept.save()  # to go on from, as from a board gone
                break
        record.weights = net.weights[-1]
        record.model = model_of(net)
        record.steps = len(record.losses)
        record.test_accuracy = record.checkpoints[-1].test_accuracy
        if train_accuracy:
            record.train_accuracy = accuracy(
                net.predict(data.x_train, read_repeats=o.eval_read_repeats), data.y_train
            )
        record.count(meter.read())
        record.programs = net.programs
    # None for a frozen layer (--trainable): it has no gradient.
    record.measures = cosine_measures(cosines, len(net.weights))
    return record, net


def epoch_rates(o: MLPOptions) -> npt.NDArray[np.float64]:
    """The learning rate of each epoch of ``o``'s schedule: linear from ``learning_rate``
    to ``final_learning_rate``."""
    final = o.learning_rate if o.final_learning_rate is None else o.final_learning_rate
    return np.linspace(o.learning_rate, final, o.epochs)


def _initial_weights(
    layers: Sequence[AnalogLinear], o: MLPOptions, rng: np.random.Generator
) -> list[Array]:
    """He initialisation for ReLU layers, biases 0, inside the conductance window."""
    weights = []
    for layer in layers:
        n_in, n_out = layer.inputs, layer.outputs
        w = rng.normal(0.0, np.sqrt(2.0 / n_in), (n_in + 1, n_out)).astype(np.float32)
        w[-1] = 0.0
        np.clip(w, -o.weight_limit, o.weight_limit, out=w)
        weights.append(w)
    return weights


def _copied(initial: Sequence[Array], layers: Sequence[AnalogLinear]) -> list[Array]:
    """``initial`` as float32 copies, each checked against its layer's shape."""
    if len(initial) != len(layers):
        raise ValueError(f"initial: got {len(initial)} weight matrices, expected {len(layers)}")
    weights = []
    for i, (w, layer) in enumerate(zip(initial, layers, strict=True)):
        shape = (layer.inputs + 1, layer.outputs)
        if np.shape(w) != shape:
            raise ValueError(f"initial[{i}]: got shape {np.shape(w)}, expected {shape}")
        weights.append(np.array(w, np.float32))
    return weights


def exact_gradients(
    net: HybridNetwork, x: Array, y: npt.NDArray[np.int64]
) -> list[npt.NDArray[np.float64]]:
    """Each layer's gradient by host backpropagation through ``net``'s weights as the
    host holds them, in float64: what the board's gradients are compared with."""
    layers, weights = net.layers, [w.astype(np.float64) for w in net.weights]
    inputs: list[npt.NDArray[np.float64]] = [x.astype(np.float64)]
    clipped: list[npt.NDArray[np.float64]] = []
    pre: list[npt.NDArray[np.float64]] = []
    for i, (layer, w) in enumerate(zip(layers, weights, strict=True)):
        h = np.hstack([np.clip(inputs[i], -layer.input_clip, layer.input_clip),
                       np.ones((len(x), 1))])  # fmt: skip
        clipped.append(h)
        pre.append(h @ w)
        if i < len(layers) - 1:
            inputs.append(np.maximum(pre[-1], 0.0))
    delta = softmax(pre[-1].astype(np.float32)).astype(np.float64)
    delta[np.arange(len(y)), y] -= 1.0
    delta /= len(y)
    gradients: list[npt.NDArray[np.float64]] = [np.zeros(0)] * len(layers)
    for i in range(len(layers) - 1, -1, -1):
        gradients[i] = clipped[i].T @ delta
        if i > 0:
            inside = np.abs(inputs[i]) < layers[i].input_clip  # clip passes no gradient
            delta = (delta @ weights[i][:-1].T) * inside * (pre[i - 1] > 0.0)
    return gradients
