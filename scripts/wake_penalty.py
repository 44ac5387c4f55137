"""How much slower the same work runs right after its thread waited than back to back.

Every served call runs after a wait: the server's worker sleeps until a request
arrives, the virtual PCIe board parks until a doorbell, the host parks until a
completion. A benchmark that compares those paths with the same work called in a
loop in one process (``sidra bench service``, ``sidra bench pcie``) charges the
served side for whatever the machine does to caches, TLB and branch history in
the meantime: on a virtual machine whose cores serve other guests too, work that
has not run for a millisecond comes back cold, and runs several times slower.

This times, in thread CPU (``time.thread_time``: time the thread ran, not time it
waited for a CPU), each piece of work the service and the PCIe path repeat:

* ``mvm1``: a 1-vector MVM on the in-process emulator (``--preset``, sidra-y1 by
  default: read noise and converters, as the service bench);
* ``check1024``: the voltage check of a 1024 x 256 float32 batch (``pass_voltages``,
  what the host and the board each run on a PCIe batch);
* ``copy1024``: copying that batch (1 MiB) into a buffer, as into a BAR window;

back to back, then each after the thread slept ``--gaps-ms`` (0.2, 1 and 5 ms by
default: a loopback round trip, a batch product, a pause between calls), and, as a
control, after it spun for 1 ms instead of sleeping (a thread that never sleeps:
what is left of the penalty then is the machine's, not the idle vCPU's). Each (work, wait) runs as a
block of ``--block`` calls of that work alone, the first left out (it follows other
work); blocks alternate round by round so the machine's load falls on every gap
alike. Medians are printed, and each gap's median over the back-to-back one.

    .venv/bin/python scripts/wake_penalty.py
    .venv/bin/python scripts/wake_penalty.py --gaps-ms 0.1 0.5 2 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sidra.drivers import open_board
from sidra.drivers.validation import pass_voltages

SPIN_S = 0.001
"""How long the control spins instead of sleeping, s."""


def _work(preset: str, seed: int) -> tuple[dict[str, Callable[[], Any]], Callable[[], None]]:
    """The timed pieces of work, and what closes the board they use."""
    board = open_board(f"emu://?preset={preset}&seed={seed}")
    info = board.info
    rng = np.random.default_rng(seed)
    board.program(0, rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)))
    v_max = info.read_voltage_max_v
    one = rng.uniform(-v_max / 4, v_max / 4, (1, info.rows)).astype(np.float32)
    batch = rng.uniform(-v_max / 4, v_max / 4, (1024, info.rows)).astype(np.float32)
    window = np.empty_like(batch)
    work: dict[str, Callable[[], Any]] = {
        "mvm1": lambda: board.mvm(0, one),
        "check1024": lambda: pass_voltages(info, batch, info.rows, "rows"),
        "copy1024": lambda: np.copyto(window, batch),
    }
    return work, board.close


def _cpu_us(call: Callable[[], Any], before: Callable[[], None]) -> float:
    before()
    start = time.thread_time()
    call()
    return 1e6 * (time.thread_time() - start)


def _sleeper(seconds: float) -> Callable[[], None]:
    return lambda: time.sleep(seconds)


def _spin() -> None:
    end = time.perf_counter() + SPIN_S
    while time.perf_counter() < end:
        pass


def measure(
    preset: str, gaps_ms: list[float], rounds: int, block: int, seed: int
) -> dict[str, Any]:
    work, close = _work(preset, seed)
    waits: dict[str, Callable[[], None]] = {"back_to_back": lambda: None}
    for gap in gaps_ms:
        waits[f"after_{gap:g}ms"] = _sleeper(gap / 1e3)
    waits["after_1ms_spin"] = _spin
    samples: dict[tuple[str, str], list[float]] = {(n, w): [] for n in work for w in waits}
    try:
        for call in work.values():  # warm-up: first-call costs, page faults
            for _ in range(50):
                call()
        for _ in range(rounds):
            for wait, before in waits.items():
                for name, call in work.items():
                    times = [_cpu_us(call, before) for _ in range(block)]
                    samples[name, wait].extend(times[1:])
    finally:
        close()
    result: dict[str, Any] = {"preset": preset, "rounds": rounds, "block": block}
    for name in work:
        hot = statistics.median(samples[name, "back_to_back"])
        for wait in waits:
            med = statistics.median(samples[name, wait])
            result[f"{name}_{wait}_us"] = round(med, 1)
            if wait != "back_to_back":
                result[f"{name}_{wait}_over_back_to_back"] = round(med / hot, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sidra-y1", help="emulator preset (sidra-y1)")
    parser.add_argument(
        "--gaps-ms", type=float, nargs="+", default=[0.2, 1.0, 5.0], help="sleeps, ms"
    )
    parser.add_argument("--rounds", type=int, default=30, help="blocks per (work, wait) (30)")
    parser.add_argument("--block", type=int, default=11, help="calls per block (11)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    result = measure(args.preset, args.gaps_ms, args.rounds, args.block, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:44s} {value}")


if __name__ == "__main__":
    main()
