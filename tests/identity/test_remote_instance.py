"""Every client hears of a board reset on its own next call, over real gRPC.

The server is built as ``sidra serve`` builds it, with the
:class:`~sidra.server.instance.InstanceMetadata` interceptor after the access
control; the board is the virtual board firmware on a real pty (restarted under
the server) or an emulator (a server restarted without restore).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

from sidra.client import BoardReset, BoardUnavailable, OutOfRange, RemoteBoard, connect
from sidra.client.errors import BoardInstanceChanged
from sidra.drivers import Board, open_board
from sidra.drivers.base import boot_instance_id
from sidra.drivers.serial import SerialDriver
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import LinkServer, serve_virtual_board
from sidra.hil.metadata import INSTANCE_ID_KEY
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server.instance import InstanceMetadata, instance_metadata
from sidra.server.security import AccessControl
from sidra.server.servicer import BoardServicer, board_service_handler

PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=2, rows=32, cols=16)})
G = np.random.default_rng(10).uniform(1.0, 40.0, (32, 16)).astype(np.float32)
V = np.full((1, 32), 0.1, np.float32)


@contextmanager
def served(board: Board, address: str = "127.0.0.1:0") -> Iterator[int]:
    """``board`` behind BoardService with the instance trailer; yields the port."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=8),
        interceptors=(AccessControl(None), InstanceMetadata(board)),
    )
    server.add_generic_rpc_handlers((board_service_handler(BoardServicer(board)),))
    port = server.add_insecure_port(address)
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


@dataclass
class Rig:
    """A serial board under a server, and two clients of it."""

    link: LinkServer
    driver: SerialDriver
    a: RemoteBoard
    b: RemoteBoard


@contextmanager
def two_clients_of_a_serial_board() -> Iterator[Rig]:
    with (
        serve_virtual_board(PROFILE, seed=21) as link,
        open_board(f"{link.url}?timeout=0.5") as driver,
        served(driver) as port,
        connect(f"127.0.0.1:{port}") as a,
        connect(f"127.0.0.1:{port}") as b,
    ):
        assert isinstance(driver, SerialDriver)
        yield Rig(link, driver, a, b)


def test_both_clients_get_board_reset_on_their_next_call_then_ok() -> None:
    """The board restarts under the server: the client whose call meets the reset gets
    ABORTED from the server, the other one gets BoardInstanceChanged naming the old and
    the new instance; each exactly once, then both work on the new instance."""
    with two_clients_of_a_serial_board() as r:
        r.a.program(0, G)
        r.b.mvm(0, V)
        old = r.driver.instance_id
        assert r.a.instance_id == r.b.instance_id == old

        r.link.reset_board()
        with pytest.raises(BoardReset) as met:
            r.a.mvm(0, V)
        assert not isinstance(met.value, BoardInstanceChanged)  # the server's report
        new = r.driver.instance_id
        assert new != old
        with pytest.raises(BoardInstanceChanged) as told:
            r.b.mvm(0, V)
        assert (told.value.previous_id, told.value.instance_id) == (old, new)
        assert old in str(told.value) and new in str(told.value)

        for client in (r.a, r.b):  # reported once each: OK from now on
            assert client.mvm(0, V).currents.shape == (1, 16)
            assert client.instance_id == new
        assert r.a.stats().cell_writes == 0  # the new instance: nothing programmed


def test_a_reset_the_server_noticed_while_idle_reaches_every_client() -> None:
    """A link watcher's probe finds the board restarted while no client was calling;
    the next call of each client raises a BoardReset, once."""
    with two_clients_of_a_serial_board() as r:
        r.a.mvm(0, V)
        r.b.mvm(0, V)
        r.link.reset_board()
        time.sleep(0.6)  # the idle link is pinged after 0.5 s
        assert r.driver.probe_link()
        for client in (r.a, r.b):
            with pytest.raises(BoardReset):
                client.mvm(0, V)
            client.mvm(0, V)


def test_a_server_restarted_on_a_fresh_emulator_is_a_new_instance() -> None:
    """Same preset, same seed, same port, same GetBoardInfo: a client still learns the
    state is gone (a server restart without restore)."""
    with served(open_board("emu://?preset=ideal&seed=3")) as port:
        client = connect(f"127.0.0.1:{port}")
        client.program(0, G[:16, :16])
        before = client.instance_id
    with client, served(open_board("emu://?preset=ideal&seed=3"), f"127.0.0.1:{port}"):
        deadline = time.monotonic() + 10
        while True:  # the channel reconnects to the new server
            try:
                client.mvm(0, np.zeros((1, 256), np.float32))
            except BoardUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.05)
                continue
            except BoardInstanceChanged as changed:
                assert changed.previous_id == before
                break
            raise AssertionError("a call on the new instance returned OK")
        assert client.instance_id != before
        assert client.stats().cell_writes == 0


def test_every_response_carries_the_instance_and_errors_keep_their_details() -> None:
    """OK and failed calls alike carry the trailer, and the status details a failed
    call had are still there (the client still gets field, value and allowed)."""
    board = open_board("emu://?preset=ideal&seed=4")
    with served(board) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.BoardServiceStub(channel)
        reply, call = stub.GetBoardInfo.with_call(pb.GetBoardInfoRequest(), timeout=10)
        assert (INSTANCE_ID_KEY, board.instance_id) in call.trailing_metadata()
        assert reply.instance_id == board.instance_id
        assert instance_metadata(board) == ((INSTANCE_ID_KEY, board.instance_id),)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Calibrate(pb.CalibrateRequest(tile=99), timeout=10)
        trailers = dict(failed.value.trailing_metadata())
        assert trailers[INSTANCE_ID_KEY] == board.instance_id
        assert "grpc-status-details-bin" in trailers
        with RemoteBoard(channel) as client, pytest.raises(OutOfRange) as refused:
            client.calibrate(99)
        assert refused.value.field == "tile"


def test_an_escaped_instance_id_reaches_the_trailer_as_it_is() -> None:
    """An id whose serial number needed escaping (``%20``) goes out unchanged: the
    trailer and GetBoardInfo's field name the same instance (escaping it again would
    send ``%2520``)."""
    board = open_board("emu://?preset=ideal&seed=4")
    board._instance_id = boot_instance_id("SIDRA Y1 50%", 3)  # as a board with that serial
    assert "%20" in board.instance_id
    with served(board) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.BoardServiceStub(channel)
        reply, call = stub.GetBoardInfo.with_call(pb.GetBoardInfoRequest(), timeout=10)
        assert dict(call.trailing_metadata())[INSTANCE_ID_KEY] == reply.instance_id
        assert reply.instance_id == board.instance_id
