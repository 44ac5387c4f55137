"""Multi-tile layers, the TransposeMVM backward pass and exact last-layer training."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from sidra.drivers import BoardDriver, Region
from sidra.drivers.requests import MVMRequest, Request, TransposeMVMRequest
from sidra.training import AnalogLinear, LastLayerOptions, Mapping, load_dataset
from sidra.training.hybrid import HybridNetwork, train_last_layer


def _rows_with_bias(x: np.ndarray, clip: float) -> np.ndarray:
    return np.hstack([np.clip(x, -clip, clip), np.ones((len(x), 1), np.float32)])


def test_layer_spanning_two_tiles_equals_numpy(ideal_driver: BoardDriver) -> None:
    """300 inputs + bias = 301 rows over two 256-row tiles: block sums add up exactly."""
    rng = np.random.default_rng(0)
    layer = AnalogLinear(ideal_driver, [1, 3], inputs=300, outputs=7)
    assert [b.tile for b in layer.blocks] == [1, 3]
    w = rng.uniform(-1, 1, layer.shape).astype(np.float32)
    layer.program(w)
    x = rng.normal(size=(9, 300)).astype(np.float32)
    expected = _rows_with_bias(x, layer.input_clip) @ w
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-4, atol=2e-3)
    assert layer.mvm_calls == 2


@pytest.mark.parametrize(
    ("mapping", "reference", "columns"),
    [("offset", False, 10), ("offset", True, 11), ("differential", False, 20)],
)
def test_layer_passes_carry_only_its_region(
    ideal_driver: BoardDriver, mapping: str, reference: bool, columns: int
) -> None:
    """A 64 + bias x 10 layer on a 256 x 256 tile: every pass is scoped to the layer's
    region, 65 voltages in and its columns out (forward), its columns in and 65 currents
    out (backward), never padded to the tile; results still equal numpy."""
    sent: list[Request] = []
    run = ideal_driver.run

    def recording(request: Request) -> Any:
        sent.append(request)
        return run(request)

    ideal_driver.run = recording  # type: ignore[method-assign]
    rng = np.random.default_rng(3)
    layer = AnalogLinear(
        ideal_driver, 0, inputs=64, outputs=10, mapping=Mapping(mapping), reference_column=reference
    )
    w = rng.uniform(-1, 1, layer.shape).astype(np.float32)
    layer.program(w)
    x = rng.normal(size=(6, 64)).astype(np.float32)
    delta = rng.normal(size=(6, 10)).astype(np.float32)
    sent.clear()
    forward, backward = layer.forward(x), layer.backward(delta)
    region = Region(0, 0, 65, columns)
    assert [type(r) for r in sent] == [MVMRequest, TransposeMVMRequest]
    assert (sent[0].region, np.shape(sent[0].voltages)) == (region, (6, 65))
    assert (sent[1].region, np.shape(sent[1].voltages)) == (region, (6, columns))
    np.testing.assert_allclose(forward, _rows_with_bias(x, layer.input_clip) @ w, atol=2e-3)
    np.testing.assert_allclose(backward, delta @ w[:-1].T, rtol=1e-4, atol=2e-3)


def test_backward_is_delta_times_w_transposed(ideal_driver: BoardDriver) -> None:
    """TransposeMVM with abs-max scaling gives δ·Wᵀ (bias row dropped), across tiles too."""
    rng = np.random.default_rng(1)
    layer = AnalogLinear(ideal_driver, [0, 2], inputs=280, outputs=10)
    w = rng.uniform(-1, 1, layer.shape).astype(np.float32)
    layer.program(w)
    delta = rng.normal(size=(5, 10)).astype(np.float32)
    np.testing.assert_allclose(layer.backward(delta), delta @ w[:-1].T, rtol=1e-4, atol=1e-3)


def test_two_trainable_layers_match_host_backprop_on_ideal_board(
    ideal_driver: BoardDriver,
) -> None:
    """One hybrid step with both layers trainable equals numpy backprop of the same net."""
    rng = np.random.default_rng(2)
    l1 = AnalogLinear(ideal_driver, 0, 8, 6)
    l2 = AnalogLinear(ideal_driver, 1, 6, 3)
    w1 = rng.uniform(-0.5, 0.5, l1.shape).astype(np.float32)
    w2 = rng.uniform(-0.5, 0.5, l2.shape).astype(np.float32)
    net = HybridNetwork([l1, l2], [w1, w2], trainable=2)
    x = rng.normal(size=(4, 8)).astype(np.float32)
    y = np.array([0, 2, 1, 2])
    # numpy reference
    h0 = _rows_with_bias(x, l1.input_clip)
    z1 = h0 @ w1
    h1 = _rows_with_bias(np.maximum(z1, 0), l2.input_clip)
    z2 = h1 @ w2
    p = np.exp(z2 - z2.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(4), y] -= 1
    d2 = p / 4
    d1 = (d2 @ w2[:-1].T) * (z1 > 0)
    net.step(x, y, learning_rate=0.1)
    np.testing.assert_allclose(net.weights[1], w2 - 0.1 * h1.T @ d2, atol=2e-4)
    np.testing.assert_allclose(net.weights[0], w1 - 0.1 * h0.T @ d1, atol=2e-4)


def test_digital_bias_stays_off_the_array(ideal_driver: BoardDriver) -> None:
    """A bias 20× the weights: added on the host, it neither takes a row nor sets the
    range; forward equals numpy, on-board perturbation is refused, training leaves it
    unclipped."""
    from sidra.drivers import Unsupported

    rng = np.random.default_rng(4)
    layer = AnalogLinear(ideal_driver, 0, 8, 3, weight_limit=0.5, digital_bias=True)
    assert layer.region.rows == 8  # no bias row on the tile
    w = rng.uniform(-0.5, 0.5, layer.shape).astype(np.float32)
    w[-1] = [10.0, -10.0, 3.0]
    net = HybridNetwork([layer], [w])
    x = rng.normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(
        layer.forward(x), _rows_with_bias(x, layer.input_clip) @ w, rtol=1e-4, atol=2e-3
    )
    with pytest.raises(Unsupported, match="digital bias"):
        layer.perturb(seed=1, c=0.1, sign=1)
    net.step(x, np.array([0, 1, 2, 0, 1]), learning_rate=0.01)
    assert np.abs(net.weights[0][-1]).max() > 9.0  # the bias is not clipped to ±0.5
    assert np.abs(net.weights[0][:-1]).max() <= 0.5


def test_layer_rejects_a_non_positive_range(ideal_driver: BoardDriver) -> None:
    with pytest.raises(ValueError, match=r"weight_limit: got 0\.0, expected > 0"):
        AnalogLinear(ideal_driver, 0, 4, 2, weight_limit=0.0)
    with pytest.raises(ValueError, match="input_clip"):
        AnalogLinear(ideal_driver, 0, 4, 2, input_clip=-1.0)


@pytest.mark.parametrize("mapping", ["offset", "differential"])
def test_a_weight_at_the_limit_maps_inside_the_window(mapping: str) -> None:
    """1 − 4.644377 × (39 / 2 / 4.644377) in float32 is 0.9999981 µS, below sidra-y1's
    1 µS floor: a weight clipped to the limit by training must still be programmable."""
    from sidra.drivers import open_board

    limit = 4.6443772315979
    with open_board("emu://?preset=sidra-y1&seed=3") as board:
        layer = AnalogLinear(board, 0, 3, 2, weight_limit=limit, mapping=Mapping(mapping))
        w = np.array([[-limit, limit], [0.0, -2 * limit], [limit, 0.5]], np.float32)
        g = layer.conductances(w)
        assert g.min() >= board.info.g_min_us and g.max() <= board.info.g_max_us
        assert g.min() == np.float32(board.info.g_min_us)
        layer.program(np.vstack([w, np.zeros((1, 2), np.float32)]))


def test_threshold_skips_tiny_updates(ideal_driver: BoardDriver) -> None:
    layer = AnalogLinear(ideal_driver, 0, 4, 2)
    net = HybridNetwork([layer], [np.zeros(layer.shape, np.float32)], threshold=10.0)
    writes = ideal_driver.stats().cell_writes
    net.step(np.ones((2, 4), np.float32), np.array([0, 0]), learning_rate=0.01)
    assert ideal_driver.stats().cell_writes == writes  # nothing moved past the threshold
    assert np.abs(net.weights[0]).max() > 0  # but the host weights did learn


def test_last_layer_training_on_ideal_board() -> None:
    from sidra.drivers import open_board

    data = load_dataset("digits")
    with open_board("emu://?preset=ideal&seed=0") as board:
        record = train_last_layer(
            board, data, LastLayerOptions(epochs=3, read_repeats=1, final_learning_rate=0.0)
        )
    assert record.test_accuracy > 0.9
    # Linear decay 0.2 → 0.1 → 0: the last epoch moves no weight, so writes nothing.
    assert record.checkpoints[2].device_writes == record.checkpoints[1].device_writes
    assert record.checkpoints[1].device_writes > record.checkpoints[0].device_writes
    assert len(record.checkpoints) == 3
    assert record.device_writes > 0 and record.mvm_calls > 0


def test_read_repeats_average_the_read_noise() -> None:
    """16 averaged passes cut the output noise std by √16 = 4 (tolerance ±15 % on the
    ratio: each std comes from 640 samples, relative SE ≈ 2.8 %)."""
    from sidra.drivers import open_board

    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 32)).astype(np.float32)
    stds = []
    for repeats in (1, 16):
        with open_board("emu://?preset=sidra-y1&seed=9") as board:
            layer = AnalogLinear(board, 0, 32, 10, read_repeats=repeats)
            layer.program(np.zeros(layer.shape, np.float32))
            stds.append(float(np.std(layer.forward(x) - layer.forward(x)) / np.sqrt(2)))
            assert board.stats().mvm_passes == 2 * 64 * repeats
    assert 3.4 < stds[0] / stds[1] < 4.6


def test_differential_mapping_forward_backward_and_perturb() -> None:
    """G± = g_ref ± W·s/2: I⁺ − I⁻ gives [x, 1]·W, the inverted column drive gives δ·Wᵀ,
    and a paired perturbation gives W ± cΔ (ideal preset, exact to float32)."""
    from sidra.drivers import open_board, rademacher
    from sidra.training.analog_layer import Mapping

    rng = np.random.default_rng(5)
    with open_board("emu://?preset=ideal&seed=0") as board:
        layer = AnalogLinear(board, 0, 20, 6, mapping=Mapping.DIFFERENTIAL)
        assert layer.region.cols == 12
        w = rng.uniform(-1.4, 1.4, layer.shape).astype(np.float32)
        layer.program(w)
        g = board.read_conductance(0).conductances
        np.testing.assert_allclose(g[:21, :6] - g[:21, 6:12], w * layer.scale_us, atol=1e-4)
        x = rng.normal(size=(4, 20)).astype(np.float32)
        h = _rows_with_bias(x, layer.input_clip)
        np.testing.assert_allclose(layer.forward(x), h @ w, atol=2e-3)
        delta = rng.normal(size=(4, 6)).astype(np.float32)
        np.testing.assert_allclose(layer.backward(delta), delta @ w[:-1].T, atol=2e-3)
        layer.perturb(42, 0.1, -1)
        expected = h @ (w - 0.1 * rademacher(42, layer.shape))
        np.testing.assert_allclose(layer.forward(x), expected, atol=2e-3)
        layer.restore()
        np.testing.assert_allclose(layer.forward(x), h @ w, atol=2e-3)


def test_differential_mapping_cancels_global_drift_in_the_signal() -> None:
    """A uniform conductance decay scales I⁺ − I⁻ by the same factor (argmax unchanged),
    while the offset mapping's digital g_ref·ΣV subtraction leaves a bias error."""
    from sidra.emulator import BoardProfile, preset
    from sidra.emulator.config import Drift, DriftModel
    from sidra.emulator.driver import EmulatorDriver
    from sidra.training.analog_layer import Mapping

    profile: BoardProfile = preset("ideal").model_copy(
        update={"drift": Drift(model=DriftModel.CONSTANT, nu_mean=0.05, t0_s=20.0)}
    )
    rng = np.random.default_rng(6)
    x = rng.normal(size=(32, 16)).astype(np.float32)
    w = rng.uniform(-1, 1, (17, 5)).astype(np.float32)
    errors = {}
    for mapping in (Mapping.OFFSET, Mapping.DIFFERENTIAL):
        with EmulatorDriver(profile, seed=0) as board:
            layer = AnalogLinear(board, 0, 16, 5, mapping=mapping)
            layer.program(w)
            fresh = layer.forward(x)
            board.advance_clock(86_400.0)
            aged = layer.forward(x)
            gain = float(np.sum(aged * fresh) / np.sum(fresh * fresh))
            errors[mapping] = float(np.abs(aged - gain * fresh).max())
    assert errors[Mapping.DIFFERENTIAL] < 1e-3 < errors[Mapping.OFFSET]


