"""Many clients at once on one served board, one of them re-programming the tile the
others read: what every answer must be, and the tally of what they got.

The contested tile holds one of two conductance maps, A or B, that differ in every
cell; a writer programs them in turn. Conductances lie on a 1/16 µS grid and
voltages on a 1/256 V grid, so on the ideal preset every MVM is exact in float32
(any summation order) and a result is bit for bit A's or B's; anything else is a
torn read: a call that saw part of a Program.

Each reader makes a seeded mix of every read-side RPC (MVM and TransposeMVM of
the contested tile, ReadConductance of it or a region of it, its write counts,
GetBoardInfo, MVM of a quiet tile) and of the writes that touch no contested state
(Perturb and restore, Calibrate of a scratch tile, AdvanceClock). An optional
flooder sends large MVM batches of the contested tile: each batch too must be
wholly one state.

Not a test module: tests/server/test_load.py and scripts/soak_load.py use it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from sidra.client import Region, RemoteBoard, ResourceExhausted
from sidra.client.credentials import BearerToken
from sidra.drivers import BoardInfo

F32 = npt.NDArray[np.float32]

CONTESTED, QUIET, SCRATCH = 0, 1, 2
"""Tiles: the one re-programmed under the readers, one never written during the load,
one that Perturb and Calibrate may change (nobody checks its values)."""
BATCH = 4
"""Vectors per reader MVM."""
READER_MIX: dict[str, int] = {
    "mvm": 30,
    "transpose_mvm": 15,
    "read": 10,
    "read_region": 5,
    "counts": 5,
    "info": 10,
    "quiet_mvm": 10,
    "perturb": 5,
    "calibrate": 5,
    "clock": 5,
}
"""Relative weights of a reader's calls (``perturb`` is an APPLY and a RESTORE: two)."""


