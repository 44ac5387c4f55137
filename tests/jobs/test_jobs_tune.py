"""Tune jobs (SubmitJob kind "tune", ``sidra model tune --remote-job``): a model's last
layers trained again inside the server, next to the board; a deployment tuned is
registered again by the server as its tiles hold it, whether or not a client still
follows the job; bad models and options are refused naming the option; a queued tune job
keeps its model across a restart. Real server, store, board and scikit-learn data."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidra.client import connect
from sidra.drivers import InvalidArgument, PermissionDenied
from sidra.server.security import Role, TokensFile
from sidra.server.stopping import ServerStop
from sidra.training import load_dataset
from sidra.training.importing import model_from_weights
from sidra.training.model import GoodnessReadout, ModelLayer, TrainedModel
from tests.cli_support import run_sidra, unwrapped
from tests.jobs.jobs_support import first_progress, serving
from tests.server.security_support import principals
from tests.software_networks import sklearn_mlp

BOARD = "emu://?preset=sidra-y1&seed=3"
QUICK = {"epochs": 2, "batch_size": 32, "read_repeats": 1, "eval_read_repeats": 2}
"""A tuning that ends within a few seconds on iris."""


@pytest.fixture(scope="module")
def software() -> TrainedModel:
    """A 4 → 8 → 3 ReLU network trained by scikit-learn on iris, imported."""
    data = load_dataset("iris")
    weights, _ = sklearn_mlp(data.x_train, data.y_train, data.x_test, data.y_test, 8)
    return model_from_weights(weights, data)


def _sent(model: TrainedModel, **options: Any) -> dict[str, Any]:
    return {**QUICK, "model_file_base64": base64.b64encode(model.to_bytes()).decode(), **options}


def test_a_deployment_tuned_by_the_cli_as_a_job_is_kept_under_its_name(
    software: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sidra model tune --deployment NAME --remote-job``: the job tunes the tiles as they
    hold the deployment, the tuned file comes back into --out and the record into --record
    (runs/ by default), and the deployment is the tuned model, intact, run by name."""
    model, out = tmp_path / "model.npz", tmp_path / "tuned.npz"
    software.save(model)
    monkeypatch.chdir(tmp_path)  # the record goes into runs/ here
    with serving(tmp_path / "state.sqlite3", BOARD) as address:
        deployed = run_sidra("model", "deploy", str(model), "--server", address, "--name",
                             "iris", "--tile", "2", "--tile", "3")  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        tuned = run_sidra(
            "model", "tune", "--deployment", "iris", "--server", address, "--remote-job",
            "--out", str(out), "--epochs", "2", "--eval-read-repeats", "2", "--json",
            "--record", str(tmp_path / "lab" / "tuned"),
        )  # fmt: skip
        assert tuned.returncode == 0, tuned.stderr
        report = json.loads(tuned.stdout)
        with connect(address) as client:
            kept = client.deployments.get("iris")
            job = client.jobs.get(report["job_id"], include_record=True)
        by_name = run_sidra("model", "eval", "--deployment", "iris", "--server", address,
                            "--json")  # fmt: skip
        # The lab's server from SIDRA_SERVER, as every --remote-job takes it (a --deployment's
        # tune refused it: "SIDRA_SERVER is not read here").
        monkeypatch.setenv("SIDRA_SERVER", address)
        again = run_sidra(
            "model", "tune", "--deployment", "iris", "--remote-job",
            "--out", str(tmp_path / "again.npz"), "--epochs", "1", columns=200,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr
    printed = unwrapped(again.stdout)
    assert f"{tmp_path / 'again.npz'}:thetunedmodel;thejob'srecordinruns/tune-" in printed
    assert "deployment'iris':thetunedmodel,registeredagainbytheserverasitstilesholdit" in (printed)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert kept.intact and kept.model_sha256 == digest
    assert report["registered"]["model_sha256"] == digest and report["registered"]["intact"]
    assert report["placement"] == {"layer0": [2], "layer1": [3]} and report["epochs"] == 2
    assert job.kind == "tune" and job.state == "succeeded" and job.tiles == (2, 3)
    assert "model_file_base64" not in job.options and job.options["deployment"] == "iris"
    assert job.options["held"] is True
    record = Path(report["record"])
    assert record == tmp_path / "lab" / "tuned"  # --record: the job's record saved there
    assert (record / "model.npz").read_bytes() == out.read_bytes()
    settings = json.loads((record / "settings.json").read_text())
    assert settings["job"] == "tune" and settings["tuned_from"]["job"] == "imported"
    assert "model_file_base64" not in settings
    steps = (record / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + report["steps"]
    assert TrainedModel.load(out).trained["epochs"] == 2
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout)["held"]


def test_the_server_keeps_the_deployment_when_nobody_follows_the_job(
    software: TrainedModel, tmp_path: Path
) -> None:
    """Submitted and left: the job ends and registers the deployment by itself."""
    with serving(tmp_path / "state.sqlite3", BOARD) as address:
        with connect(address) as client:
            deployed = software.deploy(client, tiles=[0, 1])
            client.deployments.add("iris", software.to_bytes(), deployed.regions())
            job = client.jobs.submit(
                "tune", _sent(software, held=True, tiles=[0, 1], deployment="iris"),
                dataset="iris",
            )  # fmt: skip
        with connect(address) as later:
            done = later.jobs.wait(job.job_id)
            kept = later.deployments.get("iris")
            files = later.jobs.get(job.job_id, include_record=True).files
    assert done.state == "succeeded", done.error
    assert kept.intact and kept.model_sha256 == hashlib.sha256(files["model.npz"]).hexdigest()
    assert kept.description.startswith("tuned on iris, ")
    assert done.summary["registered"]["name"] == "iris"


def test_another_principal_s_deployment_is_refused_before_its_tiles_are_written(
    software: TrainedModel, tmp_path: Path
) -> None:
    """bob may write alice's unprotected tiles but not register in her place: his tune
    job of her deployment rewrote its tiles and left it registered as what they no longer
    held. Refused at submission now, naming options.deployment; nothing is kept."""
    tokens = principals(tmp_path / "tokens.toml", alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    with serving(tmp_path / "state.sqlite3", BOARD,
                 tokens=TokensFile(tmp_path / "tokens.toml")) as address:  # fmt: skip
        with connect(address, token=tokens["alice"]) as alice:
            deployed = software.deploy(alice, tiles=[0, 1])
            alice.deployments.add("iris", software.to_bytes(), deployed.regions())
        with connect(address, token=tokens["bob"]) as bob:
            with pytest.raises(PermissionDenied, match=r"options.deployment: deployment 'iris'"):
                bob.jobs.submit(
                    "tune", _sent(software, held=True, tiles=[0, 1], deployment="iris"),
                    dataset="iris",
                )  # fmt: skip
            assert bob.jobs.list() == []
            kept = bob.deployments.get("iris")
    assert kept.principal == "alice" and kept.intact  # nothing written to its cells
    assert kept.model_sha256 == hashlib.sha256(software.to_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        ({"model_file_base64": "not base64!"}, "options.model_file_base64", "not base64"),
        ({"model_file_base64": base64.b64encode(b"PK\x03\x04 torn").decode()},
         "options.model_file_base64", "not a model file"),
        ({"trainable": 3}, "options.trainable", "1 .. 2, the model's layers"),
        ({"model_file_base64": None}, "options.model_file_base64", ""),
        ({"goodness": True}, "options.model_file_base64", "a ReLU network"),
    ],
)  # fmt: skip
def test_what_cannot_be_tuned_is_refused_naming_the_option_and_nothing_is_kept(
    software: TrainedModel, tmp_path: Path, change: dict[str, Any], field: str, allowed: str
) -> None:
    options = _sent(software, tiles=[0, 1])
    if change.pop("goodness", False):
        ff = ModelLayer(np.zeros((4 + 3 + 1, 8), np.float32), weight_limit=1.0, input_clip=1.0)
        goodness = TrainedModel((ff,), software.inputs, "ff", {}, GoodnessReadout(1.0))
        change = {"model_file_base64": base64.b64encode(goodness.to_bytes()).decode()}
    options |= change
    options = {k: v for k, v in options.items() if v is not None}
    with serving(tmp_path / "state.sqlite3", BOARD) as address, connect(address) as client:
        with pytest.raises(InvalidArgument) as refused:
            client.jobs.submit("tune", options, dataset="iris")
        assert refused.value.field == field and allowed in refused.value.allowed
        assert client.jobs.list() == []


def test_a_data_set_the_model_does_not_take_is_refused_at_submission(
    software: TrainedModel, tmp_path: Path
) -> None:
    with serving(tmp_path / "state.sqlite3", BOARD) as address, connect(address) as client:
        with pytest.raises(InvalidArgument) as refused:
            client.jobs.submit("tune", _sent(software, tiles=[0, 1]), dataset="digits")
        assert (refused.value.field, refused.value.value) == ("dataset", "digits")
        assert "4 features and 3 classes, as the model sent takes (iris)" in (refused.value.allowed)
        assert client.jobs.list() == []


def test_a_queued_tune_job_keeps_its_model_across_a_restart(
    software: TrainedModel, tmp_path: Path
) -> None:
    """Its options whole (the model is left out of the listing) are kept while it waits,
    read back by the next server, and dropped once it starts."""
    store = tmp_path / "s.sqlite3"
    stopping = ServerStop()
    with serving(store, BOARD, stopping=stopping) as address, connect(address) as client:
        endless = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16, "tiles": [0]}
        holder = client.jobs.submit("spsa", endless, dataset="iris")
        first_progress(client, holder.job_id)
        queued = client.jobs.submit("tune", _sent(software, tiles=[0, 1]), dataset="iris",
                                    queue=True)  # fmt: skip
        assert queued.state == "queued" and "model_file_base64" not in queued.options
        stopping.run(30.0)
    db = sqlite3.connect(store)
    (whole,) = db.execute(
        "SELECT queued_options_json FROM jobs WHERE id = ?", (queued.job_id,)
    ).fetchone()
    db.close()
    assert json.loads(whole)["model_file_base64"] == _sent(software)["model_file_base64"]
    with serving(store, BOARD) as address, connect(address) as client:
        done = client.jobs.wait(queued.job_id)
        assert done.state == "succeeded", done.error
    db = sqlite3.connect(store)
    kept = db.execute("SELECT queued_options_json FROM jobs WHERE id = ?", (queued.job_id,))
    assert kept.fetchone() == (None,)
    db.close()


def test_the_cli_refuses_a_remote_tune_without_a_server(
    software: TrainedModel, tmp_path: Path
) -> None:
    model = tmp_path / "model.npz"
    software.save(model)
    refused = run_sidra("model", "tune", str(model), "--remote-job", "--out",
                        str(tmp_path / "t.npz"), env={"SIDRA_SERVER": None})  # fmt: skip
    assert refused.returncode == 2
    assert "--remote-jobrunsthejobinsideaserver:give--server" in unwrapped(refused.stderr)
    queued = run_sidra("model", "tune", str(model), "--queue", "--out", str(tmp_path / "u.npz"))
    assert queued.returncode == 2 and "--queue" in queued.stderr
