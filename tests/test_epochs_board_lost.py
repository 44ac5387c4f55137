"""A run in epochs whose board goes away mid-way keeps the epochs it made: its record
up to its last whole epoch, saying so, from Python, from ``sidra train`` and from a job
inside the server. Before, the run and everything it measured were lost with the board.

The board is the virtual serial board unplugged after a number of host frames (its
fault, at the lowest layer), for good: ``unplug_s=inf``.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidra.characterize import characterize
from sidra.characterize.toml import dumps
from sidra.cli.twin import twin_physics
from sidra.client import connect
from sidra.drivers import Board, BoardUnavailable, InvalidArgument, open_board
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig
from sidra.server.app import create_server
from sidra.server.state import StateStore
from sidra.server.state.jobs import JobRecords
from sidra.training import (
    EqPropOptions,
    FFOptions,
    LastLayerOptions,
    MLPOptions,
    PATOptions,
    RunInterrupted,
    TrainedModel,
    TrainingRecord,
    load_dataset,
    train_eqprop,
    train_forward_forward,
    train_last_layer,
    train_mlp,
    train_pat,
)
from sidra.training.records import array_from_json, array_to_json
from tests.cli_support import SIDRA, process, run_sidra, unwrapped

EPOCHS = 4

Trainer = Callable[..., TrainingRecord]
TRAINERS: dict[str, tuple[Trainer, Any, int]] = {
    "last-layer": (train_last_layer, LastLayerOptions(epochs=EPOCHS, hidden=16), 60),
    "mlp": (train_mlp, MLPOptions(epochs=EPOCHS, hidden=(16,)), 150),
    "ff": (train_forward_forward, FFOptions(epochs=EPOCHS, hidden=(16,), eval_every=2), 60),
    "eqprop": (train_eqprop, EqPropOptions(epochs=EPOCHS, hidden=(16,)), 500),
}
"""Each trainer on iris: its options and the host frames after which the board goes,
some way into the run (the frames an epoch takes differ by trainer)."""


@contextmanager
def unplugged_after(frames: int, board_preset: str = "ideal", seed: int = 0) -> Iterator[Board]:
    """A serial board that goes away for good after ``frames`` host frames; a short
    timeout, so the driver gives up within a second."""
    faults = FaultConfig(unplug_after=frames, unplug_s=math.inf)
    with (
        serve_virtual_board(preset(board_preset), seed, faults=faults) as server,
        open_board(f"{server.url}?timeout=0.05&retries=1") as board,
    ):
        yield board


def _kept(lost: RunInterrupted) -> TrainingRecord:
    assert isinstance(lost.cause, BoardUnavailable)
    assert lost.unit == "epoch" and lost.record is not None
    record = lost.record
    assert record.settings["interrupted_at_epoch"] == lost.steps
    assert record.settings["interrupted_by"].startswith("BoardUnavailable: ")
    return record


@pytest.mark.parametrize("job", list(TRAINERS))
def test_a_run_that_loses_its_board_keeps_its_whole_epochs(job: str, tmp_path: Path) -> None:
    """The record as it stood after the last whole epoch: its losses, checkpoints and
    counts, the output layer's weights; step for step what the uninterrupted run made
    first; saved as any record is."""
    train, options, frames = TRAINERS[job]
    data = load_dataset("iris")
    with unplugged_after(frames) as board, pytest.raises(RunInterrupted) as lost:
        train(board, data, options)
    record = _kept(lost.value)
    assert lost.value.checkpoint is None  # none asked for: the record alone
    done = lost.value.steps
    assert 1 <= done < EPOCHS
    steps_per_epoch = -(-len(data.x_train) // options.batch_size)
    assert record.steps == len(record.losses) == done * steps_per_epoch
    assert record.checkpoints and record.checkpoints[-1].step <= record.steps
    assert record.test_accuracy == record.checkpoints[-1].test_accuracy
    assert record.train_accuracy == 0.0  # the board that would measure it is gone
    assert record.weights is not None and record.device_writes > 0 and record.mvm_calls > 0
    assert record.loss_evaluations > 0
    # The run uninterrupted on the same (ideal) board made these steps first.
    with open_board("emu://?preset=ideal&seed=0") as again:
        whole = train(again, data, options)
    assert record.losses == pytest.approx(whole.losses[: record.steps], rel=1e-5)
    assert record.checkpoints == whole.checkpoints[: len(record.checkpoints)]
    summary = record.summary()
    assert summary["interrupted_at_epoch"] == done
    assert "BoardUnavailable" in summary["interrupted_by"]
    record.save(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert saved["interrupted_at_epoch"] == done


def test_a_board_that_goes_before_the_first_epoch_ends_raises_its_own_error() -> None:
    """Nothing whole to keep: the board's error, as before."""
    with unplugged_after(20) as board, pytest.raises(BoardUnavailable):
        train_mlp(board, load_dataset("iris"), MLPOptions(epochs=EPOCHS, hidden=(16,)))


