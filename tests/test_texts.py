"""sidra.cli.texts: how every table of the command line writes a figure, a size, tiles
a moment and a time span."""

from __future__ import annotations

import time

import pytest

from sidra.cli.texts import count_text, duration_text, figure_text, size_text, tiles_text, when_text


def test_a_run_s_figures_read_as_a_person_reads_them() -> None:
    assert figure_text("test_accuracy", 0.953704) == "95.37 %"
    assert figure_text("device_writes", 444240) == "444,240"
    assert figure_text("modeled_time_ns", 9395470.0) == "9,395,470"
    assert figure_text("final_loss", 0.87912345) == "0.8791"
    assert figure_text("seed", 0) == "0" and figure_text("blocking", False) == "False"
    assert figure_text("placement", {"layer0": [0, 1]}) == "layer0: tiles 0, 1"
    assert figure_text("placement", {"layer": [0]}) == "layer: tile 0"
    tuned_from = {"job": "mlp", "test_accuracy": 0.97, "steps": 1200}
    assert figure_text("tuned_from", tuned_from) == "job mlp; test_accuracy 97.00 %; steps 1,200"
    assert figure_text("gain", float("nan")) == "nan"
    assert figure_text("stopped_by", None) == "None"
    assert figure_text("gradient_cosine", [0.6852, 0.7301, 0.8169]) == (
        "layer0 0.6852, layer1 0.7301, layer2 0.8169"
    )
    assert figure_text("layer_accuracy", [0.5, 0.975]) == "layer0 50.00 %, layer1 97.50 %"
    # A layer --trainable left frozen has no gradient to measure: it read "layer0 None".
    assert figure_text("gradient_cosine", [None, 0.9596]) == "layer0 not measured, layer1 0.9596"


def test_tiles_are_named_as_a_sentence_names_them() -> None:
    """One wording everywhere a command names tiles (status, jobs, deployments, a run's
    placement), where each used to print its own (``tiles 0``, ``tiles [0]``, ``all``)."""
    assert tiles_text([3]) == "tile 3"
    assert tiles_text((0, 2)) == "tiles 0, 2"
    assert tiles_text([0, 1, 2, 3], whole_board=True) == "the whole board"
    assert tiles_text([]) == "no tile"


@pytest.mark.parametrize(
    ("size_bytes", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (87_189, "87.2 kB"),
     (1_300_000, "1.3 MB"), (2_500_000_000, "2.5 GB")],
)  # fmt: skip
def test_sizes_are_in_decimal_units(size_bytes: int, text: str) -> None:
    assert size_text(size_bytes) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.04, "0.0 s"), (1.665, "1.7 s"), (119.9, "119.9 s"), (120, "2.0 min"),
     (450, "7.5 min"), (7200, "2.0 h"), (11_520, "3.2 h")],
)  # fmt: skip
def test_a_span_of_time_in_its_own_unit(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_a_count_and_what_it_counts() -> None:
    assert count_text(1, "file") == "1 file"
    assert count_text(0, "file") == "0 files"
    assert count_text(23_726, "record") == "23,726 records"


def test_a_moment_is_local_time_to_the_minute_or_second_and_nothing_for_not_yet() -> None:
    moment = 1_796_000_000.75  # 2026-11-30 00:53:20.75 UTC
    local = time.localtime(moment)
    assert when_text(moment) == time.strftime("%Y-%m-%d %H:%M", local)
    assert when_text(moment, seconds=True) == time.strftime("%Y-%m-%d %H:%M:%S", local)
    assert len(when_text(moment)) == 16 and len(when_text(moment, seconds=True)) == 19
    assert when_text(0) == "" and when_text(0.0, seconds=True) == ""
