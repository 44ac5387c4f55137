"""Leases over the board: admitting calls, ending leases, restoring what they left.

:class:`LeaseKeeper` joins the :class:`~sidra.server.sessions.registry.LeaseRegistry`
(who holds what) to the board and its turns (``sidra.server.turns``). Order is
what makes leases safe, so every step that changes who may touch a tile runs
inside a board turn, where no call is running:

- a call is admitted (``admit``) inside its own turn, just before it runs;
- a lease ends (release, close, expiry) inside a turn that also restores the
  cells it left perturbed, so the next call on the tile finds them restored;
- a lease is granted outside any turn (it may wait for tiles), then the keeper
  takes one empty turn, so every call admitted before the grant has finished
  when AcquireLease answers.

A restore the board refuses (link down) is kept pending and retried before the
next call that touches the tile, which fails with the board's error meanwhile:
a tile is never handed on perturbed. A board that restarted since its cells were
perturbed has nothing left to restore (the restart reset them with the rest of its
state): no restore is made, pending or not, and none is counted as failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sidra.drivers import Board, BoardReset, OutOfRange, Region, SidraError
from sidra.drivers.errors import LeaseHeld
from sidra.drivers.requests import PerturbMode, PerturbRequest, Request
from sidra.server.sessions.perturbed import PerturbedCells
from sidra.server.sessions.registry import (
    LEASE_ACCESS,
    Access,
    Ended,
    LeaseRegistry,
    SessionView,
)
from sidra.server.turns import BoardTurns

__all__ = ["LEASE_EVENTS", "EXPIRY_PRINCIPAL", "LeaseEnd", "LeaseKeeper"]

log = logging.getLogger(__name__)

EXPIRY_PRINCIPAL = "sidra:lease-expiry"
"""Whose turn the expiry of sessions takes on the board (not a token name: it has a colon)."""

LEASE_EVENTS = (
    "opened", "renewed", "granted", "refused", "released", "closed", "expired",
    "restored", "restore_failed",
)  # fmt: skip
"""What the keeper reports to its ``on_event`` listener (the metrics count them)."""

EventListener = Callable[[str], None]

WaitListener = Callable[[str, float], None]
"""Told how each AcquireLease ended ("granted" or "refused") and how long it waited, s."""


@dataclass(frozen=True)
class LeaseEnd:
    """What ending leases did: the tiles freed and those whose cells were restored."""

    ended: Ended
    restored: tuple[int, ...]


def _describe_session(session: SessionView) -> str:
    """``session 'spsa digits' 3f9c01aa of alice``: its label (quoted: it may hold spaces),
    the start of its id (what ``sidra leases --close`` takes) and its principal."""
    label = f"{session.label!r} " if session.label else ""
    return f"session {label}{session.id[:8]} of {session.principal}"


def _what_ended(end: LeaseEnd) -> str:
    """The tiles an ended session freed, and those whose perturbed cells were restored."""
    if not end.ended.tiles:
        return "it leased no tile"
    restored = ", ".join(map(str, end.restored)) if end.restored else "none"
    return (
        f"tiles {', '.join(map(str, end.ended.tiles))} released; perturbed cells restored "
        f"on tiles: {restored}"
    )


class LeaseKeeper:
    """Sessions and leases of ``board``, whose calls take ``turns``."""

    def __init__(
        self,
        board: Board,
        turns: BoardTurns,
        registry: LeaseRegistry,
        *,
        on_event: EventListener | None = None,
        on_wait: WaitListener | None = None,
    ) -> None:
        self.board = board
        self.turns = turns
        self.registry = registry
        self.perturbed = PerturbedCells(board.info, lambda: board.instance_id)
        self.on_event = on_event or (lambda event: None)
        self.on_wait = on_wait or (lambda outcome, seconds: None)
        self.session_ended: list[Callable[[str], None]] = []
        """Called with the id of every session that ends (closed or expired): what lives
        as long as a session (shared-memory registrations) ends with it."""
        self._pending: set[int] = set()  # tiles whose restore the board refused
        self._stop = threading.Event()
        self._reaper_lock = threading.Lock()
        self._reaper: threading.Thread | None = None

    # -- board calls (the servicer calls these inside the call's turn) --------------

    def admit(
        self, rpc: str, request: Request, principal: str, session_id: str | None, *, admin: bool
    ) -> None:
        """Raises unless ``request`` may run now; ends due sessions first."""
        if (
            session_id is None
            and not self._pending
            and not self.registry.has_sessions()
            and LEASE_ACCESS.get(rpc) is not Access.BOARD  # that one needs a role check too
        ):
            return  # no session, no lease, nothing to restore: the usual case, on every call
        self._expire_due()
        tile = getattr(request, "tile", None)
        tile = tile if isinstance(tile, int) else None
        if self._pending:
            self._retry_pending(self._pending if tile is None else {tile} & self._pending)
        try:
            self.registry.admit(rpc, tile, principal, session_id, admin=admin)
        except SidraError:
            self.on_event("refused")
            raise

    def ran(self, request: Request) -> None:
        """``request`` succeeded on the board: note the cells it perturbed or restored."""
        self.perturbed.ran(request)

    # -- SessionService ------------------------------------------------------------

    def open(self, principal: str, ttl_s: float, label: str) -> SessionView:
        view = self.registry.open(principal, ttl_s, label)
        self._watch_expiry()
        self.on_event("opened")
        return view

    def renew(self, principal: str, session_id: str) -> SessionView:
        view = self.registry.renew(principal, session_id)
        self.on_event("renewed")
        return view

    def acquire(
        self,
        principal: str,
        session_id: str,
        tiles: Iterable[int],
        whole_board: bool,
        wait_s: float,
        wanted: Callable[[], bool] | None = None,
    ) -> SessionView:
        """Leases ``tiles`` (LeaseRegistry.acquire; ``wanted``: whether the caller still
        waits for the answer)."""
        asked = time.monotonic()
        try:
            view = self.registry.acquire(principal, session_id, tiles, whole_board, wait_s, wanted)
        except SidraError as exc:
            self.on_event("refused")
            if isinstance(exc, LeaseHeld):  # refused for others' tiles, not a bad request
                self.on_wait("refused", time.monotonic() - asked)
            raise
        self.on_wait("granted", time.monotonic() - asked)
        with self.turns.turn(principal):
            pass  # every call admitted before the grant has now finished
        self.on_event("granted")
        return view

    def release(
        self, principal: str, session_id: str, tiles: Iterable[int], all_tiles: bool
    ) -> LeaseEnd:
        end = self._restoring(
            principal, lambda: self.registry.release(principal, session_id, tiles, all_tiles)
        )
        self.on_event("released")
        return end

    def narrow(self, principal: str, session_id: str, tiles: Iterable[int]) -> LeaseEnd:
        """A whole-board lease narrowed to ``tiles``; the freed tiles restored, as on
        release."""
        end = self._restoring(principal, lambda: self.registry.narrow(principal, session_id, tiles))
        self.on_event("released")
        return end

    def close(self, principal: str, session_id: str, *, admin: bool) -> LeaseEnd:
        end = self._restoring(
            principal, lambda: self.registry.close(principal, session_id, admin=admin)
        )
        session = end.ended.session
        if session.principal != principal:  # an admin's close of another's: say who did
            log.warning(
                "%s closed by %s (admin); %s", _describe_session(session), principal,
                _what_ended(end),
            )  # fmt: skip
        self._ended(session.id)
        self.on_event("closed")
        return end

    # -- expiry --------------------------------------------------------------------

    def expire(self) -> list[LeaseEnd]:
        """Ends every session past its deadline (in a turn of its own) and restores."""
        with self.turns.turn(EXPIRY_PRINCIPAL):
            return self._expire_due()

    def stop(self) -> None:
        """Stops the expiry thread (sessions then end only when a call finds them due)."""
        self._stop.set()
        with self._reaper_lock:
            reaper = self._reaper
        if reaper is not None:
            reaper.join(timeout=5)

    def _watch_expiry(self) -> None:
        """Makes sure a thread ends sessions when they expire. It runs only while
        sessions are open, so a server nobody leases from keeps no thread for it."""
        with self._reaper_lock:
            if self._reaper is None and not self._stop.is_set():
                self._reaper = threading.Thread(
                    target=self._reap, name="sidra-lease-expiry", daemon=True
                )
                self._reaper.start()

    def _reap(self) -> None:
        # Sessions last at least MIN_TTL_S (1 s), so waking at least once a second
        # also catches a session renewed or opened while this thread slept.
        while True:
            with self._reaper_lock:
                deadline = self.registry.next_deadline()
                if deadline is None or self._stop.is_set():
                    self._reaper = None  # the next OpenSession starts another
                    return
            wait = min(max(deadline - self.registry.clock(), 0.0), 1.0)
            if self._stop.wait(wait):
                continue
            if self.registry.clock() >= deadline:
                try:
                    self.expire()
                except Exception:  # the thread must outlive any one failure
                    log.exception("ending expired sessions failed")
                    time.sleep(0.1)

    def _expire_due(self) -> list[LeaseEnd]:
        ends = []
        for ended in self.registry.expire():
            session = ended.session
            self.on_event("expired")
            end = LeaseEnd(ended, self._restore(ended.tiles))
            log.info(
                "%s expired (no sign of life for its ttl %g s); %s",
                _describe_session(session), session.ttl_s, _what_ended(end),
            )  # fmt: skip
            ends.append(end)
            self._ended(session.id)
        return ends

    def _ended(self, session_id: str) -> None:
        for listener in self.session_ended:
            try:
                listener(session_id)
            except Exception:  # one listener's failure must not keep a session alive
                log.exception("ending what lived with session %s failed", session_id[:8])

    def _restoring(self, principal: str, end: Callable[[], Ended]) -> LeaseEnd:
        """Ends leases with ``end`` in ``principal``'s turn and restores what the freed
        tiles were left perturbed with."""
        with self.turns.turn(principal):
            ended = end()
            return LeaseEnd(ended, self._restore(ended.tiles))

    # -- restoring (inside a turn) -------------------------------------------------

    def _restore(self, tiles: Iterable[int]) -> tuple[int, ...]:
        """Restores the perturbed cells of ``tiles``; those the board refuses stay pending."""
        restored = []
        for tile in tiles:
            try:
                if self._restore_tile(tile):
                    restored.append(tile)
            except OutOfRange as exc:  # no write left (endurance): no retry would succeed
                self._give_up(tile, exc)
            except SidraError as exc:
                if self._lost_in_restart(tile, exc):
                    log.info(
                        "tile %d: nothing to restore: the board restarted since its cells "
                        "were perturbed (%s)", tile, exc,
                    )  # fmt: skip
                    continue
                self._pending.add(tile)
                self.on_event("restore_failed")
                log.warning(
                    "tile %d left perturbed: restore failed (%s); retried before its next call",
                    tile,
                    exc,
                )
        return tuple(restored)

    def _retry_pending(self, tiles: Iterable[int]) -> None:
        for tile in sorted(tiles):
            try:
                self._restore_tile(tile)  # raises the board's error: the call fails with it
            except OutOfRange as exc:
                self._give_up(tile, exc)
            except BoardReset as exc:
                # The call fails with the reset it would have met itself, had the restore
                # not taken its notice; the perturbation went with the restart.
                if self._lost_in_restart(tile, exc):
                    self._pending.discard(tile)
                raise
            self._pending.discard(tile)

    def _lost_in_restart(self, tile: int, exc: SidraError) -> bool:
        """Whether ``exc``, a restore's failure, is a restart of the board that took the
        tile's perturbation with it (the board answers as another instance now)."""
        return isinstance(exc, BoardReset) and self.perturbed.region(tile) is None

    def _give_up(self, tile: int, exc: OutOfRange) -> None:
        """A restore the board refuses for good (its cells have no write left): retried
        before every call on the tile, it made the tile unusable for everyone. The cells
        stay as they are, said once; programming the tile again is what mends them."""
        self._pending.discard(tile)
        region = self.perturbed.region(tile)
        if region is not None:
            self.perturbed.restored(tile, region)  # nothing more to take back
        self.on_event("restore_failed")
        log.error(
            "tile %d left perturbed for good: the board refuses its restore (%s); program "
            "the tile again to put its cells back on targets", tile, exc,
        )  # fmt: skip

    def _restore_tile(self, tile: int) -> bool:
        """Restores ``tile``'s perturbed cells: True when it did, False when none is
        perturbed (on the board's instance now: a restart known already made none)."""
        region: Region | None = self.perturbed.region(tile)
        if region is None:
            return False
        self.board.run(PerturbRequest(tile, PerturbMode.RESTORE, region=region))
        self.perturbed.restored(tile, region)
        self.on_event("restored")
        return True
