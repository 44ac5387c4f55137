"""LeaseRegistry: sessions, leases and admission, on a clock the tests move by hand."""

from __future__ import annotations

import threading

import pytest

from sidra.drivers import FailedPrecondition, InvalidArgument, OutOfRange
from sidra.drivers.errors import LeaseHeld, ResourceExhausted, SessionClosed
from sidra.drivers.operations import OPERATIONS
from sidra.server.sessions import LEASE_ACCESS, LeaseRegistry


class Clock:
    """A monotonic clock that moves only when told to, s."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> LeaseRegistry:
    return LeaseRegistry(4, default_ttl_s=10.0, max_ttl_s=100.0, max_sessions=3, clock=clock)


def test_every_rpc_has_a_lease_access() -> None:
    assert set(LEASE_ACCESS) == {op.rpc for op in OPERATIONS}


def test_a_leased_tile_refuses_other_writers_and_names_the_holder(
    registry: LeaseRegistry,
) -> None:
    alice = registry.open("alice", 0, "spsa run 3")
    registry.acquire("alice", alice.id, [1], whole_board=False)
    bob = registry.open("bob", 0, "")

    registry.admit("Program", 1, "alice", alice.id, admin=False)  # the holder writes
    for session in (bob.id, None):  # another session, or none at all
        with pytest.raises(LeaseHeld) as refused:
            registry.admit("Perturb", 1, "bob", session, admin=True)
        message = str(refused.value)
        assert "alice's session 'spsa run 3'" in message and "expires in 10.0 s" in message
    registry.admit("Program", 2, "bob", bob.id, admin=False)  # another tile is free
    registry.admit("MVM", 1, "bob", None, admin=False)  # reads are shared by default


def test_exclusive_reads_refuse_readers_too(clock: Clock) -> None:
    registry = LeaseRegistry(2, exclusive_reads=True, clock=clock)
    alice = registry.open("alice", 0, "")
    registry.acquire("alice", alice.id, [0], whole_board=False)
    with pytest.raises(LeaseHeld, match="MVM reads tile 0"):
        registry.admit("MVM", 0, "bob", None, admin=False)
    registry.admit("GetBoardInfo", None, "bob", None, admin=False)


def test_a_session_expires_without_heartbeats_and_its_tiles_come_free(
    registry: LeaseRegistry, clock: Clock
) -> None:
    alice = registry.open("alice", 5.0, "")
    registry.acquire("alice", alice.id, [0, 3], whole_board=False)
    clock.now += 4.0
    registry.renew("alice", alice.id)  # lives 5 s from here
    clock.now += 4.0
    assert registry.expire() == []
    clock.now += 1.0
    ended = registry.expire()
    assert [e.tiles for e in ended] == [(0, 3)]
    registry.admit("Program", 0, "bob", None, admin=False)
    with pytest.raises(SessionClosed, match="not an open session of 'alice'"):
        registry.admit("MVM", 0, "alice", alice.id, admin=False)


def test_board_calls_in_the_session_renew_it(registry: LeaseRegistry, clock: Clock) -> None:
    alice = registry.open("alice", 5.0, "")
    for _ in range(4):
        clock.now += 3.0
        registry.admit("MVM", 0, "alice", alice.id, admin=False)
    assert registry.expire() == []


def test_a_session_belongs_to_its_principal(registry: LeaseRegistry) -> None:
    alice = registry.open("alice", 0, "")
    with pytest.raises(SessionClosed):
        registry.renew("bob", alice.id)
    with pytest.raises(SessionClosed):
        registry.admit("MVM", 0, "bob", alice.id, admin=False)
    with pytest.raises(SessionClosed):
        registry.close("bob", alice.id)
    registry.close("root", alice.id, admin=True)  # an admin may end anyone's
    with pytest.raises(SessionClosed):
        registry.renew("alice", alice.id)


def test_the_whole_board_excludes_every_other_lease(registry: LeaseRegistry) -> None:
    alice = registry.open("alice", 0, "")
    bob = registry.open("bob", 0, "")
    registry.acquire("bob", bob.id, [2], whole_board=False)
    with pytest.raises(LeaseHeld, match="bob's session"):
        registry.acquire("alice", alice.id, [], whole_board=True)
    registry.release("bob", bob.id, [2], all_tiles=False)
    view = registry.acquire("alice", alice.id, [], whole_board=True)
    assert view.whole_board and view.tiles == (0, 1, 2, 3)
    with pytest.raises(LeaseHeld):
        registry.acquire("bob", bob.id, [3], whole_board=False)
    with pytest.raises(LeaseHeld):
        registry.admit("Calibrate", 0, "bob", bob.id, admin=True)
    with pytest.raises(InvalidArgument, match="release it whole"):
        registry.release("alice", alice.id, [1], all_tiles=False)
    assert registry.release("alice", alice.id, [], all_tiles=True).tiles == (0, 1, 2, 3)


def _waiting_for(
    registry: LeaseRegistry, principal: str, session_id: str, tile: int
) -> tuple[threading.Thread, threading.Event]:
    """An AcquireLease of ``tile`` waiting up to 30 s on a thread; the event is set once
    granted (checked not to be granted at once)."""
    granted = threading.Event()

    def wait_for_tile() -> None:
        registry.acquire(principal, session_id, [tile], whole_board=False, wait_s=30)
        granted.set()

    waiter = threading.Thread(target=wait_for_tile)
    waiter.start()
    assert not granted.wait(0.2)
    return waiter, granted


def test_a_whole_board_lease_narrows_to_tiles_and_frees_the_rest() -> None:
    registry = LeaseRegistry(4)  # the real clock: the waiter sleeps on a condition
    alice = registry.open("alice", 0, "job 1 pat")
    bob = registry.open("bob", 0, "")
    registry.acquire("alice", alice.id, [], whole_board=True)
    waiter, granted = _waiting_for(registry, "bob", bob.id, 3)
    for tiles, error in (([], "at least one tile"), ([0, 4], "distinct tiles in 0 .. 3")):
        with pytest.raises((InvalidArgument, OutOfRange), match=error):
            registry.narrow("alice", alice.id, tiles)
    ended = registry.narrow("alice", alice.id, [1, 0])
    assert ended.tiles == (2, 3) and ended.session.tiles == (0, 1)
    assert not ended.session.whole_board
    waiter.join(timeout=10)
    assert granted.is_set()  # bob waited for tile 3: it came free
    assert [(h.tile, h.principal, h.whole_board) for h in registry.holders()] == [
        (0, "alice", False), (1, "alice", False), (3, "bob", False),
    ]  # fmt: skip
    with pytest.raises(LeaseHeld, match="alice's session 'job 1 pat'"):
        registry.admit("Program", 1, "bob", bob.id, admin=False)
    registry.admit("Program", 2, "bob", bob.id, admin=False)
    with pytest.raises(FailedPrecondition, match=r"leases tiles 0, 1, not the whole board"):
        registry.narrow("alice", alice.id, [0])
    assert registry.release("alice", alice.id, [], all_tiles=True).tiles == (0, 1)


def test_narrowing_frees_the_tiles_leased_before_the_whole_board_too(
    registry: LeaseRegistry,
) -> None:
    alice = registry.open("alice", 0, "")
    registry.acquire("alice", alice.id, [2], whole_board=False)
    registry.acquire("alice", alice.id, [], whole_board=True)
    assert registry.narrow("alice", alice.id, [0]).tiles == (1, 2, 3)
    assert [held.tile for held in registry.holders()] == [0]


def test_board_wide_calls_need_the_whole_board_or_admin(registry: LeaseRegistry) -> None:
    alice = registry.open("alice", 0, "")
    with pytest.raises(FailedPrecondition, match="whole board .* or the admin role"):
        registry.admit("AdvanceClock", None, "alice", alice.id, admin=False)
    registry.admit("AdvanceClock", None, "root", None, admin=True)  # nobody holds a lease
    registry.acquire("alice", alice.id, [0], whole_board=False)
    with pytest.raises(LeaseHeld, match="other sessions hold leases: alice's session"):
        registry.admit("AdvanceClock", None, "root", None, admin=True)
    with pytest.raises(FailedPrecondition, match="needs a lease of the whole board"):
        registry.admit("AdvanceClock", None, "alice", alice.id, admin=False)  # a tile is not it
    registry.release("alice", alice.id, [], all_tiles=True)
    registry.acquire("alice", alice.id, [], whole_board=True)
    registry.admit("AdvanceClock", None, "alice", alice.id, admin=False)


def test_acquire_is_all_or_nothing(registry: LeaseRegistry) -> None:
    alice = registry.open("alice", 0, "")
    bob = registry.open("bob", 0, "")
    registry.acquire("bob", bob.id, [2], whole_board=False)
    with pytest.raises(
        LeaseHeld, match=r"cannot lease tiles 1, 2, 3: tile 2 held by bob's"
    ) as refused:
        registry.acquire("alice", alice.id, [1, 2, 3], whole_board=False)
    assert [held.tile for held in registry.holders()] == [2]
    # Which of bob's sessions (the id's start, what --close takes), and what to do next.
    said = str(refused.value)
    assert f"bob's session {bob.id[:8]} (expires in" in said
    assert "lease with wait_s to wait for it" in said and "sidra leases --close ID" in said
    with pytest.raises(LeaseHeld, match="sidra leases, or a client's leases"):
        registry.admit("Program", 2, "alice", alice.id, admin=False)


def test_a_waiting_acquire_gets_the_tile_when_it_comes_free() -> None:
    registry = LeaseRegistry(2)  # the real clock: the waiter sleeps on a condition
    alice = registry.open("alice", 0, "")
    bob = registry.open("bob", 0, "")
    registry.acquire("alice", alice.id, [0], whole_board=False)
    waiter, granted = _waiting_for(registry, "bob", bob.id, 0)
    registry.release("alice", alice.id, [0], all_tiles=False)
    waiter.join(timeout=10)
    assert granted.is_set()
    assert registry.holders()[0].principal == "bob"


@pytest.mark.parametrize(
    ("field", "kwargs", "error"),
    [
        ("ttl_s", {"ttl_s": 0.5}, OutOfRange),
        ("ttl_s", {"ttl_s": 101.0}, OutOfRange),
        ("ttl_s", {"ttl_s": float("nan")}, InvalidArgument),
        ("label", {"label": "x" * 101}, InvalidArgument),
        ("label", {"label": "bell\x07"}, InvalidArgument),
    ],
)
def test_open_checks_its_fields(
    registry: LeaseRegistry, field: str, kwargs: dict[str, object], error: type[Exception]
) -> None:
    args: dict[str, object] = {"ttl_s": 0.0, "label": ""} | kwargs
    with pytest.raises(error) as refused:
        registry.open("alice", args["ttl_s"], args["label"])  # type: ignore[arg-type]
    assert refused.value.field == field  # type: ignore[attr-defined]
    assert registry.open_sessions() == 0


@pytest.mark.parametrize(
    ("tiles", "whole_board", "error"),
    [
        ([], False, InvalidArgument),
        ([4], False, OutOfRange),
        ([1, 1], False, OutOfRange),
        ([1], True, InvalidArgument),
    ],
)
def test_acquire_checks_its_tiles(
    registry: LeaseRegistry, tiles: list[int], whole_board: bool, error: type[Exception]
) -> None:
    alice = registry.open("alice", 0, "")
    with pytest.raises(error, match="^tiles: "):
        registry.acquire("alice", alice.id, tiles, whole_board)
    assert registry.holders() == []


def test_sessions_per_principal_are_limited(registry: LeaseRegistry) -> None:
    for _ in range(3):
        registry.open("alice", 0, "")
    with pytest.raises(ResourceExhausted, match="at most 3 per principal"):
        registry.open("alice", 0, "")
    registry.open("bob", 0, "")  # counted per principal
