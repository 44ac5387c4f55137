"""Who holds which tiles: sessions, their leases, and whether a call may touch a tile.

:class:`LeaseRegistry` is bookkeeping only; it never touches the board. The
:class:`~sidra.server.sessions.keeper.LeaseKeeper` calls it under the board's
turn where order matters (admitting a call, ending a lease) so that no call can
slip between a lease's end and the restore of its tiles. Time comes from an
injectable monotonic clock, so expiry is tested without sleeping.

What each RPC is to a lease (``LEASE_ACCESS``), session.proto "Leases":
a write (Program, Perturb, Calibrate) of a tile leased by another session is
refused; a read is served unless reads are exclusive; a board-wide operation
(AdvanceClock) needs the whole board, or the admin role while nobody else
holds a lease. StreamService RPCs (stream.proto) have no entry: each streamed pass
and each chunked transfer is admitted as the BoardService RPC it carries.
"""

from __future__ import annotations

import enum
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sidra.drivers.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LeaseHeld,
    OutOfRange,
    ResourceExhausted,
    SessionClosed,
)
from sidra.drivers.types import tiles_text

__all__ = [
    "CALLER_CHECK_S",
    "LABEL_LIMIT",
    "LEASE_ACCESS",
    "MIN_TTL_S",
    "WAIT_LIMIT_S",
    "Access",
    "Ended",
    "LeaseRegistry",
    "Session",
    "SessionView",
    "TileHolder",
]

LABEL_LIMIT = 100
"""Most characters of a session label."""

MIN_TTL_S = 1.0
"""Shortest session time to live, s: a client heartbeats three times per ttl_s."""

WAIT_LIMIT_S = 60.0
"""Longest AcquireLease wait for held tiles, s (a gRPC deadline bounds it too)."""

CALLER_CHECK_S = 0.1
"""How often a waiting AcquireLease looks whether its caller still waits, s."""


CLOSED_KEPT = 1024
"""How many sessions an admin closed the registry remembers, to tell their owners."""


class Access(enum.Enum):
    """What an RPC does to the tile it names, as far as leases go."""

    NONE = "none"
    """Touches no tile (GetBoardInfo)."""
    READ = "read"
    """Reads a tile, leaves it as it is."""
    WRITE = "write"
    """Changes a tile's conductances or calibration."""
    BOARD = "board"
    """Acts on every tile at once."""


LEASE_ACCESS: Mapping[str, Access] = MappingProxyType(
    {
        "GetBoardInfo": Access.NONE,
        "MVM": Access.READ,
        "TransposeMVM": Access.READ,
        "ReadConductance": Access.READ,
        "ReadWriteCounts": Access.READ,
        "Program": Access.WRITE,
        "Perturb": Access.WRITE,
        "Calibrate": Access.WRITE,
        "AdvanceClock": Access.BOARD,
        "PerturbedMVM": Access.WRITE,
        "RunSequence": Access.NONE,  # admitted step by step, each as its own RPC
    }
)
"""Each BoardService RPC's access, keyed by the RPC names of
``sidra.drivers.operations.OPERATIONS`` (a test checks that every RPC has one)."""


@dataclass
class Session:
    """One open session (mutable; the registry's lock guards it)."""

    id: str
    principal: str
    label: str
    ttl_s: float
    deadline: float
    """Clock reading at which the session expires unless renewed, s."""
    tiles: set[int] = field(default_factory=set)
    whole_board: bool = False

    def holds(self, tile: int) -> bool:
        return self.whole_board or tile in self.tiles

    def describe(self, now: float) -> str:
        """ "alice's session 'spsa run' 3f9c01aa (expires in 8.2 s unless renewed)": the
        id's start tells apart one principal's unlabelled sessions (every local client is
        "local"), and is what ``sidra leases --close`` takes."""
        label = f" {self.label!r}" if self.label else ""
        return (
            f"{self.principal}'s session{label} {self.id[:8]} "
            f"(expires in {max(self.deadline - now, 0.0):.1f} s unless renewed)"
        )


