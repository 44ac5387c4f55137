"""Run records read back from disk: found under a folder, each with its settings,
summary, provenance, per-step losses and test checkpoints (``sidra runs``).

A record is a folder holding :data:`~sidra.training.records.RECORD_FILES`, as every
training command, a comparison and a job's saved record write it. Reading never writes:
a record being saved by a run still going is read as it stands, and one that cannot be
read is reported with its file and why, the others still listed.

A folder holding a run's checkpoint and no record is an **unfinished** run: one still
going (it saves a checkpoint every minute), or one that ended without its record (killed,
the machine down, or an SPSA run whose board went away). It is listed with the step or
epoch it last saved, so that it is found and gone on from (``--resume``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.training.compare_record import PLANNED_RUNS
from sidra.training.provenance import read_provenance
from sidra.training.records import (
    CHECKPOINT_FILE,
    INTERRUPTED,
    RECORD_FILES,
    STOPPED_AT,
    Checkpoint,
)
from sidra.training.run_lock import is_running

__all__ = [
    "MAX_DEPTH",
    "RecordUnreadable",
    "SavedRun",
    "find_runs",
    "is_record",
    "is_unfinished",
    "read_run",
]

MAX_DEPTH = 4
"""How deep under the folder given records are looked for (``runs/<name>`` is 1; a
project's ``runs/<study>/<seed>`` is 2)."""


class RecordUnreadable(ValueError):
    """A folder that holds a record's files but one of them cannot be read: the message
    names the file and why."""


@dataclass(frozen=True, slots=True)
class SavedRun:
    """A run's record as saved in ``folder``."""

    folder: Path
    settings: dict[str, Any]
    summary: dict[str, Any]
    provenance: dict[str, Any] | None
    """``run.json`` (sidra.training.provenance); None for a record saved before it."""
    saved_unix_s: float
    """When its summary was written, s since the Unix epoch (the folder's own clock); for
    an unfinished run, its checkpoint."""
    unfinished_at: str | None = None
    """For an unfinished run (its checkpoint and no record): where it last saved,
    ``step 940`` or ``epoch 3``; None for a record."""
    running: bool = False
    """Its process is saving into the folder now (its run lock held,
    sidra.training.run_lock): an unfinished run still going, or a comparison whose record
    grows run by run; False for one that ended."""

    @property
    def job(self) -> str:
        """What ran: spsa, last-layer, mlp, pat, ff, eqprop, compare, drift-recovery."""
        return str(self.settings.get("job", "?"))

    @property
    def dataset(self) -> str:
        return str(self.settings.get("dataset", "?"))

    @property
    def started_unix_s(self) -> float:
        """When the run started (run.json), else when its record was saved."""
        started = (self.provenance or {}).get("started_utc")
        if isinstance(started, str):
            try:
                return datetime.fromisoformat(started).timestamp()
            except ValueError:
                pass
        return self.saved_unix_s

    @property
    def wall_s(self) -> float | None:
        """How long it ran, s (run.json); None when not known."""
        wall = (self.provenance or {}).get("wall_s")
        return float(wall) if isinstance(wall, int | float) else None

    @property
    def test_accuracy(self) -> float | None:
        """The final test accuracy; for a comparison, its best method's mean; for a drift
        recovery, the recovered network's."""
        if "test_accuracy" in self.summary:
            return float(self.summary["test_accuracy"])
        if "recovered_accuracy" in self.summary:
            return float(self.summary["recovered_accuracy"])
        methods = self.summary.get("methods")
        if isinstance(methods, list) and methods:
            return max(float(m["test_accuracy"]) for m in methods)
        return None

    @property
    def length(self) -> str:
        """How long a run it was asked to be: ``200 steps``, ``12 epochs``, ``10 runs``."""
        for key, unit in (("steps", "step"), ("epochs", "epoch")):
            count = self.settings.get(key)
            if isinstance(count, int):
                return f"{count} {unit}{'' if count == 1 else 's'}"
        seeds, methods = self.settings.get("seeds"), self.settings.get("methods")
        if isinstance(seeds, list) and isinstance(methods, list):
            runs = len(seeds) * len(methods)
            return f"{runs} run{'' if runs == 1 else 's'}"
        return ""

    @property
    def ended(self) -> str:
        """``finished``, ``stopped at step 40`` (Ctrl-C, a cancel), or ``interrupted at
        epoch 3`` (its board went away); for a folder holding only a checkpoint,
        ``unfinished at step 940`` (ended without its record), or ``running, saved at step
        940`` while its process still saves into the folder (a comparison's growing record:
        ``running``)."""
        at = self.unfinished_at or self._runs_short_of_planned()
        if self.running:  # a run going on (from a stopped one's record too) saves here
            return "running" if at is None else f"running, saved at {at}"
        for key, value in self.settings.items():
            if key.startswith(STOPPED_AT):
                return f"stopped at {key.removeprefix(STOPPED_AT)} {value}"
        if at is not None:
            return f"unfinished at {at}"
        if f"{INTERRUPTED}at_epoch" in self.settings:
            return f"interrupted at epoch {self.settings[f'{INTERRUPTED}at_epoch']}"
        return "finished"

    def _runs_short_of_planned(self) -> str | None:
        """``run 3`` for a comparison's record of 3 runs of more it was to make (saved run
        by run: still running, or ended part-way without a stop); else None."""
        planned, runs = self.settings.get(PLANNED_RUNS), self.summary.get("runs")
        if isinstance(planned, int) and isinstance(runs, list) and len(runs) < planned:
            return f"run {len(runs)}"
        return None

    @property
    def board(self) -> str:
        """The board in a few words: serial number and preset, or the URL; ``?`` when the
        record does not say. A run gone on (--resume) on another board names each, in
        order: ``SIDRA-A (sidra-y1) → SIDRA-B``."""
        provenance = self.provenance or {}
        parts = provenance.get("parts")
        if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
            parts = [provenance]
        boards = list(dict.fromkeys(_board_text(part) for part in parts))
        return " → ".join(boards)

    def checkpoints(self) -> list[Checkpoint]:
        """The test accuracy after each checkpointed step (checkpoints.csv); none for a
        record without it."""
        rows = _csv_rows(self.folder / "checkpoints.csv")
        try:
            return [Checkpoint.from_json(row) for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordUnreadable(f"{self.folder / 'checkpoints.csv'}: {exc}") from exc

    def losses(self) -> npt.NDArray[np.float64]:
        """The mean loss of each step (steps.csv); empty for a record without it."""
        rows = _csv_rows(self.folder / "steps.csv")
        try:
            return np.array([float(row["loss"]) for row in rows], np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordUnreadable(f"{self.folder / 'steps.csv'}: {exc}") from exc


def _board_text(provenance: dict[str, Any]) -> str:
    identity = provenance.get("board")
    if isinstance(identity, dict) and identity.get("serial_number"):
        preset = identity.get("emulator_preset")
        return f"{identity['serial_number']}" + (f" ({preset})" if preset else "")
    return str(provenance.get("board_url") or provenance.get("server") or "?")


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as file:
            return list(csv.DictReader(file))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordUnreadable(f"{path}: {exc}") from exc


def _json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RecordUnreadable(f"{path}: cannot be read ({exc})") from exc
    if not isinstance(value, dict):
        raise RecordUnreadable(f"{path}: holds {type(value).__name__}, expected a JSON object")
    return value


def is_record(folder: Path) -> bool:
    """Whether ``folder`` holds a run's record (its files, readable or not)."""
    return all((folder / name).is_file() for name in RECORD_FILES)


def is_unfinished(folder: Path) -> bool:
    """Whether ``folder`` holds a run's checkpoint and no record (an unfinished run)."""
    return (folder / CHECKPOINT_FILE).is_file() and not is_record(folder)


def read_run(folder: str | Path) -> SavedRun:
    """The record in ``folder`` (an unfinished run's checkpoint when it holds no record);
    RecordUnreadable naming what is missing or unreadable."""
    where = Path(folder)
    if not where.is_dir():
        raise RecordUnreadable(f"{where}: no such folder")
    if is_unfinished(where):
        return _unfinished(where)
    missing = [name for name in RECORD_FILES if not (where / name).is_file()]
    if missing:
        raise RecordUnreadable(
            f"{where}: holds no run record (no {', '.join(missing)}; a training command's "
            "--out folder, or runs/<job>-<time>, holds one)"
        )
    summary_path = where / "summary.json"
    return SavedRun(
        folder=where,
        settings=_json_object(where / "settings.json"),
        summary=_json_object(summary_path),
        provenance=read_provenance(where),
        saved_unix_s=summary_path.stat().st_mtime,
        running=is_running(where),
    )


def _unfinished(where: Path) -> SavedRun:
    """The unfinished run whose checkpoint ``where`` holds: its settings, where it last
    saved (an SPSA checkpoint's optimizer step, or an epoch checkpoint's epoch)."""
    path = where / CHECKPOINT_FILE
    saved = _json_object(path)
    settings = saved.get("settings")
    if not isinstance(settings, dict):
        raise RecordUnreadable(f"{path}: holds no run's settings (not a training checkpoint)")
    optimizer = saved.get("optimizer")
    epoch = saved.get("epoch")
    if isinstance(epoch, int):
        at = f"epoch {epoch}"
    elif isinstance(optimizer, dict) and isinstance(optimizer.get("k"), int):
        at = f"step {optimizer['k']}"
    else:
        at = "?"
    return SavedRun(
        where, settings, {}, None, path.stat().st_mtime, unfinished_at=at, running=is_running(where)
    )


def _record_folders(root: Path, depth: int) -> Iterator[Path]:
    """Folders under ``root`` (itself included) holding a record or an unfinished run's
    checkpoint, down to ``depth`` levels; their own subfolders are not looked into, nor
    hidden ones."""
    if is_record(root) or is_unfinished(root):
        yield root
        return
    if depth == 0:
        return
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            yield from _record_folders(Path(entry.path), depth - 1)


def find_runs(root: str | Path) -> tuple[list[SavedRun], list[str]]:
    """The records under ``root`` (down to :data:`MAX_DEPTH`), and for each folder whose
    record cannot be read a line saying which file and why."""
    runs: list[SavedRun] = []
    unreadable: list[str] = []
    for folder in _record_folders(Path(root), MAX_DEPTH):
        try:
            runs.append(read_run(folder))
        except RecordUnreadable as exc:
            unreadable.append(str(exc))
    return runs, unreadable
