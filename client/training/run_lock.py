"""Which record folders a run is saving into now: a lock the running process holds.

A run saving into a folder (its checkpoints, then its record) holds an exclusive
``flock`` on ``<folder>/.running.lock`` from its start to its end, and the kernel lets
go of it when the process ends, however it ends (killed included). ``sidra runs`` tells a
run still going from one that ended without its record by trying that lock, and a
second run given the same folder is refused rather than writing over the first one's
checkpoints. (A lock on a network file system is only as good as its ``flock``.)
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["RUN_LOCK", "FolderInUse", "is_running", "running_in"]

RUN_LOCK = ".running.lock"
"""The lock file in a record folder while a run saves into it (removed at its end)."""


class FolderInUse(ValueError):
    """Another run is saving into the folder now."""


@contextmanager
def running_in(folder: Path) -> Iterator[None]:
    """Holds ``folder``'s run lock (making the folder) until the block ends; FolderInUse
    when another process holds it. A folder it made and left empty is removed."""
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_LOCK
    try:
        with path.open("a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderInUse(
                    f"{folder}: another run is saving into it now (it holds {RUN_LOCK})"
                ) from None
            try:
                yield
            finally:
                # Removed while still held: a run that locks the path next locks a new file.
                path.unlink(missing_ok=True)
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        if made and not any(folder.iterdir()):
            folder.rmdir()  # the run saved nothing (refused before its first step)


def is_running(folder: Path) -> bool:
    """Whether a process holds ``folder``'s run lock now (a run saving into it)."""
    try:
        handle = (folder / RUN_LOCK).open("rb")
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