def client(
    address: str, token: str | None = None, max_message_bytes: int = 64 << 20
) -> RemoteBoard:
    """A client on a connection of its own (gRPC shares one between channels to the same
    address unless told not to), with a bearer token when given."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    channel: Any = grpc.insecure_channel(address, options=options)
    grpc.channel_ready_future(channel).result(timeout=30)
    if token:
        channel = grpc.intercept_channel(channel, BearerToken(token))
    return RemoteBoard(channel, owns_channel=True, timeout_s=600)


def exact(v: F32, g: F32) -> F32:
    """V·G in float64, rounded once to float32 (equal to the ideal board's, bit for bit)."""
    return (v.astype(np.float64) @ g.astype(np.float64)).astype(np.float32)


def dyadic_voltages(info: BoardInfo, rng: np.random.Generator, shape: tuple[int, int]) -> F32:
    """Voltages on the 1/256 V grid within the board's read range, none zero (so that
    every row or column weighs in)."""
    steps = int(info.read_voltage_max_v * 256)
    v = rng.integers(1, steps + 1, shape) * rng.choice([-1, 1], shape)
    return (v / 256).astype(np.float32)


@dataclass(frozen=True)
class Contest:
    """The contested tile's two maps, and the quiet tile's."""

    a: F32
    b: F32
    quiet: F32

    @classmethod
    def make(cls, info: BoardInfo, seed: int) -> Contest:
        """A in [2, 31] µS on the 1/16 grid, B = A + 8 µS: every cell differs."""
        rng = np.random.default_rng(seed)
        shape = (info.rows, info.cols)
        a = (rng.integers(2 * 16, 31 * 16 + 1, shape) / 16).astype(np.float32)
        quiet = (rng.integers(2 * 16, 39 * 16 + 1, shape) / 16).astype(np.float32)
        return cls(a, a + np.float32(8.0), quiet)

    def program_start(self, board: RemoteBoard) -> None:
        """The contested tile at A, the quiet tile at its map."""
        board.program(CONTESTED, self.a)
        board.program(QUIET, self.quiet)

    def which(self, got: F32, forward: tuple[F32, F32]) -> str | None:
        """ "a" or "b" when ``got`` is that state's answer, bit for bit; None when torn."""
        for name, expected in zip("ab", forward, strict=True):
            if got.shape == expected.shape and np.array_equal(got, expected):
                return name
        return None


@dataclass
class Tally:
    """What one client did and saw."""

    name: str
    calls: int = 0
    errors: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    """Contested-tile answers that were wholly A ("a") or wholly B ("b")."""
    mvm_latencies_s: list[float] = field(default_factory=list)
    """Wall time of each MVM of the contested tile, seconds (scripts print them)."""
    refused: int = 0
    """Calls a limit of the service refused (RESOURCE_EXHAUSTED): the flooder's batches
    over [limits] max_batch."""

    def note(self, what: str, got: F32, forward: tuple[F32, F32], contest: Contest) -> None:
        state = contest.which(got, forward)
        if state is None:
            self.torn.append(f"{self.name} call {self.calls}: {what} is neither A's nor B's")
        else:
            self.seen[state] += 1


class Reader:
    """One client's seeded mix of ``calls`` calls (:data:`READER_MIX`)."""

    def __init__(self, board: RemoteBoard, contest: Contest, index: int, seed: int) -> None:
        self.board, self.contest = board, contest
        self.rng = np.random.default_rng([seed, index])
        self.tally = Tally(f"reader {index}")
        info = board.info
        self.v = dyadic_voltages(info, self.rng, (BATCH, info.rows))
        self.vt = dyadic_voltages(info, self.rng, (BATCH, info.cols))
        a, b = contest.a, contest.b
        self.forward = (exact(self.v, a), exact(self.v, b))
        self.backward = (exact(self.vt, a.T), exact(self.vt, b.T))
        self.quiet = exact(self.v, contest.quiet)
        self.last_counts = 0
        self.last_writes = 0

    def run(self, calls: int) -> Tally:
        names = list(READER_MIX)
        weights = np.array([READER_MIX[n] for n in names], float)
        plan = self.rng.choice(names, size=calls, p=weights / weights.sum())
        for name in plan:
            try:
                getattr(self, f"_{name}")()
            except Exception as exc:  # every failure is counted, none ends the run
                self.tally.errors.append(f"{self.tally.name} {name}: {type(exc).__name__}: {exc}")
            self.tally.calls += 1
        return self.tally

    def _mvm(self) -> None:
        start = time.perf_counter()
        got = self.board.mvm(CONTESTED, self.v).currents
        self.tally.mvm_latencies_s.append(time.perf_counter() - start)
        self.tally.note("MVM", got, self.forward, self.contest)

    def _transpose_mvm(self) -> None:
        got = self.board.transpose_mvm(CONTESTED, self.vt).currents
        self.tally.note("TransposeMVM", got, self.backward, self.contest)

    def _read(self) -> None:
        got = self.board.read_conductance(CONTESTED).conductances
        self.tally.note("ReadConductance", got, (self.contest.a, self.contest.b), self.contest)

    def _read_region(self) -> None:
        info = self.board.info
        row, col = int(self.rng.integers(info.rows)), int(self.rng.integers(info.cols))
        rows = int(self.rng.integers(1, info.rows - row + 1))
        cols = int(self.rng.integers(1, info.cols - col + 1))
        got = self.board.read_conductance(CONTESTED, Region(row, col, rows, cols)).conductances
        cut = np.s_[row : row + rows, col : col + cols]
        states = (self.contest.a[cut], self.contest.b[cut])
        self.tally.note("ReadConductance of a region", got, states, self.contest)

    def _counts(self) -> None:
        # Each Program writes every cell of the tile once: a read between two of them
        # shows one count everywhere, never falling.
        counts = self.board.read_write_counts(CONTESTED).counts
        low, high = int(counts.min()), int(counts.max())
        if low != high or low < self.last_counts:
            self.tally.torn.append(
                f"{self.tally.name}: write counts {low}..{high} after {self.last_counts}"
            )
        self.last_counts = high

    def _info(self) -> None:
        writes = self.board.stats().cell_writes
        if writes < self.last_writes:
            self.tally.errors.append(f"{self.tally.name}: cell_writes fell to {writes}")
        self.last_writes = writes

    def _quiet_mvm(self) -> None:
        got = self.board.mvm(QUIET, self.v).currents
        if not np.array_equal(got, self.quiet):
            self.tally.torn.append(f"{self.tally.name}: MVM of the quiet tile changed")

    def _perturb(self) -> None:
        info = self.board.info
        region = Region(0, 0, min(8, info.rows), min(8, info.cols))
        seed = int(self.rng.integers(2**63))
        self.board.perturb(SCRATCH, seed=seed, amplitude_us=0.5, sign=1, region=region)
        self.board.restore(SCRATCH, region)
        self.tally.calls += 1  # two calls

    def _calibrate(self) -> None:
        self.board.calibrate(SCRATCH)

    def _clock(self) -> None:
        self.board.advance_clock(1.0)


class Writer:
    """Programs the contested tile with A and B in turn until told to stop."""

    def __init__(self, board: RemoteBoard, contest: Contest) -> None:
        self.board, self.contest = board, contest
        self.tally = Tally("writer")
        self.stop = threading.Event()

    def run(self) -> Tally:
        maps = (self.contest.b, self.contest.a)  # the tile starts at A
        cells = self.board.info.rows * self.board.info.cols
        while not self.stop.is_set():
            try:
                report = self.board.program(CONTESTED, maps[self.tally.calls % 2])
                if report.cells_written != cells or report.unconverged_cells:
                    self.tally.errors.append(f"writer: {report}")
            except Exception as exc:
                self.tally.errors.append(f"writer: {type(exc).__name__}: {exc}")
            self.tally.calls += 1
        return self.tally


class Flooder:
    """Sends MVM batches of ``batch`` vectors of the contested tile until told to stop;
    each whole batch must be one state's answer, or be refused for [limits] max_batch
    when it is over it."""

    def __init__(
        self, board: RemoteBoard, contest: Contest, batch: int, seed: int, max_batch: int = 4096
    ) -> None:
        self.board, self.contest = board, contest
        self.max_batch = max_batch
        """The server's [limits] max_batch: a larger batch is refused, as it must be."""
        self.tally = Tally("flooder")
        self.stop = threading.Event()
        info = board.info
        # One vector per distinct row pattern would cost as much memory as the batch
        # itself: repeat a few, the board computes every one anyway.
        rng = np.random.default_rng(seed)
        base = dyadic_voltages(info, rng, (16, info.rows))
        self.v = np.tile(base, (batch // 16 + 1, 1))[:batch]
        self.forward = (exact(base, contest.a), exact(base, contest.b))

    def run(self) -> Tally:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                got = self.board.mvm(CONTESTED, self.v).currents
                # Every repeat of a base vector, in every part of the batch, is one state.
                first = got[:16]
                self.tally.note("flood MVM", first, self.forward, self.contest)
                if not np.array_equal(got, np.tile(first, (len(got) // 16 + 1, 1))[: len(got)]):
                    self.tally.torn.append("flooder: a batch mixes states")
            except ResourceExhausted as exc:
                # Over max_batch it must be refused (by that limit, or by a size limit
                # checked first: the principal's, or gRPC's); within it, that is an error.
                if len(self.v) <= self.max_batch:
                    self.tally.errors.append(f"flooder: {exc}")
                self.tally.refused += 1
            except Exception as exc:
                self.tally.errors.append(f"flooder: {type(exc).__name__}: {exc}")
            finally:
                self.tally.mvm_latencies_s.append(time.perf_counter() - start)
                self.tally.calls += 1
        return self.tally


def run_all(
    readers: list[Callable[[], Tally]], background: list[Writer | Flooder]
) -> tuple[list[Tally], list[Tally]]:
    """Starts the background clients, then every reader at once; stops the background
    once the last reader is done. Returns (reader tallies, background tallies)."""
    results: dict[int, Tally] = {}
    start = threading.Barrier(len(readers) + 1)

    def read(i: int, work: Callable[[], Tally]) -> None:
        start.wait()
        results[i] = work()

    back = [threading.Thread(target=b.run, name=b.tally.name) for b in background]
    for thread in back:
        thread.start()
    threads = [threading.Thread(target=read, args=(i, w)) for i, w in enumerate(readers)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    for b in background:
        b.stop.set()
    for thread in back:
        thread.join()
    return [results[i] for i in range(len(readers))], [b.tally for b in background]
