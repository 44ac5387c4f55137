"""A job that stops early keeps a checkpoint, and a new job goes on from it (jobs.proto,
"Going on from a checkpoint"): a job whose board went away, or that was cancelled at a
boundary, keeps ``checkpoint.json`` among its record files; a SubmitJob that sends it
back goes on and, on the ideal board, ends as the uninterrupted job does. The
checkpoint is the same file ``sidra train --out`` saves, so runs move between the
client and the server both ways. A checkpoint that is not one of that run is refused
naming the field, and no job is made.

The board that goes away is the virtual serial board unplugged after a number of host
frames (its fault, at the lowest layer), for good; the job that goes on runs on another
server, with its own store, as after a restart.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidra.client import JobInfo, RemoteBoard, connect
from sidra.drivers import Board, InvalidArgument, open_board
from sidra.training import (
    EqPropOptions,
    FFOptions,
    MLPOptions,
    SPSAOptions,
    load_dataset,
    train_eqprop,
    train_forward_forward,
    train_mlp,
    train_softmax_spsa,
)
from sidra.training.jobs import TrainingJobs
from sidra.training.records import array_to_json
from tests.cli_support import process, run_sidra, unwrapped
from tests.jobs.jobs_support import serving
from tests.test_epochs_board_lost import unplugged_after

IDEAL_URL = "emu://?preset=ideal&seed=0"

KINDS: dict[str, tuple[dict[str, Any], int]] = {
    "spsa": ({"steps": 40, "eval_every": 10, "batch_size": 16}, 200),
    "last-layer": ({"epochs": 4, "hidden": 16}, 60),
    "mlp": ({"epochs": 4, "hidden": [16]}, 150),
    "ff": ({"epochs": 4, "hidden": [16], "eval_every": 2}, 60),
    "eqprop": ({"epochs": 4, "hidden": [16]}, 500),
}
"""Each kind that keeps a checkpoint, its options on iris, and the host frames after
which the board goes, some way into the run."""


@contextmanager
def served(board: Board, store: Path) -> Iterator[RemoteBoard]:
    with serving(store, board) as address, connect(address) as client:
        yield client


def finished(client: RemoteBoard, kind: str, options: dict[str, Any], **submit: Any) -> JobInfo:
    job = client.jobs.submit(kind, options, dataset="iris", **submit)
    list(client.jobs.watch(job.job_id))
    return client.jobs.get(job.job_id, include_record=True)


def run_job(
    board: Board, store: Path, kind: str, options: dict[str, Any], **submit: Any
) -> JobInfo:
    with served(board, store) as client:
        return finished(client, kind, options, **submit)


def weights(job: JobInfo) -> np.ndarray:
    return np.load(io.BytesIO(job.files["weights.npy"]))


def assert_ends_as(resumed: JobInfo, whole: JobInfo) -> None:
    """The same run: weights bit for bit, every step's loss, every test checkpoint."""
    assert resumed.state == whole.state == "succeeded", resumed.error
    assert np.array_equal(weights(resumed), weights(whole))
    assert resumed.files["steps.csv"] == whole.files["steps.csv"]
    for key in ("steps", "test_accuracy", "train_accuracy", "loss_evaluations"):
        assert resumed.summary[key] == whole.summary[key], key
    assert "checkpoint.json" not in resumed.files  # nothing left to go on from


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_job_whose_board_went_goes_on_from_its_checkpoint(kind: str, tmp_path: Path) -> None:
    options, frames = KINDS[kind]
    with open_board(IDEAL_URL) as board:
        whole = run_job(board, tmp_path / "whole.sqlite3", kind, options)
        passes = board.stats().mvm_passes
    with unplugged_after(frames) as board:
        lost = run_job(board, tmp_path / "lost.sqlite3", kind, options)
    assert lost.state == "failed" and lost.error.startswith("BoardUnavailable: ")
    assert "checkpoint.json, which a job submitted with it (resume_checkpoint)" in lost.error
    unit = "step" if kind == "spsa" else "epoch"
    done = lost.summary[f"interrupted_at_{unit}"]
    saved = json.loads(lost.files["checkpoint.json"])
    assert saved["settings"]["dataset"] == "iris"
    if kind == "spsa":
        # SPSA keeps its checkpoint alone, beside what ran it
        assert lost.files.keys() == {"checkpoint.json", "run.json"}
        assert saved["optimizer"]["k"] == done
    else:
        assert saved["epoch"] == done and "weights.npy" in lost.files
    with open_board(IDEAL_URL) as board:  # another server: the board is back
        resumed = run_job(
            board, tmp_path / "resumed.sqlite3", kind, options,
            resume_checkpoint=lost.files["checkpoint.json"],
        )  # fmt: skip
        assert board.stats().mvm_passes < passes  # the steps made are not made again
    assert_ends_as(resumed, whole)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("spsa", {"steps": 3000, "eval_every": 1000, "batch_size": 16}),
        ("mlp", {"epochs": 60, "hidden": [16]}),
    ],
)
def test_a_cancelled_job_keeps_its_checkpoint_and_goes_on_to_the_end(
    kind: str, options: dict[str, Any], tmp_path: Path
) -> None:
    with open_board(IDEAL_URL) as board, served(board, tmp_path / "s.sqlite3") as client:
        whole = finished(client, kind, options)
        passes = board.stats().mvm_passes
        job = client.jobs.submit(kind, options, dataset="iris")
        for event in client.jobs.watch(job.job_id):
            if event.kind == "progress":
                client.jobs.cancel(job.job_id)
                break
        list(client.jobs.watch(job.job_id))
        cancelled = client.jobs.get(job.job_id, include_record=True)
        assert cancelled.state == "cancelled", cancelled.error
        assert "checkpoint.json" in cancelled.files
        before = board.stats().mvm_passes
        resumed = finished(
            client, kind, options, resume_checkpoint=cancelled.files["checkpoint.json"]
        )
        assert board.stats().mvm_passes - before < passes  # the steps made are not made again
    assert_ends_as(resumed, whole)
    unit = "step" if kind == "spsa" else "epoch"
    assert 0 < cancelled.summary[f"stopped_at_{unit}"] < whole.summary["steps"]


