"""Deployments in the state store: trained networks on a board's tiles, kept by name.

Each region of a deployment keeps the SHA-256 of its golden targets as they were when
the deployment was registered; a region is intact while its targets still hash to that
(deployments.proto "Intact"). The digest is of the targets as stored (float32
little-endian, row-major), so a Program writing the same targets again changes nothing.
The checks that need the store (the board known, every cell programmed, the name free or
the caller's to replace) run in the transaction that stores the row: two clients
registering one name at once cannot both succeed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied, Region
from sidra.server.state import checks, maps
from sidra.server.state.checks import CheckRow
from sidra.server.state.records import BoardRecord
from sidra.server.state.rows import place
from sidra.server.state.store import StateStore

__all__ = [
    "DeployedRegionRow",
    "DeploymentRecords",
    "DeploymentRow",
    "region_digest",
    "rewritten_text",
]

_COLUMNS = (
    "board_serial, name, principal, created_unix_s, description, model_sha256, "
    "length(model), regions_json, protected"
)


def region_digest(targets_us: npt.NDArray[np.float32], region: Region) -> str:
    """SHA-256 (hex) of ``region``'s targets, µS, as the store keeps them."""
    return hashlib.sha256(maps.to_blob(targets_us[region.slices], maps.TARGETS)).hexdigest()


@dataclass(frozen=True, slots=True)
class DeployedRegionRow:
    """One region of a deployment: where, the digest of its targets when registered, and
    whether the store's targets still hash to it."""

    tile: int
    region: Region
    digest: str
    intact: bool = True
    rewritten_by: str = ""
    """For a region not intact: the principal of the latest Program since registration
    that wrote its cells, as the history says ("" when it names none)."""
    rewritten_unix_s: float = 0.0


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    """One deployment as stored (its model file only when read with it)."""

    board_serial: str
    name: str
    principal: str
    created_unix_s: float
    description: str
    model_sha256: bytes
    model_bytes: int
    regions: tuple[DeployedRegionRow, ...]
    model: bytes | None = None
    protected: bool = False
    """Whether its regions refuse other principals' writes (deployments.proto)."""

    @property
    def intact(self) -> bool:
        """Every region's targets as they were when it was registered."""
        return all(region.intact for region in self.regions)


