"""``sidra bench emulator``: what it prints, not how fast (figures live in docs/benchmarks.md)."""

from __future__ import annotations

import pytest
from cli_support import run_sidra, sidra_json

from sidra.emulator import PRESETS


@pytest.mark.parametrize("preset_name", sorted(PRESETS))
def test_it_times_the_preset_against_numpy_at_the_shape_asked(preset_name: str) -> None:
    report = sidra_json(
        "bench", "emulator", "--preset", preset_name, "--batch", "8", "--repeats", "3"
    )
    assert report["preset"] == preset_name
    assert report["shape"][0] == 8 and report["repeats"] == 3
    assert report["emulator_ms"] > 0 and report["numpy_ms"] > 0
    assert report["ratio"] == pytest.approx(report["emulator_ms"] / report["numpy_ms"], rel=0.01)


def test_a_batch_of_no_vectors_is_refused_naming_the_option() -> None:
    result = run_sidra("bench", "emulator", "--batch", "0")
    assert result.returncode == 2
    text = " ".join(result.stderr.replace("│", " ").split())  # the box unwrapped
    assert "Invalid value for '--batch': got 0; input should be greater than or equal to 1" in text
