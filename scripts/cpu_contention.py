"""How much a busy second CPU slows the first: what a spinning waiter costs the worker.

A polled link between two processes (the virtual PCIe board and its host) assumes
that the side which spins waiting for the other costs that other side nothing: on
a machine with a free core per process it does not. On a virtual machine whose
vCPUs share one physical core (SMT siblings, or a host that caps the clock when
both run), the worker runs slower for every cycle the waiter burns, and the round
trip pays for the spin twice.

This pins itself to the first allowed CPU and times, alternating round by round
so that the machine's own load hits all alike:

* a fixed pure-Python loop (interpreter work: what both ends of the link mostly do);
* a single-vector product, 1 x 256 by 256 x 256 float32 (the emulator's pass; too
  small for BLAS to split across threads, and the process is pinned anyway);

with the second CPU idle, and with a child process on the second CPU spinning in
Python (a polling host or board). Prints the medians and the busy/idle ratios;
1.0 means the waiter is free. Needs two CPUs.

    .venv/bin/python scripts/cpu_contention.py
    .venv/bin/python scripts/cpu_contention.py --rounds 21 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SPINNER = "import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True:\n    pass\n"


def python_loop_ms(n: int = 200_000) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return 1e3 * (time.perf_counter() - start)


def product_us(repeats: int = 2000, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    matrix = rng.random((256, 256), dtype=np.float32)
    vector = rng.random((1, 256), dtype=np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        vector @ matrix
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def measure(rounds: int) -> dict[str, float | int | str]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("needs two CPUs: this process may run on one")
    worker, other = cpus[0], cpus[1]
    os.sched_setaffinity(0, {worker})
    samples: dict[str, list[float]] = {
        k: [] for k in ("loop_idle", "loop_busy", "mvm_idle", "mvm_busy")
    }
    for _ in range(rounds):
        for busy in (False, True):
            spinner = None
            if busy:
                spinner = subprocess.Popen([sys.executable, "-c", SPINNER, str(other)])
                time.sleep(0.2)  # running and pinned before the timing starts
            try:
                state = "busy" if busy else "idle"
                samples[f"loop_{state}"].append(min(python_loop_ms() for _ in range(3)))
                samples[f"mvm_{state}"].append(product_us())
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            time.sleep(0.2)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "loop_idle_ms": round(med["loop_idle"], 2),
        "loop_busy_ms": round(med["loop_busy"], 2),
        "loop_busy_over_idle": round(med["loop_busy"] / med["loop_idle"], 2),
        "mvm1_idle_us": round(med["mvm_idle"], 2),
        "mvm1_busy_us": round(med["mvm_busy"], 2),
        "mvm1_busy_over_idle": round(med["mvm_busy"] / med["mvm_idle"], 2),
        "rounds": rounds,
        "cpus": f"{worker} (timed), {other} (idle or spinning)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="idle/busy pairs (default 9)")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    result = measure(args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:22s} {value}")


if __name__ == "__main__":
    main()
