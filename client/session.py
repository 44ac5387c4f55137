"""Sessions and tile leases from the client side (session.proto), kept alive by a thread.

    with board.session(label="spsa digits") as session:
        with session.lease([0, 1]):
            ...   # nobody else can Program, Perturb or Calibrate tiles 0 and 1

While a :class:`Session` is open, every call of its :class:`RemoteBoard` carries
the session id, so the server knows the calls come from the lease holder, and
a thread renews the session every ``ttl_s / 3``. When the server no longer
knows the session (it expired while the client was stalled, an admin closed it,
the server restarted), the next board call raises
:class:`~sidra.drivers.errors.SessionClosed`: a loop that believed it held its
tiles learns at once that it does not.
"""

from __future__ import annotations

import logging
import numbers
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from sidra.client.errors import from_rpc_error
from sidra.client.options import checked_lease_wait, checked_tiles
from sidra.drivers.errors import SessionClosed, SidraError
from sidra.drivers.types import TileUse
from sidra.hil.v1 import session_pb2 as pb

if TYPE_CHECKING:
    from sidra.client.deployments import Deployment
    from sidra.client.remote import RemoteBoard

__all__ = [
    "Caller",
    "Lease",
    "Session",
    "SessionState",
    "TileLease",
    "caller_of",
    "list_leases",
    "tiles_named",
    "session_call",
    "session_method",
    "session_state",
    "heartbeat_failed",
    "run_at_close",
    "tile_leases",
    "tile_use_of",
]

log = logging.getLogger(__name__)

_SERVICE = pb.DESCRIPTOR.services_by_name["SessionService"]
SESSION_SERVICE: str = _SERVICE.full_name

HEARTBEATS_PER_TTL = 3
"""Heartbeats per time to live: two may be lost before the session expires."""


@dataclass(frozen=True)
class SessionState:
    """A session as the server last reported it."""

    session_id: str
    principal: str
    label: str
    ttl_s: float
    """Time to live without a sign of life, s."""
    expires_in_s: float
    """Seconds from the server's answer until expiry unless renewed."""
    tiles: tuple[int, ...]
    whole_board: bool


@dataclass(frozen=True)
class TileLease:
    """One leased tile on the board (ListLeases)."""

    tile: int
    principal: str
    label: str
    whole_board: bool
    expires_in_s: float
    """Seconds until the lease expires unless its session is renewed."""
    session_id: str = ""
    """The holding session, listed to its principal and to admins (else empty):
    :meth:`RemoteBoard.close_session` takes it."""


@dataclass(frozen=True)
class Caller:
    """Who the server takes this client for (GetCaller, session.proto "Caller")."""

    principal: str
    """A name of the server's tokens file, or ``local`` on a server without ``[auth]``."""
    role: str
    """viewer, operator, programmer or admin."""
    authenticated: bool
    """Whether the server checks bearer tokens."""
    token_created_unix_s: float | None
    """When the token was made, s since the Unix epoch (None: not known, or no auth)."""
    token_expires_unix_s: float | None
    """From when the server refuses the token, s since the Unix epoch (None: never)."""
    peer: str
    """This client's connection as the server sees it (``ipv4:10.0.0.5:53122``)."""
    shared_memory_offered: bool
    """Whether the server would register shared memory for this client."""
    open_sessions: int
    """Sessions of the principal open now (all its clients')."""
    max_sessions: int
    """The most the principal may hold at once."""

    def expires_in_s(self, now_unix_s: float) -> float | None:
        """Seconds from ``now_unix_s`` until the token is refused (negative: it is
        already); None when it does not expire."""
        return None if self.token_expires_unix_s is None else self.token_expires_unix_s - now_unix_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal, "role": self.role,
            "authenticated": self.authenticated,
            "token_created_unix_s": self.token_created_unix_s,
            "token_expires_unix_s": self.token_expires_unix_s, "peer": self.peer,
            "shared_memory_offered": self.shared_memory_offered,
            "open_sessions": self.open_sessions, "max_sessions": self.max_sessions,
        }  # fmt: skip