def test_a_refused_value_is_not_taken_for_a_board_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """An InvalidArgument after the first epoch is the run's own mistake: raised as it
    is, not kept as an interrupted run."""
    from sidra.training import hybrid

    calls = {"n": 0}
    original = hybrid.HybridNetwork.predict

    def refuse_second(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise InvalidArgument("voltages", "nan", "finite values")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(hybrid.HybridNetwork, "predict", refuse_second)
    with open_board("emu://?preset=ideal") as board, pytest.raises(InvalidArgument):
        train_last_layer(board, load_dataset("iris"), LastLayerOptions(epochs=EPOCHS, hidden=16))


def _twin_file(url: str, folder: Path) -> Any:
    with open_board(url) as board:
        profile = characterize(board, drift=False).profile
    path = folder / "twin.toml"
    path.write_text(dumps(profile.model_dump(mode="json"), "twin"), encoding="utf-8")
    return twin_physics(profile), path


@pytest.mark.parametrize(
    ("case", "frames", "kept_epoch"),
    [("board-epochs", 60, None), ("before-a-board-epoch", 3, 2), ("in-silico", 3, 3)],
)
def test_pat_keeps_the_twin_s_epochs_and_the_board_s(
    case: str, frames: int, kept_epoch: int | None, tmp_path: Path
) -> None:
    """Physics-aware training whose board goes: during its board epochs, the twin's
    epochs and the board's whole ones in one record; before the board made one, or while
    the in-silico weights are deployed, the twin's epochs, their accuracies the twin's."""
    twin, path = _twin_file("emu://?preset=ideal&seed=0", tmp_path)
    data = load_dataset("iris")
    options = PATOptions(hidden=(16,), epochs=3, board_epochs=1, in_silico=case == "in-silico")
    if case == "board-epochs":
        options = options.model_copy(update={"epochs": 5, "board_epochs": 3})
    steps_per_epoch = -(-len(data.x_train) // options.batch_size)
    with (
        unplugged_after(frames) as board,
        open_board(f"emu://?profile={path}&seed=9") as twin_board,
        pytest.raises(RunInterrupted) as lost,
    ):
        train_pat(board, twin, data, options, twin_board=twin_board)
    record = _kept(lost.value)
    assert record.settings["twin_stuck_cells"] == twin.stuck_cells
    done = lost.value.steps
    if kept_epoch is None:  # the board's epochs after the twin's two
        assert options.twin_epochs < done < options.epochs
        assert record.measures["twin_epochs"] == options.twin_epochs
        assert record.steps == done * steps_per_epoch
        assert record.checkpoints[0].step == (options.twin_epochs + 1) * steps_per_epoch
        board_steps = (done - options.twin_epochs) * steps_per_epoch
    else:
        assert done == kept_epoch
        assert record.steps == kept_epoch * steps_per_epoch
        assert record.test_accuracy == 0.0 and record.device_writes == 0  # none on the board
        assert record.measures["twin_test_accuracy"] > 0.3
        board_steps = 0
    assert record.measures["board_steps"] == board_steps  # each arm's steps, kept too
    assert record.measures["twin_steps"] == record.steps - board_steps


def test_sidra_train_saves_the_epochs_made_and_exits_1(tmp_path: Path) -> None:
    """``sidra train mlp`` whose board goes: the record of the whole epochs and a
    checkpoint in --out, the summary printed (--json), the board's error, where the
    record is and how to go on said; exit 1. The same command again is refused (it
    would write over that record); with --resume it goes on to the end."""
    out = tmp_path / "run"
    faults = "unplug_after=150,unplug_s=inf"
    with process("board", "serve", "--pty", "--preset", "ideal", "--faults", faults) as (url, _):
        lost = run_sidra(
            "train", "mlp", "--board", f"{url}?timeout=0.05&retries=1", "--dataset", "iris",
            "--hidden", "16", "--epochs", str(EPOCHS), "--out", str(out), "--json",
        )  # fmt: skip
    assert lost.returncode == 1, lost.stderr
    said = unwrapped(lost.stderr)
    assert "Traceback" not in said
    summary = json.loads(lost.stdout)
    done = summary["interrupted_at_epoch"]
    assert 1 <= done < EPOCHS and summary["record"] == str(out)
    assert unwrapped("sidra train: BoardUnavailable:") in said
    assert unwrapped(f"the board went away after epoch {done} of {EPOCHS}") in said
    assert unwrapped(f"the record of the epochs made is in {out}") in said
    assert unwrapped(f"the same command with --resume --out {out} goes on") in said
    settings = json.loads((out / "settings.json").read_text())
    assert settings["interrupted_at_epoch"] == done and settings["dataset"] == "iris"
    assert (out / "weights.npy").is_file() and (out / "plot.png").is_file()
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] == done
    # The network as it stood after that epoch: on another ideal board it scores what
    # that epoch's checkpoint measured.
    model = TrainedModel.load(out / "model.npz")
    data = load_dataset("iris")
    with open_board("emu://?preset=ideal&seed=4") as other:
        scored = model.deploy(other).evaluate(data.x_test, data.y_test)
    assert scored.accuracy == summary["test_accuracy"]
    again = ["train", "mlp", "--board", "emu://?preset=ideal", "--dataset", "iris",
             "--hidden", "16", "--epochs", str(EPOCHS), "--out", str(out)]  # fmt: skip
    refused = run_sidra(*again)
    assert refused.returncode == 2
    assert unwrapped("holds an earlier run's record") in unwrapped(refused.stderr)
    assert unwrapped("or --resume to go on from it") in unwrapped(refused.stderr)
    resumed = run_sidra(*again, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    finished = json.loads(resumed.stdout)
    assert finished["steps"] == summary["steps"] // done * EPOCHS
    assert "interrupted_at_epoch" not in finished and finished["train_accuracy"] > 0


def test_a_job_that_loses_its_board_fails_keeping_its_record(tmp_path: Path) -> None:
    """A job inside the server whose board goes: it fails, its error the board's and how
    far it got, and its record of the whole epochs is in the store, as a finished job's."""
    store_path = tmp_path / "state.sqlite3"
    with unplugged_after(150) as board, StateStore(store_path) as store:
        server, port = create_server(board, store=store)
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as client:
                options = {"epochs": EPOCHS, "hidden": [16]}
                job = client.jobs.submit("mlp", options, dataset="iris")
                events = list(client.jobs.watch(job.job_id))
                done = client.jobs.get(job.job_id, include_record=True)
        finally:
            server.stop(grace=None).wait()
    assert events[-1].state == done.state == "failed", [e.message for e in events]
    assert done.error.startswith("BoardUnavailable: ")
    assert "epochs made are kept in the run's record" in done.error
    epochs = done.summary["interrupted_at_epoch"]
    assert 1 <= epochs < EPOCHS
    settings = json.loads(done.files["settings.json"])
    assert settings["interrupted_at_epoch"] == epochs and settings["job"] == "mlp"
    with StateStore(store_path, read_only=True) as store:
        stored = JobRecords(store).get(job.job_id, with_files=True)
    assert stored is not None and stored.state == "failed" and stored.files == done.files


def test_a_comparison_that_loses_its_board_raises_the_board_s_error() -> None:
    """A comparison keeps whole runs only: a run cut short by its board ends it with the
    board's error, as before, not with that run's partial record."""
    from sidra.training import CompareOptions, compare_methods

    options = CompareOptions(budget=40, seeds=[0], methods=["last-layer"])
    with unplugged_after(60) as board, pytest.raises(BoardUnavailable):
        compare_methods(board, load_dataset("iris"), options)


RESUMABLE = TRAINERS | {
    "ff-spsa": (
        train_forward_forward,
        FFOptions(epochs=EPOCHS, hidden=(16,), eval_every=2, estimator="spsa"),
        60,
    ),
}
"""The trainers that go on from a checkpoint (``--resume``): every one but pat's; ff
with both of its estimators (SPSA's gains go on from the step they reached)."""


@pytest.mark.parametrize("job", list(RESUMABLE))
def test_a_run_that_loses_its_board_goes_on_from_its_checkpoint(job: str, tmp_path: Path) -> None:
    """Saved at the last whole epoch when the board goes, and gone on with on a board
    again, the run ends as the uninterrupted one does on the ideal board: the same
    weights, losses, test checkpoints, loss evaluations and measures."""
    train, options, frames = RESUMABLE[job]
    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    with open_board("emu://?preset=ideal&seed=0") as board:
        whole = train(board, data, options)
    with unplugged_after(frames) as board, pytest.raises(RunInterrupted) as lost:
        train(board, data, options, checkpoint=path)
    assert lost.value.checkpoint == path
    assert json.loads(path.read_text())["epoch"] == lost.value.steps < EPOCHS
    with open_board("emu://?preset=ideal&seed=0") as board:
        resumed = train(board, data, options, checkpoint=path, resume=True)
    assert resumed.weights is not None and whole.weights is not None
    assert np.array_equal(resumed.weights, whole.weights)
    assert resumed.losses == whole.losses
    steps = [(c.step, c.test_accuracy) for c in resumed.checkpoints]
    assert steps == [(c.step, c.test_accuracy) for c in whole.checkpoints]
    assert resumed.loss_evaluations == whole.loss_evaluations
    assert resumed.test_accuracy == whole.test_accuracy
    assert resumed.train_accuracy == whole.train_accuracy
    assert resumed.measures == whole.measures
    # The layers programmed again going on count where a run counts its first Program.
    assert resumed.device_writes >= whole.device_writes


@pytest.mark.parametrize("job", list(RESUMABLE))
def test_a_run_asked_to_stop_saves_its_checkpoint_and_goes_on_to_the_end(
    job: str, tmp_path: Path
) -> None:
    """``stop`` set during epoch 2 (Ctrl-C in ``sidra train``): the run ends there,
    evaluated, and saves its checkpoint; gone on with, it ends as the uninterrupted run."""
    train, options, _ = RESUMABLE[job]
    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    stop = threading.Event()
    with open_board("emu://?preset=ideal&seed=0") as board:
        whole = train(board, data, options)
        stopped = train(
            board, data, options, checkpoint=path, stop=stop,
            on_epoch=lambda epoch, _: stop.set() if epoch == 2 else None,
        )  # fmt: skip
        resumed = train(board, data, options, checkpoint=path, resume=True)
    assert stopped.settings["stopped_at_epoch"] == 2
    assert json.loads(path.read_text())["epoch"] == 2
    assert resumed.losses == whole.losses and "stopped_at_epoch" not in resumed.settings
    assert resumed.weights is not None and whole.weights is not None
    assert np.array_equal(resumed.weights, whole.weights)


def test_a_checkpoint_of_another_run_is_refused_naming_it(tmp_path: Path) -> None:
    """Going on with other options, or as another job, would not be that run."""
    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    options = MLPOptions(epochs=EPOCHS, hidden=(16,))
    stop = threading.Event()
    stop.set()  # stops after the first epoch, saving the checkpoint
    with open_board("emu://?preset=ideal&seed=0") as board:
        train_mlp(board, data, options, checkpoint=path, stop=stop)
        differ = r"options differ from the run's: learning_rate: the run's 0\.1, given 0\.5 \("
        with pytest.raises(ValueError, match=differ):
            train_mlp(
                board, data, options.model_copy(update={"learning_rate": 0.5}),
                checkpoint=path, resume=True,
            )  # fmt: skip
        with pytest.raises(ValueError, match="a checkpoint of a mlp run, not of last-layer"):
            train_last_layer(board, data, LastLayerOptions(), checkpoint=path, resume=True)
        with pytest.raises(ValueError, match="cannot be read"):
            train_mlp(board, data, options, checkpoint=tmp_path / "none.json", resume=True)


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (("--resume",), "--resume needs --out"),
        (
            ("--resume", "--remote-job", "--server", "127.0.0.1:1", "--out", "/nonexistent/run"),
            "'--out': got /nonexistent/run: no checkpoint.json there to go on from",
        ),
    ],
)
def test_resume_without_a_folder_or_its_checkpoint_is_a_usage_error(
    extra: tuple[str, ...], said: str
) -> None:
    refused = run_sidra("train", "last-layer", "--dataset", "iris", *extra)
    assert refused.returncode == 2, refused.stderr
    assert unwrapped(said) in unwrapped(refused.stderr)