def test_reference_column_makes_uniform_drift_a_pure_gain() -> None:
    """With a reference column at g_ref the offset drifts with the array: uniform decay
    scales the outputs (the naive digital g_ref·ΣV subtraction does not track it)."""
    from sidra.emulator import preset
    from sidra.emulator.config import Drift, DriftModel
    from sidra.emulator.driver import EmulatorDriver

    profile = preset("ideal").model_copy(
        update={"drift": Drift(model=DriftModel.CONSTANT, nu_mean=0.05, t0_s=20.0)}
    )
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 12)).astype(np.float32)
    w = rng.uniform(-1, 1, (13, 4)).astype(np.float32)
    with EmulatorDriver(profile, seed=0) as board:
        layer = AnalogLinear(board, 0, 12, 4, reference_column=True)
        assert layer.columns == 5
        layer.program(w)
        fresh = layer.forward(x)
        board.advance_clock(86_400.0)
        factor = ((86_400.0 + 20.0) / 20.0) ** -0.05
        np.testing.assert_allclose(layer.forward(x), factor * fresh, rtol=1e-4, atol=1e-4)


def test_drift_recovery_reports_each_stage() -> None:
    """Digital offset subtraction on a pcm board: 30 days of drift cost many points,
    Calibrate wins most back without a write, retraining the head on board adds more."""
    from sidra.drivers import open_board
    from sidra.training import RecoveryOptions
    from sidra.training.recovery import drift_recovery

    data = load_dataset("digits")
    options = RecoveryOptions(
        hidden=32,
        epochs=2,
        read_repeats=2,
        eval_read_repeats=4,
        age_days=30.0,
        reference_column=False,
    )
    with open_board("emu://?preset=pcm&seed=1") as board:
        report = drift_recovery(board, data, options)
    assert report.digital_accuracy > 0.9 and report.deployed_accuracy > 0.9
    assert report.aged_accuracy < report.deployed_accuracy - 0.1
    # One tile per layer at 32 hidden units; drift lowers every conductance, so
    # each tile's compensating gain is above 1.
    assert len(report.calibration_gains) == 2 and min(report.calibration_gains) > 1.0
    assert report.calibrated_accuracy > report.aged_accuracy + 0.1
    assert report.recovered_accuracy > report.calibrated_accuracy
    assert report.recovered_fraction > 0.8
    assert report.device_writes > 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the reference
