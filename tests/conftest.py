"""Shared fixtures: a real gRPC server on loopback in front of an emulated board.

``ideal_driver`` (and so ``served``, ``remote`` and ``stub``) is parametrised
over board transports: the in-process emulator (``emu://``) and the serial
driver talking to the virtual board firmware over a real pseudo-terminal
(``serial:///dev/pts/N``), both the ideal preset with seed 1. Every test built
on it is a conformance test that runs unchanged on both.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import BoardDriver, open_board
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server

IDEAL_URL = "emu://?preset=ideal&seed=1"


@pytest.fixture(params=["emu", "serial"])
def ideal_driver(request: pytest.FixtureRequest) -> Iterator[BoardDriver]:
    """The ideal board, seed 1: in process, or over a pty to the virtual board."""
    if request.param == "emu":
        with open_board(IDEAL_URL) as driver:
            yield driver
        return
    with serve_virtual_board(preset("ideal"), seed=1) as server, open_board(server.url) as driver:
        yield driver


@pytest.fixture
def served(ideal_driver: BoardDriver) -> Iterator[tuple[BoardDriver, int]]:
    """The ideal board served on a free loopback port: (driver, port)."""
    server, port = create_server(ideal_driver, "127.0.0.1:0")
    server.start()
    yield ideal_driver, port
    server.stop(grace=None)


@pytest.fixture
def remote(served: tuple[BoardDriver, int]) -> Iterator[RemoteBoard]:
    """A client connected over real gRPC to the ideal board."""
    with connect(f"127.0.0.1:{served[1]}") as board:
        yield board


@pytest.fixture
def stub(served: tuple[BoardDriver, int]) -> Iterator[pb_grpc.BoardServiceStub]:
    """A raw generated stub, for requests the client library would never send."""
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        yield pb_grpc.BoardServiceStub(channel)
