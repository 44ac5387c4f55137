"""Helpers shared by the emulator physics tests (not a test module: nothing is collected here).

Every test builds a board with exactly one effect switched on: ``make_profile``
starts from the ideal board (all effects off, every field at its default) and
replaces only the sections it is given, through the validating constructor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from sidra.client import RemoteBoard, connect
from sidra.drivers import Board
from sidra.emulator import BoardProfile
from sidra.emulator.config import Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server

F64 = npt.NDArray[np.float64]

SMALL = Geometry(tiles=2, rows=64, cols=32)
"""Default geometry of these tests: large enough for the statistics, small enough to be fast."""


def make_profile(geometry: Geometry = SMALL, **sections: Any) -> BoardProfile:
    """The ideal board with only ``sections`` (e.g. ``read_noise=ReadNoise(...)``) changed."""
    return BoardProfile(preset="test", model="SIDRA-TEST", geometry=geometry, **sections)


def make_driver(profile: BoardProfile, seed: int = 1) -> EmulatorDriver:
    return EmulatorDriver(profile, seed)


def matmul64(v: npt.ArrayLike, g: npt.ArrayLike) -> F64:
    """v @ g evaluated in float64 (the reference every test compares against)."""
    return np.asarray(v, np.float64) @ np.asarray(g, np.float64)


def read64(board: Board, tile: int = 0) -> F64:
    """The whole tile's measured conductances, as float64."""
    return board.read_conductance(tile).conductances.astype(np.float64)


def z_bound(n: int, k: float = 5.0) -> float:
    """k standard errors of a sample mean of n unit-variance samples."""
    return k / float(np.sqrt(n))


def std_bound(n: int, k: float = 5.0) -> float:
    """k standard errors of a sample std relative to σ: SE(s)/σ = 1/√(2n) for Gaussians."""
    return k / float(np.sqrt(2 * n))


@contextmanager
def serve(board: Board) -> Iterator[tuple[RemoteBoard, pb_grpc.BoardServiceStub]]:
    """``board`` served over real loopback gRPC: a client and a raw stub (for wire fields)."""
    server, port = create_server(board, "127.0.0.1:0")
    server.start()
    try:
        with (
            connect(f"127.0.0.1:{port}") as remote,
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            yield remote, pb_grpc.BoardServiceStub(channel)
    finally:
        server.stop(grace=None)
