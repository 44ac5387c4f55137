"""The suite's ``sidra`` commands, forked from a process that imported what they import,
answer as the same commands started from nothing."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli_support import SIDRA, run_sidra, unwrapped


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["model", "show", "no-such-model.npz"],
        ["train", "spsa", "--steps", "-3"],
        ["trian"],
        ["board", "read", "emu://?preset=ideal&seed=2", "--rows", "0..1", "--cols", "0..2"],
    ],
)
def test_a_forked_command_answers_as_one_started_from_nothing(args: list[str]) -> None:
    forked = run_sidra(*args, columns=100)
    fresh = subprocess.run(
        [*SIDRA, *args], capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | {"COLUMNS": "100"},
    )  # fmt: skip
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode, fresh.stdout, fresh.stderr,
    )  # fmt: skip
    assert forked.args == fresh.args


def test_a_forked_command_runs_in_the_folder_and_environment_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = run_sidra("train", "spsa", "--board", "emu://?preset=ideal", "--dataset", "iris",
                     "--steps", "2", "--out", "here")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "here" / "settings.json").is_file()
    named = run_sidra("status", env={"SIDRA_SERVER": "127.0.0.1:1", "SIDRA_TOKEN": None})
    assert named.returncode != 0 and "127.0.0.1:1" in unwrapped(named.stderr)
    monkeypatch.setenv("SIDRA_SERVER", "127.0.0.1:1")
    taken_out = run_sidra("status", env={"SIDRA_SERVER": None})
    assert taken_out.returncode != 0 and "127.0.0.1:1" not in unwrapped(taken_out.stderr)


def test_a_command_past_its_timeout_is_stopped() -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        run_sidra("board", "serve", "--tcp", "127.0.0.1:0", timeout=3)  # serves until stopped
    assert time.monotonic() - started < 30
    assert "127.0.0.1:" in str(stopped.value.stdout) + str(stopped.value.stderr)
