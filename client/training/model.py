"""A trained network as one file: every layer's weights and mapping, the input scaling and
the class labels, to program onto any board and run there (inference).

Every training run of a network (``sidra train spsa``, ``last-layer``, ``mlp``, ``pat``,
``ff``, ``eqprop``) keeps it as ``model.npz`` in its record. Its *readout*
says how a class comes out: the largest of the last layer's outputs (logits); for a
forward-forward network, the label whose one-hot input gives the highest goodness summed
over the layers (:class:`GoodnessReadout`); for an equilibrium-propagation network, the
largest output state once the states settle (:class:`SettleReadout`).
:meth:`TrainedModel.deploy` places and programs it on a board (sidra.training.deployment);
``sidra model`` evaluates it there or classifies new inputs with it.

The file is an uncompressed NumPy ``.npz`` archive read without pickle (so a file from
anyone is safe to open), holding:

- ``meta``: a JSON document (a 0-d unicode array): ``format`` ``"sidra-model"``,
  ``version`` (1, or 2 when it has a ``readout``), ``job``, ``hidden_activation``
  (``"relu"``; ``"hard_sigmoid"`` with a settle readout), ``readout`` (version 2;
  absent: logits) ``{"kind": "goodness", "label_scale": s}`` or ``{"kind": "settle",
  "max_iterations": n, "tolerance": t, "damping": d}``,
  ``layers`` (per layer ``weight_limit``, ``input_clip``, ``mapping``,
  ``reference_column``, ``digital_bias``), ``dataset`` (``name``, ``labels``,
  ``test_size``, ``random_state``) and ``trained`` (where and how well it was trained:
  free-form figures, not read back);
- ``layer0``, ``layer1``, ...: float32 weights ``[inputs + 1, outputs]``, input side
  first, the last row the bias (with a goodness readout the first layer's inputs are the
  features, then one per class);
- ``feature_mean``, ``feature_scale``: float64 ``[features]``, the standardisation of
  raw inputs (``(raw - mean) / scale``) the network was trained behind.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Mapping as MappingOf
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, BoardInfo, InvalidArgument
from sidra.drivers.validation import to_float32
from sidra.training.analog_layer import AnalogLinear, Mapping
from sidra.training.atomic_files import write_atomically
from sidra.training.datasets import Dataset
from sidra.training.placement import LayerShape, Placement, place

if TYPE_CHECKING:
    from sidra.training.deployment import DeployedModel

__all__ = [
    "MODEL_FILE",
    "MODEL_FORMAT",
    "MODEL_VERSION",
    "GoodnessReadout",
    "ModelFileError",
    "ModelInputs",
    "ModelLayer",
    "Readout",
    "SettleReadout",
    "TrainedModel",
]

Array = npt.NDArray[np.float32]

MODEL_FILE = "model.npz"
"""The file a run's record keeps its trained network in."""

MODEL_FORMAT = "sidra-model"
"""``meta.format`` of a model file."""

MAX_SETTLE_ITERATIONS = 10_000
"""Most sweeps a settle readout may ask for (a file cannot make an evaluation endless)."""

MODEL_VERSION = 2
"""The latest ``meta.version`` this code reads; files of a later version are refused. A
file is written with the lowest version that holds it (1 without a ``readout``), so that
older sidra reads every model it could run."""

HIDDEN_ACTIVATION = "relu"
"""The activation between layers of every network but a settling one."""

SETTLE_ACTIVATION = "hard_sigmoid"
"""A settling network's states: each clipped to [0, 1]."""


class ModelFileError(ValueError):
    """A model file that cannot be read, or holds something this code cannot run; the
    message names the file, the field, the value and what is allowed."""


@dataclass(frozen=True, slots=True)
class GoodnessReadout:
    """A forward-forward network's readout (sidra.training.forward_forward): each sample
    is run once per class with that class's one-hot vector, scaled, appended to its
    features; a layer's ReLU output goes on normalised to a root-mean-square of 1; the
    class whose input gives the highest goodness (mean squared activation) summed over
    the layers wins."""

    label_scale: float
    """The value in the class's place of the appended one-hot vector (input units)."""

    def settings(self) -> dict[str, Any]:
        """``meta.readout``."""
        return {"kind": "goodness", "label_scale": self.label_scale}


