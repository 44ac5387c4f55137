"""Load soak of ``sidra serve``: many clients, a writer under them, then a flood.

Long form of tests/server/test_load.py. Starts ``sidra serve`` in its own process
(ideal emulator, 256 x 256 tiles, tokens: every client is a principal of its own,
so the board is shared out in turns), then:

1. load: ``--clients`` clients x ``--calls`` mixed calls of every RPC while one
   more re-programs the tile they read (tests/server/load_support.py); prints the
   calls, unexpected errors and torn reads (answers that are neither the old nor
   the new state, bit for bit);
2. idle: ``--probes`` clients each time ``--probe-calls`` MVMs (4 x 256 float32)
   of that tile with nothing else running: p50 and p99;
3. flood: the same probes while one more client, in a process of its own, sends
   MVM batches of ``--flood-mb`` MiB of the same tile back to back (serialized once,
   sent as bytes): p50, p99 and
   the ratio of the p99s (flood / idle). With the default ``[limits] max_batch``
   (4096 vectors) a 64 MiB batch (65532 vectors) is refused; ``--max-batch 65536``
   lets it run, ``--request-mb 5`` refuses it by its size before it is parsed; with
   the service's default ``max_message_mb`` (8) gRPC refuses it before the service
   sees it (``--max-message-mb 64`` lets it through to be refused after parsing).

Every figure is measured in this one run and printed; nothing is compared with a
target. Run from the repository with the development environment::

    .venv/bin/python scripts/soak_load.py              # 16 x 1,000 calls, 64 MiB flood
    .venv/bin/python scripts/soak_load.py --calls 100 --max-batch 65536
    .venv/bin/python scripts/soak_load.py --calls 200 --flood-mb 4
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np

# The workload is the test suite's own, so the soak and `make test` check the same things.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "server"))

from load_support import (  # noqa: E402
    CONTESTED,
    F32,
    Contest,
    Flooder,
    Reader,
    Tally,
    Writer,
    client,
    dyadic_voltages,
    exact,
    run_all,
)

from sidra.client import RemoteBoard  # noqa: E402
from sidra.client.credentials import BearerToken  # noqa: E402
from sidra.drivers import open_board  # noqa: E402
from sidra.hil import tensors  # noqa: E402
from sidra.hil.v1 import board_pb2 as pb  # noqa: E402
from sidra.server.security import Role, add_principal  # noqa: E402
from sidra.server.servicer import SERVICE_NAME as SERVICE  # noqa: E402
from sidra.server.settings import DEFAULT_MAX_MESSAGE_BYTES  # noqa: E402

BOARD = "emu://?preset=ideal&seed=3"
PROBE_BATCH = 4


@contextmanager
def sidra_serve(
    folder: Path,
    names: list[str],
    workers: int,
    max_batch: int,
    request_mb: int | None,
    message_mb: int,
) -> Iterator[tuple[str, dict[str, str]]]:
    """``sidra serve`` on a free loopback port with a token per name; yields the
    address and the tokens."""
    tokens_file = folder / "tokens.toml"
    tokens = {name: add_principal(tokens_file, name, Role.ADMIN) for name in names}
    config = folder / "sidra.toml"
    config.write_text(
        f'board = "{BOARD}"\nlisten = "127.0.0.1:0"\nworkers = {workers}\n'
        f"max_message_mb = {message_mb}\n"
        f'[auth]\ntokens_file = "{tokens_file}"\n[state]\npath = "{folder / "state.sqlite3"}"\n'
        f"[limits]\nmax_batch = {max_batch}\n"
        + (f"max_message_mb = {request_mb}\n" if request_mb else "")
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
        for line in proc.stderr:
            match = re.match(r"serving .* on \S+:(\d+) \[", line)
            if match:
                break
        else:
            raise SystemExit(f"sidra serve did not start (exit {proc.wait()})")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain
        yield f"127.0.0.1:{match.group(1)}", tokens
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def probe(
    board: RemoteBoard,
    contest: Contest,
    index: int,
    calls: int,
    warm: int,
    until: Callable[[], bool] = lambda: True,
) -> Tally:
    """At least ``calls`` timed MVMs of the contested tile, and more until ``until()``,
    after ``warm`` untimed ones (a new connection takes a few hundred calls to reach
    its steady pace)."""
    tally = Tally(f"probe {index}")
    rng = np.random.default_rng([77, index])
    v = dyadic_voltages(board.info, rng, (PROBE_BATCH, board.info.rows))
    forward = (exact(v, contest.a), exact(v, contest.b))
    for _ in range(warm):
        board.mvm(CONTESTED, v)
    while tally.calls < calls or not until():
        start = time.perf_counter()
        try:
            got = board.mvm(CONTESTED, v).currents
        except Exception as exc:
            tally.errors.append(f"{tally.name}: {type(exc).__name__}: {exc}")
            continue
        finally:
            tally.calls += 1
        tally.mvm_latencies_s.append(time.perf_counter() - start)
        tally.note("MVM", got, forward, contest)
    return tally


def flood_in_process(
    address: str, token: str, contest: Contest, batch: int, max_batch: int,
    stop: Any, done: Any, results: Any,
) -> None:  # fmt: skip
    """The flooder's process: MVM batches until ``stop``; counts them in ``done`` (1 once
    ready, then 1 + the batches answered), puts its tally and voltages in ``results``.

    The request is serialized once and sent as bytes, as a client bent on flooding
    would: building a 64 MiB message in Python takes longer than the board's pass, and
    a flooder that did it for every call would leave the board idle most of the time.
    Each answer is still checked: wholly A's or wholly B's, every repeat alike.
    """
    with client(address, token) as board:
        flooder = Flooder(board, contest, batch, seed=12, max_batch=max_batch)
    tally = flooder.tally
    request = pb.MVMRequest(tile=CONTESTED, voltages=tensors.encode(flooder.v))
    data = request.SerializeToString()
    options = [
        ("grpc.max_receive_message_length", 2**31 - 1),
        ("grpc.max_send_message_length", 2**31 - 1),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    with grpc.insecure_channel(address, options=options) as plain:
        channel = grpc.intercept_channel(plain, BearerToken(token))
        mvm = channel.unary_unary(f"/{SERVICE}/MVM")  # bytes in, bytes out
        done.value = 1
        while not stop.is_set():
            start = time.perf_counter()
            try:
                reply = pb.MVMResponse.FromString(mvm(data, timeout=600))
                got = np.frombuffer(reply.currents.data, "<f4").reshape(batch, -1)
                first = got[:16]
                tally.note("flood MVM", first, flooder.forward, contest)
                if not np.array_equal(got, np.tile(first, (batch // 16 + 1, 1))[:batch]):
                    tally.torn.append("flooder: a batch mixes states")
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and batch > max_batch:
                    tally.refused += 1  # over the limit: refused, as it must be
                else:
                    tally.errors.append(f"flooder: {exc.code().name}: {exc.details()}")
            finally:
                tally.mvm_latencies_s.append(time.perf_counter() - start)
                tally.calls += 1
                done.value = 1 + tally.calls
    results.put(tally)
    results.put(flooder.v)


def percentiles_ms(tallies: list[Tally]) -> tuple[float, float, int]:
    times = np.concatenate([t.mvm_latencies_s for t in tallies]) * 1e3
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), len(times)


def faults(tallies: list[Tally]) -> tuple[list[str], list[str]]:
    return [e for t in tallies for e in t.errors], [e for t in tallies for e in t.torn]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=1000, help="calls per client")
    parser.add_argument("--probes", type=int, default=4, help="clients timing MVMs")
    parser.add_argument("--probe-calls", type=int, default=300, help="timed MVMs per probe, idle")
    parser.add_argument(
        "--flood-batches", type=int, default=5,
        help="the probes time MVMs until the flooder has sent this many batches",
    )  # fmt: skip
    parser.add_argument("--flood-mb", type=float, default=64.0, help="MiB per flood batch")
    parser.add_argument("--workers", type=int, default=8, help="sidra serve worker threads")
    parser.add_argument(
        "--max-batch", type=int, default=4096,
        help="sidra serve's [limits] max_batch (default 4096 refuses a 64 MiB batch; 65536 "
        "lets it run)",
    )  # fmt: skip
    parser.add_argument(
        "--request-mb", type=int, default=None,
        help="sidra serve's [limits] max_message_mb (default: unset, the server-wide one)",
    )  # fmt: skip
    parser.add_argument(
        "--max-message-mb", type=int, default=DEFAULT_MAX_MESSAGE_BYTES // 2**20,
        help="sidra serve's max_message_mb: larger messages gRPC itself refuses "
        "(default: the service's, 8)",
    )  # fmt: skip
    args = parser.parse_args()

    names = ["setup", "writer", "flooder"]
    names += [f"reader-{i}" for i in range(args.clients)]
    names += [f"probe-{i}" for i in range(args.probes)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        sidra_serve(
            Path(tmp), names, args.workers, args.max_batch, args.request_mb, args.max_message_mb
        ) as (
            address,
            tokens,
        ),
    ):
        boards = {name: client(address, tokens[name]) for name in names}
        info = boards["setup"].info
        contest = Contest.make(info, seed=10)
        contest.program_start(boards["setup"])
        print(f"sidra serve: {BOARD}, {info.tile_count} tiles of {info.rows} x {info.cols}, "
              f"{args.workers} workers, max_message_mb {args.max_message_mb}, [limits] "
              f"max_batch {args.max_batch}, max_message_mb {args.request_mb or 'unset'}, one "
              "principal per client")  # fmt: skip

        # 1. load
        readers = [Reader(boards[f"reader-{i}"], contest, i, seed=11) for i in range(args.clients)]
        writer = Writer(boards["writer"], contest)
        start = time.perf_counter()
        tallies, (written,) = run_all([lambda r=r: r.run(args.calls) for r in readers], [writer])
        elapsed = time.perf_counter() - start
        errors, torn = faults([*tallies, written])
        seen = sum((t.seen for t in tallies), start=Counter[str]())
        calls = sum(t.calls for t in tallies)
        print(f"load: {args.clients} clients, {calls} calls in {elapsed:.1f} s "
              f"({calls / elapsed:.0f}/s) while 1 client re-programmed the tile "
              f"{written.calls} times")  # fmt: skip
        print(f"  unexpected errors: {len(errors)}")
        print(f"  torn reads: {len(torn)} (answers wholly A: {seen['a']}, wholly B: {seen['b']})")
        for line in (errors + torn)[:10]:
            print(f"    {line}")

        # 2. idle, 3. flood
        probes = [boards[f"probe-{i}"] for i in range(args.probes)]

        idle = run_all(
            [
                lambda i=i, b=b: probe(b, contest, i, args.probe_calls, warm=args.probe_calls)
                for i, b in enumerate(probes)
            ],  # fmt: skip
            [],
        )[0]
        batch = int(args.flood_mb * 2**20 - 4096) // (4 * info.rows)  # room for framing
        # The flooder runs in a process of its own, as another user's client would: in
        # this one, building and reading its 64 MiB messages would hold this process's
        # GIL and delay the probes on the client side.
        spawn = multiprocessing.get_context("spawn")
        stop, done, results = spawn.Event(), spawn.Value("i", 0), spawn.Queue()
        flood_args = (address, tokens["flooder"], contest, batch, args.max_batch)
        flooding = spawn.Process(target=flood_in_process, args=(*flood_args, stop, done, results))
        flooding.start()
        while done.value == 0 and flooding.is_alive():  # connected and sending
            time.sleep(0.01)
        start = time.perf_counter()
        flooded = run_all(
            [
                lambda i=i, b=b: probe(
                    b, contest, i, 20, warm=0, until=lambda: done.value > args.flood_batches
                )
                for i, b in enumerate(probes)
            ],  # fmt: skip
            [],
        )[0]
        flood_s = time.perf_counter() - start
        stop.set()
        flood_tally: Tally = results.get(timeout=600)
        flood_v: F32 = results.get(timeout=60)
        flooding.join()
        idle50, idle99, n_idle = percentiles_ms(idle)
        flood50, flood99, n_flood = percentiles_ms(flooded)
        errors, torn = faults([*idle, *flooded, flood_tally])
        flood = flood_tally
        print(f"MVM latency, {args.probes} clients timing MVMs of {PROBE_BATCH} x {info.rows} "
              f"float32:")  # fmt: skip
        print(f"  idle:  p50 {idle50:.2f} ms, p99 {idle99:.2f} ms ({n_idle} calls)")
        refused = f", {flood.refused} of them refused (limits)" if flood.refused else ""
        print(f"  flood: p50 {flood50:.2f} ms, p99 {flood99:.2f} ms ({n_flood} calls), while 1 "
              f"client sent {flood.calls} MVM batches of {batch} x {info.rows} "
              f"({batch * info.rows * 4 / 2**20:.1f} MiB){refused} in {flood_s:.1f} s")  # fmt: skip
        print(f"  p99 ratio flood / idle: {flood99 / idle99:.1f}")
        share = ""
        if flood.refused < flood.calls:
            with open_board(BOARD) as local:  # the same MVM without gRPC: the board's share
                local.program(CONTESTED, contest.a)
                start = time.perf_counter()
                local.mvm(CONTESTED, flood_v)
                share = (
                    f", {time.perf_counter() - start:.2f} s of it on the board (the same "
                    "MVM on a local emulator), during which the board takes no other call"
                )
        print(f"  one flood batch: {np.mean(flood.mvm_latencies_s):.2f} s per call on average "
              f"through gRPC{share}")  # fmt: skip
        print(f"  unexpected errors: {len(errors)}, torn reads: {len(torn)}")
        for line in (errors + torn)[:10]:
            print(f"    {line}")
        for board in boards.values():
            board.close()


if __name__ == "__main__":
    main()