LEASES_HINT = "sidra leases, or a client's leases(), shows every lease"
WAIT_HINT = (
    "lease with wait_s to wait for it, or ask its holder to release it (an admin may "
    f"close the session: sidra leases --close ID); {LEASES_HINT}"
)
"""What a refused lease can do next, beside who holds it."""


@dataclass(frozen=True)
class SessionView:
    """A session as a response reports it."""

    id: str
    principal: str
    label: str
    ttl_s: float
    expires_in_s: float
    tiles: tuple[int, ...]
    whole_board: bool


@dataclass(frozen=True)
class Ended:
    """Leases that ended: the session that held them and the tiles they covered."""

    session: SessionView
    tiles: tuple[int, ...]


@dataclass(eq=False)
class _Waiter:
    """One waiting AcquireLease (compared by identity: two may want the same tiles)."""

    tiles: set[int]


@dataclass(frozen=True)
class TileHolder:
    """One leased tile, for ListLeases."""

    tile: int
    principal: str
    label: str
    whole_board: bool
    expires_in_s: float
    session_id: str


class LeaseRegistry:
    """Sessions and leases of one board of ``tile_count`` tiles.

    ``default_ttl_s`` / ``max_ttl_s``: session time to live when a client asks
    for 0, and the most it may ask for (s). ``max_sessions``: open sessions per
    principal. ``exclusive_reads``: refuse reads of tiles leased by others too.
    """

    def __init__(
        self,
        tile_count: int,
        *,
        default_ttl_s: float = 30.0,
        max_ttl_s: float = 3600.0,
        max_sessions: int = 8,
        exclusive_reads: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tile_count = tile_count
        self.default_ttl_s = default_ttl_s
        self.max_ttl_s = max_ttl_s
        self.max_sessions = max_sessions
        self.exclusive_reads = exclusive_reads
        self.clock = clock
        self._changed = threading.Condition()
        self._sessions: dict[str, Session] = {}
        self._closed_by_admin: dict[str, tuple[str, str]] = {}
        """Sessions an admin closed, the latest :data:`CLOSED_KEPT`: id -> (owner, admin),
        so that the owner's next call says who ended it rather than "expired"."""
        self._holder: dict[int, Session] = {}  # tile -> session holding it
        self._whole: Session | None = None  # the session holding the whole board
        # Tiles each waiting AcquireLease asks for, oldest first: it goes before any
        # later one that wants one of the same tiles.
        self._waiters: deque[_Waiter] = deque()

    # -- sessions ------------------------------------------------------------------

    def open(self, principal: str, ttl_s: float, label: str) -> SessionView:
        """A new session of ``principal``; ttl_s 0 takes the default."""
        ttl = self._checked_ttl(ttl_s)
        _check_label(label)
        with self._changed:
            now = self.clock()
            mine = sum(1 for s in self._sessions.values() if s.principal == principal)
            if mine >= self.max_sessions:
                raise ResourceExhausted(
                    "sessions",
                    f"{mine + 1} open sessions of {principal!r}",
                    f"at most {self.max_sessions} per principal ([leases] "
                    "max_sessions_per_principal); close one first",
                )
            session = Session(secrets.token_hex(16), principal, label, ttl, now + ttl)
            self._sessions[session.id] = session
            return _view(session, now)

    def renew(self, principal: str, session_id: str) -> SessionView:
        """Heartbeat: the session lasts ttl_s from now."""
        with self._changed:
            now = self.clock()
            return _view(self._renewed(principal, session_id, now), now)

    def close(self, principal: str, session_id: str, *, admin: bool = False) -> Ended:
        """Ends a session and its leases; ``admin`` may end anyone's."""
        with self._changed:
            session = self._sessions.get(session_id) if admin else None
            if session is None:
                try:
                    session = self._renewed(principal, session_id, self.clock())
                except SessionClosed as exc:  # whose it is, if anyone's, is not told
                    if admin:  # an admin may close any: this id names none open
                        raise
                    raise SessionClosed(
                        f"{exc}; closing another principal's session needs the admin role"
                    ) from None
            ended = self._end(session, all_tiles=True)
            del self._sessions[session.id]
            if session.principal != principal:  # an admin's close of another's session
                self._closed_by_admin[session.id] = (session.principal, principal)
                while len(self._closed_by_admin) > CLOSED_KEPT:
                    del self._closed_by_admin[next(iter(self._closed_by_admin))]
            return ended

    def expire(self) -> list[Ended]:
        """Ends every session past its deadline; what their leases covered."""
        with self._changed:
            now = self.clock()
            due = [s for s in self._sessions.values() if s.deadline <= now]
            ended = []
            for session in due:
                ended.append(self._end(session, all_tiles=True))
                del self._sessions[session.id]
            return ended

    def next_deadline(self) -> float | None:
        """The earliest session deadline (clock reading, s), None with no session."""
        with self._changed:
            return min((s.deadline for s in self._sessions.values()), default=None)

    def has_sessions(self) -> bool:
        """True while any session is open. Read without the lock: a session opened at
        the same moment holds no lease yet, and a lease is granted only after the
        calls admitted before it have finished (LeaseKeeper.acquire)."""
        return bool(self._sessions)

    def open_sessions(self) -> int:
        with self._changed:
            return len(self._sessions)

    def sessions_of(self, principal: str) -> int:
        """Sessions of ``principal`` open now (past their deadline: not counted)."""
        with self._changed:
            now = self.clock()
            return sum(
                1 for s in self._sessions.values() if s.principal == principal and s.deadline > now
            )

    # -- leases --------------------------------------------------------------------

    def acquire(
        self,
        principal: str,
        session_id: str,
        tiles: Iterable[int],
        whole_board: bool,
        wait_s: float = 0.0,
        wanted: Callable[[], bool] | None = None,
    ) -> SessionView:
        """Leases ``tiles`` (or the whole board) to the session: all or none.

        Waits up to ``wait_s`` for tiles held by others, in the order callers asked;
        then raises :class:`LeaseHeld` naming the holder. ``wanted``: whether the caller
        still waits for the answer (its RPC active), asked while waiting and before the
        grant: a caller that gave up (its deadline passed) is granted nothing, and
        :class:`DeadlineExceeded` is raised instead.
        """
        tiles_wanted = self._checked_tiles(list(tiles), whole_board)
        wait = _checked_wait(wait_s)
        want = _Waiter(set(range(self.tile_count)) if whole_board else set(tiles_wanted))

        def caller_gone() -> bool:
            return wanted is not None and not wanted()

        with self._changed:
            start = self.clock()
            self._waiters.append(want)
            try:
                while True:
                    now = self.clock()
                    session = self._renewed(principal, session_id, now)
                    blocker = self._blocker(session, tiles_wanted, whole_board)
                    if caller_gone():
                        raise DeadlineExceeded(
                            "AcquireLease: the caller stopped waiting for the answer (its "
                            "deadline passed, or it was cancelled): nothing was leased"
                        )
                    if blocker is None and not self._queued_before(want):
                        break
                    if now >= start + wait:
                        raise self._held(blocker or "an earlier AcquireLease", tiles_wanted, now)
                    # A blocker's expiry frees its tiles without a notify: wake by then
                    # (and now and then to see whether the caller still waits).
                    until = start + wait
                    if blocker is not None:
                        until = min(until, blocker.deadline)
                    if wanted is not None:
                        until = min(until, now + CALLER_CHECK_S)
                    self._changed.wait(max(until - now, 0.001))
                if whole_board:
                    session.whole_board = True
                    session.tiles = set(want.tiles)
                    self._whole = session
                for tile in tiles_wanted:
                    session.tiles.add(tile)
                    self._holder[tile] = session
                return _view(session, now)
            finally:
                self._waiters.remove(want)
                self._changed.notify_all()

    def release(
        self, principal: str, session_id: str, tiles: Iterable[int], all_tiles: bool
    ) -> Ended:
        """Ends some (``tiles``) or all of a session's leases."""
        with self._changed:
            session = self._renewed(principal, session_id, self.clock())
            asked = list(tiles)
            if asked and session.whole_board and not all_tiles:
                raise InvalidArgument(
                    "tiles", asked, "none while the session leases the whole board "
                    "(release it whole, with all)",
                )  # fmt: skip
            if not all_tiles:
                self._checked_tiles(asked, whole_board=False, allow_empty=True)
            return self._end(session, all_tiles=all_tiles, tiles=set(asked))

    def narrow(self, principal: str, session_id: str, tiles: Iterable[int]) -> Ended:
        """A session leasing the whole board keeps ``tiles`` only; the others are freed
        (what a job holds once the part of it that needed the whole board is done)."""
        with self._changed:
            session = self._renewed(principal, session_id, self.clock())
            kept = self._checked_tiles(list(tiles), whole_board=False)
            if not session.whole_board:
                raise FailedPrecondition(
                    f"{session.describe(self.clock())} leases {tiles_text(sorted(session.tiles))}, "
                    "not the whole board: release the tiles it no longer needs"
                )
            self._whole = None
            session.whole_board = False
            for tile in kept:
                self._holder[tile] = session
            # As a release of the rest (tiles leased before the whole board included).
            return self._end(session, all_tiles=False, tiles=session.tiles - set(kept))

    def holders(self) -> list[TileHolder]:
        """Every leased tile, ascending."""
        with self._changed:
            now = self.clock()
            held = dict(self._holder)
            if self._whole is not None:
                held |= dict.fromkeys(range(self.tile_count), self._whole)
            return [
                TileHolder(
                    tile, s.principal, s.label, s.whole_board, max(s.deadline - now, 0.0), s.id
                )
                for tile, s in sorted(held.items())
            ]

    # -- admission of board calls --------------------------------------------------

    def admit(
        self,
        rpc: str,
        tile: int | None,
        principal: str,
        session_id: str | None,
        *,
        admin: bool,
    ) -> None:
        """Raises unless a call of ``rpc`` on ``tile`` may run now (session.proto "Leases").

        A call naming a session must name an open one of its principal; it renews it.
        """
        access = LEASE_ACCESS.get(rpc, Access.BOARD)
        with self._changed:
            now = self.clock()
            own = self._renewed(principal, session_id, now) if session_id else None
            if access is Access.NONE or (access is Access.READ and not self.exclusive_reads):
                return
            if access is Access.BOARD:
                self._admit_board_wide(rpc, own, admin, now)
                return
            if tile is None or not 0 <= tile < self.tile_count:
                return  # the board names a bad tile itself
            holder = self._whole or self._holder.get(tile)
            if holder is not None and holder is not own:
                what = "writes" if access is Access.WRITE else "reads"
                raise LeaseHeld(
                    f"{rpc} {what} tile {tile}, which is leased to {holder.describe(now)}; "
                    f"{'this call carries no session' if own is None else 'not to this session'}"
                    f" ({LEASES_HINT})"
                )

    def _admit_board_wide(self, rpc: str, own: Session | None, admin: bool, now: float) -> None:
        if own is not None and own.whole_board:
            return
        others = {s.id: s for s in self._holder.values() if s is not own}
        if self._whole is not None and self._whole is not own:
            others[self._whole.id] = self._whole
        if others:
            named = "; ".join(s.describe(now) for s in others.values())
            raise LeaseHeld(f"{rpc} acts on every tile, and other sessions hold leases: {named}")
        if not admin:
            raise FailedPrecondition(
                f"{rpc} acts on every tile: it needs a lease of the whole board "
                "(AcquireLease with whole_board) or the admin role"
            )

    # -- inside the lock -----------------------------------------------------------

    def _renewed(self, principal: str, session_id: str | None, now: float) -> Session:
        session = self._sessions.get(session_id or "")
        if session is None or session.principal != principal or session.deadline <= now:
            owner, admin = self._closed_by_admin.get(session_id or "", ("", ""))
            if owner == principal:  # told to its owner only
                raise SessionClosed(
                    f"session {str(session_id)[:40]!r} of {principal!r} was closed by admin "
                    f"{admin!r} (its leases ended with it): open a new one"
                )
            raise SessionClosed(
                f"session {str(session_id)[:40]!r} is not an open session of {principal!r} "
                "(it expired, was closed, or the server restarted): open a new one"
            )
        session.deadline = now + session.ttl_s
        return session

    def _blocker(self, session: Session, wanted: list[int], whole_board: bool) -> Session | None:
        """Another session holding what ``session`` asks for, if any."""
        if self._whole is not None and self._whole is not session:
            return self._whole
        if whole_board:
            return next((s for s in self._holder.values() if s is not session), None)
        return next(
            (s for t in wanted if (s := self._holder.get(t)) is not None and s is not session),
            None,
        )

    def _queued_before(self, want: _Waiter) -> bool:
        """True when an earlier waiting AcquireLease wants one of the tiles ``want`` wants."""
        for earlier in self._waiters:
            if earlier is want:
                return False
            if earlier.tiles & want.tiles:
                return True
        return False

    def _held(self, blocker: Session | str, wanted: list[int], now: float) -> LeaseHeld:
        asked = tiles_text(wanted, whole_board=not wanted)
        who = blocker if isinstance(blocker, str) else blocker.describe(now)
        if isinstance(blocker, Session) and wanted and blocker is not self._whole:
            # Which of them: "cannot lease tiles 0, 2, 3: held by carol's session" sent
            # its reader to look for carol on three tiles when she held one.
            taken = [t for t in wanted if self._holder.get(t) is blocker]
            if 0 < len(taken) < len(wanted):
                return LeaseHeld(
                    f"cannot lease {asked}: {tiles_text(taken)} held by {who}; {WAIT_HINT}"
                )
        return LeaseHeld(f"cannot lease {asked}: held by {who}; {WAIT_HINT}")

    def _end(self, session: Session, *, all_tiles: bool, tiles: Iterable[int] = ()) -> Ended:
        now = self.clock()
        if all_tiles:
            freed = set(session.tiles)
            if self._whole is session:
                self._whole = None
            session.whole_board = False
        else:
            freed = set(tiles) & session.tiles
        for tile in freed:
            if self._holder.get(tile) is session:
                del self._holder[tile]
        session.tiles -= freed
        self._changed.notify_all()
        return Ended(_view(session, now), tuple(sorted(freed)))

    def _checked_ttl(self, ttl_s: float) -> float:
        allowed = (
            f"0 (the default, {self.default_ttl_s:g} s) or {MIN_TTL_S:g} .. {self.max_ttl_s:g} s"
        )
        if not math.isfinite(ttl_s):
            raise InvalidArgument("ttl_s", ttl_s, allowed)
        if ttl_s == 0:
            return self.default_ttl_s
        if not MIN_TTL_S <= ttl_s <= self.max_ttl_s:
            raise OutOfRange("ttl_s", ttl_s, allowed)
        return float(ttl_s)

    def _checked_tiles(
        self, tiles: list[int], whole_board: bool, *, allow_empty: bool = False
    ) -> list[int]:
        allowed = f"distinct tiles in 0 .. {self.tile_count - 1} (tile_count)"
        if whole_board:
            if tiles:
                raise InvalidArgument(
                    "tiles", tiles, "none with whole_board (it covers every tile)"
                )
            return []
        if not tiles and not allow_empty:
            raise InvalidArgument("tiles", tiles, f"at least one tile, or whole_board; {allowed}")
        if len(set(tiles)) != len(tiles) or any(not 0 <= t < self.tile_count for t in tiles):
            raise OutOfRange("tiles", tiles, allowed)
        return sorted(tiles)


def _check_label(label: str) -> None:
    if len(label) > LABEL_LIMIT or not label.isprintable():
        raise InvalidArgument("label", label, f"at most {LABEL_LIMIT} printable characters")


def _checked_wait(wait_s: float) -> float:
    allowed = f"0 .. {WAIT_LIMIT_S:g} s"
    if not math.isfinite(wait_s):
        raise InvalidArgument("wait_s", wait_s, allowed)
    if not 0 <= wait_s <= WAIT_LIMIT_S:
        raise OutOfRange("wait_s", wait_s, allowed)
    return float(wait_s)


def _view(session: Session, now: float) -> SessionView:
    return SessionView(
        session.id,
        session.principal,
        session.label,
        session.ttl_s,
        max(session.deadline - now, 0.0),
        tuple(sorted(session.tiles)),
        session.whole_board,
    )
