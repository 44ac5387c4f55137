"""``run.json`` beside every record, and ``sidra runs list|show|compare`` over real runs
(sidra.training.provenance, sidra.training.saved_runs, sidra.cli.runs)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import statistics
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import run_sidra, sidra_json, unwrapped

BOARD = "emu://?preset=sidra-y1&seed=5"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real runs under runs/: two SPSA runs that differ by their seed, and a
    last-layer run in a study's subfolder."""
    root = tmp_path_factory.mktemp("lab") / "runs"
    common = ("--board", BOARD, "--json")
    sidra_json("train", "spsa", "--steps", "20", "--out", str(root / "spsa-a"), *common)
    sidra_json("train", "spsa", "--like", str(root / "spsa-a"), "--seed", "7",
               "--out", str(root / "spsa-b"), *common)  # fmt: skip
    sidra_json("train", "last-layer", "--epochs", "1", "--out", str(root / "study" / "ll"),
               *common)  # fmt: skip
    sidra_json("train", "compare", "--budget", "100", "--seeds", "0", "--method", "spsa",
               "--method", "mlp", "--out", str(root / "study" / "methods"), *common)  # fmt: skip
    return root


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_a_run_from_here_says_where_when_and_by_what_it_ran(runs: Path) -> None:
    run = _json(runs / "spsa-b" / "run.json")
    assert run["where"] == "here" and run["server"] is None
    assert run["board_url"] == BOARD
    assert run["board"] == {
        "model": "SIDRA-Y1", "serial_number": "EMU-Y1-5",
        "firmware_version": run["board"]["firmware_version"], "emulated": True,
        "emulator_preset": "sidra-y1",
    }  # fmt: skip
    assert run["command"][:3] == ["sidra", "train", "spsa"]
    assert run["command"][run["command"].index("--seed") + 1] == "7"
    started = datetime.fromisoformat(run["started_utc"])
    ended = datetime.fromisoformat(run["ended_utc"])
    assert started.utcoffset() is not None and started <= ended
    assert 0 < run["wall_s"] <= (ended - started).total_seconds() + 1
    assert run["sidra_hil"] == importlib.metadata.version("sidra-hil")
    # The code and machine the figures came from (a noisy run repeats only on the same):
    # this checkout's commit, the CPU by name, family and model, numpy's BLAS.
    import subprocess

    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert run["commit"].removesuffix("+changes") == head
    from sidra.drivers.host_machine import cpu_name

    assert run["cpu"] == cpu_name() and run["cpus"] >= 1 and run["blas"] != "unknown"
    # The settings stay what a run needs (--like takes them): nothing of where it ran.
    assert not set(run) & set(_json(runs / "spsa-b" / "settings.json"))


def test_list_finds_every_record_newest_first_and_filters(runs: Path) -> None:
    listed = sidra_json("runs", "list", str(runs), "--json")
    names = ["spsa-a", "spsa-b", "study/ll", "study/methods"]
    assert sorted(r["name"] for r in listed) == names
    started = [r["started_unix_s"] for r in listed]
    assert started == sorted(started, reverse=True)
    by_name = {r["name"]: r for r in listed}
    for name, row in by_name.items():
        summary = _json(runs / name / "summary.json")
        # A comparison's accuracy is its best method's mean.
        best = max(m["test_accuracy"] for m in summary.get("methods", [summary]))
        assert row["test_accuracy"] == best
        assert (row["ended"], row["board"]) == ("finished", "EMU-Y1-5 (sidra-y1)")
    assert (by_name["study/methods"]["job"], by_name["study/methods"]["length"]) == (
        "compare", "2 runs",
    )  # fmt: skip
    assert (by_name["spsa-a"]["job"], by_name["spsa-a"]["length"]) == ("spsa", "20 steps")
    assert (by_name["study/ll"]["job"], by_name["study/ll"]["length"]) == (
        "last-layer", "1 epoch",
    )  # fmt: skip

    best = sidra_json("runs", "list", str(runs), "--sort", "accuracy", "--json")
    accuracies = [r["test_accuracy"] for r in best]
    assert accuracies == sorted(accuracies, reverse=True)
    only = sidra_json("runs", "list", str(runs), "--job", "spsa", "--limit", "1", "--json")
    assert len(only) == 1 and only[0]["job"] == "spsa"

    table = run_sidra("runs", "list", str(runs), columns=80)
    assert table.returncode == 0, table.stderr
    assert "spsa-a" in table.stdout and "study/ll" in table.stdout
    assert "…" not in table.stdout and max(map(len, table.stdout.splitlines())) <= 80
    assert " %" in table.stdout  # the accuracy whole: columns left out instead


