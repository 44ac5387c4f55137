"""The bundled data sets kept split and standardised in the user's cache folder.

Loading a bundled set takes scikit-learn, and importing scikit-learn (SciPy with it)
takes about a second of CPU: more than a ``sidra model eval`` of a small model spends on
everything else. The split and scaling of a bundled set are the same every time for the
same set, test share, seed and scikit-learn version, so the first load keeps its arrays
here and later ones read them (milliseconds) without importing scikit-learn at all.

The file's name holds everything its arrays depend on (scikit-learn's version included:
an upgrade makes new files, never reads old ones). A file that cannot be read or does
not hold what a load needs is made again; a folder that cannot be written only means
nothing is kept. Files read from disk and sent with jobs are never kept here: they can
be large and they are the user's data.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from platformdirs import user_cache_dir

from sidra.training.atomic_files import write_atomically

__all__ = ["CACHE_DIR_ENV", "CACHE_FORMAT", "SPLIT_ARRAYS", "cached_split", "keep_split",
           "split_path"]  # fmt: skip

CACHE_APP = "sidra-hil"
"""The folder under the user's cache folder (``~/.cache/sidra-hil`` on Linux; the
service's state store is under the data folder of the same name)."""

CACHE_DIR_ENV = "SIDRA_CACHE_DIR"
"""The variable naming another cache folder (a CI job's workspace, a home that cannot be
written); the splits are kept in its ``datasets`` folder."""

CACHE_FORMAT = 1
"""Version of the files' layout: raised when it changes, so old files are not read."""

SPLIT_ARRAYS = ("x_train", "y_train", "x_test", "y_test", "labels", "feature_mean",
                "feature_scale")  # fmt: skip
"""The arrays a kept split holds, each as :class:`~sidra.training.datasets.Dataset`
names it."""

_DTYPES = {"x_train": np.float32, "x_test": np.float32, "y_train": np.int64,
           "y_test": np.int64, "feature_mean": np.float64, "feature_scale": np.float64}  # fmt: skip


def split_path(name: str, test_size: float, random_state: int) -> Path | None:
    """Where the split of bundled set ``name`` is kept; None when scikit-learn is not
    installed (then nothing can be loaded either)."""
    try:
        version = importlib.metadata.version("scikit-learn")
    except importlib.metadata.PackageNotFoundError:
        return None
    root = os.environ.get(CACHE_DIR_ENV, "").strip() or user_cache_dir(CACHE_APP, appauthor=False)
    folder = Path(root) / "datasets"
    return folder / (
        f"{name}-test{test_size!r}-seed{random_state}-sklearn{version}-v{CACHE_FORMAT}.npz"
    )


def cached_split(name: str, test_size: float, random_state: int) -> dict[str, Any] | None:
    """The arrays :data:`SPLIT_ARRAYS` of bundled set ``name`` as a load made them
    (``labels`` as a tuple of str), or None when none are kept or what is kept cannot be
    read whole."""
    path = split_path(name, test_size, random_state)
    if path is None or not path.is_file():
        return None
    try:  # from bytes: numpy leaves a file open that it fails to read as a zip
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as kept:
            arrays = {key: kept[key] for key in SPLIT_ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged, cut, other
        return None
    for key, dtype in _DTYPES.items():
        if arrays[key].dtype != dtype:
            return None
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    features = x_train.shape[1:] == x_test.shape[1:] and x_train.ndim == 2
    samples = len(arrays["y_train"]) == len(x_train) and len(arrays["y_test"]) == len(x_test)
    if not (features and samples and arrays["feature_mean"].shape == (x_train.shape[1],)):
        return None
    arrays["labels"] = tuple(str(label) for label in arrays["labels"])
    return arrays


def keep_split(name: str, test_size: float, random_state: int, arrays: dict[str, Any]) -> None:
    """Keeps ``arrays`` (:data:`SPLIT_ARRAYS`) for later loads of bundled set ``name``,
    whole or not at all (:func:`write_atomically`: several processes may write the same
    file at once). Nothing is kept when the cache folder cannot be written."""
    path = split_path(name, test_size, random_state)
    if path is None:
        return
    buffer = io.BytesIO()
    kept: dict[str, Any] = {key: np.asarray(arrays[key]) for key in SPLIT_ARRAYS}
    np.savez(buffer, allow_pickle=False, **kept)
    with contextlib.suppress(OSError):  # a read-only or full home: the next load makes it again
        write_atomically(path, buffer.getvalue())
