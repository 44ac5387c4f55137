"""Tile maps as stored: blobs of fixed dtype and shape, and the rectangles a mask covers."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Region

__all__ = ["MASK", "TARGETS", "WRITE_COUNTS", "from_blob", "rectangles", "to_blob"]

TARGETS = np.dtype("<f4")
"""Golden targets, µS: float32 little-endian, what a Program carries on the wire."""
WRITE_COUNTS = np.dtype("<u4")
"""Per-cell write counts: uint32 little-endian, as ReadWriteCounts returns them."""
MASK = np.dtype("u1")
"""Which cells a map covers: one byte per cell, 1 = covered."""


def to_blob(array: npt.NDArray[Any], dtype: np.dtype[Any]) -> bytes:
    """``array`` as row-major bytes of ``dtype``."""
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def from_blob(blob: bytes, dtype: np.dtype[Any], rows: int, cols: int) -> npt.NDArray[Any]:
    """A writable [rows, cols] array of ``dtype`` from ``blob``, in native byte order."""
    expected = rows * cols * dtype.itemsize
    if len(blob) != expected:
        # The schema checks lengths; this guards against a file edited by hand.
        raise ValueError(
            f"blob: got {len(blob)} bytes, expected {expected} ({rows}×{cols} {dtype})"
        )
    native = dtype.newbyteorder("=")
    return np.frombuffer(blob, dtype=dtype).astype(native).reshape(rows, cols)


def rectangles(mask: npt.NDArray[np.bool_]) -> list[Region]:
    """Rectangles that cover exactly the True cells of ``mask``, without overlap.

    Each row splits into runs of True cells; consecutive rows with the same runs
    merge, so a tile programmed by rectangular regions comes back as few regions
    (one for a whole tile), and cells never programmed are never written.
    """
    found: list[Region] = []
    open_runs: dict[tuple[int, int], int] = {}  # run (col start, col end) -> first row
    for row in range(mask.shape[0] + 1):
        runs = set(_runs(mask[row])) if row < mask.shape[0] else set()
        for run in [r for r in open_runs if r not in runs]:
            first = open_runs.pop(run)
            found.append(Region(first, run[0], row - first, run[1] - run[0]))
        for run in runs:
            open_runs.setdefault(run, row)
    return sorted(found, key=lambda r: (r.row_offset, r.col_offset))


def _runs(row: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) column ranges of the True cells of one row."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], row.astype(np.int8), [0]))))
    return [(int(edges[i]), int(edges[i + 1])) for i in range(0, len(edges), 2)]
