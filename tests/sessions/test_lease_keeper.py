"""LeaseKeeper on real boards: expiry restores what a lease left perturbed, and a restore
the board cannot do (link down) is retried before the next call on the tile.

Time is a hand-moved clock; the boards are real: the ideal emulator, and a virtual
serial board on a pty whose cable the fault shim pulls.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from sidra.drivers import Board, BoardReset, BoardUnavailable, Region, open_board
from sidra.drivers.errors import LeaseHeld
from sidra.drivers.requests import (
    MVMRequest,
    PerturbMode,
    PerturbRequest,
    ProgramRequest,
    ReadWriteCountsRequest,
)
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig
from sidra.server.sessions import LeaseKeeper, LeaseRegistry
from sidra.server.turns import BoardTurns

PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=2, rows=32, cols=16)})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keeper_of(board: Board, clock: Clock) -> LeaseKeeper:
    registry = LeaseRegistry(board.info.tile_count, clock=clock)
    return LeaseKeeper(board, BoardTurns(), registry)


def run(keeper: LeaseKeeper, request: object, principal: str, session: str | None) -> object:
    """One call as the servicer makes it: admitted in its turn, then run and noted."""
    rpc = type(request).__name__.removesuffix("Request")
    with keeper.turns.turn(principal):
        keeper.admit(rpc, request, principal, session, admin=False)  # type: ignore[arg-type]
        result = keeper.board.run(request)  # type: ignore[arg-type]
        keeper.ran(request)  # type: ignore[arg-type]
    return result


def targets(board: Board, seed: int) -> np.ndarray:
    info = board.info
    rng = np.random.default_rng(seed)
    return rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)).astype(np.float32)


@pytest.fixture
def emulator() -> Iterator[Board]:
    with open_board("emu://?preset=ideal&seed=5") as board:
        yield board


def test_expiry_restores_exactly_the_perturbed_region(emulator: Board) -> None:
    clock = Clock()
    keeper = keeper_of(emulator, clock)
    g = targets(emulator, 1)
    session = keeper.open("alice", 5.0, "").id
    keeper.acquire("alice", session, [0], whole_board=False, wait_s=0)
    run(keeper, ProgramRequest(0, g), "alice", session)
    region = Region(3, 4, 10, 20)
    run(keeper, PerturbRequest(0, PerturbMode.APPLY, 9, 2.0, 1, region), "alice", session)
    assert keeper.perturbed.region(0) == region
    before = emulator.stats().cell_writes

    clock.now += 5.0
    [end] = keeper.expire()
    assert end.ended.tiles == (0,) and end.restored == (0,)
    np.testing.assert_array_equal(emulator.read_conductance(0).conductances, g)
    assert emulator.stats().cell_writes - before == region.rows * region.cols  # nothing more
    assert keeper.perturbed.region(0) is None


def test_a_restored_or_reprogrammed_region_is_not_restored_again(emulator: Board) -> None:
    keeper = keeper_of(emulator, Clock())
    g = targets(emulator, 2)
    session = keeper.open("alice", 0, "").id
    keeper.acquire("alice", session, [0, 1], whole_board=False, wait_s=0)
    for tile in (0, 1):
        run(keeper, ProgramRequest(tile, g), "alice", session)
        run(keeper, PerturbRequest(tile, PerturbMode.APPLY, 3, 1.0, 1), "alice", session)
    run(keeper, PerturbRequest(0, PerturbMode.RESTORE), "alice", session)
    run(keeper, ProgramRequest(1, g), "alice", session)
    end = keeper.release("alice", session, [], all_tiles=True)
    assert end.ended.tiles == (0, 1) and end.restored == ()


def test_narrowing_a_whole_board_lease_restores_the_tiles_it_frees(emulator: Board) -> None:
    """A job that characterized the board keeps its training tiles: a freed tile it left
    perturbed is restored as on release; a kept one is not touched."""
    keeper = keeper_of(emulator, Clock())
    g = targets(emulator, 3)
    session = keeper.open("alice", 0, "job 1 pat").id
    keeper.acquire("alice", session, [], whole_board=True, wait_s=0)
    for tile in (0, 1):
        run(keeper, ProgramRequest(tile, g), "alice", session)
        run(keeper, PerturbRequest(tile, PerturbMode.APPLY, 4, 1.0, 1), "alice", session)
    end = keeper.narrow("alice", session, [0])
    assert end.ended.tiles == (1, 2, 3) and end.restored == (1,)  # 2 and 3: not perturbed
    np.testing.assert_array_equal(emulator.read_conductance(1).conductances, g)
    assert keeper.perturbed.region(0) is not None  # still the job's, perturbed
    bob = keeper.open("bob", 0, "").id
    keeper.acquire("bob", bob, [1], whole_board=False, wait_s=0)
    with pytest.raises(LeaseHeld):
        keeper.acquire("bob", bob, [0], whole_board=False, wait_s=0)


def test_a_restore_the_board_refuses_is_retried_before_the_next_call() -> None:
    with (
        serve_virtual_board(PROFILE, 1, faults=FaultConfig()) as server,
        open_board(f"{server.url}?timeout=0.05&retries=2") as board,
    ):
        shim = server.shim
        assert shim is not None
        clock = Clock()
        keeper = keeper_of(board, clock)
        g = targets(board, 3)
        session = keeper.open("alice", 2.0, "").id
        keeper.acquire("alice", session, [1], whole_board=False, wait_s=0)
        run(keeper, ProgramRequest(1, g), "alice", session)
        run(keeper, PerturbRequest(1, PerturbMode.APPLY, 4, 1.0, 1), "alice", session)

        shim.unplug(float("inf"))
        clock.now += 2.0
        [end] = keeper.expire()
        assert end.ended.tiles == (1,) and end.restored == ()  # the board could not
        voltages = np.zeros((1, board.info.rows), np.float32)
        with pytest.raises(BoardUnavailable):  # bob's read would see the perturbation
            run(keeper, MVMRequest(1, voltages), "bob", None)

        shim.replug()
        run(keeper, MVMRequest(1, voltages), "bob", None)  # restores first, then runs
        np.testing.assert_array_equal(board.read_conductance(1).conductances, g)


def keeper_counting(board: Board, clock: Clock, events: list[str]) -> LeaseKeeper:
    """A keeper whose lease events (what the metrics count) go to ``events``."""
    registry = LeaseRegistry(board.info.tile_count, clock=clock)
    return LeaseKeeper(board, BoardTurns(), registry, on_event=events.append)


@pytest.mark.parametrize("restart_known", [False, True], ids=["found-by-restore", "known"])
def test_a_lease_ended_after_the_board_restarted_has_nothing_to_restore(
    restart_known: bool,
) -> None:
    """The board power-cycled after its holder perturbed a tile: the restart reset the
    cells with the rest of the board's state. Ending the lease counted restore_failed
    (the alert "a tile could not be restored") and left the tile pending, so the next
    caller's call wrote a restore over the new boot's cells. Now nothing is restored or
    counted; when the driver knew of the restart already (the server's link watcher
    pings an idle link) no call is made and the next caller still hears of the reset."""
    with (
        serve_virtual_board(PROFILE, 1, faults=FaultConfig()) as server,
        open_board(f"{server.url}?timeout=0.05&retries=2") as board,
    ):
        events: list[str] = []
        keeper = keeper_counting(board, Clock(), events)
        session = keeper.open("alice", 60.0, "").id
        keeper.acquire("alice", session, [1], whole_board=False, wait_s=0)
        run(keeper, ProgramRequest(1, targets(board, 3)), "alice", session)
        run(keeper, PerturbRequest(1, PerturbMode.APPLY, 4, 1.0, 1), "alice", session)
        before = board.instance_id

        server.reset_board()
        if restart_known:  # the link finds the new boot epoch, as the watcher's ping does
            with pytest.raises(BoardReset):
                board.run(ReadWriteCountsRequest(0, Region(0, 0, 1, 1)))
            assert board.instance_id != before
        events.clear()
        end = keeper.release("alice", session, [], all_tiles=True)
        assert end.ended.tiles == (1,) and end.restored == ()
        assert events == ["released"]  # neither restored nor restore_failed
        assert keeper.perturbed.region(1) is None
        voltages = np.zeros((1, board.info.rows), np.float32)
        run(keeper, MVMRequest(1, voltages), "bob", None)  # no restore made before it
        assert events == ["released"]
        assert board.stats().cell_writes == 0  # the new boot's cells: nothing wrote them


def test_a_pending_restore_of_a_board_that_restarted_meanwhile_is_dropped() -> None:
    """The link was down when the lease ended (restore_failed, rightly: the tile may be
    left perturbed) and the board came back restarted: the next call on the tile fails
    with the reset, as it would have met it itself, and no restore is written after."""
    with (
        serve_virtual_board(PROFILE, 1, faults=FaultConfig()) as server,
        open_board(f"{server.url}?timeout=0.05&retries=2") as board,
    ):
        shim = server.shim
        assert shim is not None
        events: list[str] = []
        clock = Clock()
        keeper = keeper_counting(board, clock, events)
        session = keeper.open("alice", 2.0, "").id
        keeper.acquire("alice", session, [1], whole_board=False, wait_s=0)
        run(keeper, ProgramRequest(1, targets(board, 3)), "alice", session)
        run(keeper, PerturbRequest(1, PerturbMode.APPLY, 4, 1.0, 1), "alice", session)

        shim.unplug(float("inf"))
        clock.now += 2.0
        [end] = keeper.expire()
        assert end.restored == () and "restore_failed" in events
        server.reset_board()  # power-cycled while its cable was out
        shim.replug()
        events.clear()
        voltages = np.zeros((1, board.info.rows), np.float32)
        with pytest.raises(BoardReset):
            run(keeper, MVMRequest(1, voltages), "bob", None)
        run(keeper, MVMRequest(1, voltages), "bob", None)
        assert events == [] and keeper.perturbed.region(1) is None
        assert board.stats().cell_writes == 0


def test_a_grant_waits_for_calls_admitted_before_it(emulator: Board) -> None:
    """AcquireLease answers only once a call admitted before the grant has finished."""
    import threading

    keeper = keeper_of(emulator, Clock())
    session = keeper.open("alice", 0, "").id
    granted = threading.Event()
    with keeper.turns.turn("bob"):  # bob's call is on the board
        keeper.admit("Program", ProgramRequest(0, targets(emulator, 4)), "bob", None, admin=False)
        thread = threading.Thread(
            target=lambda: (keeper.acquire("alice", session, [0], False, 0), granted.set())
        )
        thread.start()
        assert not granted.wait(0.3)  # registered, but not answered while bob runs
        with pytest.raises(LeaseHeld):  # and no new call of bob's gets in meanwhile
            keeper.registry.admit("Program", 0, "bob", None, admin=False)
    thread.join(timeout=10)
    assert granted.is_set()


def test_a_restore_refused_for_endurance_is_given_up_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A restore the board refuses for good (cells of the perturbed region reprogrammed
    to their write budget meanwhile) was retried before every call on the tile, which
    then failed for everyone until the server restarted. Given up once, said once: the
    tile works for the next caller."""
    from sidra.emulator.config import Endurance, EndurancePolicy
    from sidra.emulator.driver import EmulatorDriver

    budget = Endurance(write_budget=3, policy=EndurancePolicy.REFUSE)
    board = EmulatorDriver(preset("ideal").model_copy(update={"endurance": budget}), 5)
    keeper = keeper_of(board, Clock())
    session = keeper.open("alice", 0, "").id
    keeper.acquire("alice", session, [0], whole_board=False, wait_s=0)
    run(keeper, ProgramRequest(0, np.full((8, 8), 10.0, np.float32)), "alice", session)
    perturbed = Region(0, 0, 8, 8)
    run(keeper, PerturbRequest(0, PerturbMode.APPLY, 3, 1.0, 1, perturbed), "alice", session)
    corner = np.full((4, 4), 12.0, np.float32)
    run(keeper, ProgramRequest(0, corner, 4, 4), "alice", session)  # 3 writes there now
    end = keeper.release("alice", session, [], all_tiles=True)
    assert end.restored == () and keeper.perturbed.region(0) is None
    assert "tile 0 left perturbed for good" in caplog.text
    currents = run(keeper, MVMRequest(0, np.zeros((1, 256), np.float32)), "bob", None)
    assert currents.currents.shape == (1, 256)  # not refused "endurance" for bob


