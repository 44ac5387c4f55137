"""Physics-aware training (sidra train pat): the twin computes what the board computes,
its backward pass is the exact one where the board is ideal, stuck weights never move,
no TransposeMVM is issued, and in-silico training deploys once to the board."""

from __future__ import annotations

import json
import threading
import tomllib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sidra.characterize import characterize
from sidra.characterize.toml import dumps
from sidra.cli.twin import twin_physics
from sidra.drivers import Board, open_board
from sidra.emulator import preset
from sidra.emulator.config import BoardProfile, GainMap, Geometry
from sidra.training import (
    AnalogLinear,
    Mapping,
    PATOptions,
    TwinLayer,
    TwinNetwork,
    TwinPhysics,
    exact_gradients,
    load_dataset,
    train_pat,
)
from tests.cli_support import run_sidra, unwrapped

STUCK_MIN = ((0, 0), (3, 1), (5, 4), (7, 9))
STUCK_MAX = ((1, 2), (4, 0), (6, 7), (2, 11), (8, 6))
"""(8, 6): with 6 outputs, the reference column of the offset mapping's variant."""


def _stuck_board(
    tmp_path: Path, *, gains: bool = False, **converters: float
) -> tuple[str, BoardProfile]:
    """An ideal board whose tile 0 has the cells above stuck (a measured map) and, with
    ``gains``, each cell's gain from a measured map (0.8–1.2)."""
    profile = preset("ideal").model_dump(mode="json")
    profile["schema_version"] = 3
    profile["variation"]["stuck_maps"] = [
        {"tile": 0, "at_min": [list(c) for c in STUCK_MIN], "at_max": [list(c) for c in STUCK_MAX]}
    ]
    if gains:
        shape = (profile["geometry"]["rows"], profile["geometry"]["cols"])
        cell_gains = np.random.default_rng(7).uniform(0.8, 1.2, shape)
        profile["variation"]["gain_maps"] = [GainMap.of(0, cell_gains).model_dump()]
    profile["converters"] |= converters
    path = tmp_path / "stuck.toml"
    path.write_text(dumps(profile, "test board"), encoding="utf-8")
    return f"emu://?profile={path}&seed=4", BoardProfile.model_validate(profile)


@pytest.mark.parametrize("gains", [False, True], ids=["no-gain-map", "gain-map"])
@pytest.mark.parametrize(
    ("mapping", "reference_column"),
    [(Mapping.OFFSET, False), (Mapping.DIFFERENTIAL, False), (Mapping.OFFSET, True)],
)
def test_the_twin_computes_what_the_board_computes_stuck_cells_included(
    tmp_path: Path, mapping: Mapping, reference_column: bool, gains: bool
) -> None:
    url, profile = _stuck_board(tmp_path, gains=gains)
    rng = np.random.default_rng(0)
    with open_board(url) as board:
        layer = AnalogLinear(board, 0, 9, 6, weight_limit=1.0, mapping=mapping,
                             reference_column=reference_column)  # fmt: skip
        w = rng.uniform(-0.8, 0.8, (10, 6)).astype(np.float32)
        layer.program(w)
        twin = TwinLayer(layer, twin_physics(profile))
        twin.update(w)
        x = rng.normal(size=(16, 9)).astype(np.float32)
        on_board = layer.forward(x)
    held = np.hstack([np.clip(x, -4.0, 4.0), np.ones((16, 1), np.float32)]) @ twin.weights
    np.testing.assert_allclose(on_board, held, atol=1e-4)
    assert not np.allclose(twin.weights, w, atol=1e-3)  # the stuck cells do show
    # dW_board/dW_target: 0 for a single stuck cell, ½ for a pair with one cell stuck
    # (times the other cell's gain), elsewhere the cell's gain (the pair's mean).
    pair = 2 if mapping is Mapping.DIFFERENTIAL else 1
    stuck_weights = {(r, c % 6) for r, c in STUCK_MIN + STUCK_MAX if c < 6 * pair}
    mapped = twin_physics(profile).gain(0, 10, 12)
    gain = np.ones((10, 12), np.float32) if mapped is None else mapped
    assert (mapped is None) == (not gains)
    stuck = np.zeros_like(gain, np.bool_)
    stuck[tuple(np.array(STUCK_MIN + STUCK_MAX).T)] = True
    moves = np.where(stuck, 0.0, gain)
    moves = (moves[:, :6] + moves[:, 6:12]) / 2.0 if pair == 2 else moves[:, :6]
    np.testing.assert_allclose(twin.movable, moves[: len(twin.movable)], rtol=1e-6)
    if not gains:
        expected = 0.0 if mapping is Mapping.OFFSET else 0.5
        for r, c in stuck_weights:
            assert twin.movable[r, c] == expected
        assert (twin.movable == 1.0).sum() == twin.movable.size - len(stuck_weights)
    if reference_column:  # its stuck reference moves every weight of row 8 (the board's too)
        assert np.all(np.abs(twin.weights[8] - w[8]) > 0.5)
    if gains:  # a twin without the map holds other weights, which the board does not
        plain = TwinLayer(layer, replace(twin_physics(profile), gains={}))
        plain.update(w)
        assert np.abs(plain.weights - twin.weights).max() > 0.05


