"""Where the state store lives unless configured otherwise."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from platformdirs import user_data_dir

__all__ = ["APP_NAME", "STORE_FILE", "default_store_path", "disk_bytes", "made_private"]

APP_NAME = "sidra-hil"
STORE_FILE = "state.sqlite3"


def default_store_path() -> Path:
    """``user_data_dir("sidra-hil")/state.sqlite3``: per user, surviving reboots
    (``~/.local/share/sidra-hil/state.sqlite3`` on Linux)."""
    return Path(user_data_dir(APP_NAME, appauthor=False)) / STORE_FILE


def disk_bytes(store: Path) -> int:
    """The store's files on disk (the SQLite file, its write-ahead log and shared memory
    index), bytes: what ``sidra state usage`` and the store's metric show."""
    files = [store.with_name(store.name + suffix) for suffix in ("", "-wal", "-shm")]
    return sum(file.stat().st_size for file in files if file.exists())


def made_private(path: Path) -> None:
    """Creates ``path`` empty, readable by its owner only, if it does not exist: a store
    holds every principal's models, data sets and job records (SQLite gives its
    write-ahead log and index the same mode), and so does a backup of it."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
