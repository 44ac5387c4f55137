"""``sidra board compare``: a board against its characterized twin, and against a wrong one.

The same workload runs on both (sidra.characterize.compare); per output the means and the
spreads of the board's and the twin's passes must agree within 5 % on average, at the
start and after a programmed-and-perturbed workload, forward and backward. A twin built
from the wrong profile (no read noise) must be told apart.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_support import run_sidra

from sidra.characterize import characterize
from sidra.characterize.compare import compare
from sidra.characterize.toml import dumps
from sidra.emulator import BoardProfile, preset
from sidra.emulator.config import Geometry
from sidra.emulator.driver import EmulatorDriver

SMALL = Geometry(tiles=1, rows=32, cols=32)


@pytest.fixture(scope="module")
def board_and_twin() -> tuple[BoardProfile, BoardProfile]:
    board = preset("sidra-y1").model_copy(update={"geometry": SMALL})
    return board, characterize(EmulatorDriver(board, seed=6), seed=2).profile


def test_board_and_its_twin_agree_within_5_percent_per_output(
    board_and_twin: tuple[BoardProfile, BoardProfile],
) -> None:
    board, twin = board_and_twin
    result = compare(EmulatorDriver(board, seed=6), EmulatorDriver(twin, seed=1), repeats=128)
    assert [(d.phase, d.direction) for d in result.distances] == [
        ("start", "MVM"), ("start", "TransposeMVM"), ("after", "MVM"), ("after", "TransposeMVM"),
    ]  # fmt: skip
    for d in result.distances:
        assert d.mean_distance.shape == (32,) and d.spread_distance.shape == (32,)
        assert d.mean_of_means < 0.05 and d.mean_of_spreads < 0.05, d


def test_a_twin_without_the_boards_noise_is_told_apart(
    board_and_twin: tuple[BoardProfile, BoardProfile],
) -> None:
    board, twin = board_and_twin
    quiet = twin.model_copy(update={"read_noise": preset("ideal").read_noise})
    result = compare(EmulatorDriver(board, seed=6), EmulatorDriver(quiet, seed=1), repeats=32)
    assert all(d.mean_of_spreads > 0.5 for d in result.distances)


def test_compare_command_prints_json_and_refuses_a_twin_of_another_geometry(
    tmp_path: Path, board_and_twin: tuple[BoardProfile, BoardProfile]
) -> None:
    board, twin = board_and_twin
    board_file, twin_file = tmp_path / "board.toml", tmp_path / "twin.toml"
    board_file.write_text(dumps(board.model_dump(mode="json")), encoding="utf-8")
    twin_file.write_text(dumps(twin.model_dump(mode="json")), encoding="utf-8")
    url = f"emu://?profile={board_file}&seed=6"
    done = run_sidra(
        "board", "compare", url, "--profile", str(twin_file), "--repeats", "64", "--cycles", "2",
        "--block", "48", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # A block larger than the 32 × 32 tile is cut to it, and the command says so.
    assert (report["block_size"], report["block_rows"], report["block_cols"]) == (48, 32, 32)
    assert "--block 48: the tile is 32 × 32, so the block used is 32 × 32" in done.stderr
    assert report["repeats"] == 64 and len(report["distances"]) == 4
    assert all(len(d["per_output_mean_distance"]) == 32 for d in report["distances"])
    # What sampling alone gives, beside each distance: 8 inputs × 64 repeats.
    assert all(d["mean_distance_sampling"] > 0 for d in report["distances"])
    assert report["distances"][0]["spread_distance_sampling"] == pytest.approx(0.0355, abs=1e-4)
    narrower = BoardProfile(geometry=Geometry(tiles=1, rows=32, cols=16))
    twin_file.write_text(dumps(narrower.model_dump(mode="json")), encoding="utf-8")
    refused = run_sidra("board", "compare", url, "--profile", str(twin_file))
    assert refused.returncode == 1
    said = " ".join(refused.stderr.split())
    assert "twin: not this board's (" in said and "cols: the twin's 16, the board's 32" in said


def test_a_twin_identical_to_the_board_scores_its_sampling_figures() -> None:
    """Two emulated boards that differ in their read noise only (exact programming, no
    per-cell draws): the distances are sampling alone, which the figures predict."""
    noisy = preset("ideal").model_copy(
        update={
            "geometry": SMALL,
            "read_noise": preset("ideal").read_noise.model_copy(
                update={"output_noise_ua": 0.5, "sigma_g_fraction": 0.02}
            ),
        }
    )
    result = compare(EmulatorDriver(noisy, seed=3), EmulatorDriver(noisy, seed=4), repeats=64)
    for d in result.distances:
        assert d.mean_sampling.shape == (32,)
        assert 0.7 < d.mean_of_means / d.mean_of_mean_sampling < 1.3, d
        assert d.spread_sampling == pytest.approx((2 / math.pi / (8 * 63)) ** 0.5)
        assert 0.6 < d.mean_of_spreads / d.spread_sampling < 1.4, d
    assert (result.tile, result.block.shape) == (0, (32, 32))