def test_on_an_ideal_board_the_twins_backward_pass_is_the_exact_gradient() -> None:
    """The board's forward pass and the twin's backward pass give host backpropagation's
    gradients, the inputs' clipping included (which a TransposeMVM does not see)."""
    data = load_dataset("digits")
    rng = np.random.default_rng(2)
    twin = TwinPhysics(g_min_us=1.0, g_max_us=40.0, adc_full_scale_ua=None)
    with open_board("emu://?preset=ideal&seed=3") as board:
        sizes = [data.features, 32, 16, data.classes]
        layers, weights = [], []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            w = rng.normal(0, np.sqrt(2 / n_in), (n_in + 1, n_out)).astype(np.float32) / 2
            weights.append(w)
            clip = 4.0 if i == 0 else 1.0
            layers.append(AnalogLinear(board, i, n_in, n_out, weight_limit=1.0,
                                       digital_bias=True, input_clip=clip))  # fmt: skip
        net = TwinNetwork(layers, weights, trainable=3, twin=twin)
        x, y = 2.0 * data.x_train[:64], data.y_train[:64]  # some inputs beyond the clip
        inputs, _ = net.forward(x)
        assert (np.abs(inputs[1]) >= 1.0).any() and (np.abs(inputs[1]) < 1.0).any()
        _, analog = net.gradients(x, y)
        for a, e in zip(analog, exact_gradients(net, x, y), strict=True):
            assert a is not None
            np.testing.assert_allclose(a, e, rtol=1e-3, atol=1e-5)


def test_an_output_clipped_at_the_adc_passes_no_gradient(tmp_path: Path) -> None:
    """unclipped() marks the outputs whose column current the board clipped to full scale."""
    url, profile = _stuck_board(tmp_path, adc_bits=16, adc_full_scale_ua=20.0)
    rng = np.random.default_rng(5)
    with open_board(url) as board:
        layer = AnalogLinear(board, 0, 12, 8, weight_limit=1.0)
        w = rng.uniform(-1.0, 1.0, (13, 8)).astype(np.float32)
        layer.program(w)
        twin = TwinLayer(layer, twin_physics(profile))
        twin.update(w)
        x = rng.normal(0.0, 2.0, (200, 12)).astype(np.float32)
        currents = board.mvm(0, layer.input_volts(x), layer.region).currents
    clipped_on_board = np.abs(currents[:, :8]) >= 20.0 - 1e-3
    passes = twin.unclipped(x)
    assert clipped_on_board.any() and (~clipped_on_board).any()
    np.testing.assert_array_equal(passes, ~clipped_on_board)


