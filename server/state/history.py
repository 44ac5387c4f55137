"""The program history's records: one per run of Programs of one region, not per Program.

A training loop programs its layer at every step: some 500 Programs a second on the
emulator, each a history row of about 300 bytes (13 GB a day). What a lab engineer
reads in the history is who wrote which region when, and how well, so a Program is
counted into an earlier record instead of adding one when that record is

- of the same board, tile, region, principal, board boot and kind (program or restore),
- among the tile's :data:`COALESCE_WINDOW` latest records, with no record written after
  it overlapping the region (the history stays true to which write came last), and
- written less than :data:`COALESCE_WITHIN_S` before (Programs an hour apart stay apart).

Such a record counts its Programs (``programs``), the time of its first (``first_utc``)
and of its last (``time_utc``), the sums of ``cells_written``, ``pulses`` and
``cells_over_budget``, and the largest ``verify_iterations``, ``rms_error_us``,
``max_error_us`` and ``unconverged_cells`` of them: the worst write the region had. It
is written again at the end of the history (a new id) whenever it counts one more, so
ids still order the records by their last Program. The golden maps are not affected:
every Program's targets are kept exactly.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from sidra.server.state.rows import PROGRAM_COLUMNS

__all__ = ["COALESCE_WINDOW", "COALESCE_WITHIN_S", "HistoryRecord", "HistoryWriter"]

COALESCE_WITHIN_S = 60.0
"""Longest time since a record's last Program for the next one to be counted into it, s."""

COALESCE_WINDOW = 16
"""How many of a tile's latest records a Program is looked for among."""

_MAX_PARAMETERS = 999
"""Bound parameters per statement that SQLite allowed before 3.32."""


@dataclass(slots=True, eq=False)
class HistoryRecord:
    """One ``programs`` row as the writer holds it (times as stored: ISO 8601 UTC).
    Compared by identity: two records of equal fields (two runs of one region apart)
    are still two records to move and write."""

    board_serial: str
    tile: int
    row_offset: int
    col_offset: int
    rows: int
    cols: int
    principal: str
    time_utc: str
    boot_id: str
    kind: str
    cells_written: int
    verify_iterations: int
    pulses: int
    rms_error_us: float
    max_error_us: float
    unconverged_cells: int
    cells_over_budget: int
    programs: int = 1
    first_utc: str | None = None
    """None: the record is one Program, at ``time_utc``."""
    id: int | None = None
    """Its row's id when read from the store; None for a Program of this batch."""

    def same_writes(self, other: HistoryRecord) -> bool:
        """Whether ``other`` is a Program this record may count."""
        return (
            self.row_offset, self.col_offset, self.rows, self.cols, self.principal,
            self.boot_id, self.kind,
        ) == (
            other.row_offset, other.col_offset, other.rows, other.cols, other.principal,
            other.boot_id, other.kind,
        )  # fmt: skip

    def overlaps(self, other: HistoryRecord) -> bool:
        return (
            self.row_offset < other.row_offset + other.rows
            and other.row_offset < self.row_offset + self.rows
            and self.col_offset < other.col_offset + other.cols
            and other.col_offset < self.col_offset + self.cols
        )

    def count(self, later: HistoryRecord) -> None:
        """Counts the Program ``later`` (one of :meth:`same_writes`) into this record."""
        self.first_utc = self.first_utc or self.time_utc
        self.time_utc = later.time_utc
        self.programs += later.programs
        self.cells_written += later.cells_written
        self.pulses += later.pulses
        self.cells_over_budget += later.cells_over_budget
        self.verify_iterations = max(self.verify_iterations, later.verify_iterations)
        self.rms_error_us = max(self.rms_error_us, later.rms_error_us)
        self.max_error_us = max(self.max_error_us, later.max_error_us)
        self.unconverged_cells = max(self.unconverged_cells, later.unconverged_cells)


