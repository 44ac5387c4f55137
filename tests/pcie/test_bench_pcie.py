"""``sidra bench pcie --json`` runs end to end and reports its keys with the right types.

Timing figures are never pass marks here: a loaded CI machine must not fail
the suite. docs/benchmarks.md holds the measured figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sidra.drivers

pytestmark = pytest.mark.skipif(
    "pcie+file" not in sidra.drivers.schemes(), reason="the PCIe driver is not installed"
)


def test_bench_pcie_json_keys_and_types() -> None:
    command = [sys.executable, "-m", "sidra.cli", "bench", "pcie", "--json"]
    result = subprocess.run(
        [*command, "--mvms", "10", "--batches", "3"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("mvm1_p50_us", "mvm1_p99_us", "inproc_mvm1_us", "batch1024_ratio"):
        assert isinstance(report[key], float), key
        assert report[key] > 0, key
    assert report["mvm1_p99_us"] >= report["mvm1_p50_us"]
    assert isinstance(report["queue_depth"], int) and report["queue_depth"] >= 8
    assert report["shape"] == [1024, 256, 256]
    assert (report["mvms"], report["batches"]) == (10, 3)
    assert isinstance(report["machine"], str) and report["machine"]
    assert len(report["load_1min"]) == 2 and all(load >= 0 for load in report["load_1min"])


def test_bench_pcie_calls_counts_each_end() -> None:
    """``--calls``: the board stepped in this process by each doorbell, calls counted per
    side; the round trip is their sum and both ends make some."""
    command = [sys.executable, "-m", "sidra.cli", "bench", "pcie", "--calls", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["host_calls"] > 0 and report["board_calls"] > 0
    assert report["round_trip_calls"] == report["host_calls"] + report["board_calls"]
    assert report["inproc_calls"] > 0
    parts = ("host_before_doorbell_calls", "host_while_board_calls", "host_after_answer_calls")
    assert sum(report[part] for part in parts) == report["host_calls"]
    assert report["critical_path_calls"] == report["round_trip_calls"] - report[parts[1]]
    assert report["host_before_doorbell_calls"] > 0 and report["host_after_answer_calls"] > 0
    assert set(report["top_calls"]) == {"host_before", "host_while", "host_after", "board"}
    assert report["lockstep_min_us"] > 0 and report["inproc_min_us"] > 0
    # The bench's own wrapper of each MVM is not one of the MVM's calls.
    counted = [name for names in report["top_calls"].values() for name in names]
    assert not [name for name in counted if name.startswith("call_counts.")]
    ignored = subprocess.run([*command, "--mvms", "50"], capture_output=True, text=True,
                             timeout=60, check=False)  # fmt: skip
    assert ignored.returncode == 2 and "--calls counts 20 MVMs" in ignored.stderr
