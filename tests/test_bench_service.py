"""``sidra bench service --json`` runs end to end and reports every key issue 13 names.

Timing figures are never pass marks here: docs/benchmarks.md holds the measured ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RATIOS = (
    "batch1_float32_ratio",
    "batch64_float32_ratio",
    "batch1024_float32_ratio",
    "mvm1_over_empty",
    "spsa_board_step_ratio",
    "spsa_host_step_ratio",
    "batch1024_codes_ratio",
    "spsa_job_step_ratio_wan",
    "batch1024_shm_ratio",
    "batch1024_shm_stream_ratio",
)


def test_bench_service_json_keys_and_types(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sidra.cli", "bench", "service", "--json"]
    users_store = tmp_path / "state.sqlite3"  # where `sidra serve` would keep its state
    result = subprocess.run(
        [*command, "--repeats", "3", "--spsa-steps", "5", "--preset", "sidra-y1",
         "--rounds", "1", "--job-steps", "5"],
        capture_output=True, text=True, timeout=300, check=False,
        # A lab's settings (JSON logs here) are not the benchmark server's: with them it
        # waited forever for a start line it could not read.
        env={**os.environ, "SIDRA_STATE__PATH": str(users_store),
             "SIDRA_LOGGING__FORMAT": "json"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The benchmark's server keeps its Programs and jobs in a store of its own.
    assert not users_store.exists()
    report = json.loads(result.stdout)
    # A step time is a difference of two runs: at 5 steps noise may swamp it, and then
    # its ratio is null and both are named under "unmeasured".
    steps = {
        f"spsa_{k}_step_ratio{wan}": (f"spsa_{k}_step_inprocess_ms", f"spsa_{k}_step_{there}_ms")
        for k, there, wan in (("board", "grpc", ""), ("host", "grpc", ""), ("job", "wan", "_wan"))
    }
    for key in RATIOS:
        if key in steps and min(report[k] for k in steps[key]) <= 0:
            assert report[key] is None and key in report["unmeasured"], key
        else:
            assert isinstance(report[key], float) and report[key] > 0, key
    for key in (*RATIOS[:4], "batch1024_codes_ratio", "batch1024_shm_ratio",
                "batch1024_shm_stream_ratio"):  # fmt: skip
        assert report[key] > 0, key
    assert report["mvm1_p50_us"] > 0 and report["empty_rpc_p50_us"] > 0
    # What the run was, beside its figures: options, machine, load; step times at or
    # below zero (noise over so few steps) named, not passed off as figures.
    assert (report["spsa_steps"], report["rounds"], report["job_steps"]) == (5, 1, 5)
    assert report["repeats"] == 3 and report["preset"] == "sidra-y1"
    assert "CPUs, Python" in report["machine"] and len(report["load_1min"]) == 2
    assert report["unmeasured"] == [
        k for k, v in report.items() if k.endswith("_ms") and isinstance(v, float) and v <= 0
    ] + [k for k in steps if report[k] is None]
