"""Classification data sets: scikit-learn's bundled ones, an .npz or a .csv file, split and
standardised."""

from __future__ import annotations

import hashlib
import io
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sidra.training.bundled_cache import cached_split, keep_split
from sidra.training.csv_tables import read_labelled_csv

__all__ = [
    "BUNDLED",
    "FILE_SUFFIXES",
    "DataShape",
    "Dataset",
    "Shaped",
    "check_trained_on",
    "load_dataset",
]

BUNDLED = ("digits", "iris", "wine", "breast_cancer")
"""scikit-learn data sets that ship inside the package (no download)."""

FILE_SUFFIXES = (".npz", ".csv")
"""The data set files read (any case of the letters): arrays ``X`` and ``y``, or a sample
per line with its label last (:mod:`sidra.training.csv_tables`)."""


class Shaped(Protocol):
    """What placing a network on a board's tiles needs of its data set: a
    :class:`Dataset`, or its :class:`DataShape` alone."""

    @property
    def features(self) -> int: ...

    @property
    def classes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DataShape:
    """A data set's features and classes without its samples (:attr:`Dataset.shape`):
    kept to place queued jobs again without holding their data."""

    features: int
    classes: int


@dataclass(frozen=True, slots=True)
class Dataset:
    """A train/test split with features standardised on the training part."""

    name: str
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    labels: tuple[str, ...] = ()
    """What each class index stands for in the source (``"setosa"``, ``"7"``); empty when
    not known."""
    feature_mean: npt.NDArray[np.float64] | None = None
    """Each raw feature's mean over the training part, subtracted before scaling."""
    feature_scale: npt.NDArray[np.float64] | None = None
    """Each raw feature's standard deviation over the training part (1 for a constant
    feature), divided by after the mean is taken away."""
    test_size: float = 0.3
    """Share of the samples held out for testing."""
    random_state: int = 0
    """Seed of the split."""
    source: str = ""
    """The file it was read from as it was named: a path, or the name of a file a client
    sent with a job; empty for a bundled set."""
    sha256: str = ""
    """The SHA-256 of that file's bytes, hex; empty for a bundled set."""

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max()) + 1)

    @property
    def named_as(self) -> str:
        """How a run was told of it, as its record's settings say: a bundled set's name,
        or the file as it was named (``runs/lab.csv``; a sent file's ``lab.csv``)."""
        return self.source or self.name

    def settings(self) -> dict[str, str]:
        """What a run's settings (and so its checkpoints) say of it: its name and, read
        from a file, the file's SHA-256 (:func:`check_trained_on`)."""
        return {"dataset": self.name} | ({"dataset_sha256": self.sha256} if self.sha256 else {})

    @property
    def shape(self) -> DataShape:
        """Its features and classes alone."""
        return DataShape(self.features, self.classes)


def load_dataset(
    name: str | os.PathLike[str],
    *,
    test_size: float = 0.3,
    random_state: int = 0,
    content: bytes | None = None,
) -> Dataset:
    """``name`` is one of :data:`BUNDLED` or a path (str or Path) to an .npz with arrays
    ``X`` and ``y`` or a .csv (a sample per line, its label last). ``content``: such a
    file's bytes (a file a client sent a server), read instead of ``name``, which is then
    the file's name only: what messages and the data set's name say.

    Split ``test_size`` for testing (stratified-free, ``random_state`` fixed:
    digits gives 1,257 / 540), then standardised with the training statistics.
    """
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    bundled = name in BUNDLED and content is None
    if bundled and (kept := cached_split(str(name), test_size, random_state)) is not None:
        return Dataset(name=str(name), test_size=test_size, random_state=random_state, **kept)

    from sklearn import datasets  # about a second: only when a split is not kept
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    named = isinstance(name, str) and name != ""
    suffix = Path(name).suffix.lower() if named else ""
    readable = named and (content is not None or Path(name).is_file())
    if bundled:
        bunch = getattr(datasets, f"load_{name}")()
        x, y = bunch.data, bunch.target
        names: list[str] = [str(n) for n in bunch.target_names]
    elif suffix in FILE_SUFFIXES and readable:
        if content is None:
            try:
                content = Path(name).read_bytes()  # read once: its digest and its arrays
            except OSError as exc:
                raise ValueError(f"dataset: {name} cannot be read ({exc.strerror})") from exc
        read = _npz_arrays if suffix == ".npz" else _csv_arrays
        x, y = read(name, content)
        names = []
    elif content is not None:
        raise ValueError(f"dataset: got {name!r}, expected a file name ending in .npz or .csv")
    else:
        raise ValueError(
            f"dataset: got {name!r}, expected one of {', '.join(BUNDLED)} or an existing .npz "
            "or .csv file"
        )
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    values, inverse = np.unique(y, return_inverse=True)
    labels = inverse.astype(np.int64).reshape(-1)
    # A bundled set's targets are 0 .. k-1 and its names say what they are.
    label_names = names or [str(v.item() if isinstance(v, np.generic) else v) for v in values]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, labels, test_size=test_size, random_state=random_state
    )
    scaler = StandardScaler().fit(x_tr)
    arrays: dict[str, Any] = {
        "x_train": scaler.transform(x_tr).astype(np.float32),
        "y_train": np.asarray(y_tr, np.int64),
        "x_test": scaler.transform(x_te).astype(np.float32),
        "y_test": np.asarray(y_te, np.int64),
        "labels": tuple(label_names),
        "feature_mean": np.asarray(scaler.mean_, np.float64),
        "feature_scale": np.asarray(scaler.scale_, np.float64),
    }
    if bundled:
        keep_split(name, test_size, random_state, arrays)
    return Dataset(
        name=name if bundled else Path(name).stem,
        **arrays,
        test_size=test_size,
        random_state=random_state,
        source="" if content is None else name,
        sha256="" if content is None else hashlib.sha256(content).hexdigest(),
    )