# -- refused checkpoints -----------------------------------------------------------


TRAINERS: dict[str, tuple[Callable[..., Any], Any]] = {
    "spsa": (train_softmax_spsa, SPSAOptions(**KINDS["spsa"][0])),
    "mlp": (train_mlp, MLPOptions(epochs=4, hidden=(16,))),
    "ff": (train_forward_forward, FFOptions(epochs=4, hidden=(16,), eval_every=2)),
    "eqprop": (train_eqprop, EqPropOptions(epochs=4, hidden=(16,))),
}
"""Trainers whose checkpoints the hostile tests damage: each kind of optimizer state."""


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real checkpoints of runs on iris stopped after their first step or epoch."""
    folder = tmp_path_factory.mktemp("checkpoints")
    data = load_dataset("iris")
    stop = threading.Event()
    stop.set()  # at the first boundary
    with open_board(IDEAL_URL) as board:
        for kind, (train, options) in TRAINERS.items():
            train(board, data, options, checkpoint=folder / f"{kind}.json", stop=stop)
    return {kind: (folder / f"{kind}.json").read_bytes() for kind in TRAINERS}


def _edited(
    kind: str, edit: Callable[[dict[str, Any]], Any]
) -> Callable[[dict[str, bytes]], bytes]:
    def made(checkpoints: dict[str, bytes]) -> bytes:
        saved = json.loads(checkpoints[kind])
        edit(saved)
        return json.dumps(saved).encode()

    return made


MLP = {"epochs": 4, "hidden": [16]}
NOT_FINITE = np.full((5, 16), np.nan, np.float32)
REFUSED: dict[str, tuple[str, dict[str, Any], str, Callable[[dict[str, bytes]], bytes], str]] = {
    "a kind that keeps none": (
        "compare", {"budget": 40, "seeds": [0], "methods": ["last-layer"]}, "iris",
        lambda c: c["mlp"], "a compare job keeps no checkpoint",
    ),
    "another job's": ("last-layer", {"epochs": 4, "hidden": 16}, "iris", lambda c: c["mlp"],
                      "a checkpoint of a mlp run, not of last-layer"),
    "other options": ("mlp", MLP | {"epochs": 5}, "iris", lambda c: c["mlp"],
                      "options differ from the run's: epochs: the run's 4, given 5"),
    "another data set": ("mlp", MLP, "wine", lambda c: c["mlp"],
                         "a run on data set 'iris', not 'wine'"),
    "not UTF-8": ("mlp", MLP, "iris", lambda c: b"\xff\xfe{}", "not UTF-8 text"),
    "nested without end": ("mlp", MLP, "iris", lambda c: b"[" * 100_000, "cannot be read"),
    "an SPSA checkpoint for mlp": ("mlp", MLP, "iris", lambda c: c["spsa"],
                                  "a checkpoint of a spsa run, not of mlp"),
    "an mlp checkpoint for spsa": ("spsa", {"steps": 20}, "iris", lambda c: c["mlp"],
                                   "a checkpoint of a mlp run, not of spsa"),
    "weights not finite": (
        "mlp", MLP, "iris",
        _edited("mlp", lambda s: s["weights"].__setitem__(0, array_to_json(NOT_FINITE))),
        "weights that are not finite",
    ),
    "an epoch beyond the run": ("mlp", MLP, "iris", _edited("mlp", lambda s: s.update(epoch=9)),
                                "epoch 9, expected 1 .. 4"),
    "a test checkpoint of text": (
        "mlp", MLP, "iris",
        _edited("mlp", lambda s: s["checkpoints"][0].update(step="many")),
        "not a whole epoch checkpoint",
    ),
    "a generator no generator takes": (
        "mlp", MLP, "iris",
        _edited("mlp", lambda s: s["generator"].update(bit_generator="Nope")),
        "not a whole epoch checkpoint",
    ),
    "an SPSA step beyond the run": (
        "spsa", KINDS["spsa"][0], "iris",
        _edited("spsa", lambda s: s["optimizer"].update(k=10**12)),
        "optimizer k: 1000000000000, expected 0 .. 40",
    ),
    "SPSA weights of another shape": (
        "spsa", KINDS["spsa"][0], "iris",
        _edited("spsa", lambda s: s["optimizer"].update(x=[[0.0] * 3] * 4)),
        "weights of shape [4, 3], expected [5, 3]",
    ),
    "an SPSA gain of zero": (
        "spsa", KINDS["spsa"][0], "iris", _edited("spsa", lambda s: s["settings"].update(c=0)),
        "gain c: 0, expected a finite number > 0",
    ),
}  # fmt: skip
"""Each refusal: the job submitted, the checkpoint sent and what the error says."""


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_checkpoint_not_of_that_run_is_refused_naming_the_field(
    case: str, checkpoints: dict[str, bytes], tmp_path: Path
) -> None:
    kind, options, dataset, made, said = REFUSED[case]
    sent = made(checkpoints)
    with open_board(IDEAL_URL) as board, served(board, tmp_path / "s.sqlite3") as client:
        with pytest.raises(InvalidArgument) as refused:
            client.jobs.submit(kind, options, dataset=dataset, resume_checkpoint=sent)
        assert client.jobs.list() == []  # no job made
        assert board.stats().cell_writes == 0  # nothing programmed
    assert refused.value.field == "resume_checkpoint"
    assert refused.value.value == f"{len(sent)} bytes"
    assert said in str(refused.value)


def test_the_client_refuses_a_checkpoint_that_is_not_bytes(tmp_path: Path) -> None:
    with open_board(IDEAL_URL) as board, served(board, tmp_path / "s.sqlite3") as client:
        with pytest.raises(InvalidArgument) as bad:
            client.jobs.submit("mlp", MLP, resume_checkpoint="checkpoint.json")  # type: ignore[arg-type]
        assert client.jobs.list() == []
    assert bad.value.field == "resume_checkpoint"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``value`` a value can be put (keys and list indexes)."""
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:3]):
            found += _paths(inner, (*at, index))
    return found


