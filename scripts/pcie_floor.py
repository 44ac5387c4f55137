"""The floor under ``batch1024_ratio``: a batch MVM across two processes, ring taken away.

``sidra bench pcie`` divides the in-process emulator's batch-1024 MVM time by the
same MVM's through the virtual PCIe board in another process. This keeps only what
crossing processes needs: a shared ``/dev/shm`` mapping holding an input window, an
output window and two 32-bit words (a doorbell and a completion, each slept on with
a futex), and a far process running the emulator's pass (same preset, seed and
weights) straight into the output window. Then it adds back, one at a time, what
every batch of the real path pays:

* ``bare``: doorbell, the pass on what the input window holds, completion. No copy
  and no check: the two wake-ups and the pass alone;
* ``copies``: plus the host's copy of the batch into the input window and of the
  currents out of the output window (the 1 MiB each way a driver has to move);
* ``checks``: plus the voltage check on both ends (``pass_voltages``: the host's
  before the doorbell, the far end's before the pass), as the driver and the
  board's firmware made before register map 1.2;
* ``in_only``: what the driver's path needs since register map 1.2: the copy in and
  the far end's check, the currents left where the far end wrote them (the board
  writes a large result into host memory, and checks a large batch alone);
* ``driver``: the real path, ``PcieDriver.mvm`` against ``serve_virtual_pcie_board``
  (the board ``sidra board serve --pcie-file`` runs): the rings, their entries
  and registers, the interrupt and the park.

Each is timed against ``board.mvm`` in process as the bench times it (bursts of five
from rest, interleaved) and printed as in-process time over its own: the ratio
``batch1024_ratio`` would have on this machine with that much of the path left.

    .venv/bin/python scripts/pcie_floor.py
    .venv/bin/python scripts/pcie_floor.py --bursts 41 --json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from sidra.cli.bench_timing import burst_s
from sidra.drivers import Board, open_board
from sidra.drivers.pcie import futex
from sidra.drivers.validation import pass_voltages
from sidra.emulator import preset
from sidra.emulator.pcie import serve_virtual_pcie_board

BATCH, ROWS, COLS = 1024, 256, 256
WINDOW = BATCH * ROWS * 4  # bytes, float32
HEADER = 64  # bytes before the windows: the words below, then padding to a cache line
DOORBELL, COMPLETION, CHECK, STOP = range(4)  # u32 words of the header
PATHS = ("bare", "copies", "checks", "in_only", "driver")


class Mapping:
    """The shared file as both ends see it: the header words and the two windows."""

    def __init__(self, path: str) -> None:
        with open(path, "r+b") as f:
            self._mm = mmap.mmap(f.fileno(), 0)
        self.words = np.frombuffer(self._mm, np.uint32, HEADER // 4, 0)
        self.x = np.frombuffer(self._mm, np.float32, BATCH * ROWS, HEADER).reshape(BATCH, ROWS)
        self.y = np.frombuffer(self._mm, np.float32, BATCH * COLS, HEADER + WINDOW)
        self.y = self.y.reshape(BATCH, COLS)
        self._base = ctypes.addressof(ctypes.c_char.from_buffer(self._mm))

    def wait(self, word: int, value: int) -> None:
        futex.wait(self._base + 4 * word, value, 0.5)

    def wake(self, word: int) -> None:
        futex.wake(self._base + 4 * word)


def program(board: Board, seed: int) -> None:
    """The same conductances on every board of the run (as ``sidra bench pcie``)."""
    info = board.info
    rng = np.random.default_rng(seed)
    g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)).astype(np.float32)
    board.program(0, g)


def far_end(path: str, preset_name: str, seed: int) -> None:
    """Waits for the doorbell, runs the emulator's pass into the output window."""
    board = open_board(f"emu://?preset={preset_name}&seed={seed}")
    program(board, seed)
    emulator = board.board  # type: ignore[attr-defined]  # the emu:// driver's EmulatedBoard
    shared = Mapping(path)
    words = shared.words
    seen = int(words[DOORBELL])
    print("ready", flush=True)
    while not words[STOP]:
        if int(words[DOORBELL]) == seen:
            shared.wait(DOORBELL, seen)
            continue
        seen = int(words[DOORBELL])
        x = pass_voltages(board.info, shared.x, ROWS, "MVM") if words[CHECK] else shared.x
        emulator.mvm(0, x, out=shared.y)
        words[COMPLETION] = seen
        shared.wake(COMPLETION)


