"""Placement of a network's layers on a board's tiles, and layers split by rows trained
on the board: the tiles each layer gets, the errors when it does not fit, Δ over row
blocks, and the CLI on a data set wider than a tile."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidra.drivers import BoardInfo, open_board, rademacher
from sidra.training import AnalogLinear
from sidra.training.datasets import load_dataset
from sidra.training.placement import LayerShape, PlacementError, place
from tests.cli_support import run_sidra, unwrapped

INFO = BoardInfo("m", "s", "f", 4, 256, 256, 1.0, 40.0, 0, 0, 0.2)


def test_layers_take_the_next_free_tiles_in_order() -> None:
    layers = [LayerShape("features", 300, 256), LayerShape("head", 256, 10, digital_bias=True)]
    placed = place(INFO, layers)
    assert placed.summary() == {"features": [0, 1], "head": [2]}
    assert place(INFO, layers, allowed=(3, 1, 0)).summary() == {"features": [3, 1], "head": [0]}


def test_fixed_tiles_are_kept_and_the_rest_placed_around_them() -> None:
    layers = [LayerShape("features", 64, 256), LayerShape("head", 256, 10)]
    placed = place(INFO, layers, fixed={"head": (0, 1)})
    assert placed.summary() == {"features": [2], "head": [0, 1]}


def test_a_network_that_does_not_fit_names_the_layer_its_size_and_what_is_left() -> None:
    layers = [LayerShape("features", 300, 256), LayerShape("head", 700, 10)]
    with pytest.raises(PlacementError) as caught:
        place(INFO, layers)
    text = str(caught.value)
    assert "layer head: 700+1 x 10 needs 3 tile(s) of 256 x 256" in text
    assert "the board has 4, 2 left for it ([2, 3]) after features on [0, 1]" in text
    assert "; its 701 rows alone take 3 tile(s), 2 tile(s) are left:" in text
    # The width that would fit: a first hidden layer of 128 on two 64 x 64 tiles.
    small = dataclasses.replace(INFO, tile_count=2, rows=64, cols=64)
    with pytest.raises(PlacementError) as caught:
        place(small, [LayerShape("layer0", 64, 256, digital_bias=True)])
    assert "with its 64 rows, 2 tile(s) hold at most 128 outputs: use fewer" in str(caught.value)
    with pytest.raises(PlacementError, match="needs 2 tile"):
        place(INFO, [LayerShape("layer", 300, 12)], allowed=(2,))
    with pytest.raises(PlacementError, match=r"tiles: got tile 7, expected tiles in 0 \.\. 3 "
                       r"\(the board's 4; --tile, or the tiles= option\)"):  # fmt: skip
        place(INFO, [LayerShape("layer", 10, 2)], allowed=(7,))
    with pytest.raises(PlacementError, match=r"given tiles \[1\]"):
        place(INFO, [LayerShape("layer", 300, 12)], fixed={"layer": (1,)})


def test_a_layer_split_by_rows_moves_by_exactly_the_host_delta() -> None:
    """Each row block is perturbed with its part of Δ(seed) for the whole matrix, so the
    board's outputs are [x, 1]·(W ± c·Δ(seed)) as the host computes them; one
    RunSequence of PerturbedMVMs answers the same."""
    with open_board("emu://?preset=ideal&seed=4") as board:
        rng = np.random.default_rng(6)
        layer = AnalogLinear(board, (1, 3), inputs=300, outputs=12)
        assert [b.tile for b in layer.blocks] == [1, 3]
        w = rng.uniform(-0.5, 0.5, layer.shape).astype(np.float32)
        layer.program(w)
        x = rng.normal(size=(5, 300)).astype(np.float32) / 4
        xb = np.hstack([np.clip(x, -4, 4), np.ones((5, 1), np.float32)])
        delta = rademacher(2**63 + 5, layer.shape)
        expected = [xb @ (w + sign * 0.2 * delta) for sign in (1, -1)]
        for sign, want in zip((1, -1), expected, strict=True):
            layer.perturb(2**63 + 5, 0.2, sign)
            np.testing.assert_allclose(layer.forward(x), want, rtol=1e-4, atol=2e-3)
        layer.restore()
        assert layer.fused_perturbation
        fused = layer.perturbed_forward(x, [(2**63 + 5, 0.2, 1), (2**63 + 5, 0.2, -1)])
        np.testing.assert_allclose(fused, np.stack(expected), rtol=1e-4, atol=2e-3)
        np.testing.assert_allclose(layer.forward(x), xb @ w, rtol=1e-4, atol=2e-3)


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A user's data set of 300 features and 12 classes (an .npz with X and y)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "wide.npz"
    np.savez(path, X=rng.normal(size=(240, 300)).astype(np.float32), y=np.arange(240) % 12)
    return str(path)


def test_spsa_on_a_data_set_wider_than_a_tile_places_it_on_two(wide: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_sidra(
        "train", "spsa", "--dataset", wide, "--board", "emu://?preset=ideal", "--steps", "4",
        "--batch-size", "16", "--json", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["placement"] == {"layer": [0, 1]}
    assert summary["steps"] == 4


def test_last_layer_on_a_data_set_wider_than_a_tile_places_it_on_two(wide: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_sidra(
        "train", "last-layer", "--dataset", wide, "--board", "emu://?preset=ideal",
        "--epochs", "1", "--json", "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["placement"] == {"features": [0, 1], "head": [2]}
    assert summary["steps"] > 0


def test_a_network_too_big_for_the_tiles_allowed_is_a_clear_usage_error(wide: str) -> None:
    done = run_sidra(
        "train", "spsa", "--dataset", wide, "--board", "emu://?preset=ideal", "--steps", "2",
        "--tiles", "2",
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "layer: 300+1 x 12 needs 2 tile(s) of 256 x 256" in done.stderr


@pytest.mark.parametrize(
    "command", ["spsa", "last-layer", "mlp", "ff", "eqprop", "compare", "drift-recovery"]
)
def test_a_data_set_that_cannot_be_loaded_is_a_usage_error(command: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No `sidra train` command ends in a traceback for a user's data: an .npz without X
    and y (every command), a missing file (one: they share the loader) are usage errors
    naming --dataset."""
    bad = tmp_path / "bad.npz"
    np.savez(bad, A=np.zeros(3))
    cases = [(str(bad), "expected arrays X and y")]
    if command == "spsa":
        cases.append((str(tmp_path / "none.npz"), "an existing .npz or .csv file"))
    for dataset, says in cases:
        done = run_sidra("train", command, "--dataset", dataset)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert "--dataset" in done.stderr and unwrapped(says) in unwrapped(done.stderr)


