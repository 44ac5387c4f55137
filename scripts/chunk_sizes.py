"""Which band size moves a large Program and ReadConductance fastest over gRPC on loopback.

An ideal emulated board of one ROWS x COLS tile (default 2048 x 2048: 16 MiB of
float32 per whole-tile transfer) behind ``sidra serve``'s server on 127.0.0.1, a
client whose transfers all go as row bands (stream.proto ProgramChunked,
ReadConductanceChunked). For each band size from 64 KiB to 4 MiB it times a
whole-tile read and a whole-tile Program; the sizes alternate round by round
(the machine's other load then slows them alike) and each size keeps its median.
A whole-tile read and Program as one unary message (a server and client allowed
64 MiB messages) is the reference. Prints MiB/s and each size's time over the
fastest size's, all measured in this one run; the default band
(``sidra.hil.chunks.DEFAULT_CHUNK_BYTES``) is set from it (docs/benchmarks.md).

    .venv/bin/python scripts/chunk_sizes.py
    .venv/bin/python scripts/chunk_sizes.py --rows 1024 --cols 1024 --rounds 9 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from sidra.client import connect
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.server import create_server

KIB = 2**10
MIB = 2**20
SIZES = [64 * KIB, 128 * KIB, 256 * KIB, 512 * KIB, 1 * MIB, 2 * MIB, 4 * MIB]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--cols", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    profile = preset("ideal")
    profile = profile.model_copy(
        update={"geometry": Geometry(tiles=1, rows=args.rows, cols=args.cols)}
    )
    board = EmulatorDriver(profile, seed=1)
    server, port = create_server(board, "127.0.0.1:0", max_message_bytes=64 * MIB)
    server.start()
    info = board.info
    g = np.random.default_rng(0).uniform(info.g_min_us, info.g_max_us, (args.rows, args.cols))
    g = g.astype(np.float32)
    data_mib = g.nbytes / MIB
    reads: dict[str, list[float]] = {}
    programs: dict[str, list[float]] = {}
    address = f"127.0.0.1:{port}"
    try:
        with (
            connect(address) as banded,
            connect(address, server_max_message_bytes=64 * MIB) as unary,
        ):
            banded.message_limit_bytes = 8 * MIB  # every whole-tile transfer in bands
            for _ in range(args.rounds):
                for size in SIZES:
                    banded.chunk_bytes = size
                    name = f"{size // KIB} KiB"
                    programs.setdefault(name, []).append(timed(lambda: banded.program(0, g)))
                    reads.setdefault(name, []).append(timed(lambda: banded.read_conductance(0)))
                name = "unary"
                programs.setdefault(name, []).append(timed(lambda: unary.program(0, g)))
                reads.setdefault(name, []).append(timed(lambda: unary.read_conductance(0)))
            assert np.array_equal(banded.read_conductance(0).conductances, g)  # ideal: exact
    finally:
        server.stop(grace=None)
        board.close()

    figures = {}
    best_read = min(statistics.median(t) for k, t in reads.items() if k != "unary")
    best_program = min(statistics.median(t) for k, t in programs.items() if k != "unary")
    for name in reads:
        read_s, program_s = statistics.median(reads[name]), statistics.median(programs[name])
        figures[name] = {
            "read_mib_s": round(data_mib / read_s, 1),
            "read_over_best": round(read_s / best_read, 2),
            "program_mib_s": round(data_mib / program_s, 1),
            "program_over_best": round(program_s / best_program, 2),
        }
    if args.json:
        print(json.dumps({"data_mib": data_mib, "rounds": args.rounds, "sizes": figures}))
        return
    print(f"whole-tile transfers of {data_mib:g} MiB, median of {args.rounds} rounds")
    print(f"{'band':>9}  {'read MiB/s':>10}  {'x best':>6}  {'program MiB/s':>13}  {'x best':>6}")
    for name, f in figures.items():
        print(
            f"{name:>9}  {f['read_mib_s']:>10}  {f['read_over_best']:>6}  "
            f"{f['program_mib_s']:>13}  {f['program_over_best']:>6}"
        )


if __name__ == "__main__":
    main()
