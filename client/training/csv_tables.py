"""CSV files of samples, as a spreadsheet or another tool writes them: one sample per line.

Numbers are separated by commas, or by semicolons or tabs with decimal commas (how a
spreadsheet set to a locale with a decimal comma exports); a byte-order mark and blank
lines are ignored, and a first line that is not numbers is a header. (A single column of
numbers with decimal commas cannot be told from two columns: such a file needs points.)
A labelled file (a data set to train or evaluate on) holds its label in the last
column: any text (``setosa``) or a number. What is wrong is a ValueError naming the
file, the line and the column.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["read_labelled_csv", "read_samples_csv"]


def read_samples_csv(path: Path) -> npt.NDArray[np.float64]:
    """Every line's numbers, [samples, features]."""
    rows = [values for _, values in _numeric_lines(path, labelled=False)]
    return np.array(rows, np.float64)


def read_labelled_csv(
    path: Path, content: bytes | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.str_]]:
    """The features (every column but the last, [samples, features]) and the labels (the
    last column, as text). ``content``: the file's bytes, read instead of ``path``, which
    then only names the file in messages (a file a client sent)."""
    rows, labels = [], []
    for label, values in _numeric_lines(path, labelled=True, content=content):
        rows.append(values)
        labels.append(label)
    return np.array(rows, np.float64), np.array(labels, np.str_)


def _numeric_lines(
    path: Path, *, labelled: bool, content: bytes | None = None
) -> Iterator[tuple[str, list[float]]]:
    """Each sample line's label (its last field when ``labelled``, else "") and numbers."""
    try:
        raw = path.read_bytes() if content is None else content
        text = raw.decode("utf-8-sig")  # a spreadsheet's byte-order mark
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as text ({exc})") from exc
    delimiter = _delimiter(text)
    decimal_comma = delimiter != ","
    width, samples = 0, 0
    header: list[str] = []
    for number, fields in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue  # a blank line
        if labelled and len(fields) < 2:
            raise ValueError(
                f"{path} line {number}: got {len(fields)} value, expected the features "
                "then the label"
            )
        label = fields.pop() if labelled else ""
        if decimal_comma:
            fields = [f.replace(",", ".") for f in fields]
        values = [_number(f) for f in fields]
        if any(v is None for v in values):
            if samples == 0 and number == 1:
                header = fields
                continue
            bad = next(i for i, v in enumerate(values, 1) if v is None)
            raise ValueError(
                f"{path} line {number}, {_column(bad, header)}: got {fields[bad - 1]!r}, "
                "expected a number" + (" (the label is the last column)" if labelled else "")
            )
        # float() reads "nan" and "inf" (a spreadsheet's empty result, a failed sensor):
        # told here by line and column, not later as an index into the samples.
        if not all(math.isfinite(v) for v in values if v is not None):
            bad = next(i for i, v in enumerate(values, 1) if v is None or not math.isfinite(v))
            raise ValueError(
                f"{path} line {number}, {_column(bad, header)}: got {fields[bad - 1]!r}, "
                "expected a finite number"
            )
        if samples and len(values) != width:
            raise ValueError(
                f"{path} line {number}: got {len(values) + labelled} values, expected "
                f"{width + labelled} as on the lines before"
            )
        width, samples = len(values), samples + 1
        yield label, [v for v in values if v is not None]
    if samples == 0:
        raise ValueError(f"{path}: got no samples, expected one per line")


def _column(number: int, header: list[str]) -> str:
    """``column 2``, or ``column 2 (petal width)`` when the file's header names it."""
    name = header[number - 1] if number <= len(header) else ""
    return f"column {number}" + (f" ({name})" if name else "")


def _delimiter(text: str) -> str:
    """The field separator: ';' or a tab when every one of the first lines has it (as
    spreadsheets write them in locales with a decimal comma, where a comma is in every
    number too), else ','."""
    first = [line for line in text.splitlines() if line.strip()][:5]
    for delimiter in (";", "\t"):
        if first and all(delimiter in line for line in first):
            return delimiter
    return ","


def _number(field: str) -> float | None:
    try:
        return float(field)
    except ValueError:
        return None