def test_a_weight_on_a_stuck_cell_never_moves(tmp_path: Path) -> None:
    url, profile = _stuck_board(tmp_path)
    data = load_dataset("digits")
    rng = np.random.default_rng(1)
    with open_board(url) as board:
        layers = [
            AnalogLinear(board, 0, data.features, 16, weight_limit=1.0),
            AnalogLinear(board, 1, 16, data.classes, weight_limit=1.0, input_clip=6.0),
        ]
        weights = [rng.normal(0, 0.2, (data.features + 1, 16)).astype(np.float32),
                   rng.normal(0, 0.2, (17, data.classes)).astype(np.float32)]  # fmt: skip
        net = TwinNetwork(layers, weights, trainable=2, twin=twin_physics(profile))
        start = net.weights[0].copy()
        for b in range(5):
            net.step(data.x_train[32 * b : 32 * b + 32], data.y_train[32 * b : 32 * b + 32], 0.5)
    moved = net.weights[0] != start
    for r, c in STUCK_MIN + STUCK_MAX:
        if c < 16:
            assert not moved[r, c]
    assert moved.sum() > 0.5 * moved.size


def _counting(board: Board) -> Counter[str]:
    calls: Counter[str] = Counter()
    run = board.run

    def counted(request):  # type: ignore[no-untyped-def]
        calls[type(request).__name__] += 1
        return run(request)

    board.run = counted  # type: ignore[method-assign]
    return calls


def _twin(url: str) -> tuple[TwinPhysics, BoardProfile]:
    with open_board(url) as board:
        profile = characterize(board, drift=False).profile
    return twin_physics(profile), profile


def _twin_file(url: str, folder: Path) -> tuple[TwinPhysics, Path]:
    """The twin of the board at ``url`` and its profile written to ``folder``/twin.toml."""
    twin, profile = _twin(url)
    path = folder / "twin.toml"
    path.write_text(dumps(profile.model_dump(mode="json"), "twin"), encoding="utf-8")
    return twin, path


def test_pat_learns_with_the_board_forward_and_no_transpose_mvm() -> None:
    url = "emu://?preset=sidra-y1&seed=1"
    twin, _ = _twin(url)
    assert twin.stuck_cells > 0  # the characterized map
    data = load_dataset("digits")
    options = PATOptions(hidden=(32,), epochs=3, learning_rate=0.2, cosine_every=10)
    with open_board(url) as board:
        calls = _counting(board)
        record = train_pat(board, twin, data, options)
    summary = record.summary()
    assert "TransposeMVMRequest" not in calls and calls["MVMRequest"] > 0
    assert summary["test_accuracy"] > 0.85
    assert summary["placement"] == {"layer0": [0], "layer1": [1]}
    assert record.settings["job"] == "pat" and record.settings["twin_stuck_cells"] > 0
    assert all(0.0 < c <= 1.0 for c in summary["gradient_cosine"])
    # Every step on the board (3 epochs, board_epochs 10): said per arm all the same.
    assert summary["board_steps"] == summary["steps"] > 0 and summary["twin_steps"] == 0


def test_in_silico_trains_on_the_twin_and_programs_the_board_once(tmp_path: Path) -> None:
    url = "emu://?preset=sidra-y1&seed=2"
    twin, path = _twin_file(url, tmp_path)
    data = load_dataset("digits")
    options = PATOptions(hidden=(32,), epochs=2, learning_rate=0.2, in_silico=True)
    with open_board(url) as board, open_board(f"emu://?profile={path}&seed=9") as twin_board:
        with pytest.raises(ValueError, match="twin_board"):
            train_pat(board, twin, data, options)
        calls = _counting(board)
        record = train_pat(board, twin, data, options, twin_board=twin_board)
    assert calls["ProgramRequest"] == 2  # each layer programmed once, with the trained weights
    assert record.programs == 2  # the board's, not the twin's (reported as the board's)
    assert record.measures["twin_programs"] > 2
    assert "TransposeMVMRequest" not in calls
    assert record.settings["job"] == "pat-in-silico"
    assert record.loss_evaluations == record.steps > 0  # on the twin
    summary = record.summary()  # the board trained no step: the twin made them all
    assert (summary["twin_steps"], summary["board_steps"]) == (record.steps, 0)
    assert record.measures["twin_test_accuracy"] > 0.8
    assert record.test_accuracy > 0.8  # measured on the board
    # The model kept is the one deployed: the board's, not the twin's emulator.
    assert record.model is not None and record.model.job == "pat-in-silico"
    assert record.model.trained["board_serial"] == "EMU-Y1-2"


