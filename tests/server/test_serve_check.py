"""``sidra serve --check``: the settings checked as a start would, nothing started, nothing
written (the state store read only, never migrated), exit 2 naming what would stop a
start. Real files: a TOML configuration, a tokens file, SQLite stores of older and newer
schemas."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidra.server.security import Role, add_principal
from sidra.server.state.schema import SCHEMA_VERSION
from tests.cli_support import SIDRA, unwrapped
from tests.state.state_support import store_of_schema


def check(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    return subprocess.run(
        [*SIDRA, "serve", "--config", str(config), "--check", *extra],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


def config(tmp_path: Path, store: Path, board: str = "emu://?preset=ideal") -> Path:
    tokens = tmp_path / "tokens.toml"
    add_principal(tokens, "alice", Role.PROGRAMMER)
    add_principal(tokens, "visitor", Role.VIEWER, valid_for=timedelta(hours=1),
                  now=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    path = tmp_path / "sidra.toml"
    path.write_text(
        f'board = "{board}"\nlisten = "127.0.0.1:0"\n'
        f'[state]\npath = "{store}"\n[auth]\ntokens_file = "{tokens}"\n'
        '[metrics]\nlisten = "127.0.0.1:9464"\n'
    )
    return path


def test_a_start_is_described_and_an_older_store_is_left_unmigrated(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    older = store_of_schema(store, SCHEMA_VERSION - 1)
    older.commit()
    older.close()
    before = store.read_bytes()
    done = check(config(tmp_path, store))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "board: emu://?preset=ideal (opened at start, not now)"
    assert lines[1] == "listen: 127.0.0.1:0 (plaintext)"  # port 0: any free one
    assert "listen: 127.0.0.1:0 (plaintext)" in lines
    assert any(line.startswith("auth: 2 principals in") and "tokens expired: visitor" in line
               for line in lines)  # fmt: skip
    assert (
        f"state: {store}, schema {SCHEMA_VERSION - 1}: a start migrates it to {SCHEMA_VERSION} "
        "(sidra state backup first keeps a copy an older SIDRA HIL reads)"
    ) in lines
    # (the machine may have something on 9464: then it is noted, and still no problem)
    assert any(line.startswith("metrics: http://127.0.0.1:9464/metrics") for line in lines)
    assert "these settings would start" in done.stderr
    assert store.read_bytes() == before  # read only
    assert not Path(f"{store}-wal").exists()


def test_a_store_yet_to_be_made_is_said_so(tmp_path: Path) -> None:
    store = tmp_path / "new" / "state.sqlite3"
    done = check(config(tmp_path, store))
    assert done.returncode == 0, done.stderr
    assert f"state: {store} (made at start)" in done.stdout.splitlines()
    assert not store.exists() and not store.parent.exists()


@pytest.mark.parametrize(
    "what",
    ["newer schema", "not a store", "unknown scheme", "no such serial device", "no such PCI "
     "device", "no BAR file", "emu option", "serial option", "socket shape", "pcie option"],
)  # fmt: skip
def test_what_would_stop_a_start_exits_2_naming_it(tmp_path: Path, what: str) -> None:
    store, board = tmp_path / "state.sqlite3", "emu://?preset=ideal"
    if what == "newer schema":
        db = store_of_schema(store, SCHEMA_VERSION)
        db.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
        db.commit()
        db.close()
        expected = (
            f"state.path: {store}: schema_version: got {SCHEMA_VERSION + 1}, expected 1 .. "
            f"{SCHEMA_VERSION}: the store was written by a newer SIDRA HIL"
        )
    elif what == "not a store":
        store.write_bytes(b"not a database at all, " * 100)
        expected = "cannot be read as a state store"
    elif what == "unknown scheme":
        board, expected = "tape://drive0", "board: 'tape://drive0' has no scheme"
    elif what == "no such serial device":
        board = f"serial://{tmp_path}/ttyUSB7?baud=115200"
        expected = f"board: {board}: {tmp_path}/ttyUSB7 does not exist (sidra board scan"
    elif what == "no such PCI device":
        board = "pcie://0000:7f:1f.7"
        expected = f"board: {board}: no PCI device 0000:7f:1f.7 (lspci -D lists the addresses)"
    # A URL its driver refuses at start (an option or a shape), as the driver says it:
    # the check passed them, and the start then exited 2 with the driver's words.
    elif what == "emu option":
        board, expected = "emu://?preset=bogus", "url preset: got 'bogus', expected one of"
    elif what == "serial option":
        board = f"serial://{tmp_path}/ttyUSB7?baud=abc"
        expected = "url baud: got 'abc', expected an integer in 50 .. 100000000"
    elif what == "socket shape":
        board, expected = "socket://localhost", "expected socket://HOST:PORT"
    elif what == "pcie option":
        board = f"pcie+file://{tmp_path}/sidra.bar?timeout=-1"
        expected = "url timeout: got '-1', expected seconds in (0, 600]"
    else:
        board = f"pcie+file://{tmp_path}/sidra.bar"
        expected = f"{tmp_path}/sidra.bar does not exist (sidra board serve --pcie-file makes it)"
    done = check(config(tmp_path, store, board))
    assert done.returncode == 2
    assert "sidra serve --check: " in done.stderr and expected in done.stderr


def test_settings_that_do_not_load_exit_2_as_a_start_does(tmp_path: Path) -> None:
    path = tmp_path / "sidra.toml"
    path.write_text('board = "emu://"\ncolour = "blue"\n')
    done = check(path)
    assert done.returncode == 2 and "colour" in done.stderr


def test_a_device_that_is_there_and_a_port_in_use_are_noted(tmp_path: Path) -> None:
    """A device present is said to be there; a port another process listens on is noted
    (the service being replaced holds it until it stops), not counted a problem."""
    device = tmp_path / "ttyUSB0"
    device.touch()  # what --check looks at is whether the path is there
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        path = config(tmp_path, tmp_path / "state.sqlite3", f"serial://{device}")
        path.write_text(path.read_text().replace('listen = "127.0.0.1:0"',
                                                 f'listen = "127.0.0.1:{port}"'))  # fmt: skip
        done = check(path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"board: serial://{device} (there; opened at start, not now)"
    assert lines[1] == (
        f"listen: 127.0.0.1:{port} (plaintext); cannot be bound now: Address already in use "
        "(another process listens there: a sidra serve already running?)"
    )


def test_a_tls_key_others_can_read_is_warned_of(tmp_path: Path) -> None:
    """trustme and many copy commands leave a key 0644: whoever reads it can pose as the
    server. --check (and a start) says so with the chmod that mends it; 0600 is quiet."""
    from tests.server.security_support import make_pki

    pki = make_pki(tmp_path / "pki")
    path = config(tmp_path, tmp_path / "state.sqlite3")
    with path.open("a", encoding="utf-8") as f:
        f.write(f'[tls]\ncert = "{pki.server_cert}"\nkey = "{pki.server_key}"\n')
    os.chmod(pki.server_key, 0o644)
    loose = check(path)
    assert loose.returncode == 0, loose.stderr
    assert f"warning: tls.key: {pki.server_key} is readable by everyone (mode 644)" in (
        loose.stdout
    )
    assert f"chmod 600 {pki.server_key}" in loose.stdout
    os.chmod(pki.server_key, 0o600)
    assert "warning: tls.key" not in check(path).stdout


def test_metrics_on_every_interface_are_warned_of(tmp_path: Path) -> None:
    """The metrics endpoint is plain HTTP with no token: on 0.0.0.0 it answers whoever
    reaches the host. --check says so; loopback and one interface's address are quiet."""
    path = config(tmp_path, tmp_path / "state.sqlite3")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('listen = "127.0.0.1:9464"', 'listen = "0.0.0.0:0"'))
    wide = check(path)
    assert wide.returncode == 0, wide.stderr
    assert "warning: metrics.listen: 0.0.0.0:0 listens on every interface" in wide.stdout
    assert "bind it to 127.0.0.1" in wide.stdout
    path.write_text(text)
    assert "warning: metrics" not in check(path).stdout


