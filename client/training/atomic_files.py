"""Files written whole or not at all: a run's checkpoint, its record files, a model file."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` through a hidden neighbour (``.NAME.partial``) renamed
    over it, making the folder if needed: a crash or a stop mid-write leaves the previous
    file (or none), never half of one. Returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.partial")
    staged.write_bytes(data)
    staged.replace(target)
    return target
