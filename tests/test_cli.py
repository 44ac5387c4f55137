"""The ``sidra`` command: serve over a real socket, the demo job, clear errors on bad URLs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import (
    SIDRA,
    file_written,
    interrupted,
    process,
    run_sidra,
    served,
    serving_line,
    sidra_json,
    unwrapped,
)
from rich.console import Console

from sidra.cli.demo import run_demo
from sidra.client import connect
from sidra.drivers import OutOfRange
from sidra.drivers.attribute_docs import attribute_doc


def test_serve_answers_until_terminated() -> None:
    proc = subprocess.Popen(
        [*SIDRA, "serve", "--board", "emu://?preset=ideal&seed=4", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = serving_line(proc.stderr)
        match = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        with connect(f"127.0.0.1:{match.group(1)}") as board:
            assert board.info.serial_number == "EMU-IDEAL-4"
            g = np.full((2, 2), 5.0, np.float32)
            board.program(3, g, row_offset=10, col_offset=20)
            assert board.mvm(3, np.zeros((1, 256), np.float32)).currents.shape == (1, 256)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        said = proc.stderr.read()  # an admin's log says why and when it stopped
        assert "stopping: SIGTERM received" in said and said.rstrip().endswith("stopped")
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


REFUSALS = 800
"""Refused calls in the test below: a 221-byte log line each, 2.7 times the 64 KiB a
pipe holds."""


def test_a_served_server_logging_past_a_full_pipe_keeps_answering() -> None:
    """sidra serve logs a line for every refusal; the test helper reads its stderr all
    along, so hundreds of logged calls cannot stall the server on a pipe no one empties
    (it did: a test's 1,500 Programs hung)."""
    with served("emu://?preset=ideal") as board:
        board.timeout_s = 20.0  # a stalled server ends the test as DEADLINE_EXCEEDED
        v = np.zeros((1, board.info.rows), np.float32)
        for _ in range(REFUSALS):
            with pytest.raises(OutOfRange, match="tile"):
                board.mvm(board.info.tile_count, v)
        assert board.mvm(0, v).currents.shape == (1, board.info.cols)


def test_serve_rejects_unknown_scheme_with_the_known_ones() -> None:
    result = run_sidra("serve", "--board", "nope://x", timeout=30)
    assert result.returncode != 0
    assert "emu://" in result.stderr and "nope://x" in result.stderr


def test_serve_with_a_board_that_is_not_there_fails_as_probe_does(tmp_path: Path) -> None:
    """A board not there is no usage error: exit 1 naming the board and why, as ``sidra
    board probe`` says it (it was exit 2 with the usage line and --help)."""
    import os

    missing = tmp_path / "gone.bar"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    result = subprocess.run(
        [*SIDRA, "serve", "--board", f"pcie+file://{missing}", "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, check=False,
        env=env | {"SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3")},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Usage:" not in result.stderr and "--help" not in result.stderr
    said = " ".join(result.stderr.split())
    assert f"sidra serve: board pcie+file://{missing}: BarError: " in said  # a BoardUnavailable


def test_demo_runs_end_to_end_and_reports_accuracy() -> None:
    console = Console(record=True, width=120)
    code = run_demo("emu://?preset=sidra-y1&seed=3", steps=100, seed=3, console=console)
    text = console.export_text()
    assert code == 0, text
    assert "MVM vs numpy" in text and "ok" in text
    match = re.search(r"test accuracy: ([\d.]+) %", text)
    assert match and float(match.group(1)) > 30.0, text
    deployed = re.search(r"Deployed the trained model on tile 2 .* test accuracy ([\d.]+) %",
                         " ".join(text.split()))  # fmt: skip
    assert deployed and abs(float(deployed.group(1)) - float(match.group(1))) < 10.0, text
    # The project's units (ns, nJ), with thousands separated, as every other command says them.
    assert re.search(r"modeled hardware time\W+\d{1,3}(,\d{3})* ns", text), text
    assert re.search(r"modeled hardware energy\W+\d{1,3}(,\d{3})* nJ", text), text
    assert "Program 65,536 cells: " in text, text


def test_serve_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from sidra.server.settings import ServerSettings

    monkeypatch.setenv("SIDRA_BOARD", "emu://?preset=ideal")
    monkeypatch.setenv("SIDRA_MAX_MESSAGE_MB", "128")
    settings = ServerSettings(listen="127.0.0.1:0")
    assert (settings.board, settings.listen, settings.max_message_mb) == (
        "emu://?preset=ideal",
        "127.0.0.1:0",
        128,
    )


def test_invalid_setting_names_field_and_limit() -> None:
    result = subprocess.run(
        [*SIDRA, "serve", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode != 0
    assert "workers" in result.stderr and "greater than or equal to 1" in result.stderr


def test_train_spsa_prints_json_and_saves_a_record(tmp_path: Path) -> None:
    summary = sidra_json(
        "train",
        "spsa",
        "--dataset",
        "iris",
        "--steps",
        "60",
        "--board",
        "emu://?preset=sidra-y1&seed=1",
        "--out",
        str(tmp_path / "run"),
    )
    for key in (
        "test_accuracy",
        "loss_evaluations",
        "mvm_calls",
        "device_writes",
        "modeled_time_ns",
        "modeled_energy_nj",
    ):
        assert key in summary
    assert summary["loss_evaluations"] == 120
    assert (tmp_path / "run" / "plot.png").stat().st_size > 0


def test_ctrl_c_stops_drift_recovery_after_its_retraining_epoch(tmp_path: Path) -> None:
    """The first SIGINT lets the retraining epoch under way end: the figures so far are
    printed, where it stopped said, exit status 130."""

    def started(proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once Ctrl-C is taken
        assert "Ctrl-C stops after the retraining epoch under way" in line, line

    status, stdout, stderr = interrupted(
        "train", "drift-recovery", "--board", "emu://?preset=pcm&seed=4", "--hidden", "32",
        "--epochs", "100000", "--read-repeats", "1", "--eval-read-repeats", "1", "--json",
        "--out", str(tmp_path / "run"), under_way=started,
    )  # fmt: skip
    assert status == 130, stderr
    summary = json.loads(stdout)
    assert summary["stopped_at_epoch"] == 1 and summary["retraining_loss_evaluations"] > 0
    assert 0.0 <= summary["recovered_accuracy"] <= 1.0
    said = " ".join(stderr.split())
    assert (
        f"stopped after epoch 1 of 100000: the figures above and the record in {tmp_path / 'run'}"
        in said
    )
    kept = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert kept["stopped_at_epoch"] == 1


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_stops_spsa_at_its_step_and_keeps_the_record_and_a_checkpoint(
    tmp_path: Path, sent: signal.Signals
) -> None:
    """The first SIGINT lets the step end: record and checkpoint saved, the way to go on
    printed, exit status 130 (an interrupted command's). A scheduler's SIGTERM (a batch
    system's time limit, systemctl stop) and the terminal closed (SIGHUP) alike, exit
    status 128 + the signal's number."""
    out = tmp_path / "run"
    status, stdout, stderr = interrupted(
        "train", "spsa", "--board", "emu://?preset=ideal", "--steps", "100000",
        "--checkpoint-every", "20", "--out", str(out), "--json",
        under_way=file_written(out / "checkpoint.json"),  # its first checkpoint
        sent=sent,
    )  # fmt: skip
    assert status == 128 + sent, stderr
    asked_by = "" if sent == signal.SIGINT else f" ({sent.name})"
    assert f"of 100000{asked_by}: the record holds" in " ".join(stderr.split())
    summary = json.loads(stdout)
    settings = json.loads((out / "settings.json").read_text())
    assert 20 <= summary["steps"] == settings["stopped_at_step"] == summary["stopped_at_step"]
    assert summary["steps"] < 100_000
    saved = json.loads((out / "checkpoint.json").read_text())
    assert saved["optimizer"]["k"] == summary["steps"]
    assert "--resume --out" in " ".join(stderr.split())


def test_ctrl_c_while_pat_characterizes_keeps_the_profile_and_trains_nothing(
    tmp_path: Path,
) -> None:
    """The first SIGINT lets the characterization end: its profile written, how to train
    from it printed, nothing trained, exit status 130."""

    def characterizing(proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once Ctrl-C is taken
        assert "characterizing the board for its twin" in line, line

    out = tmp_path / "run"
    status, stdout, stderr = interrupted(
        "train", "pat", "--board", "emu://?preset=ideal&seed=3", "--out", str(out), "--json",
        under_way=characterizing,
    )  # fmt: skip
    assert status == 130, stderr
    assert stdout == ""
    said = f"stopped before training: the twin's profile is in {out / 'twin.toml'}"
    assert unwrapped(said) in unwrapped(stderr)
    assert "[geometry]" in (out / "twin.toml").read_text()
    assert sorted(path.name for path in out.iterdir()) == ["twin.toml"]


def test_train_last_layer_over_a_remote_server(tmp_path: Path) -> None:
    from sidra.drivers import open_board
    from sidra.server import create_server

    server, port = create_server(open_board("emu://?preset=ideal&seed=2"), "127.0.0.1:0")
    server.start()
    try:
        summary = sidra_json(
            "train",
            "last-layer",
            "--dataset",
            "wine",
            "--epochs",
            "3",
            "--hidden",
            "32",
            "--server",
            f"127.0.0.1:{port}",
            "--out",
            str(tmp_path / "ll"),
        )
    finally:
        server.stop(grace=None)
    assert summary["test_accuracy"] > 0.8


def _completed(*words: str) -> list[str]:
    """What bash's Tab offers after ``sidra WORDS...`` (the last word being typed)."""
    env: dict[str, str | None] = {
        "_SIDRA_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(("sidra", *words)),
        "COMP_CWORD": str(len(words)),
    }  # fmt: skip
    done = run_sidra(env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_the_shell_completes_commands_options_and_board_urls() -> None:
    assert _completed("tr") == ["train"]
    assert "spsa" in _completed("train", "s") and "--steps" in _completed("train", "spsa", "--st")
    assert _completed("board", "read", "emu://?preset=s") == [
        "emu://?preset=sidra-y1", "emu://?preset=stress"
    ]  # fmt: skip
    assert _completed("train", "spsa", "--board", "grpc") == ["grpc://", "grpcs://"]
    assert _completed("serve", "--board", "pcie") == ["pcie://", "pcie+file://"]
    script = run_sidra("--show-completion", "bash")
    assert script.returncode == 0 and "_SIDRA_COMPLETE=complete_bash" in script.stdout


def test_train_drift_recovery_prints_every_stage_and_keeps_its_record(tmp_path: Path) -> None:
    out = tmp_path / "recovery"
    summary = sidra_json(
        "train",
        "drift-recovery",
        "--age-days",
        "30",
        "--no-reference-column",
        "--epochs",
        "1",
        "--read-repeats",
        "1",
        "--eval-read-repeats",
        "2",
        "--out",
        str(out),
    )
    # Its record, as a job's: sidra runs lists it with the recovered accuracy.
    assert summary["record"] == str(out)
    assert json.loads((out / "summary.json").read_text())["device_writes"] > 0
    assert json.loads((out / "settings.json").read_text())["age_days"] == 30
    assert json.loads((out / "run.json").read_text())["board"]["emulator_preset"] == "pcm"
    (listed,) = sidra_json("runs", "list", str(out))
    assert listed["job"] == "drift-recovery"
    assert listed["test_accuracy"] == summary["recovered_accuracy"]
    assert summary["aged_accuracy"] < summary["deployed_accuracy"] - 0.05
    assert summary["calibrated_accuracy"] > summary["aged_accuracy"]
    # Features on tile 0; the head's 257 rows (256 + bias) span tiles 1 and 2.
    assert len(summary["calibration_gains"]) == 3
    assert summary["device_writes"] > 0


# Parameters a ``sidra train`` command keeps for itself; every other parameter is a
# field of the job's option model, named like it.
_COMMAND_ONLY = {
    "spsa": {
        "dataset", "board", "server", "calibrate", "checkpoint_every", "resume",
        "checkpoint_every_s", "out", "remote_job", "queue", "priority",
    },
    "last-layer": {"dataset", "board", "server", "resume", "checkpoint_every_s", "out",
                   "remote_job", "queue", "priority"},
    "compare": {"dataset", "board", "server", "out", "remote_job", "queue", "priority"},
    "drift-recovery": {"dataset", "board", "server", "out", "remote_job", "queue", "priority"},
    "eqprop": {"dataset", "board", "server", "resume", "checkpoint_every_s", "out",
               "remote_job", "queue", "priority"},
    "ff": {"dataset", "board", "server", "resume", "checkpoint_every_s", "out", "remote_job",
           "queue", "priority"},
    "mlp": {"dataset", "board", "server", "resume", "checkpoint_every_s", "out", "remote_job",
            "queue", "priority"},
    "pat": {"dataset", "board", "server", "profile", "resume", "checkpoint_every_s", "out",
            "remote_job", "queue", "priority"},
}  # fmt: skip
# Defaults the command sets itself (documented in the flag's help).
_COMMAND_DEFAULTS = {("spsa", "eval_every")}


@pytest.mark.parametrize("command", list(_COMMAND_ONLY))
def test_every_option_field_has_a_flag_and_every_flag_a_field(command: str) -> None:
    from sidra.cli.commands import whole_command
    from sidra.cli.options import field_help
    from sidra.cli.train import train_app
    from sidra.training import (
        CompareOptions,
        EqPropOptions,
        FFOptions,
        LastLayerOptions,
        MLPOptions,
        PATOptions,
        RecoveryOptions,
        SPSAOptions,
    )

    model = {
        "spsa": SPSAOptions,
        "last-layer": LastLayerOptions,
        "compare": CompareOptions,
        "drift-recovery": RecoveryOptions,
        "eqprop": EqPropOptions,
        "ff": FFOptions,
        "mlp": MLPOptions,
        "pat": PATOptions,
    }[command]
    group = whole_command(train_app)
    params = {p.name: p for p in group.commands[command].params}  # type: ignore[attr-defined]
    assert "like" in params  # every training run may start from an earlier one's settings
    assert params.keys() - {"as_json", "like"} - _COMMAND_ONLY[command] == model.model_fields.keys()
    defaults = model()
    for name in model.model_fields:
        param = params[name]
        if (command, name) in _COMMAND_DEFAULTS:
            continue
        assert param.help and param.help == field_help(model, name), name
        flagged = model(**{name: param.default})
        assert getattr(flagged, name) == getattr(defaults, name), name


def test_an_invalid_option_names_the_flag_the_value_and_the_limit() -> None:
    result = run_sidra("train", "spsa", "--steps", "0", "--batch-size", "0", timeout=60)
    assert result.returncode == 2
    assert "--steps: got 0; input should be greater than or equal to 1" in result.stderr
    assert "--batch-size: got 0" in result.stderr
    assert "Traceback" not in result.stderr


def _parameters() -> list[tuple[tuple[str, ...], Any]]:
    """(command path, parameter) of every parameter of every ``sidra`` command."""
    from sidra.cli.commands import whole_command
    from sidra.cli.main import app

    found = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))
        found.extend((path, param) for param in getattr(command, "params", ()))

    walk(whole_command(app), ())
    return found


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    """(path, command) of ``sidra`` and every command and group under it."""
    from sidra.cli.commands import whole_command
    from sidra.cli.main import app

    found = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(whole_command(app), ("sidra",))
    return found


@pytest.mark.parametrize(
    ("path", "command"), _commands(), ids=[" ".join(path) for path, _ in _commands()]
)
def test_every_command_opens_its_help_with_a_one_line_summary(
    path: tuple[str, ...], command: Any
) -> None:
    """The summary is what a group's list of commands shows, and typer keeps its line
    breaks there: a summary over two lines breaks the list's column."""
    import inspect

    summary = inspect.cleandoc(command.help or "").split("\n\n")[0]
    assert summary, f"{' '.join(path)} has no help"
    assert "\n" not in summary, f"{' '.join(path)}: {summary!r}"


def test_help_paragraphs_are_wrapped_to_the_terminal_not_to_the_source_lines() -> None:
    """Typer keeps a docstring's line breaks after its first paragraph; an 80-column
    terminal would then wrap each source line of about 88 into a line and a stub."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    broken = [
        " ".join(path)
        for path, command in _commands()
        for paragraph in (command.help or "").split("\n\n")
        if "\n" in paragraph and not paragraph.lstrip().startswith("- ")
    ]
    assert broken == []
    result = CliRunner().invoke(app, ["status", "--help"], env={"COLUMNS": "80"})
    lines = [line.strip() for line in result.output.splitlines()]
    assert "A block per server (the servers asked at once); asked with a viewer's calls" in lines
    assert any(line.startswith("only, and a part a server refuses says why.") for line in lines)


@pytest.mark.parametrize(
    ("path", "command"), _commands(), ids=[" ".join(path) for path, _ in _commands()]
)
def test_on_80_columns_help_cuts_no_option_name_and_no_word(
    path: tuple[str, ...], command: Any
) -> None:
    """Typer's panels would show ``--eval-read-repe…`` on a laptop's terminal; such a
    command's help is click's plain text there, its panels where they fit."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    result = CliRunner().invoke(app, [*path[1:], "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert result.output.count("…") == sum(t.count("…") for t in texts), result.output
    assert max(map(len, result.output.splitlines())) <= 80
    names = [n for p in command.params for n in (*p.opts, *p.secondary_opts) if n.startswith("-")]
    words = set(result.output.replace(",", " ").replace("/", " ").split())
    assert [n for n in names if n not in words] == [], result.output
    assert "\\[" not in result.output  # an escape meant for rich's markup only


@pytest.mark.parametrize(
    ("path", "command"), _commands(), ids=[" ".join(path) for path, _ in _commands()]
)
def test_a_flag_is_listed_without_a_value(path: tuple[str, ...], command: Any) -> None:
    """Typer's panels give a flag the type ``<bool>``, as if ``--json true`` were asked
    for: every flag, ``--help`` and the completion options too, is listed alone."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    result = CliRunner().invoke(app, [*path[1:], "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "╭─ Options" in result.output  # the panels, where typer writes the types
    assert "<bool>" not in result.output, result.output


def test_help_keeps_its_panels_where_they_fit() -> None:
    from typer.testing import CliRunner

    from sidra.cli.main import app

    wide = CliRunner().invoke(app, ["train", "spsa", "--help"], env={"COLUMNS": "200"}).output
    narrow = CliRunner().invoke(app, ["train", "spsa", "--help"], env={"COLUMNS": "80"}).output
    assert "╭─ Options" in wide and "--eval-read-repeats" in wide
    assert "╭─ Options" not in narrow and "\nOptions:\n" in narrow
    assert "[default: 5 % of --steps]" in " ".join(narrow.split())  # no escape left
    status = CliRunner().invoke(app, ["status", "--help"], env={"COLUMNS": "80"}).output
    assert "╭─ Arguments" in status  # nothing of it is cut: its panels stay


@pytest.mark.parametrize(
    ("path", "command"), _commands(), ids=[" ".join(path) for path, _ in _commands()]
)
def test_every_bracketed_name_in_a_help_text_reaches_the_screen(
    path: tuple[str, ...], command: Any
) -> None:
    """Help is rich markup: an unescaped ``[metrics]`` or ``[rows, cols]`` is taken for a
    style and vanishes from the screen. Section names of the configuration ([auth],
    [limits]) and array shapes ([batch, inputs]) must show."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    names = {unwrapped(m.replace("\\", "")) for t in texts for m in re.findall(r"\\?\[[^][]+\]", t)}
    if not names:
        return
    result = CliRunner().invoke(app, [*path[1:], "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = unwrapped(result.output)
    assert not [n for n in names if n not in shown], (names, result.output)


def test_no_help_text_shows_docstring_markup() -> None:
    """Option help comes from the options' field docstrings: a cross-reference
    (``:class:`MLPOptions```) or a ````literal```` shows as its plain name."""
    texts = [
        (" ".join(path), getattr(param, "help", None) or "") for path, param in _parameters()
    ] + [(" ".join(path), command.help or "") for path, command in _commands()]
    markup = re.compile(r":(?:class|func|meth|attr|data|mod):`|``")
    assert [(where, text) for where, text in texts if markup.search(text)] == []
    from sidra.cli.options import help_text

    assert help_text("wider than the :class:`MLPOptions` default") == (
        "wider than the MLPOptions default"
    )
    assert help_text(":class:`~sidra.training.PATOptions` of ``x``") == "PATOptions of x"


def test_a_help_naming_another_setting_names_its_flag() -> None:
    """The help said "(None: read_repeats)" and "None: placed (see tiles)": names of the
    Python options, which the command line has not."""
    from sidra.cli.options import field_help
    from sidra.training import LastLayerOptions, MLPOptions, PATOptions

    assert "read_repeats" in attribute_doc(MLPOptions, "eval_read_repeats")
    assert field_help(MLPOptions, "eval_read_repeats").endswith("(None: --read-repeats).")
    assert field_help(LastLayerOptions, "feature_tile").endswith("None: placed (see --tiles).")
    assert "whatever --board-epochs)" in field_help(PATOptions, "in_silico")
    shown = run_sidra("train", "mlp", "--help", columns=200)
    assert unwrapped("(None: --read-repeats)") in unwrapped(shown.stdout)
    assert "sidra board compare" in field_help(PATOptions, "board_epochs")  # not a field


@pytest.mark.parametrize(
    "command", [path[2] for path, _ in _commands() if path[1:2] == ("train",) and len(path) == 3]
)
def test_every_training_command_says_what_ctrl_c_does(command: str) -> None:
    """Each stops at a boundary of its own and keeps what it did: its help says which."""
    from sidra.cli.commands import whole_command
    from sidra.cli.train import train_app

    text = " ".join((whole_command(train_app).commands[command].help or "").split())
    assert "Ctrl-C stops" in text and "second Ctrl-C stops at once" in text, command


def _bounded_options() -> list[tuple[tuple[str, ...], str, int, int | None]]:
    """(command path, flag, min, max) of every ``sidra`` option typer bounds."""
    return [
        (path, param.opts[0], param.min, param.max)
        for path, param in _parameters()
        if getattr(param, "min", None) is not None and param.opts
    ]


def test_some_options_are_bounded_by_typer() -> None:
    assert len(_bounded_options()) >= 20  # the walk below reaches them


@pytest.mark.parametrize(
    ("path", "flag", "least", "most"), _bounded_options(), ids=lambda v: str(v).replace(" ", "")
)
def test_a_value_out_of_an_options_bounds_names_the_flag_the_value_and_the_bound(
    path: tuple[str, ...], flag: str, least: int, most: int | None
) -> None:
    """Refused while parsing, before the command runs: nothing is opened or served."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    for given, allowed in [(least - 1, f"greater than or equal to {least}")] + (
        [(most + 1, f"less than or equal to {most}")] if most is not None else []
    ):
        result = CliRunner().invoke(app, [*path, flag, str(given)])
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.replace("│", " ").split())  # the box unwrapped
        assert f"Invalid value for '{flag}': got {given}; input should be {allowed}" in text


def _commands_with(flag: str) -> list[tuple[str, ...]]:
    return [path for path, param in _parameters() if flag in getattr(param, "opts", ())]


def test_the_preset_option_is_on_the_benchmarks_and_the_board_server() -> None:
    assert len(_commands_with("--preset")) >= 5


@pytest.mark.parametrize("path", _commands_with("--preset"), ids=" ".join)
def test_an_unknown_preset_is_refused_naming_the_known_ones(path: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    from sidra.cli.main import app
    from sidra.emulator import PRESETS

    result = CliRunner().invoke(app, [*path, "--preset", "sidra-z9"])
    assert result.exit_code == 2, result.output  # refused while parsing: nothing started
    text = " ".join(result.output.replace("│", " ").split())
    known = ", ".join(sorted(PRESETS))
    assert f"Invalid value for '--preset': got sidra-z9; expected one of {known}" in text


@pytest.mark.parametrize(
    "path", [p for p in _commands_with("--out") if p[0] == "train"], ids=" ".join
)
def test_a_record_folder_that_cannot_be_one_is_refused_before_training(
    path: tuple[str, ...], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from sidra.cli.main import app

    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    for out in (taken, taken / "run"):  # the file itself, or a file on the way to it
        result = CliRunner().invoke(app, [*path, "--out", str(out)])
        assert result.exit_code == 2, result.output  # refused while parsing: nothing ran
        text = " ".join(result.output.replace("│", " ").split())
        assert "Invalid value for '--out': got" in text and "is a file, expected a folder" in text


@pytest.mark.parametrize(
    "path", [p for p in _commands_with("--out") if p[0] == "train"], ids=" ".join
)
@pytest.mark.parametrize("kept", ["summary.json", "settings.json"])
def test_a_folder_holding_an_earlier_record_is_not_written_over(
    path: tuple[str, ...], kept: str, tmp_path: Path
) -> None:
    """Refused before the run, the earlier run's files as they were; a command that can
    go on from a record (``--resume``: every training command but compare and
    drift-recovery) offers to when it holds a checkpoint, else to run it again (--like)."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    earlier = tmp_path / "run"
    earlier.mkdir()
    (earlier / kept).write_text('{"test_accuracy": 0.97}')
    result = CliRunner().invoke(app, [*path, "--out", str(earlier)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert f"which holds an earlier run's record ({kept}); name another folder" in text
    goes_on = path[1] not in ("compare", "drift-recovery")
    assert "--resume" not in text
    assert (unwrapped(f"or --like {earlier} to run it again") in unwrapped(text)) == goes_on
    assert [p.name for p in earlier.iterdir()] == [kept]
    assert (earlier / kept).read_text() == '{"test_accuracy": 0.97}'
    (earlier / "checkpoint.json").write_text("{}")  # stopped early: it may go on
    result = CliRunner().invoke(app, [*path, "--out", str(earlier)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert ("or --resume to go on from it" in text) == goes_on


@pytest.mark.parametrize(
    "path", [p for p in _commands_with("--out") if p[0] == "train"], ids=" ".join
)
def test_a_remote_job_s_folder_holding_an_earlier_record_is_refused_before_it_is_sent(
    path: tuple[str, ...], tmp_path: Path
) -> None:
    """A --remote-job saves its record into --out when it ends: a folder holding another
    run's is refused before anything is sent (nothing listens at the server given)."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    earlier = tmp_path / "run"
    earlier.mkdir()
    (earlier / "summary.json").write_text("{}")
    remote = ["--remote-job", "--server", "127.0.0.1:1", "--out", str(earlier)]
    result = CliRunner().invoke(app, [*path, *remote])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "which holds an earlier run's record (summary.json)" in text


def test_every_training_command_takes_a_record_folder() -> None:
    assert len([p for p in _commands_with("--out") if p[0] == "train"]) == 8


def test_runs_of_the_same_second_get_folders_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sidra.cli.train import running

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(running.time, "strftime", lambda form: "20261207-020000")
    first = running.record_folder(None, "tune")
    assert first == Path("runs/tune-20261207-020000")
    first.mkdir(parents=True)
    second = running.record_folder(None, "tune")
    assert second == Path("runs/tune-20261207-020000-2")
    second.mkdir()
    assert running.record_folder(None, "tune") == Path("runs/tune-20261207-020000-3")
    assert running.record_folder(tmp_path / "mine", "tune") == tmp_path / "mine"


def test_a_record_that_cannot_be_saved_after_the_run_is_kept_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder passed the check when the command started, but is gone by the end."""
    import typer

    from sidra.cli.train.running import save_or_keep

    wanted = tmp_path / "run"
    saved = []

    def save(folder: Path) -> Path:
        if folder == wanted:
            raise OSError(28, "No space left on device")
        (folder / "summary.json").write_text("{}")
        saved.append(folder)
        return folder

    with pytest.raises(typer.Exit) as stopped:
        save_or_keep(save, wanted, "spsa")
    assert stopped.value.exit_code == 1
    [kept] = saved
    assert (kept / "summary.json").exists()
    shutil.rmtree(kept)
    message = capsys.readouterr().err
    assert f"could not be saved in {wanted}" in message and f"it is saved in {kept}" in message


def test_a_stop_signal_while_the_record_is_saved_waits_for_the_whole_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C (here SIGINT sent to this process) in the half second the record takes to
    save, after the run's own handler has ended: it was a bare KeyboardInterrupt, the
    record never written and nothing said. Now the save ends first, then the command
    stops with 130 saying where the record is; the signal handlers are as before."""
    import os
    import signal

    import typer

    from sidra.cli.train.running import save_or_keep

    before = signal.getsignal(signal.SIGINT)
    wanted = tmp_path / "run"

    def save(folder: Path) -> Path:
        folder.mkdir()
        (folder / "steps.csv").write_text("step\n")
        os.kill(os.getpid(), signal.SIGINT)  # between two of the record's files
        (folder / "summary.json").write_text("{}")
        return folder

    with pytest.raises(typer.Exit) as stopped:
        save_or_keep(save, wanted, "spsa")
    assert stopped.value.exit_code == 130
    assert (wanted / "summary.json").exists()
    message = " ".join(capsys.readouterr().err.split())
    assert "sidra train spsa: saving the record first (Ctrl-C again to stop at once" in message
    assert f"sidra train spsa: stopped while saving the record; it is complete in {wanted}" in (
        message
    )
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log-file"])
def test_a_run_refused_before_its_first_step_leaves_no_empty_bar(terminal: bool) -> None:
    """A refusal raised inside the bar (a checkpoint of other options to resume, a layer
    that does not fit) printed ``spsa 0/3000`` above the error; a run that failed after
    steps keeps its bar, which says how far it went."""
    import io

    from rich.console import Console

    from sidra.cli.train.running import progress_bar

    def drawn(steps: int) -> str:
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=80)
        with pytest.raises(ValueError), progress_bar(console) as progress:
            task = progress.add_task("spsa", total=3000, status="")
            if steps:  # the run's own callback, after each step
                progress.update(task, completed=steps)
            raise ValueError("a 0.3 given, the run's is 0.5")
        return out.getvalue()

    refused, stopped = drawn(0), drawn(12)
    assert "12/3000" in stopped and not stopped.endswith("\x1b[2K")
    if terminal:  # drawn as the bar started, then erased as it stopped
        assert refused.endswith("\x1b[1A\x1b[2K"), repr(refused[-40:])
    else:  # a log file gets the last bar only, and none here
        assert "0/3000" not in refused


@pytest.mark.parametrize("job", ["spsa", "mlp"])
def test_a_batch_larger_than_the_data_set_is_said(job: str, tmp_path: Path) -> None:
    """--batch-size 5000 on digits' 1,257 training samples ran on them all without a word:
    the record's settings say 5000, the batches were 1,257."""
    length = ("--steps", "2") if job == "spsa" else ("--epochs", "1")
    done = run_sidra("train", job, *length, "--batch-size", "5000",
                     "--out", str(tmp_path / "run"), timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = unwrapped(done.stdout + done.stderr)
    assert unwrapped("note: --batch-size 5000 is more than the 1,257 training samples") in said
    fitting = run_sidra("train", job, *length, "--batch-size", "64",
                        "--out", str(tmp_path / "fits"), timeout=180)  # fmt: skip
    assert fitting.returncode == 0 and "note: --batch-size" not in fitting.stdout + fitting.stderr


def test_options_that_do_not_fit_together_are_refused_before_training() -> None:
    result = run_sidra("train", "spsa", "--second-order", "--mode", "board", timeout=60)
    assert result.returncode == 2
    assert "--second-order: got True with mode board" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_spsa_that_loses_its_board_keeps_its_steps_and_resumes(tmp_path: Path) -> None:
    """The board unplugged mid-run: exit 1 naming the error, the steps made in
    <out>/checkpoint.json; the same command again is refused (it would start over
    them), with --resume it goes on to the end."""
    out = tmp_path / "run"
    faults = "unplug_after=40,unplug_s=inf"
    with process("board", "serve", "--pty", "--preset", "ideal", "--faults", faults) as (url, _):
        lost = run_sidra(
            "train", "spsa", "--board", f"{url}?timeout=0.05&retries=1", "--dataset", "iris",
            "--steps", "20", "--out", str(out),
        )  # fmt: skip
    said = unwrapped(lost.stderr)
    assert lost.returncode == 1, lost.stderr
    assert unwrapped("sidra train: BoardUnavailable:") in said
    assert unwrapped(f"steps made are kept in {out}/checkpoint.json") in said
    assert unwrapped(f"the same command with --out {out} --resume goes on") in said
    assert [p.name for p in out.iterdir()] == ["checkpoint.json"]
    again = ["train", "spsa", "--board", "emu://?preset=ideal", "--dataset", "iris",
             "--steps", "20", "--out", str(out)]  # fmt: skip
    refused = run_sidra(*again)
    assert refused.returncode == 2
    assert unwrapped("holds an earlier run's record (checkpoint.json)") in unwrapped(refused.stderr)
    resumed = run_sidra(*again, "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == 20


_IMPORTS_AFTER_HELP = """
import contextlib, io, json, sys
sys.argv = ["sidra", *sys.argv[1:]]
from sidra.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "command",
    [
        "status",
        "whoami",
        "leases",
        "jobs list",
        "jobs datasets list",
        "runs list",
        "state show",
        "model list",
        "model check",
        "model checks",
        "model pull",
        "board probe",
        "board scan",
        "board read",
        "board program",
    ],
)
def test_a_command_that_reads_a_server_or_a_record_imports_neither_the_service_nor_the_emulator(
    command: str,
) -> None:
    """Each command group is imported when a command line names it (sidra.cli.commands):
    these start without the service, the emulator and the training methods, which would
    double their start (and every shell completion's)."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER_HELP, *command.split(), "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    imported = set(json.loads(run.stdout))
    assert "sidra.cli.commands" in imported  # the lazy group did the loading
    heavy = {"sidra.server.app", "sidra.emulator", "sidra.training.board_spsa", "sklearn",
             "sidra.training.deployment"}  # fmt: skip
    assert not heavy & imported, f"sidra {command} imports {sorted(heavy & imported)}"


def test_the_whole_command_line_loads_every_group_when_listed() -> None:
    from sidra.cli.commands import LAZY_COMMANDS, whole_command
    from sidra.cli.main import app

    group = whole_command(app)
    assert set(LAZY_COMMANDS) | {"serve", "demo"} == set(group.commands)


@pytest.mark.parametrize("group", ["", "model", "board", "train"])
def test_each_command_summary_is_the_first_paragraph_of_its_loaded_help(group: str) -> None:
    """``sidra --help`` and ``sidra model|board|train --help`` show the summaries declared
    with the loaders; the loaded commands' own help (their docstrings, their apps' help)
    is what they must say."""
    import inspect

    from sidra.cli.board_group import BOARD_COMMANDS
    from sidra.cli.commands import LAZY_COMMANDS
    from sidra.cli.model_group import MODEL_COMMANDS
    from sidra.cli.train import TRAIN_COMMANDS

    lazy = {"": LAZY_COMMANDS, "model": MODEL_COMMANDS, "board": BOARD_COMMANDS,
            "train": TRAIN_COMMANDS}[group]  # fmt: skip
    for name, loader in lazy.items():
        command = loader()
        first = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0]
        assert loader.summary == " ".join(first.split()), f"sidra {group} {name}"


_GROUP_MODULES = {"model": "sidra.cli.model_group", "board": "sidra.cli.board_group",
                  "train": "sidra.cli.train"}  # fmt: skip
"""The module of each lazy group's listing."""


@pytest.mark.parametrize("completing", [False, True])
@pytest.mark.parametrize("group", ["", "model", "board", "train"])
def test_listing_the_commands_or_completing_one_loads_none_of_them(
    group: str, completing: bool
) -> None:
    """``sidra [model|board|train] --help`` and ``sidra [model|board|train] <TAB>`` show
    every command by its summary, importing none of them (each used to cost the imports
    of every command listed: about a second) and no board code."""
    import subprocess
    import sys

    words = [group] if group else []
    env = os.environ | (
        {"_SIDRA_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(["sidra", *words, ""]),
         "COMP_CWORD": str(len(words) + 1)}
        if completing
        else {}
    )  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER_HELP, *words, *([] if completing else ["--help"])],
        capture_output=True, text=True, check=True, timeout=60, env=env,
    )  # fmt: skip
    imported = set(json.loads(run.stdout.splitlines()[-1]))
    own = {"sidra.cli", "sidra.cli.commands", "sidra.cli.completion", "sidra.cli.main",
           "sidra.cli.options"} | ({_GROUP_MODULES[group]} if group else set())  # fmt: skip
    assert {m for m in imported if m.startswith("sidra.cli")} == own
    assert not {m for m in imported if m.startswith(("sidra.server", "sidra.client"))}
    # Nor the drivers package and numpy (~120 ms): field_option imports its docstrings'
    # reader when a command is defined, not when sidra.cli.options is imported.
    assert not {m for m in imported if m.startswith(("sidra.drivers", "numpy"))}


def test_a_mistyped_command_is_told_the_nearest_one_loaded_or_not() -> None:
    """The groups are imported when named, and a typo names none: the suggestion still
    comes from every command."""
    typo = run_sidra("statsu")
    assert typo.returncode == 2
    assert unwrapped("No such command 'statsu'. Did you mean 'status', 'state'?") in unwrapped(
        typo.stderr
    )


@pytest.mark.parametrize(
    "path",
    [p for p in _commands_with("--remote-job") if p in _commands_with("--board")],
    ids=" ".join,
)
def test_a_board_typed_with_remote_job_is_refused_not_ignored(path: tuple[str, ...]) -> None:
    """A job runs on its server's board: --board with --remote-job named a board the job
    never used (nothing listens at the server given; refused before it is asked)."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    needed = ["--out", "tuned.npz"] if path == ("model", "tune") else []  # a required option
    result = CliRunner().invoke(
        app, [*path, *needed, "--remote-job", "--server", "127.0.0.1:1", "--board", "emu://"]
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "'--board': got emu:// with --remote-job" in text


def test_a_run_off_a_terminal_writes_its_progress_as_lines(tmp_path: Path) -> None:
    """Rich draws only the last bar where stdout is no terminal (a log under nohup): a
    line with the same figures is written as the run goes (the first at the first update, then every
    LOG_EVERY_S), so the log says how far it is."""
    done = run_sidra("train", "spsa", "--board", "emu://?preset=ideal", "--steps", "20",
                     "--out", str(tmp_path / "run"), timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.search(r"^spsa \d+/20 loss \d+\.\d{3}$", done.stdout, re.MULTILINE), done.stdout


def test_board_serve_refuses_a_preset_beside_a_profile(tmp_path: Path) -> None:
    """The profile is the whole board: a --preset beside it was ignored without a word."""
    profile = tmp_path / "p.toml"
    profile.write_text("schema_version = 2\n")
    refused = run_sidra("board", "serve", "--tcp", "127.0.0.1:0", "--profile", str(profile),
                        "--preset", "stress", timeout=60)  # fmt: skip
    assert refused.returncode == 2
    assert unwrapped("got --preset stress with --profile") in unwrapped(refused.stderr)


def test_resume_of_a_run_that_went_to_the_end_says_so(tmp_path: Path) -> None:
    """--resume on a finished record (the --out refusal offered it) ran "0/5000" and then
    failed reading a checkpoint.json that a finished run never keeps."""
    run = tmp_path / "run"
    done = run_sidra("train", "spsa", "--board", "emu://?preset=ideal", "--steps", "6",
                     "--out", str(run), timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    refused = run_sidra("train", "spsa", "--board", "emu://?preset=ideal", "--steps", "6",
                        "--out", str(run), "--resume", timeout=120)  # fmt: skip
    assert refused.returncode == 2
    said = unwrapped(refused.stderr)
    assert unwrapped("keeps no checkpoint.json to go on from") in said
    assert unwrapped(f"--like {run} runs it again") in said
    assert "0/6" not in refused.stdout  # refused before any step


def test_none_on_the_command_line_is_what_the_help_says_it_is(tmp_path: Path) -> None:
    """The help said "None keeps it constant" and "None = calibrate", and the command
    line refused None as no number; --calibrate --a 3.0 dropped the 3.0 without a word."""
    constant = tmp_path / "constant"
    sidra_json("train", "last-layer", "--dataset", "iris", "--epochs", "2",
               "--final-learning-rate", "none", "--board", "emu://?preset=ideal",
               "--out", str(constant))  # fmt: skip
    settings = json.loads((constant / "settings.json").read_text())
    assert settings["final_learning_rate"] is None
    refused = run_sidra("train", "last-layer", "--final-learning-rate", "fast")
    assert refused.returncode == 2
    assert unwrapped("'--final-learning-rate': got 'fast', expected a number or none") in (
        unwrapped(refused.stderr)
    )
    calibrated = tmp_path / "calibrated"
    sidra_json("train", "spsa", "--dataset", "iris", "--steps", "20", "--calibrate", "--a",
               "3.0", "--board", "emu://?preset=ideal", "--out", str(calibrated))  # fmt: skip
    gains = json.loads((calibrated / "settings.json").read_text())
    assert gains["a"] == 3.0 and gains["c"] != 0.2  # a kept as given, c calibrated


def test_none_is_taken_for_a_whole_number_whose_help_says_what_none_does(
    tmp_path: Path,
) -> None:
    """--trainable's help said "None: every layer" and the command line refused none as
    no integer: a run --like a record of --trainable 1 could not train every layer."""
    head = tmp_path / "head"
    sidra_json("train", "mlp", "--dataset", "iris", "--epochs", "1", "--hidden", "8",
               "--trainable", "1", "--board", "emu://?preset=ideal",
               "--out", str(head))  # fmt: skip
    every = tmp_path / "every"
    sidra_json("train", "mlp", "--like", str(head), "--trainable", "none",
               "--board", "emu://?preset=ideal", "--out", str(every))  # fmt: skip
    settings = json.loads((every / "settings.json").read_text())
    assert settings["trainable"] is None and settings["hidden"] == [8]
    refused = run_sidra("train", "mlp", "--trainable", "two")
    assert refused.returncode == 2
    assert unwrapped("'--trainable': got 'two', expected a whole number or none") in (
        unwrapped(refused.stderr)
    )
    bounded = run_sidra("train", "last-layer", "--feature-tile", "-1")
    assert bounded.returncode == 2  # the field's own bound still holds
    assert unwrapped("--feature-tile: got -1; input should be greater than or equal to 0") in (
        unwrapped(bounded.stderr)
    )


def test_several_values_given_in_one_are_told_to_be_given_once_each() -> None:
    """``--hidden 32,16`` was refused as no integer, without a word of how an option that
    takes a list is given several values."""
    refused = run_sidra("train", "mlp", "--hidden", "32,16")
    assert refused.returncode == 2
    said = unwrapped(refused.stderr)
    assert unwrapped("got 32,16; input should be a valid integer") in said
    assert unwrapped("give --hidden once per value: --hidden 32 --hidden 16") in said
    spaced = unwrapped(run_sidra("model", "eval", "--tile", "1 2").stderr)
    assert unwrapped("give --tiles once per value: --tiles 1 --tiles 2") in spaced
    one = unwrapped(run_sidra("train", "mlp", "--hidden", "wide").stderr)
    assert "gotwide;" in one and "onceper" not in one  # one value: nothing to split
