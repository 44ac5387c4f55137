"""The state store's schema, as numbered migrations applied in order.

A new store gets every migration; an older one gets those past its version,
each in its own transaction, so a crash mid-upgrade leaves the previous
version intact. To change the schema, append a migration (never edit a
published one): its statements run on stores of every earlier version.

``schema_version`` holds one row per applied migration. A store written by a
newer SIDRA HIL (a version beyond :data:`SCHEMA_VERSION`) is refused rather
than read with the wrong meaning.

Maps are blobs: little-endian, row-major, ``rows × cols`` items (float32 µS
targets, uint32 write counts, one byte 0/1 per cell for the masks), with the
shape beside them, so the file reads without SIDRA HIL. A tile's golden map is
its ``golden`` row (zeros and an empty mask when it has none) with its
``golden_patches`` rows written over it in ``id`` order: each Program adds the
targets of its region as a patch (a few KiB, not the whole map), and the patches
are folded into the ``golden`` row now and then.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "migrate",
    "schema_version",
    "version_problem",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """The statements that take a store from ``version - 1`` to ``version``."""

    version: int
    statements: tuple[str, ...]
    rebuilds_tables: bool = False
    """Whether it rebuilds a table others refer to (SQLite's way to change a column's
    constraint: a new table, the rows copied, the old one dropped, the new one renamed)
    or changes keys others refer to: foreign keys are then off while it runs and
    checked whole before it commits."""


_V1 = Migration(
    1,
    (
        """CREATE TABLE boards (
            serial_number TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            tile_count INTEGER NOT NULL CHECK (tile_count > 0),
            rows INTEGER NOT NULL CHECK (rows > 0),
            cols INTEGER NOT NULL CHECK (cols > 0),
            g_min_us REAL NOT NULL,
            g_max_us REAL NOT NULL,
            first_seen_utc TEXT NOT NULL,
            last_seen_utc TEXT NOT NULL,
            last_boot_id TEXT NOT NULL
        )""",
        # One row per tile ever programmed: the golden map and which cells it covers.
        """CREATE TABLE golden (
            board_serial TEXT NOT NULL REFERENCES boards (serial_number),
            tile INTEGER NOT NULL CHECK (tile >= 0),
            rows INTEGER NOT NULL,
            cols INTEGER NOT NULL,
            targets_us BLOB NOT NULL CHECK (length(targets_us) = 4 * rows * cols),
            programmed BLOB NOT NULL CHECK (length(programmed) = rows * cols),
            programmed_cells INTEGER NOT NULL,
            updated_utc TEXT NOT NULL,
            PRIMARY KEY (board_serial, tile)
        )""",
        """CREATE TABLE programs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            board_serial TEXT NOT NULL REFERENCES boards (serial_number),
            tile INTEGER NOT NULL,
            row_offset INTEGER NOT NULL,
            col_offset INTEGER NOT NULL,
            rows INTEGER NOT NULL,
            cols INTEGER NOT NULL,
            principal TEXT NOT NULL,
            time_utc TEXT NOT NULL,
            boot_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('program', 'restore')),
            cells_written INTEGER NOT NULL,
            verify_iterations INTEGER NOT NULL,
            pulses INTEGER NOT NULL,
            rms_error_us REAL NOT NULL,
            max_error_us REAL NOT NULL,
            unconverged_cells INTEGER NOT NULL,
            cells_over_budget INTEGER NOT NULL
        )""",
        "CREATE INDEX programs_by_tile ON programs (board_serial, tile, id)",
        """CREATE TABLE write_counts (
            board_serial TEXT NOT NULL REFERENCES boards (serial_number),
            tile INTEGER NOT NULL CHECK (tile >= 0),
            rows INTEGER NOT NULL,
            cols INTEGER NOT NULL,
            counts BLOB NOT NULL CHECK (length(counts) = 4 * rows * cols),
            read BLOB NOT NULL CHECK (length(read) = rows * cols),
            read_utc TEXT NOT NULL,
            PRIMARY KEY (board_serial, tile)
        )""",
    ),
)

_V2 = Migration(
    2,
    (
        # Training jobs run by the service (sidra.server.jobs): options, state, progress.
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            principal TEXT NOT NULL,
            dataset TEXT NOT NULL,
            options_json TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
            submitted_unix_s REAL NOT NULL,
            started_unix_s REAL NOT NULL,
            ended_unix_s REAL NOT NULL,
            step INTEGER NOT NULL,
            total INTEGER NOT NULL,
            message TEXT NOT NULL,
            error TEXT NOT NULL,
            tiles TEXT NOT NULL,
            whole_board INTEGER NOT NULL,
            summary_json TEXT NOT NULL
        )""",
        "CREATE INDEX jobs_by_time ON jobs (submitted_unix_s)",
        # Progress, log lines and state changes, numbered from 0 per job.
        """CREATE TABLE job_events (
            job_id TEXT NOT NULL REFERENCES jobs (id),
            idx INTEGER NOT NULL CHECK (idx >= 0),
            unix_s REAL NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('progress', 'log', 'state')),
            step INTEGER NOT NULL,
            total INTEGER NOT NULL,
            message TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (job_id, idx)
        )""",
        # The run record of a finished job: the files `sidra train` writes.
        """CREATE TABLE job_files (
            job_id TEXT NOT NULL REFERENCES jobs (id),
            name TEXT NOT NULL,
            content BLOB NOT NULL,
            PRIMARY KEY (job_id, name)
        )""",
    ),
)

