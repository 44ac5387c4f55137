"""``sidra model eval --log FILE``: one CSV row per evaluation, so that a model deployed
once and run every day (``--held``) shows how its accuracy and its cells move over time.

The file is plain CSV with a header, appended to, never rewritten: a row once written
stays. A file whose header is not this one (another tool's, or an older layout) is
refused before the board is touched, naming the file and what it holds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from pathlib import Path
from typing import Any

import typer

from sidra.training.deployment import DeployedModel, ModelEvaluation

__all__ = ["LOG_COLUMNS", "append_row", "checked_log", "log_row"]

LOG_COLUMNS = (
    "utc", "model", "model_sha256", "board", "dataset", "split", "samples", "accuracy",
    "read_repeats", "held", "calibrated", "min_correlation", "mean_deviation_us",
    "time_per_sample_ns", "energy_per_sample_nj",
)  # fmt: skip
"""The log's columns: when (ISO 8601 UTC), which model (its path and the first 16 hex
digits of its file's SHA-256), on which board, on what data, how well, how it ran (read
repeats; held: 1 when run as the tiles held it; calibrated: 1 when calibrated first), how
the tiles held it (the least correlation of a layer, the mean deviation over its layers,
µS; empty when programmed) and the modeled cost per sample (ns, nJ)."""


def checked_log(path: Path) -> Path:
    """``path`` if a row can be appended to it: absent (made with its header), or a file
    of this header; a usage error naming ``--log`` otherwise."""
    if path.is_dir():
        raise typer.BadParameter(
            f"got {path}, a folder; expected a .csv file", param_hint="'--log'"
        )
    if not path.exists():
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise typer.BadParameter(
                f"got {path}; {folder} is not a folder this user can write", param_hint="'--log'"
            )
        return path
    try:
        with path.open(newline="") as held:
            header = next(csv.reader(held), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(
            f"got {path}: cannot be read ({exc})", param_hint="'--log'"
        ) from exc
    if tuple(header) != LOG_COLUMNS:
        raise typer.BadParameter(
            f"got {path}, whose first line is {','.join(header)[:80]!r}; expected a log "
            f"this command wrote ({','.join(LOG_COLUMNS[:4])},...), or a new file",
            param_hint="'--log'",
        )
    return path


def log_row(
    model: str, model_data: bytes, board: str, dataset: str, split: str,
    deployed: DeployedModel, result: ModelEvaluation,
) -> dict[str, Any]:  # fmt: skip
    """The row of one evaluation of ``model`` (its file, or ``deployment NAME``), whose
    file's bytes are ``model_data``."""
    held = deployed.held
    return {
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model,
        "model_sha256": hashlib.sha256(model_data).hexdigest()[:16],
        "board": board,
        "dataset": dataset,
        "split": split,
        "samples": result.samples,
        "accuracy": f"{result.accuracy:.6f}",
        "read_repeats": result.read_repeats,
        "held": int(bool(held)),
        "calibrated": int(bool(deployed.gains)),
        "min_correlation": f"{min(h.correlation for h in held):.6f}" if held else "",
        "mean_deviation_us": (
            f"{sum(h.mean_deviation_us for h in held) / len(held):.6f}" if held else ""
        ),
        "time_per_sample_ns": f"{result.time_per_sample_ns:.3f}",
        "energy_per_sample_nj": f"{result.energy_per_sample_nj:.3f}",
    }


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Appends ``row`` (with the header first when the file is new) in one write, synced:
    a row is whole or absent."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS)
    if not path.exists():
        writer.writeheader()
    writer.writerow(row)
    with path.open("a", newline="") as log:
        log.write(text.getvalue())
        log.flush()
        os.fsync(log.fileno())