class DeploymentRecords:
    """The deployments kept in ``store``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def add(
        self,
        row: DeploymentRow,
        model: bytes,
        *,
        replace_existing: bool = False,
        admin: bool = False,
        validate_only: bool = False,
    ) -> DeploymentRow:
        """Stores ``row`` (its regions' digests taken here) with ``model``; returns it as
        stored. FailedPrecondition when the board or a region's cells were never
        programmed through the store; AlreadyExists for a name in use without
        ``replace_existing``; PermissionDenied when replacing another principal's
        deployment without ``admin``. ``validate_only``: the name checked alone (the
        cells may not be programmed yet), nothing stored."""
        if validate_only:
            with self.store._reading("check deployment") as db:
                self._check_name(db, row, replace_existing, admin)
            return _with_model(row, model)
        with self.store._writing("record deployment") as db:
            board = self.store._board_or_none(db, row.board_serial)
            if board is None:
                raise FailedPrecondition(
                    f"regions: board {row.board_serial!r} has had no Program through this "
                    "server; program the model's layers first, then register them"
                )
            regions = self._digested(db, board, row.regions)
            self._check_name(db, row, replace_existing, admin)
            if row.protected and not admin:
                for i, found in enumerate(regions):
                    _check_programmed_by(db, row.board_serial, row.principal, i, found)
            stored = replace(_with_model(row, model), regions=regions)
            checks.delete(db, row.board_serial, row.name)  # of what the name held before
            db.execute(
                "INSERT OR REPLACE INTO deployments (board_serial, name, principal, "
                "created_unix_s, description, model, model_sha256, regions_json, protected) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    stored.board_serial, stored.name, stored.principal, stored.created_unix_s,
                    stored.description, model, stored.model_sha256, _regions_json(regions),
                    int(stored.protected),
                ),
            )  # fmt: skip
            return stored

    def _check_name(
        self, db: sqlite3.Connection, row: DeploymentRow, replace_existing: bool, admin: bool
    ) -> None:
        existing = db.execute(
            "SELECT principal FROM deployments WHERE board_serial = ? AND name = ?",
            (row.board_serial, row.name),
        ).fetchone()
        if existing is not None:
            _check_replace(row.name, str(existing[0]), row.principal, replace_existing, admin)

    def get(self, board_serial: str, name: str, *, with_model: bool = False) -> DeploymentRow:
        """The deployment ``name`` of the board, each region's intactness checked;
        NotFound naming the board's deployments when there is none of that name."""
        with self.store._reading("read deployment") as db:
            row = db.execute(
                f"SELECT {_COLUMNS}{', model' if with_model else ''} FROM deployments "
                "WHERE board_serial = ? AND name = ?",
                (board_serial, name),
            ).fetchone()
            if row is None:
                raise NotFound(_not_found(db, board_serial, name))
            return self._checked(db, [row])[0]

    def of_board(self, board_serial: str) -> list[DeploymentRow]:
        """The board's deployments by name, each region's intactness checked (no model
        files)."""
        with self.store._reading("read deployments") as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM deployments WHERE board_serial = ? ORDER BY name",
                (board_serial,),
            ).fetchall()
            return self._checked(db, rows)

    def delete(self, board_serial: str, name: str, principal: str, admin: bool) -> DeploymentRow:
        """Forgets the deployment ``name`` (its principal's or an admin's); returns it."""
        with self.store._writing("delete deployment") as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM deployments WHERE board_serial = ? AND name = ?",
                (board_serial, name),
            ).fetchone()
            if row is None:
                raise NotFound(_not_found(db, board_serial, name))
            found = self._checked(db, [row])[0]
            if found.principal != principal and not admin:
                raise PermissionDenied(
                    f"deployment {name!r} was registered by {found.principal!r}; only they "
                    "or an admin may delete it"
                )
            checks.delete(db, board_serial, name)
            db.execute(
                "DELETE FROM deployments WHERE board_serial = ? AND name = ?", (board_serial, name)
            )
            return found

    def add_check(self, found: DeploymentRow, check: CheckRow) -> None:
        """Keeps ``check`` of the deployment ``found`` if, in the transaction that stores
        it, that deployment is still registered as ``found`` was and still intact; if not
        (written over, deleted or registered again while its cells were read),
        FailedPrecondition or NotFound and nothing kept."""
        with self.store._writing("record deployment check") as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM deployments WHERE board_serial = ? AND name = ?",
                (found.board_serial, found.name),
            ).fetchone()
            if row is None:
                raise NotFound(_not_found(db, found.board_serial, found.name))
            now = self._checked(db, [row])[0]
            if now.created_unix_s != found.created_unix_s:
                raise FailedPrecondition(
                    f"deployment {found.name!r} was registered again while its cells were "
                    "read; check it again"
                )
            if not now.intact:
                raise FailedPrecondition(
                    f"deployment {found.name!r} was written over while its cells were read "
                    f"({rewritten_text(now)}); the check is not kept"
                )
            checks.insert(db, found.board_serial, check)

    def latest_checks(self, board_serial: str) -> dict[str, CheckRow]:
        """The latest check of each of the board's deployments, by name."""
        with self.store._reading("read deployment checks") as db:
            return checks.latest(db, board_serial)

    def checks(
        self, board_serial: str, name: str, limit: int, before_unix_s: float = 0.0
    ) -> tuple[list[CheckRow], int]:
        """The latest ``limit`` checks of deployment ``name`` before ``before_unix_s`` (0:
        all), oldest first, and how many are kept in all; NotFound for no such
        deployment."""
        with self.store._reading("read deployment checks") as db:
            exists = db.execute(
                "SELECT 1 FROM deployments WHERE board_serial = ? AND name = ?",
                (board_serial, name),
            ).fetchone()
            if exists is None:
                raise NotFound(_not_found(db, board_serial, name))
            return (
                checks.history(db, board_serial, name, limit, before_unix_s),
                checks.count(db, board_serial, name),
            )

    def _digested(
        self, db: sqlite3.Connection, board: BoardRecord, regions: Sequence[DeployedRegionRow]
    ) -> tuple[DeployedRegionRow, ...]:
        goldens = {t: self.store._golden(db, board, t) for t in {r.tile for r in regions}}
        digested = []
        for i, found in enumerate(regions):
            golden, region = goldens[found.tile], found.region
            missing = int(np.count_nonzero(~golden.programmed[region.slices]))
            if missing:
                raise FailedPrecondition(
                    f"regions[{i}]: {missing} of the {region.rows * region.cols} cells of tile "
                    f"{found.tile} {region.cells_text()} were never programmed through this "
                    "server; program the model there first"
                )
            digested.append(replace(found, digest=region_digest(golden.targets_us, region)))
        return tuple(digested)

    def _checked(self, db: sqlite3.Connection, rows: Sequence[Any]) -> list[DeploymentRow]:
        """Rows as DeploymentRow, each region compared with the store's targets now (each
        tile's golden map read once)."""
        goldens: dict[tuple[str, int], npt.NDArray[np.float32]] = {}
        found = []
        for row in rows:
            serial = str(row[0])
            board = self.store._known_board(db, serial)
            regions = []
            for tile, r0, c0, n_rows, n_cols, digest in json.loads(row[7]):
                if (serial, tile) not in goldens:
                    goldens[serial, tile] = self.store._golden(db, board, tile).targets_us
                region = Region(r0, c0, n_rows, n_cols)
                checked = DeployedRegionRow(tile, region, digest)
                if region_digest(goldens[serial, tile], region) != digest:
                    by, when = _rewriter(db, serial, checked, float(row[3]))
                    checked = replace(checked, intact=False, rewritten_by=by, rewritten_unix_s=when)
                regions.append(checked)
            found.append(
                DeploymentRow(
                    serial,
                    str(row[1]),
                    str(row[2]),
                    float(row[3]),
                    str(row[4]),
                    bytes(row[5]),
                    int(row[6]),
                    tuple(regions),
                    bytes(row[9]) if len(row) > 9 else None,
                    bool(row[8]),
                )  # fmt: skip
            )
        return found