def test_drift_recovery_of_two_classes_deploys_the_digital_network_s_decisions() -> None:
    """scikit-learn keeps one output for two classes; the board's head has one per class
    (it failed: weights.shape got [257, 1], expected [257, 2]). On the ideal board the
    deployed network decides as the digital one does."""
    from sklearn.neural_network import MLPClassifier

    from sidra.drivers import open_board
    from sidra.training import RecoveryOptions
    from sidra.training.recovery import _train_digital, drift_recovery

    data = load_dataset("breast_cancer")
    trained = _train_digital(data, 32, seed=0)
    (w1, w2), accuracy = trained.weights, trained.accuracy
    assert w2.shape == (33, 2)
    digital = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", max_iter=300,
                            random_state=0).fit(data.x_train, data.y_train)  # fmt: skip
    hidden = np.maximum(np.hstack([data.x_test, np.ones((len(data.x_test), 1))]) @ w1, 0.0)
    logits = np.hstack([hidden, np.ones((len(hidden), 1))]) @ w2
    np.testing.assert_array_equal(logits.argmax(1), digital.predict(data.x_test))
    options = RecoveryOptions(hidden=32, epochs=1, read_repeats=1, eval_read_repeats=1)
    with open_board("emu://?preset=ideal&seed=1") as board, warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning: the report says it
        report = drift_recovery(board, data, options)
    assert report.digital_accuracy == pytest.approx(accuracy)
    assert report.deployed_accuracy > 0.9
    assert report.digital_iterations == digital.n_iter_
    assert report.digital_converged == (digital.n_iter_ < 300)  # said, not warned


