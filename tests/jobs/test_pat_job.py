"""Physics-aware training as a job inside ``sidra serve``: the twin's profile travels with
the options (or the job characterizes the board itself), the twin emulator runs in the
server, a bad profile is refused at submission."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidra.characterize.toml import dumps
from sidra.client import JobInfo, RemoteBoard
from sidra.drivers import InvalidArgument
from sidra.emulator import preset
from sidra.emulator.config import Geometry, parse_profile
from tests.cli_support import run_sidra, served, sidra_json

URL = "emu://?preset=ideal&seed=5"
TINY = ("--hidden", "16", "--epochs", "2", "--board-epochs", "1", "--batch-size", "64",
        "--read-repeats", "1", "--eval-read-repeats", "1", "--cosine-every", "1000")  # fmt: skip
"""A pat run of seconds: one epoch on the twin, one on the board."""


def _twin_profile(path: Path) -> Path:
    """The served preset's own profile: a perfect twin."""
    path.write_text(dumps(preset("ideal").model_dump(mode="json")), encoding="utf-8")
    return path


def _address(board: RemoteBoard) -> str:
    assert board.address is not None
    return board.address


def test_a_pat_job_trains_with_the_twin_it_was_sent(tmp_path: Path) -> None:
    profile = _twin_profile(tmp_path / "twin.toml")
    out = tmp_path / "record"
    with served(URL) as board:
        summary = sidra_json(
            "train", "pat", "--server", _address(board), "--remote-job", "--profile",
            str(profile), *TINY, "--out", str(out),
        )  # fmt: skip
        job = board.jobs.get(summary["job_id"])
    assert job.state == "succeeded" and job.kind == "pat"
    assert "twin_profile_toml" not in job.options  # the text is kept as a record file
    assert summary["steps"] > 0 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["twin_epochs"] == 1 and summary["twin_steps"] > 0
    # One epoch on each arm: as many steps on the board as on the twin, each labelled.
    assert summary["board_steps"] == summary["twin_steps"] == summary["steps"] // 2
    assert (out / "twin.toml").read_text(encoding="utf-8") == profile.read_text(encoding="utf-8")
    settings = json.loads((out / "settings.json").read_text())
    assert settings["twin_profile"] == "twin.toml (sent with the job)"
    assert "twin_profile_toml" not in settings and settings["board_epochs"] == 1


def test_a_pat_job_is_refused_with_a_twin_it_cannot_read(tmp_path: Path) -> None:
    with served(URL) as board:
        before = len(board.jobs.list())
        with pytest.raises(InvalidArgument) as caught:
            board.jobs.submit("pat", {"epochs": 1, "twin_profile_toml": "[geometry]\ntiles = -1\n"})
        assert caught.value.field == "options"
        assert "twin_profile_toml" in str(caught.value) and "tiles" in str(caught.value)
        small = preset("ideal").model_copy(
            update={"geometry": Geometry(tiles=1, rows=32, cols=32)}
        )  # another board's twin
        text = dumps(small.model_dump(mode="json"))
        with pytest.raises(InvalidArgument, match=r"a board of 1 tiles of 32 × 32, expected"):
            board.jobs.submit("pat", {"epochs": 1, "twin_profile_toml": text})
        assert len(board.jobs.list()) == before  # nothing was started
        server = _address(board)
        bad = tmp_path / "bad.toml"
        bad.write_text("[geometry]\ntiles = -1\n", encoding="utf-8")
        refused = run_sidra("train", "pat", "--server", server, "--remote-job", "--profile",
                            str(bad), *TINY)  # fmt: skip
        assert len(board.jobs.list()) == before  # refused by the client: nothing was sent
    assert refused.returncode == 2 and "--profile" in refused.stderr


def test_a_pat_job_sent_without_a_twin_characterizes_the_board_first(tmp_path: Path) -> None:
    out = tmp_path / "record"
    with served(URL) as board:
        info = board.info
        summary = sidra_json(
            "train", "pat", "--server", _address(board), "--remote-job", *TINY, "--out", str(out)
        )  # fmt: skip
        job = board.jobs.get(summary["job_id"])
        said = [e.message for e in board.jobs.watch(job.job_id) if e.kind == "log"]
    assert job.state == "succeeded" and job.kind == "pat"
    assert any(line.startswith("characterizing the board for its twin") for line in said)
    # The whole board while it characterizes (every tile programmed; narrowing refuses a
    # lease of tiles), then the tiles it trains on: the others are free for the training.
    narrowed = [i for i, line in enumerate(said) if line.startswith("lease narrowed to tile")]
    assert narrowed and said[narrowed[0]].startswith("lease narrowed to tiles 0, 1 ")
    assert not job.whole_board and job.tiles == (0, 1)
    assert summary["twin_epochs"] == 1 and summary["twin_steps"] > 0
    measured = parse_profile((out / "twin.toml").read_text(encoding="utf-8"))
    geometry = measured.geometry
    assert (geometry.tiles, geometry.rows, geometry.cols) == (info.tile_count, info.rows, info.cols)
    settings = json.loads((out / "settings.json").read_text())
    assert settings["twin_profile"] == "twin.toml (characterized in the job)"


def test_a_pat_job_cancelled_while_it_characterizes_keeps_the_profile(tmp_path: Path) -> None:
    """Cancelled during the characterization, the job ends once the profile is complete,
    before any training, with the profile as its record: sent with a new job, it trains
    without the board being measured again."""
    # The cancel must land within the second or so the profile takes; on a loaded machine
    # the line that starts it may reach this client after that, and the job then runs to
    # its end (succeeded: a cancel after the end changes nothing). Such a miss is tried
    # again on a new server; a cancel that lands and ends otherwise fails the test.
    for _ in range(3):
        done, said = _cancelled_while_characterizing()
        if done.state != "succeeded":
            break
    assert done.state == "cancelled"
    assert done.error.endswith("stopped after epoch 0, its record kept")
    assert done.summary is not None and done.summary["stopped_at_epoch"] == 0
    assert done.summary["twin_profile"] == "twin.toml (characterized in the job)"
    assert set(done.files) == {"twin.toml", "run.json"}  # and what ran it
    parse_profile(done.files["twin.toml"].decode("utf-8"))  # a whole profile
    assert "stopped before training: the record holds the twin's profile" in said
    assert not any(line.startswith("twin:") for line in said)  # no training began


def _cancelled_while_characterizing() -> tuple[JobInfo, list[str]]:
    """A pat job with no profile, cancelled when it says it characterizes the board: the
    job as it ended, with its record, and its log lines."""
    with served(URL) as board:
        job = board.jobs.submit("pat", {"hidden": [16], "epochs": 2, "board_epochs": 1})
        for event in board.jobs.watch(job.job_id):
            if event.kind == "log" and event.message.startswith("characterizing the board"):
                board.jobs.cancel(job.job_id)
                break
        for _ in board.jobs.watch(job.job_id):
            pass  # to its end
        done = board.jobs.get(job.job_id, include_record=True)
        said = [e.message for e in board.jobs.watch(job.job_id) if e.kind == "log"]
    return done, said
