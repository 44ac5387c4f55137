"""The files ``sidra model predict`` reads samples from and writes its answers to: numpy
files for scripts, CSV for what a spreadsheet or another tool exported and reads back.

Samples: an ``.npy`` of ``[samples, features]``, an ``.npz`` holding ``X``, or a ``.csv``
of one sample per line (:mod:`sidra.training.csv_tables`: commas, or semicolons or tabs
with decimal commas; a header line skipped). Answers: an ``.npz`` of ``labels``,
``classes`` and the scores, or a ``.csv`` with a header, one line per sample in the
inputs' order: its label, its class index, then one score per class
(``logits_<label>``).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import typer

from sidra.cli.numpy_files import load_numpy
from sidra.cli.options import new_file
from sidra.training.csv_tables import read_samples_csv

__all__ = ["ANSWER_SUFFIXES", "answers_csv", "answers_file", "checked_answers_path", "read_samples"]

ANSWER_SUFFIXES = (".npz", ".csv")
"""The kinds of file ``--out`` may name."""

_INPUTS = "'--inputs'"


def read_samples(path: Path) -> npt.NDArray[Any]:
    """The samples an --inputs file holds; a usage error naming the file (and for a CSV,
    the line and column) otherwise."""
    if path.suffix.lower() == ".csv":
        return _csv_samples(path)
    try:
        held = load_numpy(path)
        if isinstance(held, np.ndarray):
            return held
        with held:
            if "X" not in held.files:
                raise typer.BadParameter(
                    f"{path} holds {sorted(held.files)}, expected an array X", param_hint=_INPUTS
                )
            samples: npt.NDArray[Any] = held["X"]
            return samples
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise typer.BadParameter(
            f"{path}: not an .npy, .npz or .csv of numbers ({exc})", param_hint=_INPUTS
        ) from exc


def _csv_samples(path: Path) -> npt.NDArray[np.float64]:
    try:
        return read_samples_csv(path)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=_INPUTS) from exc


def checked_answers_path(out: Path) -> None:
    """``--out``: a new file of a kind :func:`answers_file` writes; a usage error naming
    the option otherwise (before any board is opened)."""
    new_file(out)
    if out.suffix.lower() not in ANSWER_SUFFIXES:
        raise typer.BadParameter(
            f"got {out}, expected a file ending {' or '.join(ANSWER_SUFFIXES)}",
            param_hint="'--out'",
        )


def answers_file(
    out: Path,
    labels: npt.NDArray[Any],
    classes: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    score_name: str,
    class_labels: list[str],
) -> bytes:
    """The bytes of ``out`` (by its suffix): each sample's label, class index and its
    scores (``score_name``: logits, goodness, outputs) per class of ``class_labels``."""
    if out.suffix.lower() == ".csv":
        return answers_csv(labels, classes, scores, score_name, class_labels).encode()
    arrays = io.BytesIO()
    kept: dict[str, Any] = {"labels": labels, "classes": classes, score_name: scores}
    np.savez(arrays, **kept)
    return arrays.getvalue()


def answers_csv(
    labels: npt.NDArray[Any],
    classes: npt.NDArray[Any],
    scores: npt.NDArray[Any],
    score_name: str,
    class_labels: list[str],
) -> str:
    """The answers as CSV text: a header, then a line per sample (its label, class index
    and a score per class)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["label", "class", *(f"{score_name}_{c}" for c in class_labels)])
    for label, index, row in zip(labels, classes, scores, strict=True):
        # The shortest text that reads back as the same number of its own precision
        # (2.5621932 for a float32 score, not its float64 widening's 17 digits).
        shown = (np.format_float_positional(s, unique=True, trim="-") for s in row)
        writer.writerow([str(label), int(index), *shown])
    return text.getvalue()