def _dropped(key: str) -> Callable[[Any], Any]:
    def edit(saved: Any) -> Any:
        del saved[key]
        return saved

    return edit


def _set(key: str, value: Any) -> Callable[[Any], Any]:
    def edit(saved: Any) -> Any:
        saved[key] = value
        return saved

    return edit


def _short_weights(saved: Any) -> Any:
    saved["weights"][0] = array_to_json(array_from_json(saved["weights"][0])[:-1])
    return saved


def _as_version_1(saved: Any) -> Any:
    """A checkpoint as saved before its arrays were base64: lists of numbers."""
    saved["version"] = 1
    for name in ("weights", "targets"):
        saved[name] = [array_from_json(w).tolist() for w in saved[name]]
    return saved


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda saved: [saved], "version None, expected an epoch checkpoint"),
        (_dropped("generator"), "not a whole epoch checkpoint (KeyError: 'generator')"),
        (_set("generator", {"bit_generator": "nope"}), "not a whole epoch checkpoint"),
        (_short_weights, "weights and targets of other shapes"),
        (_set("epoch", 99), "epoch 99, expected 1 .. 4"),
        (_set("extras", {}), "no ['cosines'] saved, which mlp goes on from"),
        (_set("settings", "mlp"), "a None run, not mlp"),
    ],
    ids=[
        "a-list",
        "no-generator",
        "bad-generator",
        "short-weights",
        "epoch",
        "no-extras",
        "settings",
    ],  # fmt: skip
)
def test_a_damaged_checkpoint_is_refused_naming_what_is_wrong(
    edit: Callable[[Any], Any], said: str, tmp_path: Path
) -> None:
    """Hand-edited or from another version: a ValueError naming the file (what ``sidra
    train --resume`` turns into a usage error), never a KeyError or a numpy error mid-way,
    and the board untouched by the refused run."""
    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    options = MLPOptions(epochs=EPOCHS, hidden=(16,))
    stop = threading.Event()
    stop.set()
    with open_board("emu://?preset=ideal&seed=0") as board:
        train_mlp(board, data, options, checkpoint=path, stop=stop)
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
        before = board.stats().cell_writes
        with pytest.raises(ValueError) as refused:
            train_mlp(board, data, options, checkpoint=path, resume=True)
        assert said in str(refused.value) and str(path) in str(refused.value)
        assert board.stats().cell_writes == before