def caller_of(reply: pb.Caller) -> Caller:
    """The caller a GetCaller answer describes (its 0 times as None)."""
    return Caller(
        reply.principal, reply.role, reply.authenticated,
        reply.token_created_unix_s or None, reply.token_expires_unix_s or None, reply.peer,
        reply.shared_memory_offered, reply.open_sessions, reply.max_sessions,
    )  # fmt: skip


def tiles_named(request: Any) -> tuple[int, ...]:
    """The tiles a board request names, each once (a sequence: its steps'); none for a
    board-wide one (GetBoardInfo, AdvanceClock)."""
    steps = getattr(request, "steps", None)
    if isinstance(steps, tuple | list):
        return tuple(dict.fromkeys(t for step in steps for t in tiles_named(step)))
    tile = getattr(request, "tile", None)
    if isinstance(tile, numbers.Integral) and not isinstance(tile, bool):
        return (int(tile),)  # numpy's integers too: a tile from an array of them
    return ()


def session_method(channel: Any, rpc: str) -> Any:
    """SessionService's ``rpc`` on ``channel`` (a grpc or grpc.aio channel)."""
    method = _SERVICE.methods_by_name[rpc]
    return channel.unary_unary(
        f"/{SESSION_SERVICE}/{rpc}",
        request_serializer=getattr(pb, method.input_type.name).SerializeToString,
        response_deserializer=getattr(pb, method.output_type.name).FromString,
    )


def session_call(channel: grpc.Channel, rpc: str, request: Any, timeout_s: float) -> Any:
    """Calls SessionService's ``rpc``; failures raise the SIDRA exception."""
    try:
        return session_method(channel, rpc)(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc, rpc, timeout_s) from exc


def session_state(message: pb.SessionState) -> SessionState:
    """The session as the server's answer describes it."""
    return SessionState(
        message.session_id,
        message.principal,
        message.label,
        message.ttl_s,
        message.expires_in_s,
        tuple(message.tiles),
        message.whole_board,
    )


def list_leases(channel: grpc.Channel, timeout_s: float = 30.0) -> list[TileLease]:
    """Every lease on the board behind ``channel``, ascending by tile."""
    return tile_leases(session_call(channel, "ListLeases", pb.ListLeasesRequest(), timeout_s))


def tile_use_of(
    leases: Iterable[TileLease], deployments: Iterable[Deployment], own_session: str | None
) -> TileUse:
    """What :meth:`RemoteBoard.tile_use` answers from the board's ``leases`` and
    ``deployments`` (the intact ones' tiles) and the client's own session (whose leases
    are its own)."""
    return TileUse(
        leased=frozenset(
            x.tile for x in leases if own_session is None or x.session_id != own_session
        ),
        deployed=frozenset(t for d in deployments if d.intact for t in d.tiles),
    )


def tile_leases(reply: pb.ListLeasesResponse) -> list[TileLease]:
    """The leases a ListLeases answer lists."""
    return [
        TileLease(x.tile, x.principal, x.label, x.whole_board, x.expires_in_s, x.session_id)
        for x in reply.leases
    ]


def heartbeat_failed(session_id: str, error: SidraError, said: str) -> str:
    """Logs a failed heartbeat as a warning when its error is not the one ``said`` last
    (a revoked token failed every beat, a warning each for as long as the program ran;
    the same failure again goes to DEBUG); returns what is said now."""
    text = f"{type(error).__name__}: {error}"
    level = logging.DEBUG if text == said else logging.WARNING
    log.log(level, "heartbeat of session %s failed (tried again until it answers): %s",
            session_id[:8], text)  # fmt: skip
    return text