def _damaged(saved: Any, data: st.DataObject) -> tuple[Any, ...]:
    """One value of ``saved`` replaced (or removed) by any JSON; where."""
    where = data.draw(st.sampled_from([p for p in _paths(saved) if p]))
    parent = saved
    for step in where[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON)
    return where


@pytest.mark.parametrize("kind", list(TRAINERS))
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_damaged_checkpoint_is_refused_with_a_value_error_or_taken_whole(
    kind: str, checkpoints: dict[str, bytes], data: st.DataObject
) -> None:
    """Any one value of a real checkpoint replaced (or removed) by any JSON: the check a
    SubmitJob makes raises ValueError saying what is wrong, never anything else."""
    saved = json.loads(checkpoints[kind])
    _damaged(saved, data)
    try:
        TrainingJobs().check_resume(kind, TRAINERS[kind][1], "iris", json.dumps(saved).encode())
    except ValueError as exc:
        assert str(exc).startswith("the one sent: ")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a moment taken so large it overflows
@pytest.mark.parametrize("kind", list(TRAINERS))
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_damaged_checkpoint_the_check_takes_runs_without_a_crash(
    kind: str, checkpoints: dict[str, bytes], data: st.DataObject, tmp_path: Path
) -> None:
    """What the check lets through (a loss, a count, a test accuracy changed: values a
    run may hold) goes on to the end, or stops at a value the board refuses (an Adam
    moment so large that the weights overflow: InvalidArgument, a ValueError); never a
    TypeError or KeyError half-way through a job."""
    saved = json.loads(checkpoints[kind])
    where = _damaged(saved, data)
    train, options = TRAINERS[kind]
    try:
        TrainingJobs().check_resume(kind, options, "iris", json.dumps(saved).encode())
    except ValueError:
        return
    path = tmp_path / f"{kind}-{abs(hash(where))}.json"
    path.write_text(json.dumps(saved))
    with open_board(IDEAL_URL) as board, contextlib.suppress(ValueError):
        train(board, load_dataset("iris"), options, checkpoint=path, resume=True)


