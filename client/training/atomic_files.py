"""Files written whole or not at all: a run's checkpoint, its record files, a model file,
a kept data set split."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

__all__ = ["write_atomically", "write_files_atomically"]


def write_atomically(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` through a hidden neighbour (``.NAME.<random>.partial``,
    made with the user's umask) renamed over it, making the folder if needed: a crash or
    a stop mid-write leaves the previous file (or none), never half of one, and processes
    writing the same file at once each rename a whole one of their own. Returns the path
    written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial")
    try:
        with staged.open("xb") as file:
            file.write(data)
        staged.replace(target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
    return target


def write_files_atomically(files: dict[str, bytes], folder: Path) -> None:
    """Each of ``files`` (name -> content) written atomically in ``folder`` (made when
    missing): a record as a command saves it (``functools.partial(..., files)`` is what
    ``save_or_keep`` takes)."""
    for name, content in files.items():
        write_atomically(folder / name, content)
