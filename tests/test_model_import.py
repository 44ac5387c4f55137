"""A network trained in software (scikit-learn's MLPClassifier) made a model and run on
the board: inference first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_support import run_sidra, sidra_json, unwrapped
from software_networks import sklearn_mlp

from sidra.drivers import InvalidArgument, open_board
from sidra.training import Dataset, load_dataset
from sidra.training.analog_layer import Mapping
from sidra.training.importing import WEIGHT_MARGIN, digital_logits, model_from_weights
from sidra.training.model import TrainedModel


@pytest.fixture(scope="module")
def software() -> tuple[list[np.ndarray], float]:
    """A 64 → 64 → 10 ReLU network trained by scikit-learn on digits' training part: its
    weights as [inputs + 1, outputs] matrices and its own test accuracy."""
    data = load_dataset("digits")
    return sklearn_mlp(data.x_train, data.y_train, data.x_test, data.y_test, 64)


def test_the_software_network_runs_on_the_board_as_well_as_in_software(
    software: tuple[list[np.ndarray], float],
) -> None:
    weights, sklearn_accuracy = software
    data = load_dataset("digits")
    model = model_from_weights(weights, data)
    digital = model.trained["test_accuracy"]
    assert abs(digital - sklearn_accuracy) <= 1 / len(data.y_test)  # float32 against float64
    assert digital > 0.95
    with open_board("emu://?preset=ideal&seed=1") as board:
        ideal = model.deploy(board).evaluate(data.x_test, data.y_test).accuracy
    with open_board("emu://?preset=sidra-y1&seed=3") as board:
        noisy = model.deploy(board).evaluate(data.x_test, data.y_test).accuracy
    assert ideal >= digital - 0.02  # only the inputs past the 99.9th percentile clip
    assert noisy >= digital - 0.03


def test_ranges_are_calibrated_on_the_training_samples(
    software: tuple[list[np.ndarray], float],
) -> None:
    weights, _ = software
    data = load_dataset("digits")
    model = model_from_weights(weights, data, input_percentile=99.0, digital_bias=True)
    first, second = model.layers
    assert first.weight_limit == pytest.approx(WEIGHT_MARGIN * np.abs(weights[0][:-1]).max())
    assert first.input_clip == pytest.approx(np.percentile(np.abs(data.x_train), 99.0))
    hidden = np.maximum(digital_logits([weights[0].astype(np.float32)], data.x_train), 0.0)
    assert second.input_clip == pytest.approx(np.percentile(np.abs(hidden), 99.0), rel=1e-5)
    assert first.digital_bias and second.digital_bias
    assert model.trained["trained_on"] == "software" and model.job == "imported"
    differential = model_from_weights(weights, data, mapping="differential")  # type: ignore[arg-type]
    again = TrainedModel.from_bytes(differential.to_bytes())
    assert {layer.mapping for layer in again.layers} == {Mapping.DIFFERENTIAL}
    # Placed with two columns per output, as the layers it makes take them.
    assert [shape.pair for shape in differential.shapes()] == [2, 2]
    with open_board("emu://?preset=ideal&seed=2") as board:
        assert differential.deploy(board).placement.summary() == {"layer0": [0], "layer1": [1]}


def test_weights_that_do_not_fit_the_data_are_refused_naming_the_matrix(
    software: tuple[list[np.ndarray], float],
) -> None:
    weights, _ = software
    data = load_dataset("digits")
    with pytest.raises(
        InvalidArgument, match=r"weights\[0\].shape: got \[64, 64\], expected \[65, 64\]"
    ):
        model_from_weights([weights[0][:-1], weights[1]], data)
    with pytest.raises(
        InvalidArgument, match=r"weights\[1\].shape: got \[65, 9\], expected \[65, 10\].*10 classes"
    ):
        model_from_weights([weights[0], weights[1][:, :9]], data)
    bad = weights[1].copy()
    bad[3, 3] = np.inf
    with pytest.raises(InvalidArgument, match=r"weights\[1\]: got 'NaN/Inf values'"):
        model_from_weights([weights[0], bad], data)
    with pytest.raises(InvalidArgument, match=r"input_percentile: got 0.0"):
        model_from_weights(weights, data, input_percentile=0.0)


def test_the_cli_imports_an_npz_of_layers(
    software: tuple[list[np.ndarray], float], tmp_path: Path
) -> None:
    weights, _ = software
    np.savez(tmp_path / "w.npz", layer0=weights[0], layer1=weights[1])
    out = tmp_path / "model.npz"
    meta = sidra_json("model", "import", str(tmp_path / "w.npz"), "--dataset", "digits",
                      "--out", str(out))  # fmt: skip
    assert meta["job"] == "imported" and len(meta["layers"]) == 2
    report = sidra_json("model", "eval", str(out), "--board", "emu://?preset=sidra-y1&seed=4")
    assert report["accuracy"] >= report["trained_test_accuracy"] - 0.03
    np.savez(tmp_path / "named.npz", W=weights[0])
    refused = run_sidra("model", "import", str(tmp_path / "named.npz"), "--dataset", "digits",
                        "--out", str(tmp_path / "other.npz"))  # fmt: skip
    assert refused.returncode == 2
    assert "holds['W'],expected['layer0']" in unwrapped(refused.stderr)
    np.save(tmp_path / "one.npy", weights[0])
    one = run_sidra("model", "import", str(tmp_path / "one.npy"), "--dataset", "digits",
                    "--out", str(tmp_path / "other.npz"))  # fmt: skip
    assert one.returncode == 2 and "an.npyholdsonearray" in unwrapped(one.stderr)
    zero = run_sidra("model", "import", str(tmp_path / "w.npz"), "--dataset", "digits",
                     "--out", str(tmp_path / "other.npz"), "--input-percentile", "0")  # fmt: skip
    assert zero.returncode == 2
    assert "'--input-percentile':input_percentile:got0.0" in unwrapped(zero.stderr)
    assert not (tmp_path / "other.npz").exists()


@pytest.fixture(scope="module")
def sixteenths() -> tuple[list[np.ndarray], float]:
    """A 64 → 32 → 10 network trained by scikit-learn on digits' training part with raw
    features divided by 16 (their range 0 .. 16 made 0 .. 1), not standardised."""
    data = load_dataset("digits")
    raw_train, raw_test = (_raw(data, x) for x in (data.x_train, data.x_test))
    return sklearn_mlp(raw_train / 16, data.y_train, raw_test / 16, data.y_test, 32)


def _raw(data: Dataset, x: np.ndarray) -> np.ndarray:
    """The raw features behind ``data``'s standardised samples ``x``."""
    assert data.feature_mean is not None and data.feature_scale is not None
    return np.rint(x * data.feature_scale + data.feature_mean)  # digits' pixels are integers