def test_a_caller_that_stopped_waiting_is_granted_nothing() -> None:
    """AcquireLease with wait_s past the caller's deadline: the client had its
    DEADLINE_EXCEEDED, and the tile freed later went to no one (it was leased to the
    session whose caller had left, refusing everyone else's calls on it)."""
    import grpc

    from sidra.hil.v1 import session_pb2 as spb
    from sidra.hil.v1 import session_pb2_grpc as spb_grpc
    from sidra.server import create_server

    with open_board("emu://?preset=ideal&seed=5") as board:
        server, port = create_server(board, "127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = spb_grpc.SessionServiceStub(channel)
                first = stub.OpenSession(spb.OpenSessionRequest(ttl_s=60)).session_id
                second = stub.OpenSession(spb.OpenSessionRequest(ttl_s=60)).session_id
                stub.AcquireLease(spb.AcquireLeaseRequest(session_id=first, tiles=[3]))
                waiting = spb.AcquireLeaseRequest(session_id=second, tiles=[3], wait_s=30)
                with pytest.raises(grpc.RpcError) as gave_up:
                    stub.AcquireLease(waiting, timeout=0.5)
                assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                import time

                time.sleep(0.3)  # the server sees the caller gone at its next look
                stub.ReleaseLease(spb.ReleaseLeaseRequest(session_id=first, all=True))
                time.sleep(0.3)
                leases = stub.ListLeases(spb.ListLeasesRequest())
                assert [lease.tile for lease in leases.leases] == []  # nobody holds tile 3
        finally:
            server.stop(grace=None)


def test_a_session_ended_for_its_holder_is_logged_naming_it_whom_and_what(
    emulator: Board, caplog: pytest.LogCaptureFixture
) -> None:
    """An admin reading the log after a run died or was closed by another: the line
    said `session alice holder of alice expired` (a label unquoted, no id to match
    `sidra leases`, nothing of the cells put back), and an admin's close of someone's
    session wrote no line at all beyond the CloseSession RPC's."""
    caplog.set_level("INFO", logger="sidra.server.sessions.keeper")
    clock = Clock()
    keeper = keeper_of(emulator, clock)
    region = Region(0, 0, 4, 4)
    expiring = keeper.open("alice", 5.0, "spsa run 3").id
    keeper.acquire("alice", expiring, [0], whole_board=False, wait_s=0)
    run(keeper, ProgramRequest(0, targets(emulator, 1)), "alice", expiring)
    run(keeper, PerturbRequest(0, PerturbMode.APPLY, 9, 2.0, 1, region), "alice", expiring)
    closed = keeper.open("bob", 30.0, "").id
    keeper.acquire("bob", closed, [1], whole_board=False, wait_s=0)

    clock.now += 5.0
    keeper.expire()
    expired = [r.getMessage() for r in caplog.records if "expired" in r.getMessage()]
    assert expired == [
        f"session 'spsa run 3' {expiring[:8]} of alice expired (no sign of life for its "
        "ttl 5 s); tiles 0 released; perturbed cells restored on tiles: 0"
    ]

    keeper.close("root", closed, admin=True)
    [line] = [r for r in caplog.records if "closed by" in r.getMessage()]
    assert line.levelname == "WARNING"
    assert line.getMessage() == (
        f"session {closed[:8]} of bob closed by root (admin); tiles 1 released; perturbed "
        "cells restored on tiles: none"
    )