@dataclass(frozen=True, slots=True)
class SettleReadout:
    """An equilibrium-propagation network's readout (sidra.training.eqprop): the layers
    are symmetric couplings, each layer's state the hard sigmoid (clip to [0, 1]) of its
    drive from below (MVM) and from above (TransposeMVM of the coupling above); from zero
    states, sweeps from the input side up move each state ``damping`` of the way to that
    value until no state moves more than ``tolerance`` or for ``max_iterations`` sweeps;
    the largest output state is the class."""

    max_iterations: int
    """Sweeps at most (each one pass of every coupling both ways)."""
    tolerance: float
    """Largest change of a state in a sweep at which the states count as settled."""
    damping: float
    """Share of the way to its fixed-point value a state moves per sweep, (0, 1]."""

    def settings(self) -> dict[str, Any]:
        """``meta.readout``."""
        return {
            "kind": "settle",
            "max_iterations": self.max_iterations,
            "tolerance": self.tolerance,
            "damping": self.damping,
        }


Readout = GoodnessReadout | SettleReadout
"""How a class comes out of a network other than its largest logit."""


@dataclass(frozen=True, slots=True)
class ModelLayer:
    """One analog layer of a trained network: its weights and how they map to cells."""

    weights: Array
    """Weights [inputs + 1, outputs], the last row the bias (weight units)."""
    weight_limit: float
    """The weight a full half-window of conductance stands for (weight units)."""
    input_clip: float
    """The input value mapped to the full read voltage (input units)."""
    mapping: Mapping = Mapping.OFFSET
    """One cell per weight (offset) or a pair of columns per output (differential)."""
    reference_column: bool = False
    """Offset mapping: one column per tile at the reference conductance."""
    digital_bias: bool = False
    """The bias is added on the host after the ADC instead of driven on a row."""

    def __post_init__(self) -> None:
        # "differential" given as text is the same mapping: placement asks by identity.
        object.__setattr__(self, "mapping", Mapping(self.mapping))

    @property
    def inputs(self) -> int:
        return int(self.weights.shape[0]) - 1

    @property
    def outputs(self) -> int:
        return int(self.weights.shape[1])

    @classmethod
    def of(cls, layer: AnalogLinear, weights: npt.ArrayLike) -> ModelLayer:
        """``weights`` as ``layer`` holds them, with its mapping settings."""
        return cls(
            weights=layer.checked_weights(weights).copy(),
            weight_limit=float(layer.weight_limit),
            input_clip=float(layer.input_clip),
            mapping=layer.mapping,
            reference_column=layer.reference_column,
            digital_bias=layer.digital_bias,
        )

    def shape(self, name: str) -> LayerShape:
        """What the layer occupies on a board, as placement sees it."""
        return LayerShape(
            name,
            self.inputs,
            self.outputs,
            pair=2 if self.mapping is Mapping.DIFFERENTIAL else 1,
            reference_column=self.reference_column,
            digital_bias=self.digital_bias,
        )

    def settings(self) -> dict[str, Any]:
        """The layer's entry of ``meta.layers``."""
        return {
            "weight_limit": self.weight_limit,
            "input_clip": self.input_clip,
            "mapping": self.mapping.value,
            "reference_column": self.reference_column,
            "digital_bias": self.digital_bias,
        }


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """What goes into the network and what comes out: the raw features' scaling, the
    data set it was trained on and the classes' labels."""

    dataset: str
    """The data set's name (a bundled one, or the stem of an .npz file)."""
    feature_mean: npt.NDArray[np.float64]
    """Each raw feature's training mean, subtracted first."""
    feature_scale: npt.NDArray[np.float64]
    """Each raw feature's training standard deviation, divided by next."""
    labels: tuple[str, ...]
    """What each output (class index) stands for."""
    test_size: float = 0.3
    """Share of the data set held out for testing when it was trained."""
    random_state: int = 0
    """Seed of that split."""

    @property
    def features(self) -> int:
        return len(self.feature_mean)

    @classmethod
    def of(
        cls,
        data: Dataset,
        scaling: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    ) -> ModelInputs:
        """The inputs of a network trained on ``data``: behind its standardisation, or
        behind ``scaling`` (mean, scale: one value per raw feature, checked by the
        caller) for a network trained elsewhere on features scaled another way."""
        labels = data.labels or tuple(str(k) for k in range(data.classes))
        mean, scale = scaling or _scaling_of(data)
        return cls(data.name, mean.copy(), scale.copy(), labels, data.test_size, data.random_state)

    def take(self, data: Dataset, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``x``, samples of ``data`` standardised as :func:`load_dataset` gives them, as
        the network takes them: as they are when it was trained behind the same scaling
        (bit for bit), else back to raw features and scaled with this model's statistics
        (a data set file other than the one it was trained on, or a network imported with
        its own scaling)."""
        mean, scale = _scaling_of(data)
        if np.array_equal(mean, self.feature_mean) and np.array_equal(scale, self.feature_scale):
            return x
        raw = x.astype(np.float64) * scale + mean
        return ((raw - self.feature_mean) / self.feature_scale).astype(np.float32)


def _scaling_of(
    data: Dataset,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``data``'s standardisation (mean, scale), or ValueError for data loaded otherwise."""
    if data.feature_mean is None or data.feature_scale is None:
        raise ValueError(
            f"dataset {data.name}: no feature scaling kept, which its model needs to take "
            "raw samples: load it with load_dataset, or give Dataset(..., feature_mean=..., "
            "feature_scale=...) the standardisation your features went through (zeros and "
            "ones when none)"
        )
    return data.feature_mean, data.feature_scale


@dataclass(frozen=True, slots=True)
class TrainedModel:
    """A trained stack of analog layers, ReLU between them, logits out (or, with a
    :data:`Readout`, the goodness of each class's input, or the settled output states)."""

    layers: tuple[ModelLayer, ...]
    """Input side first."""
    inputs: ModelInputs
    job: str
    """The training command that made it (``"mlp"``)."""
    trained: MappingOf[str, Any] = field(default_factory=dict)
    """Where and how well it was trained (board, accuracy): kept in the file as given."""
    readout: Readout | None = None
    """How a class comes out: None for the largest logit."""

    def __post_init__(self) -> None:
        _check_chain(self.layers, self.inputs, self.readout, "model")

    @classmethod
    def of(
        cls,
        layers: Sequence[AnalogLinear],
        weights: Sequence[npt.ArrayLike],
        data: Dataset,
        job: str,
        readout: Readout | None = None,
    ) -> TrainedModel:
        """The network ``layers`` hold with ``weights`` (one per layer), trained on
        ``data`` by ``job``, read out by ``readout``; the board's identity goes into
        :attr:`trained`."""
        kept = tuple(ModelLayer.of(lay, w) for lay, w in zip(layers, weights, strict=True))
        info = layers[0].board.info
        board = {"board_model": info.model, "board_serial": info.serial_number}
        if info.emulated:
            board["emulator_preset"] = info.emulator_preset
        return cls(kept, ModelInputs.of(data), job, board, readout)

    def with_figures(self, **figures: Any) -> TrainedModel:
        """The same model with ``figures`` (test accuracy, steps) added to :attr:`trained`."""
        return replace(self, trained={**self.trained, **figures})

    @property
    def features(self) -> int:
        return self.inputs.features

    @property
    def score_name(self) -> str:
        """What a class's score is: ``"logits"``, ``"goodness"`` or ``"outputs"`` (the
        settled output states)."""
        if self.readout is None:
            return "logits"
        return "goodness" if isinstance(self.readout, GoodnessReadout) else "outputs"

    @property
    def hidden_activation(self) -> str:
        """``meta.hidden_activation``: ReLU, or the hard sigmoid of a settling network."""
        return SETTLE_ACTIVATION if isinstance(self.readout, SettleReadout) else HIDDEN_ACTIVATION

    @property
    def classes(self) -> int:
        return len(self.inputs.labels)

    def shapes(self) -> list[LayerShape]:
        """Each layer as placement sees it, named ``layer0``, ``layer1``, ..."""
        return [layer.shape(f"layer{i}") for i, layer in enumerate(self.layers)]

    def placement(self, info: BoardInfo, tiles: Sequence[int] = ()) -> Placement:
        """Tiles for every layer on a board of ``info``, from ``tiles`` (empty: any);
        PlacementError naming the layer that does not fit."""
        return place(info, self.shapes(), allowed=tiles)

    def deploy(
        self,
        board: Board,
        *,
        tiles: Sequence[int] = (),
        read_repeats: int = 1,
        held: bool = False,
        calibrate: bool = False,
    ) -> DeployedModel:
        """The model placed on ``board`` (in ``tiles``, or any) and programmed there; with
        ``held``, found on tiles it was programmed on before; with ``calibrate``, its tiles
        then calibrated (sidra.training.deployment)."""
        from sidra.training.deployment import DeployedModel

        return DeployedModel(
            self, board, tiles=tiles, read_repeats=read_repeats, held=held, calibrate=calibrate
        )

    def standardize(self, raw: npt.ArrayLike, field: str = "inputs") -> Array:
        """Raw features [samples, features] as the network takes them: ``(raw - mean) /
        scale`` with the training part's statistics (InvalidArgument as
        :meth:`checked_features`)."""
        x = self.checked_features(raw, field)
        return to_float32(field, (x - self.inputs.feature_mean) / self.inputs.feature_scale)

    def checked_features(self, values: npt.ArrayLike, field: str = "inputs") -> npt.NDArray[Any]:
        """``values`` as float64 [samples >= 1, features], or InvalidArgument naming
        ``field`` for another shape or a value that is not a finite number."""
        x = np.asarray(values)
        if x.dtype.kind not in "biuf":
            raise InvalidArgument(f"{field}.dtype", x.dtype, "real numbers")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != self.features:
            raise InvalidArgument(
                f"{field}.shape", list(x.shape), f"[samples >= 1, {self.features}] (features)"
            )
        bad = ~np.isfinite(x)
        if bad.any():
            first = [int(i) for i in np.argwhere(bad)[0]]
            raise InvalidArgument(
                field, f"{int(bad.sum())} NaN/Inf values (first at {first})", "finite numbers"
            )
        return x.astype(np.float64)

    def check_data(self, data: Dataset) -> None:
        """ValueError naming what differs when ``data`` is not what the model takes: its
        feature count, class count or class labels."""
        if data.features != self.features:
            raise ValueError(
                f"dataset {data.name}: got {data.features} features, the model takes "
                f"{self.features} ({self.inputs.dataset})"
            )
        if data.classes != self.classes:
            raise ValueError(
                f"dataset {data.name}: got {data.classes} classes, the model has "
                f"{self.classes} outputs ({self.inputs.dataset})"
            )
        if data.labels and data.labels != self.inputs.labels:
            raise ValueError(
                f"dataset {data.name}: got labels {list(data.labels)}, the model's are "
                f"{list(self.inputs.labels)}"
            )

    # -- the file --------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        """The ``meta`` document of the file."""
        i = self.inputs
        readout = {} if self.readout is None else {"readout": self.readout.settings()}
        return {
            "format": MODEL_FORMAT,
            "version": 1 if self.readout is None else 2,
            "job": self.job,
            "hidden_activation": self.hidden_activation,
            **readout,
            "layers": [layer.settings() for layer in self.layers],
            "dataset": {
                "name": i.dataset,
                "labels": list(i.labels),
                "test_size": i.test_size,
                "random_state": i.random_state,
            },
            "trained": dict(self.trained),
        }

    def to_bytes(self) -> bytes:
        """The model file's bytes."""
        arrays: dict[str, npt.NDArray[Any]] = {
            "meta": np.array(json.dumps(self.meta(), default=_plain)),
            "feature_mean": np.asarray(self.inputs.feature_mean, "<f8"),
            "feature_scale": np.asarray(self.inputs.feature_scale, "<f8"),
        }
        for k, layer in enumerate(self.layers):
            arrays[f"layer{k}"] = np.asarray(layer.weights, "<f4")
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        """Writes the model file to ``path``, whole or not at all."""
        return write_atomically(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> TrainedModel:
        """The model in the file at ``path``; ModelFileError naming what is wrong."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelFileError(f"model {path}: cannot be read ({exc.strerror or exc})") from exc
        return cls.from_bytes(data, str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "model") -> TrainedModel:
        """The model a file's bytes hold; ModelFileError starting with ``source``."""
        # Told apart by their first bytes: np.load would return a .npy's array (no
        # archive) and take any other file for a pickle it refuses to read.
        if data.startswith(b"\x93NUMPY"):
            raise ModelFileError(
                f"{source}: one NumPy array (.npy), not a model file: a run's model is the "
                "model.npz of its record"
            )
        if not data.startswith(b"PK"):
            raise ModelFileError(
                f"{source}: not a model file (an .npz archive, as the model.npz of a run's record)"
            )
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ModelFileError(
                f"{source}: not a model file (an .npz archive of arrays): {exc}"
            ) from exc
        return _parsed(arrays, source)


def _plain(value: Any) -> Any:
    """A NumPy scalar or array in ``trained`` as JSON takes it."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# -- reading a file: every field checked, named when wrong ----------------------


def _parsed(arrays: dict[str, npt.NDArray[Any]], source: str) -> TrainedModel:
    def wrong(name: str, value: Any, allowed: str) -> ModelFileError:
        return ModelFileError(f"{source}: {name}: got {value!r}, expected {allowed}")

    if "meta" not in arrays:
        raise wrong("meta", None, f"a JSON document (arrays held: {sorted(arrays)})")
    raw_meta = arrays["meta"]
    if raw_meta.dtype.kind != "U" or raw_meta.ndim != 0:
        raise wrong("meta", f"{raw_meta.dtype} {list(raw_meta.shape)}", "one JSON text")
    try:
        meta = json.loads(str(raw_meta))
    except ValueError as exc:
        raise wrong("meta", str(raw_meta)[:60], f"JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise wrong("meta", meta, "a JSON object")
    if meta.get("format") != MODEL_FORMAT:
        raise wrong("meta.format", meta.get("format"), repr(MODEL_FORMAT))
    version = meta.get("version")
    if type(version) is not int or not 1 <= version <= MODEL_VERSION:
        raise wrong(
            "meta.version", version, f"1 .. {MODEL_VERSION} (a newer file needs newer sidra)"
        )
    job = meta.get("job")
    if not isinstance(job, str):
        raise wrong("meta.job", job, "the training command's name")
    trained = meta.get("trained", {})
    if not isinstance(trained, dict):
        raise wrong("meta.trained", trained, "a JSON object")
    readout = _parsed_readout(meta, version, wrong)
    activation = SETTLE_ACTIVATION if isinstance(readout, SettleReadout) else HIDDEN_ACTIVATION
    if meta.get("hidden_activation") != activation:
        why = " (a settle readout's)" if activation == SETTLE_ACTIVATION else ""
        raise wrong("meta.hidden_activation", meta.get("hidden_activation"), repr(activation) + why)
    inputs = _parsed_inputs(meta.get("dataset"), arrays, wrong)
    settings = meta.get("layers")
    if not isinstance(settings, list) or not settings:
        raise wrong("meta.layers", settings, "a list of one entry per layer")
    layers = tuple(
        _parsed_layer(k, entry, arrays.get(f"layer{k}"), wrong) for k, entry in enumerate(settings)
    )
    extra = sorted(set(arrays) - {"meta", "feature_mean", "feature_scale"} -
                   {f"layer{k}" for k in range(len(layers))})  # fmt: skip
    if extra:
        raise wrong("arrays", extra, f"layer0 .. layer{len(layers) - 1} as meta.layers lists")
    try:
        return TrainedModel(layers, inputs, job, trained, readout)
    except ValueError as exc:
        raise ModelFileError(f"{source}: {exc}") from exc


def _parsed_readout(meta: dict[str, Any], version: int, wrong: Any) -> Readout | None:
    if "readout" not in meta:
        return None
    readout = meta["readout"]
    if version < 2:
        raise wrong("meta.readout", readout, "absent from a version 1 file")
    kind = readout.get("kind") if isinstance(readout, dict) else None
    if kind == "goodness":
        return GoodnessReadout(_positive(readout, "label_scale", wrong))
    if kind == "settle":
        sweeps = readout.get("max_iterations")
        if type(sweeps) is not int or not 1 <= sweeps <= MAX_SETTLE_ITERATIONS:
            raise wrong("meta.readout.max_iterations", sweeps,
                        f"an integer in 1 .. {MAX_SETTLE_ITERATIONS}")  # fmt: skip
        damping = _positive(readout, "damping", wrong)
        if damping > 1.0:
            raise wrong("meta.readout.damping", damping, "a number in (0, 1]")
        return SettleReadout(sweeps, _positive(readout, "tolerance", wrong), damping)
    raise wrong("meta.readout", readout, 'an object of "kind" "goodness" or "settle"')


def _positive(readout: dict[str, Any], key: str, wrong: Any) -> float:
    """``readout[key]``, a finite number > 0 (else ModelFileError naming it)."""
    value = readout.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
        raise wrong(f"meta.readout.{key}", value, "a finite number > 0")
    return float(value)


def _parsed_inputs(dataset: Any, arrays: dict[str, npt.NDArray[Any]], wrong: Any) -> ModelInputs:
    if not isinstance(dataset, dict):
        raise wrong("meta.dataset", dataset, "a JSON object")
    name, labels = dataset.get("name"), dataset.get("labels")
    if not isinstance(name, str):
        raise wrong("meta.dataset.name", name, "the data set's name")
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        raise wrong("meta.dataset.labels", labels, "a list of text, one per class")
    test_size, random_state = dataset.get("test_size", 0.3), dataset.get("random_state", 0)
    if not isinstance(test_size, float) or not 0.0 < test_size < 1.0:
        raise wrong("meta.dataset.test_size", test_size, "a share in (0, 1)")
    if type(random_state) is not int:
        raise wrong("meta.dataset.random_state", random_state, "an integer")
    scaling = []
    for key in ("feature_mean", "feature_scale"):
        a = arrays.get(key)
        if a is None or a.dtype.kind != "f" or a.ndim != 1 or len(a) < 1:
            shown = None if a is None else f"{a.dtype} {list(a.shape)}"
            raise wrong(key, shown, "float64 [features]")
        if not np.isfinite(a).all():
            raise wrong(key, "NaN/Inf", "finite numbers")
        scaling.append(a.astype(np.float64))
    mean, scale = scaling
    if len(scale) != len(mean) or not (scale > 0.0).all():
        raise wrong("feature_scale", f"{len(scale)} values, min {scale.min():g}",
                    f"{len(mean)} values > 0 (one per feature)")  # fmt: skip
    return ModelInputs(name, mean, scale, tuple(labels), test_size, random_state)


def _parsed_layer(k: int, entry: Any, weights: Any, wrong: Any) -> ModelLayer:
    where = f"meta.layers[{k}]"
    if not isinstance(entry, dict):
        raise wrong(where, entry, "a JSON object")
    if weights is None or weights.dtype != np.float32 or weights.ndim != 2:
        shown = None if weights is None else f"{weights.dtype} {list(weights.shape)}"
        raise wrong(f"layer{k}", shown, "float32 [inputs + 1, outputs]")
    if min(weights.shape) < 1 or weights.shape[0] < 2 or not np.isfinite(weights).all():
        raise wrong(f"layer{k}", list(weights.shape), "finite weights, at least 2 x 1")
    numbers = {}
    for key in ("weight_limit", "input_clip"):
        value = entry.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
            raise wrong(f"{where}.{key}", value, "a number > 0")
        if not math.isfinite(value):
            raise wrong(f"{where}.{key}", value, "a finite number > 0")
        numbers[key] = float(value)
    try:
        mapping = Mapping(str(entry.get("mapping")))
    except ValueError:
        allowed = " or ".join(repr(m.value) for m in Mapping)
        raise wrong(f"{where}.mapping", entry.get("mapping"), allowed) from None
    flags = {}
    for key in ("reference_column", "digital_bias"):
        value = entry.get(key, False)
        if not isinstance(value, bool):
            raise wrong(f"{where}.{key}", value, "true or false")
        flags[key] = value
    if flags["reference_column"] and mapping is not Mapping.OFFSET:
        raise wrong(f"{where}.reference_column", True, "false with the differential mapping")
    return ModelLayer(
        weights.astype(np.float32),
        weight_limit=numbers["weight_limit"],
        input_clip=numbers["input_clip"],
        mapping=mapping,
        reference_column=flags["reference_column"],
        digital_bias=flags["digital_bias"],
    )


def _check_chain(
    layers: Sequence[ModelLayer],
    inputs: ModelInputs,
    readout: Readout | None,
    source: str,
) -> None:
    """ValueError when the layers do not chain: each layer's inputs the outputs of the one
    before, the first's the features (and one per label with a goodness readout), the
    last's outputs the labels (logits)."""
    if not layers:
        raise ValueError(f"{source}: layers: got none, expected at least one")
    labels = len(inputs.labels)
    labelled = isinstance(readout, GoodnessReadout)  # the label is an input
    if labelled and labels < 2:
        raise ValueError(f"{source}: meta.dataset.labels: got {labels}, expected 2 or more "
                         "(a goodness readout tells one label from the others)")  # fmt: skip
    expected = inputs.features + (labels if labelled else 0)
    if layers[0].inputs != expected:
        what = f" and one per label ({labels})" if labelled else ""
        raise ValueError(
            f"{source}: layer0: got {layers[0].inputs} inputs, expected {expected} "
            f"(the features feature_mean scales{what})"
        )
    for k in range(1, len(layers)):
        if layers[k].inputs != layers[k - 1].outputs:
            raise ValueError(
                f"{source}: layer{k}: got {layers[k].inputs} inputs, expected "
                f"{layers[k - 1].outputs} (layer{k - 1}'s outputs)"
            )
    if not labelled and layers[-1].outputs != labels:
        raise ValueError(
            f"{source}: layer{len(layers) - 1}: got {layers[-1].outputs} outputs, expected "
            f"{len(inputs.labels)} (one per label of meta.dataset.labels)"
        )