def test_a_network_trained_on_features_scaled_its_own_way_keeps_that_scaling(
    sixteenths: tuple[list[np.ndarray], float],
) -> None:
    weights, sklearn_accuracy = sixteenths
    data = load_dataset("digits")
    model = model_from_weights(weights, data, feature_scale=16)
    assert np.array_equal(model.inputs.feature_scale, np.full(64, 16.0))
    assert np.array_equal(model.inputs.feature_mean, np.zeros(64))
    digital = model.trained["test_accuracy"]
    assert abs(digital - sklearn_accuracy) <= 1 / len(data.y_test)
    assert digital > 0.95
    # The first layer's input range is calibrated on the inputs as the network takes them.
    assert model.layers[0].input_clip == pytest.approx(
        np.percentile(_raw(data, data.x_train) / 16, 99.9), rel=1e-5
    )
    x = model.inputs.take(data, data.x_test)
    assert np.allclose(x, _raw(data, data.x_test) / 16, atol=1e-5)
    assert np.allclose(model.standardize(_raw(data, data.x_test)), x, atol=1e-6)
    with open_board("emu://?preset=ideal&seed=1") as board:
        ideal = model.deploy(board).evaluate(x, data.y_test).accuracy
    assert ideal >= digital - 0.02
    # Standardised on the data set instead, the same weights are another network.
    assert model_from_weights(weights, data).trained["test_accuracy"] < digital - 0.02


def test_a_scaling_that_does_not_fit_the_features_is_refused_naming_it(
    sixteenths: tuple[list[np.ndarray], float],
) -> None:
    weights, _ = sixteenths
    data = load_dataset("digits")
    with pytest.raises(InvalidArgument, match=r"feature_scale: got 'float64 \[2\]', expected 64"):
        model_from_weights(weights, data, feature_scale=[1.0, 2.0])
    with pytest.raises(InvalidArgument, match=r"feature_scale: got 'min 0', .*each > 0"):
        model_from_weights(weights, data, feature_scale=np.arange(64))
    with pytest.raises(InvalidArgument, match=r"feature_mean: got 'NaN/Inf'"):
        model_from_weights(weights, data, feature_mean=np.nan)
    with pytest.raises(InvalidArgument, match=r"feature_mean: got '<U1 \[\]'"):
        model_from_weights(weights, data, feature_mean="a")


