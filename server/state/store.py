"""The durable board state: one SQLite file per service (or per lab), stdlib sqlite3.

What it keeps, per board (keyed by ``BoardInfo.serial_number``) and tile: the
golden programmed targets (float32 µS and a mask of the cells ever programmed),
the program history (who, when, which region, what write-verify achieved; a run of
Programs of one region counted in one record: sidra.server.state.history), the
per-cell write counts as last read, and the board's last boot/instance id.

Durability. Every write is one ``BEGIN IMMEDIATE … COMMIT`` transaction and
returns only after COMMIT, so a caller that acknowledges after the call (the
servicer answering a Program) never acknowledges what a crash could take back.
The journal is a write-ahead log (readers such as ``sidra state show`` never
block the server) with ``synchronous=FULL``: the WAL is fsynced at every
commit. ``NORMAL`` would be safe against a killed process (the OS keeps the
written pages) and never corrupts the file, but after a power cut it may roll
back the last commits, which would break the promise "acknowledged means
stored"; one fsync per Program is small next to a write-verify. Foreign keys
are on, so a record can never name a board the store does not know.

Golden maps. A Program adds its region's targets as a patch (``golden_patches``)
rather than rewriting the tile's whole map: an SPSA step programs a 65×10 region
of a 256×256 tile, 2.6 KiB against 320 KiB of map and mask to read, write and
fsync. A tile's patches are folded into its ``golden`` row, in the Program's own
transaction, once there are :data:`FOLD_PATCHES` of them or they hold as many
cells as the tile; a reader writes them over the row in order.

The connection is shared by the server's worker threads behind one lock; other
processes open their own (``busy_timeout`` makes them wait for a writer rather
than fail). A writable store holds a shared lock saying a server has it open, which
restoring a backup and compacting wait for (sidra.server.state.upkeep).

Free space. A store made by this version returns the pages that deleted jobs leave to
the file system (``auto_vacuum = INCREMENTAL``; :meth:`StateStore.reclaim_free_space`
runs after every deletion, a few MiB per transaction); one made before keeps them for
reuse until compacted.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from sidra.drivers import BoardInfo, InvalidArgument, ProgramReport, Region
from sidra.drivers.validation import float32_matrix
from sidra.server.state import maps
from sidra.server.state.errors import StateStoreError
from sidra.server.state.history import HistoryRecord, HistoryWriter
from sidra.server.state.paths import disk_bytes, made_private
from sidra.server.state.records import (
    BoardRecord,
    BoardSummary,
    GoldenMap,
    ProgramKind,
    ProgramRecord,
    ProgramWrite,
    StoreUsage,
    TileSummary,
    WriteCountMap,
)
from sidra.server.state.rows import (
    BOARD_COLUMNS,
    PROGRAM_COLUMNS,
    board_record,
    history_filter,
    program_record,
)
from sidra.server.state.schema import SCHEMA_VERSION, migrate, schema_version, version_problem
from sidra.server.state.upkeep import AUTO_VACUUM_INCREMENTAL, held_by_server

log = logging.getLogger(__name__)

__all__ = ["BUSY_TIMEOUT_S", "FOLD_PATCHES", "RECLAIM_PAGES", "WAL_SIZE_LIMIT_BYTES", "StateStore"]

BUSY_TIMEOUT_S = 10.0
"""How long a write waits for another process's transaction before failing, s."""
FOLD_PATCHES = 64
"""Patches a tile's golden map collects before the Program that adds the next one folds
them into its row: a read applies at most this many, and the fold's cost (the whole
map written once) is shared by as many Programs."""
WAL_SIZE_LIMIT_BYTES = 4 << 20
"""What the write-ahead log is cut back to after a checkpoint, bytes
(``journal_size_limit``): without it the file keeps the size of the largest
transaction ever written (a job's record files, or the pages a reclaim moved)."""
RECLAIM_PAGES = 1024
"""Free pages one transaction of :meth:`StateStore.reclaim_free_space` returns (4 MiB
at SQLite's default page size, about 16 ms here): Programs are recorded between two."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _migrated_copy(db: sqlite3.Connection) -> sqlite3.Connection:
    """A temporary copy of the older store ``db`` (closed here), migrated to this
    version's schema: what a reader of a store no server has upgraded yet reads."""
    # "": a private temporary database on disk, deleted on close: its pages spill to the
    # temporary folder past SQLite's page cache, so a store of GBs takes no GBs of memory.
    copy = sqlite3.connect("", isolation_level=None, check_same_thread=False)
    try:
        db.backup(copy)
    finally:
        db.close()
    copy.execute("PRAGMA foreign_keys = ON")
    migrate(copy)
    return copy


