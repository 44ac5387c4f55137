"""Boards, stores and a served board with a store, for the state tests (nothing collected here)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, BoardInfo, ProgramReport
from sidra.server.servicer import BoardServicer, PrincipalOf, board_service_handler, local_principal
from sidra.server.state import StateStore
from sidra.server.state.schema import MIGRATIONS

IDEAL_URL = "emu://?preset=ideal&seed=1"

TEST_BOARD = BoardInfo(
    model="SIDRA-TEST",
    serial_number="TEST-1",
    firmware_version="test",
    tile_count=3,
    rows=64,
    cols=48,
    g_min_us=1.0,
    g_max_us=40.0,
    dac_bits=0,
    adc_bits=0,
    read_voltage_max_v=0.2,
)
"""A board description for store tests that need no board behind it."""

REPORT = ProgramReport(
    cells_written=12,
    verify_iterations=3,
    pulses=40,
    rms_error_us=0.125,
    max_error_us=0.5,
    unconverged_cells=1,
    cells_over_budget=0,
)


def targets(rng: np.random.Generator, shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Continuous conductance targets in the default window, µS."""
    return rng.uniform(1.0, 40.0, shape).astype(np.float32)


@contextmanager
def served_with_store(
    board: Board, store: StateStore, principal_of: PrincipalOf = local_principal
) -> Iterator[int]:
    """``board`` behind BoardService with ``store``, on a free loopback port."""
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    servicer = BoardServicer(board, store, principal_of)
    server.add_generic_rpc_handlers((board_service_handler(servicer),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


def store_of_schema(path: Path, version: int) -> sqlite3.Connection:
    """A store file at ``path`` of schema ``version``, as the SIDRA HIL of that version
    made it (its migrations only), open for the caller to fill, commit and close."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_utc TEXT)")
    for migration in MIGRATIONS[:version]:
        for statement in migration.statements:
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (?, 'then')", (migration.version,))
    return db
