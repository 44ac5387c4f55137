"""Training jobs in the state store: what ran, with which options, how it ended.

A job's row is written when it is submitted and updated as it runs; its events
(progress, log lines, state changes, numbered from 0 without gaps) are appended
in batches; its run record files are written in the same transaction as its
final state, so a job that reads as succeeded always has its record. Jobs found
running when a service opens the store were cut off by the previous process's
end: :meth:`JobRecords.interrupt_running` marks them ``interrupted``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sidra.server.state.datasets import hold_blob, let_go_of_blob, sha256_hex
from sidra.server.state.store import StateStore

__all__ = [
    "FINAL_STATES",
    "JOB_STATES",
    "KEPT_CHECKPOINT",
    "FilePiece",
    "JobEventRow",
    "JobRecords",
    "JobRow",
    "QueuedJob",
]

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
"""Every state a job's row may hold (jobs.proto JobState, lowercase)."""

FINAL_STATES = frozenset(JOB_STATES[2:])
"""States a job never leaves."""

KEPT_CHECKPOINT = "; its last checkpoint is kept (checkpoint.json), to go on from"
"""What the error of a job that ended without a record adds when it kept a checkpoint as
it ran (jobs.proto, "Going on from a checkpoint")."""

_COLUMNS = (
    "id, kind, principal, dataset, options_json, state, submitted_unix_s, started_unix_s, "
    "ended_unix_s, step, total, message, error, tiles, whole_board, summary_json, priority"
)
_EVENT_COLUMNS = "idx, unix_s, kind, step, total, message, state"


@dataclass(frozen=True, slots=True)
class FilePiece:
    """Part of a stored record file (:meth:`JobRecords.read_file`)."""

    content: bytes
    size_bytes: int
    """The whole file's size, bytes."""
    sha256: bytes
    """The whole file's SHA-256; empty for a file stored before digests were kept."""


@dataclass
class JobRow:
    """One job as stored (mutable: the service updates it as the job runs)."""

    id: str
    kind: str
    principal: str
    dataset: str
    options_json: str
    state: str
    submitted_unix_s: float
    started_unix_s: float = 0.0
    ended_unix_s: float = 0.0
    step: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    tiles: tuple[int, ...] = ()
    whole_board: bool = False
    summary_json: str = ""
    priority: int = 0
    """Its place in the queue before turns: higher first (SubmitJob priority)."""
    events: int = 0
    """Events stored or held for the job (not a column: counted)."""
    files: dict[str, bytes] = field(default_factory=dict)
    """The run record's files, when read with them."""
    file_sizes: dict[str, int] = field(default_factory=dict)
    """The run record's files' sizes by name, bytes, when read with them (JobRecords.get
    ``with_sizes``)."""

    def values(self) -> tuple[object, ...]:
        return (
            self.id, self.kind, self.principal, self.dataset, self.options_json, self.state,
            self.submitted_unix_s, self.started_unix_s, self.ended_unix_s, self.step,
            self.total, self.message, self.error, json.dumps(list(self.tiles)),
            int(self.whole_board), self.summary_json, self.priority,
        )  # fmt: skip


@dataclass(frozen=True)
class JobEventRow:
    """One event of a job (jobs.proto JobEvent; kind and state lowercase)."""

    index: int
    unix_s: float
    kind: str
    step: int = 0
    total: int = 0
    message: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job waiting in the queue, with what it keeps in the store until it starts."""

    row: JobRow
    resume_checkpoint: bytes | None
    """The checkpoint it is to go on from (None: none)."""
    dataset_sha256: str | None
    """The data set file it trains on, by SHA-256 (its bytes in ``dataset_blobs``)."""
    dataset_file: bytes | None
    """Its own copy of that file: jobs queued before schema 11 only."""
    options_json: str | None = None
    """Its options whole (``row.options_json`` leaves parts out); None for jobs queued
    before schema 13, whose row's are read back."""


