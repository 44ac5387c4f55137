"""What MVMStream saves over one unary call per batch: batches per second, one run.

An ideal emulated board (256 x 256 tiles) behind the gRPC service on 127.0.0.1;
N batches of B vectors through tile 0, once as N unary MVM calls one after another
(each waits for its answer) and once as one ``mvm_stream`` (4 batches in flight by
default). The two alternate over --rounds rounds (the machine's other load slows
both alike) and each keeps its median; the results are checked equal. Prints
batches/s of each and the stream / unary ratio.

    .venv/bin/python scripts/stream_pipelining.py
    .venv/bin/python scripts/stream_pipelining.py --batches 500 --batch 1 --depth 8
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from sidra.client import connect
from sidra.drivers import open_board
from sidra.server import create_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1, help="vectors per batch")
    parser.add_argument("--depth", type=int, default=4, help="batches in flight")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with open_board("emu://?preset=ideal&seed=1") as board:
        server, port = create_server(board, "127.0.0.1:0")
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as client:
                info = client.info
                rng = np.random.default_rng(0)
                client.program(0, rng.uniform(info.g_min_us, info.g_max_us, (256, 256)))
                v = rng.uniform(-0.1, 0.1, (args.batches, args.batch, info.rows))
                batches = list(v.astype(np.float32))
                unary_s, stream_s = [], []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    one_by_one = [client.mvm(0, x).currents for x in batches]
                    unary_s.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    streamed = [r.currents for r in client.mvm_stream(0, batches, depth=args.depth)]
                    stream_s.append(time.perf_counter() - start)
                    assert all(
                        np.array_equal(a, b) for a, b in zip(one_by_one, streamed, strict=True)
                    )
        finally:
            server.stop(grace=None)
    unary, stream = statistics.median(unary_s), statistics.median(stream_s)
    print(
        f"{args.batches} batches of {args.batch} vector(s), median of {args.rounds} rounds: "
        f"unary {args.batches / unary:.0f} batches/s, stream (depth {args.depth}) "
        f"{args.batches / stream:.0f} batches/s, stream / unary {unary / stream:.2f}"
    )


if __name__ == "__main__":
    main()
