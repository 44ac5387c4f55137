"""The floor under ``mvm1_over_empty``: a served 1-vector MVM that does nothing but the pass.

``sidra bench service`` divides a 1-vector MVM round trip by an empty RPC's (a
health check) on the same server. This serves, beside the real BoardService, two
raw-bytes methods on the same server (same interceptors, same worker pool):

* ``Echo``: 1 KiB in, the same 1 KiB out: what the payload alone adds;
* ``MVM``: the 1 KiB of float32 voltages handed straight to ``board.mvm`` (tile 0)
  and its currents' bytes returned: no protobuf, no request object, no limits,
  leases, turns or recording, no client library. What is left is the transport,
  the interceptors every call has, and the board's pass.

and times, in turns after a warm-up (load that comes and goes meets each alike),
the health check, ``Echo``, the raw ``MVM`` and ``RemoteBoard.mvm`` (the service's
real path, as the bench times it). Prints the p50s and each over the health check's:
``raw_mvm_over_empty`` is as low as ``mvm1_over_empty`` can go on this machine with
this board, whatever the service's own code does.

    .venv/bin/python scripts/service_floor.py
    .venv/bin/python scripts/service_floor.py --preset ideal --calls 2000 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidra.client import connect
from sidra.drivers import open_board
from sidra.server.app import create_server

FLOOR_SERVICE = "sidra.bench.Floor"


def serve(board_url: str) -> None:
    """Serves the board with the two raw methods added; prints the port, then waits."""
    board = open_board(board_url)
    rows = board.info.rows
    server, port = create_server(board, "127.0.0.1:0")

    def raw_mvm(data: bytes, context: grpc.ServicerContext) -> bytes:
        voltages = np.frombuffer(data, np.float32).reshape(1, rows)
        return board.mvm(0, voltages).currents.tobytes()

    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                FLOOR_SERVICE,
                {
                    "Echo": grpc.unary_unary_rpc_method_handler(lambda data, context: data),
                    "MVM": grpc.unary_unary_rpc_method_handler(raw_mvm),
                },
            ),
        )
    )
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def _p50_us(times: list[float]) -> float:
    return 1e6 * statistics.median(times)


def measure(preset: str, calls: int, seed: int) -> dict[str, Any]:
    url = f"emu://?preset={preset}&seed={seed}"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        address = f"127.0.0.1:{int(child.stdout.readline())}"
        with connect(address) as remote, grpc.insecure_channel(address) as channel:
            info = remote.info
            rng = np.random.default_rng(seed)
            remote.program(0, rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)))
            v = np.zeros((1, info.rows), np.float32)
            raw = v.tobytes()
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest()
            echo = channel.unary_unary(f"/{FLOOR_SERVICE}/Echo")
            mvm = channel.unary_unary(f"/{FLOOR_SERVICE}/MVM")
            paths: dict[str, Callable[[], Any]] = {
                "empty": lambda: health.Check(check, timeout=10),
                "echo_1kib": lambda: echo(raw, timeout=10),
                "raw_mvm": lambda: mvm(raw, timeout=10),
                "mvm1": lambda: remote.mvm(0, v),
            }
            for call in paths.values():
                for _ in range(50):
                    call()
            times: dict[str, list[float]] = {name: [] for name in paths}
            for _ in range(calls):
                for name, call in paths.items():
                    start = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - start)
    finally:
        child.terminate()
        child.wait(timeout=30)
    empty = _p50_us(times["empty"])
    result: dict[str, Any] = {"preset": preset, "calls": calls}
    for name, taken in times.items():
        result[f"{name}_p50_us"] = round(_p50_us(taken), 1)
        if name != "empty":
            result[f"{name}_over_empty"] = round(_p50_us(taken) / empty, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="sidra-y1", help="emulator preset (sidra-y1)")
    parser.add_argument("--calls", type=int, default=1000, help="calls of each, in turns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    result = measure(args.preset, args.calls, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:22s} {value}")


if __name__ == "__main__":
    main()