def test_list_reports_a_damaged_record_and_lists_the_others(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = tmp_path / "runs"
    for name in ("spsa-a", "spsa-b"):
        (lab / name).mkdir(parents=True)
        for file in (runs / name).iterdir():
            (lab / name / file.name).write_bytes(file.read_bytes())
    (lab / "spsa-b" / "settings.json").write_text('{"steps": 2')  # cut short
    (lab / "spsa-a" / "run.json").unlink()  # a record saved before run.json
    saved = (lab / "spsa-a" / "summary.json").stat().st_mtime
    (lab / "notes").mkdir()  # a folder that is no record: not listed, not an error

    listed = run_sidra("runs", "list", str(lab), "--json")
    assert listed.returncode == 1
    (only,) = json.loads(listed.stdout)
    assert (only["name"], only["board"], only["wall_s"]) == ("spsa-a", "?", None)
    assert only["started_unix_s"] == saved
    assert unwrapped(f"{lab / 'spsa-b' / 'settings.json'}: cannot be read") in unwrapped(
        listed.stderr
    )

    missing = run_sidra("runs", "list", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and unwrapped("no such folder") in unwrapped(missing.stderr)
    assert "thisfolderholdsrecords" not in unwrapped(missing.stderr)
    monkeypatch.chdir(lab)  # records saved with --out NAME here, no runs/ folder
    here = run_sidra("runs", "list")
    assert here.returncode == 2
    assert unwrapped("runs: no such folder (this folder holds records: spsa-a, spsa-b; sidra "
                     "runs list .)") in unwrapped(here.stderr)  # fmt: skip
    bad_sort = run_sidra("runs", "list", str(lab), "--sort", "loss")
    assert bad_sort.returncode == 2
    assert unwrapped("got 'loss', expected one of time, accuracy") in unwrapped(bad_sort.stderr)


def test_show_prints_the_record_as_its_files_hold_it(runs: Path) -> None:
    folder = runs / "study" / "ll"
    shown = sidra_json("runs", "show", str(folder), "--json")
    assert shown["settings"] == _json(folder / "settings.json")
    assert shown["summary"] == _json(folder / "summary.json")
    assert shown["provenance"] == _json(folder / "run.json")
    table = run_sidra("runs", "show", str(folder))
    assert table.returncode == 0, table.stderr
    assert "last-layer on digits" in table.stdout and "EMU-Y1-5" in table.stdout
    # Nested records read as indented rows, the command line as it was typed.
    assert '{"' not in table.stdout
    assert re.search(r"^\s+serial_number\s+EMU-Y1-5\s*$", table.stdout, re.MULTILINE)
    assert re.search(r"^\s+command\s+sidra train last-layer ", table.stdout, re.MULTILINE)
    # The figures as the run's end printed them; a placement as the tiles it names.
    accuracy = 100 * _json(folder / "summary.json")["test_accuracy"]
    assert re.search(rf"^\s+test_accuracy\s+{accuracy:.2f} %\s*$", table.stdout, re.MULTILINE)
    assert re.search(r"^\s+placement\s+features: tile 0; head: tile 1\s*$", table.stdout, re.M)

    nothing = run_sidra("runs", "show", str(runs))  # the folder of records, not one
    assert nothing.returncode == 2
    assert unwrapped("holds no run record (no summary.json, settings.json") in unwrapped(
        nothing.stderr
    )


def test_compare_names_what_differs_and_sets_the_figures_side_by_side(
    runs: Path, tmp_path: Path
) -> None:
    a, b = runs / "spsa-a", runs / "spsa-b"
    plot = tmp_path / "compare.png"
    compared = sidra_json("runs", "compare", str(a), str(b), "--plot", str(plot), "--json")
    assert [r["name"] for r in compared["runs"]] == ["spsa-a", "spsa-b"]
    assert compared["settings"] == {"seed": [0, 7]}  # --like: nothing else changed
    assert compared["provenance"] == {}  # one board, one host, one release
    for key in ("test_accuracy", "device_writes", "modeled_energy_nj"):
        assert compared["summary"][key] == [_json(f / "summary.json")[key] for f in (a, b)]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = plot.stat().st_mtime_ns
    again = run_sidra("runs", "compare", str(a), str(b), "--plot", str(plot))
    assert again.returncode == 2 and "'--plot'" in again.stderr  # not drawn over
    assert plot.stat().st_mtime_ns == drawn

    every = sidra_json("runs", "compare", str(a), str(b), "--all", "--json")
    assert list(every["settings"]) == list(_json(a / "settings.json"))

    table = run_sidra("runs", "compare", str(a), str(b), str(runs / "study" / "ll"))
    assert table.returncode == 0, table.stderr
    best = max(_json(f / "summary.json")["test_accuracy"] for f in (a, b, runs / "study/ll"))
    assert f"{100 * best:.2f} % (best)" in table.stdout
    # The kind of run and its data set differ, and are said once, in the first row.
    labels = [line.split()[0] for line in table.stdout.splitlines() if line.split()]
    assert labels.count("job") == 1 and "dataset" not in labels

    one = run_sidra("runs", "compare", str(a))
    assert one.returncode == 2 and unwrapped("got 1 record, expected two or more") in unwrapped(
        one.stderr
    )


def test_compare_writes_a_setting_of_several_parts_as_the_run_s_end_did(runs: Path) -> None:
    """A setting that is a mapping (a placement, a tuned model's origin) was set beside
    the others as JSON: {"features": [0], "head": [1]}, an accuracy as 0.9203703703703704."""
    ll = runs / "study" / "ll"
    table = run_sidra("runs", "compare", str(runs / "spsa-a"), str(ll), columns=300)
    assert table.returncode == 0, table.stderr
    [placement] = [line for line in table.stdout.splitlines() if line.split()[:1] == ["placement"]]
    assert "features: tile 0; head: tile 1" in placement and '{"' not in placement


def test_a_folder_with_a_summary_but_no_settings_is_no_record(tmp_path: Path) -> None:
    # A record being saved: its summary written, its settings not yet. Not a record yet,
    # and not an error.
    lab = tmp_path / "runs"
    (lab / "going").mkdir(parents=True)
    (lab / "going" / "summary.json").write_text(json.dumps({"steps": 1}))
    listed = run_sidra("runs", "list", str(lab), "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert sorted(os.listdir(lab / "going")) == ["summary.json"]  # only read


def test_group_takes_runs_differing_only_by_seed_as_one(runs: Path, tmp_path: Path) -> None:
    grouped = sidra_json("runs", "group", str(runs), "--job", "spsa", "--json")
    (row,) = grouped  # spsa-b is spsa-a with another seed: one experiment, two runs
    accuracies = [_json(runs / n / "summary.json")["test_accuracy"] for n in ("spsa-a", "spsa-b")]
    assert (row["runs"], row["seeds"], row["boards"]) == (2, [0, 7], ["EMU-Y1-5 (sidra-y1)"])
    assert row["test_accuracy_mean"] == pytest.approx(statistics.mean(accuracies))
    assert row["test_accuracy_sd"] == pytest.approx(statistics.stdev(accuracies))
    assert (row["test_accuracy_min"], row["test_accuracy_max"]) == (
        min(accuracies), max(accuracies),
    )  # fmt: skip
    assert row["settings"] == {}  # the only spsa group: nothing to tell it apart

    # A run with more steps is another experiment; one stopped early is left out.
    lab = tmp_path / "runs"
    for name, changes in (("a", {}), ("b", {"seed": 7}), ("long", {"steps": 40}),
                          ("cut", {"seed": 9, "stopped_at_step": 3})):  # fmt: skip
        (lab / name).mkdir(parents=True)
        for file in (runs / "spsa-a").iterdir():
            (lab / name / file.name).write_bytes(file.read_bytes())
        settings = _json(runs / "spsa-a" / "settings.json") | changes
        (lab / name / "settings.json").write_text(json.dumps(settings))
    rows = sidra_json("runs", "group", str(lab), "--json")
    assert sorted((r["runs"], r["seeds"], r["settings"]) for r in rows) == [
        (1, [0], {"steps": 40}), (2, [0, 7], {"steps": 20}),
    ]  # fmt: skip
    table = run_sidra("runs", "group", str(lab))
    assert table.returncode == 0, table.stderr
    assert "left out: 1 run stopped or interrupted before the end" in table.stdout


def test_a_setting_left_to_its_default_reads_none_and_a_lone_run_shows_no_spread(
    runs: Path, tmp_path: Path
) -> None:
    """A None setting showed as nothing ("final_learning_rate=", an empty feature_tile),
    and a group of one run as "± 0.00 %", which reads as runs that agreed."""
    record = runs / "study" / "ll"
    assert _json(record / "settings.json")["feature_tile"] is None  # placed by the job
    shown = run_sidra("runs", "show", str(record))
    assert re.search(r"^\s+feature_tile\s+none\s*$", shown.stdout, re.MULTILINE), shown.stdout
    lab = tmp_path / "runs"
    for name, changes in (
        ("a", {}),
        ("b", {"seed": 7}),
        ("constant", {"final_learning_rate": None}),
    ):
        (lab / name).mkdir(parents=True)
        for file in record.iterdir():
            (lab / name / file.name).write_bytes(file.read_bytes())
        settings = _json(record / "settings.json") | changes
        (lab / name / "settings.json").write_text(json.dumps(settings))
    table = run_sidra("runs", "group", str(lab), columns=200)
    assert table.returncode == 0, table.stderr
    lines = {line.split()[2]: line for line in table.stdout.splitlines() if "last-layer" in line}
    accuracy = 100 * _json(record / "summary.json")["test_accuracy"]
    assert set(lines) == {"final_learning_rate=none", "final_learning_rate=0.02"}
    assert f"{accuracy:.2f} ± 0.00 %" in lines["final_learning_rate=0.02"]  # two runs
    lone = lines["final_learning_rate=none"]
    assert f"{accuracy:.2f} %" in lone and "±" not in lone and lone.rstrip().endswith("—")


def test_a_run_that_ended_without_its_record_is_listed_as_unfinished(tmp_path: Path) -> None:
    """A folder holding a checkpoint and no record: a run still going, or one killed or
    whose board went away. Listed with where it last saved, to be found and gone on from;
    a finished record beside it is listed as before."""
    import threading

    from sidra.drivers import open_board
    from sidra.training import LastLayerOptions, SPSAOptions, train_last_layer, train_softmax_spsa
    from sidra.training.datasets import load_dataset

    lab = tmp_path / "runs"
    data = load_dataset("iris")
    with open_board("emu://?preset=ideal&seed=1") as board:
        # The library saves checkpoints; the record is the command's to save: a run
        # killed after its checkpoint leaves the folder as this.
        train_softmax_spsa(
            board, data, SPSAOptions(steps=12, eval_every=6),
            checkpoint=lab / "spsa" / "checkpoint.json", checkpoint_every=5,
        )  # fmt: skip
        stop = threading.Event()
        stop.set()  # stops after its first epoch, saving its checkpoint
        train_last_layer(
            board, data, LastLayerOptions(epochs=3),
            checkpoint=lab / "ll" / "checkpoint.json", stop=stop,
        )  # fmt: skip
    sidra_json("train", "spsa", "--steps", "4", "--dataset", "iris", "--out",
               str(lab / "done"), "--board", BOARD)  # fmt: skip
    listed = {row["name"]: row for row in sidra_json("runs", "list", str(lab))}
    assert listed["spsa"]["ended"] == "unfinished at step 10"  # its last checkpoint
    assert listed["ll"]["ended"] == "unfinished at epoch 1"
    assert (listed["spsa"]["job"], listed["spsa"]["dataset"]) == ("spsa", "iris")
    assert listed["spsa"]["test_accuracy"] is None
    assert listed["done"]["ended"] == "finished"
    shown = run_sidra("runs", "show", str(lab / "spsa"))
    assert shown.returncode == 0, shown.stderr
    assert "(unfinished at step 10)" in shown.stdout
    # On 80 columns the test accuracy of the others stays whole.
    narrow = run_sidra("runs", "list", str(lab), columns=80).stdout
    assert "…" not in narrow and "unfinished at" in narrow


def test_a_run_still_saving_is_told_from_one_killed_and_its_folder_is_its_own(
    tmp_path: Path,
) -> None:
    """While a run saves into its folder it holds a lock there: sidra runs shows it
    running, and a second run given that folder is refused instead of writing over its
    checkpoints. Killed (SIGKILL: nothing of it runs), the kernel lets go of the lock:
    the folder is an unfinished run, which --resume goes on from."""
    import signal
    import subprocess

    from tests.cli_support import SIDRA, file_written

    out = tmp_path / "runs" / "long"
    run = subprocess.Popen(
        [*SIDRA, "train", "spsa", "--board", "emu://?preset=ideal", "--dataset", "iris",
         "--steps", "1000000", "--checkpoint-every", "20", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        file_written(out / "checkpoint.json")(run)
        (listed,) = sidra_json("runs", "list", str(tmp_path / "runs"))
        assert listed["ended"].startswith("running, saved at step "), listed
        second = run_sidra("train", "spsa", "--board", "emu://?preset=ideal", "--dataset",
                           "iris", "--steps", "1000000", "--out", str(out), "--resume")  # fmt: skip
        assert second.returncode == 2
        assert "anotherrunissavingintoitnow" in unwrapped(second.stderr)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    finally:
        run.kill()
        run.communicate()
    (listed,) = sidra_json("runs", "list", str(tmp_path / "runs"))
    assert listed["ended"].startswith("unfinished at step "), listed


@pytest.mark.parametrize("job", ["pat", "drift-recovery", "spsa", "mlp"])
def test_every_run_from_here_is_refused_a_folder_another_run_saves_into(
    job: str, tmp_path: Path
) -> None:
    """The folder is the running one's: nothing of the second run is written there, and
    no board is opened for it."""
    from sidra.training.run_lock import running_in

    out = tmp_path / "runs" / "taken"
    with running_in(out):
        (out / "checkpoint.json").write_text("{}")
        refused = run_sidra("train", job, "--board", "emu://?preset=ideal", "--dataset", "iris",
                            "--out", str(out))  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert "anotherrunissavingintoitnow" in unwrapped(refused.stderr)
        assert sorted(p.name for p in out.iterdir()) == [".running.lock", "checkpoint.json"]


def test_a_comparison_whose_record_grows_run_by_run_is_shown_running(tmp_path: Path) -> None:
    """Its record is saved after every run: shown running while it does, stopped at its
    last run when stopped, and unfinished, not finished, when killed part-way (its
    settings name the runs it was to make)."""
    import signal
    import subprocess

    from tests.cli_support import SIDRA, file_written

    def started(name: str) -> subprocess.Popen[str]:
        out = tmp_path / "runs" / name
        run = subprocess.Popen(
            [*SIDRA, "train", "compare", "--board", "emu://?preset=ideal", "--dataset",
             "iris", "--budget", "200", "--method", "spsa",
             *(f"--seeds={s}" for s in range(200)), "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        file_written(out / "summary.json")(run)  # its first run is in the record
        return run

    def ended(name: str) -> str:
        listed = {row["name"]: row for row in sidra_json("runs", "list", str(tmp_path / "runs"))}
        return str(listed[name]["ended"])

    stopped, killed = started("stopped"), started("killed")
    try:
        assert re.fullmatch(r"running, saved at run \d+", ended("stopped")), ended("stopped")
        stopped.send_signal(signal.SIGINT)  # stops after the run under way, record kept
        assert stopped.wait(timeout=120) == 130
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
    finally:
        for run in (stopped, killed):
            run.kill()
            run.communicate()
    assert ended("stopped").startswith("stopped at run "), ended("stopped")
    assert re.fullmatch(r"unfinished at run \d+", ended("killed")), ended("killed")


def test_how_a_run_ended_reads_running_first_then_its_stop_then_what_is_missing(
    tmp_path: Path,
) -> None:
    """A run going on (--resume) from a stopped run's record saves into that folder: it is
    running, not stopped; a comparison's record short of its planned runs is unfinished
    unless it was stopped."""
    from sidra.training.saved_runs import SavedRun

    def ended(settings: dict[str, Any], summary: dict[str, Any], running: bool) -> str:
        return SavedRun(tmp_path, settings, summary, None, 0.0, running=running).ended

    stopped = {"job": "spsa", "stopped_at_step": 40}
    assert ended(stopped, {}, running=True) == "running"
    assert ended(stopped, {}, running=False) == "stopped at step 40"
    compare = {"job": "compare", "planned_runs": 4}
    assert ended(compare, {"runs": [{}] * 2}, running=True) == "running, saved at run 2"
    assert ended(compare, {"runs": [{}] * 2}, running=False) == "unfinished at run 2"
    assert ended(compare | {"stopped_at_run": 2}, {"runs": [{}] * 2}, False) == ("stopped at run 2")
    assert ended(compare, {"runs": [{}] * 4}, running=False) == "finished"


def test_a_run_gone_on_on_another_board_keeps_each_part_of_its_run(tmp_path: Path) -> None:
    """A run stopped (Ctrl-C) on one board and gone on with --resume on another: run.json
    named the second board alone, as if the whole run had been made there. Each part is
    kept (its board, command, times); the run started with its first part and took their
    wall times together; the list names both boards in order."""
    from tests.cli_support import file_written, interrupted

    out = tmp_path / "runs" / "moved"
    first_board, second_board = "emu://?preset=ideal&seed=1", "emu://?preset=sidra-y1&seed=2"
    status, _, stderr = interrupted(
        "train", "spsa", "--board", first_board, "--dataset", "iris", "--steps", "400",
        "--checkpoint-every", "5", "--out", str(out),
        under_way=file_written(out / "checkpoint.json"),
    )  # fmt: skip
    assert status == 130, stderr
    stopped = _json(out / "run.json")
    assert "parts" not in stopped
    sidra_json("train", "spsa", "--board", second_board, "--dataset", "iris", "--steps", "400",
               "--out", str(out), "--resume", "--json")  # fmt: skip
    run = _json(out / "run.json")
    first, second = run["parts"]
    assert first == stopped
    assert first["board_url"] == first_board and second["board_url"] == second_board
    assert run["board_url"] == second_board and "--resume" in second["command"]
    assert run["started_utc"] == first["started_utc"] <= second["started_utc"]
    assert run["wall_s"] == pytest.approx(first["wall_s"] + second["wall_s"], abs=0.002)
    (listed,) = sidra_json("runs", "list", str(tmp_path / "runs"))
    serials = [p["board"]["serial_number"] for p in run["parts"]]
    assert serials[0] != serials[1]
    assert listed["board"] == f"{serials[0]} (ideal) → {serials[1]} (sidra-y1)"
    assert listed["ended"] == "finished"
    shown = unwrapped(run_sidra("runs", "show", str(out)).stdout)
    assert "part1" in shown and "part2" in shown


def test_a_part_saved_again_replaces_itself_and_parts_follow_in_order() -> None:
    """A comparison saves its record run by run and a job's record may be fetched again:
    the same part saved again is no second part."""
    from sidra.training.provenance import going_on_from

    here = {"where": "here", "started_utc": "2026-12-07T10:00:00+00:00", "host": "h",
            "command": ["sidra", "train", "compare"], "wall_s": 1.0}  # fmt: skip
    assert going_on_from(None, here) == here
    assert going_on_from(here, here | {"wall_s": 2.0}) == here | {"wall_s": 2.0}
    job = {"where": "job", "job_id": "a" * 16, "started_utc": "2026-12-07T11:00:00+00:00",
           "wall_s": 3.0}  # fmt: skip
    both = going_on_from(here, job)
    assert both["parts"] == [here, job] and both["wall_s"] == 4.0
    assert both["started_utc"] == here["started_utc"] and both["job_id"] == job["job_id"]
    again = going_on_from(both, job | {"wall_s": 5.0, "ended_utc": "later"})
    assert again["parts"] == [here, job | {"wall_s": 5.0, "ended_utc": "later"}]
    assert again["wall_s"] == 6.0
    unknown = going_on_from(both, job | {"job_id": "b" * 16, "wall_s": None})
    assert len(unknown["parts"]) == 3 and unknown["wall_s"] is None