def test_a_checkpoint_saved_before_arrays_were_base64_still_goes_on(tmp_path: Path) -> None:
    """Version 1 (weights as lists of numbers) goes on as the same run; version 2 files
    are a quarter of its size."""
    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    options = MLPOptions(epochs=EPOCHS, hidden=(16,))
    stop = threading.Event()
    with open_board("emu://?preset=ideal&seed=0") as board:
        whole = train_mlp(board, data, options)
        train_mlp(
            board, data, options, checkpoint=path, stop=stop,
            on_epoch=lambda epoch, _: stop.set() if epoch == 2 else None,
        )  # fmt: skip
        saved = json.loads(path.read_text())
        assert saved["version"] == 2
        old = json.dumps(_as_version_1(saved))
        path.write_text(old)
        resumed = train_mlp(board, data, options, checkpoint=path, resume=True)
    assert resumed.weights is not None and whole.weights is not None
    assert np.array_equal(resumed.weights, whole.weights) and resumed.losses == whole.losses


@pytest.mark.parametrize("again_after", [8, 25], ids=["programming-again", "first-epoch"])
@pytest.mark.parametrize("job", list(RESUMABLE))
def test_a_resumed_run_that_loses_its_board_again_keeps_what_it_went_on_from(
    job: str, again_after: int, tmp_path: Path
) -> None:
    """Gone again before the resumed run's next epoch is whole (8 frames: while its
    layers are programmed again; 25: in that epoch): RunInterrupted with the record and
    the checkpoint it went on from, as when it was first cut short."""
    train, options, frames = RESUMABLE[job]
    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    with unplugged_after(frames) as board, pytest.raises(RunInterrupted) as first:
        train(board, data, options, checkpoint=path)
    saved = json.loads(path.read_text())
    with unplugged_after(again_after) as board, pytest.raises(RunInterrupted) as again:
        train(board, data, options, checkpoint=path, resume=True)
    record = _kept(again.value)
    assert again.value.steps == first.value.steps == saved["epoch"]
    assert again.value.checkpoint == path and json.loads(path.read_text()) == saved
    assert first.value.record is not None
    assert record.losses == first.value.record.losses
    assert record.checkpoints == first.value.record.checkpoints


