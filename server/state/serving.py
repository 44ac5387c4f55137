"""One server per state store: ``<store>.serving``, held exclusively while it serves.

A store keeps one server's jobs (their queue, which a start takes back, and the jobs it
finds stored as running, which a start marks interrupted), besides the history of the
boards it served. A second server on the same store would take the first one's queued
jobs onto its own board and mark its running ones interrupted, so it is refused before
it opens its board (opening a serial port may reset the board behind it): a lab
computer serving several boards gives each server a store of its own.

The file is named after the store's real path (a symbolic link names the same one); a
store with several hard links is refused, as their names would hold locks of their own.
The server holding the store writes who it is into the file (process id, board,
address, start time) for the refusal to name it. The ``flock`` goes with the process,
a killed server's too, so a crashed server never leaves the store locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sidra.server.state.errors import StateStoreError

__all__ = ["serving_path", "serving_store", "store_served_by"]


def serving_path(store: Path) -> Path:
    """The file the serving server holds: ``<store>.serving`` beside the store's real
    file (a symbolic link to a served store names the same one)."""
    real = Path(os.path.realpath(store))
    return real.with_name(real.name + ".serving")


@contextmanager
def serving_store(store: Path, who: str) -> Iterator[None]:
    """Holds ``store`` for the server ``who`` describes (its board and address) until the
    block ends; StateStoreError naming the server that holds it otherwise."""
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where a folder should be, a folder it may not write
        found = next((p for p in store.parents if p.exists()), None)
        why = (
            f"{found} is a file, not a folder"
            if found is not None and not found.is_dir()
            else exc.strerror or str(exc)
        )
        raise StateStoreError(f"state store {store}: its folder cannot be made: {why}") from exc
    try:
        links = store.stat().st_nlink
    except OSError:
        links = 1  # none yet: the server makes it
    if links > 1:  # another name would hold another lock, and SQLite another log
        raise StateStoreError(
            f"state store {store}: the file has {links} hard links; one server per store "
            "is kept by the store's name: give it one (a symbolic link is fine)"
        )
    path = serving_path(store)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateStoreError(f"state store {store}: cannot open {path} ({exc})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateStoreError(_in_use(store, _holder(path))) from None
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {who}, since {started}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # still held: nobody reads a stopped server as the holder
    finally:
        os.close(fd)  # releases the lock


def store_served_by(store: Path) -> str | None:
    """Who serves ``store`` now (``pid 1234, emu://... on 127.0.0.1:50051, since ...``),
    or None when no server holds it; nothing is taken (``sidra serve --check``)."""
    path = serving_path(store)
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):  # no store there: nobody serves it
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path)
        return None
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        told = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        told = ""
    return told or "another process"


def _in_use(store: Path, holder: str) -> str:
    return (
        f"state store {store} is in use by another sidra serve ({holder}): a store keeps one "
        "server's jobs and queue. Stop that server, or give this one a store of its own "
        "([state] path in its --config, or SIDRA_STATE__PATH)"
    )
