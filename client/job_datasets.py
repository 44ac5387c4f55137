"""Data set files for jobs, from the client side (jobs.proto, "Data sets" and "Stored data
set files").

A job names a bundled data set, or is sent a file of the caller's own. A small file
travels inside the SubmitJob request; a larger one is first kept in the server
(UploadDataset, in pieces of :data:`DATASET_PIECE_BYTES`, so no request comes near the
server's ``max_message_mb``) and the job names it by its SHA-256; a file the server
keeps already for the caller is not sent again. Shared by the synchronous and asyncio
clients (:mod:`sidra.client.jobs`, :mod:`sidra.client.aio_jobs`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from sidra.client.options import checked_text
from sidra.drivers import FailedPrecondition, InvalidArgument
from sidra.hil.v1 import jobs_pb2 as pb

__all__ = [
    "DATASET_FILES",
    "DATASET_PIECE_BYTES",
    "INLINE_DATASET_BYTES",
    "MIN_DIGEST_DIGITS",
    "UPLOAD_CODECS",
    "DatasetDownload",
    "DatasetInfo",
    "DatasetRoom",
    "DatasetToSend",
    "UploadProgress",
    "dataset_to_send",
    "file_sha256",
    "kept_file",
    "datasets_request",
    "to_upload",
    "upload_pieces",
    "upload_timeout_s",
]

DATASET_FILES = (".npz", ".csv")
"""The data set files a job may be sent (the name's suffix, any case; jobs.proto "Data
sets")."""

INLINE_DATASET_BYTES = 512 * 1024
"""Largest file sent inside the SubmitJob request, bytes; a larger one is uploaded first.
Half the smallest ``max_message_mb`` a server may set (1 MiB), so the request fits."""

DATASET_PIECE_BYTES = 256 * 1024
"""Bytes of a file in one UploadDataset piece."""

UPLOAD_SECONDS_PER_MIB = 1.0
"""Time an upload is allowed per MiB, on top of the call's timeout, s (a 1 MiB/s link)."""

UploadProgress = Callable[[int, int], None]
"""Told ``(bytes sent, file size)`` as an upload goes (or ``(bytes received, file size)``
as a download does)."""

UPLOAD_CODECS = {
    "request_serializer": pb.DatasetChunk.SerializeToString,
    "response_deserializer": pb.DatasetFile.FromString,
}
"""UploadDataset's serializers, as a channel's ``stream_unary`` takes them."""


@dataclass(frozen=True)
class DatasetInfo:
    """A data set file the server keeps (times in seconds since the Unix epoch)."""

    name: str
    """Its name as last uploaded ("lab.csv")."""
    sha256: str
    """SHA-256 of its bytes, 64 hex digits: what a job names it by."""
    size_bytes: int
    principal: str
    """Who keeps it."""
    stored_unix_s: float
    queued_jobs: int
    """Queued jobs waiting to train on it."""
    used_unix_s: float = 0.0
    """When a job last named it (0: never)."""

    @classmethod
    def from_pb(cls, file: pb.DatasetFile) -> DatasetInfo:
        return cls(file.name, file.sha256, file.size_bytes, file.principal,
                   file.stored_unix_s, file.queued_jobs, file.used_unix_s)  # fmt: skip


@dataclass(frozen=True)
class DatasetRoom:
    """What a principal's kept files take in the server, and the most they may
    (``[limits] max_dataset_mb``), bytes."""

    stored_bytes: int
    max_bytes: int


@dataclass(frozen=True)
class DatasetToSend:
    """How a job's ``dataset`` reaches the server: a bundled set's name (no ``path``), a
    small file's bytes in the request (``content``), or a larger file uploaded first and
    named by ``sha256``."""

    name: str
    content: bytes = b""
    path: Path | None = None
    """The local file, when it is uploaded rather than sent in the request."""
    size_bytes: int = 0
    sha256: str = ""

    @property
    def uploaded(self) -> bool:
        return self.path is not None


def dataset_to_send(dataset: str | os.PathLike[str] | DatasetInfo) -> DatasetToSend:
    """``dataset`` as a job is sent it: a bundled set's name, a ``Path`` to a local .npz
    or .csv file (read here; InvalidArgument naming ``dataset`` when it cannot be, or for
    a file's name given as text), or a file the server keeps (named by its SHA-256)."""
    files = "a Path to a local .npz or .csv file, which is sent with the job"
    if isinstance(dataset, DatasetInfo):
        return DatasetToSend(dataset.name, sha256=dataset.sha256)
    if not isinstance(dataset, os.PathLike):
        name = checked_text("dataset", dataset, "digits")
        if name.lower().endswith(DATASET_FILES):  # a file's name given as text
            raise InvalidArgument(
                "dataset", name, f"a bundled data set's name (digits, iris, wine, "
                f"breast_cancer), or {files}: Path({name!r})",
            )  # fmt: skip
        return DatasetToSend(name)
    path = Path(dataset)
    try:
        size = path.stat().st_size
        if size <= INLINE_DATASET_BYTES:
            return DatasetToSend(path.name, path.read_bytes())
        digest = file_sha256(path)
    except OSError as exc:
        raise InvalidArgument("dataset", str(path), f"{files} ({exc.strerror})") from exc
    return DatasetToSend(path.name, path=path, size_bytes=size, sha256=digest)


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read a block at a time (OSError as reading
    raises it)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def to_upload(path: str | os.PathLike[str]) -> DatasetToSend:
    """The file at ``path`` as an upload sends it, whatever its size (a small one too:
    :func:`dataset_to_send` would put it in the request)."""
    sent = dataset_to_send(Path(path))
    if sent.uploaded:
        return sent
    digest = hashlib.sha256(sent.content).hexdigest()
    return DatasetToSend(sent.name, path=Path(path), size_bytes=len(sent.content), sha256=digest)


def upload_pieces(
    sent: DatasetToSend, on_progress: UploadProgress | None = None
) -> Iterator[pb.DatasetChunk]:
    """The UploadDataset stream of ``sent``'s file: the first piece names it, its size and
    digest; each carries the next :data:`DATASET_PIECE_BYTES` (the server refuses the
    whole upload if the file changed since it was hashed). ``on_progress`` hears of the
    bytes handed to gRPC so far after each piece."""
    assert sent.path is not None
    with sent.path.open("rb") as file:
        data = file.read(DATASET_PIECE_BYTES)
        yield pb.DatasetChunk(
            name=sent.name, size_bytes=sent.size_bytes, sha256=sent.sha256, data=data
        )
        done = len(data)
        while data := file.read(DATASET_PIECE_BYTES):
            if on_progress is not None:
                on_progress(done, sent.size_bytes)
            yield pb.DatasetChunk(data=data)
            done += len(data)
    if on_progress is not None:
        on_progress(done, sent.size_bytes)


MIN_DIGEST_DIGITS = 8
"""The fewest leading hex digits of a SHA-256 that name a kept file (``kept_file``)."""


def kept_file(files: list[DatasetInfo], given: str) -> DatasetInfo:
    """The one of ``files`` whose SHA-256 starts with ``given`` (the whole digest, or its
    first :data:`MIN_DIGEST_DIGITS` or more hex digits); ValueError saying why not."""
    start = given.strip().lower()
    if len(start) < MIN_DIGEST_DIGITS or any(c not in "0123456789abcdef" for c in start):
        raise ValueError(
            f"{given!r}: expected a SHA-256, or its first {MIN_DIGEST_DIGITS} or more hex digits"
        )
    found = [f for f in files if f.sha256.startswith(start)]
    if len(found) != 1:
        why = "no kept file's" if not found else f"{len(found)} kept files'"
        raise ValueError(f"{given!r}: {why} SHA-256 starts so (sidra jobs datasets list)")
    return found[0]


def datasets_request(
    principal: str = "", sha256: str = "", every_principal: bool = False
) -> pb.ListDatasetsRequest:
    """ListDatasets of ``principal``'s files (empty: the caller's), of ``sha256`` only when
    given, or of ``every_principal``'s (an admin's right)."""
    return pb.ListDatasetsRequest(
        principal=checked_text("principal", principal, ""),
        sha256=checked_text("sha256", sha256, "a SHA-256"),
        every_principal=bool(every_principal),
    )


class DatasetDownload:
    """The reading of the kept file of ``sha256`` (``principal``'s; empty: the caller's)
    into ``path``: in a ``with`` block, ask :meth:`request` and give each answer to
    :meth:`add` until :attr:`done`, then :meth:`finish`. The pieces go into a partial file
    beside ``path`` (a file of any size, never whole in memory), which becomes ``path`` only
    once its SHA-256 is the one asked for; left early, the partial file is removed and
    ``path`` is as it was."""

    def __init__(
        self,
        sha256: str,
        path: str | os.PathLike[str],
        principal: str = "",
        on_progress: UploadProgress | None = None,
    ) -> None:
        self.sha256 = checked_text("sha256", sha256, "a SHA-256").strip().lower()
        self.principal = checked_text("principal", principal, "")
        self.path = Path(path)
        self.name = ""
        """The file's name in the server, once the first piece is in."""
        self.done = False
        self._on_progress = on_progress
        self._partial = self.path.with_name(f".{self.path.name}.{self.sha256[:12]}.part")
        self._file: BinaryIO | None = None
        self._digest = hashlib.sha256()
        self._offset = 0

    def __enter__(self) -> DatasetDownload:
        try:
            self._file = self._partial.open("wb")
        except OSError as exc:
            raise InvalidArgument(
                "path", str(self.path), f"a file that can be written ({exc.strerror})"
            ) from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
        self._partial.unlink(missing_ok=True)  # moved into place by finish(), or dropped

    def request(self) -> pb.ReadDatasetRequest:
        """The next piece's request."""
        return pb.ReadDatasetRequest(
            sha256=self.sha256, principal=self.principal, offset=self._offset
        )

    def add(self, reply: pb.ReadDatasetResponse) -> None:
        """Takes one answer: the next piece."""
        assert self._file is not None, "used outside its with block"
        self._file.write(reply.content)
        self._digest.update(reply.content)
        self._offset += len(reply.content)
        self.name = reply.name
        if self._on_progress is not None:
            self._on_progress(self._offset, reply.size_bytes)
        self.done = self._offset >= reply.size_bytes or not reply.content

    def finish(self) -> Path:
        """The file, checked, moved into place at :attr:`path`."""
        assert self._file is not None and self.done, "finished before the last piece"
        self._file.close()
        got = self._digest.hexdigest()
        if got != self.sha256:  # a kept file never changes: the store is damaged
            raise FailedPrecondition(
                f"sha256: the server's file {self.name!r} read back has SHA-256 {got}, not "
                f"{self.sha256} it is kept under (its store is damaged); {self.path} not written"
            )
        try:
            os.replace(self._partial, self.path)
        except OSError as exc:  # a folder of that name, a file system gone read-only
            raise InvalidArgument(
                "path", str(self.path), f"a file that can be written ({exc.strerror})"
            ) from exc
        return self.path


def upload_timeout_s(sent: DatasetToSend, timeout_s: float) -> float:
    """The deadline of ``sent``'s upload: the call's ``timeout_s`` and
    :data:`UPLOAD_SECONDS_PER_MIB` per MiB."""
    return timeout_s + UPLOAD_SECONDS_PER_MIB * sent.size_bytes / 2**20