_V3 = Migration(
    3,
    (
        # The targets of one Program's region, written over the tile's golden row in
        # id order (sidra.server.state.store folds them into it now and then).
        """CREATE TABLE golden_patches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            board_serial TEXT NOT NULL REFERENCES boards (serial_number),
            tile INTEGER NOT NULL CHECK (tile >= 0),
            row_offset INTEGER NOT NULL CHECK (row_offset >= 0),
            col_offset INTEGER NOT NULL CHECK (col_offset >= 0),
            rows INTEGER NOT NULL CHECK (rows > 0),
            cols INTEGER NOT NULL CHECK (cols > 0),
            targets_us BLOB NOT NULL CHECK (length(targets_us) = 4 * rows * cols)
        )""",
        "CREATE INDEX golden_patches_by_tile ON golden_patches (board_serial, tile, id)",
    ),
)

_V4 = Migration(
    4,
    (
        # SHA-256 of a record file, written with it: a reader of several ReadJobFile
        # pieces sees when the file was replaced between them (a running job's
        # checkpoint, kept again). NULL for files stored before: no such file changes
        # again (their jobs ended, or were marked interrupted when this code started).
        "ALTER TABLE job_files ADD COLUMN sha256 BLOB "
        "CHECK (sha256 IS NULL OR length(sha256) = 32)",
    ),
)

_V5 = Migration(
    5,
    (
        # A history record counts a run of Programs of one region (sidra.server.state.
        # history): how many, and when the first was stored (NULL: one, at time_utc).
        "ALTER TABLE programs ADD COLUMN programs INTEGER NOT NULL DEFAULT 1 CHECK (programs >= 1)",
        "ALTER TABLE programs ADD COLUMN first_utc TEXT",
    ),
)

_V6 = Migration(
    6,
    (
        # A job may wait in the server's queue (SubmitJob queue): state 'queued', with the
        # checkpoint it is to go on from kept until it starts (NULL once it has, or none).
        """CREATE TABLE jobs_v6 (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            principal TEXT NOT NULL,
            dataset TEXT NOT NULL,
            options_json TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN
                ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
            submitted_unix_s REAL NOT NULL,
            started_unix_s REAL NOT NULL,
            ended_unix_s REAL NOT NULL,
            step INTEGER NOT NULL,
            total INTEGER NOT NULL,
            message TEXT NOT NULL,
            error TEXT NOT NULL,
            tiles TEXT NOT NULL,
            whole_board INTEGER NOT NULL,
            summary_json TEXT NOT NULL,
            resume_checkpoint BLOB
        )""",
        "INSERT INTO jobs_v6 SELECT *, NULL FROM jobs",
        "DROP TABLE jobs",
        "ALTER TABLE jobs_v6 RENAME TO jobs",
        "CREATE INDEX jobs_by_time ON jobs (submitted_unix_s)",
    ),
    rebuilds_tables=True,
)

_V7 = Migration(
    7,
    (
        # A job's priority in the queue (SubmitJob priority): higher first, 0 for every
        # job stored before.
        "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0 "
        "CHECK (priority BETWEEN -10 AND 10)",
    ),
)

