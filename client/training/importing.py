"""A network trained in software made a model file: inference first.

SIDRA's first use is a network trained digitally and run on the board. Its weights carry
no conductance mapping, so :func:`model_from_weights` chooses one from the data, as
quantisation tools calibrate ranges: each layer's ``weight_limit`` just above its
largest weight held on the array (the whole conductance window used, none clipped), and
its ``input_clip`` at a high percentile of the values that reach it over the training
samples (the digital forward pass, ReLU between layers), so the read voltages use their
range without a rare outlier setting it. The digital test accuracy goes into the model's
``trained`` figures, which ``sidra model eval`` shows beside what the board reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from sidra.drivers import InvalidArgument
from sidra.training.analog_layer import Mapping
from sidra.training.datasets import Dataset
from sidra.training.model import ModelInputs, ModelLayer, TrainedModel

__all__ = ["WEIGHT_MARGIN", "digital_logits", "model_from_weights"]

Array = npt.NDArray[np.float32]

WEIGHT_MARGIN = 1.05
"""A layer's weight limit over its largest weight on the array: write-verify noise around
the largest weights stays inside the window."""


def digital_logits(weights: Sequence[Array], x: Array) -> Array:
    """The software network's logits: ``[x, 1] · W`` layer by layer, ReLU between."""
    h = x
    for k, w in enumerate(weights):
        h = h @ w[:-1] + w[-1]
        if k < len(weights) - 1:
            h = np.maximum(h, np.float32(0.0))
    return h


def model_from_weights(
    weights: Sequence[npt.ArrayLike],
    data: Dataset,
    *,
    job: str = "imported",
    mapping: Mapping = Mapping.OFFSET,
    digital_bias: bool = False,
    input_percentile: float = 99.9,
) -> TrainedModel:
    """The model of a network trained in software on ``data``: ``weights`` one
    ``[inputs + 1, outputs]`` matrix per layer (the last row the bias), input side first,
    ReLU between layers. InvalidArgument naming ``weights[k]`` for a matrix of another
    shape or a value that is not finite, or ``input_percentile`` outside (0, 100]."""
    if not 0.0 < input_percentile <= 100.0:
        raise InvalidArgument("input_percentile", input_percentile, "a percentile in (0, 100]")
    if not len(weights):
        raise InvalidArgument("weights", [], "one matrix per layer, at least one")
    mapping = Mapping(mapping)
    checked = _checked(weights, data)
    h = data.x_train
    layers = []
    for k, w in enumerate(checked):
        on_array = w[:-1] if digital_bias else w
        largest = float(np.abs(on_array).max())
        reach = float(np.percentile(np.abs(h), input_percentile))
        layers.append(
            ModelLayer(
                w,
                weight_limit=WEIGHT_MARGIN * largest if largest > 0.0 else 1.0,
                input_clip=reach if reach > 0.0 else 1.0,
                mapping=mapping,
                digital_bias=digital_bias,
            )
        )
        if k < len(checked) - 1:
            h = np.maximum(h @ w[:-1] + w[-1], np.float32(0.0))
    predicted = np.argmax(digital_logits(checked, data.x_test), axis=1)
    accuracy = float(np.mean(predicted == data.y_test))
    figures = {"trained_on": "software", "test_accuracy": accuracy,
               "input_percentile": input_percentile}  # fmt: skip
    return TrainedModel(tuple(layers), ModelInputs.of(data), job, figures)


def _checked(weights: Sequence[npt.ArrayLike], data: Dataset) -> list[Array]:
    """Each matrix as float32, checked to chain from the data's features to its classes."""
    checked: list[Array] = []
    inputs = data.features
    for k, raw in enumerate(weights):
        field = f"weights[{k}]"
        w = np.asarray(raw)
        if w.dtype.kind not in "iuf" or w.ndim != 2:
            raise InvalidArgument(field, f"{w.dtype} {list(w.shape)}", "a 2-D real matrix")
        last = k == len(weights) - 1
        outputs = data.classes if last else w.shape[1]
        expected = [inputs + 1, outputs]
        if list(w.shape) != expected or outputs < 1:
            role = f"the {data.classes} classes" if last else "the next layer's inputs"
            raise InvalidArgument(
                f"{field}.shape", list(w.shape),
                f"{expected} (inputs + 1 bias row, outputs: {role})",
            )  # fmt: skip
        w32 = w.astype(np.float32)
        if not np.isfinite(w32).all():
            raise InvalidArgument(field, "NaN/Inf values", "finite weights within float32")
        checked.append(w32)
        inputs = outputs
    return checked