def test_drift_recovery_without_calibration_reports_no_gains() -> None:
    from sidra.drivers import open_board
    from sidra.training import RecoveryOptions
    from sidra.training.recovery import drift_recovery

    data = load_dataset("digits")
    options = RecoveryOptions(
        hidden=32, epochs=1, read_repeats=1, eval_read_repeats=2, age_days=1.0, calibrate=False
    )
    with open_board("emu://?preset=pcm&seed=2") as board:
        report = drift_recovery(board, data, options)
    assert report.calibration_gains == ()
    assert report.calibrated_accuracy == report.aged_accuracy
    assert report.retraining_fraction == report.recovered_fraction


def test_drift_recovery_stopped_ends_its_retraining_after_the_epoch_under_way() -> None:
    """A stop asked before the retraining ends it after its first epoch: the same run as
    one of a single epoch, its report saying where it stopped; asked during the last
    epoch, nothing changes."""
    import threading

    from sidra.drivers import open_board
    from sidra.training import RecoveryOptions
    from sidra.training.recovery import drift_recovery

    data = load_dataset("digits")
    one = RecoveryOptions(hidden=32, epochs=1, read_repeats=1, eval_read_repeats=1, age_days=1.0)
    stop = threading.Event()
    stop.set()
    with open_board("emu://?preset=pcm&seed=3") as board:
        stopped = drift_recovery(board, data, one.model_copy(update={"epochs": 5}), stop=stop)
    with open_board("emu://?preset=pcm&seed=3") as board:
        single = drift_recovery(board, data, one)
    with open_board("emu://?preset=pcm&seed=3") as board:
        late = drift_recovery(board, data, one, stop=stop)
    assert stopped.stopped_at_epoch == 1 and stopped.summary()["stopped_at_epoch"] == 1
    assert stopped.summary() == single.summary() | {"stopped_at_epoch": 1}
    assert late.stopped_at_epoch is None and late.summary() == single.summary()


