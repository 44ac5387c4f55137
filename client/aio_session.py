"""Sessions and tile leases for :class:`~sidra.client.aio.AsyncRemoteBoard` (session.proto).

The asyncio form of :mod:`sidra.client.session`: the same session, leases and
errors; the heartbeat is a task on the running loop rather than a thread::

    async with await board.session(label="es population") as session:
        async with await session.lease([0, 1]):
            ...
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from sidra.client.errors import from_rpc_error
from sidra.client.options import checked_lease_wait, checked_tiles
from sidra.client.session import (
    HEARTBEATS_PER_TTL,
    SessionState,
    TileLease,
    heartbeat_failed,
    lease_repr,
    run_at_close,
    session_method,
    session_repr,
    session_state,
    tile_leases,
)
from sidra.drivers.errors import SessionClosed, SidraError
from sidra.hil.v1 import session_pb2 as pb

if TYPE_CHECKING:
    from sidra.client.aio import AsyncRemoteBoard

__all__ = ["AsyncLease", "AsyncSession", "call_session", "list_leases"]

log = logging.getLogger(__name__)


async def call_session(channel: grpc.aio.Channel, rpc: str, request: Any, timeout_s: float) -> Any:
    """Calls SessionService's ``rpc`` on an asyncio channel; failures raise SIDRA exceptions."""
    try:
        return await session_method(channel, rpc)(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc, rpc, timeout_s) from exc


async def list_leases(channel: grpc.aio.Channel, timeout_s: float) -> list[TileLease]:
    """Every lease on the board behind ``channel``, ascending by tile."""
    return tile_leases(await call_session(channel, "ListLeases", pb.ListLeasesRequest(), timeout_s))


class AsyncSession:
    """An open session of an :class:`AsyncRemoteBoard` (made by its ``session()``)."""

    def __init__(
        self,
        board: AsyncRemoteBoard,
        state: SessionState,
        *,
        heartbeat: bool,
        lease_as_used: bool = False,
    ) -> None:
        self.board = board
        self.state = state
        self.id = state.session_id
        self.lease_as_used = lease_as_used
        """Each tile a call of its board names is leased first (the sync client's
        :class:`~sidra.client.Session`)."""
        self._leasing = asyncio.Lock()
        self.lost: SidraError | None = None
        """Why the session ended on the server, once a heartbeat learnt it did."""
        self.at_close: list[Callable[[], None]] = []
        """As :attr:`Session.at_close <sidra.client.session.Session.at_close>`."""
        # The task holds the session weakly, as the sync client's thread: one dropped
        # unclosed with its board is collected, stops beating and expires on the server.
        period = state.ttl_s / HEARTBEATS_PER_TTL
        self._beat = (
            asyncio.create_task(_heartbeats(weakref.ref(self), period, self.id))
            if heartbeat
            else None
        )
        self._closed = False
        self._undoing: set[asyncio.Task[Any]] = set()  # releases of leases nobody took
        self._handed: set[int] = set()
        """Tiles (-1: the whole board) a lease() handed to its caller and not released
        since: a lease given up on is not undone over one of them."""

    def __repr__(self) -> str:
        return session_repr("AsyncSession", self.state, self._closed, self.lost is not None)

    async def lease(
        self, tiles: Iterable[int] = (), *, whole_board: bool = False, wait_s: float = 0.0
    ) -> AsyncLease:
        """Leases ``tiles`` (or the whole board); waits up to ``wait_s`` for tiles others hold,
        then raises :class:`~sidra.drivers.errors.LeaseHeld` naming the holder."""
        wanted, wait_s = checked_tiles(tiles), checked_lease_wait(wait_s)
        request = pb.AcquireLeaseRequest(
            session_id=self.id, tiles=wanted, whole_board=whole_board, wait_s=wait_s
        )
        # Shielded: a caller cancelled (asyncio.wait_for's timeout) after the server had
        # granted the lease never got its AsyncLease to release, and the tiles stayed
        # leased while the heartbeat kept the session alive. What was granted then is
        # released, once the answer comes.
        acquiring = asyncio.ensure_future(self._call("AcquireLease", request, wait_s))
        try:
            self.state = session_state(await asyncio.shield(acquiring))
        except asyncio.CancelledError:
            acquiring.add_done_callback(
                lambda done: self._undo(done, list(wanted), whole_board)
            )  # fmt: skip
            raise
        self._handed.update(wanted or (-1,))
        return AsyncLease(self, wanted, whole_board)

    def _undo(self, acquired: asyncio.Future[Any], tiles: list[int], whole: bool) -> None:
        """Releases what a lease whose caller was cancelled was granted: its ``tiles``, or
        with ``whole`` the whole board, but none another lease() has handed to its caller
        (before it or since) and not released."""
        if acquired.cancelled() or acquired.exception() is not None or self._closed:
            return  # not granted, or the session's close ends it anyway
        self.state = session_state(acquired.result())
        tiles = [t for t in tiles if t not in self._handed and -1 not in self._handed]
        whole = whole and not self._handed
        if not tiles and not whole:
            return
        undo = asyncio.ensure_future(self.release(tiles, all_tiles=whole))
        self._undoing.add(undo)
        undo.add_done_callback(self._undone)

    def _undone(self, release: asyncio.Task[Any]) -> None:
        self._undoing.discard(release)
        if not release.cancelled() and release.exception() is not None:
            log.warning("session %s: a lease nobody took not released: %s", self.id[:8],
                        release.exception())  # fmt: skip

    async def lease_used(self, tiles: Sequence[int]) -> None:
        """Leases those of ``tiles`` the session does not hold yet, all or none, as the
        sync client's :meth:`~sidra.client.Session.lease_used`."""
        if self.state.whole_board or all(t in self.state.tiles for t in tiles):
            return
        async with self._leasing:  # calls gathered at once ask once
            wanted = [t for t in tiles if t not in self.state.tiles]
            if wanted and not self.state.whole_board:
                await self.lease(wanted)

    async def heartbeat(self) -> SessionState:
        """Renews the session now (the task does it every ``ttl_s / 3``)."""
        request = pb.HeartbeatRequest(session_id=self.id)
        self.state = session_state(await self._call("Heartbeat", request))
        return self.state

    async def release(
        self, tiles: Iterable[int] = (), *, all_tiles: bool = False
    ) -> tuple[int, ...]:
        """Releases ``tiles`` (or every lease); returns the tiles whose cells were restored."""
        tiles = list(tiles)
        request = pb.ReleaseLeaseRequest(session_id=self.id, tiles=tiles, all=all_tiles)
        reply = await self._call("ReleaseLease", request)
        if all_tiles:
            self._handed.clear()
        else:
            self._handed.difference_update(tiles)
        self.state = session_state(reply.session)
        return tuple(reply.restored_tiles)

    async def close(self) -> tuple[int, ...]:
        """Ends the session and its leases; returns the tiles whose cells were restored.
        Closing a session the server already ended, or one closed already (its board's
        close() closes it), is not an error."""
        if self._closed:
            return ()
        self._closed = True
        if self._beat is not None:
            self._beat.cancel()
            # Waited for, not awaited: its CancelledError is the beat's; one that reaches
            # this task is its caller's and goes on (a suppress swallowed both).
            await asyncio.wait([self._beat])
        self.board._left_session(self)
        try:
            reply = await self._call("CloseSession", pb.CloseSessionRequest(session_id=self.id))
        except SessionClosed:
            return ()
        finally:
            run_at_close(self.at_close)
        return tuple(reply.restored_tiles)

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
            return
        try:  # leaving on an error: a failed close must not hide it (as the sync client)
            await self.close()
        except SidraError as closing:
            log.warning("session %s not closed: %s", self.id[:8], closing)

    async def _call(self, rpc: str, request: Any, wait_s: float = 0.0) -> Any:
        board = self.board  # a closed board's: BoardUnavailable saying so, not gRPC's words
        return await call_session(board._open_channel, rpc, request, board.timeout_s + wait_s)