def _saved(path: Path, **arrays: Any) -> str:
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("arrays", "says"),
    [
        ({"X": np.array([[0.0, np.nan]] * 10), "y": np.arange(10) % 2}, "10 NaN/Inf values"),
        ({"X": np.zeros((0, 4)), "y": np.zeros(0)}, "got shape [0, 4], expected samples"),
        ({"X": np.zeros((10, 4)), "y": np.zeros(5)}, "got shape [5], expected one label"),
        ({"X": np.zeros((10, 4)), "y": np.zeros((10, 2))}, "got shape [10, 2], expected one"),
        ({"X": np.zeros((10, 4)), "y": np.ones(10)}, "got one class (1.0), expected at least"),
        ({"X": np.array([["a"] * 4] * 10), "y": np.arange(10) % 2}, "got dtype <U1"),
    ],
    ids=["nan", "empty", "short-y", "2d-y", "one-class", "text"],
)
def test_a_user_data_set_that_cannot_train_is_refused_naming_what(
    arrays: dict[str, Any], says: str, tmp_path: Path
) -> None:
    """Refused when loaded, before any board call (a NaN feature used to surface halfway
    through training as a bad voltage)."""
    with pytest.raises(ValueError) as caught:
        load_dataset(_saved(tmp_path / "user.npz", **arrays))
    assert str(caught.value).startswith("dataset: ") and says in str(caught.value)


def test_a_file_that_is_no_npz_archive_is_said_so(tmp_path: Path) -> None:
    path = tmp_path / "user.npz"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="is not an .npz archive of arrays"):
        load_dataset(str(path))


@pytest.mark.parametrize("name", [None, 3, Path("nope.npz")])
def test_a_data_set_name_that_is_no_name_or_file_is_refused_naming_it(name: Any) -> None:
    with pytest.raises(ValueError, match=r"dataset: got .*, expected one of digits"):
        load_dataset(name)