@pytest.mark.parametrize(
    ("twin_epochs", "frames"), [(2, 60), (0, 60)], ids=["after-the-twin", "all-on-the-board"]
)
def test_pat_goes_on_from_its_board_epochs_checkpoint(
    twin_epochs: int, frames: int, tmp_path: Path
) -> None:
    """Physics-aware training cut short in its board epochs goes on from its checkpoint,
    the twin's epochs not run again (their part of the record is in the checkpoint),
    and ends as the uninterrupted run on the ideal board."""
    twin, profile = _twin_file("emu://?preset=ideal&seed=0", tmp_path)
    data, path = load_dataset("iris"), tmp_path / "checkpoint.json"
    options = PATOptions(hidden=(16,), epochs=5, board_epochs=5 - twin_epochs)

    def run(board: Board, **going_on: Any) -> TrainingRecord:
        with open_board(f"emu://?profile={profile}&seed=9") as twin_board:
            return train_pat(board, twin, data, options, twin_board=twin_board, **going_on)

    with open_board("emu://?preset=ideal&seed=0") as board:
        whole = run(board)
    with unplugged_after(frames) as board, pytest.raises(RunInterrupted) as lost:
        run(board, checkpoint=path)
    assert lost.value.checkpoint == path and twin_epochs < lost.value.steps < options.epochs
    with open_board("emu://?preset=ideal&seed=0") as board:
        resumed = run(board, checkpoint=path, resume=True)
    assert resumed.weights is not None and whole.weights is not None
    assert np.array_equal(resumed.weights, whole.weights)
    assert resumed.losses == whole.losses and resumed.steps == whole.steps
    steps = [(c.step, c.test_accuracy) for c in resumed.checkpoints]
    assert steps == [(c.step, c.test_accuracy) for c in whole.checkpoints]
    assert resumed.test_accuracy == whole.test_accuracy
    assert resumed.measures == whole.measures


