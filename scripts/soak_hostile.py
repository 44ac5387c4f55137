"""Hostile-input soak of ``sidra serve``: many hypothesis-drawn hostile requests, the
answers, the board's state and the server's memory.

Long form of tests/server/test_hostile_requests.py, with the same strategies
(tests/server/hostile_requests.py). Starts ``sidra serve`` in its own process
(``--board``: the ideal emulator, 256 x 256 tiles, unless another board is named; a
state store, ``--max-message-mb``), sets a
baseline (every tile programmed, a region perturbed, the clock advanced), then
sends ``--requests`` hostile requests over every RPC in batches of 100 sent at
once. After each batch: the board's cells (conductances and write counts of every
tile) and totals must be as before and the server still running. Prints the
requests sent (and how many distinct), the status codes, answers other than the
one expected, crashes, state changes, and the server's resident memory (VmRSS of
its process) at the start, at its peak and at the end, with the ratio end / start.

Run from the repository with the development environment::

    .venv/bin/python scripts/soak_hostile.py                      # 20,000 requests
    .venv/bin/python scripts/soak_hostile.py --requests 100000 --seed 7
    # the same through the PCIe path, to a virtual board started first:
    .venv/bin/sidra board serve --pcie-file /dev/shm/bar0 --preset ideal &
    .venv/bin/python scripts/soak_hostile.py --board pcie+file:///dev/shm/bar0
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "server"))

from hostile_requests import Cells, Hostile, HostileRequests, Limits, Sender, totals  # noqa: E402

from sidra.client import Region, RemoteBoard, connect  # noqa: E402
from sidra.server.settings import LimitsSettings  # noqa: E402
from sidra.server.state import StateStore  # noqa: E402

BOARD = "emu://?preset=ideal&seed=5"
RECIPES, FORMS = 25, 4  # 100 requests per batch


@contextmanager
def sidra_serve(
    folder: Path, board_url: str, max_message_mb: int, limits: LimitsSettings
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``sidra serve`` of ``board_url`` on a free loopback port with a state store in
    ``folder``."""
    config = folder / "sidra.toml"
    config.write_text(
        f'board = "{board_url}"\nlisten = "127.0.0.1:0"\nmax_message_mb = {max_message_mb}\n'
        f'[state]\npath = "{folder / "state.sqlite3"}"\n[logging]\nlevel = "warning"\n'
        f"[limits]\nmax_message_mb = {limits.max_message_mb}\nmax_batch = {limits.max_batch}\n"
        f"max_in_flight = {limits.max_in_flight}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidra.cli", "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        # The file above is the whole configuration: SIDRA_* settings in the environment
        # (a state path, say) would override it.
        env={k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")},
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            match = re.match(r"serving .* on \S+:(\d+) \[", line)
            if match:
                break
        else:
            raise SystemExit(f"sidra serve did not start:\n{''.join(lines)}")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain
        yield f"127.0.0.1:{match.group(1)}", proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid``, MiB (Linux /proc)."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    assert match, text
    return int(match.group(1)) / 1024


class MemoryWatch:
    """Samples a process's resident memory every 20 ms in the background."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except (OSError, AssertionError):
                return  # the process is gone: the caller sees it

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def establish(board: RemoteBoard) -> None:
    """Every tile programmed, a region of tile 1 perturbed, the clock advanced (on an
    emulated board: hardware has no clock to advance)."""
    info, rng = board.info, np.random.default_rng(2026)
    for tile in range(info.tile_count):
        g = rng.integers(2 * 16, 39 * 16 + 1, (info.rows, info.cols)) / 16
        board.program(tile, g.astype(np.float32))
    board.perturb(1, seed=9, amplitude_us=0.5, sign=1, region=Region(3, 4, 20, 10))
    if info.emulated:
        board.advance_clock(3600.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--board", default=BOARD,
        help="the board sidra serve serves; it must read exactly (an ideal preset, on any "
        "transport), as every cell is compared before and after each batch",
    )  # fmt: skip
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed")
    parser.add_argument(
        "--max-message-mb", type=int, default=4, help="sidra serve's max_message_mb (gRPC's)"
    )
    parser.add_argument(
        "--request-mb", type=int, default=2, help="[limits] max_message_mb (per principal)"
    )
    parser.add_argument(
        "--oversize-share", type=float, default=0.01, help="share of requests over the limit"
    )
    args = parser.parse_args()
    # Room for the 100 requests of a batch sent at once: the in-flight limit is not what
    # this soak is about. The batch limit is the default.
    configured = LimitsSettings(max_message_mb=args.request_mb, max_in_flight=256)
    limits = Limits.of(configured, args.max_message_mb * 2**20)
    batches = -(-args.requests // (RECIPES * FORMS))

    with (
        tempfile.TemporaryDirectory() as tmp,
        sidra_serve(Path(tmp), args.board, args.max_message_mb, configured) as (address, proc),
    ):
        store_path = Path(tmp) / "state.sqlite3"
        with connect(address) as board, grpc.insecure_channel(address) as channel:
            establish(board)
            info = board.info
            with StateStore(store_path, read_only=True) as store:
                records = len(store.history())
            sender = Sender(channel, info, limits)
            strategies = HostileRequests(
                info, limits, forms=FORMS, oversize_share=args.oversize_share
            )
            problems: list[str] = []
            changes: list[str] = []
            distinct: set[tuple[str, bytes]] = set()
            defects: Counter[str] = Counter()
            crashed = False
            start_mib = rss_mib(proc.pid)
            watch = MemoryWatch(proc.pid)
            started = time.perf_counter()

            @seed(args.seed)
            @settings(
                max_examples=batches,
                database=None,
                deadline=None,
                phases=[Phase.generate],  # no shrinking: every problem is printed as it is
                suppress_health_check=list(HealthCheck),
            )
            @given(strategies.batches(RECIPES))
            def send(requests: list[Hostile]) -> None:
                nonlocal crashed
                if crashed:
                    return
                cells, before = Cells.read(board), totals(board.stats())
                problems.extend(sender.send(requests))
                if proc.poll() is not None:
                    crashed = True
                    return
                if totals(board.stats()) != before or Cells.read(board) != cells:
                    changes.append(", ".join(sorted({f"{h.rpc} {h.defect}" for h in requests})))
                for hostile in requests:
                    distinct.add((hostile.rpc, hostile.data))
                    defects.update(hostile.defect.split("+"))

            try:
                send()
            except grpc.RpcError as exc:  # the server went away under the probes
                crashed = crashed or proc.poll() is not None
                problems.append(f"{exc.code().name}: {exc.details()}")
            elapsed = time.perf_counter() - started
            watch.stop()
            time.sleep(1.0)  # let the server drop the last calls' buffers
            end_mib = rss_mib(proc.pid) if proc.poll() is None else float("nan")
            with StateStore(store_path, read_only=True) as store:
                if len(store.history()) != records:
                    changes.append(f"the store holds {len(store.history()) - records} new records")

        codes = sender.codes
        sent = sum(codes.values())
        by_code = Counter[str]()
        for (_, code), count in codes.items():
            by_code[code] += count
        print(f"sidra serve: {args.board}, {info.tile_count} tiles of {info.rows} x {info.cols}, "
              f"max_message_mb {args.max_message_mb}, [limits] max_message_mb {args.request_mb}, "
              f"max_batch {configured.max_batch}; hypothesis seed {args.seed}")  # fmt: skip
        print(f"requests sent: {sent} ({len(distinct)} distinct) in {elapsed:.1f} s, over "
              f"{len({rpc for rpc, _ in codes})} RPCs, {len(defects)} kinds of defect")  # fmt: skip
        print("codes: " + ", ".join(f"{code} {n}" for code, n in by_code.most_common()))
        for rpc in sorted({rpc for rpc, _ in codes}):
            row = ", ".join(f"{code} {n}" for (r, code), n in sorted(codes.items()) if r == rpc)
            print(f"  {rpc}: {row}")
        print(f"answers other than expected: {len(problems)}")
        for line in problems[:10]:
            print(f"  {line}")
        print(f"crashes: {int(crashed)}")
        print(f"state changes: {len(changes)}")
        for line in changes[:10]:
            print(f"  after a batch of: {line}")
        print(f"server RSS: start {start_mib:.1f} MiB, peak {watch.peak:.1f} MiB, "
              f"end {end_mib:.1f} MiB; end / start {end_mib / start_mib:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