_V8 = Migration(
    8,
    (
        # A trained network programmed into regions of a board's tiles, kept under a name
        # (deployments.proto): the model file, each region with the SHA-256 of its
        # golden targets when it was registered, as JSON [[tile, row_offset, col_offset,
        # rows, cols, "hex digest"], ...], and whether others' writes are kept off them.
        """CREATE TABLE deployments (
            board_serial TEXT NOT NULL REFERENCES boards (serial_number),
            name TEXT NOT NULL,
            principal TEXT NOT NULL,
            created_unix_s REAL NOT NULL,
            description TEXT NOT NULL,
            model BLOB NOT NULL,
            model_sha256 BLOB NOT NULL CHECK (length(model_sha256) = 32),
            regions_json TEXT NOT NULL,
            protected INTEGER NOT NULL CHECK (protected IN (0, 1)),
            PRIMARY KEY (board_serial, name)
        )""",
    ),
)

_V9 = Migration(
    9,
    (
        # Each check of a deployment's cells (deployments.proto "Checks kept"): who asked,
        # when, the three figures over all its cells and the reads' modeled cost, and per
        # region [[tile, row_offset, col_offset, rows, cols, correlation, rms µS, mean µS],
        # ...] as JSON (NULL once the check is past the latest 100 of its deployment).
        """CREATE TABLE deployment_checks (
            id INTEGER PRIMARY KEY,
            board_serial TEXT NOT NULL,
            name TEXT NOT NULL,
            checked_by TEXT NOT NULL,
            checked_unix_s REAL NOT NULL,
            correlation REAL NOT NULL,
            rms_deviation_us REAL NOT NULL,
            mean_deviation_us REAL NOT NULL,
            time_ns REAL NOT NULL,
            energy_nj REAL NOT NULL,
            regions_json TEXT,
            FOREIGN KEY (board_serial, name) REFERENCES deployments (board_serial, name)
        )""",
        "CREATE INDEX deployment_checks_by_name ON deployment_checks (board_serial, name, id)",
    ),
)

_V10 = Migration(
    10,
    (
        # The data set file a job was sent (SubmitJob dataset_file; its name is the
        # job's dataset), kept while the job is queued as its checkpoint is: NULL once it
        # has started, and for every job before (they trained on bundled sets).
        "ALTER TABLE jobs ADD COLUMN dataset_file BLOB",
    ),
)

_V11 = Migration(
    11,
    (
        # Data set files' bytes, once per SHA-256 (64 lowercase hex digits) whoever holds
        # them: principals that keep the file (dataset_files) and queued jobs waiting to
        # train on it (jobs.dataset_sha256). Deleted when nothing holds them any more.
        """CREATE TABLE dataset_blobs (
            sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
            size_bytes INTEGER NOT NULL CHECK (size_bytes > 0),
            content BLOB NOT NULL CHECK (length(content) = size_bytes)
        )""",
        # The files a principal keeps (UploadDataset), under the name last sent: when it
        # was last uploaded, and when a job last named it (0: never).
        """CREATE TABLE dataset_files (
            principal TEXT NOT NULL,
            sha256 TEXT NOT NULL REFERENCES dataset_blobs (sha256),
            name TEXT NOT NULL,
            stored_unix_s REAL NOT NULL,
            used_unix_s REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (principal, sha256)
        )""",
        # A queued job's data set file by its SHA-256, in place of its own copy in
        # jobs.dataset_file (which jobs queued before this version keep); NULL once the
        # job has started, and for jobs on bundled sets.
        "ALTER TABLE jobs ADD COLUMN dataset_sha256 TEXT REFERENCES dataset_blobs (sha256)",
        "CREATE INDEX jobs_by_dataset ON jobs (dataset_sha256) WHERE dataset_sha256 IS NOT NULL",
    ),
)

_V12 = Migration(
    12,
    (
        # How many reads of each cell a check's figures are the mean of
        # (CheckDeploymentRequest.read_repeats), and the read noise they showed (µS, each
        # cell's read-to-read standard deviation, rms over the cells; 0 from one read).
        # Checks before read once.
        "ALTER TABLE deployment_checks ADD COLUMN read_repeats INTEGER NOT NULL DEFAULT 1 "
        "CHECK (read_repeats >= 1)",
        "ALTER TABLE deployment_checks ADD COLUMN read_noise_us REAL NOT NULL DEFAULT 0 "
        "CHECK (read_noise_us >= 0)",
    ),
)

