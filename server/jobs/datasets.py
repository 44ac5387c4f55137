"""Data set files kept in the server for jobs (jobs.proto, "Stored data set files"):
received in pieces (UploadDataset), checked whole as a job would read them before
anything is kept, listed, deleted, and handed to a SubmitJob that names one by its
SHA-256.

A file sent in pieces may be larger than any one request; it is held in memory while it
arrives (bounded by the principal's ``[limits] max_dataset_mb`` before the first byte is
taken) since training reads it whole anyway, once, hashed as it arrives, and neither
copied nor hashed again on its way to the store.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from sidra.drivers import (
    DatasetNotKept,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    ResourceExhausted,
    SidraError,
)
from sidra.hil.v1 import jobs_pb2 as pb
from sidra.server.jobs.pieces import piece_length
from sidra.server.jobs.runner import DATASET_KEPT, HeldDataset, JobRunner
from sidra.server.jobs.submission import check_dataset_file
from sidra.server.limits import MIB, RefusalListener
from sidra.server.parsing import parse_request
from sidra.server.state.datasets import DatasetFileRow, DatasetRecords
from sidra.server.state.store import StateStore

__all__ = ["DATASET_SHA256_FIELD", "DatasetFiles", "checked_sha256"]

DATASET_SHA256_FIELD = "dataset_sha256"
"""SubmitJob's field naming a stored data set file."""

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
"""How often, at most, the files past the retention (``[state] dataset_retention_days``)
are deleted, s."""

UPLOAD_FIELDS = ("name", "data")
"""What UploadDataset's refusals of a file's name and bytes name (DatasetChunk's fields)."""

_HEX64 = re.compile(r"[0-9a-f]{64}")


def checked_sha256(field: str, value: str) -> str:
    """``value`` as a stored file's digest (64 hex digits, any case, given lowercase);
    InvalidArgument naming ``field`` otherwise."""
    digest = value.strip().lower()
    if not _HEX64.fullmatch(digest):
        raise InvalidArgument(field, value, "a SHA-256 as 64 hex digits")
    return digest


