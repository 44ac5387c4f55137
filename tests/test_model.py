"""A trained network kept as a model file, deployed on another board and run there."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidra.drivers import Board, InvalidArgument, Region, open_board
from sidra.training import (
    EqPropOptions,
    FFOptions,
    LastLayerOptions,
    MLPOptions,
    SPSAOptions,
    TrainingRecord,
    load_dataset,
    train_eqprop,
    train_forward_forward,
    train_last_layer,
    train_mlp,
    train_softmax_spsa,
)
from sidra.training.analog_layer import AnalogLinear, Mapping
from sidra.training.deployment import CHUNK_VECTORS, DeployedModel, ModelNotHeld
from sidra.training.model import (
    MODEL_FILE,
    GoodnessReadout,
    ModelFileError,
    SettleReadout,
    TrainedModel,
)
from sidra.training.placement import PlacementError

IDEAL = "emu://?preset=ideal&seed={}"

TRAINERS: dict[str, tuple[str, Callable[[Board, Any], TrainingRecord]]] = {
    "spsa": ("digits", lambda b, d: train_softmax_spsa(b, d, SPSAOptions(steps=40))),
    "spsa-host": (
        "digits", lambda b, d: train_softmax_spsa(b, d, SPSAOptions(steps=40, mode="host"))
    ),
    "last-layer": (
        "wine", lambda b, d: train_last_layer(b, d, LastLayerOptions(epochs=2, hidden=32))
    ),
    "mlp": ("digits", lambda b, d: train_mlp(b, d, MLPOptions(epochs=2, hidden=(32,)))),
    "ff": (  # a goodness readout: each sample shown with every label
        "digits",
        lambda b, d: train_forward_forward(b, d, FFOptions(epochs=2, hidden=(32, 16))),
    ),
    "eqprop": (  # a settle readout: MVM and TransposeMVM sweeps to equilibrium
        "digits",
        lambda b, d: train_eqprop(b, d, EqPropOptions(epochs=1, hidden=(16,), batch_size=128)),
    ),
    "mlp-bias-on-the-array": (
        "iris",
        lambda b, d: train_mlp(
            b, d, MLPOptions(epochs=2, hidden=(8,), digital_bias=False)
        ),
    ),
}  # fmt: skip


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_a_model_on_another_ideal_board_scores_what_its_run_measured(trainer: str) -> None:
    """The record's file alone (weights, mapping, input scaling) rebuilds what the
    training board held: on a noiseless board every test sample is classified as the
    run's last measurement classified it, so the accuracy is the same to the sample."""
    name, train = TRAINERS[trainer]
    data = load_dataset(name)
    with open_board(IDEAL.format(1)) as board:
        record = train(board, data)
    model = TrainedModel.from_bytes(record.files()[MODEL_FILE])
    assert model.trained["test_accuracy"] == record.test_accuracy
    assert model.trained["emulator_preset"] == "ideal"
    with open_board(IDEAL.format(7)) as other:
        result = model.deploy(other).evaluate(data.x_test, data.y_test)
    assert result.accuracy == record.test_accuracy
    assert result.samples == len(data.y_test)
    assert result.confusion.sum(axis=1).tolist() == np.bincount(data.y_test).tolist()


def _model(
    board: Board,
    widths: tuple[int, ...] = (64, 16, 10),
    readout: GoodnessReadout | None = None,
    **layer: Any,
) -> TrainedModel:
    data = load_dataset("digits")
    rng = np.random.default_rng(3)
    layers = [
        AnalogLinear(board, [k], n_in, n_out, **layer)
        for k, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    ]
    weights = [rng.normal(0, 0.3, lay.shape).astype(np.float32) for lay in layers]
    return TrainedModel.of(layers, weights, data, "ff" if readout else "mlp", readout)


GOODNESS_WIDTHS = (74, 16, 8)
"""A forward-forward network on digits: 64 features and 10 label inputs, two layers."""


@pytest.mark.parametrize(
    "layer",
    [
        {},
        {"mapping": Mapping.DIFFERENTIAL},
        {"reference_column": True},
        {"digital_bias": True, "weight_limit": 0.7, "input_clip": 3.0},
    ],
    ids=["offset", "differential", "reference-column", "digital-bias"],
)
def test_the_file_keeps_every_weight_and_setting(layer: dict[str, Any]) -> None:
    with open_board(IDEAL.format(1)) as board:
        model = _model(board, **layer)
    again = TrainedModel.from_bytes(model.to_bytes())
    assert again.meta() == model.meta()
    for a, b in zip(again.layers, model.layers, strict=True):
        assert a.weights.dtype == np.float32 and np.array_equal(a.weights, b.weights)
        assert a.settings() == b.settings()
    assert np.array_equal(again.inputs.feature_mean, model.inputs.feature_mean)
    assert np.array_equal(again.inputs.feature_scale, model.inputs.feature_scale)
    assert again.inputs.labels == tuple("0123456789")


