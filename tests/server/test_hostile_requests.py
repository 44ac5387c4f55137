"""Five thousand hostile requests over every RPC: each refused with the code its defect
calls for, none changes the board or the state store, the server keeps serving.

The requests come from hypothesis (hostile_requests.py: broken shapes, dtypes and
lengths, NaN/Inf, huge and negative dimensions and ids, regions past the edge,
unknown enums, garbage bytes, batches over [limits] max_batch, messages over the
per-principal and the server-wide size limits), sent as raw bytes
through a real gRPC server on loopback to an ideal emulator with a real state
store. Derandomized: every run sends the same requests.

Per example of 100 requests (sent at once), the board is read before and after
(conductances and write counts of every tile, exactly; totals, exactly, read right
before and after the requests so that the reads themselves are not counted), then
a valid MVM must give exactly V·G. The store's program records and golden maps are compared at the
end. scripts/soak_hostile.py sends as many as asked to ``sidra serve`` in its own
process and reports its memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from hostile_requests import REFUSALS, Cells, Hostile, HostileRequests, Limits, Sender, totals
from hypothesis import HealthCheck, given, settings

from sidra.client import RemoteBoard, connect
from sidra.drivers import Region
from sidra.drivers.operations import OPERATIONS
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.server import create_server
from sidra.server.settings import LimitsSettings
from sidra.server.state import StateStore

MAX_MESSAGE_BYTES = 2 << 20
LIMITS = LimitsSettings(max_message_mb=1, max_in_flight=256)
"""Requests over 1 MiB are refused by the service's per-principal limit, over 2 MiB by
gRPC itself (small limits: a request over one costs only that much to send); the
batch limit is the default (4096 vectors); room for the 100 requests of a batch sent
at once (the in-flight limit is not what this test is about)."""
EXAMPLES = 50
"""5,000 requests: about 15 s of CPU here (scripts/soak_hostile.py sends 20,000 and more)."""
RECIPES = 25
"""Hostile recipes per example, each sent in FORMS wire forms (hostile_requests.py)."""
FORMS = 4
REQUESTS = EXAMPLES * RECIPES * FORMS
OVERSIZE_SHARE = 0.005
"""About a dozen recipes, 50 requests, over a size limit in a run: gRPC takes ~0.1 s to
refuse each."""
GEOMETRY = Geometry(tiles=4, rows=40, cols=24)
"""Small tiles, rows != cols: reading every tile twice per example stays cheap, and a
rows/cols mix-up in a check shows."""

F32 = npt.NDArray[np.float32]


@dataclass
class Served:
    port: int
    store: StateStore
    serial: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """An ideal board with small tiles, its state store, a server with LIMITS."""
    profile = preset("ideal").model_copy(update={"geometry": GEOMETRY})
    board = EmulatorDriver(profile, seed=5)
    path: Path = tmp_path_factory.mktemp("hostile") / "state.sqlite3"
    with StateStore(path) as store:
        server, port = create_server(
            board, "127.0.0.1:0", max_message_bytes=MAX_MESSAGE_BYTES, store=store, limits=LIMITS
        )
        server.start()
        try:
            yield Served(port, store, board.info.serial_number)
        finally:
            server.stop(grace=None)


def establish(board: RemoteBoard) -> list[F32]:
    """Every tile programmed (1/16 µS grid: MVMs are exact), a region of tile 1 perturbed,
    the clock advanced: a state a stray write would disturb. Returns G per tile."""
    info, rng = board.info, np.random.default_rng(2026)
    for tile in range(info.tile_count):
        g = rng.integers(2 * 16, 39 * 16 + 1, (info.rows, info.cols)) / 16
        board.program(tile, g.astype(np.float32))
    board.perturb(1, seed=9, amplitude_us=0.5, sign=1, region=Region(3, 4, 20, 10))
    board.advance_clock(3600.0)
    return [board.read_conductance(t).conductances for t in range(info.tile_count)]


def exact_mvm(v: F32, g: F32) -> F32:
    return (v.astype(np.float64) @ g.astype(np.float64)).astype(np.float32)


def test_hostile_requests_are_refused_and_change_nothing(served: Served) -> None:
    address = f"127.0.0.1:{served.port}"
    with connect(address) as board, grpc.insecure_channel(address) as channel:
        gs = establish(board)
        history = len(served.store.history())
        golden = [served.store.golden(served.serial, t) for t in range(len(gs))]
        limits = Limits.of(LIMITS, MAX_MESSAGE_BYTES)
        sender = Sender(channel, board.info, limits)
        strategies = HostileRequests(board.info, limits, forms=FORMS, oversize_share=OVERSIZE_SHARE)
        batches = strategies.batches(RECIPES)
        vmax_steps = int(board.info.read_voltage_max_v * 256)

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(batches)
        def refused_and_unchanged(requests: list[Hostile]) -> None:
            cells = Cells.read(board)
            before = totals(board.stats())
            problems = sender.send(requests)
            assert problems == [], problems[:5]
            assert totals(board.stats()) == before, "a refused request moved the totals"
            assert Cells.read(board) == cells, "a refused request changed cells"
            # Still serving, and serving the same G: an exact MVM (of a tile and voltages
            # chosen by the batch, so that hypothesis can replay it).
            probe = np.random.default_rng(len(requests[0].data))
            tile = int(probe.integers(len(gs)))
            v = probe.integers(-vmax_steps, vmax_steps + 1, (2, board.info.rows)) / 256
            v = v.astype(np.float32)
            assert np.array_equal(board.mvm(tile, v).currents, exact_mvm(v, gs[tile]))

        refused_and_unchanged()

        assert len(served.store.history()) == history, "a refused Program was recorded"
        for tile, before in enumerate(golden):
            after = served.store.golden(served.serial, tile)
            assert np.array_equal(after.targets_us, before.targets_us)
            assert np.array_equal(after.programmed, before.programmed)

    codes = sender.codes
    assert sum(codes.values()) >= REQUESTS
    # Every RPC was attacked, and every refusal code was met.
    assert {rpc for rpc, _ in codes} == {op.rpc for op in OPERATIONS}
    assert {code for _, code in codes} == {code.name for code in REFUSALS}
