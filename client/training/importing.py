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

__all__ = ["SCALING_ARRAYS", "WEIGHT_MARGIN", "digital_logits", "model_from_weights"]

Array = npt.NDArray[np.float32]

SCALING_ARRAYS = ("feature_mean", "feature_scale")
"""A weights file's optional arrays: how the network's training scaled the raw features."""

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
    reference_column: bool = False,
    input_percentile: float = 99.9,
    feature_mean: npt.ArrayLike | None = None,
    feature_scale: npt.ArrayLike | None = None,
) -> TrainedModel:
    """The model of a network trained in software on ``data``: ``weights`` one
    ``[inputs + 1, outputs]`` matrix per layer (the last row the bias), input side first,
    ReLU between layers. ``reference_column`` (offset mapping only): one column per tile
    at the reference conductance, subtracted from the others in the analog domain, so
    drift common to a tile's cells cancels (sidra.training.analog_layer).

    ``feature_mean`` and ``feature_scale``: how the network's training scaled the raw
    features, ``(raw - mean) / scale`` (one value per feature, or one for all: raw
    digits divided by 16 is ``feature_scale=16``); the one not given is 0 (mean) or 1
    (scale). Neither given: the data set's standardisation, the training part's mean and
    standard deviation (:func:`load_dataset`'s ``x_train``). The model keeps the scaling,
    so it takes raw features wherever it runs.

    InvalidArgument naming ``weights[k]`` for a matrix of another shape or a value that
    is not finite, ``feature_mean`` / ``feature_scale`` for a wrong count or value, or
    ``input_percentile`` outside (0, 100]."""
    if not 0.0 < input_percentile <= 100.0:
        raise InvalidArgument("input_percentile", input_percentile, "a percentile in (0, 100]")
    if not len(weights):
        raise InvalidArgument("weights", [], "one matrix per layer, at least one")
    mapping = Mapping(mapping)
    if reference_column and mapping is not Mapping.OFFSET:
        allowed = "false with the differential mapping (its pair of columns cancels common drift)"
        raise InvalidArgument("reference_column", True, allowed)
    checked = _checked(weights, data)
    inputs = ModelInputs.of(data, _scaling(feature_mean, feature_scale, data.features))
    h = inputs.take(data, data.x_train)
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
                reference_column=reference_column,
                digital_bias=digital_bias,
            )
        )
        if k < len(checked) - 1:
            h = np.maximum(h @ w[:-1] + w[-1], np.float32(0.0))
    predicted = np.argmax(digital_logits(checked, inputs.take(data, data.x_test)), axis=1)
    accuracy = float(np.mean(predicted == data.y_test))
    figures = {"trained_on": "software", "test_accuracy": accuracy,
               "input_percentile": input_percentile}  # fmt: skip
    return TrainedModel(tuple(layers), inputs, job, figures)


def _scaling(
    mean: npt.ArrayLike | None, scale: npt.ArrayLike | None, features: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """The given feature scaling as two float64 ``[features]`` arrays (None: neither
    given), or InvalidArgument naming the one that is not one finite value per feature
    (or one for all; the scale's > 0)."""
    if mean is None and scale is None:
        return None
    arrays = []
    for name, given, default in (("feature_mean", mean, 0.0), ("feature_scale", scale, 1.0)):
        a = np.asarray(default if given is None else given)
        allowed = f"{features} finite numbers (one per feature) or one for all"
        if a.dtype.kind not in "biuf" or a.ndim > 1 or a.size not in (1, features):
            raise InvalidArgument(name, f"{a.dtype} {list(a.shape)}", allowed)
        a = np.broadcast_to(a.astype(np.float64).reshape(-1), (features,)).copy()
        if not np.isfinite(a).all():
            raise InvalidArgument(name, "NaN/Inf", allowed)
        if name == "feature_scale" and not (a > 0.0).all():
            raise InvalidArgument(name, f"min {a.min():g}", f"{allowed}, each > 0")
        arrays.append(a)
    return arrays[0], arrays[1]


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