# -- sidra train --remote-job --resume ----------------------------------------------


def test_sidra_train_goes_on_as_a_job_from_a_job_that_lost_its_board(tmp_path: Path) -> None:
    """``sidra train mlp --remote-job`` whose board goes: the record and checkpoint saved
    in --out, how to go on said, exit 1; the same command with --resume against a server
    whose board is back sends the checkpoint and ends as the uninterrupted run."""
    out, whole_out = tmp_path / "run", tmp_path / "whole"
    command = ["train", "mlp", "--remote-job", "--dataset", "iris", "--hidden", "16",
               "--epochs", "4", "--json"]  # fmt: skip
    faults = "unplug_after=150,unplug_s=inf"
    with process("board", "serve", "--pty", "--preset", "ideal", "--faults", faults) as (url, _):
        board = f"{url}?timeout=0.05&retries=1"
        with open_board(board) as unplugging, served(unplugging, tmp_path / "a.sqlite3") as c:
            address = c.address
            lost = run_sidra(*command, "--server", address, "--out", str(out))
    assert lost.returncode == 1, lost.stderr
    said = unwrapped(lost.stderr)
    assert unwrapped(f"the same command with --resume --out {out} goes on") in said
    assert (out / "checkpoint.json").is_file() and (out / "weights.npy").is_file()
    with open_board(IDEAL_URL) as board, served(board, tmp_path / "b.sqlite3") as client:
        address = client.address
        resumed = run_sidra(*command, "--server", address, "--out", str(out), "--resume")
        whole = run_sidra(*command, "--server", address, "--out", str(whole_out))
    assert resumed.returncode == 0, resumed.stderr
    assert whole.returncode == 0, whole.stderr
    assert np.array_equal(np.load(out / "weights.npy"), np.load(whole_out / "weights.npy"))
    assert (out / "steps.csv").read_bytes() == (whole_out / "steps.csv").read_bytes()
    # Run to its end: the checkpoint it went on from is gone, so a second --resume cannot
    # train the same steps again over the finished record.
    assert not (out / "checkpoint.json").exists()