def session_repr(kind: str, state: SessionState, closed: bool, lost: bool) -> str:
    """What a session says of itself in a REPL or a log: ``<Session 3f9c01aa 'spsa digits'
    of alice: tiles [0, 1], ttl 30 s, open>`` (the server's last report)."""
    held = "the whole board" if state.whole_board else f"tiles {list(state.tiles)}"
    status = "closed" if closed else "ended on the server" if lost else "open"
    return (
        f"<{kind} {state.session_id[:8]} {state.label!r} of {state.principal}: {held}, "
        f"ttl {state.ttl_s:g} s, {status}>"
    )


def lease_repr(kind: str, tiles: Sequence[int], whole_board: bool, session_id: str) -> str:
    """``<Lease tiles [1] of session 3f9c01aa>``."""
    held = "the whole board" if whole_board else f"tiles {list(tiles)}"
    return f"<{kind} {held} of session {session_id[:8]}>"


def board_repr(kind: str, address: str | None, session_id: str | None, closed: bool) -> str:
    """``<RemoteBoard 127.0.0.1:50051, session 3f9c01aa>`` (or ``no session``, ``closed``)."""
    address = address or "over a given channel"
    if closed:
        return f"<{kind} {address}, closed>"
    return f"<{kind} {address}, " + (
        f"session {session_id[:8]}>" if session_id is not None else "no session>"
    )


def run_at_close(actions: list[Callable[[], None]]) -> None:
    """Runs (and forgets) what a closing session was to do: each once, even if closing
    it again."""
    while actions:
        actions.pop()()


class Session:
    """An open session of a :class:`RemoteBoard` (made by :meth:`RemoteBoard.session`).

    ``lease_as_used``: every call of its board that names a tile the session does not
    hold leases that tile first (AcquireLease, no wait): the tiles a run uses are its
    own from their first use to the session's end, without knowing them beforehand."""

    def __init__(
        self,
        board: RemoteBoard,
        state: SessionState,
        *,
        heartbeat: bool,
        lease_as_used: bool = False,
    ) -> None:
        self.board = board
        self.state = state
        self.id = state.session_id
        self.lease_as_used = lease_as_used
        self._leasing = threading.Lock()
        self.lost: SidraError | None = None
        """Why the session ended on the server, once a heartbeat learnt it did."""
        self.at_close: list[Callable[[], None]] = []
        """Run once the session is closed, whatever the server answered: the unlinking
        of the shared-memory objects registered in it (the registrations end with it)."""
        self._stop = threading.Event()
        self._closed = False
        self._beat: threading.Thread | None = None
        if heartbeat:
            # The thread holds the session weakly: one dropped unclosed with its board (a
            # notebook's cell run again) stopped beating never, and its principal ran out of
            # sessions; now it is collected, stops beating, and the server lets it expire.
            period = self.state.ttl_s / HEARTBEATS_PER_TTL
            self._beat = threading.Thread(
                target=_heartbeats, args=(weakref.ref(self), self._stop, period, self.id),
                name=f"sidra-session-{self.id[:8]}", daemon=True,
            )  # fmt: skip
            weakref.finalize(self, self._stop.set)
            self._beat.start()

    def lease(
        self, tiles: Iterable[int] = (), *, whole_board: bool = False, wait_s: float = 0.0
    ) -> Lease:
        """Leases ``tiles`` (or the whole board) until the returned :class:`Lease` is
        released or left as a context manager; waits up to ``wait_s`` for tiles others
        hold, then raises :class:`~sidra.drivers.errors.LeaseHeld` naming the holder."""
        wanted, wait_s = checked_tiles(tiles), checked_lease_wait(wait_s)
        request = pb.AcquireLeaseRequest(
            session_id=self.id, tiles=wanted, whole_board=whole_board, wait_s=wait_s
        )
        self.state = session_state(self._call("AcquireLease", request, wait_s))
        return Lease(self, wanted, whole_board)

    def __repr__(self) -> str:
        return session_repr("Session", self.state, self._closed, self.lost is not None)

    def lease_used(self, tiles: Sequence[int]) -> None:
        """Leases those of ``tiles`` the session does not hold yet, all or none; a tile
        another session holds raises :class:`~sidra.drivers.errors.LeaseHeld` naming its
        holder. Nothing is asked when it holds them all (the board's every call)."""
        if self.state.whole_board or all(t in self.state.tiles for t in tiles):
            return
        with self._leasing:  # calls from several threads ask once
            wanted = [t for t in tiles if t not in self.state.tiles]
            if wanted and not self.state.whole_board:
                self.lease(wanted)

    def heartbeat(self) -> SessionState:
        """Renews the session now (the thread does it every ``ttl_s / 3``)."""
        self.state = session_state(self._call("Heartbeat", pb.HeartbeatRequest(session_id=self.id)))
        return self.state

    def release(self, tiles: Iterable[int] = (), *, all_tiles: bool = False) -> tuple[int, ...]:
        """Releases ``tiles`` (or every lease); returns the tiles whose cells were restored."""
        request = pb.ReleaseLeaseRequest(session_id=self.id, tiles=list(tiles), all=all_tiles)
        reply = self._call("ReleaseLease", request)
        self.state = session_state(reply.session)
        return tuple(reply.restored_tiles)

    def close(self) -> tuple[int, ...]:
        """Ends the session and its leases; returns the tiles whose cells were restored.
        Closing a session the server already ended, or one closed already (its board's
        close() closes it), is not an error."""
        if self._closed:
            return ()
        self._closed = True
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(timeout=5)
        self.board._left_session(self)
        try:
            reply = self._call("CloseSession", pb.CloseSessionRequest(session_id=self.id))
        except SessionClosed:
            return ()
        finally:
            run_at_close(self.at_close)
        return tuple(reply.restored_tiles)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # Leaving on an error (often the server gone): a failed close must not hide it.
        # The session's leases end with its time to live anyway.
        try:
            self.close()
        except SidraError as closing:
            log.warning("session %s not closed: %s", self.id[:8], closing)

    def _call(self, rpc: str, request: Any, wait_s: float = 0.0) -> Any:
        board = self.board  # a closed board's: BoardUnavailable saying so, not gRPC's words
        return session_call(board._open_channel, rpc, request, board.timeout_s + wait_s)


