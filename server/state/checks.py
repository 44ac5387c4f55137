"""The checks of a deployment's cells kept in the state store (deployments.proto "Checks
kept"): one row per check, the per-region figures of the latest :data:`REGIONS_KEPT` of
each deployment, :data:`CHECKS_KEPT` checks at most.

Plain SQL on a connection the caller holds in its transaction
(:class:`~sidra.server.state.deployments.DeploymentRecords` stores a check in the one that
finds its deployment still intact), so a check lands with the deployment it was of or not
at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sidra.drivers import Cost, Region
from sidra.server.state.rows import place

__all__ = [
    "CHECKS_KEPT",
    "REGIONS_KEPT",
    "CheckRow",
    "RegionCheckRow",
    "count",
    "delete",
    "history",
    "insert",
    "latest",
]

CHECKS_KEPT = 10_000
"""Most checks kept of one deployment (an hourly check: 13 months)."""
REGIONS_KEPT = 100
"""How many of a deployment's latest checks keep their per-region figures."""

_COLUMNS = (
    "name, checked_by, checked_unix_s, correlation, rms_deviation_us, mean_deviation_us, "
    "time_ns, energy_nj, regions_json, read_repeats, read_noise_us"
)


@dataclass(frozen=True, slots=True)
class RegionCheckRow:
    """One region's figures in a check (µS)."""

    tile: int
    region: Region
    correlation: float
    rms_deviation_us: float
    mean_deviation_us: float
    read_noise_us: float = 0.0
    """0 from one read."""


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One check of a deployment's cells against its registered targets."""

    name: str
    checked_by: str
    """The principal that asked, or "(server)"."""
    checked_unix_s: float
    correlation: float
    rms_deviation_us: float
    mean_deviation_us: float
    cost: Cost
    """Modeled time (ns) and energy (nJ) of the reads."""
    regions: tuple[RegionCheckRow, ...]
    """Empty for a check past the latest :data:`REGIONS_KEPT`."""
    read_repeats: int = 1
    """How many reads of each cell the figures are the mean of."""
    read_noise_us: float = 0.0
    """Each cell's read-to-read standard deviation, rms over the cells, µS (0: one read)."""


def insert(db: sqlite3.Connection, board_serial: str, check: CheckRow) -> None:
    """Stores ``check`` of deployment ``check.name`` of the board, then thins the
    deployment's older checks (their regions past :data:`REGIONS_KEPT`, whole checks past
    :data:`CHECKS_KEPT`)."""
    db.execute(
        f"INSERT INTO deployment_checks (board_serial, {_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            board_serial, check.name, check.checked_by, check.checked_unix_s,
            check.correlation, check.rms_deviation_us, check.mean_deviation_us,
            check.cost.time_ns, check.cost.energy_nj, _regions_json(check.regions),
            check.read_repeats, check.read_noise_us,
        ),
    )  # fmt: skip
    for statement, past in (
        ("UPDATE deployment_checks SET regions_json = NULL WHERE regions_json IS NOT NULL AND",
         REGIONS_KEPT),
        ("DELETE FROM deployment_checks WHERE", CHECKS_KEPT),
    ):  # fmt: skip
        db.execute(  # only the rows the new check pushed past a bound are touched
            f"{statement} board_serial = ? AND name = ? AND id <= ("
            "SELECT id FROM deployment_checks WHERE board_serial = ? AND name = ? "
            "ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (board_serial, check.name, board_serial, check.name, past),
        )


def delete(db: sqlite3.Connection, board_serial: str, name: str) -> None:
    """Deletes every check of deployment ``name`` (deleted, or registered again)."""
    db.execute(
        "DELETE FROM deployment_checks WHERE board_serial = ? AND name = ?", (board_serial, name)
    )


def latest(db: sqlite3.Connection, board_serial: str) -> dict[str, CheckRow]:
    """The latest check of each of the board's deployments, by name."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM deployment_checks WHERE id IN ("
        "SELECT max(id) FROM deployment_checks WHERE board_serial = ? GROUP BY name)",
        (board_serial,),
    ).fetchall()
    return {str(row[0]): _check(row) for row in rows}


def history(
    db: sqlite3.Connection, board_serial: str, name: str, limit: int, before_unix_s: float = 0.0
) -> list[CheckRow]:
    """The latest ``limit`` checks of deployment ``name`` made before ``before_unix_s``
    (0: all), oldest first."""
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM deployment_checks WHERE board_serial = ? AND name = ? "
        "AND (? = 0 OR checked_unix_s < ?) ORDER BY id DESC LIMIT ?",
        (board_serial, name, before_unix_s, before_unix_s, limit),
    ).fetchall()
    return [_check(row) for row in reversed(rows)]


def count(db: sqlite3.Connection, board_serial: str, name: str) -> int:
    """How many checks of deployment ``name`` are kept."""
    row = db.execute(
        "SELECT count(*) FROM deployment_checks WHERE board_serial = ? AND name = ?",
        (board_serial, name),
    ).fetchone()
    return int(row[0])


def _check(row: Sequence[Any]) -> CheckRow:
    regions = tuple(  # a region's read noise is the 9th value since schema 12's checks
        RegionCheckRow(int(tile), Region(r0, c0, rows, cols), corr, rms, mean, *noise)
        for tile, r0, c0, rows, cols, corr, rms, mean, *noise in json.loads(str(row[8] or "[]"))
    )
    return CheckRow(
        str(row[0]), str(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]),
        Cost(float(row[6]), float(row[7])), regions, int(row[9]), float(row[10]),
    )  # fmt: skip


def _regions_json(regions: tuple[RegionCheckRow, ...]) -> str:
    return json.dumps(
        [
            [
                *place(r.tile, r.region),
                r.correlation,
                r.rms_deviation_us,
                r.mean_deviation_us,
                r.read_noise_us,
            ]
            for r in regions
        ]
    )