def test_a_store_path_through_a_file_is_said_so_without_a_traceback(tmp_path: Path) -> None:
    """A file where the store's folder should be: --check said it would start (and a
    start printed a FileExistsError traceback)."""
    (tmp_path / "afile").write_text("")
    store = tmp_path / "afile" / "state.sqlite3"
    checked = check(config(tmp_path, store))
    assert checked.returncode == 2
    assert f"state.path: {store} cannot be made: {tmp_path / 'afile'} is a file" in " ".join(
        checked.stderr.split()
    )
    started = _started_on(store)
    assert started.returncode == 2 and "Traceback" not in started.stderr
    assert "is a file, not a folder" in " ".join(started.stderr.replace("│", " ").split())


def _started_on(store: Path) -> subprocess.CompletedProcess[str]:
    """``sidra serve`` started on the state store ``store`` with none of this environment's
    SIDRA_* settings, as a start that fails ends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    return subprocess.run(
        [*SIDRA, "serve", "--listen", "127.0.0.1:0"], capture_output=True, text=True,
        timeout=60, check=False, env={**env, "SIDRA_STATE__PATH": str(store)},
    )  # fmt: skip


def test_a_damaged_store_stops_the_check(tmp_path: Path) -> None:
    """A store with garbage in its middle: --check said it would start, and so it did,
    acknowledging Programs; only a --restore found the damage. Both refuse it now."""
    import numpy as np

    from sidra.server.state import StateStore
    from tests.state.state_support import REPORT, TEST_BOARD, targets

    store = tmp_path / "state.sqlite3"
    with StateStore(store) as kept:
        kept.note_board(TEST_BOARD, "boot-a")
        for tile in range(TEST_BOARD.tile_count):
            kept.record_program(TEST_BOARD.serial_number, tile, 0, 0,
                                targets(np.random.default_rng(tile), (32, 48)), REPORT,
                                "alice", "boot-a")  # fmt: skip
    size = store.stat().st_size
    with store.open("r+b") as file:  # pages in the middle, not the header
        file.seek(size // 2)
        file.write(bytes(range(256)) * 16)
    checked = check(config(tmp_path, store))
    assert checked.returncode == 2, checked.stdout
    said = " ".join(checked.stderr.split())
    assert f"state.path: {store} is damaged (" in said and "sidra state restore BACKUP" in said
    started = _started_on(store)
    assert started.returncode == 2 and "Traceback" not in started.stderr
    said = unwrapped(started.stderr)  # the path may be wrapped in rich's box
    assert f"{store}isdamaged(" in said and "sidrastaterestoreBACKUP" in said


def test_a_port_in_use_makes_the_last_line_say_when_it_would_start(tmp_path: Path) -> None:
    """ "a start is refused until that server stops", then "these settings would start"."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        path = config(tmp_path, tmp_path / "state.sqlite3")
        path.write_text(path.read_text().replace('listen = "127.0.0.1:0"',
                                                 f'listen = "127.0.0.1:{port}"'))  # fmt: skip
        done = check(path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "sidra serve --check: these settings would start once what holds their port or "
        "store now (above) stops"
    )