_OVERLAPPING = (
    "row_offset < ? AND row_offset + rows > ? AND col_offset < ? AND col_offset + cols > ?"
)
"""SQL: a history record's region shares a cell with the region of :func:`_overlap_args`."""


def _overlap_args(r: Region) -> tuple[int, int, int, int]:
    return (r.row_offset + r.rows, r.row_offset, r.col_offset + r.cols, r.col_offset)


def _check_programmed_by(
    db: sqlite3.Connection, serial: str, principal: str, index: int, found: DeployedRegionRow
) -> None:
    """A principal protects only cells it programmed last: a Program of its covering the
    whole region, and none of another principal's writing its cells since; otherwise
    PermissionDenied (protecting cells another programmed would lock that one out)."""
    r = found.region
    covered = db.execute(
        "SELECT max(time_utc) FROM programs WHERE board_serial = ? AND tile = ? "
        "AND kind = 'program' AND principal = ? AND row_offset <= ? AND col_offset <= ? "
        "AND row_offset + rows >= ? AND col_offset + cols >= ?",
        (serial, found.tile, principal, r.row_offset, r.col_offset, r.row_offset + r.rows,
         r.col_offset + r.cols),
    ).fetchone()[0]  # fmt: skip
    other = None
    if covered is not None:
        other = db.execute(
            "SELECT principal FROM programs WHERE board_serial = ? AND tile = ? AND "
            f"kind = 'program' AND principal != ? AND time_utc > ? AND {_OVERLAPPING} "
            "ORDER BY time_utc DESC LIMIT 1",
            (serial, found.tile, principal, covered, *_overlap_args(r)),
        ).fetchone()
    if covered is None or other is not None:
        last = "never programmed whole by it" if other is None else f"last written by {other[0]!r}"
        raise PermissionDenied(
            f"regions[{index}]: tile {found.tile} {r.cells_text()} {last}: {principal!r} may "
            "protect only cells it programmed last (an admin any)"
        )


def _rewriter(
    db: sqlite3.Connection, serial: str, found: DeployedRegionRow, since_unix_s: float
) -> tuple[str, float]:
    """Who made the latest Program after ``since_unix_s`` that wrote cells of ``found``'s
    region, and when; ("", 0.0) when the history names none."""
    since = datetime.fromtimestamp(since_unix_s, UTC).isoformat(timespec="microseconds")
    row = db.execute(
        "SELECT principal, time_utc FROM programs WHERE board_serial = ? AND tile = ? "
        f"AND kind = 'program' AND time_utc > ? AND {_OVERLAPPING} "
        "ORDER BY time_utc DESC LIMIT 1",
        (serial, found.tile, since, *_overlap_args(found.region)),
    ).fetchone()
    if row is None:
        return "", 0.0
    return str(row[0]), datetime.fromisoformat(str(row[1])).timestamp()


def rewritten_text(row: DeploymentRow) -> str:
    """Which of ``row``'s regions were programmed with other targets, and by whom."""
    return "; ".join(
        f"tile {r.tile} {r.region.cells_text()} programmed with other targets"
        + (f" by {r.rewritten_by}" if r.rewritten_by else "")
        for r in row.regions
        if not r.intact
    )


def _with_model(row: DeploymentRow, model: bytes) -> DeploymentRow:
    return replace(row, model_sha256=hashlib.sha256(model).digest(), model_bytes=len(model))


def _regions_json(regions: Sequence[DeployedRegionRow]) -> str:
    return json.dumps([[*place(r.tile, r.region), r.digest] for r in regions])


def _check_replace(name: str, owner: str, caller: str, replace_existing: bool, admin: bool) -> None:
    if not replace_existing:
        # Replacing is offered only to whom it would be granted (the owner, an admin).
        may = owner == caller or admin
        raise AlreadyExists(
            f"name: deployment {name!r} exists (registered by {owner!r}); choose another "
            "name"
            + (
                ", or replace it (Deployments.add(..., replace=True), or sidra model "
                "deploy --replace)"
                if may
                else f" (only {owner!r} or an admin may replace it)"
            )
        )
    if owner != caller and not admin:
        raise PermissionDenied(
            f"deployment {name!r} was registered by {owner!r}; only they or an admin may replace it"
        )


def _not_found(db: sqlite3.Connection, board_serial: str, name: str) -> str:
    names = [
        str(r[0])
        for r in db.execute(
            "SELECT name FROM deployments WHERE board_serial = ? ORDER BY name LIMIT 21",
            (board_serial,),
        )
    ]
    known = ", ".join(map(repr, names[:20])) + (", ..." if len(names) > 20 else "")
    return (
        f"name: got {name!r}, expected a deployment of board {board_serial!r} "
        f"({known or 'it has none'})"
    )
