"""Deployments kept from other principals' writes (AddDeployment ``protect``).

A lab's demonstration model should not be written over by the next training run that
happens to pick its tile. A protected deployment's regions refuse every write (Program,
Perturb, PerturbedMVM, Calibrate) that touches one of their cells, from anyone but the
deployment's own principal or an admin, with FAILED_PRECONDITION naming the deployment
and its owner; reads are served as before, and so is AdvanceClock (time passes for every
cell alike). Unlike a lease, a protection lives as long as its deployment: it is kept in
the state store and taken back when the server starts.

Every board call passes :meth:`Protections.admit` (``sidra.server.servicer``): with no
protected deployment, or for a read, it returns at once. A protection is not put on a
tile another principal's session leases (:func:`check_unleased`): it would refuse the
writes that lease was granted for. An admin's write goes through; the first of each
admin into each deployment is logged as a warning (the deployment no longer holds its
model there, and its owner will want to know who wrote it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sidra.drivers import BoardInfo, FailedPrecondition, LeaseHeld, Region
from sidra.drivers.requests import Request
from sidra.server.sessions.registry import LEASE_ACCESS, Access, TileHolder

__all__ = ["Protected", "Protections", "check_unleased"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Protected:
    """One region of a protected deployment."""

    deployment: str
    principal: str
    tile: int
    region: Region


class Protections:
    """The protected regions of the served board's deployments, by tile."""

    def __init__(self, info: BoardInfo) -> None:
        self._info = info
        self._lock = threading.Lock()
        self._by_tile: dict[int, tuple[Protected, ...]] = {}
        self._admins_warned_of: set[tuple[str, str]] = set()  # (admin, deployment)

    def keep(self, deployment: str, principal: str, regions: Iterable[tuple[int, Region]]) -> None:
        """``deployment``'s regions protected from now on (in place of any it had)."""
        with self._lock:
            by_tile = _without(self._by_tile, deployment)
            for tile, region in regions:
                entry = Protected(deployment, principal, tile, region)
                by_tile[tile] = (*by_tile.get(tile, ()), entry)
            self._by_tile = by_tile
            self._admins_warned_of = {w for w in self._admins_warned_of if w[1] != deployment}

    def drop(self, deployment: str) -> None:
        """``deployment`` no longer protected (deleted, or registered again without)."""
        with self._lock:
            self._by_tile = _without(self._by_tile, deployment)

    def admit(self, rpc: str, request: Request, principal: str, *, admin: bool) -> None:
        """Raises FailedPrecondition when ``request`` (of ``rpc``) would write cells of
        another principal's protected deployment and the caller is not an admin (an
        admin's first such write into each deployment is logged)."""
        by_tile = self._by_tile  # replaced whole under the lock: read without it
        if not by_tile or LEASE_ACCESS.get(rpc) is not Access.WRITE:
            return
        tile = getattr(request, "tile", None)
        entries = by_tile.get(tile) if isinstance(tile, int) else None
        if not entries:
            return
        # The request's own checks first: a Program writes the region its tensor's shape
        # spans, which only a valid request has (the server decodes a request's tensors in
        # any shape, for those checks to judge). An invalid write is refused for what is
        # wrong with it, as on a tile without protection.
        written = getattr(request.checked(self._info), "region", None)
        region = (written or Region()).resolve(self._info.rows, self._info.cols)
        for entry in entries:
            if entry.principal != principal and region.overlaps(entry.region):
                if not admin:
                    raise FailedPrecondition(_refusal(entry, rpc))
                self._warn_of_admin(entry, rpc, principal)

    def _warn_of_admin(self, entry: Protected, rpc: str, admin: str) -> None:
        """Logs once per admin and deployment (an admin's training run writes a tile
        thousands of times) that the admin wrote the protected deployment's cells."""
        with self._lock:
            if (admin, entry.deployment) in self._admins_warned_of:
                return
            self._admins_warned_of.add((admin, entry.deployment))
        log.warning(
            "admin %r wrote deployment %r of %r, protected (%s on tile %d %s): its cells no "
            "longer hold what was deployed (sidra model check; the owner deploys it again)",
            admin, entry.deployment, entry.principal, rpc, entry.tile, entry.region.cells_text(),
        )  # fmt: skip

    def check_tiles(self, tiles: Sequence[int], principal: str, *, admin: bool) -> None:
        """Raises FailedPrecondition when one of ``tiles`` holds a region of another
        principal's protected deployment (a job that would write them), unless admin."""
        if admin:
            return
        for tile in tiles:
            for entry in self._by_tile.get(tile, ()):
                if entry.principal != principal:
                    raise FailedPrecondition(_refusal(entry, "a job"))


def check_unleased(tiles: Sequence[int], principal: str, holders: Iterable[TileHolder]) -> None:
    """Raises LeaseHeld naming ``regions[i].tile`` when tile ``tiles[i]`` is leased to a
    session of another principal than ``principal`` (an admin's protection too: the
    lease was granted for writes, and the admin may end it first)."""
    leased = {h.tile: h for h in holders if h.principal != principal}
    for i, tile in enumerate(tiles):
        holder = leased.get(tile)
        if holder is not None:
            raise LeaseHeld(
                f"regions[{i}].tile: tile {tile} is leased to session "
                f"{holder.session_id[:8]}… of {holder.principal!r} ({holder.label or 'no label'})"
                ", whose writes a protection would refuse: protect it once that lease ends "
                "(sidra leases)"
            )


def _without(
    by_tile: dict[int, tuple[Protected, ...]], deployment: str
) -> dict[int, tuple[Protected, ...]]:
    """A new map of ``by_tile``'s entries but ``deployment``'s (readers keep the old one)."""
    kept = {t: tuple(e for e in es if e.deployment != deployment) for t, es in by_tile.items()}
    return {t: es for t, es in kept.items() if es}


def _refusal(entry: Protected, what: str) -> str:
    return (
        f"tile {entry.tile} {entry.region.cells_text()} holds deployment {entry.deployment!r} "
        f"of {entry.principal!r}, protected: {what} there is for {entry.principal!r} or an "
        "admin only (sidra model list; its owner lifts it with sidra model undeploy)"
    )
