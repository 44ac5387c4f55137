"""Data set files in the state store, kept once per SHA-256 (jobs.proto, "Stored data set
files").

A file's bytes are one ``dataset_blobs`` row, held by the principals that keep the file
(``dataset_files``: UploadDataset) and by the queued jobs that wait to train on it
(``jobs.dataset_sha256``). Whoever lets go last deletes the bytes: a principal deleting
its file, or a job starting (or ending unstarted) when no one else holds them. So a
file sent with sixteen queued jobs is stored once, and deleting a kept file never takes
it from a job waiting on it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sidra.server.state.store import StateStore

__all__ = [
    "DatasetFileRow", "DatasetRecords", "HeldFile", "hold_blob", "let_go_of_blob", "sha256_hex",
]  # fmt: skip


class HeldFile(Protocol):
    """A file's bytes at hand and their digest, computed once by whoever received them
    (sidra.server.jobs.runner.HeldDataset)."""

    @property
    def content(self) -> bytes: ...

    @property
    def sha256(self) -> str:
        """SHA-256 of ``content``, 64 lowercase hex digits."""
        ...


@dataclass(frozen=True, slots=True)
class DatasetFileRow:
    """One data set file a principal keeps."""

    principal: str
    sha256: str
    """SHA-256 of its bytes, 64 lowercase hex digits."""
    name: str
    """Its name as last uploaded ("lab.csv")."""
    size_bytes: int
    stored_unix_s: float
    """When it was last uploaded, Unix s."""
    used_unix_s: float
    """When a job last named it, Unix s (0: never)."""
    queued_jobs: int
    """Queued jobs (of any principal) waiting to train on these bytes."""


def sha256_hex(content: bytes) -> str:
    """The digest a stored file goes by."""
    return hashlib.sha256(content).hexdigest()


_FILE_COLUMNS = (
    "f.principal, f.sha256, f.name, b.size_bytes, f.stored_unix_s, f.used_unix_s, "
    "(SELECT count(*) FROM jobs j WHERE j.dataset_sha256 = f.sha256 AND j.state = 'queued')"
)


class DatasetRecords:
    """The data set files kept in ``store``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def keep(
        self, principal: str, name: str, file: HeldFile, now_unix_s: float, max_bytes: int
    ) -> DatasetFileRow | int:
        """Keeps ``file`` for ``principal`` under ``name`` (the same bytes kept before:
        renamed, one copy); returns the file as kept, or, keeping nothing, the bytes
        ``principal``'s other files take when ``file`` would take them past
        ``max_bytes`` (checked in the write, so two uploads at once cannot both pass)."""
        content, digest = file.content, file.sha256
        with self.store._writing("keep data set file") as db:
            (others,) = db.execute(
                "SELECT coalesce(sum(b.size_bytes), 0) FROM dataset_files f JOIN dataset_blobs "
                "b USING (sha256) WHERE f.principal = ? AND f.sha256 != ?",
                (principal, digest),
            ).fetchone()
            if int(others) + len(content) > max_bytes:
                return int(others)
            hold_blob(db, digest, content)
            db.execute(
                "INSERT INTO dataset_files (principal, sha256, name, stored_unix_s) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (principal, sha256) DO UPDATE SET "
                "name = excluded.name, stored_unix_s = excluded.stored_unix_s",
                (principal, digest, name, now_unix_s),
            )
            row = _file(db, principal, digest)
        assert row is not None  # written in this transaction
        return row

    def files(self, principal: str | None, sha256: str = "") -> list[DatasetFileRow]:
        """``principal``'s files (None: every principal's), newest first (only those of
        ``sha256`` when given)."""
        conditions, args = [], []
        if principal is not None:
            conditions.append("f.principal = ?")
            args.append(principal)
        if sha256:
            conditions.append("f.sha256 = ?")
            args.append(sha256)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self.store._reading("list data set files") as db:
            rows = db.execute(
                f"SELECT {_FILE_COLUMNS} FROM dataset_files f JOIN dataset_blobs b USING "
                f"(sha256) {where} ORDER BY f.stored_unix_s DESC, f.sha256, f.principal",
                args,
            ).fetchall()
        return [_row(r) for r in rows]

    def stored_bytes(self, principal: str | None) -> int:
        """What ``principal``'s files take together, bytes; None: what every principal's
        take in the store (bytes kept by several principals counted once)."""
        if principal is None:
            query, args = (
                "SELECT coalesce(sum(size_bytes), 0) FROM dataset_blobs WHERE sha256 IN "
                "(SELECT sha256 FROM dataset_files)", [],
            )  # fmt: skip
        else:
            query, args = (
                "SELECT coalesce(sum(b.size_bytes), 0) FROM dataset_files f "
                "JOIN dataset_blobs b USING (sha256) WHERE f.principal = ?", [principal],
            )  # fmt: skip
        with self.store._reading("size data set files") as db:
            (total,) = db.execute(query, args).fetchone()
        return int(total)

    def content(self, principal: str, sha256: str) -> tuple[DatasetFileRow, bytes] | None:
        """``principal``'s file of ``sha256`` and its bytes; None when it keeps none."""
        with self.store._reading("read data set file") as db:
            row = _file(db, principal, sha256)
            if row is None:
                return None
            (content,) = db.execute(
                "SELECT content FROM dataset_blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return row, bytes(content)

    def piece(
        self, principal: str, sha256: str, offset: int, length: int
    ) -> tuple[DatasetFileRow, bytes] | None:
        """Up to ``length`` bytes of ``principal``'s file of ``sha256`` from ``offset`` on,
        with the file; None when it keeps none. Only the piece leaves the store."""
        with self.store._reading("read data set file piece") as db:
            row = _file(db, principal, sha256)
            if row is None:
                return None
            (content,) = db.execute(  # substr of a BLOB counts bytes, from 1
                "SELECT substr(content, ?, ?) FROM dataset_blobs WHERE sha256 = ?",
                (offset + 1, length, sha256),
            ).fetchone()
        return row, bytes(content or b"")

    def used(self, principal: str, sha256: str, now_unix_s: float) -> None:
        """Notes that a job of ``principal`` named its file of ``sha256`` now."""
        with self.store._writing("note data set file used") as db:
            db.execute(
                "UPDATE dataset_files SET used_unix_s = ? WHERE principal = ? AND sha256 = ?",
                (now_unix_s, principal, sha256),
            )

    def delete_unused_since(self, unix_s: float) -> list[DatasetFileRow]:
        """Deletes every file neither uploaded nor named by a job since ``unix_s`` (its
        bytes with it when nothing else holds them); returns those deleted."""
        with self.store._writing("delete unused data set files") as db:
            rows = [
                _row(r)
                for r in db.execute(
                    f"SELECT {_FILE_COLUMNS} FROM dataset_files f JOIN dataset_blobs b "
                    "USING (sha256) WHERE max(f.stored_unix_s, f.used_unix_s) < ?",
                    (unix_s,),
                )
            ]
            for row in rows:
                db.execute(
                    "DELETE FROM dataset_files WHERE principal = ? AND sha256 = ?",
                    (row.principal, row.sha256),
                )
                let_go_of_blob(db, row.sha256)
        if rows:
            self.store.give_back_space()
        return rows

    def blob(self, sha256: str) -> bytes | None:
        """The bytes kept under ``sha256``, whoever holds them; None when none are."""
        with self.store._reading("read data set bytes") as db:
            row = db.execute(
                "SELECT content FROM dataset_blobs WHERE sha256 = ?", (sha256,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, principal: str, sha256: str) -> int | None:
        """Forgets ``principal``'s file of ``sha256``; returns the bytes the store gave
        back (0 while another principal or a queued job holds them), None when it keeps
        no such file."""
        with self.store._writing("delete data set file") as db:
            gone = db.execute(
                "DELETE FROM dataset_files WHERE principal = ? AND sha256 = ?", (principal, sha256)
            ).rowcount
            freed = let_go_of_blob(db, sha256) if gone else None
        if freed:
            self.store.give_back_space()
        return freed


def hold_blob(db: sqlite3.Connection, sha256: str, content: bytes) -> None:
    """Stores ``content`` under ``sha256`` unless it is stored already (in ``db``'s
    write transaction; the caller then holds it by a row naming the digest)."""
    db.execute(
        "INSERT OR IGNORE INTO dataset_blobs (sha256, size_bytes, content) VALUES (?, ?, ?)",
        (sha256, len(content), content),
    )


def let_go_of_blob(db: sqlite3.Connection, sha256: str) -> int:
    """Deletes the bytes of ``sha256`` when no principal keeps them and no queued job
    waits on them (in ``db``'s write transaction, after the caller's row let go);
    returns the bytes freed (0: still held)."""
    held = db.execute(
        "SELECT EXISTS (SELECT 1 FROM dataset_files WHERE sha256 = ?) "
        "OR EXISTS (SELECT 1 FROM jobs WHERE dataset_sha256 = ?)",
        (sha256, sha256),
    ).fetchone()[0]
    if held:
        return 0
    row = db.execute("SELECT size_bytes FROM dataset_blobs WHERE sha256 = ?", (sha256,)).fetchone()
    if row is None:
        return 0
    db.execute("DELETE FROM dataset_blobs WHERE sha256 = ?", (sha256,))
    return int(row[0])


def _file(db: sqlite3.Connection, principal: str, sha256: str) -> DatasetFileRow | None:
    row = db.execute(
        f"SELECT {_FILE_COLUMNS} FROM dataset_files f JOIN dataset_blobs b USING (sha256) "
        "WHERE f.principal = ? AND f.sha256 = ?",
        (principal, sha256),
    ).fetchone()
    return None if row is None else _row(row)


def _row(r: Sequence[Any]) -> DatasetFileRow:
    principal, digest, name, size, stored, used, queued = r
    return DatasetFileRow(
        str(principal), str(digest), str(name), int(size), float(stored), float(used),
        int(queued),
    )  # fmt: skip