class JobRecords:
    """The jobs kept in ``store``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def add(
        self,
        job: JobRow,
        resume_checkpoint: bytes | None = None,
        dataset_file: bytes | None = None,
        dataset_sha256: str | None = None,
        queued_options_json: str | None = None,
    ) -> None:
        """Stores a new job; a queued one with the checkpoint it is to go on from, the
        data set file it trains on (its bytes kept once whoever else holds them:
        sidra.server.state.datasets; ``dataset_sha256``: their digest, if known) and its
        options whole (``queued_options_json``)."""
        digest = None if dataset_file is None else dataset_sha256 or sha256_hex(dataset_file)
        with self.store._writing("record job") as db:
            if dataset_file is not None and digest is not None:
                hold_blob(db, digest, dataset_file)
            db.execute(
                f"INSERT INTO jobs ({_COLUMNS}, resume_checkpoint, dataset_sha256, "
                f"queued_options_json) VALUES ({', '.join('?' * 20)})",
                (*job.values(), resume_checkpoint, digest, queued_options_json),
            )

    def last_starts(self) -> dict[str, float]:
        """When each principal's latest job started, Unix s (principals whose jobs all
        waited in the queue and never started are left out)."""
        with self.store._reading("read job starts") as db:
            rows = db.execute(
                "SELECT principal, max(started_unix_s) FROM jobs WHERE started_unix_s > 0 "
                "GROUP BY principal"
            ).fetchall()
        return {str(principal): float(when) for principal, when in rows}

    def queued(self) -> list[QueuedJob]:
        """The jobs waiting in the queue, in submission order."""
        with self.store._reading("read queued jobs") as db:
            rows = db.execute(
                f"SELECT {_COLUMNS}, resume_checkpoint, dataset_sha256, dataset_file, "
                "queued_options_json FROM jobs WHERE state = 'queued' "
                "ORDER BY submitted_unix_s, id"
            ).fetchall()
            return [
                QueuedJob(
                    _job(row, _event_count(db, str(row[0]))),
                    _blob_or_none(row[17]),
                    None if row[18] is None else str(row[18]),
                    _blob_or_none(row[19]),
                    None if row[20] is None else str(row[20]),
                )
                for row in rows
            ]

    def update(
        self,
        job: JobRow,
        events: Sequence[JobEventRow] = (),
        files: dict[str, bytes] | None = None,
    ) -> None:
        """Writes ``job``'s row, appends ``events`` and, with ``files``, its record (in
        place of every file kept before: :meth:`put_file`): one transaction, so a final
        state is never stored without its record."""
        with self.store._writing("update job") as db:
            db.execute(
                f"UPDATE jobs SET ({_COLUMNS}) = ({', '.join('?' * 17)}) WHERE id = ?",
                (*job.values(), job.id),
            )
            if job.state != "queued":  # started or ended: what it went on from is spent
                (digest,) = db.execute(
                    "SELECT dataset_sha256 FROM jobs WHERE id = ?", (job.id,)
                ).fetchone()
                db.execute(
                    "UPDATE jobs SET resume_checkpoint = NULL, dataset_file = NULL, "
                    "dataset_sha256 = NULL, queued_options_json = NULL WHERE id = ? AND "
                    "(resume_checkpoint IS NOT NULL OR dataset_file IS NOT NULL OR "
                    "dataset_sha256 IS NOT NULL OR queued_options_json IS NOT NULL)",
                    (job.id,),
                )
                if digest is not None:
                    let_go_of_blob(db, str(digest))
            db.executemany(
                f"INSERT INTO job_events (job_id, {_EVENT_COLUMNS}) VALUES ({', '.join('?' * 8)})",
                [
                    (job.id, e.index, e.unix_s, e.kind, e.step, e.total, e.message, e.state)
                    for e in events
                ],
            )
            if files is not None:
                db.execute("DELETE FROM job_files WHERE job_id = ?", (job.id,))
            for name, content in (files or {}).items():
                _put_file(db, job.id, name, content)

    def ids_starting(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` ids of stored jobs that start with ``prefix``, ascending."""
        with self.store._reading("find jobs by the start of their id") as db:
            rows = db.execute(  # a range of the primary key: no scan, no LIKE wildcards
                "SELECT id FROM jobs WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit),
            ).fetchall()
        return [str(row[0]) for row in rows]

    def get(
        self, job_id: str, *, with_files: bool = False, with_sizes: bool = False
    ) -> JobRow | None:
        """The job ``job_id``, None if the store has none of that id; ``with_files``: its
        record's files too, ``with_sizes``: their sizes."""
        with self.store._reading("read job") as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            job = _job(row, _event_count(db, job_id))
            if with_sizes:
                job.file_sizes = _file_sizes(db, job_id)
            if with_files:
                job.files = {
                    str(name): bytes(content)
                    for name, content in db.execute(
                        "SELECT name, content FROM job_files WHERE job_id = ? ORDER BY name",
                        (job_id,),
                    )
                }
        return job

    def file_sizes(self, job_id: str) -> dict[str, int]:
        """The sizes of ``job_id``'s record files by name, bytes (a running job's: the
        checkpoint it keeps)."""
        with self.store._reading("read job files") as db:
            return _file_sizes(db, job_id)

    def put_file(self, job_id: str, name: str, content: bytes) -> None:
        """Stores one record file of a running job (its latest checkpoint), replacing the
        one of that name."""
        with self.store._writing("keep job file") as db:
            _put_file(db, job_id, name, content)

    def read_file(self, job_id: str, name: str, offset: int, length: int) -> FilePiece:
        """Up to ``length`` bytes of ``job_id``'s record file ``name`` from ``offset`` on,
        with the whole file's size and digest; KeyError when the record has no such file."""
        with self.store._reading("read job file") as db:
            row = db.execute(  # substr of a BLOB counts bytes, from 1
                "SELECT substr(content, ?, ?), length(content), sha256 FROM job_files "
                "WHERE job_id = ? AND name = ?",
                (offset + 1, length, job_id, name),
            ).fetchone()
        if row is None:
            raise KeyError(name)
        return FilePiece(bytes(row[0] or b""), int(row[1]), bytes(row[2] or b""))

    def recent(
        self, principal: str = "", limit: int = 100, states: Sequence[str] = ()
    ) -> list[JobRow]:
        """Jobs, newest first; only ``principal``'s when given, only those in ``states``
        when given."""
        conditions, args = [], []
        if principal:
            conditions.append("principal = ?")
            args.append(principal)
        if states:
            conditions.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self.store._reading("list jobs") as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY submitted_unix_s DESC, id LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [_job(row, _event_count(db, str(row[0]))) for row in rows]

    def events(self, job_id: str, from_index: int = 0) -> list[JobEventRow]:
        """The stored events of ``job_id`` from ``from_index`` on, in order."""
        with self.store._reading("read job events") as db:
            rows = db.execute(
                f"SELECT {_EVENT_COLUMNS} FROM job_events WHERE job_id = ? AND idx >= ? "
                "ORDER BY idx",
                (job_id, from_index),
            ).fetchall()
        return [JobEventRow(int(r[0]), float(r[1]), str(r[2]), int(r[3]), int(r[4]),
                            str(r[5]), str(r[6])) for r in rows]  # fmt: skip

    def interrupt_running(self, now_unix_s: float) -> list[str]:
        """Marks every job stored as running ``interrupted`` (the process that ran it
        is gone, its lease with it), each with a final state event; returns their ids."""
        with self.store._writing("interrupt jobs") as db:
            ids = [str(r[0]) for r in db.execute("SELECT id FROM jobs WHERE state = 'running'")]
            for job_id in ids:
                why = "the server stopped while the job ran"
                kept = db.execute(
                    "SELECT 1 FROM job_files WHERE job_id = ? AND name = 'checkpoint.json'",
                    (job_id,),
                ).fetchone()
                if kept:
                    why += KEPT_CHECKPOINT
                index = _event_count(db, job_id)
                # It ended when it was last heard of (its last stored event, or its start),
                # not when this server found it: its time ran does not count the downtime.
                (last,) = db.execute(
                    "SELECT max(unix_s) FROM job_events WHERE job_id = ?", (job_id,)
                ).fetchone()
                (started,) = db.execute(
                    "SELECT started_unix_s FROM jobs WHERE id = ?", (job_id,)
                ).fetchone()
                heard = max(float(last or 0.0), float(started or 0.0))
                ended = min(heard, now_unix_s) if heard else now_unix_s
                db.execute(
                    "UPDATE jobs SET state = 'interrupted', ended_unix_s = ?, error = ? "
                    "WHERE id = ?",
                    (ended, why, job_id),
                )
                db.execute(
                    f"INSERT INTO job_events (job_id, {_EVENT_COLUMNS}) "
                    "VALUES (?, ?, ?, 'state', 0, 0, ?, 'interrupted')",
                    (job_id, index, now_unix_s, why),
                )
        return ids

    def delete(self, job_id: str, *, running_too: bool = False) -> int | None:
        """Deletes the ended job ``job_id`` with its events and record files; returns the
        bytes of files it had, None when the store has no ended job of that id (none at
        all, or one running). ``running_too``: one stored as running as well (a job that
        ended in a process whose store refused its end)."""
        with self.store._writing("delete job") as db:
            freed = _delete_ended(db, job_id, running_too)
        self.store.give_back_space()
        return freed

    def delete_ended_before(self, unix_s: float) -> dict[str, int]:
        """Deletes every job that ended before ``unix_s`` (its events and record files
        with it); returns the bytes of files each had, by id."""
        with self.store._writing("delete old jobs") as db:
            ids = [
                str(row[0])
                for row in db.execute(
                    "SELECT id FROM jobs WHERE state NOT IN ('queued', 'running') "
                    "AND ended_unix_s < ?",
                    (unix_s,),
                )
            ]
            gone = {job_id: _delete_ended(db, job_id) or 0 for job_id in ids}
        if gone:
            self.store.give_back_space()
        return gone