class DatasetFiles:
    """The data set files ``store`` keeps, at most ``max_bytes`` per principal, checked by
    the runner ``runner()`` gives (refusing when it cannot load: the training extra).
    ``on_refusal`` hears "max_dataset_mb" each time that limit refuses an upload."""

    def __init__(
        self,
        store: StateStore | None,
        runner: Callable[[], JobRunner],
        max_bytes: int,
        clock: Callable[[], float] = time.time,
        retention_s: float | None = None,
        on_refusal: RefusalListener | None = None,
    ) -> None:
        self._records = None if store is None else DatasetRecords(store)
        self._runner = runner
        self.max_bytes = max_bytes
        self._clock = clock
        self._on_refusal = on_refusal
        self.retention_s = retention_s
        """How long a file neither uploaded nor named by a job since is kept, s (None:
        until deleted)."""
        self._pruned_s = -math.inf
        self._prune_if_due()

    def prune(self) -> list[DatasetFileRow]:
        """Deletes the files past the retention (none without one); returns them. Run when
        the server starts and, at most every :data:`PRUNE_EVERY_S`, when files are listed
        or uploaded."""
        self._pruned_s = time.monotonic()
        if self.retention_s is None or self._records is None:
            return []
        try:
            gone = self._records.delete_unused_since(self._clock() - self.retention_s)
        except SidraError as exc:  # kept for the next time
            log.warning("data set files past their retention not deleted: %s", exc)
            return []
        for row in gone:
            log.info("data set file %s (SHA-256 %s) of %s deleted: unused for %g days",
                     row.name, row.sha256, row.principal, self.retention_s / 86_400)  # fmt: skip
        return gone

    def _prune_if_due(self) -> None:
        if time.monotonic() - self._pruned_s >= PRUNE_EVERY_S:
            self.prune()

    def upload(
        self, principal: str, chunks: Iterable[bytes], check_size: Callable[[int], None]
    ) -> DatasetFileRow:
        """Receives an UploadDataset stream of ``principal`` (each piece's raw bytes, sized
        by ``check_size`` before it is parsed), checks the whole file and keeps it."""
        records = self._store()
        self._prune_if_due()
        first: pb.DatasetChunk | None = None
        content = bytearray()
        hashed = hashlib.sha256()  # as the pieces arrive: the file is hashed once
        size = 0
        for k, data in enumerate(chunks):
            check_size(len(data))
            chunk = parse_request(pb.DatasetChunk, data)
            if first is None:
                first = chunk
                size = self._checked_header(records, principal, chunk)
            elif chunk.name or chunk.size_bytes or chunk.sha256:
                raise InvalidArgument(
                    "chunks", f"piece {k} sets name, size_bytes or sha256",
                    "those in the first piece only",
                )  # fmt: skip
            if len(content) + len(chunk.data) > size:
                raise InvalidArgument(
                    "chunks", f"{len(content) + len(chunk.data)} bytes by piece {k}",
                    f"{size} bytes in all, as the first piece's size_bytes says",
                )  # fmt: skip
            content += chunk.data
            hashed.update(chunk.data)
        if first is None:
            raise InvalidArgument("chunks", "no piece", "at least one DatasetChunk")
        if len(content) != size:
            raise InvalidArgument(
                "chunks", f"{len(content)} bytes sent", f"{size} bytes, as size_bytes says"
            )
        digest = hashed.hexdigest()
        if digest != first.sha256.lower():
            raise InvalidArgument(
                "chunks", f"bytes of SHA-256 {digest}",
                f"the SHA-256 the first piece names, {first.sha256.lower()} (a piece lost "
                "or changed on the way, or the file changed while it was read)",
            )  # fmt: skip
        # The bytearray itself (bytes-like for the parsers and sqlite): no second copy.
        whole = HeldDataset(content, digest)  # type: ignore[arg-type]
        check_dataset_file(self._runner(), first.name, whole, UPLOAD_FIELDS)
        kept = records.keep(principal, first.name, whole, self._clock(), self.max_bytes)
        if isinstance(kept, int):  # another upload of the principal's was kept meanwhile
            raise self._over_quota(principal, size, kept)
        log.info("data set file %s (%d bytes, SHA-256 %s) kept for %s", kept.name,
                 kept.size_bytes, kept.sha256, principal)  # fmt: skip
        return kept

    def _checked_header(
        self, records: DatasetRecords, principal: str, first: pb.DatasetChunk
    ) -> int:
        """The file's size the first piece announces, checked with its name and digest
        and against what ``principal`` keeps already; refused before any byte is taken."""
        if not (first.name and first.size_bytes and first.sha256):
            raise InvalidArgument(
                "chunks", "a first piece without name, size_bytes or sha256",
                "the file's name, its whole size and its SHA-256 in the first piece",
            )  # fmt: skip
        check_dataset_file(self._runner(), first.name, None, UPLOAD_FIELDS)
        digest = checked_sha256("sha256", first.sha256)
        size = int(first.size_bytes)
        kept = records.stored_bytes(principal)
        kept -= sum(f.size_bytes for f in records.files(principal, digest))  # sent again
        if kept + size > self.max_bytes:
            raise self._over_quota(principal, size, kept)
        return size

    def _over_quota(self, principal: str, size: int, kept: int) -> ResourceExhausted:
        if self._on_refusal is not None:
            self._on_refusal("max_dataset_mb")
        return ResourceExhausted(
            "limits.max_dataset_mb",
            f"a file of {size} bytes ({size / MIB:.1f} MiB) while principal {principal!r} "
            f"keeps {kept} bytes",
            f"at most {self.max_bytes} bytes ({self.max_bytes / MIB:g} MiB) of data set files "
            "per principal; delete some (sidra jobs datasets delete SHA256)",
        )

    def files(self, principal: str | None, sha256: str = "") -> list[DatasetFileRow]:
        """``principal``'s files (None: every principal's), newest first (only those of
        ``sha256`` when given)."""
        digest = checked_sha256("sha256", sha256) if sha256 else ""
        records = self._store()
        self._prune_if_due()
        return records.files(principal, digest)

    def stored_bytes(self, principal: str | None) -> int:
        """What ``principal``'s files take together (None: every principal's, bytes kept
        by several counted once), bytes."""
        return self._store().stored_bytes(principal)

    def read(
        self, principal: str, sha256: str, offset: int, max_bytes: int, most: int
    ) -> tuple[DatasetFileRow, bytes]:
        """Up to ``max_bytes`` (at most ``most``: sidra.server.jobs.pieces) bytes of
        ``principal``'s file of ``sha256`` from ``offset`` on, with the file. DatasetNotKept when
        it keeps no such file; OutOfRange naming ``offset`` or ``max_bytes``."""
        digest = checked_sha256("sha256", sha256)
        # SQLite's integers stop at 2^63 - 1: an offset past every file is cut to one that
        # is still past every file (refused below), not an OverflowError (INTERNAL).
        within = min(offset, 2**62)
        found = self._store().piece(principal, digest, within, piece_length(max_bytes, most))
        if found is None:
            raise DatasetNotKept(_missing("sha256", principal, digest))
        row, piece = found
        if offset > row.size_bytes:
            raise OutOfRange("offset", offset, f"0 .. {row.size_bytes} (the size of {row.name})")
        return row, piece

    def delete(self, principal: str, sha256: str) -> int:
        """Forgets ``principal``'s file of ``sha256``; returns the bytes the store gave
        back (0 while others hold them). DatasetNotKept when it keeps no such file."""
        digest = checked_sha256("sha256", sha256)
        freed = self._store().delete(principal, digest)
        if freed is None:
            raise DatasetNotKept(_missing("sha256", principal, digest))
        return freed

    def named(self, principal: str, sha256: str, dataset: str) -> tuple[str, HeldDataset]:
        """SubmitJob's data set name and file for ``dataset_sha256`` = ``sha256`` of
        ``principal``: the stored name, or ``dataset`` when given (the same suffix), and
        the bytes with the digest they are stored by (checked when they were uploaded:
        not hashed again). The job, once taken, tells :meth:`used`."""
        digest = checked_sha256(DATASET_SHA256_FIELD, sha256)
        found = self._store().content(principal, digest)
        if found is None:
            raise DatasetNotKept(_missing(DATASET_SHA256_FIELD, principal, digest))
        row, content = found
        held = HeldDataset(content, digest, DATASET_KEPT)
        if not dataset:
            return row.name, held
        stored, given = PurePosixPath(row.name).suffix.lower(), PurePosixPath(dataset).suffix
        if given.lower() != stored:
            raise InvalidArgument(
                "dataset", dataset, f"empty (the stored file's name, {row.name!r}), or a file "
                f"name ending in {stored} as the stored file {sha256[:16]} is read as one",
            )  # fmt: skip
        return dataset, held

    def used(self, principal: str, sha256: str) -> None:
        """A job of ``principal`` was taken (started or queued) on its file of ``sha256``:
        what the retention counts from (a refused submission is no use of the file)."""
        digest = checked_sha256(DATASET_SHA256_FIELD, sha256)
        self._store().used(principal, digest, self._clock())

    def _store(self) -> DatasetRecords:
        if self._records is None:
            raise FailedPrecondition(
                "data set files need the server's state store to keep them (sidra serve "
                "always has one; this server was built without)"
            )
        return self._records


def _missing(field: str, principal: str, digest: str) -> str:
    return (
        f"{field}: no data set file of SHA-256 {digest} kept for principal "
        f"{principal!r} (upload it with UploadDataset; ListDatasets lists the files kept)"
    )
