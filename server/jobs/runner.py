"""What runs a job's training loop: the ``sidra.jobs`` entry point, loaded when needed.

The service imports no training code (pyproject's import contracts): the package
registers its runner (``sidra.cli.job_runner:ServerJobs``: the training package's
jobs, and ``pat``, whose twin needs the emulator's profile model) under the
``sidra.jobs`` entry point group, and :func:`load_runner` loads it at the first
SubmitJob. Loading fails without the ``training`` extra (scikit-learn), and the
job is then refused with :class:`~sidra.drivers.FailedPrecondition` naming the
extra; the rest of the service never needs it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol

from sidra.drivers import Board, BoardInfo, FailedPrecondition, TileUse

__all__ = [
    "CHECKPOINT_FILE",
    "DATASET_KEPT",
    "DATASET_QUEUED",
    "DATASET_SENT",
    "RUN_FILE",
    "ENTRY_POINT_GROUP",
    "STOPPED_AT",
    "TRAINING_EXTRA",
    "JobReporter",
    "RecordFile",
    "HeldDataset",
    "JobRunner",
    "RunnerLoader",
    "SentDataset",
    "StoredDataset",
    "load_runner",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "sidra.jobs"
"""Entry point group of the job runner (one entry, ``training``)."""

TRAINING_EXTRA = "pip install 'sidra-hil[training]'"
"""How to install what jobs need, as refusals say it."""

CHECKPOINT_FILE = "checkpoint.json"
"""The record file a job that stopped early keeps its checkpoint in (jobs.proto)."""

RUN_FILE = "run.json"
"""The record file in which the server names the machine and software that ran a job
(jobs.proto, Job.files); the client completes it when it saves the record."""

STOPPED_AT = "stopped_at_"
"""Prefix of the summary key by which a run stopped early says where it ended
(``stopped_at_step``, ``stopped_at_epoch``, ``stopped_at_run``): sidra.training writes it."""


RecordFile = bytes | Callable[[], bytes]
"""A record file a job returns: its bytes, or what makes them (its plot), called once
the job has let go of its tiles, so that drawing it keeps no tile from the next job."""


class JobReporter(Protocol):
    """Where a running job reports; either call raises to stop a cancelled job."""

    def progress(self, step: int, total: int, message: str) -> None: ...

    def log(self, line: str) -> None: ...

    def keep_tiles(self, tiles: tuple[int, ...]) -> None:
        """Narrows the job's lease of the whole board to ``tiles``: a job that needed
        the whole board only for its start frees the rest for others."""
        ...

    def keep_file(self, name: str, content: bytes) -> None:
        """Stores one record file while the job runs (its latest checkpoint), at once: a
        server that dies mid-job leaves it for a new job to go on from."""
        ...

    def keep_deployment(self, name: str, model: bytes, description: str) -> dict[str, Any]:
        """Registers ``model`` under deployment ``name`` again, in place of itself (its
        regions and protection), as the job's principal (a tune job: its tiles hold the
        tuned model now). The deployment as JSON values; SidraError saying why not."""
        ...


DATASET_SENT = "sent with the job"
"""How a job's log says its data set file came: in the SubmitJob request
(``dataset_file``)."""

DATASET_KEPT = "kept on the server, uploaded before the job"
"""How a job's log says its data set file came: a file the principal uploaded
(UploadDataset) and the job named by SHA-256 (``dataset_sha256``), not sent with it."""

DATASET_QUEUED = "kept on the server while the job was queued"
"""How a job's log says its data set file came when it was queued before the server
restarted: the store keeps the file, sent or named alike, and not which."""


class SentDataset(Protocol):
    """A data set file a job was sent, known by its SHA-256 and read only when needed: a
    queued job's placement asks for the shape of its data every pass of the queue, which
    the runner keeps by digest, so the bytes (kept in the store) are read once."""

    @property
    def sha256(self) -> str:
        """SHA-256 of the file's bytes, 64 lowercase hex digits."""
        ...

    @property
    def origin(self) -> str:
        """How the file reached the server, as the job's log says it (:data:`DATASET_SENT`,
        :data:`DATASET_KEPT`, :data:`DATASET_QUEUED`)."""
        ...

    def read(self) -> bytes:
        """The file's bytes."""
        ...


@dataclass(frozen=True, eq=False)
class HeldDataset:
    """A sent file whose bytes are at hand (a submission's, an upload's): hashed once,
    here, or as it arrived (``sha256`` given: the caller's digest of ``content``)."""

    content: bytes
    sha256: str = ""
    origin: str = DATASET_SENT
    """How it reached the server: in the request, unless a stored file was named."""

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", hashlib.sha256(self.content).hexdigest())

    def read(self) -> bytes:
        return self.content


@dataclass(frozen=True, eq=False)
class StoredDataset:
    """A sent file kept in the state store (a queued job's): read from it when asked."""

    sha256: str
    load: Callable[[str], bytes]
    """Reads the bytes of a SHA-256 from the store."""
    origin: str
    """How it reached the server (the submission's, or :data:`DATASET_QUEUED`)."""

    def read(self) -> bytes:
        return self.load(self.sha256)