def measure(path: str, preset_name: str, seed: int, bursts: int) -> dict[str, Any]:
    shared = Mapping(path)
    words = shared.words
    with (
        open_board(f"emu://?preset={preset_name}&seed={seed}") as local,
        serve_virtual_pcie_board(preset(preset_name), seed) as served,
        open_board(served.url) as pcie,
    ):
        program(local, seed)
        program(pcie, seed)
        info = local.info
        rng = np.random.default_rng(seed + 1)
        v_max = info.read_voltage_max_v
        batch = rng.uniform(-v_max / 4, v_max / 4, (BATCH, ROWS)).astype(np.float32)
        shared.x[:] = batch  # what ``bare`` passes

        def far_mvm(copies: bool, checks: bool, both_ends: bool = True) -> np.ndarray:
            words[CHECK] = checks
            if checks and both_ends:
                pass_voltages(info, batch, ROWS, "MVM")
            if copies:
                np.copyto(shared.x, batch)
            seq = int(words[DOORBELL]) + 1
            words[DOORBELL] = seq
            shared.wake(DOORBELL)
            while (done := int(words[COMPLETION])) != seq:
                shared.wait(COMPLETION, done)
            return shared.y.copy() if copies and both_ends else shared.y

        calls: dict[str, Callable[[], np.ndarray]] = {
            "inproc": lambda: local.mvm(0, batch).currents,
            "bare": lambda: far_mvm(False, False),
            "copies": lambda: far_mvm(True, False),
            "checks": lambda: far_mvm(True, True),
            "in_only": lambda: far_mvm(True, True, both_ends=False),
            "driver": lambda: pcie.mvm(0, batch).currents,
        }
        expected = calls["inproc"]()
        for name, call in calls.items():  # warm-up; every path the same currents
            for _ in range(3):
                got = call()
            if preset_name == "ideal" and not np.array_equal(got, expected):
                raise SystemExit(f"{name}: its currents differ from the in-process pass")
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(bursts):
            for name, call in calls.items():
                times[name].append(burst_s(call))
    inproc = statistics.median(times["inproc"])
    result: dict[str, Any] = {"inproc_batch_us": round(1e6 * inproc, 1)}
    for name in PATHS:
        took = statistics.median(times[name])
        result[f"{name}_batch_us"] = round(1e6 * took, 1)
        result[f"{name}_ratio"] = round(inproc / took, 3)
    result.update(preset=preset_name, bursts=bursts)
    return result


def report(r: dict[str, Any]) -> str:
    lines = [f"batch-{BATCH} MVM, {r['preset']}, in process: {r['inproc_batch_us']:.0f} us"]
    for name in PATHS:
        lines.append(
            f"  {name:7s} {r[f'{name}_batch_us']:6.0f} us   ratio {r[f'{name}_ratio']:.3f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ideal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bursts", type=int, default=21, help="bursts of 5 timed per path")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--far-end", help=argparse.SUPPRESS)  # the far process's own entry
    args = parser.parse_args()
    if not futex.AVAILABLE:
        raise SystemExit("needs Linux futexes (x86-64 or ARM64), as the virtual board does")
    if args.far_end:
        far_end(args.far_end, args.preset, args.seed)
        return
    fd, path = tempfile.mkstemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.ftruncate(fd, HEADER + 2 * WINDOW)
    os.close(fd)
    command = [sys.executable, __file__, "--far-end", path, "--preset", args.preset]
    far = subprocess.Popen([*command, "--seed", str(args.seed)], stdout=subprocess.PIPE, text=True)
    try:
        assert far.stdout is not None
        if far.stdout.readline().strip() != "ready":
            raise SystemExit("the far process did not start")
        result = measure(path, args.preset, args.seed, args.bursts)
        print(json.dumps(result) if args.json else report(result))
    finally:
        shared = Mapping(path)
        shared.words[STOP] = 1
        shared.words[DOORBELL] += 1
        shared.wake(DOORBELL)
        far.wait(10)
        os.unlink(path)


if __name__ == "__main__":
    main()