def test_a_run_from_here_goes_on_as_a_job(tmp_path: Path) -> None:
    """The checkpoint ``sidra train mlp`` saves when it stops early is the one a job goes
    on from: the run started from the client ends inside the server."""
    out = tmp_path / "run"
    stopped_at = 2
    data = load_dataset("iris")
    stop = threading.Event()
    options = MLPOptions(epochs=4, hidden=(16,))
    with open_board(IDEAL_URL) as board:
        whole = train_mlp(board, data, options)
        passes = board.stats().mvm_passes
    with open_board(IDEAL_URL) as board:
        train_mlp(
            board, data, options, checkpoint=out / "checkpoint.json", stop=stop,
            on_epoch=lambda epoch, _: stop.set() if epoch == stopped_at else None,
        )  # fmt: skip
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] == stopped_at
    with open_board(IDEAL_URL) as board:
        resumed = run_job(
            board, tmp_path / "s.sqlite3", "mlp", MLP,
            resume_checkpoint=(out / "checkpoint.json").read_bytes(),
        )  # fmt: skip
        assert board.stats().mvm_passes < passes  # the epochs made are not made again
    assert resumed.state == "succeeded", resumed.error
    assert whole.weights is not None and np.array_equal(weights(resumed), whole.weights)
    assert resumed.summary["steps"] == whole.steps


# -- pat: going on needs the twin it trained with -----------------------------------


def _pat_options() -> dict[str, Any]:
    from sidra.characterize.toml import dumps
    from sidra.emulator import preset

    return {
        "hidden": [16], "epochs": 4, "board_epochs": 3, "batch_size": 64, "read_repeats": 1,
        "eval_read_repeats": 1, "cosine_every": 1000,
        "twin_profile_toml": dumps(preset("ideal").model_dump(mode="json")),
    }  # fmt: skip


def test_a_pat_job_goes_on_with_the_twin_it_was_sent(tmp_path: Path) -> None:
    """The twin's epoch is not run again: the board's epochs go on from the checkpoint."""
    options = _pat_options()
    with open_board(IDEAL_URL) as board:
        whole = run_job(board, tmp_path / "whole.sqlite3", "pat", options)
    with unplugged_after(60) as board:
        lost = run_job(board, tmp_path / "lost.sqlite3", "pat", options)
    assert lost.state == "failed", lost.error
    assert 2 <= lost.summary["interrupted_at_epoch"] < 4  # the twin's and a board epoch
    assert {"checkpoint.json", "twin.toml"} <= lost.files.keys()
    checkpoint = lost.files["checkpoint.json"]
    with open_board(IDEAL_URL) as board, served(board, tmp_path / "back.sqlite3") as client:
        without_twin = {k: v for k, v in options.items() if k != "twin_profile_toml"}
        with pytest.raises(InvalidArgument, match="needs the twin it trained with"):
            client.jobs.submit("pat", without_twin, dataset="iris", resume_checkpoint=checkpoint)
        resumed = finished(client, "pat", options, resume_checkpoint=checkpoint)
    assert_ends_as(resumed, whole)
