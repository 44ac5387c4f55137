"""Keeping a store: its free space given back, backups taken while servers write,
a backup restored and a store compacted only with every server stopped, and nothing
lost or changed by a refused one (sidra.server.state.upkeep)."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from sidra.server.state import StateStore, StateStoreError
from sidra.server.state.jobs import JobRecords, JobRow
from sidra.server.state.schema import SCHEMA_VERSION
from sidra.server.state.upkeep import backup_store, check_store, compact_store, restore_backup
from tests.state.state_support import REPORT, TEST_BOARD, store_of_schema, targets

MIB = 1 << 20


def _add_job(records: JobRecords, job_id: str, file_bytes: int, ended_unix_s: float) -> bytes:
    """An ended job with a record file of ``file_bytes`` random bytes (which SQLite cannot
    compress away); returns the file."""
    content = np.random.default_rng(int(job_id, 16)).bytes(file_bytes)
    row = JobRow(job_id, "spsa", "local", "iris", "{}", "running", ended_unix_s - 60.0)
    records.add(row)
    row.state, row.ended_unix_s = "succeeded", ended_unix_s
    records.update(row, [], {"steps.csv": content})
    return content


def _jobs(path: Path) -> dict[str, str]:
    """Each job's id and its file's SHA-256, read with sqlite3 alone."""
    db = sqlite3.connect(path)
    try:
        return {
            str(job_id): hashlib.sha256(content).hexdigest()
            for job_id, content in db.execute("SELECT job_id, content FROM job_files")
        }
    finally:
        db.close()


def test_a_store_gives_the_space_of_deleted_jobs_back(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with StateStore(path) as store:
        records = JobRecords(store)
        for k in range(3):
            _add_job(records, f"{k:016x}", 6 * MIB, 1000.0 + k)  # the last one is kept
        full = store.disk_bytes()
        assert records.delete(f"{0:016x}") == 6 * MIB
        assert list(records.delete_ended_before(1001.5)) == [f"{1:016x}"]
        held = store.usage()
        assert held.returns_free_space
        assert held.free_bytes == 0  # every free page given back
        # 12 MiB of files gone; the log is cut back to its limit after its checkpoint.
        assert store.disk_bytes() < full - 7 * MIB
        kept = records.read_file(f"{2:016x}", "steps.csv", 0, 8 * MIB)
        assert hashlib.sha256(kept.content).digest() == kept.sha256 and len(kept.content) == 6 * MIB
        assert store.integrity_check() == "ok"


def test_a_store_made_before_keeps_its_free_pages_until_compacted(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    made = store_of_schema(path, 1)  # as an older SIDRA HIL made it: auto_vacuum off
    made.commit()
    made.close()
    with StateStore(path) as store:
        records = JobRecords(store)
        kept = _add_job(records, f"{1:016x}", 2 * MIB, 1000.0)
        _add_job(records, f"{2:016x}", 8 * MIB, 1000.0)
        records.delete(f"{2:016x}")
        held = store.usage()
        assert not held.returns_free_space and held.free_bytes >= 8 * MIB
        assert store.reclaim_free_space() == 0  # cannot: pages stay for reuse
        with pytest.raises(StateStoreError, match="compact: a server has it open"):
            compact_store(path)
    before = _jobs(path)
    done = compact_store(path)
    assert not done.was_returning_space
    assert done.bytes_after < done.bytes_before - 7 * MIB
    assert _jobs(path) == before == {f"{1:016x}": hashlib.sha256(kept).hexdigest()}
    with StateStore(path) as store:  # and now it gives space back as it goes
        assert store.usage().returns_free_space
        records = JobRecords(store)
        _add_job(records, f"{3:016x}", 4 * MIB, 1000.0)
        records.delete(f"{3:016x}")
        assert store.usage().free_bytes == 0
        assert store.integrity_check() == "ok"


def test_a_backup_holds_what_was_committed_when_it_began(tmp_path: Path) -> None:
    """Taken while a writer holds a transaction open: the backup is consistent, with
    what was committed and nothing of the transaction."""
    path, out = tmp_path / "s.sqlite3", tmp_path / "backup.sqlite3"
    rng = np.random.default_rng(5)
    with StateStore(path) as store:
        store.note_board(TEST_BOARD, "boot-1")
        g = targets(rng, (8, 6))
        store.record_program("TEST-1", 1, 2, 3, g, REPORT, "alice", "boot-1")
        _add_job(JobRecords(store), f"{7:016x}", MIB, 1000.0)
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM job_files")  # not committed while the backup runs
        made = backup_store(path, out)
        writer.execute("ROLLBACK")
        writer.close()
    assert made.path == out and made.bytes == out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    with StateStore(out, read_only=True) as copy:
        assert copy.integrity_check() == "ok"
        np.testing.assert_array_equal(copy.golden("TEST-1", 1).targets_us[2:10, 3:9], g)
        assert [r.principal for r in copy.history()] == ["alice"]
    assert _jobs(out) == _jobs(path) and len(_jobs(out)) == 1


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("taken.sqlite3", "out: .*taken.sqlite3 exists; a backup does not overwrite"),
        ("no/such/folder/b.sqlite3", "out: .*no/such/folder does not exist"),
    ],
)
def test_a_backup_is_refused_before_it_writes(tmp_path: Path, out: str, message: str) -> None:
    path = tmp_path / "s.sqlite3"
    StateStore(path).close()
    (tmp_path / "taken.sqlite3").write_bytes(b"mine")
    with pytest.raises(StateStoreError, match=message):
        backup_store(path, tmp_path / out)
    assert (tmp_path / "taken.sqlite3").read_bytes() == b"mine"


def test_a_damaged_store_leaves_no_backup(tmp_path: Path) -> None:
    path, out = tmp_path / "s.sqlite3", tmp_path / "b.sqlite3"
    with StateStore(path) as store:
        _add_job(JobRecords(store), f"{1:016x}", MIB, 1000.0)
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 64] = bytes(64)  # a b-tree page's header zeroed
    path.write_bytes(bytes(data))
    with pytest.raises(StateStoreError, match="store: .*(integrity_check: |not a)"):
        backup_store(path, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial


@contextmanager
def _server_process(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store open as a server does (writable), until the
    caller kills it or leaves."""
    code = (
        "import sys\n"
        "from sidra.server.state import StateStore\n"
        "store = StateStore(sys.argv[1])\n"
        "print('open', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None and process.stdout.readline() == "open\n"
            yield process
        finally:
            process.kill()


def test_restore_and_compact_wait_for_every_server_even_one_in_another_process(
    tmp_path: Path,
) -> None:
    path, out = tmp_path / "s.sqlite3", tmp_path / "b.sqlite3"
    StateStore(path).close()
    backup_store(path, out)
    with _server_process(path) as server:
        before = path.read_bytes()
        for refused in (lambda: compact_store(path), lambda: restore_backup(out, path)):
            with pytest.raises(StateStoreError, match="a server has it open; stop it first"):
                refused()
        assert path.read_bytes() == before  # nothing changed
        backup_store(path, tmp_path / "b2.sqlite3")  # a backup needs no stop
        os.kill(server.pid, signal.SIGKILL)  # a killed server's lock goes with it
        server.wait()
        assert restore_backup(out, path).replaced is not None


def test_a_restore_keeps_the_store_it_replaces_with_its_log_merged(tmp_path: Path) -> None:
    """The store replaced by a backup is kept whole: even what only its write-ahead log
    held (a server killed after committing) is in the file kept aside."""
    path, out = tmp_path / "s.sqlite3", tmp_path / "b.sqlite3"
    StateStore(path).close()
    backup_store(path, out)  # a backup with no job
    code = (
        "import os, sys\n"
        "from sidra.server.state import StateStore\n"
        "from sidra.server.state.jobs import JobRecords, JobRow\n"
        "store = StateStore(sys.argv[1])\n"
        "JobRecords(store).add(JobRow('ab' * 8, 'spsa', 'local', 'iris', '{}', 'running', 1.0))\n"
        "os._exit(0)  # committed, never closed: the row is in the log only\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert path.with_name("s.sqlite3-wal").stat().st_size > 0
    done = restore_backup(out, path)
    assert done.replaced is not None and done.replaced.name.startswith("s.sqlite3.replaced-")
    assert not done.replaced.with_name(done.replaced.name + "-wal").exists()
    kept = sqlite3.connect(done.replaced)
    assert kept.execute("SELECT id FROM jobs").fetchall() == [("ab" * 8,)]
    kept.close()
    with StateStore(path) as store:  # the backup, served
        assert JobRecords(store).recent() == []
        assert store.integrity_check() == "ok"


@pytest.mark.parametrize("backup", ["junk", "newer", "missing"])
def test_a_backup_that_is_no_store_is_refused_and_the_store_kept(
    tmp_path: Path, backup: str
) -> None:
    path = tmp_path / "s.sqlite3"
    with StateStore(path) as store:
        _add_job(JobRecords(store), f"{1:016x}", MIB, 1000.0)
    source = tmp_path / backup
    if backup == "junk":
        source.write_bytes(os.urandom(8192))
    elif backup == "newer":
        db = store_of_schema(source, 5)
        db.execute("INSERT INTO schema_version VALUES (99, 'later')")
        db.commit()
        db.close()
    before = _jobs(path)
    message = {
        "junk": "backup: .*junk: not a readable state store",
        "newer": "backup: .*schema_version: got 99, expected 1 .. ",
        "missing": "backup: .*missing: no such file",
    }[backup]
    with pytest.raises(StateStoreError, match=message):
        restore_backup(source, path)
    assert _jobs(path) == before
    assert (
        sorted(p.name for p in tmp_path.iterdir() if "replaced" in p.name or p.name[0] == ".") == []
    )


def test_a_backup_restored_into_a_new_place_makes_its_folder(tmp_path: Path) -> None:
    """A new lab machine: the backup becomes its first store."""
    path, out = tmp_path / "s.sqlite3", tmp_path / "b.sqlite3"
    with StateStore(path) as store:
        _add_job(JobRecords(store), f"{4:016x}", MIB, 1000.0)
    backup_store(path, out)
    fresh = tmp_path / "new" / "sidra-hil" / "state.sqlite3"
    done = restore_backup(out, fresh)
    assert done.replaced is None
    assert _jobs(fresh) == _jobs(path)


def test_check_finds_damage_and_rows_naming_rows_that_are_not_there(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with StateStore(path) as store:
        _add_job(JobRecords(store), f"{5:016x}", MIB, 1000.0)
    assert check_store(path).whole and check_store(path).schema_version == SCHEMA_VERSION
    db = sqlite3.connect(path)  # foreign keys off, as a careless hand edit would be
    db.execute("DELETE FROM jobs")
    db.commit()
    db.close()
    found = check_store(path)
    assert not found.whole
    assert found.problems[0] == (
        "foreign_key_check: job_files row 1 names a row of jobs that is not there"
    )
    with pytest.raises(StateStoreError, match="backup: .*foreign_key_check: "):
        restore_backup(path, tmp_path / "other.sqlite3")  # not a whole store: refused
    os.truncate(path, path.stat().st_size // 3)  # SQLite cannot read it at all now
    found = check_store(path)  # a finding as the others are (it raised, a usage error)
    assert not found.whole and found.problems[0].startswith("not a readable state store (")


def test_a_new_store_and_its_backups_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """A store holds every principal's models, data sets and job records: made 0600 (its
    write-ahead log and index take the same mode), and so is a backup of it; a store that
    exists keeps the mode its owner gave it."""
    path = tmp_path / "state.sqlite3"
    with StateStore(path) as store:
        store.note_board(TEST_BOARD, "boot-a")
        for made in (path, path.with_name(path.name + "-wal")):
            assert made.stat().st_mode & 0o777 == 0o600, made
    out = tmp_path / "backup.sqlite3"
    backup_store(path, out)
    assert out.stat().st_mode & 0o777 == 0o600
    shared = tmp_path / "shared.sqlite3"
    shared.touch(mode=0o640)
    os.chmod(shared, 0o640)
    StateStore(shared).close()
    assert shared.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_a_damaged_store_is_replaced_by_its_backup_and_kept_aside(
    tmp_path: Path, damage: str
) -> None:
    """``sidra state check`` sends a damaged store to its backup; the restore refused it
    (merging its log into the damaged file failed). The damaged file is kept aside as it
    is, with its log, and the backup is in its place, readable by its owner only."""
    path, out = tmp_path / "s.sqlite3", tmp_path / "b.sqlite3"
    with StateStore(path) as store:
        _add_job(JobRecords(store), f"{5:016x}", MIB, 1000.0)
    backup_store(path, out)
    size = path.stat().st_size
    if damage == "truncated":
        os.truncate(path, size // 2)
    else:
        path.write_bytes(os.urandom(size))
    damaged = path.read_bytes()
    os.chmod(out, 0o644)  # a backup copied about with a looser mode
    done = restore_backup(out, path)
    assert done.replaced is not None and done.replaced.read_bytes() == damaged
    assert _jobs(path) == _jobs(out)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_backup_drops_what_a_killed_backup_left(tmp_path: Path) -> None:
    """kill -9 during a backup left .NAME.partial-PID (tens of MB) and its -journal,
    which no later backup removed; those of a process still alive are not touched."""
    path, out = tmp_path / "s.sqlite3", tmp_path / "b.sqlite3"
    StateStore(path).close()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    left = [
        tmp_path / f".b.sqlite3.partial-{gone}",
        tmp_path / f".b.sqlite3.partial-{gone}-journal",
    ]
    alive = tmp_path / f".b.sqlite3.partial-{os.getppid()}"
    for file in (*left, alive):
        file.write_bytes(b"half a backup")
    backup_store(path, out)
    assert [file.exists() for file in left] == [False, False] and alive.exists()