def test_a_model_takes_samples_of_another_data_file_with_its_own_scaling(
    software: tuple[list[np.ndarray], float], tmp_path: Path
) -> None:
    """A file of the same features standardises otherwise (its own training part's
    statistics); the model's inputs are those of the data it was trained on."""
    from sklearn.datasets import load_digits

    weights, _ = software
    model = model_from_weights(weights, load_dataset("digits"))
    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "first700.npz", X=x[:700], y=y[:700])
    other = load_dataset(tmp_path / "first700.npz")
    assert not np.allclose(other.feature_mean, model.inputs.feature_mean)  # type: ignore[arg-type]
    taken = model.inputs.take(other, other.x_test)
    assert np.allclose(taken, model.standardize(_raw(other, other.x_test)), atol=1e-5)
    same = load_dataset("digits")
    assert model.inputs.take(same, same.x_test) is same.x_test  # the same scaling: untouched


def test_the_cli_keeps_a_weights_files_scaling_and_evaluates_other_files_with_it(
    sixteenths: tuple[list[np.ndarray], float], tmp_path: Path
) -> None:
    from sklearn.datasets import load_digits

    weights, _ = sixteenths
    np.savez(tmp_path / "w.npz", layer0=weights[0], layer1=weights[1], feature_scale=16.0)
    out = tmp_path / "model.npz"
    made = run_sidra("model", "import", str(tmp_path / "w.npz"), "--dataset", "digits",
                     "--out", str(out))  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "(thefeaturesscaledwithw.npz'sfeature_scale)" in unwrapped(made.stderr)
    model = TrainedModel.load(out)
    assert np.array_equal(model.inputs.feature_scale, np.full(64, 16.0))
    shown = run_sidra("model", "show", str(out), columns=200)
    assert "inputs: 64 features of digits, each (raw - mean) / scale: mean 0, scale 16" in (
        shown.stdout
    )
    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "first700.npz", X=x[:700], y=y[:700])
    report = sidra_json("model", "eval", str(out), "--dataset", str(tmp_path / "first700.npz"),
                        "--board", "emu://?preset=ideal&seed=1")  # fmt: skip
    other = load_dataset(tmp_path / "first700.npz")
    with open_board("emu://?preset=ideal&seed=1") as board:
        expected = model.deploy(board).evaluate(_raw(other, other.x_test) / 16, other.y_test)
    assert report["accuracy"] == pytest.approx(expected.accuracy)
    assert report["accuracy"] > 0.9
    np.savez(tmp_path / "bad.npz", layer0=weights[0], layer1=weights[1], feature_mean=[1.0, 2.0])
    refused = run_sidra("model", "import", str(tmp_path / "bad.npz"), "--dataset", "digits",
                        "--out", str(tmp_path / "other.npz"))  # fmt: skip
    assert refused.returncode == 2
    assert "bad.npz:feature_mean:got'float64[2]',expected64finitenumbers" in unwrapped(
        refused.stderr
    )
    assert not (tmp_path / "other.npz").exists()


def test_a_reference_column_is_kept_with_the_offset_mapping_only(
    software: tuple[list[np.ndarray], float], tmp_path: Path
) -> None:
    weights, _ = software
    data = load_dataset("digits")
    model = model_from_weights(weights, data, reference_column=True)
    assert all(layer.reference_column for layer in model.layers)
    assert all(layer.reference_column for layer in TrainedModel.from_bytes(model.to_bytes()).layers)
    with open_board("emu://?preset=sidra-y1&seed=3") as board:
        deployed = model.deploy(board)
        accuracy = deployed.evaluate(data.x_test, data.y_test).accuracy
        # Each tile's last column of the layer's region is the reference.
        assert [region.cols for _, region in deployed.regions()] == [65, 11]
    assert accuracy >= model.trained["test_accuracy"] - 0.03
    with pytest.raises(InvalidArgument, match=r"reference_column: got True, expected false"):
        model_from_weights(weights, data, mapping=Mapping.DIFFERENTIAL, reference_column=True)
    np.savez(tmp_path / "w.npz", layer0=weights[0], layer1=weights[1])
    refused = run_sidra("model", "import", str(tmp_path / "w.npz"), "--dataset", "digits",
                        "--out", str(tmp_path / "m.npz"), "--mapping", "differential",
                        "--reference-column")  # fmt: skip
    assert refused.returncode == 2
    assert "'--mapping':reference_column:gotTrue" in unwrapped(refused.stderr)
    assert not (tmp_path / "m.npz").exists()
