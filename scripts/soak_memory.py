"""Memory of ``sidra serve`` under large and hostile requests: bounded, and given back.

Starts ``sidra serve`` on the ideal emulator (a child process, so its resident set
is the server's alone) and reads its RSS from ``/proc/<pid>/status`` (VmRSS; VmHWM
for the peak):

1. at start, after one small call;
2. while ``--rounds`` rounds of ``--concurrent`` concurrent MVMs of ``--request-mib``
   MiB each run (as many as one principal may have in flight), and after them;
3. after ``--hostile`` small hostile requests (unparsable bytes, shapes over the
   batch limit, wrong byte counts, NaN, bad tiles, unknown fields), sent by 4 threads.

Prints each figure in MiB and the ratios to the start; the run passes (exit 0) when
the RSS after the large requests is within ``--max-growth`` (default 1.5) times the
start plus one request's size, and the hostile requests added less than 16 MiB.
Figures depend on the machine; compare ratios measured in one run.

    .venv/bin/python scripts/soak_memory.py
    .venv/bin/python scripts/soak_memory.py --rounds 20 --hostile 100000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np

from sidra.client import connect
from sidra.hil.v1 import board_pb2 as pb

IDEAL_URL = "emu://?preset=ideal&seed=1"
ROWS = 256  # the ideal preset's tiles
MIB = 2**20
SERVICE = "/sidra.hil.v1.BoardService"


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    """``key`` (VmRSS: resident now; VmHWM: the peak so far) of process ``pid``, MiB."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    match = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
    assert match, f"no {key} in /proc/{pid}/status"
    return int(match.group(1)) / 1024


def start_server(
    folder: Path, max_message_mb: int, max_batch: int, concurrent: int
) -> tuple[subprocess.Popen[str], int]:
    """``sidra serve`` on the ideal board with room for the large requests; its port."""
    config = folder / "sidra.toml"
    config.write_text(
        f'board = "{IDEAL_URL}"\nlisten = "127.0.0.1:0"\nmax_message_mb = {max_message_mb}\n'
        f"[limits]\nmax_batch = {max_batch}\nmax_in_flight = {concurrent}\n"
        f'[state]\npath = "{folder / "state.sqlite3"}"\n',
        encoding="utf-8",
    )
    # The file above is the whole configuration: SIDRA_* settings in the environment
    # (a state path, say) would override it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidra.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"serving .* on 127\.0\.0\.1:(\d+)", line)
        if match:
            # Keep reading stderr so the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(match.group(1))
    raise SystemExit(f"sidra serve did not start (exit {proc.wait()})")


def large_rounds(address: str, request_mib: int, concurrent: int, rounds: int, limit: int) -> None:
    batch = request_mib * MIB // (4 * ROWS)
    rng = np.random.default_rng(2026)
    v = rng.uniform(-0.2, 0.2, (batch, ROWS)).astype(np.float32)
    boards = [connect(address, max_message_bytes=limit) for _ in range(concurrent)]
    try:
        with ThreadPoolExecutor(concurrent) as pool:
            for _ in range(rounds):
                results = list(pool.map(lambda board: board.mvm(0, v), boards))
                assert all(r.currents.shape == (batch, ROWS) for r in results)
                del results
    finally:
        for board in boards:
            board.close()