async def _heartbeats(ref: weakref.ref[AsyncSession], period: float, session_id: str) -> None:
    """A session's heartbeats every ``period`` s until cancelled (its close), it ends on
    the server, or it is collected (``ref`` dead: dropped unclosed, it then expires)."""
    said = ""
    while True:
        await asyncio.sleep(period)
        session = ref()
        if session is None:
            return
        try:
            await session.heartbeat()
            said = ""
        except SessionClosed as exc:
            session.lost = exc
            log.warning("session %s ended on the server: %s", session_id[:8], exc)
            return
        except SidraError as exc:  # unreachable for now: the next beat tries again
            said = heartbeat_failed(session_id, exc, said)
        finally:
            del session  # not held while waiting


class AsyncLease:
    """Tiles (or the whole board) leased to an :class:`AsyncSession`; ``async with``."""

    def __init__(self, session: AsyncSession, tiles: tuple[int, ...], whole_board: bool) -> None:
        self.session = session
        self.tiles = tiles
        self.whole_board = whole_board
        self.restored: tuple[int, ...] = ()
        """Tiles whose perturbed cells the server restored when this lease was released."""

    def __repr__(self) -> str:
        return lease_repr("AsyncLease", self.tiles, self.whole_board, self.session.id)

    async def release(self) -> tuple[int, ...]:
        """Ends the lease; returns the tiles whose perturbed cells were restored."""
        self.restored = await self.session.release(self.tiles, all_tiles=self.whole_board)
        return self.restored

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.release()
        except SessionClosed:  # ended on the server: nothing held
            pass
        except SidraError as releasing:  # leaving on an error: it must not be hidden
            if exc is None:
                raise
            log.warning("lease of tiles %s not released: %s", list(self.tiles), releasing)