def _heartbeats(
    ref: weakref.ref[Session], stop: threading.Event, period: float, session_id: str
) -> None:
    """A session's heartbeats every ``period`` s until ``stop``, it ends on the server, or
    it is collected (``ref`` dead: dropped unclosed, it then expires on the server)."""
    said = ""
    while not stop.wait(period):
        session = ref()
        if session is None:
            return
        try:
            session.heartbeat()
            said = ""
        except SessionClosed as exc:
            session.lost = exc
            log.warning("session %s ended on the server: %s", session_id[:8], exc)
            return
        except SidraError as exc:  # unreachable for now: the next beat tries again
            said = heartbeat_failed(session_id, exc, said)
        finally:
            del session  # not held while waiting


class Lease:
    """Tiles (or the whole board) leased to a :class:`Session`; a context manager."""

    def __init__(self, session: Session, tiles: Sequence[int], whole_board: bool) -> None:
        self.session = session
        self.tiles = tuple(tiles)
        self.whole_board = whole_board
        self.restored: tuple[int, ...] = ()
        """Tiles whose perturbed cells the server restored when this lease was released."""

    def __repr__(self) -> str:
        return lease_repr("Lease", self.tiles, self.whole_board, self.session.id)

    def release(self) -> tuple[int, ...]:
        """Ends the lease; returns the tiles whose perturbed cells were restored."""
        self.restored = self.session.release(self.tiles, all_tiles=self.whole_board)
        return self.restored

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A session that ended on the server holds nothing any more; leaving on an
        # error, a failed release must not hide it (the lease ends with its session).
        try:
            self.release()
        except SessionClosed:
            pass
        except SidraError as releasing:
            if exc is None:
                raise
            log.warning("lease of tiles %s not released: %s", list(self.tiles), releasing)
