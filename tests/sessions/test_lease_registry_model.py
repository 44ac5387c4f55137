"""LeaseRegistry against a model of the rules, over random sequences of lease calls.

The model is the rules as docs/operations.md states them: a tile has at most one
holder; a lease of the whole board excludes every other lease; an acquire is granted
all or nothing, and refused with LeaseHeld when another session holds what it asks
for; a principal opens at most ``max_sessions`` sessions; a release or a narrowing
frees exactly the tiles it names (or all but those kept); every call in a session
renews it, and a session not renewed within its time to live ends with its leases;
a write to a tile another session holds is refused, and a board-wide call needs the
whole board (or the admin role while nobody else holds a lease). After every call
the registry's holders must be the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sidra.drivers import FailedPrecondition, InvalidArgument
from sidra.drivers.errors import LeaseHeld, ResourceExhausted, SessionClosed
from sidra.server.sessions import LeaseRegistry

TILES = 4
MAX_SESSIONS = 2
"""Open sessions per principal: small, so that the limit is reached too."""
TTL_S = 10.0
"""Every session's time to live, s."""
PRINCIPALS = ("alice", "bob", "carol")

tile_sets = st.sets(st.integers(0, TILES - 1), min_size=1, max_size=TILES).map(sorted)


@dataclass
class Modeled:
    principal: str
    deadline: float
    tiles: set[int] = field(default_factory=set)
    whole: bool = False


class Leases(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0  # the registry's clock, moved by the rule `time_passes`
        self.registry = LeaseRegistry(
            TILES, default_ttl_s=TTL_S, max_sessions=MAX_SESSIONS, clock=lambda: self.now
        )
        self.sessions: dict[str, Modeled] = {}

    def _pick(self, data: st.DataObject) -> str:
        """A session of the model, renewed (every call below renews the one it names)."""
        # In opening order: the ids are random, so sorting them would change the draw.
        session_id: str = data.draw(st.sampled_from(list(self.sessions)))
        self.sessions[session_id].deadline = self.now + TTL_S
        return session_id

    def _others(self, session_id: str | None) -> list[Modeled]:
        """Every session of the model but ``session_id`` (all of them for None)."""
        return [s for sid, s in self.sessions.items() if sid != session_id]

    @rule(principal=st.sampled_from(PRINCIPALS))
    def open(self, principal: str) -> None:
        full = sum(s.principal == principal for s in self.sessions.values()) >= MAX_SESSIONS
        try:
            view = self.registry.open(principal, 0, "")
        except ResourceExhausted:
            assert full
            return
        assert not full
        self.sessions[view.id] = Modeled(principal, self.now + TTL_S)

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), tiles=tile_sets, whole=st.booleans())
    def acquire(self, data: st.DataObject, tiles: list[int], whole: bool) -> None:
        session_id = self._pick(data)
        me = self.sessions[session_id]
        others = self._others(session_id)
        if whole:
            blocked = any(s.whole or s.tiles for s in others)
        else:
            blocked = any(s.whole or s.tiles & set(tiles) for s in others)
        try:
            view = self.registry.acquire(
                me.principal, session_id, [] if whole else tiles, whole_board=whole
            )
        except LeaseHeld:
            assert blocked
            return
        assert not blocked
        if whole:
            me.whole, me.tiles = True, set(range(TILES))
        else:
            me.tiles |= set(tiles)
        assert set(view.tiles) == me.tiles and view.whole_board == me.whole

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), tiles=tile_sets, every=st.booleans())
    def release(self, data: st.DataObject, tiles: list[int], every: bool) -> None:
        session_id = self._pick(data)
        me = self.sessions[session_id]
        try:
            ended = self.registry.release(
                me.principal, session_id, [] if every else tiles, all_tiles=every
            )
        except InvalidArgument:  # some tiles of a whole-board lease
            assert me.whole and not every
            return
        freed = set(me.tiles) if every else me.tiles & set(tiles)
        assert set(ended.tiles) == freed
        me.tiles -= freed
        me.whole = me.whole and not every

    @precondition(lambda self: self.sessions)
    @rule(data=st.data(), tiles=tile_sets)
    def narrow(self, data: st.DataObject, tiles: list[int]) -> None:
        session_id = self._pick(data)
        me = self.sessions[session_id]
        try:
            ended = self.registry.narrow(me.principal, session_id, tiles)
        except FailedPrecondition:
            assert not me.whole
            return
        assert me.whole
        assert set(ended.tiles) == set(range(TILES)) - set(tiles)
        me.whole, me.tiles = False, set(tiles)

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        session_id = self._pick(data)
        me = self.sessions.pop(session_id)
        ended = self.registry.close(me.principal, session_id)
        assert set(ended.tiles) == me.tiles

    @rule(seconds=st.floats(0.25, 1.2 * TTL_S))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        ended = {e.session.id: set(e.tiles) for e in self.registry.expire()}
        due = {sid: s for sid, s in self.sessions.items() if s.deadline <= self.now}
        assert ended == {sid: s.tiles for sid, s in due.items()}
        for session_id in due:
            del self.sessions[session_id]

    @rule(data=st.data(), tile=st.integers(0, TILES - 1), in_session=st.booleans())
    def write(self, data: st.DataObject, tile: int, in_session: bool) -> None:
        """A Program of ``tile``, in a session or with none (principal alice)."""
        session_id = self._pick(data) if in_session and self.sessions else None
        principal = self.sessions[session_id].principal if session_id else "alice"
        held_by_other = any(s.whole or tile in s.tiles for s in self._others(session_id))
        try:
            self.registry.admit("Program", tile, principal, session_id, admin=False)
        except LeaseHeld:
            assert held_by_other
            return
        assert not held_by_other

    @rule(data=st.data(), in_session=st.booleans(), admin=st.booleans())
    def board_wide(self, data: st.DataObject, in_session: bool, admin: bool) -> None:
        """An AdvanceClock: the whole board's lease, or the admin role while nobody else
        holds a lease."""
        session_id = self._pick(data) if in_session and self.sessions else None
        me = self.sessions.get(session_id or "")
        principal = me.principal if me else "root"
        others_hold = any(s.whole or s.tiles for s in self._others(session_id))
        try:
            self.registry.admit("AdvanceClock", None, principal, session_id, admin=admin)
        except LeaseHeld:
            assert not (me and me.whole) and others_hold
            return
        except FailedPrecondition:
            assert not (me and me.whole) and not others_hold and not admin
            return
        assert (me is not None and me.whole) or (admin and not others_hold)

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def call_in_a_closed_session(self, data: st.DataObject) -> None:
        """A session's id after it ended is refused, whatever the call."""
        session_id = self._pick(data)
        me = self.sessions.pop(session_id)
        self.registry.close(me.principal, session_id)
        try:
            self.registry.admit("MVM", 0, me.principal, session_id, admin=False)
        except SessionClosed:
            return
        raise AssertionError("a closed session was admitted")

    @invariant()
    def holders_are_the_models(self) -> None:
        expected = {}
        for s in self.sessions.values():
            for tile in s.tiles:
                assert tile not in expected, f"tile {tile} held twice in the model"
                expected[tile] = (s.principal, s.whole)
        held = {h.tile: (h.principal, h.whole_board) for h in self.registry.holders()}
        assert held == expected


Leases.TestCase.settings = settings(max_examples=400, stateful_step_count=40, deadline=None)
test_lease_registry_follows_the_model = Leases.TestCase
