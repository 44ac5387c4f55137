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