def test_the_twin_runs_the_schedule_s_first_epochs_and_the_board_the_rest(tmp_path: Path) -> None:
    url = "emu://?preset=sidra-y1&seed=2"
    twin, path = _twin_file(url, tmp_path)
    data = load_dataset("digits")
    options = PATOptions(hidden=(32,), epochs=3, board_epochs=1, learning_rate=0.2)
    assert options.twin_epochs == 2
    epochs: list[int] = []
    with open_board(url) as board, open_board(f"emu://?profile={path}&seed=9") as twin_board:
        with pytest.raises(ValueError, match="twin_board: 2 epochs"):
            train_pat(board, twin, data, options)
        on_board, on_twin = _counting(board), _counting(twin_board)
        record = train_pat(
            board, twin, data, options, twin_board=twin_board,
            on_epoch=lambda epoch, _: epochs.append(epoch),
        )  # fmt: skip
    steps_per_epoch = -(-len(data.x_train) // options.batch_size)
    assert epochs == [1, 2, 3]
    assert record.steps == len(record.losses) == 3 * steps_per_epoch
    # The board ran the last epoch alone: its loss evaluations, and its checkpoint after
    # the twin's steps; the twin the first two.
    assert record.loss_evaluations == steps_per_epoch
    assert [c.step for c in record.checkpoints] == [record.steps]
    assert record.measures["twin_epochs"] == 2
    # The summary's steps count both arms (steps.csv's rows); each arm's, labelled, beside.
    summary = record.summary()
    assert summary["steps"] == 3 * steps_per_epoch
    assert summary["twin_steps"] == 2 * steps_per_epoch
    assert summary["board_steps"] == steps_per_epoch
    assert record.measures["twin_test_accuracy"] > 0.8
    assert on_twin["MVMRequest"] > on_board["MVMRequest"] > 0  # two epochs against one
    assert "TransposeMVMRequest" not in on_board | on_twin
    assert record.test_accuracy > 0.85  # on the board


def test_the_board_runs_every_epoch_of_a_schedule_no_longer_than_board_epochs() -> None:
    assert PATOptions(epochs=30, board_epochs=10).twin_epochs == 20
    assert PATOptions(epochs=3, board_epochs=10).twin_epochs == 0
    assert PATOptions(epochs=3, board_epochs=1, in_silico=True).twin_epochs == 3


def test_the_cli_characterizes_the_board_when_no_profile_is_given(tmp_path: Path) -> None:
    done = run_sidra(
        "train", "pat", "--board", "emu://?preset=sidra-y1&seed=3", "--hidden", "16",
        "--epochs", "1", "--json", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["test_accuracy"] > 0.5 and summary["mvm_calls"] > 0
    settings = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert settings["twin_profile"] == str(tmp_path / "run" / "twin.toml")
    twin = tomllib.loads((tmp_path / "run" / "twin.toml").read_text())
    assert BoardProfile.model_validate(twin).variation.stuck_maps
    # That run again (--like) trains with its twin: the board is not measured anew, and
    # the new record keeps its own copy of the twin that trained it.
    board = "emu://?preset=sidra-y1&seed=3"
    again = run_sidra("train", "pat", "--like", str(tmp_path / "run"), "--board", board,
                      "--json", "--out", str(tmp_path / "again"))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "characterizing" not in again.stdout + again.stderr
    settings = json.loads((tmp_path / "again" / "settings.json").read_text())
    assert settings["twin_profile"] == str(tmp_path / "again" / "twin.toml")
    assert (tmp_path / "again" / "twin.toml").read_text() == (
        tmp_path / "run" / "twin.toml"
    ).read_text()
    (tmp_path / "run" / "twin.toml").unlink()
    lost = run_sidra("train", "pat", "--like", str(tmp_path / "run"), "--out",
                     str(tmp_path / "lost"))  # fmt: skip
    assert lost.returncode == 2 and "give--profile" in unwrapped(lost.stderr)
    # Refused before any board is opened: this one does not exist.
    refused = run_sidra(
        "train", "pat", "--profile", str(tmp_path / "missing.toml"),
        "--board", f"serial://{tmp_path / 'no-such-tty'}",
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "--profile" in refused.stderr and "missing.toml" in unwrapped(refused.stderr)
    assert "no-such-tty" not in refused.stderr


def test_a_profile_of_another_board_is_refused_before_training(tmp_path: Path) -> None:
    """A twin of another geometry trained a whole schedule on the twin and then failed
    placing its layers; one of another conductance window trained on without a word."""
    narrow = BoardProfile(geometry=Geometry(tiles=1, rows=32, cols=32))
    profile = tmp_path / "small.toml"
    profile.write_text(dumps(narrow.model_dump(mode="json")), encoding="utf-8")
    refused = run_sidra("train", "pat", "--board", "emu://?preset=sidra-y1&seed=3",
                        "--profile", str(profile), "--out", str(tmp_path / "run"))  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    said = unwrapped(refused.stderr)
    assert "'--profile'" in refused.stderr and unwrapped("a profile of another board") in said
    assert unwrapped("tiles: the twin's 1, the board's 4") in said
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("given", [True, False], ids=["profile", "characterized"])
def test_a_network_no_tiles_hold_is_refused_before_the_twin(given: bool, tmp_path: Path) -> None:
    """Its hidden layer needs three tiles, --tile allows one: refused before the board is
    characterized (minutes, for nothing) or the profile is copied into --out (a folder
    holding only twin.toml was left behind), with what would fit."""
    board = "emu://?preset=sidra-y1&seed=3"
    profile = tmp_path / "twin.toml"
    if given:
        profile.write_text(dumps(preset("sidra-y1").model_dump(mode="json")), encoding="utf-8")
    refused = run_sidra(
        "train", "pat", "--board", board, "--tile", "0", "--out", str(tmp_path / "run"),
        *(("--profile", str(profile)) if given else ()),
    )  # fmt: skip
    said = unwrapped(refused.stderr)
    assert refused.returncode == 2 and "Traceback" not in said, said
    assert unwrapped("0 tile(s) are left") in said and unwrapped("narrower hidden layer") in said
    assert "characteriz" not in refused.stdout + said
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("at", [1, 2])
def test_stopped_on_the_twin_the_weights_it_reached_are_deployed_to_the_board(
    at: int, tmp_path: Path
) -> None:
    """Ctrl-C during the twin's epoch ``at`` of its 2 (the last of them included): the
    board's epochs never begin; the record is the board's evaluation of the twin's weights."""
    url = "emu://?preset=sidra-y1&seed=2"
    twin, path = _twin_file(url, tmp_path)
    data = load_dataset("digits")
    options = PATOptions(hidden=(32,), epochs=3, board_epochs=1, learning_rate=0.2)
    stop = threading.Event()

    def on_epoch(epoch: int, test: float) -> None:
        if epoch == at:
            stop.set()

    with open_board(url) as board, open_board(f"emu://?profile={path}&seed=9") as twin_board:
        calls = _counting(board)
        record = train_pat(
            board, twin, data, options, twin_board=twin_board, on_epoch=on_epoch, stop=stop
        )
    assert record.settings["stopped_at_epoch"] == at
    assert calls["ProgramRequest"] == 2 and "TransposeMVMRequest" not in calls  # deployed once
    assert record.test_accuracy > 0.5 and "twin_test_accuracy" in record.measures
    assert (record.measures["twin_steps"], record.measures["board_steps"]) == (record.steps, 0)
