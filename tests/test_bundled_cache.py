"""A bundled data set's split, kept in the cache folder: the same arrays, without
scikit-learn, and made again when what is kept cannot serve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from sidra.training import BUNDLED, Dataset, load_dataset
from sidra.training.bundled_cache import CACHE_DIR_ENV, SPLIT_ARRAYS, split_path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(folder))
    return folder


def assert_same(kept: Dataset, made: Dataset) -> None:
    for field in fields(Dataset):
        a, b = getattr(kept, field.name), getattr(made, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), field.name
        else:
            assert a == b, field.name


@pytest.mark.parametrize("name", BUNDLED)
def test_a_kept_split_is_the_split_made_bit_for_bit(name: str, cache: Path) -> None:
    made = load_dataset(name, test_size=0.25, random_state=3)
    path = split_path(name, 0.25, 3)
    assert path is not None and path.parent == cache / "datasets" and path.is_file()
    assert_same(load_dataset(name, test_size=0.25, random_state=3), made)
    path.unlink()
    assert_same(load_dataset(name, test_size=0.25, random_state=3), made)  # made again


def test_a_later_command_loads_a_kept_split_without_scikit_learn(cache: Path) -> None:
    script = (
        "import json, sys; from sidra.training import load_dataset; "
        "d = load_dataset('wine', random_state=7); "
        "print(json.dumps(['sklearn' in sys.modules, float(d.x_test.sum())]))"
    )
    env = os.environ | {CACHE_DIR_ENV: str(cache)}
    first, second = (
        json.loads(
            subprocess.run(
                [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
            ).stdout  # fmt: skip
        )
        for _ in range(2)
    )
    assert first[0] is True and second[0] is False
    assert first[1] == second[1]


def test_each_split_is_kept_apart(cache: Path) -> None:
    a = load_dataset("iris", test_size=0.3, random_state=0)
    b = load_dataset("iris", test_size=0.3, random_state=1)
    c = load_dataset("iris", test_size=0.5, random_state=0)
    assert len({split_path("iris", 0.3, 0), split_path("iris", 0.3, 1),
                split_path("iris", 0.5, 0)}) == 3  # fmt: skip
    assert not np.array_equal(a.y_test, b.y_test) and len(c.y_test) == 75
    assert_same(load_dataset("iris", test_size=0.3, random_state=1), b)


def _write_arrays(path: Path, **changes: object) -> None:
    with np.load(path) as kept:
        arrays = {key: kept[key] for key in kept.files}
    arrays.update(changes)  # type: ignore[arg-type]
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez(path, **arrays)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "damage",
    ["cut short", "not a zip", "an array missing", "another dtype", "rows that do not match"],
)
def test_what_is_kept_and_cannot_serve_is_made_again(damage: str, cache: Path) -> None:
    made = load_dataset("digits")
    path = split_path("digits", 0.3, 0)
    assert path is not None
    if damage == "cut short":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "not a zip":
        path.write_text("hello")
    elif damage == "an array missing":
        _write_arrays(path, feature_scale=None)
    elif damage == "another dtype":
        _write_arrays(path, x_train=made.x_train.astype(np.float64))
    else:
        _write_arrays(path, y_test=made.y_test[:-1])
    assert_same(load_dataset("digits"), made)
    with np.load(path) as kept:  # written over with the split made again
        assert sorted(kept.files) == sorted(SPLIT_ARRAYS)
        assert np.array_equal(kept["y_test"], made.y_test)


def test_a_cache_folder_that_cannot_be_written_keeps_nothing_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocked))
    data = load_dataset("iris")
    assert data.x_train.shape == (105, 4) and blocked.read_text() == "not a folder"


def test_a_data_set_file_is_never_kept(cache: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "lab.npz", X=rng.normal(size=(40, 3)), y=rng.integers(0, 2, 40))
    load_dataset(tmp_path / "lab.npz")
    assert not cache.exists() or not any(cache.rglob("*.npz"))