def test_relative_paths_are_named_as_the_server_would_look_for_them(tmp_path: Path) -> None:
    """A relative path is taken from the folder the server starts in, not the config's:
    "file not found 'tls/server.pem'" sent the admin to look beside the config."""
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "sidra.toml"
    path.write_text('listen = "127.0.0.1:0"\n[tls]\ncert = "tls/server.pem"\nkey = "tls/k.pem"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    done = subprocess.run(
        [*SIDRA, "serve", "--config", str(path), "--check"],
        capture_output=True, text=True, timeout=60, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    said = unwrapped(done.stderr)
    assert done.returncode == 2
    assert unwrapped(f"that is {tmp_path / 'tls/server.pem'}") in said, done.stderr
    assert unwrapped(f"taken from the folder the server starts in, {tmp_path}") in said


def test_a_sidra_variable_that_names_no_setting_is_warned_of(tmp_path: Path) -> None:
    """SIDRA_LIMITS__MAX_BACH was refused, SIDRA_LIMIT__MAX_BATCH passed over in silence."""
    from sidra.server.settings import unread_variables

    warned = unread_variables({"SIDRA_LIMIT__MAX_BATCH": "4", "SIDRA_WROKERS": "2",
                               "SIDRA_TOKEN": "t", "SIDRA_LIMITS__MAX_BATCH": "4",
                               "PATH": "/bin"})  # fmt: skip
    assert [w.split(" is set")[0] for w in warned] == ["SIDRA_LIMIT__MAX_BATCH", "SIDRA_WROKERS"]
    assert "(SIDRA_LIMITS__MAX_BATCH?)" in warned[0] and "(SIDRA_WORKERS?)" in warned[1]
    store = tmp_path / "state.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    done = subprocess.run(
        [*SIDRA, "serve", "--config", str(config(tmp_path, store)), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**env, "SIDRA_LIMIT__MAX_BATCH": "4"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("warning: SIDRA_LIMIT__MAX_BATCH is set")


def test_a_value_from_the_environment_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file said 64, SIDRA_LIMITS__MAX_BATCH 0: the error named only the key, and the
    admin searched sidra.toml for it."""
    from sidra.server.settings import ConfigError, load_settings

    monkeypatch.setenv("SIDRA_LIMITS__MAX_BATCH", "0")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "(from the environment variable SIDRA_LIMITS__MAX_BATCH)" in str(refused.value)
    assert str(refused.value).startswith("limits.max_batch")


def test_allow_insecure_is_warned_of_as_a_start_warns(tmp_path: Path) -> None:
    """A start beyond loopback without TLS or [auth] logs a warning for each; --check
    printed none of them."""
    path = tmp_path / "sidra.toml"
    path.write_text(
        f'listen = "0.0.0.0:0"\nallow_insecure = true\n[state]\npath = "{tmp_path / "s.db"}"\n'
    )
    done = check(path)
    assert done.returncode == 0, done.stderr
    assert (
        "warning: serving without TLS on 0.0.0.0:0: traffic and tokens travel in clear "
        "(allow_insecure)"
    ) in done.stdout.splitlines()
    assert any(line.startswith("warning: serving without [auth] on 0.0.0.0:0")
               for line in done.stdout.splitlines())  # fmt: skip
