"""Keeping a state store: back it up, restore a backup, give its free space back.

A server's store is live: copying the file with ``cp`` while the server writes can
give a copy whose pages come from different moments (and leaves out what is still in
the write-ahead log). :func:`backup_store` takes a consistent snapshot through
SQLite itself (``VACUUM INTO`` in one read transaction), safe while servers run: it
holds what was committed when it started, compacted, checked with ``PRAGMA
integrity_check`` and fsynced before it takes its name.

:func:`restore_backup` and :func:`compact_store` change the file under a server's
feet, so they run only while no server has the store open: every writable
:class:`~sidra.server.state.store.StateStore` holds a shared ``flock`` on the
sidecar ``<store>.lock`` (:func:`held_by_server`), and they take it exclusively or
refuse. The lock goes with the process that held it, a killed server's too.

Free space. A store made by this version returns the pages deleted jobs leave to the
file system as it goes (``auto_vacuum = INCREMENTAL``,
:meth:`StateStore.reclaim_free_space`). A store made before keeps them for reuse
(the file does not shrink) until :func:`compact_store` rewrites it, which also
switches it to returning them.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sidra.server.state.errors import StateStoreError
from sidra.server.state.paths import disk_bytes, made_private
from sidra.server.state.schema import schema_version, version_problem
from sidra.server.state.serving import store_served_by

__all__ = [
    "AUTO_VACUUM_INCREMENTAL",
    "BackupRestored",
    "BackupReport",
    "CompactReport",
    "StoreCheck",
    "backup_store",
    "check_store",
    "compact_store",
    "held_by_server",
    "lock_path",
    "restore_backup",
]

AUTO_VACUUM_INCREMENTAL = 2
"""``PRAGMA auto_vacuum``'s value for INCREMENTAL: free pages go back to the file
system when asked (``PRAGMA incremental_vacuum``)."""


def lock_path(store: Path) -> Path:
    """The sidecar file a server's ``flock`` is held on: ``<store>.lock``."""
    return store.with_name(store.name + ".lock")