def test_raw_features_are_standardised_as_the_training_data_were() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_dataset("digits")
    with open_board(IDEAL.format(1)) as board:
        model = _model(board)
    digits = load_digits()
    _, raw_test = train_test_split(digits.data, test_size=0.3, random_state=0)
    assert np.allclose(model.standardize(raw_test), data.x_test, atol=1e-6)
    with pytest.raises(InvalidArgument, match=r"inputs.shape: got \[5, 63\].*64"):
        model.standardize(raw_test[:5, :63])
    bad = raw_test[:3].copy()
    bad[1, 4] = np.nan
    with pytest.raises(
        InvalidArgument, match=r"inputs: got '1 NaN/Inf values \(first at \[1, 4\]\)'"
    ):
        model.standardize(bad)


def _archive(model: TrainedModel, **changes: Any) -> bytes:
    """``model``'s file with arrays replaced, removed (None) or, for a function, the
    ``meta`` document edited by it."""
    with np.load(io.BytesIO(model.to_bytes())) as held:
        arrays = {name: held[name] for name in held.files}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        elif callable(value):
            meta = json.loads(str(arrays[name]))
            value(meta)
            arrays[name] = np.array(json.dumps(meta))
        else:
            arrays[name] = value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = meta
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return edit


HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "format": ({"meta": _set("format", "other")}, r"meta.format: got 'other'"),
    "version": ({"meta": _set("version", 3)}, r"meta.version: got 3, expected 1 .. 2"),
    "readout v1": (
        {"meta": _set("readout", {"kind": "goodness", "label_scale": 2.0})},
        r"meta.readout: got \{'kind': 'goodness', 'label_scale': 2.0\}, expected absent from a "
        "version 1 file",
    ),
    "activation": ({"meta": _set("hidden_activation", "tanh")}, r"hidden_activation: got 'tanh'"),
    "mapping": ({"meta": _set("layers.0.mapping", "log")}, r"layers\[0\].mapping: got 'log'"),
    "limit": ({"meta": _set("layers.1.weight_limit", 0)}, r"layers\[1\].weight_limit: got 0"),
    "flag": ({"meta": _set("layers.0.digital_bias", "yes")}, r"layers\[0\].digital_bias"),
    "labels": ({"meta": _set("dataset.labels", ["a"])}, r"layer1: got 10 outputs, expected 1"),
    "split": ({"meta": _set("dataset.test_size", 1.5)}, r"dataset.test_size: got 1.5"),
    "no meta": ({"meta": None}, r"meta: got None"),
    "no layer": ({"layer1": None}, r"layer1: got None, expected float32"),
    "extra": ({"layer2": np.zeros((11, 3), np.float32)}, r"arrays: got \['layer2'\]"),
    "float64": ({"layer0": np.zeros((65, 16))}, r"layer0: got 'float64 \[65, 16\]'"),
    "nan": ({"layer1": np.full((17, 10), np.nan, np.float32)}, r"layer1: got \[17, 10\], exp"),
    "chain": ({"layer1": np.zeros((9, 10), np.float32)}, r"layer1: got 8 inputs, expected 16"),
    "features": ({"layer0": np.zeros((10, 16), np.float32)}, r"layer0: got 9 inputs, expected 64"),
    "scale": ({"feature_scale": np.zeros(64)}, r"feature_scale: got '64 values, min 0'"),
    "pickled": ({"feature_mean": np.array([object()], dtype=object)}, r"not a model file"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_file_that_is_not_a_whole_model_is_refused_naming_the_field(case: str) -> None:
    changes, message = HOSTILE[case]
    with open_board(IDEAL.format(1)) as board:
        data = _archive(_model(board), **changes)
    with pytest.raises(ModelFileError, match=r"^upload.npz: .*" + message):
        TrainedModel.from_bytes(data, "upload.npz")


def test_a_goodness_readout_is_kept_in_a_version_2_file_and_a_plain_model_stays_version_1() -> None:
    with open_board(IDEAL.format(1)) as board:
        plain = _model(board)
        ff = _model(board, GOODNESS_WIDTHS, GoodnessReadout(1.5))
    assert plain.meta()["version"] == 1 and "readout" not in plain.meta()
    again = TrainedModel.from_bytes(ff.to_bytes())
    assert again.meta()["version"] == 2 and again.readout == GoodnessReadout(1.5)
    assert (again.features, again.classes, again.score_name) == (64, 10, "goodness")
    with open_board(IDEAL.format(1)) as board:
        settling = _model(board, readout=SettleReadout(7, 0.02, 0.5))
    again = TrainedModel.from_bytes(settling.to_bytes())
    assert again.readout == SettleReadout(7, 0.02, 0.5) and again.score_name == "outputs"
    assert again.meta()["hidden_activation"] == "hard_sigmoid"


GOODNESS_HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "kind": ({"meta": _set("readout.kind", "softmax")}, r"meta.readout: got \{'kind': 'softm"),
    "scale": (
        {"meta": _set("readout.label_scale", 0)},
        r"meta.readout.label_scale: got 0, expected a finite number > 0",
    ),
    "settle sweeps": (
        {"meta": _set("readout", {"kind": "settle", "max_iterations": 0, "tolerance": 0.1,
                                  "damping": 1.0})},
        r"meta.readout.max_iterations: got 0, expected an integer in 1 .. 10000",
    ),
    "settle damping": (
        {"meta": _set("readout", {"kind": "settle", "max_iterations": 5, "tolerance": 0.1,
                                  "damping": 1.5})},
        r"meta.readout.damping: got 1.5, expected a number in \(0, 1\]",
    ),
    "settle activation": (
        {"meta": _set("readout", {"kind": "settle", "max_iterations": 5, "tolerance": 0.1,
                                  "damping": 1.0})},
        r"meta.hidden_activation: got 'relu', expected 'hard_sigmoid' \(a settle readout's\)",
    ),
    "features only": (
        {"layer0": np.zeros((65, 16), np.float32)},
        r"layer0: got 64 inputs, expected 74 \(the features feature_mean scales and one per "
        r"label \(10\)\)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(GOODNESS_HOSTILE))
def test_a_goodness_readout_that_cannot_run_is_refused_naming_the_field(case: str) -> None:
    changes, message = GOODNESS_HOSTILE[case]
    with open_board(IDEAL.format(1)) as board:
        data = _archive(_model(board, GOODNESS_WIDTHS, GoodnessReadout(2.0)), **changes)
    with pytest.raises(ModelFileError, match=r"^upload.npz: .*" + message):
        TrainedModel.from_bytes(data, "upload.npz")


def test_bytes_that_are_no_archive_and_a_missing_file_are_refused(tmp_path: Any) -> None:
    with pytest.raises(ModelFileError, match="not a model file"):
        TrainedModel.from_bytes(b"PK\x03\x04 half a zip", "m.npz")
    one_array = io.BytesIO()
    np.save(one_array, np.zeros((3, 4), np.float32))  # a record's weights.npy beside it
    with pytest.raises(ModelFileError, match=r"^weights.npy: one NumPy array \(.npy\), not a"):
        TrainedModel.from_bytes(one_array.getvalue(), "weights.npy")
    with pytest.raises(ModelFileError, match=r"^iris.csv: not a model file \(an .npz archive"):
        TrainedModel.from_bytes(b"5.1,3.5,1.4,0.2,0\n", "iris.csv")  # not numpy's pickle words
    with pytest.raises(ModelFileError, match=r"model .*absent.npz: cannot be read"):
        TrainedModel.load(tmp_path / "absent.npz")


def test_a_model_goes_on_the_tiles_named_and_leaves_the_others_as_they_were() -> None:
    with open_board(IDEAL.format(1)) as board:
        model = _model(board)
    with open_board(IDEAL.format(2)) as board:
        before = [board.read_conductance(t, Region(0, 0, 8, 8)).conductances for t in range(4)]
        deployed = model.deploy(board, tiles=[3, 1])
        after = [board.read_conductance(t, Region(0, 0, 8, 8)).conductances for t in range(4)]
        with pytest.raises(
            PlacementError, match=r"layer layer1: 16\+1 x 10 needs 1 tile.*0 left for it"
        ):
            model.deploy(board, tiles=[2])
    assert deployed.placement.summary() == {"layer0": [3], "layer1": [1]}
    assert [p.tiles for p in deployed.programming] == [(3,), (1,)]
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[2], after[2])
    assert not np.array_equal(before[3], after[3])


@pytest.mark.parametrize(
    ("layer", "hidden", "expected"),
    [
        (  # 300 outputs: 255 on the first tile beside its reference column; 301 rows: 2 tiles
            {"reference_column": True}, 300,
            [(3, (65, 256)), (1, (65, 46)), (0, (256, 11)), (2, (45, 11))],
        ),
        (  # 200 outputs, two columns each: 128 on the first tile
            {"mapping": Mapping.DIFFERENTIAL}, 200,
            [(3, (65, 256)), (1, (65, 144)), (0, (201, 20))],
        ),
    ],
    ids=["offset-with-reference", "differential"],
)  # fmt: skip
def test_the_regions_planned_are_those_deployed_and_planning_writes_nothing(
    layer: dict[str, Any], hidden: int, expected: list[tuple[int, tuple[int, int]]]
) -> None:
    data = load_dataset("digits")
    tiles = [t for t, _ in expected]
    with open_board(IDEAL.format(1)) as board:
        first = AnalogLinear(board, [0, 1], 64, hidden, **layer)
        last = AnalogLinear(board, list(range(2, len(tiles))), hidden, 10, **layer)
        rng = np.random.default_rng(4)
        weights = [rng.normal(0, 0.3, a.shape).astype(np.float32) for a in (first, last)]
        model = TrainedModel.of([first, last], weights, data, "mlp")
    with open_board(IDEAL.format(2)) as board:
        planned = DeployedModel.planned_regions(model, board, tiles)
        assert board.stats().cell_writes == 0
        assert planned == model.deploy(board, tiles=tiles).regions()
    assert planned == [(t, Region(0, 0, *shape)) for t, shape in expected]


def test_an_evaluation_counts_its_passes_and_their_modeled_cost() -> None:
    data = load_dataset("digits")
    x = np.vstack([data.x_train, data.x_test])  # 1,797 samples: two chunks of vectors
    y = np.concatenate([data.y_train, data.y_test])
    with open_board(IDEAL.format(1)) as board:
        deployed = _model(board).deploy(board, read_repeats=3)
        spent = board.stats().total_cost
        result = deployed.evaluate(x, y)
        cost = board.stats().total_cost
    chunks = -(-len(x) // CHUNK_VECTORS)
    assert chunks == 2
    assert result.mvm_calls == 2 * chunks  # two layers, one tile each
    assert result.read_repeats == 3
    assert result.modeled_time_ns == pytest.approx(cost.time_ns - spent.time_ns)
    assert result.modeled_energy_nj == pytest.approx(cost.energy_nj - spent.energy_nj)
    assert result.time_per_sample_ns == pytest.approx(result.modeled_time_ns / len(x))
    assert sum(result.recall[k] * np.sum(y == k) for k in range(10)) == pytest.approx(
        result.accuracy * len(x)
    )


def test_refused_labels_touch_no_board() -> None:
    data = load_dataset("digits")
    with open_board(IDEAL.format(1)) as board:
        deployed = _model(board).deploy(board)
        passes = board.stats().mvm_passes
        for y, match in (
            (data.y_test[:-1], r"y: got '539 labels', expected 540"),
            (data.y_test + 1, r"y: got '1 \.\. 10', expected class indices in 0 \.\. 9"),
            (data.y_test.astype(np.float32), r"y: got 'float32 \[540\]'"),
        ):
            with pytest.raises(InvalidArgument, match=match):
                deployed.evaluate(data.x_test, y)
        with pytest.raises(InvalidArgument, match=r"read_repeats: got 0"):
            _model(board).deploy(board, read_repeats=0)
        assert board.stats().mvm_passes == passes


def test_a_data_set_of_other_features_or_classes_is_named() -> None:
    with open_board(IDEAL.format(1)) as board:
        model = _model(board)
    with pytest.raises(ValueError, match="dataset iris: got 4 features, the model takes 64"):
        model.check_data(load_dataset("iris"))
    model.check_data(load_dataset("digits"))


def test_a_model_its_tiles_hold_runs_without_a_write() -> None:
    """Deployed once, run again as the tiles hold it: on an ideal board the same
    accuracy, read back exactly, and not one cell written."""
    data = load_dataset("digits")
    with open_board(IDEAL.format(1)) as board:
        model = _model(board)
    with open_board(IDEAL.format(2)) as board:
        programmed = model.deploy(board, tiles=[2, 0]).evaluate(data.x_test, data.y_test)
        writes = board.stats().cell_writes
        held = model.deploy(board, tiles=[2, 0], held=True)
        again = held.evaluate(data.x_test, data.y_test)
        assert board.stats().cell_writes == writes
        with pytest.raises(ModelNotHeld, match=r"^layer0 on tile 1: what they hold corr"):
            model.deploy(board, tiles=[1, 3], held=True)  # never programmed there
        assert board.stats().cell_writes == writes
    assert again.accuracy == programmed.accuracy
    assert held.programming == () and [h.tiles for h in held.held] == [(2,), (0,)]
    assert all(h.correlation == pytest.approx(1.0) for h in held.held)
    assert all(h.rms_deviation_us == pytest.approx(0.0, abs=1e-3) for h in held.held)


def test_calibration_wins_back_what_a_year_of_drift_took() -> None:
    """A model left on a sidra-y1 board for a year: its accuracy collapses (every cell's
    decay shifts the offset mapping's common mode); calibrating its tiles, without a
    write, brings most of it back."""
    data = load_dataset("digits")
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        model = train_mlp(board, data, MLPOptions(epochs=3)).model
    assert model is not None
    with open_board("emu://?preset=sidra-y1&seed=3") as board:
        fresh = model.deploy(board).evaluate(data.x_test, data.y_test).accuracy
        writes = board.stats().cell_writes
        board.advance_clock(365 * 86_400.0)
        aged_run = model.deploy(board, held=True)
        aged = aged_run.evaluate(data.x_test, data.y_test).accuracy
        calibrated_run = model.deploy(board, held=True, calibrate=True)
        calibrated = calibrated_run.evaluate(data.x_test, data.y_test).accuracy
        assert board.stats().cell_writes == writes
    assert fresh > 0.8 and aged < 0.5 and calibrated > aged + 0.4
    assert all(h.mean_deviation_us < -1.0 for h in aged_run.held)  # the cells decayed
    assert sorted(calibrated_run.gains) == [0, 1, 2]
    assert all(gain > 1.0 for gain in calibrated_run.gains.values())


def test_a_class_without_samples_has_no_recall_and_its_json_is_null() -> None:
    data = load_dataset("digits")
    keep = data.y_test != 3
    with open_board(IDEAL.format(1)) as board:
        result = _model(board).deploy(board).evaluate(data.x_test[keep], data.y_test[keep])
    assert np.isnan(result.recall[3]) and result.confusion[3].sum() == 0
    shown = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert shown["recall"]["3"] is None and shown["samples"] == int(keep.sum())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)  # fmt: skip
"""Any JSON value a hostile file could hold where a field is expected."""

META_FIELDS = st.sampled_from([
    "version", "job", "hidden_activation", "readout", "readout.kind", "readout.label_scale",
    "readout.max_iterations", "readout.tolerance", "readout.damping", "layers",
    "layers.0", "layers.1.input_clip", "layers.0.mapping", "dataset", "dataset.labels",
    "dataset.name", "dataset.test_size", "trained",
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(field=META_FIELDS, value=JSON, goodness=st.booleans())
def test_a_hostile_meta_field_is_refused_as_a_model_file_error_or_read_whole(
    field: str, value: Any, goodness: bool
) -> None:
    """Whatever JSON stands in one field of meta (a readout's included), reading the file
    ends in a model or in ModelFileError naming the file: never another exception."""
    base = _GOODNESS_FILE if goodness else _PLAIN_FILE

    def edit(meta: dict[str, Any]) -> None:
        *parents, last = field.split(".")
        node: Any = meta
        for key in parents:
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            elif isinstance(node, dict):
                node = node.setdefault(key, {})
            else:
                return
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value

    with np.load(io.BytesIO(base)) as held:
        arrays = {name: held[name] for name in held.files}
    meta = json.loads(str(arrays["meta"]))
    edit(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        model = TrainedModel.from_bytes(buffer.getvalue(), "hostile.npz")
    except ModelFileError as exc:
        assert str(exc).startswith("hostile.npz: ")
    else:  # read whole: it writes back what it read
        assert TrainedModel.from_bytes(model.to_bytes()).meta() == model.meta()


def _file(readout: GoodnessReadout | None) -> bytes:
    with open_board(IDEAL.format(1)) as board:
        widths = GOODNESS_WIDTHS if readout else (64, 16, 10)
        return _model(board, widths, readout).to_bytes()


_PLAIN_FILE = _file(None)
_GOODNESS_FILE = _file(GoodnessReadout(2.0))
