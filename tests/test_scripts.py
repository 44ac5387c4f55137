"""Every measuring script in scripts/ still runs: each once, with the smallest work it takes.

The scripts are how docs/benchmarks.md and docs/operations.md were measured, and how
a figure there is measured again; nothing else runs them, so a change to the code
under them would otherwise break them unnoticed. These runs check that each starts
its boards and servers, does its work and prints what it prints (the figures of a
run this small mean nothing, and are not checked). A script added to scripts/
without a line here fails :func:`test_every_script_is_run`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

RUNS: dict[str, tuple[list[str], str]] = {
    # script: (its arguments, a key of its JSON output, or text its output holds)
    "call_overhead.py": (["--rounds", "2", "--number", "20", "--json"], "mvm_specific_us"),
    "chunk_sizes.py": (["--rows", "64", "--cols", "64", "--rounds", "1", "--json"], "sizes"),
    "cpu_contention.py": (["--rounds", "1", "--json"], "loop_busy_over_idle"),
    "pcie_floor.py": (["--bursts", "1", "--json"], "checks_ratio"),
    "region_bytes.py": (["--batch", "4", "--json"], "padded_over_region"),
    "service_floor.py": (["--calls", "20", "--json"], "raw_mvm_over_empty"),
    "soak_hostile.py": (["--requests", "50", "--seed", "1"], "crashes: 0"),
    "soak_load.py": (
        [
            "--clients",
            "2",
            "--calls",
            "20",
            "--probes",
            "1",
            "--probe-calls",
            "10",
            "--flood-batches",
            "1",
            "--flood-mb",
            "1",
        ],
        "unexpected errors: 0",
    ),  # fmt: skip
    "soak_memory.py": (
        ["--request-mib", "4", "--concurrent", "1", "--rounds", "2", "--hostile", "20"],
        "verdict:",
    ),
    "spsa_noise_budget.py": (
        ["--steps", "20", "--repeats", "2", "--directions", "2", "--measurements", "2", "--json"],
        "difference_noise",
    ),
    "stream_pipelining.py": (
        ["--batches", "10", "--batch", "4", "--depth", "2", "--rounds", "1"],
        "stream / unary",
    ),
    "wake_penalty.py": (
        ["--rounds", "2", "--block", "2", "--gaps-ms", "0.1", "--json"],
        "mvm1_after_0.1ms_over_back_to_back",
    ),
}


def test_every_script_is_run() -> None:
    assert sorted(p.name for p in SCRIPTS.glob("*.py")) == sorted(RUNS)


@pytest.mark.parametrize("script", sorted(RUNS))
def test_script_runs(script: str) -> None:
    if script == "cpu_contention.py" and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("times one CPU against a spinning second one")
    arguments, expected = RUNS[script]
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *arguments],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    if "--json" in arguments:
        printed = done.stdout.strip()
        # Some print the JSON object on several lines: it is the whole output.
        figures = json.loads(printed)
        assert expected in figures, sorted(figures)
    else:
        assert expected in done.stdout, done.stdout[-2000:]