def _delete_ended(db: sqlite3.Connection, job_id: str, running_too: bool = False) -> int | None:
    row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None or row[0] == "queued" or (row[0] == "running" and not running_too):
        return None
    (freed,) = db.execute(
        "SELECT coalesce(sum(length(content)), 0) FROM job_files WHERE job_id = ?", (job_id,)
    ).fetchone()
    db.execute("DELETE FROM job_files WHERE job_id = ?", (job_id,))
    db.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
    db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    return int(freed)


def _put_file(db: sqlite3.Connection, job_id: str, name: str, content: bytes) -> None:
    """Stores one record file with its digest, in place of the one of that name."""
    db.execute(
        "INSERT OR REPLACE INTO job_files (job_id, name, content, sha256) VALUES (?, ?, ?, ?)",
        (job_id, name, content, hashlib.sha256(content).digest()),
    )


def _file_sizes(db: sqlite3.Connection, job_id: str) -> dict[str, int]:
    rows = db.execute(
        "SELECT name, length(content) FROM job_files WHERE job_id = ? ORDER BY name", (job_id,)
    ).fetchall()
    return {str(name): int(size) for name, size in rows}


def _blob_or_none(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _event_count(db: sqlite3.Connection, job_id: str) -> int:
    row = db.execute("SELECT count(*) FROM job_events WHERE job_id = ?", (job_id,)).fetchone()
    return int(row[0])


def _job(r: Sequence[Any], events: int) -> JobRow:
    return JobRow(
        id=str(r[0]), kind=str(r[1]), principal=str(r[2]), dataset=str(r[3]),
        options_json=str(r[4]), state=str(r[5]), submitted_unix_s=float(r[6]),
        started_unix_s=float(r[7]), ended_unix_s=float(r[8]), step=int(r[9]),
        total=int(r[10]), message=str(r[11]), error=str(r[12]),
        tiles=tuple(json.loads(str(r[13]))), whole_board=bool(r[14]), summary_json=str(r[15]),
        priority=int(r[16]), events=events,
    )  # fmt: skip