_V13 = Migration(
    13,
    (
        # A queued job's options whole (JobRunner.queued_options_json): what options_json
        # leaves out of a listing (a pat job's twin profile, a tune job's model) included,
        # read back when the server restarts; NULL once the job has started, and for jobs
        # queued before (read back from options_json).
        "ALTER TABLE jobs ADD COLUMN queued_options_json TEXT",
    ),
)

# Emulated boards answered EMU-<seed> whatever their model until they answered
# EMU-<model without "SIDRA-">-<seed> (sidra.emulator.board.emulated_serial_number), so
# that boards of two presets made from one seed are two boards to a store. A board
# recorded under an old emulator serial is renamed by the model it was last recorded
# as, with every row naming it; other serials are left as they are.
_EMULATED_SERIALS = "_emulated_serials"
_V14 = Migration(
    14,
    (
        f"""CREATE TEMP TABLE {_EMULATED_SERIALS} AS
            SELECT serial_number AS old,
                   'EMU-' || (CASE WHEN substr(model, 1, 6) = 'SIDRA-' THEN substr(model, 7)
                                   ELSE model END) || '-' || substr(serial_number, 5) AS new
            FROM boards
            WHERE serial_number GLOB 'EMU-[0-9]*' AND substr(serial_number, 5) NOT GLOB '*[^0-9]*'
        """,
        *(
            f"UPDATE {table} SET board_serial = (SELECT new FROM {_EMULATED_SERIALS} "
            f"WHERE old = {table}.board_serial) "
            f"WHERE board_serial IN (SELECT old FROM {_EMULATED_SERIALS})"
            for table in (
                "golden",
                "programs",
                "write_counts",
                "golden_patches",
                "deployments",
                "deployment_checks",
            )
        ),
        f"UPDATE boards SET serial_number = (SELECT new FROM {_EMULATED_SERIALS} "
        f"WHERE old = boards.serial_number) "
        f"WHERE serial_number IN (SELECT old FROM {_EMULATED_SERIALS})",
        f"DROP TABLE {_EMULATED_SERIALS}",
    ),
    rebuilds_tables=True,
)

MIGRATIONS: tuple[Migration, ...] = (
    _V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12, _V13, _V14,
)  # fmt: skip
"""Every migration, oldest first; versions run 1, 2, ... without gaps."""

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The version this code writes and reads."""

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_utc TEXT NOT NULL
)"""


def schema_version(db: sqlite3.Connection) -> int:
    """The store's schema version; 0 for an empty database."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def version_problem(version: int) -> str | None:
    """What is wrong with a store of schema ``version`` for this code, naming the field,
    the value, what is allowed and what to do; None when this code reads it."""
    if 1 <= version <= SCHEMA_VERSION:
        return None
    head = f"schema_version: got {version}, expected 1 .. {SCHEMA_VERSION}"
    if version > SCHEMA_VERSION:
        return (
            f"{head}: the store was written by a newer SIDRA HIL, which this one cannot "
            "read; run that version again, or `sidra state restore` a backup of it taken "
            "before that version migrated it"
        )
    return f"{head}: no SIDRA HIL state store there (no schema_version rows: an empty file?)"


def migrate(db: sqlite3.Connection) -> int:
    """Applies the migrations ``db`` lacks (``db`` in autocommit mode); returns its version.

    Raises ``ValueError`` naming both versions for a store newer than this code.
    """
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise ValueError(version_problem(current))
    for migration in MIGRATIONS[current:]:
        keys_on = bool(db.execute("PRAGMA foreign_keys").fetchone()[0])
        if migration.rebuilds_tables:  # outside a transaction: SQLite ignores it within one
            db.execute("PRAGMA foreign_keys = OFF")
        # BEGIN IMMEDIATE takes the write lock before the version is read again, so
        # two processes opening a new store at once cannot both apply a migration.
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_VERSION_TABLE)
            if schema_version(db) < migration.version:
                for statement in migration.statements:
                    db.execute(statement)
                if migration.rebuilds_tables:
                    broken = db.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise ValueError(
                            f"migration {migration.version}: rows naming no row of the table "
                            f"they refer to: {broken[:5]}"
                        )
                db.execute(
                    "INSERT INTO schema_version (version, applied_utc) VALUES (?, ?)",
                    (migration.version, datetime.now(UTC).isoformat()),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            if migration.rebuilds_tables and keys_on:
                db.execute("PRAGMA foreign_keys = ON")
    return schema_version(db)