class StateStore:
    """The state store at ``path``, created (with its folder) and migrated if needed.

    ``read_only=True`` opens an existing store for reading only (the ``sidra
    state`` commands): no file is created, nothing is migrated. Such a reader
    cannot run WAL recovery, so after a crash it may not see the one transaction
    the crash interrupted before COMMIT returned (never acknowledged); the next
    writable opening decides it. A store of an older schema (one no server of this
    version has opened yet) is read through a temporary copy (in the temporary
    folder, deleted on close), migrated there: the file is left as it is.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool = False,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._clock = clock
        self._lock = threading.Lock()
        self._held = ExitStack()
        with self._failures("open"):
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._held.enter_context(held_by_server(self.path))
            try:
                self._db = self._connect()
            except BaseException:
                self._held.close()
                raise

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():  # sqlite would say only "unable to open database file"
            raise StateStoreError(f"state store {self.path}: a folder, not a store file")
        if self.read_only:
            if not self.path.is_file():
                raise StateStoreError(f"state store {self.path}: no such file")
            uri = self.path.resolve().as_uri() + "?mode=ro"
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            made_private(self.path)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._configure(db)
        except BaseException:
            db.close()
            raise
        if self.read_only and schema_version(db) < SCHEMA_VERSION:
            return _migrated_copy(db)
        return db

    def _configure(self, db: sqlite3.Connection) -> None:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
        if self.read_only:
            problem = version_problem(schema_version(db))
            if problem is not None:
                raise StateStoreError(f"state store {self.path}: {problem}")
            return
        if db.execute("PRAGMA page_count").fetchone()[0] == 0:  # a new file: before any table
            db.execute(f"PRAGMA auto_vacuum = {AUTO_VACUUM_INCREMENTAL}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StateStoreError(
                f"state store {self.path}: journal_mode: got {mode!r}, expected 'wal' "
                "(a file on a local file system)"
            )
        db.execute("PRAGMA synchronous = FULL")
        db.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
        # A server on a damaged store acknowledges Programs it may not keep, and the damage
        # shows only when a --restore reads the maps. Pages and records, not indexes: 0.13 s
        # for a 200 MB store here (a throwaway measure), once a start.
        found = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if found != "ok":
            raise StateStoreError(
                f"state store {self.path} is damaged ({found}): sidra state check lists "
                "what is, sidra state restore BACKUP puts a backup in its place (keeping "
                "this file aside)"
            )
        before = schema_version(db)
        try:
            after = migrate(db)
        except ValueError as exc:
            raise StateStoreError(f"state store {self.path}: {exc}") from exc
        if before and after != before:  # a new store (0) is no upgrade
            log.warning("state store %s migrated from schema %d to %d", self.path, before, after)

    # -- life cycle ------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._held.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: "ok", or what is damaged."""
        with self._reading("integrity check") as db:
            rows = db.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(row[0]) for row in rows)

    # -- boards ----------------------------------------------------------------------------

    def note_board(self, info: BoardInfo, boot_id: str) -> BoardRecord | None:
        """Records that ``info``'s board is present with ``boot_id``; returns the record
        as it was before (None for a board new to the store), whose ``last_boot_id``
        tells whether the board restarted since it was last seen."""
        now = self._now()
        with self._writing("note board") as db:
            before = self._board_or_none(db, info.serial_number)
            db.execute(
                f"""INSERT INTO boards ({BOARD_COLUMNS})
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (serial_number) DO UPDATE SET model = excluded.model,
                    tile_count = excluded.tile_count, rows = excluded.rows,
                    cols = excluded.cols, g_min_us = excluded.g_min_us,
                    g_max_us = excluded.g_max_us, last_seen_utc = excluded.last_seen_utc,
                    last_boot_id = excluded.last_boot_id""",
                (
                    info.serial_number, info.model, info.tile_count, info.rows, info.cols,
                    info.g_min_us, info.g_max_us, now, now, boot_id,
                ),
            )  # fmt: skip
        return before

    def board(self, board_serial: str) -> BoardRecord:
        """The record of board ``board_serial``; StateStoreError if the store never saw it."""
        with self._reading("read board") as db:
            return self._known_board(db, board_serial)

    def boards(self) -> list[BoardRecord]:
        """Every board in the store, by serial number."""
        with self._reading("list boards") as db:
            query = f"SELECT {BOARD_COLUMNS} FROM boards ORDER BY serial_number"
            rows = db.execute(query).fetchall()
        return [board_record(row) for row in rows]

    # -- programs --------------------------------------------------------------------------

    def record_program(
        self,
        board_serial: str,
        tile: int,
        row_offset: int,
        col_offset: int,
        targets: Any,
        report: ProgramReport,
        principal: str,
        boot_id: str,
        *,
        kind: ProgramKind = ProgramKind.PROGRAM,
    ) -> ProgramRecord:
        """Stores one Program that reached the board: ``targets`` (µS, [rows, cols]) become
        the golden map of that region of ``tile``, and the history gains a record.
        Committed (durable) when this returns."""
        g = float32_matrix("targets", targets)
        write = ProgramWrite(
            board_serial, tile, row_offset, col_offset, g, report, principal, boot_id, kind
        )
        with self._writing("record program") as db:
            last_id = self._store_programs(db, [write])
            row = db.execute(
                f"SELECT {PROGRAM_COLUMNS} FROM programs WHERE id = ?", (last_id,)
            ).fetchone()
        return program_record(row)

    def record_programs(self, writes: Sequence[ProgramWrite]) -> None:
        """Stores several Programs that reached the board, in the order they ran, in one
        transaction: one commit (one fsync) for all, each tile's golden map read and
        written once, the history rows inserted together. All or nothing; committed
        (durable) when this returns. What a job's recorder uses (sidra.server.recording)."""
        if not writes:
            return
        checked = [  # every write's targets checked before the first is stored
            replace(write, targets_us=float32_matrix(f"writes[{k}].targets_us", write.targets_us))
            for k, write in enumerate(writes)
        ]
        with self._writing("record programs") as db:
            self._store_programs(db, checked)

    def _store_programs(self, db: sqlite3.Connection, writes: Sequence[ProgramWrite]) -> int:
        """``writes`` into the golden maps (as patches) and the history (a transaction is
        open); returns the history id of the last."""
        now = self._now()
        boards: dict[str, BoardRecord] = {}
        patches = []
        history = HistoryWriter(db)
        for write in writes:
            board = boards.get(write.board_serial)
            if board is None:
                board = boards[write.board_serial] = self._known_board(db, write.board_serial)
            g = write.targets_us
            region = _checked_region(
                board, write.tile, Region(write.row_offset, write.col_offset, *g.shape)
            )
            patches.append(
                (
                    write.board_serial, write.tile, region.row_offset, region.col_offset,
                    region.rows, region.cols, maps.to_blob(g, maps.TARGETS),
                )
            )  # fmt: skip
            report = write.report
            history.add(
                HistoryRecord(
                    write.board_serial, write.tile, region.row_offset, region.col_offset,
                    region.rows, region.cols, write.principal, now, write.boot_id,
                    write.kind.value, report.cells_written, report.verify_iterations,
                    report.pulses, report.rms_error_us, report.max_error_us,
                    report.unconverged_cells, report.cells_over_budget,
                )
            )  # fmt: skip
        db.executemany(
            """INSERT INTO golden_patches (board_serial, tile, row_offset, col_offset, rows,
                cols, targets_us) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            patches,
        )
        for serial, tile in dict.fromkeys((patch[0], patch[1]) for patch in patches):
            board = boards[serial]
            count, cells = db.execute(
                "SELECT count(*), sum(rows * cols) FROM golden_patches "
                "WHERE board_serial = ? AND tile = ?",
                (serial, tile),
            ).fetchone()
            if count >= FOLD_PATCHES or cells >= board.rows * board.cols:
                self._fold(db, board, tile, now)
        last_id = history.store()
        last_boot = {write.board_serial: write.boot_id for write in writes}
        for serial, boot_id in last_boot.items():
            db.execute(
                "UPDATE boards SET last_seen_utc = ?, last_boot_id = ? WHERE serial_number = ?",
                (now, boot_id, serial),
            )
        return last_id

    def golden(self, board_serial: str, tile: int) -> GoldenMap:
        """The golden targets of ``tile`` (µS) and the mask of cells ever programmed."""
        with self._reading("read golden targets") as db:
            board = self._known_board(db, board_serial)
            _checked_region(board, tile, Region(0, 0, board.rows, board.cols))
            return self._golden(db, board, tile)

    def history(
        self, board_serial: str | None = None, tile: int | None = None, limit: int | None = None
    ) -> list[ProgramRecord]:
        """Program records, oldest first; only ``board_serial``'s / ``tile``'s if given,
        only the latest ``limit`` if given."""
        if limit is not None and limit < 0:
            raise InvalidArgument("limit", limit, "None (all records) or a count >= 0")
        where, args = history_filter(board_serial, tile)
        query = f"SELECT {PROGRAM_COLUMNS} FROM programs {where} ORDER BY id DESC LIMIT ?"
        with self._reading("read history") as db:
            rows = db.execute(query, (*args, -1 if limit is None else limit)).fetchall()
        return [program_record(row) for row in reversed(rows)]

    # -- write counts ----------------------------------------------------------------------

    def record_write_counts(
        self, board_serial: str, tile: int, row_offset: int, col_offset: int, counts: Any
    ) -> None:
        """Stores per-cell write counts read from ``tile`` at (row_offset, col_offset)."""
        read = np.asarray(counts)
        if read.ndim != 2 or read.dtype.kind not in "iu" or (read.size and read.min() < 0):
            raise InvalidArgument(
                "counts", f"{read.dtype} {list(read.shape)}", "a 2-D array of counts >= 0"
            )
        with self._writing("record write counts") as db:
            board = self._known_board(db, board_serial)
            region = _checked_region(board, tile, Region(row_offset, col_offset, *read.shape))
            known = self._write_counts(db, board, tile)
            known.counts[region.slices] = read
            known.read[region.slices] = True
            db.execute(
                """INSERT INTO write_counts (board_serial, tile, rows, cols, counts, read,
                    read_utc) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (board_serial, tile) DO UPDATE SET counts = excluded.counts,
                    read = excluded.read, read_utc = excluded.read_utc""",
                (
                    board_serial, tile, board.rows, board.cols,
                    maps.to_blob(known.counts, maps.WRITE_COUNTS),
                    maps.to_blob(known.read, maps.MASK), self._now(),
                ),
            )  # fmt: skip

    def write_counts(self, board_serial: str, tile: int) -> WriteCountMap:
        """The write counts of ``tile`` as last read, and the mask of cells ever read."""
        with self._reading("read write counts") as db:
            board = self._known_board(db, board_serial)
            _checked_region(board, tile, Region(0, 0, board.rows, board.cols))
            return self._write_counts(db, board, tile)

    # -- overviews -------------------------------------------------------------------------

    def summary(self) -> list[BoardSummary]:
        """Every board with, per tile, programmed cells, records and the last program time."""
        with self._reading("summarise") as db:
            boards = [
                board_record(row)
                for row in db.execute(f"SELECT {BOARD_COLUMNS} FROM boards ORDER BY serial_number")
            ]
            programmed = {
                (row[0], row[1]): int(row[2])
                for row in db.execute("SELECT board_serial, tile, programmed_cells FROM golden")
            }
            by_serial = {board.serial_number: board for board in boards}
            for serial, tile in db.execute(
                "SELECT DISTINCT board_serial, tile FROM golden_patches"
            ).fetchall():  # the row's count leaves out the patches not folded yet
                golden = self._golden(db, by_serial[serial], tile)
                programmed[serial, tile] = int(golden.programmed.sum())
            programs = {
                (row[0], row[1]): (int(row[2]), datetime.fromisoformat(row[3]))
                for row in db.execute(
                    "SELECT board_serial, tile, sum(programs), max(time_utc) FROM programs "
                    "GROUP BY board_serial, tile"
                )
            }
        return [
            BoardSummary(
                board,
                tuple(
                    TileSummary(
                        tile,
                        board.rows * board.cols,
                        programmed.get((board.serial_number, tile), 0),
                        *programs.get((board.serial_number, tile), (0, None)),
                    )
                    for tile in range(board.tile_count)
                ),
            )
            for board in boards
        ]

    def usage(self) -> StoreUsage:
        """What the store holds and its size on disk."""
        with self._reading("measure") as db:

            def one(query: str) -> int:
                return int(db.execute(query).fetchone()[0] or 0)

            page_size = one("PRAGMA page_size")
            counts = (
                one("SELECT count(*) FROM boards"),
                one("SELECT count(*) FROM programs"),
                one("SELECT sum(programs) FROM programs"),
                one("SELECT count(*) FROM jobs"),
                one("SELECT count(*) FROM job_events"),
                one("SELECT sum(length(content)) FROM job_files"),
                one("SELECT count(*) FROM deployments"),
                one("SELECT count(*) FROM deployment_checks"),
                one("SELECT count(*) FROM dataset_blobs"),
                one("SELECT sum(size_bytes) FROM dataset_blobs"),
            )
            free = one("PRAGMA freelist_count") * page_size
            returns = one("PRAGMA auto_vacuum") == AUTO_VACUUM_INCREMENTAL
        return StoreUsage(self.disk_bytes(), free, returns, *counts)

    def reclaim_free_space(self) -> int:
        """Returns the store's free pages (what deleted jobs left) to the file system,
        :data:`RECLAIM_PAGES` per transaction, the lock let go between two so Programs
        are recorded meanwhile; returns the bytes given back (the file shrinks at the
        write-ahead log's next checkpoint, asked for here). 0 for a read-only store and
        for one made before stores returned space (``sidra state compact`` does it)."""
        if self.read_only:
            return 0
        returned = 0
        while True:
            with self._lock, self._failures("return free space"):  # its own transactions
                db = self._db
                if db.execute("PRAGMA auto_vacuum").fetchone()[0] != AUTO_VACUUM_INCREMENTAL:
                    return 0
                page_size, free = (db.execute(f"PRAGMA {name}").fetchone()[0]
                                   for name in ("page_size", "freelist_count"))  # fmt: skip
                if free == 0:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    return returned
                # executescript steps the pragma to its end; execute() would return one page.
                db.executescript(f"PRAGMA incremental_vacuum({RECLAIM_PAGES})")
                left = db.execute("PRAGMA freelist_count").fetchone()[0]
            if left >= free:  # nothing moved: never loop
                return returned
            returned += (free - left) * page_size

    def give_back_space(self) -> None:
        """:meth:`reclaim_free_space` after a deletion, a failure logged rather than raised:
        the deletion itself is committed, and its pages are only left for reuse."""
        try:
            self.reclaim_free_space()
        except StateStoreError as exc:
            log.warning("free pages of the state store not given back: %s", exc)

    def disk_bytes(self) -> int:
        """The store's files on disk, bytes (sidra.server.state.paths.disk_bytes)."""
        return disk_bytes(self.path)

    def export_npz(self, board_serial: str, path: str | os.PathLike[str]) -> Path:
        """Writes ``board_serial``'s golden maps and write counts to an ``.npz`` file.

        Arrays, one slice per tile: ``targets_us`` float32 [tiles, rows, cols]
        (0 where not programmed), ``programmed`` bool, ``write_counts`` uint32 (0
        where never read), ``counts_read`` bool; and ``board_serial`` (a string).
        Compressed (tiles mostly never programmed are mostly zeros); written whole or
        not at all, never over an existing file (FileExistsError).
        """
        board = self.board(board_serial)
        tiles = range(board.tile_count)
        golden = [self.golden(board_serial, t) for t in tiles]
        counts = [self.write_counts(board_serial, t) for t in tiles]
        target = Path(path)
        if target.exists():  # checked first too: a refusal costs no compression
            raise FileExistsError(errno.EEXIST, "exists; an export does not overwrite", target)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            with partial.open("wb") as file:
                np.savez_compressed(
                    file,
                    board_serial=np.array(board_serial),
                    targets_us=np.stack([g.targets_us for g in golden]),
                    programmed=np.stack([g.programmed for g in golden]),
                    write_counts=np.stack([c.counts for c in counts]),
                    counts_read=np.stack([c.read for c in counts]),
                )
                file.flush()
                os.fsync(file.fileno())
            os.link(partial, target)  # unlike a rename, never replaces a file made meanwhile
        finally:
            partial.unlink(missing_ok=True)
        return target

    # -- internals -------------------------------------------------------------------------

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")

    @contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """SQLite's errors as StateStoreError naming the store and the operation."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StateStoreError(f"state store {self.path}: {what} failed: {exc}") from exc

    @contextmanager
    def _reading(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._failures(what):
            yield self._db

    @contextmanager
    def _writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on leaving or rolled back on any error."""
        if self.read_only:
            raise StateStoreError(f"state store {self.path}: {what}: opened read-only")
        with self._lock, self._failures(what):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    def _board_or_none(self, db: sqlite3.Connection, serial: str) -> BoardRecord | None:
        row = db.execute(
            f"SELECT {BOARD_COLUMNS} FROM boards WHERE serial_number = ?", (serial,)
        ).fetchone()
        return None if row is None else board_record(row)

    def _known_board(self, db: sqlite3.Connection, serial: str) -> BoardRecord:
        board = self._board_or_none(db, serial)
        if board is None:
            known = [row[0] for row in db.execute("SELECT serial_number FROM boards")]
            raise StateStoreError(
                f"board_serial: got {serial!r}, expected a board the store has seen "
                f"({', '.join(map(repr, known)) or 'none yet'})"
            )
        return board

    def _golden(self, db: sqlite3.Connection, board: BoardRecord, tile: int) -> GoldenMap:
        """``tile``'s golden row with its patches written over it, in order."""
        row = db.execute(
            "SELECT targets_us, programmed FROM golden WHERE board_serial = ? AND tile = ?",
            (board.serial_number, tile),
        ).fetchone()
        shape = (board.rows, board.cols)
        if row is None:
            golden = GoldenMap(np.zeros(shape, np.float32), np.zeros(shape, bool))
        else:
            targets = maps.from_blob(row[0], maps.TARGETS, *shape)
            golden = GoldenMap(targets, maps.from_blob(row[1], maps.MASK, *shape).astype(bool))
        for r0, c0, rows, cols, blob in db.execute(
            "SELECT row_offset, col_offset, rows, cols, targets_us FROM golden_patches "
            "WHERE board_serial = ? AND tile = ? ORDER BY id",
            (board.serial_number, tile),
        ):
            cells = np.s_[r0 : r0 + rows, c0 : c0 + cols]
            golden.targets_us[cells] = maps.from_blob(blob, maps.TARGETS, rows, cols)
            golden.programmed[cells] = True
        return golden

    def _fold(self, db: sqlite3.Connection, board: BoardRecord, tile: int, now: str) -> None:
        """Writes ``tile``'s patches into its golden row and drops them (a transaction
        is open)."""
        golden = self._golden(db, board, tile)
        db.execute(
            """INSERT INTO golden (board_serial, tile, rows, cols, targets_us, programmed,
                programmed_cells, updated_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (board_serial, tile) DO UPDATE SET
                targets_us = excluded.targets_us, programmed = excluded.programmed,
                programmed_cells = excluded.programmed_cells,
                updated_utc = excluded.updated_utc""",
            (
                board.serial_number, tile, board.rows, board.cols,
                maps.to_blob(golden.targets_us, maps.TARGETS),
                maps.to_blob(golden.programmed, maps.MASK),
                int(golden.programmed.sum()), now,
            ),
        )  # fmt: skip
        db.execute(
            "DELETE FROM golden_patches WHERE board_serial = ? AND tile = ?",
            (board.serial_number, tile),
        )

    def _write_counts(self, db: sqlite3.Connection, board: BoardRecord, tile: int) -> WriteCountMap:
        row = db.execute(
            "SELECT counts, read FROM write_counts WHERE board_serial = ? AND tile = ?",
            (board.serial_number, tile),
        ).fetchone()
        shape = (board.rows, board.cols)
        if row is None:
            return WriteCountMap(np.zeros(shape, np.uint32), np.zeros(shape, bool))
        counts = maps.from_blob(row[0], maps.WRITE_COUNTS, *shape)
        return WriteCountMap(counts, maps.from_blob(row[1], maps.MASK, *shape).astype(bool))


def _checked_region(board: BoardRecord, tile: int, region: Region) -> Region:
    """``region`` of ``tile`` if it lies on ``board``, else InvalidArgument naming the field."""
    if not 0 <= tile < board.tile_count:
        raise InvalidArgument("tile", tile, f"a tile index in [0, {board.tile_count - 1}]")
    for name, offset, size, extent, axis in (
        ("row_offset", region.row_offset, region.rows, board.rows, "rows"),
        ("col_offset", region.col_offset, region.cols, board.cols, "cols"),
    ):
        if not 1 <= size <= extent:
            raise InvalidArgument(axis, size, f"1 to {extent} {axis} (the tile's size)")
        if not 0 <= offset <= extent - size:
            raise InvalidArgument(
                name, offset, f"an offset in [0, {extent - size}] ({size} {axis} of {extent})"
            )
    return region
