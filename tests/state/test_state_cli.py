"""``sidra state show|history|usage|export|backup|restore|compact`` on a real store, run as a
user runs them."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from state_support import REPORT, TEST_BOARD, targets

from sidra.cli.state import HISTORY_DROPPED_FIRST
from sidra.server.state import StateStore
from sidra.server.state.serving import serving_store
from tests.cli_support import unwrapped

# The state commands' own app, run as a program: `sidra state` is this app (main.py).
STATE = [sys.executable, "-c", "from sidra.cli.state import state_app; state_app()"]
SERIAL = TEST_BOARD.serial_number


def run_state(
    *args: str, columns: int = 200, environ: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sidra state ARGS...`` in ``environ`` (default: this process's environment)."""
    # A wide terminal unless told: rich wraps tables to 80 columns when output is not a tty.
    env = (os.environ if environ is None else environ) | {"COLUMNS": str(columns)}
    return subprocess.run(
        [*STATE, *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "state.sqlite3"
    rng = np.random.default_rng(1)
    with StateStore(path) as store:
        store.note_board(TEST_BOARD, "boot-a")
        store.record_program(SERIAL, 0, 0, 0, targets(rng, (64, 48)), REPORT, "alice", "boot-a")
        store.record_program(SERIAL, 2, 3, 4, targets(rng, (5, 6)), REPORT, "bob", "boot-a")
    return path


def test_show_lists_boards_and_programmed_cells_per_tile(store_path: Path) -> None:
    result = run_state("show", "--store", str(store_path))
    assert result.returncode == 0, result.stderr
    assert "TEST-1 (SIDRA-TEST)" in result.stdout and "boot boot-a" in result.stdout
    assert "3,072 / 3,072" in result.stdout and "30 / 3,072" in result.stdout
    assert "never" in result.stdout  # tile 1

    shown = json.loads(run_state("show", "--store", str(store_path), "--json").stdout)
    (board,) = shown
    assert board["serial_number"] == SERIAL and board["last_boot_id"] == "boot-a"
    assert [t["programmed_cells"] for t in board["tiles"]] == [3072, 0, 30]
    assert [t["programs"] for t in board["tiles"]] == [1, 0, 1]
    assert board["tiles"][1]["last_program_utc"] is None


def test_history_as_a_table_and_as_json(store_path: Path) -> None:
    table = run_state("history", "--store", str(store_path))
    assert table.returncode == 0, table.stderr
    assert "alice" in table.stdout and "bob" in table.stdout and "3..7, 4..9" in table.stdout

    records = json.loads(run_state("history", "--store", str(store_path), "--json").stdout)
    assert [r["principal"] for r in records] == ["alice", "bob"]
    assert records[1]["region"] == {"row_offset": 3, "col_offset": 4, "rows": 5, "cols": 6}
    assert records[1]["rms_error_us"] == REPORT.rms_error_us and records[1]["kind"] == "program"
    latest = run_state("history", "--store", str(store_path), "--tile", "2", "--json")
    assert [r["principal"] for r in json.loads(latest.stdout)] == ["bob"]
    # On 80 columns a line per record still, with who and where whole (not "…").
    narrow = run_state("history", "--store", str(store_path), columns=80)
    assert "…" not in narrow.stdout and max(map(len, narrow.stdout.splitlines())) <= 80
    assert "bob" in narrow.stdout and "3..7, 4..9" in narrow.stdout
    assert "time (UTC)" in narrow.stdout and " # " not in narrow.stdout  # the number left out
    # Piped with no COLUMNS (into a log, grep): every column, a line per record.
    bare = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run([*STATE, "history", "--store", str(store_path)], capture_output=True,
                           text=True, timeout=120, check=False, env=bare)  # fmt: skip
    header = next(line for line in piped.stdout.splitlines() if "time (UTC)" in line)
    assert all(f" {name} " in f" {header} " for name in HISTORY_DROPPED_FIRST), header
    assert sum("alice" in line for line in piped.stdout.splitlines()) == 1


def test_the_history_tells_the_servers_restore_from_a_callers_program(tmp_path: Path) -> None:
    """An auditor reading the history of a server without [auth]: the Programs of
    ``sidra serve --restore`` were recorded as by ``local``, the principal of every
    caller there, so only the kind column (the first a narrow table leaves out) told
    them from a user's. They are the server's own now, ``(server)``. A lease's restore
    of the cells its holder perturbed is no Program: no record."""
    from sidra.client import connect
    from sidra.drivers import open_board
    from sidra.drivers.requests import PerturbMode, PerturbRequest
    from sidra.server.state import restore
    from tests.jobs.jobs_support import IDEAL_URL, serving

    path = tmp_path / "state.sqlite3"
    with serving(path) as address, connect(address) as client, client.session() as session:
        session.lease([0])
        client.program(0, np.full((4, 6), 20.0, np.float32))
        client.run(PerturbRequest(0, PerturbMode.APPLY, 3, 1.0, 1))
        assert session.release([0]) == (0,)  # restored by the lease's end
    with open_board(IDEAL_URL) as fresh, StateStore(path) as store:  # the board lost it all
        restore(fresh, store)
    records = json.loads(run_state("history", "--store", str(path), "--json").stdout)
    assert [(r["principal"], r["kind"]) for r in records] == [
        ("local", "program"),
        ("(server)", "restore"),
    ]
    narrow = run_state("history", "--store", str(path), columns=80)
    assert "(server)" in narrow.stdout  # the kind column is the first a narrow table drops


def test_export_writes_the_golden_targets_and_masks(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "golden.npz"
    result = run_state("export", str(out), "--store", str(store_path))
    assert result.returncode == 0, result.stderr
    with StateStore(store_path, read_only=True) as store:
        golden = store.golden(SERIAL, 2)
    with np.load(out) as saved:
        assert saved["targets_us"][2].tobytes() == golden.targets_us.tobytes()
        assert np.array_equal(saved["programmed"][2], golden.programmed)
        assert saved["programmed"][0].all() and not saved["programmed"][1].any()


def test_the_store_is_the_one_the_servers_settings_name(store_path: Path, tmp_path: Path) -> None:
    """A server started with --config FILE keeps its store at FILE's [state] path; the
    state commands read that store given the same file, SIDRA_CONFIG or SIDRA_STATE__PATH,
    not the user's default. --store names another."""
    config = tmp_path / "serve.toml"
    config.write_text(f'listen = "127.0.0.1:0"\n[state]\npath = "{store_path}"\n')
    empty = tmp_path / "empty.sqlite3"
    StateStore(empty).close()
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text(f'[state]\npath = "{empty}"\n')
    # No SIDRA_STATE__PATH (the test run sets one for its servers) and no SIDRA_CONFIG.
    bare = {k: v for k, v in os.environ.items() if k not in ("SIDRA_STATE__PATH", "SIDRA_CONFIG")}
    ways = {
        "--config": (("--config", str(config)), bare),
        "SIDRA_CONFIG": ((), bare | {"SIDRA_CONFIG": str(config)}),
        "SIDRA_STATE__PATH": ((), bare | {"SIDRA_STATE__PATH": str(store_path)}),
        # As for sidra serve: the variable wins over the file.
        "both": ((), bare | {"SIDRA_CONFIG": str(elsewhere), "SIDRA_STATE__PATH": str(store_path)}),
    }
    for way, (args, environ) in ways.items():
        shown = run_state("show", *args, "--json", environ=environ)
        assert shown.returncode == 0, (way, shown.stderr)
        assert [b["serial_number"] for b in json.loads(shown.stdout)] == [SERIAL], way
    # --store wins over the settings; show names the store it read.
    other = run_state("show", "--config", str(config), "--store", str(empty), environ=bare)
    assert other.returncode == 0, other.stderr
    assert other.stdout.startswith(f"store {empty}\n") and "holds no board yet" in other.stdout
    usage = run_state("usage", "--config", str(config), "--json", environ=bare)
    assert json.loads(usage.stdout)["store"] == str(store_path)

    missing = run_state("history", "--config", str(tmp_path / "none.toml"), environ=bare)
    assert missing.returncode == 2
    said = " ".join(missing.stderr.replace("│", " ").split())
    assert f"--config / SIDRA_CONFIG: config: file not found '{tmp_path / 'none.toml'}'" in said


def said_plainly(result: subprocess.CompletedProcess[str]) -> str:
    """A usage error's text out of its box, on one line."""
    return " ".join(result.stderr.replace("│", " ").split())


def _ways_of_naming(tmp_path: Path, store: Path) -> tuple[dict[str, Any], Path]:
    """Each way a state command is told its store (the option, the variable, a settings
    file by option or variable), with no other way set; and the settings file."""
    config = tmp_path / "serve.toml"
    config.write_text(f'[state]\npath = "{store}"\n')
    bare = {k: v for k, v in os.environ.items() if k not in ("SIDRA_STATE__PATH", "SIDRA_CONFIG")}
    bare |= {"XDG_DATA_HOME": str(tmp_path / "data")}  # the default store: an empty folder
    ways = {
        "--store": (("--store", str(store)), bare),
        "SIDRA_STATE__PATH": ((), bare | {"SIDRA_STATE__PATH": str(store)}),
        f"[state] path of {config} (--config)": (("--config", str(config)), bare),
        f"[state] path of {config} (SIDRA_CONFIG)": ((), bare | {"SIDRA_CONFIG": str(config)}),
    }
    return ways, config


@pytest.mark.parametrize("way", range(4))
def test_an_error_about_the_store_names_the_setting_that_chose_it(tmp_path: Path, way: int) -> None:
    """A store named by SIDRA_STATE__PATH or a settings file was blamed on --store, which
    the admin had not given: each error names the option, the variable or the file and
    its key, and the store's path (a command that reads the store and one that writes it:
    all of them take the path from one place)."""
    missing = tmp_path / "none.sqlite3"
    ways, _ = _ways_of_naming(tmp_path, missing)
    named_by, (args, environ) = list(ways.items())[way]
    for command in ("show", "compact"):
        refused = run_state(command, *args, environ=environ, columns=400)
        assert refused.returncode == 2, (named_by, command, refused.stderr)
        said = said_plainly(refused)
        assert f"Invalid value for {named_by}: " in said, (command, said)
        assert f"{missing}: no such file" in said, (command, said)


def test_an_error_about_the_default_store_or_a_bad_one_names_where_it_came_from(
    store_path: Path, tmp_path: Path
) -> None:
    """The default store, a file that is not a store, and a store a server holds: the
    error names the default, or the variable or file that named it, not --store."""
    ways, config = _ways_of_naming(tmp_path, tmp_path / "none.sqlite3")
    bare = ways["--store"][1]
    data = tmp_path / "data"
    default = run_state("show", environ=bare, columns=400)
    assert (
        "Invalid value for the default store (no --store, SIDRA_STATE__PATH or [state] path "
        f"names one): state store {data / 'sidra-hil' / 'state.sqlite3'}: no such file"
    ) in said_plainly(default)

    # Not a store, and a store a server holds: the variable named it, not --store.
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_text("not a database")
    with_garbage = bare | {"SIDRA_STATE__PATH": str(garbage)}
    for command in ("backup", "compact"):
        out = ("backup", str(tmp_path / "out.sqlite3")) if command == "backup" else (command,)
        said = said_plainly(run_state(*out, environ=with_garbage, columns=400))
        assert f"Invalid value for SIDRA_STATE__PATH: {garbage}: not a readable" in said, said
    held = tmp_path / "held.sqlite3"
    held.write_bytes(store_path.read_bytes())
    config.write_text(f'[state]\npath = "{held}"\n')
    with StateStore(held):  # a server has it open
        refused = run_state("compact", environ=bare | {"SIDRA_CONFIG": str(config)}, columns=400)
    assert (
        f"Invalid value for [state] path of {config} (SIDRA_CONFIG): state store {held}: "
        "compact: a server has it open"
    ) in said_plainly(refused)


def test_a_missing_store_or_board_is_a_clear_error(store_path: Path, tmp_path: Path) -> None:
    missing = run_state("show", "--store", str(tmp_path / "none.sqlite3"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert not (tmp_path / "none.sqlite3").exists()
    unknown = run_state("export", str(tmp_path / "x.npz"), "--store", str(store_path),
                        "--board", "NOPE")  # fmt: skip
    assert unknown.returncode == 2 and "board_serial: got 'NOPE'" in unknown.stderr


def test_history_of_a_board_the_store_never_saw_is_refused_not_empty(store_path: Path) -> None:
    """A misspelt serial printed an empty history, as if the board had never been written."""
    unknown = run_state("history", "--store", str(store_path), "--board", "SIDRA-NOPE")
    assert unknown.returncode == 2
    said = " ".join(unknown.stderr.replace("│", " ").split())
    assert f"got 'SIDRA-NOPE', expected a board the store has seen ({SERIAL})" in said
    assert run_state("history", "--store", str(store_path), "--board", SERIAL).returncode == 0


def test_history_of_a_tile_no_board_has_is_refused_not_empty(store_path: Path) -> None:
    """--tile 99 on a 3-tile board printed an empty history, as for a tile never written."""
    for board in ([], ["--board", SERIAL]):
        refused = run_state("history", "--store", str(store_path), "--tile", "3", *board)
        assert refused.returncode == 2
        said = " ".join(refused.stderr.replace("│", " ").split())
        assert "--tile" in said and "got 3, expected a tile in [0, 2]" in said
    one = run_state("history", "--store", str(store_path), "--tile", "2", "--json")
    assert [r["tile"] for r in json.loads(one.stdout)] == [2]
    # A tile never programmed: said so, not "program history of no board".
    never = run_state("history", "--store", str(store_path), "--tile", "1", "--board", SERIAL)
    assert never.returncode == 0 and never.stdout.strip() == (
        f"no Programs recorded on board {SERIAL}, tile 1"
    )


def test_exporting_a_store_that_holds_no_board_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    StateStore(empty).close()
    result = run_state("export", str(tmp_path / "x.npz"), "--store", str(empty))
    assert result.returncode == 2
    assert "the store holds no board yet: nothing to export" in result.stderr
    assert not (tmp_path / "x.npz").exists()


def test_usage_counts_what_the_store_holds_and_the_space_deleted_jobs_leave(
    tmp_path: Path,
) -> None:
    from sidra.drivers import Cost, Region
    from sidra.server.state.checks import CheckRow
    from sidra.server.state.deployments import DeployedRegionRow, DeploymentRecords, DeploymentRow
    from sidra.server.state.jobs import JobRecords, JobRow

    path = tmp_path / "state.sqlite3"
    rng = np.random.default_rng(2)
    record = rng.bytes(100_000)
    with StateStore(path) as store:
        store.note_board(TEST_BOARD, "boot-a")
        for _ in range(3):  # one region, one principal: one record of three Programs
            store.record_program(SERIAL, 1, 0, 0, targets(rng, (4, 4)), REPORT, "alice", "boot-a")
        jobs = JobRecords(store)
        row = JobRow("a" * 16, "spsa", "alice", "iris", "{}", "running", 1.0)
        jobs.add(row)
        row.state = "succeeded"
        jobs.update(row, [], {"steps.csv": record, "summary.json": b"{}"})
        records = DeploymentRecords(store)
        region = DeployedRegionRow(1, Region(0, 0, 4, 4), "")
        found = records.add(
            DeploymentRow(SERIAL, "demo", "alice", 1.0, "", b"", 0, (region,)), b"PK\x03\x04"
        )
        for k in range(2):
            records.add_check(found, CheckRow("demo", "bob", 2.0 + k, 1.0, 0.0, 0.0, Cost(), ()))

    def usage() -> dict[str, Any]:
        done = run_state("usage", "--store", str(path), "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    held = usage()
    assert held["store"] == str(path)
    assert (held["boards"], held["history_records"], held["programs"]) == (1, 1, 3)
    assert (held["jobs"], held["job_events"], held["job_file_bytes"]) == (1, 0, 100_002)
    assert (held["deployments"], held["deployment_checks"]) == (1, 2)
    assert held["disk_bytes"] == sum(
        f.stat().st_size for f in tmp_path.iterdir() if f.name.startswith("state.sqlite3")
    )
    with StateStore(path) as store:
        assert JobRecords(store).delete("a" * 16) == 100_002
    after = usage()
    assert (after["jobs"], after["job_file_bytes"]) == (0, 0)
    assert after["returns_free_space"] and after["free_bytes"] == 0  # given back
    assert after["disk_bytes"] <= held["disk_bytes"] - 90_000
    text = run_state("usage", "--store", str(path)).stdout
    assert "program history: 1 record of 3 Programs" in text
    assert "jobs: 0, 0 events, 0 B of record files" in text
    assert "deployments: 1, 2 checks of their cells" in text
    assert "0 B of it free, being given back to the file system" in text


def test_backup_restore_and_compact_as_a_user_runs_them(store_path: Path, tmp_path: Path) -> None:
    backup = tmp_path / "monday.sqlite3"
    made = run_state("backup", str(backup), "--store", str(store_path))
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"wrote {backup}: ") and "integrity ok" in made.stdout
    again = run_state("backup", str(backup), "--store", str(store_path))
    assert again.returncode == 2 and "exists; a backup does not overwrite" in again.stderr
    said = " ".join(again.stderr.replace("│", " ").split())
    assert "Invalid value for OUT:" in said and "--store" not in said  # the one at fault
    not_one = run_state("restore", str(tmp_path / "none.sqlite3"), "--store",
                        str(tmp_path / "x.sqlite3"), "--yes")  # fmt: skip
    said = " ".join(not_one.stderr.replace("│", " ").split())
    assert not_one.returncode == 2 and "Invalid value for BACKUP:" in said, said

    live = tmp_path / "live.sqlite3"
    StateStore(live).close()  # an empty store, to be replaced by the backup
    asked = subprocess.run(
        [*STATE, "restore", str(backup), "--store", str(live)],
        input="n\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert asked.returncode == 1 and "Aborted" in asked.stderr
    assert json.loads(run_state("show", "--store", str(live), "--json").stdout) == []
    done = run_state("restore", str(backup), "--store", str(live), "--yes")
    assert done.returncode == 0, done.stderr
    assert (
        f"{live} is now {backup} (schema " in done.stdout
        and "live.sqlite3.replaced-" in done.stdout
    )
    # Which boards it holds: the servers to start with --restore (it named none).
    assert f"it holds 1 board: {SERIAL}; sidra serve --restore on each" in done.stdout
    # What came back, and what a store never holds (the admin looked for the tokens).
    assert (
        "  program history: 2 records of 2 Programs; deployments: 0; jobs: 0; data set "
        "files for jobs: 0\n" in done.stdout
    )
    assert "not restored: the tokens file ([auth] tokens_file)" in done.stdout
    shown = json.loads(run_state("show", "--store", str(live), "--json").stdout)
    assert [board["serial_number"] for board in shown] == [SERIAL]

    compacted = run_state("compact", "--store", str(live))
    assert compacted.returncode == 0, compacted.stderr
    assert compacted.stdout.startswith(f"{live}: ") and " on disk" in compacted.stdout
    with StateStore(live):  # a server has it open
        refused = run_state("compact", "--store", str(live))
        # One that serves from it is named: it holds the store's serving lock too.
        with serving_store(live, "emu:// on 127.0.0.1:50051"):
            named = run_state("restore", str(backup), "--store", str(live), "--yes")
            unasked = subprocess.run(  # refused before the question, not after a "y"
                [*STATE, "restore", str(backup), "--store", str(live)],
                input="", capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
    assert refused.returncode == 2
    assert unwrapped("a server has it open; stop it first") in unwrapped(refused.stderr)
    assert named.returncode == 2
    assert unwrapped(
        f"sidra serve (pid {os.getpid()}, emu:// on 127.0.0.1:50051, since "
    ) in unwrapped(named.stderr)
    assert unasked.returncode == 2 and "replace" not in unasked.stdout
    assert unwrapped("stop that server first") in unwrapped(unasked.stderr)
    fresh = subprocess.run(  # no store there yet: made, not "replaced"
        [*STATE, "restore", str(backup), "--store", str(tmp_path / "new.sqlite3")],
        input="n\n", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "make " in fresh.stdout and "(no store there) from" in fresh.stdout


def test_check_says_whole_or_lists_what_is_damaged(store_path: Path, tmp_path: Path) -> None:
    whole = run_state("check", "--store", str(store_path))
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.startswith(f"{store_path}: whole (schema ")
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(store_path.read_bytes())
    db = sqlite3.connect(damaged)
    db.execute("DELETE FROM boards")  # the golden maps and history name it still
    db.commit()
    db.close()
    found = run_state("check", "--store", str(damaged), "--json")
    assert found.returncode == 1
    report = json.loads(found.stdout)
    assert report["whole"] is False and report["problems"]
    assert all(p.startswith("foreign_key_check: ") for p in report["problems"])
    text = run_state("check", "--store", str(damaged))
    assert text.returncode == 1 and "problems" in text.stderr


def test_show_lists_the_deployed_models_and_whether_they_are_intact(tmp_path: Path) -> None:
    from sidra.drivers import Region
    from sidra.server.state.deployments import DeployedRegionRow, DeploymentRecords, DeploymentRow

    path = tmp_path / "state.sqlite3"
    rng = np.random.default_rng(2)
    with StateStore(path) as store:
        store.note_board(TEST_BOARD, "boot-a")
        store.record_program(SERIAL, 1, 0, 0, targets(rng, (8, 4)), REPORT, "alice", "boot-a")
        records = DeploymentRecords(store)
        for name, region in (("kept", Region(0, 0, 4, 4)), ("written", Region(4, 0, 4, 4))):
            row = DeploymentRow(SERIAL, name, "alice", 1.0, "", b"", 0,
                                (DeployedRegionRow(1, region, ""),))  # fmt: skip
            records.add(row, b"PK\x03\x04 a model")
        store.record_program(SERIAL, 1, 6, 2, targets(rng, (1, 1)), REPORT, "bob", "boot-a")
    table = run_state("show", "--store", str(path))
    assert table.returncode == 0, table.stderr
    assert "deployed models" in table.stdout and "no: tile 1 by bob" in table.stdout
    shown = json.loads(run_state("show", "--store", str(path), "--json").stdout)
    [kept, written] = shown[0]["deployments"]
    assert (kept["name"], kept["intact"], written["name"], written["intact"]) == (
        "kept", True, "written", False,
    )  # fmt: skip
    assert written["regions"] == [
        {"tile": 1, "row_offset": 4, "col_offset": 0, "rows": 4, "cols": 4, "intact": False,
         "rewritten_by": "bob"},
    ]  # fmt: skip
