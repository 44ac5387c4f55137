"""One file of a job's run record, read piece by piece (jobs.proto ReadJobFile).

A running job's ``checkpoint.json`` is replaced as the job runs, and every file of its
record when it ends; pieces of two versions put together would be neither. Each answer
carries the whole file's SHA-256, so :class:`FileReading` reads the file again from its
start when the digest changes between pieces (or the file shrank below the next
offset), and checks the file it put together against the digest before returning it.
The sync and the asyncio clients drive the same reading with their own calls.
"""

from __future__ import annotations

import hashlib

from sidra.client.options import checked_job_id, checked_text
from sidra.drivers import FailedPrecondition, OutOfRange
from sidra.hil.v1 import jobs_pb2 as pb

__all__ = ["MAX_FILE_READS", "FileReading"]

MAX_FILE_READS = 5
"""Times a record file is read from its start, when it changed while it was read,
before giving up (a running job keeps its checkpoint at most once a second)."""


class FileReading:
    """The reading of record file ``name`` of job ``job_id``: ask :meth:`request`, give
    each answer to :meth:`add` (and a refusal of the offset to :meth:`refused`) until
    :attr:`whole` holds the file."""

    def __init__(self, job_id: str, name: str) -> None:
        self.job_id = checked_job_id(job_id)
        self.name = checked_text("name", name, "steps.csv")
        self.whole: bytes | None = None
        """The file, checked, once read."""
        self._pieces: list[bytes] = []
        self._offset = 0
        self._sha256: bytes | None = None
        self._reads = 1

    def request(self) -> pb.ReadJobFileRequest:
        """The next piece's request."""
        return pb.ReadJobFileRequest(job_id=self.job_id, name=self.name, offset=self._offset)

    def add(self, reply: pb.ReadJobFileResponse) -> None:
        """Takes one answer: the next piece, or news that the file was replaced."""
        if self._sha256 is not None and reply.sha256 != self._sha256:
            self._again("was replaced")  # this piece is of the new file, at an old offset
            return
        self._sha256 = reply.sha256
        self._pieces.append(reply.content)
        self._offset += len(reply.content)
        if self._offset < reply.size_bytes and reply.content:
            return
        whole = b"".join(self._pieces)
        if reply.sha256 and hashlib.sha256(whole).digest() != reply.sha256:
            self._again("does not match its SHA-256")
            return
        self.whole = whole

    def refused(self, exc: OutOfRange) -> None:
        """A refused offset: the file was replaced by a shorter one; read it again
        (any other refusal is raised)."""
        if exc.field != "offset" or self._offset == 0:
            raise exc
        self._again("was replaced by a shorter one")

    def _again(self, why: str) -> None:
        if self._reads >= MAX_FILE_READS:
            raise FailedPrecondition(
                f"name: job {self.job_id}'s record file {self.name!r} {why} while it was "
                f"read, {self._reads} times (a running job keeps its checkpoint every "
                "[state] job_checkpoint_every_s); read it again later"
            )
        self._reads += 1
        self._pieces, self._offset, self._sha256 = [], 0, None
