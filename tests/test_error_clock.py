"""AdvanceClock bounds the resulting clock, not only each increment.

Two advances of 1.7e308 s used to make the clock Inf, and every later read on
sidra-y1 NaN. The clock may not pass CLOCK_LIMIT_S; an advance that would is
OUT_OF_RANGE on ``seconds`` naming the headroom, and leaves the board unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidra.client import RemoteBoard, connect
from sidra.drivers import Board, BoardDriver, OutOfRange, open_board
from sidra.drivers.validation import CLOCK_LIMIT_S
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server

Y1_URL = "emu://?preset=sidra-y1&seed=3"


@pytest.fixture
def y1() -> Iterator[BoardDriver]:
    with open_board(Y1_URL) as board:
        board.program(0, np.full((8, 8), 20.0, np.float32))
        yield board


@pytest.fixture
def y1_remote(y1: BoardDriver) -> Iterator[RemoteBoard]:
    server, port = create_server(y1, "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as board:
            yield board
    finally:
        server.stop(grace=None)


def assert_reads_finite(board: Board) -> None:
    assert np.isfinite(board.read_conductance(0).conductances).all()
    currents = board.mvm(0, np.full((2, board.info.rows), 0.05, np.float32)).currents
    assert np.isfinite(currents).all()


def assert_refused(board: Board, seconds: float, headroom: str) -> None:
    """``advance_clock(seconds)`` is OutOfRange on "seconds" and moves nothing."""
    before = board.stats()
    with pytest.raises(OutOfRange) as caught:
        board.advance_clock(seconds)
    assert caught.value.field == "seconds"
    assert f"[0, {headroom}]" in caught.value.allowed
    assert f"{CLOCK_LIMIT_S:g} s" in caught.value.allowed
    assert board.stats() == before


@pytest.mark.parametrize("where", ["local", "grpc"])
def test_clock_stops_at_its_limit(
    where: str, y1: BoardDriver, request: pytest.FixtureRequest
) -> None:
    """Each advance is fine on its own; the one that would pass the limit is refused with
    the remaining headroom, the clock stays put, and sidra-y1 reads stay finite."""
    board: Board = y1 if where == "local" else request.getfixturevalue("y1_remote")

    assert_refused(board, 1.7e308, "1e+12")  # alone past the limit
    assert board.advance_clock(6e11) == 6e11
    assert_refused(board, 6e11, "4e+11")  # fine alone, not on top of the first
    assert board.stats().clock_s == 6e11
    assert board.advance_clock(4e11) == CLOCK_LIMIT_S  # up to the limit exactly
    assert_refused(board, 1e-3, "0")
    assert board.advance_clock(0.0) == CLOCK_LIMIT_S
    assert_reads_finite(board)


def test_twice_largest_double_is_refused_over_the_wire(
    served: tuple[BoardDriver, int], remote: RemoteBoard
) -> None:
    """The issue's reproduction through a raw stub, on both transports of the ``served``
    fixture (emu:// and the virtual serial board): OUT_OF_RANGE with a BadRequest on
    "seconds", and the clock is unchanged."""
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        stub = pb_grpc.BoardServiceStub(channel)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as caught:
                stub.AdvanceClock(pb.AdvanceClockRequest(seconds=1.7e308), timeout=10)
            assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
            status = rpc_status.from_call(caught.value)
            assert status is not None
            bad = error_details_pb2.BadRequest()
            assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
            assert [v.field for v in bad.field_violations] == ["seconds"]
        assert remote.stats().clock_s == 0.0
        # Near the limit, only the board knows the clock: its own check answers.
        remote.advance_clock(CLOCK_LIMIT_S - 5.0)
        with pytest.raises(grpc.RpcError) as caught:
            stub.AdvanceClock(pb.AdvanceClockRequest(seconds=6.0), timeout=10)
        assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "seconds: got 6.0" in caught.value.details()
        assert "[0, 5]" in caught.value.details()
    assert remote.stats().clock_s == CLOCK_LIMIT_S - 5.0
