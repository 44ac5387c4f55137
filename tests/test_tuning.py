"""sidra.training.tuning: a trained model's last layers trained again on the board it runs
on, fresh or found held and aged; ``sidra model tune`` over a served board."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from cli_support import interrupted, run_sidra, sidra_json, unwrapped
from software_networks import sklearn_mlp

from sidra.drivers import InvalidArgument, open_board
from sidra.training import TuneOptions, load_dataset, tune_model
from sidra.training.importing import model_from_weights
from sidra.training.model import GoodnessReadout, ModelLayer, TrainedModel


@pytest.fixture(autouse=True)
def _in_a_folder_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command keeps its record in runs/ of the folder it runs in."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def software() -> TrainedModel:
    """A 64 → 64 → 10 ReLU network trained by scikit-learn on digits, imported."""
    data = load_dataset("digits")
    weights, _ = sklearn_mlp(data.x_train, data.y_train, data.x_test, data.y_test, 64)
    return model_from_weights(weights, data)


def test_a_model_held_on_an_aged_board_wins_its_accuracy_back(software: TrainedModel) -> None:
    """A year of PCM drift on tiles holding the model: calibrated and tuned in place, both
    layers, it wins back at least half of what the year cost and ends within two points
    of where it started (within one on 7 of pcm seeds 0-7 on a Zen 4, +0.2 points on
    average: a fresh deployment's accuracy on one board is itself a draw); the model it
    gives keeps the layout, and the tiles hold it."""
    data = load_dataset("digits")
    with open_board("emu://?preset=pcm&seed=3") as board:
        fresh = software.deploy(board, tiles=[0, 1]).evaluate(data.x_test, data.y_test,
                                                                read_repeats=16)  # fmt: skip
        board.advance_clock(365 * 86_400.0)
        options = TuneOptions(trainable=2, tiles=(0, 1))
        result = tune_model(software, board, data, options, held=True, calibrate=True)
        assert result.accuracy_before < fresh.accuracy - 0.02  # the year cost accuracy
        lost = fresh.accuracy - result.accuracy_before
        assert result.accuracy_after - result.accuracy_before >= lost / 2
        assert result.accuracy_after >= fresh.accuracy - 0.02
        assert result.placement == {"layer0": [0], "layer1": [1]}
        assert result.programming == ()  # held: nothing programmed to start
        tuned = result.model
        tuned.deploy(board, tiles=[0, 1], held=True)  # they hold it: ModelNotHeld otherwise
    assert tuned.job == "tuned" and tuned.inputs == software.inputs
    assert [layer.weights.shape for layer in tuned.layers] == [(65, 64), (65, 10)]
    assert tuned.trained["tuned_from"]["job"] == "imported"
    assert tuned.trained["tuned_from"]["test_accuracy"] == software.trained["test_accuracy"]
    assert tuned.trained["test_accuracy"] == result.accuracy_after
    assert tuned.trained["untuned_test_accuracy"] == result.accuracy_before
    assert tuned.trained["emulator_preset"] == "pcm" and tuned.trained["trainable"] == 2


def test_only_the_trainable_layers_learn_and_every_step_is_counted(
    software: TrainedModel,
) -> None:
    data = load_dataset("digits")
    options = TuneOptions(epochs=3, batch_size=100, learning_rate=0.5, trainable=1)
    with open_board("emu://?preset=sidra-y1&seed=4") as board:
        result = tune_model(software, board, data, options)
    per_epoch = math.ceil(len(data.y_train) / 100)  # 1,257 samples: 13 minibatches
    assert len(result.losses) == 3 * per_epoch
    assert len(result.epoch_accuracies) == 3 and result.stopped_at_epoch is None
    first, top = result.model.layers
    assert np.array_equal(first.weights, software.layers[0].weights)  # frozen
    assert not np.array_equal(top.weights, software.layers[1].weights)
    assert result.programs > 0 and result.counts.device_writes > 0
    assert len(result.programming) == 2  # programmed fresh: what write-verify reached
    summary = result.summary()
    assert summary["steps"] == 3 * per_epoch and summary["epochs"] == 3
    assert summary["loss_evaluations"] == 3 * per_epoch
    assert summary["placement"] == result.placement


def test_a_threshold_no_update_reaches_writes_nothing(software: TrainedModel) -> None:
    data = load_dataset("digits")
    options = TuneOptions(epochs=1, threshold_share=1.0, learning_rate=1e-4,
                          final_learning_rate=None)  # fmt: skip
    with open_board("emu://?preset=sidra-y1&seed=4") as board:
        result = tune_model(software, board, data, options)
    assert result.programs == 0 and result.counts.device_writes == 0
    assert np.array_equal(result.model.layers[1].weights, software.layers[1].weights)


def test_a_stop_ends_the_tuning_after_the_epoch_under_way(software: TrainedModel) -> None:
    data = load_dataset("digits")
    stop = threading.Event()
    stop.set()
    with open_board("emu://?preset=ideal&seed=1") as board:
        result = tune_model(software, board, data, TuneOptions(epochs=5), stop=stop)
    assert result.stopped_at_epoch == 1 and len(result.epoch_accuracies) == 1
    assert result.summary()["stopped_at_epoch"] == 1 and result.model.trained["epochs"] == 1


def test_what_cannot_be_tuned_is_refused_before_the_board_is_touched(
    software: TrainedModel,
) -> None:
    data = load_dataset("digits")
    ff_layer = ModelLayer(np.zeros((64 + 10 + 1, 8), np.float32), weight_limit=1.0, input_clip=1.0)
    goodness = TrainedModel((ff_layer,), software.inputs, "ff", {}, GoodnessReadout(1.0))
    with open_board("emu://?preset=ideal&seed=1") as board:
        writes = board.stats().cell_writes
        with pytest.raises(InvalidArgument, match=r"model.readout: got 'goodness'"):
            tune_model(goodness, board, data)
        with pytest.raises(InvalidArgument, match=r"trainable: got 3, expected 1 \.\. 2"):
            tune_model(software, board, data, TuneOptions(trainable=3))
        with pytest.raises(InvalidArgument, match=r"data: got 'iris'.*4 features"):
            tune_model(software, board, load_dataset("iris"))
        assert board.stats().cell_writes == writes


def test_the_command_tunes_a_deployment_and_keeps_it_under_its_name(
    software: TrainedModel, tmp_path: Path
) -> None:
    """``sidra model tune --deployment`` over a served board: the tuned file written, its
    tiles holding it (eval --held on them matches), and the deployment registered again
    as the tiles hold it: intact, the tuned file's, run by name as tuned."""
    from tests.jobs.jobs_support import serving

    model = tmp_path / "model.npz"
    software.save(model)
    out = tmp_path / "tuned.npz"
    with serving(tmp_path / "state.sqlite3", "emu://?preset=sidra-y1&seed=3") as address:
        sidra_json("model", "deploy", str(model), "--server", address, "--name", "digits",
                   "--tile", "2", "--tile", "3")  # fmt: skip
        shown = run_sidra("model", "tune", "--deployment", "digits", "--server", address,
                          "--out", str(out), "--epochs", "2", columns=200)  # fmt: skip
        report = sidra_json("model", "eval", str(out), "--held", "--tile", "2", "--tile", "3",
                            "--server", address)  # fmt: skip
        by_name = sidra_json("model", "eval", "--deployment", "digits", "--server", address)
        listed = sidra_json("model", "list", "--server", address)
        refused = run_sidra("model", "tune", str(model), "--out", str(out), "--server",
                            address)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    text = unwrapped(shown.stdout)
    assert f"{out.name}:thetunedmodel;tiles2,3holditnow" in text
    # The figures before and after are read otherwise than the bar's epochs, and say so.
    assert "%(16readpassesaninput;theepochs'figures4readpasses)" in text
    assert f"--held--tile2--tile3--server{address}" in text
    assert "deployment'digits':thetunedmodel,astiles2,3holdit(registeredagain" in text
    [kept] = listed
    assert kept["intact"] and kept["model_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    # The same cells, read as tuned (another pass's read noise: within a point or so).
    assert by_name["held"] and abs(by_name["accuracy"] - report["accuracy"]) <= 0.02
    tuned = TrainedModel.load(out)
    assert tuned.trained["epochs"] == 2 and report["held"]
    shown = run_sidra("model", "show", str(out), columns=200)
    assert shown.returncode == 0, shown.stderr
    assert "trained tuned_from: job imported; trained_on software; test_accuracy " in shown.stdout
    untuned = tuned.trained["untuned_test_accuracy"]
    assert f"trained untuned_test_accuracy: {100 * untuned:.2f} %" in shown.stdout
    assert report["accuracy"] >= tuned.trained["test_accuracy"] - 0.02
    assert refused.returncode == 2 and "tuned.npz,whichexists" in unwrapped(refused.stderr)
    # Its record, as a tune job keeps one: sidra runs lists it.
    (record,) = (tmp_path / "runs").iterdir()
    assert record.name.startswith("tune-") and f"recordruns/{record.name}" in text
    assert (record / "model.npz").read_bytes() == out.read_bytes()
    settings = json.loads((record / "settings.json").read_text())
    assert (settings["job"], settings["deployment"], settings["held"]) == ("tune", "digits", True)
    summary = json.loads((record / "summary.json").read_text())
    assert summary["registered"]["name"] == "digits" and summary["epochs"] == 2
    assert json.loads((record / "run.json").read_text())["server"] == address
    listed = run_sidra("runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert record.name in listed.stdout


def test_another_principal_s_deployment_is_not_tuned_from_the_command_line(
    software: TrainedModel, tmp_path: Path
) -> None:
    """bob may write alice's (unprotected) tiles but not register in her place: tuning
    her deployment rewrote its tiles and left it registered as what they no longer held.
    Refused before any tile is written, here and as a job, naming how to tune a copy."""
    from sidra.client import connect
    from sidra.server.security import Role, TokensFile
    from tests.jobs.jobs_support import serving
    from tests.server.security_support import principals

    model = tmp_path / "model.npz"
    software.save(model)
    out = tmp_path / "tuned.npz"
    tokens = principals(tmp_path / "tokens.toml", alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    with serving(tmp_path / "state.sqlite3", "emu://?preset=sidra-y1&seed=3",
                 tokens=TokensFile(tmp_path / "tokens.toml")) as address:  # fmt: skip
        deployed = run_sidra("model", "deploy", str(model), "--server", address, "--name",
                             "digits", env={"SIDRA_TOKEN": tokens["alice"]})  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        refused = [
            run_sidra(
                "model",
                "tune",
                "--deployment",
                "digits",
                "--server",
                address,
                "--out",
                str(out),
                "--epochs",
                "1",
                *remote,
                env={"SIDRA_TOKEN": tokens["bob"]},
            )  # fmt: skip
            for remote in ((), ("--remote-job",))
        ]
        with connect(address, token=tokens["alice"]) as alice:
            kept = alice.deployments.get("digits")
    for result in refused:
        assert result.returncode == 2, result.stderr
        text = unwrapped(result.stderr)
        assert "'--deployment':" in text and "PermissionDenied" not in text
        assert "onlytheyoranadminmayreplaceit:tuningitwouldrewriteitstiles" in text
        assert "sidramodelpulldigits--server" in text
        tiles = "".join(f"--tile{chr(ord('A') + i)}" for i in range(len(kept.tiles)))
        assert f"sidramodeltuneFILE{tiles}" in text  # as many as it takes (not --tile N)
    assert kept.intact and kept.principal == "alice"  # nothing written to its tiles
    assert not out.exists()


def test_ctrl_c_stops_the_command_after_its_epoch_and_writes_the_model_so_far(
    software: TrainedModel, tmp_path: Path
) -> None:
    def started(proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once Ctrl-C is taken
        assert "Ctrl-C stops after the epoch under way and writes the model so far" in line

    model, out = tmp_path / "model.npz", tmp_path / "tuned.npz"
    software.save(model)
    status, stdout, stderr = interrupted(
        "model", "tune", str(model), "--out", str(out), "--epochs", "100000", "--board",
        "emu://?preset=ideal&seed=1", "--eval-read-repeats", "1", "--json", under_way=started,
    )  # fmt: skip
    assert status == 130, stderr
    report = json.loads(stdout)
    assert report["stopped_at_epoch"] == 1 and len(report["epoch_accuracies"]) == 1
    assert TrainedModel.load(out).trained["epochs"] == 1
    said = unwrapped(f"stopped after epoch 1 of 100000: {out} holds the epochs so far")
    assert said in unwrapped(stderr)  # a long path wraps anywhere


def test_the_command_keeps_its_record_in_the_folder_named_to_compare_tunings(
    software: TrainedModel, tmp_path: Path
) -> None:
    """The record went to runs/tune-<time> only: two tunings to set side by side with
    ``sidra runs compare`` had to be found by time. ``--record`` names the folder, and a
    folder holding a record is refused before anything runs, naming --record."""
    model = tmp_path / "model.npz"
    software.save(model)
    common = ("--board", "emu://?preset=ideal&seed=1", "--eval-read-repeats", "1")
    for name, epochs in (("short", "1"), ("long", "2")):
        sidra_json("model", "tune", str(model), "--out", str(tmp_path / f"{name}.npz"),
                   "--epochs", epochs, "--record", str(tmp_path / "lab" / name),
                   *common)  # fmt: skip
    assert not (tmp_path / "runs").exists()
    short, long = tmp_path / "lab" / "short", tmp_path / "lab" / "long"
    assert (short / "model.npz").read_bytes() == (tmp_path / "short.npz").read_bytes()
    compared = sidra_json("runs", "compare", str(short), str(long))
    assert compared["settings"]["epochs"] == [1, 2]
    again = run_sidra("model", "tune", str(model), "--out", str(tmp_path / "again.npz"),
                      "--record", str(short), *common)  # fmt: skip
    assert again.returncode == 2
    assert unwrapped(f"'--record': got {short}, which holds an earlier run's record") in (
        unwrapped(again.stderr)
    )
    assert not (tmp_path / "again.npz").exists()