def test_a_data_set_file_may_be_a_path(tmp_path: Path) -> None:
    arrays = {"X": np.arange(40.0).reshape(20, 2), "y": np.arange(20) % 2}
    by_path = load_dataset(Path(_saved(tmp_path / "user.npz", **arrays)))
    assert by_path.name == "user" and by_path.x_train.shape == (14, 2)


def test_a_csv_data_set_is_the_same_data_as_its_npz(tmp_path: Path) -> None:
    """Features then the label on each line, a header skipped: the same split, scaling and
    classes as the arrays saved as .npz (text labels kept as the class names, numeric
    labels in numeric order)."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = np.array(iris.target_names)[iris.target]
    lines = ["sepal length,sepal width,petal length,petal width,species"]
    lines += [
        ",".join([*(f"{v:g}" for v in row), str(n)])
        for row, n in zip(iris.data, names, strict=True)
    ]
    (tmp_path / "iris.csv").write_text("\n".join(lines) + "\n")
    from_csv = load_dataset(str(tmp_path / "iris.csv"))
    from_npz = load_dataset(_saved(tmp_path / "iris.npz", X=iris.data, y=names))
    assert from_csv.labels == from_npz.labels == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(from_csv.x_train, from_npz.x_train)
    np.testing.assert_array_equal(from_csv.y_test, from_npz.y_test)
    assert from_csv.name == "iris"

    # Trained and evaluated on from the command line as any data set.
    from tests.cli_support import sidra_json

    run = tmp_path / "run"
    csv, board = str(tmp_path / "iris.csv"), "emu://?preset=ideal"
    sidra_json("train", "spsa", "--dataset", csv, "--steps", "3", "--eval-every", "3",
               "--out", str(run), "--board", board)  # fmt: skip
    evaluated = sidra_json("model", "eval", str(run), "--dataset", csv, "--board", board)
    assert evaluated["samples"] == len(from_csv.y_test)
    # A job inside a server is sent the file (tests/jobs/test_jobs_dataset_file.py); one
    # that is not here is refused before any server is asked.
    from tests.cli_support import run_sidra, unwrapped

    gone = str(tmp_path / "gone.csv")
    remote = run_sidra("train", "spsa", "--dataset", gone, "--server", "127.0.0.1:1",
                       "--remote-job")  # fmt: skip
    assert remote.returncode == 2
    assert unwrapped(f"'--dataset': got {gone}, which is no file here: a --remote-job is sent") in (
        unwrapped(remote.stderr)
    )

    numbered = [f"{i % 3 * 1.5};{i % 11}" for i in range(44)]  # ';' and labels 0 .. 10
    (tmp_path / "eleven.csv").write_text("\n".join(numbered))
    eleven = load_dataset(str(tmp_path / "eleven.csv"))
    assert eleven.labels == tuple(str(k) for k in range(11)) and eleven.classes == 11


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a,b,label\n1,2,x\n3,oops,y\n", "line 3, column 2 (b): got 'oops', expected a number"),
        ("1,2,x\n3,y\n", "line 2: got 2 values, expected 3 as on the lines before"),
        ("label\nx\ny\n", "line 1: got 1 value, expected the features then the label"),
        ("1,2,x\n3,4,x\n", "got one class ('x'), expected at least two"),
        ("1,nan,x\n3,4,y\n", "line 1, column 2: got 'nan', expected a finite number"),
        ("a,b,label\n1,2,x\n-inf,4,y\n", "line 3, column 1 (a): got '-inf', expected a finite"),
        ("a,b,label\n\n", "got no samples, expected one per line"),
        # the label put first: the last column is a measurement
        ("0,5.1,0.2\n1,6.3,1.5\n2,6.9,2.25\n", "got labels that are fractional numbers (0.2, "),
    ],
    ids=["text", "ragged", "no-features", "one-class", "nan", "inf", "empty", "label-first"],
)
def test_a_csv_data_set_that_cannot_train_is_refused_naming_line_and_column(
    text: str, says: str, tmp_path: Path
) -> None:
    (tmp_path / "user.csv").write_text(text)
    with pytest.raises(ValueError) as caught:
        load_dataset(str(tmp_path / "user.csv"))
    assert str(caught.value).startswith("dataset: ") and says in str(caught.value)
