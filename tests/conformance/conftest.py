"""Fixtures of the conformance suite: one board per target, reached locally and over gRPC.

Each target of ``board_target`` (tests/conftest.py: the ``--board-url`` boards,
or emu:// and the virtual board on a pty) is opened once per session and shared
by every test, as a board started by hand in the lab is: tests program what they
read, compare against what they programmed and count writes and passes as
differences. ``board`` is that board twice over: the driver ``open_board`` gave
(``[...-local]``) and a :class:`~sidra.client.RemoteBoard` through a real gRPC
server on loopback in front of it (``[...-grpc]``). ``served``, ``remote`` and
``stub`` are the gRPC side alone, for tests that only make sense over gRPC.

Markers (registered in pyproject.toml):

* ``ideal_only``: the check holds only on an ideal board (exact V·G, exact
  programming); skipped, with the reason, when ``info.emulator_preset`` is not
  ``"ideal"``.
* ``fresh_board``: the test needs a board at power-up (the ``fresh_board``
  fixture); it runs only on targets this run opens itself (tests/conftest.py).

Nothing here imports the emulator: the default boards are built in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from board_checks import OPENED_URLS, is_ideal, too_small

from sidra.client import RemoteBoard, connect
from sidra.drivers import Board
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server
from sidra.server.settings import LimitsSettings

SUITE_LIMITS = LimitsSettings(max_batch=1_048_576, max_in_flight=64)
SUITE_MAX_MESSAGE_BYTES = 64 * 2**20
"""Above the service's default [limits]: the concurrency tests run 8 clients at once as
one principal (no [auth]: every caller is "local"), and the batch and message
tests may send more than a default server takes (a board behind a default ``sidra
serve``, grpc://, passes them too). The limits themselves are tests/server/test_limits.py's."""


@pytest.fixture(scope="session")
def shared_board(request: pytest.FixtureRequest, board_target: Any) -> Iterator[Board]:
    """The target's board as ``open_board`` gives it, opened once for the session. A board
    named by --board-url that cannot be opened (a typo, a board not answering, one another
    host drives) ends the run with its error, once: each of the 400-odd tests printed it
    again, 20-80 s and tens of thousands of lines."""
    with contextlib.ExitStack() as held:
        try:
            board: Board = held.enter_context(board_target.open())
        except Exception as exc:
            if not board_target.url:
                raise
            pytest.exit(
                f"conformance: cannot open --board-url {board_target.url}: "
                f"{type(exc).__name__}: {exc}",
                returncode=1,
            )
        if board_target.url:
            request.session.__dict__.setdefault(OPENED_URLS, set()).add(board_target.url)
        yield board


@pytest.fixture(scope="session")
def served(shared_board: Board) -> Iterator[tuple[Board, int]]:
    """The shared board behind a gRPC server on a free loopback port: (board, port)."""
    server, port = create_server(
        shared_board, "127.0.0.1:0", limits=SUITE_LIMITS, max_message_bytes=SUITE_MAX_MESSAGE_BYTES
    )
    server.start()
    yield shared_board, port
    server.stop(grace=None)


@pytest.fixture(scope="session")
def remote(served: tuple[Board, int]) -> Iterator[RemoteBoard]:
    """A gRPC client of the served board."""
    with connect(f"127.0.0.1:{served[1]}") as board:
        yield board


@pytest.fixture
def stub(served: tuple[Board, int]) -> Iterator[pb_grpc.BoardServiceStub]:
    """A raw generated stub, for requests the client library would never send."""
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        yield pb_grpc.BoardServiceStub(channel)


@pytest.fixture(params=["local", "grpc"])
def board(request: pytest.FixtureRequest, board_target: Any) -> Board:
    """The target's board through its local driver, then through gRPC."""
    name = "shared_board" if request.param == "local" else "remote"
    found: Board = request.getfixturevalue(name)
    return found


@pytest.fixture(params=["local", "grpc"])
def fresh_board(request: pytest.FixtureRequest, board_target: Any) -> Iterator[Board]:
    """A board at power-up opened for this test alone (``fresh_board`` tests only),
    through its local driver, then through gRPC."""
    assert request.node.get_closest_marker("fresh_board"), "mark the test fresh_board"
    with board_target.open() as driver:
        if request.param == "local":
            yield driver
            return
        server, port = create_server(
            driver, "127.0.0.1:0", limits=SUITE_LIMITS, max_message_bytes=SUITE_MAX_MESSAGE_BYTES
        )
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as client:
                yield client
        finally:
            server.stop(grace=None)


BOARD_FIXTURES = {"shared_board", "board", "fresh_board", "converter_served"}
"""The fixtures a test of a board asks for (``board`` and ``fresh_board`` name the shared or
fresh board only when run; test_converter_codes.py's boards come from converter_served)."""


@pytest.fixture(autouse=True)
def _skip_below_the_smallest_tile(request: pytest.FixtureRequest) -> None:
    """Every test of a board skips on tiles below board_checks.SMALLEST_TILE (the shared
    board's info tells: a fresh or converter board has the target's geometry). A test of no
    such board (the wire refusals, on their own link) opens nothing here."""
    if not BOARD_FIXTURES & set(request.fixturenames):
        return
    reason = too_small(request.getfixturevalue("shared_board").info)
    if reason:
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _skip_ideal_only_checks(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("ideal_only") is None:
        return
    if "board_target" not in request.fixturenames:
        return
    info = request.getfixturevalue("shared_board").info
    if not is_ideal(info):
        preset = info.emulator_preset or "none: not an emulator"
        pytest.skip(
            "ideal-only: exact arithmetic needs the emulator's ideal board, 4 tiles of "
            f"256 x 256 (preset {preset}, {info.tile_count} x {info.rows} x {info.cols})"
        )
