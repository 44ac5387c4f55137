"""``sidra train ... --like RECORD``: an earlier run's settings as this run's defaults, as a
user runs it (the CLI in a subprocess, the emulator as the board, real data sets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import run_sidra, unwrapped

BOARD = "emu://?preset=sidra-y1&seed=4"


def trained(out: Path, *args: str) -> dict[str, Any]:
    done = run_sidra("train", *args, "--board", BOARD, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def settings(record: Path) -> dict[str, Any]:
    return dict(json.loads((record / "settings.json").read_text()))


def test_a_run_like_another_takes_its_settings_and_the_options_given_win(
    tmp_path: Path,
) -> None:
    first = tmp_path / "first"
    ran = trained(first, "spsa", "--dataset", "iris", "--steps", "40", "--batch-size", "16",
                  "--a", "0.3", "--eval-every", "8", "--resamplings", "2")  # fmt: skip
    again = trained(tmp_path / "again", "spsa", "--like", str(first))
    assert settings(tmp_path / "again") == settings(first)  # data set, derived ones and all
    assert again["test_accuracy"] == ran["test_accuracy"]  # the same board: the same run
    assert again["loss_evaluations"] == ran["loss_evaluations"] == 40 * 2 * 2

    trained(tmp_path / "seed", "spsa", "--like", str(first / "settings.json"), "--seed", "3",
            "--steps", "20")  # fmt: skip
    changed = settings(tmp_path / "seed")
    assert {k for k in changed if changed[k] != settings(first)[k]} == {"seed", "steps"}
    assert changed["dataset"] == "iris" and changed["eval_every"] == 8


def test_an_accuracy_interval_made_from_steps_is_made_again_from_this_runs(
    tmp_path: Path,
) -> None:
    """eval_every not given is 5 % of --steps; taken as a setting, a --like run of fewer
    steps than it measured no accuracy (an empty checkpoints.csv, a blank plot)."""
    first = tmp_path / "first"
    trained(first, "spsa", "--dataset", "iris", "--steps", "200", "--batch-size", "16")
    assert settings(first)["eval_every"] == 10
    trained(tmp_path / "short", "spsa", "--like", str(first), "--steps", "40")
    assert settings(tmp_path / "short")["eval_every"] == 2
    rows = (tmp_path / "short" / "checkpoints.csv").read_text().splitlines()
    assert len(rows) == 1 + 20  # a header, then one a checkpoint
    trained(tmp_path / "same", "spsa", "--like", str(first))
    assert settings(tmp_path / "same") == settings(first)


def test_an_epoch_run_like_another(tmp_path: Path) -> None:
    first = tmp_path / "first"
    trained(first, "mlp", "--dataset", "iris", "--epochs", "2", "--hidden", "6")
    trained(tmp_path / "wider", "mlp", "--like", str(first), "--hidden", "9")
    wider = settings(tmp_path / "wider")
    assert {k for k in wider if wider[k] != settings(first)[k]} == {"hidden"}


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ("missing", "no such file, expected a run record"),
        ("empty", "no settings.json in that folder"),
        ("garbage.json", "cannot be read as JSON"),
        ("nojob.json", "names no job"),
        ("spsa", "a record of a 'spsa' run; sidra train mlp takes the settings of a 'mlp' run"),
    ],
)
def test_a_record_that_is_not_one_of_this_command_is_refused(
    tmp_path: Path, given: str, refusal: str
) -> None:
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "nojob.json").write_text('{"steps": 3}')
    (tmp_path / "spsa").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "spsa" / "settings.json").write_text('{"job": "spsa", "steps": 3}')
    out = tmp_path / "out"
    done = run_sidra("train", "mlp", "--like", str(tmp_path / given), "--out", str(out))
    assert done.returncode == 2
    assert unwrapped(f"Invalid value for '--like': got {tmp_path / given}: {refusal}") in (
        unwrapped(done.stderr)
    )
    assert not out.exists()  # refused before anything ran


def test_a_setting_no_option_takes_is_said_not_taken(tmp_path: Path) -> None:
    """A record made by another SIDRA HIL may hold a setting whose option was renamed
    since: the run goes on without it, and says which were not taken. A record of this
    one holds none (placement, job and the stop keys are the record's own)."""
    first = tmp_path / "first"
    trained(first, "spsa", "--dataset", "iris", "--steps", "10", "--batch-size", "16")
    quiet = run_sidra("train", "spsa", "--like", str(first), "--board", BOARD,
                      "--out", str(tmp_path / "quiet"), "--json")  # fmt: skip
    assert quiet.returncode == 0 and "not taken" not in quiet.stderr, quiet.stderr
    old = settings(first) | {"perturbation_size": 0.1, "stopped_at_step": 4}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "settings.json").write_text(json.dumps(old))
    done = run_sidra("train", "spsa", "--like", str(tmp_path / "old"), "--board", BOARD,
                     "--out", str(tmp_path / "again"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert unwrapped(
        f"sidra train spsa --like {tmp_path / 'old'}: not taken, as no option of this command "
        "has its name: perturbation_size (a record of another SIDRA HIL?"
    ) in unwrapped(done.stderr)
    assert "perturbation_size" not in settings(tmp_path / "again")