def test_an_in_silico_pat_run_has_nothing_to_go_on_from(tmp_path: Path) -> None:
    twin, _ = _twin_file("emu://?preset=ideal&seed=0", tmp_path)
    options = PATOptions(hidden=(16,), epochs=2, in_silico=True)
    with (
        open_board("emu://?preset=ideal") as board,
        pytest.raises(ValueError, match="in-silico run .* no board epochs to go on from"),
    ):
        train_pat(board, twin, load_dataset("iris"), options, checkpoint=tmp_path / "c.json",
                  resume=True)  # fmt: skip


@pytest.mark.parametrize("job", ["mlp", "spsa"])
def test_a_run_killed_mid_way_goes_on_from_its_last_checkpoint(job: str, tmp_path: Path) -> None:
    """``kill -9`` of ``sidra train`` (a crash, a power cut): its last periodic checkpoint
    (--checkpoint-every-s) is in --out; the same command is refused (it would start over
    beside it), and with --resume it goes on to the end, where the checkpoint goes (a
    finished run has nothing to go on from)."""
    out = tmp_path / "run"
    command = {
        "mlp": ["train", "mlp", "--hidden", "16", "--epochs", "1000"],
        "spsa": ["train", "spsa", "--steps", "4000", "--a", "0.5", "--c", "0.1",
                 "--eval-every", "4000"],
    }[job] + ["--board", "emu://?preset=ideal", "--dataset", "iris", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(
        [*SIDRA, *command, "--checkpoint-every-s", "0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (out / "checkpoint.json").is_file():
            assert proc.poll() is None, "the run ended before it saved a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint saved"
            time.sleep(0.05)
        time.sleep(0.3)  # a later one, written over it in place (atomically)
        proc.kill()
        proc.wait()
    finally:
        proc.kill()
        proc.wait()
    saved = json.loads((out / "checkpoint.json").read_text())
    done = saved["epoch"] if job == "mlp" else saved["optimizer"]["k"]
    assert done >= 1
    again = run_sidra(*command)
    assert again.returncode == 2
    assert unwrapped("or --resume to go on from it") in unwrapped(again.stderr)
    resumed = run_sidra(*command, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    steps = json.loads(resumed.stdout)["steps"]
    assert steps == (1000 * 4 if job == "mlp" else 4000)
    assert not (out / "checkpoint.json").exists()
