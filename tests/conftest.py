"""Shared fixtures: a real gRPC server on loopback in front of an emulated board."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import BoardDriver, open_board
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server


@pytest.fixture
def ideal_driver() -> Iterator[BoardDriver]:
    with open_board("emu://?preset=ideal&seed=1") as driver:
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