def _open_lock(store: Path) -> int:
    return os.open(lock_path(store), os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def held_by_server(store: Path) -> Iterator[None]:
    """A shared lock saying "a server has ``store`` open", for as long as it is entered
    (every writable StateStore holds one; readers do not)."""
    fd = _open_lock(store)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def _no_server(store: Path, doing: str) -> Iterator[None]:
    """The store's lock held exclusively while ``doing``; StateStoreError at once if a
    server (any writable StateStore, in any process) has the store open."""
    fd = _open_lock(store)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = store_served_by(store)
            which = "a server has it open" if holder is None else f"sidra serve ({holder}) has it"
            raise StateStoreError(
                f"state store {store}: {doing}: {which}; stop it first (a backup needs no "
                "stop: sidra state backup)"
            ) from None
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class BackupReport:
    """A backup written by :func:`backup_store`."""

    path: Path
    bytes: int
    """The backup file's size, bytes (compacted: the store's free pages left out)."""
    schema_version: int
    taken_utc: datetime
    """When its snapshot was taken: it holds what was committed then."""


def backup_store(store: Path, out: Path) -> BackupReport:
    """Writes a consistent copy of ``store`` to ``out`` (which must not exist), safe while
    servers write it. The copy is made under a temporary name next to ``out``, checked
    (``integrity_check``, schema version) and fsynced, then renamed: ``out`` is either a
    whole, checked backup or absent."""
    version = _checked(store, "store")
    if out.exists() or out.is_symlink():
        raise StateStoreError(f"out: {out} exists; a backup does not overwrite (name a new file)")
    if not out.parent.is_dir():
        what = "is a file, not a folder" if out.parent.exists() else "does not exist"
        raise StateStoreError(f"out: {out.parent} {what} (a backup makes no folder)")
    _drop_leftovers(out)
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    taken = datetime.now(UTC)
    try:
        made_private(partial)  # VACUUM INTO fills an empty file, keeping its mode
        with closing(_read_only(store)) as db:
            db.execute("VACUUM INTO ?", (str(partial),))
        _checked(partial, "backup")
        _fsync(partial)
        os.link(partial, out)  # unlike a rename, never replaces a file made meanwhile
        _fsync(out.parent)
    except sqlite3.Error as exc:
        raise StateStoreError(f"state store {store}: backup to {out} failed: {exc}") from exc
    except FileExistsError:
        raise StateStoreError(
            f"out: {out} exists; a backup does not overwrite (name a new file)"
        ) from None
    except OSError as exc:
        raise StateStoreError(f"out: {out}: {exc.strerror or exc}") from exc
    finally:
        with suppress(FileNotFoundError):
            partial.unlink()
    return BackupReport(out, out.stat().st_size, version, taken)


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What :func:`compact_store` did."""

    path: Path
    bytes_before: int
    """The store's files on disk before (file, write-ahead log, index), bytes."""
    bytes_after: int
    was_returning_space: bool
    """Whether the store already returned deleted jobs' pages as it went (made by a
    version that does); it does from now on either way."""


def compact_store(store: Path) -> CompactReport:
    """Rewrites ``store`` without its free pages (SQLite's ``VACUUM``: all or nothing) and
    sets it to return the pages deleted jobs leave from now on. Refused while a server
    has it open."""
    _checked(store, "store")
    before = disk_bytes(store)
    with _no_server(store, "compact"):
        try:
            with closing(sqlite3.connect(store, isolation_level=None)) as db:
                was = db.execute("PRAGMA auto_vacuum").fetchone()[0] == AUTO_VACUUM_INCREMENTAL
                db.execute(f"PRAGMA auto_vacuum = {AUTO_VACUUM_INCREMENTAL}")
                db.execute("VACUUM")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StateStoreError(f"state store {store}: compact failed: {exc}") from exc
    return CompactReport(store, before, disk_bytes(store), was)


@dataclass(frozen=True, slots=True)
class BackupRestored:
    """What :func:`restore_backup` did."""

    path: Path
    backup: Path
    replaced: Path | None
    """Where the store the backup replaced was kept (None: there was none)."""
    schema_version: int
    """The backup's schema version (an older one is migrated by the next server)."""


def restore_backup(backup: Path, store: Path) -> BackupRestored:
    """Puts ``backup`` (a store file: :func:`backup_store`) in the place of ``store``.

    Refused while a server has ``store`` open, and when the backup is not a whole store
    of a schema this version reads; then nothing changes. The store it replaces is kept
    beside it as ``<store>.replaced-<UTC time>``, its write-ahead log merged into it
    first, so a restore loses nothing either."""
    version = _checked(backup, "backup")
    try:  # a first store in a new place: its folder, as a server would make it
        store.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateStoreError(f"state store {store}: {exc.strerror or exc}") from exc
    with _no_server(store, "restore"):
        copy = store.with_name(f".{store.name}.restoring-{os.getpid()}")
        replaced = None
        try:
            made_private(copy)  # the store holds every principal's models and data sets
            with closing(_read_only(backup)) as db:  # a copy, so the backup stays as it is
                db.execute("VACUUM INTO ?", (str(copy),))
            _fsync(copy)
            if store.exists():
                merged = _wal_merged(store)
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                replaced = store.with_name(f"{store.name}.replaced-{stamp}")
                os.rename(store, replaced)
                for sidecar in ("-wal", "-shm"):
                    side = store.with_name(store.name + sidecar)
                    with suppress(FileNotFoundError):
                        if merged:
                            side.unlink()
                        else:  # kept beside the damaged file, as they were
                            os.rename(side, replaced.with_name(replaced.name + sidecar))
            os.rename(copy, store)
            _fsync(store.parent)
        except sqlite3.Error as exc:
            raise StateStoreError(
                f"state store {store}: restore from {backup} failed: {exc}"
            ) from exc
        except OSError as exc:
            raise StateStoreError(f"state store {store}: {exc.strerror or exc}") from exc
        finally:
            with suppress(FileNotFoundError):
                copy.unlink()
    return BackupRestored(store, backup, replaced, version)


def _drop_leftovers(out: Path) -> None:
    """Deletes what a killed backup into ``out`` left beside it (``.NAME.partial-PID``
    and its ``-journal``, tens of MB each) when that process is gone."""
    for left in out.parent.glob(f".{out.name}.partial-*"):
        pid = left.name.split(".partial-", 1)[1].split("-", 1)[0]
        if pid.isdecimal() and not _alive(int(pid)):
            left.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _wal_merged(store: Path) -> bool:
    """Merges ``store``'s write-ahead log into its file (opening and closing the last
    connection does, and deletes the log): the file kept aside is then the whole store.
    False when the store cannot be opened as one (damaged: the very case a restore is
    for), its log then kept beside it as it is."""
    try:
        with closing(sqlite3.connect(store, isolation_level=None)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        return False
    return True


def _read_only(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None)


@dataclass(frozen=True, slots=True)
class StoreCheck:
    """What :func:`check_store` found."""

    path: Path
    schema_version: int
    problems: tuple[str, ...]
    """SQLite's ``integrity_check`` findings, rows naming a row that is not there
    (``foreign_key_check``) and a schema this version does not read; empty: whole."""

    @property
    def whole(self) -> bool:
        return not self.problems


def check_store(path: Path) -> StoreCheck:
    """Reads the whole store file ``path`` (read-only, safe while servers run) and says
    what is damaged: pages and indexes (``integrity_check``), references between rows
    (``foreign_key_check``), the schema version. A file SQLite cannot read at all (its
    header or schema damaged, or no store) is one problem, as the rest are: the damage
    a check is for. StateStoreError when there is no such file."""
    if not path.is_file():
        raise StateStoreError(f"store: {path}: no such file")
    try:
        with closing(_read_only(path)) as db:
            damage = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
            dangling = db.execute("PRAGMA foreign_key_check").fetchall()
            version = schema_version(db)
    except sqlite3.Error as exc:
        return StoreCheck(path, 0, (f"not a readable state store ({exc})",))
    problems = [f"integrity_check: {line}" for line in damage if line != "ok"]
    problems += [
        f"foreign_key_check: {table} row {rowid} names a row of {parent} that is not there"
        for table, rowid, parent, _ in dangling
    ]
    version_wrong = version_problem(version)
    if version_wrong is not None:
        problems.append(version_wrong)
    return StoreCheck(path, version, tuple(problems))


def _checked(path: Path, field: str) -> int:
    """The schema version of the store file ``path`` once :func:`check_store` finds it
    whole; StateStoreError naming ``field`` when it is not a whole store this version
    reads."""
    if not path.is_file():
        raise StateStoreError(f"{field}: {path}: no such file")
    try:
        found = check_store(path)
    except StateStoreError as exc:
        raise StateStoreError(f"{field}: {str(exc).removeprefix('store: ')}") from exc
    if not found.whole:
        raise StateStoreError(f"{field}: {path}: {'; '.join(found.problems[:5])}")
    return found.schema_version


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