_COLUMNS = [f.name for f in fields(HistoryRecord) if f.name != "id"]
_STORED_ORDER = PROGRAM_COLUMNS.removeprefix("id, ").split(", ")
assert sorted(_COLUMNS) == sorted(_STORED_ORDER), "HistoryRecord and PROGRAM_COLUMNS differ"


class HistoryWriter:
    """Adds Programs to the history inside an open transaction of ``db``, then
    :meth:`store` writes what changed (Programs of one batch are counted together too).
    One writer per transaction: :meth:`store` is called once."""

    def __init__(self, db: sqlite3.Connection, within_s: float = COALESCE_WITHIN_S) -> None:
        self.db = db
        self.within = timedelta(seconds=within_s)
        self._windows: dict[tuple[str, int], list[HistoryRecord]] = {}
        self._changed: list[HistoryRecord] = []
        """Records to write, in the order of their last Program."""

    def add(self, program: HistoryRecord) -> None:
        """One Program: counted into a record of the tile's latest, or a record of its own."""
        window = self._window(program.board_serial, program.tile)
        into = self._counted_into(window, program)
        if into is None:
            into = program
        else:
            into.count(program)
            window.remove(into)
            if into in self._changed:
                self._changed.remove(into)
        window.append(into)
        self._changed.append(into)
        del window[:-COALESCE_WINDOW]

    def _counted_into(
        self, window: list[HistoryRecord], program: HistoryRecord
    ) -> HistoryRecord | None:
        for record in reversed(window):
            if record.same_writes(program):
                since = _when(program.time_utc) - _when(record.time_utc)
                return record if since < self.within else None
            if record.overlaps(program):  # a later write of other cells of the region
                return None
        return None

    def _window(self, serial: str, tile: int) -> list[HistoryRecord]:
        window = self._windows.get((serial, tile))
        if window is None:
            rows = self.db.execute(
                f"SELECT {PROGRAM_COLUMNS} FROM programs WHERE board_serial = ? AND tile = ? "
                "ORDER BY id DESC LIMIT ?",
                (serial, tile, COALESCE_WINDOW),
            ).fetchall()
            window = self._windows[serial, tile] = [_record(row) for row in reversed(rows)]
        return window

    def store(self) -> int:
        """Writes the records that changed, each at the end of the history in the order
        of its last Program; returns the id of the last (the latest Program's record)."""
        stale = [record.id for record in self._changed if record.id is not None]
        for at in range(0, len(stale), _MAX_PARAMETERS):
            ids = stale[at : at + _MAX_PARAMETERS]
            self.db.execute(f"DELETE FROM programs WHERE id IN ({', '.join('?' * len(ids))})", ids)
        # As many rows per statement as _MAX_PARAMETERS allows: every sqlite3 call lets
        # another thread have the GIL, and a job's recorder runs beside the job
        # (sidra.server.recording).
        width = len(_COLUMNS)
        one = "(" + ", ".join(["?"] * width) + ")"
        per_insert = _MAX_PARAMETERS // width
        last_id = None
        for at in range(0, len(self._changed), per_insert):
            chunk = self._changed[at : at + per_insert]
            flat = [getattr(record, name) for record in chunk for name in _COLUMNS]
            last_id = self.db.execute(
                f"INSERT INTO programs ({', '.join(_COLUMNS)}) VALUES "
                + ", ".join([one] * len(chunk)),
                flat,
            ).lastrowid
        self._changed.clear()
        assert last_id is not None, "store() with no Program added"
        return int(last_id)


def _record(row: tuple[object, ...]) -> HistoryRecord:
    """A ``programs`` row selected as PROGRAM_COLUMNS."""
    values = dict(zip(PROGRAM_COLUMNS.split(", "), row, strict=True))
    return HistoryRecord(**values)  # type: ignore[arg-type]


def _when(iso_utc: str) -> datetime:
    return datetime.fromisoformat(iso_utc)