def check_trained_on(settings: dict[str, Any], data: Dataset, source: str) -> None:
    """ValueError starting with ``source`` when ``settings`` (a checkpoint's) say its run
    trained on another data set than ``data``: another name, a file of that name with
    other bytes (a data set file edited since: going on would not be that run), or a file
    (``iris.csv``) where ``data`` is the bundled set of its name."""
    trained_on = settings.get("dataset")
    if trained_on is not None and trained_on != data.name:
        raise ValueError(f"{source}: a run on data set {trained_on!r}, not {data.name!r}")
    digest = settings.get("dataset_sha256")
    if isinstance(digest, str) and digest and not data.sha256:  # a file named as a bundled set
        raise ValueError(
            f"{source}: a run on a data set file {data.name!r} (SHA-256 {digest[:16]}…), not "
            f"the bundled data set {data.name!r}: give that file"
        )
    if isinstance(digest, str) and data.sha256 and digest != data.sha256:
        raise ValueError(
            f"{source}: a run on another version of data set {data.name!r}: its file's "
            f"SHA-256 {digest[:16]}…, this one's {data.sha256[:16]}…"
        )


def _csv_arrays(
    name: str, content: bytes | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[Any]]:
    """The features and labels of the .csv file ``name`` (the label in the last column;
    read from ``content`` when given), checked as an .npz's are."""
    try:
        x, y = read_labelled_csv(Path(name), content)
    except ValueError as exc:
        raise ValueError(f"dataset: {exc}") from exc
    labels: npt.NDArray[Any] = y
    if all(label.lstrip("-").isdecimal() for label in y):
        labels = y.astype(np.int64)  # classes 0, 1, ..., 10 in numeric order, not as text
    return _check_arrays(name, x, labels), labels


def _npz_arrays(
    name: str, content: bytes | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[Any]]:
    """``X`` (as float64) and ``y`` of the .npz file ``name`` (read from ``content`` when
    given), or a ValueError naming what is wrong with them: refused before any board call,
    not as a bad voltage halfway through."""
    not_npz = ValueError(f"dataset: {name} is not an .npz archive of arrays")
    try:
        loaded = np.load(name if content is None else io.BytesIO(content))
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a single .npy array
            raise not_npz
        with loaded as archive:
            held = sorted(archive)
            arrays = {key: archive[key] for key in ("X", "y") if key in archive}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # empty, pickled objects
        if exc is not_npz:
            raise
        raise not_npz from exc
    if len(arrays) < 2:
        raise ValueError(f"dataset: {name} holds {held}, expected arrays X and y")
    x, y = arrays["X"], arrays["y"]
    x = _check_arrays(name, x, y)
    return x, y


def _fractional_labels(classes: npt.NDArray[Any]) -> list[str]:
    """The labels among ``classes`` that are numbers with a fraction (``0.5``, ``"2.25"``):
    a measurement, not a class (a label column mistaken). Integral ones (``2.0``) and
    names pass."""
    found = []
    for value in classes:
        item = value.item() if isinstance(value, np.generic) else value
        try:
            number = float(item)
        except (TypeError, ValueError):
            continue  # a name
        if math.isfinite(number) and not number.is_integer():
            found.append(str(item))
    return found


def _check_arrays(name: str, x: npt.NDArray[Any], y: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """``x`` as float64, or a ValueError naming what is wrong with ``x`` or ``y``: refused
    before any board call, not as a bad voltage halfway through."""
    if x.dtype.kind not in "biuf":
        raise ValueError(f"dataset: X of {name}: got dtype {x.dtype}, expected numbers")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"dataset: X of {name}: got shape {list(x.shape)}, expected samples")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"dataset: y of {name}: got shape {list(y.shape)}, expected one label per sample "
            f"of X ([{len(x)}])"
        )
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        first = [int(i) for i in np.argwhere(bad)[0]]
        raise ValueError(
            f"dataset: X of {name}: got {int(bad.sum())} NaN/Inf values (first at {first}), "
            "expected finite numbers"
        )
    classes = np.unique(y)
    fractional = _fractional_labels(classes)
    if fractional:
        shown = ", ".join(fractional[:4]) + (", ..." if len(fractional) > 4 else "")
        raise ValueError(
            f"dataset: y of {name}: got labels that are fractional numbers ({shown}; "
            f"{len(classes)} classes), expected classes: integers or names (is the label "
            "in another column than the last, or a measurement?)"
        )
    if len(classes) < 2:
        raise ValueError(
            f"dataset: y of {name}: got one class ({classes[0].item()!r}), expected at least two"
        )
    return x