@pytest.mark.parametrize(
    ("mapping", "reference"),
    [("offset", False), ("offset", True), ("differential", False)],
)
def test_layer_spanning_rows_and_columns_of_tiles(mapping: str, reference: bool) -> None:
    """300 inputs × 300 outputs: 2 row blocks × 2 (or 3) output blocks over 4 (or 6) tiles;
    forward and backward equal numpy."""
    from sidra.emulator import preset
    from sidra.emulator.config import Geometry
    from sidra.emulator.driver import EmulatorDriver
    from sidra.training.analog_layer import Mapping

    profile = preset("ideal").model_copy(update={"geometry": Geometry(tiles=6, rows=256, cols=256)})
    rng = np.random.default_rng(8)
    with EmulatorDriver(profile, seed=0) as board:
        layer = AnalogLinear(
            board, range(6), 300, 300, mapping=Mapping(mapping), reference_column=reference
        )
        w = rng.uniform(-1, 1, layer.shape).astype(np.float32)
        layer.program(w)
        x = rng.normal(size=(3, 300)).astype(np.float32)
        np.testing.assert_allclose(
            layer.forward(x), _rows_with_bias(x, layer.input_clip) @ w, atol=5e-3
        )
        delta = rng.normal(size=(3, 300)).astype(np.float32)
        np.testing.assert_allclose(layer.backward(delta), delta @ w[:-1].T, rtol=1e-4, atol=5e-3)
    outputs_per_tile = {"offset": 256 - reference, "differential": 128}[mapping]
    assert len(layer.blocks) == 2 * -(-300 // outputs_per_tile)


def test_a_drift_recovery_record_names_its_file_as_every_run_s_record_does(
    tmp_path: Any,
) -> None:
    """settings.json names a file as the run was told of it, with its SHA-256 (what
    ``--like`` and ``sidra model eval`` find it again by); a bundled set by its name."""
    import hashlib
    import json

    from sidra.training import RecoveryOptions
    from sidra.training.recovery import recovery_files

    path = tmp_path / "lab.csv"
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{int(a > b)}" for a, b in rng.normal(size=(60, 2))]
    path.write_text("\n".join(rows) + "\n")
    data = load_dataset(path)
    options = RecoveryOptions(hidden=8, epochs=1)
    named = json.loads(recovery_files(options, data, {}, "runs/lab.csv")["settings.json"])
    assert (named["job"], named["dataset"]) == ("drift-recovery", "runs/lab.csv")
    assert named["dataset_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    sent = json.loads(recovery_files(options, data, {})["settings.json"])
    assert sent["dataset"] == str(path)  # Dataset.named_as: the file as it was read
    bundled = json.loads(recovery_files(options, load_dataset("iris"), {})["settings.json"])
    assert bundled["dataset"] == "iris" and "dataset_sha256" not in bundled
