"""One server per state store: a second ``sidra serve`` on a store another one serves from
is refused before it opens its board, naming the first (which keeps serving, its running
job untouched); a stopped or killed server leaves the store free. Real processes, a real
SQLite file; ``sidra serve --check`` notes the server holding it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from sidra.client import connect
from sidra.server.state import StateStoreError
from sidra.server.state.serving import serving_path, serving_store, store_served_by
from tests.cli_support import SIDRA, serving_line, unwrapped

BOARD = "emu://?preset=ideal&seed=2"


def _serve(store: Path) -> subprocess.Popen[str]:
    env = os.environ | {"SIDRA_STATE__PATH": str(store)}
    return subprocess.Popen(
        [*SIDRA, "serve", "--board", BOARD, "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _port(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    match = re.search(r"on 127\.0\.0\.1:(\d+)", serving_line(proc.stderr))
    assert match
    return int(match.group(1))


def _second(store: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SIDRA_STATE__PATH": str(store), "COLUMNS": "200"}
    return subprocess.run(
        [*SIDRA, "serve", "--board", BOARD, "--listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


def test_a_second_server_on_a_served_store_is_refused_and_the_first_keeps_its_job(
    tmp_path: Path,
) -> None:
    store = tmp_path / "state.sqlite3"
    first = _serve(store)
    try:
        port = _port(first)
        with connect(f"127.0.0.1:{port}") as client:
            job = client.jobs.submit("spsa", {"steps": 1_000_000, "tiles": [0]}, dataset="iris")
            refused = _second(store)
            assert refused.returncode == 2
            said = unwrapped(refused.stderr)
            assert unwrapped(f"state store {store} is in use by another sidra serve (pid "
                             f"{first.pid}, {BOARD} on 127.0.0.1:0, since ") in said  # fmt: skip
            assert "givethisoneastoreofitsown" in said
            # The first one's running job was not marked interrupted by the second's start.
            assert client.jobs.get(job.job_id).state == "running"
            assert client.health() == "SERVING"
            checked = subprocess.run(
                [*SIDRA, "serve", "--board", BOARD, "--listen", "127.0.0.1:0", "--check"],
                capture_output=True, text=True, timeout=60, check=False,
                env=os.environ | {"SIDRA_STATE__PATH": str(store)},
            )  # fmt: skip
            assert checked.returncode == 0, checked.stderr
            assert f"in use now by pid {first.pid}, {BOARD} on 127.0.0.1:0" in checked.stdout
            client.jobs.cancel(job.job_id)
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        assert first.stderr is not None
        first.stderr.close()
    assert store_served_by(store) is None  # stopped: free, and it says nobody
    again = _serve(store)
    try:
        _port(again)  # it serves
    finally:
        again.kill()  # killed: the kernel lets go of its lock
        again.wait()
        assert again.stderr is not None
        again.stderr.close()
    assert store_served_by(store) is None


def test_the_lock_names_its_holder_and_is_let_go_at_the_end(tmp_path: Path) -> None:
    store = tmp_path / "deep" / "state.sqlite3"  # its folder made as the store's would be
    with serving_store(store, "emu:// on 127.0.0.1:1"):
        held = store_served_by(store)
        assert held is not None and held.startswith(f"pid {os.getpid()}, emu:// on 127.0.0.1:1")
        with pytest.raises(StateStoreError) as refused, serving_store(store, "second holder"):
            pass
        assert held in str(refused.value) and "second holder" not in str(refused.value)
    assert store_served_by(store) is None
    assert serving_path(store).read_text() == ""  # nobody named once it is let go


def test_another_name_of_a_served_store_is_the_same_store(tmp_path: Path) -> None:
    """A symbolic link to a served store started a second server on it (the lock was
    named after the path given); a hard link too, with a write-ahead log of its own.
    The link is the same store; a store with several hard links is refused."""
    real = tmp_path / "real" / "state.sqlite3"
    real.parent.mkdir()
    real.write_bytes(b"")
    linked = tmp_path / "linked.sqlite3"
    linked.symlink_to(real)
    with serving_store(real, "emu:// on 127.0.0.1:1"):
        assert store_served_by(linked) is not None
        with pytest.raises(StateStoreError, match="pid "), serving_store(linked, "second"):
            pass
    hard = tmp_path / "hard.sqlite3"
    os.link(real, hard)
    with pytest.raises(StateStoreError, match="has 2 hard links"), serving_store(real, "x"):
        pass