class JobRunner(Protocol):
    """Runs training jobs on a board (``sidra.cli.job_runner.ServerJobs``)."""

    kinds: tuple[str, ...]
    """Job kinds: the names of the ``sidra train`` commands a job can run."""
    datasets: tuple[str, ...]
    """Data sets a job may name."""
    dataset_files: tuple[str, ...]
    """The suffixes (lowercase, with the dot) of the data set files a job may be sent."""
    resumable: tuple[str, ...]
    """Kinds that keep a checkpoint when they stop early and go on from one."""

    def options(self, kind: str, options_json: str) -> Any:
        """The validated options; ValueError naming the option, value and what is allowed."""
        ...

    def options_json(self, options: Any) -> str:
        """Every option's value, defaults included, as JSON."""
        ...

    def queued_options_json(self, options: Any) -> str:
        """The options whole, as JSON: what :meth:`options_json` leaves out (a pat job's
        twin profile, a tune job's model) included; a queued job is read back from it
        when the server restarts."""
        ...

    def claim(
        self,
        kind: str,
        options: Any,
        dataset: str,
        info: BoardInfo,
        use: TileUse | None = None,
        resume: bytes | None = None,
        dataset_file: SentDataset | None = None,
    ) -> tuple[tuple[int, ...], bool]:
        """The tiles the job writes (its layers placed on a board described by ``info`` for
        ``dataset``), and whether it needs the whole board; ValueError when they do not
        fit. Given no tiles, a job going on from ``resume`` (a checkpoint, checked) takes
        the tiles it ran on first, any other those ``use`` says nobody else uses.
        ``dataset_file``: the file ``dataset`` names, sent with the job or kept on the
        server (None: ``dataset`` is one of :attr:`datasets`), read only when its shape is
        not known yet."""
        ...

    def deployment_kept(self, kind: str, options: Any) -> str:
        """The deployment a ``kind`` job of ``options`` registers again in place of
        itself when it ends (a tune job given one); empty: none."""
        ...

    def check_dataset(self, dataset: str, content: SentDataset) -> None:
        """ValueError saying what is wrong with a data set file named ``dataset`` (a file
        name ending in one of :attr:`dataset_files`) of ``content``, read as the job would
        (a file of a digest checked before is not read again)."""
        ...

    def check_resume(
        self,
        kind: str,
        options: Any,
        dataset: str,
        checkpoint: bytes,
        dataset_file: bytes | None = None,
    ) -> None:
        """ValueError saying why a ``kind`` job of ``options`` on ``dataset`` (of
        ``dataset_file``, when sent) cannot go on from ``checkpoint`` (a kind that keeps
        none, another run's, damaged)."""
        ...

    def run(
        self,
        kind: str,
        options: Any,
        dataset: str,
        board: Board,
        reporter: JobReporter,
        stop: threading.Event,
        resume: bytes | None = None,
        checkpoint_every_s: float = 60.0,
        dataset_file: bytes | None = None,
        dataset_origin: str = DATASET_SENT,
    ) -> tuple[dict[str, Any], dict[str, RecordFile]]:
        """Runs the job; returns its summary and its record files by name (a file that
        takes long to make, its plot, as what makes it). Once ``stop`` is
        set the job ends at its next step, epoch or run boundary and returns the record of
        what it did, its summary naming where (``stopped_at_step``, ``stopped_at_epoch`` or
        ``stopped_at_run``); a runner that does not is stopped at its next board call
        ``CANCEL_GRACE_S`` later. A job of a :attr:`resumable` kind stopped so keeps its
        ``checkpoint.json`` among its files; ``resume``, such a file's bytes (checked by
        :meth:`check_resume`), is where the job goes on from. While it runs, such a job
        hands its latest checkpoint to ``reporter.keep_file`` every ``checkpoint_every_s``.
        ``dataset_file``: the content of the file ``dataset`` names, sent with the job or
        kept on the server; ``dataset_origin`` says which, as the job's log is to say it
        (:data:`DATASET_SENT`, :data:`DATASET_KEPT`, :data:`DATASET_QUEUED`).

        A job that fails after doing part of its work (its board gone mid-way) may keep
        the record of that part: the exception it raises has an ``outcome`` attribute,
        the summary and files as returned here. The job fails, its error the exception's
        message, and its record is stored as a finished job's is."""
        ...


RunnerLoader = Callable[[], JobRunner]


def load_runner() -> JobRunner:
    """The installed job runner; FailedPrecondition naming the training extra when the
    training package or what it needs cannot be imported."""
    found = entry_points(group=ENTRY_POINT_GROUP, name="training")
    if not found:
        raise FailedPrecondition(
            f"training jobs need the training package, which is not installed ({TRAINING_EXTRA}"
            " on the server)"
        )
    (entry,) = tuple(found)
    try:
        runner_class = entry.load()
    except ImportError as exc:
        log.warning("training jobs unavailable: %s", exc)
        raise FailedPrecondition(
            f"training jobs need the 'training' extra on the server ({TRAINING_EXTRA}): {exc}"
        ) from exc
    runner: JobRunner = runner_class()
    return runner