def hostile_requests(count: int, max_batch: int) -> list[tuple[str, bytes]]:
    """Small requests the service must refuse, each a few bytes to a few KiB."""
    rng = np.random.default_rng(7)
    f32 = pb.DTYPE_FLOAT32
    good = np.zeros((1, ROWS), np.float32)
    nan = good.copy()
    nan[0, 3] = np.nan
    kinds: list[tuple[str, bytes]] = [
        ("MVM", rng.bytes(64)),  # unparsable (most of the time) or nonsense
        ("MVM", pb.MVMRequest(voltages=pb.Tensor(dtype=f32, shape=[max_batch + 1, ROWS]))
         .SerializeToString()),  # over the batch limit, no data
        ("MVM", pb.MVMRequest(voltages=pb.Tensor(dtype=f32, shape=[2**32 - 1] * 200))
         .SerializeToString()),  # a huge malformed shape
        ("MVM", pb.MVMRequest(voltages=pb.Tensor(dtype=f32, shape=[4, ROWS], data=b"\0" * 100))
         .SerializeToString()),  # wrong byte count
        ("MVM", pb.MVMRequest(voltages=pb.Tensor(dtype=f32, shape=[1, ROWS], data=nan.tobytes()))
         .SerializeToString()),  # NaN
        ("MVM", pb.MVMRequest(tile=9, voltages=pb.Tensor(dtype=f32, shape=[1, ROWS],
                                                          data=good.tobytes()))
         .SerializeToString()),  # no such tile
        ("Program", pb.ProgramRequest(conductances=pb.Tensor(dtype=f32, shape=[ROWS, ROWS]))
         .SerializeToString()),  # no data
        ("AdvanceClock", b"\x09" + b"\xff" * 8),  # NaN seconds
        ("GetBoardInfo", b"\xfa\xff\xff\xff\x0f" + b"x" * 32),  # an unknown field
    ]  # fmt: skip
    return [kinds[i % len(kinds)] for i in range(count)]


def send_hostile(address: str, requests: list[tuple[str, bytes]]) -> dict[str, int]:
    codes: dict[str, int] = {}
    lock = threading.Lock()
    with grpc.insecure_channel(address) as channel:
        methods = {rpc: channel.unary_unary(f"{SERVICE}/{rpc}") for rpc, _ in requests[:20]}

        def send(item: tuple[str, bytes]) -> None:
            rpc, data = item
            try:
                methods[rpc](data, timeout=30)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            with lock:
                codes[code] = codes.get(code, 0) + 1

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, requests))
    return codes


def settle(pid: int, seconds: float = 1.0) -> float:
    """RSS once the server has been idle for ``seconds`` (gRPC frees buffers lazily)."""
    time.sleep(seconds)
    return rss_mib(pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--request-mib", type=int, default=64, help="size of each large MVM")
    parser.add_argument("--concurrent", type=int, default=4, help="large MVMs at once")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of large MVMs")
    parser.add_argument("--hostile", type=int, default=10_000, help="small hostile requests")
    parser.add_argument("--max-growth", type=float, default=1.5)
    args = parser.parse_args()
    limit_mb = args.request_mib + 16  # room for the message framing and the cost fields
    max_batch = args.request_mib * MIB // (4 * ROWS)

    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(Path(tmp), limit_mb, max_batch, args.concurrent)
        address = f"127.0.0.1:{port}"
        try:
            with connect(address) as board:
                board.mvm(0, np.zeros((1, ROWS), np.float32))
            start = settle(proc.pid)
            large_rounds(address, args.request_mib, args.concurrent, args.rounds, limit_mb * MIB)
            peak = rss_mib(proc.pid, "VmHWM")
            after_large = settle(proc.pid)
            codes = send_hostile(address, hostile_requests(args.hostile, max_batch))
            after_hostile = settle(proc.pid)
            with connect(address) as board:  # still serving
                board.mvm(0, np.zeros((1, ROWS), np.float32))
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    request_mib = float(args.request_mib)
    print(
        f"sidra serve RSS, MiB (ideal board, {args.rounds} rounds of {args.concurrent} "
        f"concurrent {args.request_mib} MiB MVMs, then {args.hostile} hostile requests)"
    )
    print(f"  start                  {start:8.1f}")
    print(
        f"  peak (VmHWM)           {peak:8.1f}   {peak / start:5.2f} x start, "
        f"{(peak - start) / request_mib:5.1f} requests' worth above it"
    )
    print(f"  after large requests   {after_large:8.1f}   {after_large / start:5.2f} x start")
    print(
        f"  after hostile requests {after_hostile:8.1f}   {after_hostile / start:5.2f} x start, "
        f"{after_hostile - after_large:+.1f} MiB from them"
    )
    print(f"  hostile answers: {dict(sorted(codes.items()))}")
    bounded = after_large <= args.max_growth * start + request_mib
    quiet = after_hostile - after_large < 16
    print("  verdict: " + ("memory given back" if bounded and quiet else "memory kept"))
    return 0 if bounded and quiet else 1


if __name__ == "__main__":
    sys.exit(main())
