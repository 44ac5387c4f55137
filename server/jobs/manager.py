"""Training jobs in the service: submitted, run on a thread, watched, cancelled (jobs.proto).

:class:`JobManager` owns every job this process runs. A job

- is checked whole before anything happens (kind, data set, options, tiles, the
  principal's ``[limits] max_jobs``), so a refused SubmitJob leaves no trace;
- opens a session of its own and leases its tiles (waiting ``lease_wait_s`` for a
  holder), then is stored as running and started on a thread; or, submitted with
  ``queue``, is stored as queued and started so by the queue once its tiles are free
  and its principal under ``max_jobs`` (sidra.server.jobs.queue);
- runs the training loop on a :class:`~sidra.server.jobs.board.JobBoard`: the
  served board through the same turns and lease admission as clients' calls;
- reports progress and log lines as numbered events, kept in memory for watchers
  and written to the state store about once a second;
- once cancelled, ends at its next step, epoch or run boundary with the record of what
  it did (the runner's ``stop``), or at its next board call with none when cancelled
  twice or still running ``CANCEL_GRACE_S`` after the first cancel;
- closes its session when it ends, however it ends (the lease is released and
  perturbed cells restored before the final state is announced), then stores its
  final state with its record in one transaction.

The job's session is renewed from a thread of its own, so host work between board
calls (loading the data, a digital pre-training) never lets the lease lapse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sidra.drivers import (
    BoardReset,
    FailedPrecondition,
    InvalidArgument,
    LeaseHeld,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    SidraError,
    TileUse,
)
from sidra.drivers.monitor import LinkMonitored
from sidra.drivers.requests import GetBoardInfoRequest
from sidra.server.jobs.board import JobBoard
from sidra.server.jobs.live import LiveJob, cancelled_text, ended, progress_interval_s
from sidra.server.jobs.pieces import piece_length
from sidra.server.jobs.queue import TILES, JobQueue, Waiting
from sidra.server.jobs.recorder import BehindRecorder
from sidra.server.jobs.runner import (
    CHECKPOINT_FILE,
    HeldDataset,
    JobRunner,
    RunnerLoader,
    SentDataset,
    StoredDataset,
    load_runner,
)
from sidra.server.jobs.submission import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    Submission,
    checked_submission,
)
from sidra.server.limits import caller_key
from sidra.server.recording import store_in_order
from sidra.server.servicer import BoardServicer
from sidra.server.sessions import LeaseKeeper
from sidra.server.state import StateStore
from sidra.server.state.datasets import DatasetRecords
from sidra.server.state.deployments import DeploymentRecords
from sidra.server.state.jobs import (
    FINAL_STATES,
    KEPT_CHECKPOINT,
    FilePiece,
    JobEventRow,
    JobRecords,
    JobRow,
)

__all__ = [
    "JobCancelled",
    "JobManager",
    "JobNotFound",
    "NotJobOwner",
]

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
"""Most time a running job's events wait before they are written to the store, s."""

WATCH_POLL_S = 0.5
"""How often a waiting watcher checks that its client is still there, s."""

LATE_STOP_WAIT_S = 5.0
"""How long :meth:`JobManager.stop_all` waits for jobs stopped at their next board call
(after its ``wait_s``) to store their end, s."""

PRUNE_EVERY_S = 3600.0
"""How often, at most, the jobs past the retention (``[state] job_retention_days``) are
deleted when a job ends or jobs are listed, s (and once when the manager starts)."""

JOB_ID_BYTES = 8
"""A job's id is this many random bytes as lowercase hex digits (twice as many)."""

MIN_ID_PREFIX = 4
"""The fewest leading digits of a job's id a request may name the job by."""

CANCEL_GRACE_S = 60.0
"""How long a cancelled job may take to reach its next step, epoch or run boundary (and its
final evaluation) before it is stopped at its next board call, s."""


class JobCancelled(Exception):
    """Raised inside a job's thread to stop it; never leaves the manager."""


class JobNotFound(NotFound):
    """No job of that id (NOT_FOUND)."""


class NotJobOwner(PermissionError):
    """Another principal's job, and the caller is not an admin (PERMISSION_DENIED)."""


class PriorityNotAllowed(PermissionError):
    """A priority above 0 asked by a principal who is not an admin (PERMISSION_DENIED)."""


def check_priority_allowed(priority: int, principal: str, admin: bool) -> None:
    """A priority above 0 (before everyone's jobs) is an admin's to give."""
    if priority > 0 and not admin:
        raise PriorityNotAllowed(
            f"priority: got {priority}, expected {MIN_PRIORITY} .. 0 for principal "
            f"{principal!r}: a job above 0 goes before everyone's, which needs the admin role"
        )


class JobManager:
    """Runs the jobs of one served board.

    ``servicer`` runs the jobs' board calls (its turns, leases and store);
    ``keeper`` opens their sessions and leases; ``store`` keeps their records (None:
    SubmitJob is refused, nothing else to keep them in); ``max_jobs`` bounds a
    principal's running jobs, ``max_queued_jobs`` its queued ones, ``max_job_s`` how
    long one runs before it is stopped at its next boundary (None: no limit);
    ``load_runner`` finds the training code (tests swap it); a running job keeps its
    checkpoint in ``store`` every ``checkpoint_every_s``; jobs that ended more than
    ``retention_s`` ago are deleted (:meth:`prune`); ``on_end`` is told each job's final
    state, ``on_queue_wait`` how long each queued job waited as it starts, s.
    """

    def __init__(
        self,
        servicer: BoardServicer,
        keeper: LeaseKeeper,
        store: StateStore | None,
        *,
        max_jobs: int = 2,
        max_queued_jobs: int = 16,
        max_job_s: float | None = None,
        load_runner: RunnerLoader = load_runner,
        clock: Callable[[], float] = time.time,
        cancel_grace_s: float | None = None,
        checkpoint_every_s: float = 60.0,
        retention_s: float | None = None,
        on_end: Callable[[str], object] = lambda state: None,
        on_queue_wait: Callable[[float], object] = lambda seconds: None,
    ) -> None:
        self.servicer = servicer
        self.keeper = keeper
        self.records = JobRecords(store) if store is not None else None
        self.max_jobs = max_jobs
        self.max_queued_jobs = max_queued_jobs
        self.max_job_s = max_job_s
        self.cancel_grace_s = CANCEL_GRACE_S if cancel_grace_s is None else cancel_grace_s
        self.checkpoint_every_s = checkpoint_every_s
        """How often a running job keeps its checkpoint in the store, s."""
        self._load_runner = load_runner
        self._runner: JobRunner | None = None
        self._clock = clock
        self._changed = threading.Condition()
        self._live: dict[str, LiveJob] = {}
        self._starting: Counter[str] = Counter()  # principal -> SubmitJobs under way
        self._stopping = False  # stop_all: no new job starts
        self.on_end = on_end
        """Told each job's final state as it ends (the service's metrics)."""
        self.on_queue_wait = on_queue_wait
        """Told how long each queued job waited, s, as it starts (the service's metrics)."""
        self.retention_s = retention_s
        """How long an ended job is kept, s (None: for ever): :meth:`prune`."""
        self._pruned_s = -math.inf
        self._queue = JobQueue(self._waiting, self._try_start, self._waits,
                               lambda: self._stopping, self._running_by_principal,
                               self._last_start_of, self._queued_placed_again)  # fmt: skip
        # principal -> when it last started a job, Unix s: the queue's turns, kept over
        # restarts (the jobs' start times are in the store)
        self._last_start: dict[str, float] = {}
        if self.records is not None:
            self._last_start = self.records.last_starts()
            for job_id in self.records.interrupt_running(clock()):
                log.warning("job %s was running when the server stopped: interrupted", job_id)
            self._load_queue(self.records)
        self.prune()

    # -- SubmitJob -----------------------------------------------------------------

    def submit(
        self,
        principal: str,
        kind: str,
        options_json: str,
        dataset: str,
        lease_wait_s: float,
        resume_checkpoint: bytes = b"",
        *,
        queue: bool = False,
        priority: int = 0,
        dataset_file: bytes = b"",
    ) -> JobRow:
        """Starts a job of ``principal``; returns it as stored (state running).
        ``resume_checkpoint``: the checkpoint it goes on from (empty: none).
        ``dataset_file``: the content of the data set file ``dataset`` names (empty: a
        bundled set; kept in the store while the job is queued). ``queue``:
        a job that cannot start now waits in the queue instead of being refused
        (returned queued, or running if it could start at once). ``priority``: its place
        in the queue before turns (who may raise it is the caller's to check). A job on
        tiles of another principal's protected deployment is refused: its calls would be
        (a job's board calls carry no admin rights, whoever submitted it)."""
        records = self.records
        if records is None:
            raise FailedPrecondition(
                "training jobs need the server's state store to keep their records "
                "(sidra serve always has one; this server was built without)"
            )
        if self._stopping:
            raise FailedPrecondition("the server is stopping: submit the job again once it is back")
        runner = self._runner_or_refuse()
        job = checked_submission(
            runner, self.servicer.board.info, kind, options_json, dataset, lease_wait_s,
            resume_checkpoint, priority, self._tile_use(), dataset_file,
        )  # fmt: skip
        protections = self.servicer.protections
        if protections is not None:
            count = self.servicer.board.info.tile_count
            tiles = range(count) if job.whole_board else job.tiles
            protections.check_tiles(tiles, principal, admin=False)
        if queue:
            return self._enqueue(records, runner, principal, job)
        with self._reserved(principal):
            return self._start(records, runner, principal, job, lease_wait_s)

    def _tile_use(self, but: str = "") -> TileUse:
        """Which tiles others use now, for a job given none to take the others first: the
        tiles leased (the job's own session is not open yet) or claimed by a queued job
        (but job ``but``), and those holding an intact deployment."""
        queued = [t for w in self._waiting() if w.job_id != but for t in w.tiles]
        leased = frozenset(h.tile for h in self.keeper.registry.holders()) | set(queued)
        deployed: frozenset[int] = frozenset()
        if self.records is not None:
            serial = self.servicer.board.info.serial_number
            kept = DeploymentRecords(self.records.store).of_board(serial)
            deployed = frozenset(r.tile for d in kept if d.intact for r in d.regions)
        return TileUse(leased, deployed)

    def _start(
        self,
        records: JobRecords,
        runner: JobRunner,
        principal: str,
        job: Submission,
        lease_wait_s: float,
    ) -> JobRow:
        """Leases the job's tiles (waiting ``lease_wait_s``), stores it running, runs it."""
        job_id = secrets.token_hex(JOB_ID_BYTES)
        session = self.keeper.open(principal, 0.0, f"job {job_id} {job.kind}")
        try:
            held = self.keeper.acquire(
                principal, session.id, job.tiles, job.whole_board, lease_wait_s
            )
            now = self._clock()
            row = JobRow(
                id=job_id, kind=job.kind, principal=principal, dataset=job.dataset,
                options_json=runner.options_json(job.options), state="running",
                submitted_unix_s=now, started_unix_s=now, tiles=held.tiles,
                whole_board=held.whole_board, priority=job.priority,
            )  # fmt: skip
            records.add(row)
        except BaseException:
            self._close_session(principal, session.id)
            raise
        live = LiveJob(
            row, session.id, last_flush_s=time.monotonic(), options=job.options,
            resume=job.resume,
            dataset_file=None if job.dataset_file is None else job.dataset_file.content,
        )  # fmt: skip
        with self._changed:
            self._live[job_id] = live
            self._event(live, "state", state="running")
        self._launch(live, runner)
        return self._snapshot(live)

    def _launch(self, live: LiveJob, runner: JobRunner) -> None:
        """Runs ``live`` (stored as running, its lease held) on a thread of its own."""
        row = live.row
        with self._changed:
            self._last_start[row.principal] = row.started_unix_s
        log.info("job %s (%s on %s) of %s started on tiles %s", row.id, row.kind, row.dataset,
                 row.principal, "all" if row.whole_board else list(row.tiles))  # fmt: skip
        threading.Thread(
            target=self._run,
            args=(live, runner, live.options, live.resume),
            name=f"sidra-job-{row.id}",
            daemon=True,
        ).start()

    # -- the queue -----------------------------------------------------------------

    def _enqueue(
        self, records: JobRecords, runner: JobRunner, principal: str, job: Submission
    ) -> JobRow:
        """Stores a checked job as queued, tries the queue, and returns the job as it is
        then (running when it could start at once)."""
        with self._changed:
            queued = sum(
                1 for j in self._live.values()
                if j.row.principal == principal and j.row.state == "queued"
            )  # fmt: skip
            if queued >= self.max_queued_jobs:
                raise ResourceExhausted(
                    "limits.max_queued_jobs",
                    f"a job while {queued} of principal {principal!r} are queued",
                    f"at most {self.max_queued_jobs} queued jobs per principal; wait for one "
                    "to start or cancel one",
                )
            row = JobRow(
                id=secrets.token_hex(JOB_ID_BYTES), kind=job.kind, principal=principal,
                dataset=job.dataset, options_json=runner.options_json(job.options),
                state="queued", submitted_unix_s=self._clock(), tiles=job.tiles,
                whole_board=job.whole_board, message="queued", priority=job.priority,
            )  # fmt: skip
            held = job.dataset_file
            live = LiveJob(
                row, "", options=job.options, resume=job.resume,
                queued_file=None if held is None else self._stored_file(held.sha256),
            )  # fmt: skip
            self._event(live, "state", state="queued")
            # under the lock: the queue never sees it unstored
            records.add(
                row,
                job.resume,
                None if held is None else held.content,
                None if held is None else held.sha256,
            )
            records.update(row, live.events)
            live.stored = len(live.events)
            self._live[row.id] = live
        log.info("job %s (%s on %s) of %s queued for tiles %s", row.id, job.kind, job.dataset,
                 principal, "all" if job.whole_board else list(job.tiles))  # fmt: skip
        self._queue.run_pass()  # it may start at once
        self._queue.kick()
        with self._changed:
            return self._snapshot(live)

    def _load_queue(self, records: JobRecords) -> None:
        """Takes back the jobs a previous server left queued (in submission order); one
        whose options this server no longer reads ends failed, saying why."""
        for queued in records.queued():
            row, resume = queued.row, queued.resume_checkpoint
            file: SentDataset | None = None
            if queued.dataset_sha256 is not None:
                file = self._stored_file(queued.dataset_sha256)
            elif queued.dataset_file is not None:  # queued before schema 11: its own copy
                file = HeldDataset(queued.dataset_file)
            live = LiveJob(row, "", resume=resume, queued_file=file)
            live.events = records.events(row.id)  # its next event's index follows them
            live.stored = len(live.events)
            try:
                runner = self._runner_or_refuse()
                live.options = runner.options(row.kind, row.options_json)
            except (SidraError, ValueError) as exc:
                self._end_unstarted(
                    live, records, "failed",
                    f"queued when the server stopped, and this server cannot run it: {exc}",
                )  # fmt: skip
                continue
            with self._changed:
                self._live[row.id] = live
            log.info("job %s of %s: queued before the server stopped, queued again",
                     row.id, row.principal)  # fmt: skip
        self._queue.kick()

    def _end_unstarted(self, live: LiveJob, records: JobRecords, state: str, error: str) -> None:
        """Ends a job that never started (cancelled, or unreadable, in the queue)."""
        with self._changed:
            row = live.row
            row.state, row.error, row.ended_unix_s = state, error, self._clock()
            self._event(live, "state", message=error, state=state)
            pending = live.events[live.stored :]
        try:
            records.update(row, pending)
        except SidraError:
            log.exception("job %s ended %s in the queue but was not stored", row.id, state)
        else:
            with self._changed:
                live.stored = len(live.events)
                self._live.pop(row.id, None)
        log.info("job %s %s in the queue: %s", row.id, state, error)
        self.on_end(state)
        self._queue.kick()

    def _waiting(self) -> list[Waiting]:
        """The queued jobs, as the queue's passes see them."""
        count = self.servicer.board.info.tile_count
        with self._changed:
            return [
                Waiting(
                    j.row.id,
                    j.row.principal,
                    j.row.submitted_unix_s,
                    frozenset(range(count) if j.row.whole_board else j.row.tiles),
                    j.row.priority,
                )  # fmt: skip
                for j in self._live.values()
                if j.row.state == "queued"
            ]

    def _running_by_principal(self) -> Counter[str]:
        """How many jobs each principal runs now (the queue's turns)."""
        with self._changed:
            return Counter(j.row.principal for j in self._live.values() if j.row.state == "running")

    def _last_start_of(self) -> dict[str, float]:
        """When each principal last started a job, Unix s (the queue's turns)."""
        with self._changed:
            return dict(self._last_start)

    def _waits(self, reasons: dict[str, str]) -> None:
        """What each job left in the queue waits for, as its message."""
        with self._changed:
            for job_id, message in reasons.items():
                live = self._live.get(job_id)
                if live is not None and live.row.state == "queued":
                    live.row.message = message

    def _try_start(self, waiting: Waiting) -> str:
        """Starts the queued job if it can; else says what it waits for (beginning
        "tiles" when it waits for tiles: sidra.server.jobs.queue.TILES)."""
        with self._changed:
            live = self._live.get(waiting.job_id)
        if live is None:
            return "not queued any more"
        row = live.row
        board = self.servicer.board
        if isinstance(board, LinkMonitored) and not board.link_up:
            return "the board is unavailable (its link is down); it starts once it is back"
        if self._protected_since_queued(live, waiting):
            return "not queued any more"
        held = [h for h in self.keeper.registry.holders() if h.tile in waiting.tiles]
        if held and (moved := self._placed_again(live, waiting)) is not None:
            waiting, held = moved, []
        if held:
            first = held[0]
            return (
                f"{TILES} {sorted({h.tile for h in held})} leased by session "
                f"{first.session_id[:8]}… of {first.principal} ({first.label})"
            )
        try:
            with self._reserved(row.principal):
                session = self.keeper.open(row.principal, 0.0, f"job {row.id} {row.kind}")
                try:
                    lease = self.keeper.acquire(
                        row.principal, session.id, row.tiles, row.whole_board, 0.0
                    )
                    # read once it can start, not every pass it waits (the store lets go
                    # of the bytes as it records the start)
                    content = None if live.queued_file is None else live.queued_file.read()
                except BaseException:
                    self._close_session(row.principal, session.id)
                    raise
                pending: list[JobEventRow] = []  # its events not stored yet, once started
                with self._changed:
                    if row.state != "queued" or self._stopping:  # cancelled meanwhile
                        started = False
                    else:
                        started = True
                        row.state, row.started_unix_s, row.message = "running", self._clock(), ""
                        row.tiles, row.whole_board = lease.tiles, lease.whole_board
                        live.session_id = session.id
                        live.dataset_file, live.queued_file = content, None
                        live.started_s = live.last_flush_s = time.monotonic()
                        self._event(live, "state", state="running")
                        pending = live.events[live.stored :]
                if not started:
                    self._close_session(row.principal, session.id)
                    return "not queued any more"
        except LeaseHeld as exc:
            return f"{TILES} {sorted(waiting.tiles)}: {exc}"
        except ResourceExhausted as exc:  # max_jobs, or its principal's open sessions
            return str(exc)
        except SidraError as exc:
            return f"cannot start yet: {exc}"
        assert self.records is not None
        try:
            self.records.update(row, pending)  # running: its checkpoint to go on from spent
            with self._changed:
                live.stored += len(pending)
        except SidraError as exc:  # kept in memory; the job's next write tries again
            log.warning("job %s: its start was not stored: %s", row.id, exc)
        self.on_queue_wait(max(row.started_unix_s - row.submitted_unix_s, 0.0))
        self._launch(live, self._runner_or_refuse())
        return ""

    def _queued_placed_again(self, waiting: Waiting) -> Waiting | None:
        """The queue's ``place_again``: :meth:`_placed_again` of a job still queued."""
        with self._changed:
            live = self._live.get(waiting.job_id)
        if live is None or live.row.state != "queued":
            return None
        return self._placed_again(live, waiting)

    def _placed_again(self, live: LiveJob, waiting: Waiting) -> Waiting | None:
        """A queued job whose tiles another session holds when its turn comes, placed
        again as a submission now would place it (a job given no tiles takes the tiles
        nobody uses first): the new tiles when they differ, and none of them is leased,
        waited for by another queued job or protected from its principal. None when it
        keeps waiting for its own: tiles its options name or its checkpoint ran on are
        placed the same again, and a job of the whole board needs every tile."""
        row = live.row
        if row.whole_board:
            return None
        info = self.servicer.board.info
        try:
            tiles, _ = self._runner_or_refuse().claim(
                row.kind, live.options, row.dataset, info, self._tile_use(but=row.id),
                live.resume, live.queued_file,
            )  # fmt: skip
        except (ValueError, SidraError) as exc:  # checked at submission; a runner since
            log.warning("job %s: not placed again while queued: %s", row.id, exc)
            return None
        wanted = frozenset(tiles)
        if wanted == waiting.tiles:
            return None
        leased = {h.tile for h in self.keeper.registry.holders()}
        awaited = {t for w in self._waiting() if w.job_id != row.id for t in w.tiles}
        if wanted & (leased | awaited):
            return None
        protections = self.servicer.protections
        if protections is not None:
            try:
                protections.check_tiles(sorted(wanted), row.principal, admin=False)
            except FailedPrecondition:
                return None
        with self._changed:
            if row.state != "queued":
                return None
            before, row.tiles = row.tiles, tuple(tiles)
            # Said in its events (stored as it starts): why it runs elsewhere than first said.
            said = f"tiles {list(before)} held: placed again on tiles {list(tiles)}, free now"
            self._event(live, "log", message=said)
        log.info("job %s of %s: tiles %s held, placed again on free tiles %s", row.id,
                 row.principal, list(before), list(tiles))  # fmt: skip
        return dataclasses.replace(waiting, tiles=wanted)

    def _protected_since_queued(self, live: LiveJob, waiting: Waiting) -> bool:
        """Ends ``live`` failed, before anything ran, when one of its tiles came to hold
        another principal's protected deployment while it waited (SubmitJob refuses such
        a job; its calls would be refused at its first write); True when it did."""
        protections = self.servicer.protections
        if protections is None:
            return False
        try:
            protections.check_tiles(sorted(waiting.tiles), live.row.principal, admin=False)
        except FailedPrecondition as exc:
            assert self.records is not None
            with self._changed:  # (reentrant) as cancel: the queue starts no job it holds
                if live.row.state == "queued":
                    self._end_unstarted(
                        live, self.records, "failed",
                        f"not started: its tiles came to be protected while it was queued: {exc}",
                    )  # fmt: skip
            return True
        return False

    @contextlib.contextmanager
    def _reserved(self, principal: str) -> Iterator[None]:
        """Holds one of ``principal``'s ``max_jobs`` places while its job starts."""
        with self._changed:
            running = sum(
                1 for j in self._live.values()
                if j.row.principal == principal and j.row.state == "running"
            ) + self._starting[principal]  # fmt: skip
            if running >= self.max_jobs:
                raise ResourceExhausted(
                    "limits.max_jobs",
                    f"a job while {running} of principal {principal!r} are running",
                    f"at most {self.max_jobs} running jobs per principal; wait for one to end "
                    "or cancel one",
                )
            self._starting[principal] += 1
        try:
            yield
        finally:
            with self._changed:
                self._starting[principal] -= 1
                if not self._starting[principal]:
                    del self._starting[principal]

    def _stored_file(self, sha256: str) -> StoredDataset:
        """A queued job's data set file, read from the store when asked."""
        assert self.records is not None
        kept = DatasetRecords(self.records.store)

        def load(digest: str) -> bytes:
            content = kept.blob(digest)
            if content is None:  # a queued job holds its bytes: a store edited by hand
                raise FailedPrecondition(f"the data set file of SHA-256 {digest} is not in "
                                         "the state store")  # fmt: skip
            return content

        return StoredDataset(sha256, load)

    def runner(self) -> JobRunner:
        """The runner the jobs run with; FailedPrecondition naming the ``training`` extra
        when it cannot be loaded."""
        return self._runner_or_refuse()

    def _runner_or_refuse(self) -> JobRunner:
        if self._runner is None:
            self._runner = self._load_runner()  # FailedPrecondition without the extra
        return self._runner

    # -- the job's thread ----------------------------------------------------------

    def _run(self, live: LiveJob, runner: JobRunner, options: Any, resume: bytes | None) -> None:
        row = live.row
        recorder = BehindRecorder(f"sidra-job-{row.id}-recorder", run=store_in_order)
        board = JobBoard(
            self.servicer,
            tiles=frozenset(row.tiles),
            whole_board=row.whole_board,
            principal=row.principal,
            caller=caller_key(row.principal, f"job {row.id}"),
            session_id=live.session_id,
            check=lambda: self._check(live),
            recorder=recorder,
        )
        keep_alive = threading.Thread(
            target=self._keep_alive, args=(live,), name=f"sidra-job-{row.id}-heartbeat",
            daemon=True,
        )  # fmt: skip
        keep_alive.start()
        summary: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        try:
            try:
                self._settle(live, board)
                summary, files = runner.run(
                    row.kind, options, row.dataset, board, _Reporter(self, live), live.stop,
                    resume, self.checkpoint_every_s, live.dataset_file,
                )  # fmt: skip
            finally:
                recorder.drain()  # every write the job made is in the store before it ends
            state, error = ended(live, summary, self.max_job_s)
        except JobCancelled:
            state, error = "cancelled", self._cancelled_text(live)
            if live.server_stopping and not live.cancelled_by:
                state, error = (
                    "interrupted",
                    (
                        "the server stopped before the job reached a step, epoch or run "
                        "boundary; no record kept"
                    ),
                )
        except Exception as exc:  # the job's failure is its record's, not the server's
            kept = getattr(exc, "outcome", None)  # what it made before (JobRunner.run)
            if kept is not None:
                summary, files = kept
            if live.cancel.is_set() and (isinstance(exc, SidraError) or kept is not None):
                state, error = (
                    "cancelled",
                    self._cancelled_text(live),
                )
            else:
                log.warning("job %s failed", row.id, exc_info=True)
                # An exception keeping a record says what ended the job and where it is.
                state, error = "failed", str(exc) if kept else f"{type(exc).__name__}: {exc}"
        finally:
            live.done.set()
            keep_alive.join()
            self._close_session(row.principal, live.session_id)
        self._finish(live, state, error, summary, files)

    def _settle(self, live: LiveJob, board: JobBoard) -> None:
        """Takes a restart of the board that its driver noticed before this job began.

        The driver reports such a restart to the next call, whoever makes it. What the
        restart lost was not this job's (a job programs whatever it uses), so the job
        says so and goes on; clients learn of the restart from the board instance id
        every answer names (a new boot, a new id)."""
        try:
            board.run(GetBoardInfoRequest())
        except BoardReset as exc:
            self._log(live, f"the board restarted before this job began; going on ({exc})")

    def _cancelled_text(self, live: LiveJob) -> str:
        return cancelled_text(live, self.cancel_grace_s, self.max_job_s)

    def _check(self, live: LiveJob) -> None:
        """Raises JobCancelled to stop the job now (before a board call or a report)."""
        if live.cancel.is_set():
            raise JobCancelled
        if self.max_job_s is not None:  # before every board call: no call when no limit
            self._stop_if_over_time(live)
        if live.stop.is_set() and time.monotonic() - live.stop_asked_s > self.cancel_grace_s:
            live.grace_ran_out = True
            live.cancel.set()
            raise JobCancelled

    def _stop_if_over_time(self, live: LiveJob) -> None:
        """Asks ``live`` to stop at its next boundary, as a first CancelJob does, once it
        has run longer than ``max_job_s``."""
        if self.max_job_s is None or live.stop.is_set():
            return
        if time.monotonic() - live.started_s > self.max_job_s:
            with self._changed:
                if live.stop.is_set():
                    return
                live.over_time = True
                live.stop_asked_s = time.monotonic()
                live.stop.set()
            log.info("job %s: ran %g s, the server's limit; it stops at its next step, epoch "
                     "or run boundary", live.row.id, self.max_job_s)  # fmt: skip

    def _keep_alive(self, live: LiveJob) -> None:
        """Renews the job's session every third of its time to live until the job ends
        (and stops it once over the time limit, between its board calls too)."""
        period = self.keeper.registry.default_ttl_s / 3
        if self.max_job_s is not None:
            period = min(period, max(self.max_job_s / 10, 0.05))
        while not live.done.wait(period):
            self._stop_if_over_time(live)
            try:
                self.keeper.renew(live.row.principal, live.session_id)
            except SidraError as exc:  # closed by an admin: the job's next call fails
                log.warning("job %s: its session ended (%s)", live.row.id, exc)
                return

    def _close_session(self, principal: str, session_id: str) -> None:
        try:
            self.keeper.close(principal, session_id, admin=False)
        except SidraError as exc:  # already ended (an admin closed it, it expired)
            log.info("job session %s already closed: %s", session_id[:8], exc)

    def _finish(
        self, live: LiveJob, state: str, error: str, summary: dict[str, Any],
        files: dict[str, bytes],
    ) -> None:  # fmt: skip
        """Ends ``live``: its final row, last events and record are stored first, and only
        then does anyone see the final state (its watchers, GetJob), so a client told a job
        ended finds its record in the store, even after the server stops. Only the job's
        own thread adds its events, so the final event's index cannot be taken meanwhile."""
        now = self._clock()
        if not files and self._kept_checkpoint(live.row.id):
            error += KEPT_CHECKPOINT  # no record, but the checkpoint it kept as it ran
        with self._changed:
            final = dataclasses.replace(
                live.row, state=state, error=error, ended_unix_s=now, events=len(live.events) + 1
            )
            if summary:  # succeeded, or ended early (CancelJob, its board gone) with its record
                final.summary_json = json.dumps(summary, default=str)
            event = JobEventRow(len(live.events), now, "state", message=error, state=state)
            pending = [*live.events[live.stored :], event]
        try:
            assert self.records is not None
            self.records.update(final, pending, files or None)
            stored = True
        except SidraError:
            log.exception("job %s ended %s but its record was not stored", final.id, state)
            stored = False
        with self._changed:
            live.row = final
            live.events.append(event)
            if stored:  # GetJob, ListJobs and WatchJob read it from the store from now on:
                live.stored = len(live.events)  # a server up for months does not keep
                del self._live[final.id]  # every job it ran, with its events, in memory
            self._changed.notify_all()
        log.info("job %s %s%s", final.id, state, f": {error}" if error else "")
        self.on_end(state)
        self._queue.kick()  # its tiles and its principal's place are free
        self._prune_if_due()

    def _kept_checkpoint(self, job_id: str) -> bool:
        """Whether the store holds a checkpoint ``job_id`` kept as it ran."""
        try:
            return self.records is not None and CHECKPOINT_FILE in self.records.file_sizes(job_id)
        except SidraError:
            return False

    # -- events (the manager's condition held) -------------------------------------

    def _event(self, live: LiveJob, kind: str, **fields: Any) -> None:
        live.events.append(JobEventRow(len(live.events), self._clock(), kind, **fields))
        live.row.events = len(live.events)
        self._changed.notify_all()

    def _progress(self, live: LiveJob, step: int, total: int, message: str) -> None:
        self._check(live)
        now = time.monotonic()
        with self._changed:
            row = live.row
            row.step, row.total, row.message = step, total, message
            since = now - live.last_progress_s
            if step >= total or since >= progress_interval_s(now - live.started_s):
                live.last_progress_s = now
                self._event(live, "progress", step=step, total=total, message=message)
        self._flush_if_due(live, now)

    def _log(self, live: LiveJob, line: str) -> None:
        self._check(live)
        with self._changed:
            self._event(live, "log", message=line)
        self._flush_if_due(live, time.monotonic())

    def _keep_tiles(self, live: LiveJob, tiles: tuple[int, ...]) -> None:
        self._check(live)
        row = live.row
        kept = self.keeper.narrow(row.principal, live.session_id, tiles).ended.session.tiles
        with self._changed:
            row.tiles, row.whole_board = kept, False
        line = f"lease narrowed to tiles {list(kept)} (the others freed)"
        log.info("job %s: %s", row.id, line)
        self._log(live, line)

    def _keep_file(self, live: LiveJob, name: str, content: bytes) -> None:
        """Stores a record file of a running job (its latest checkpoint) now; its end's
        record replaces it. A store that refuses leaves the job running: the file is a
        safeguard, not its record."""
        if self.records is None:
            return
        try:
            self.records.put_file(live.row.id, name, content)
        except SidraError as exc:
            log.warning("job %s: %s not stored: %s", live.row.id, name, exc)

    def _flush_if_due(self, live: LiveJob, now: float) -> None:
        """Writes a running job's new events and progress to the store about once a second."""
        if now - live.last_flush_s < FLUSH_INTERVAL_S or self.records is None:
            return
        live.last_flush_s = now
        with self._changed:
            pending = live.events[live.stored :]
            snapshot = dataclasses.replace(live.row)
        try:
            self.records.update(snapshot, pending)
        except SidraError as exc:  # kept in memory; the final write tries again
            log.warning("job %s: progress not stored: %s", live.row.id, exc)
            return
        with self._changed:
            live.stored += len(pending)

    # -- GetJob, ListJobs, CancelJob, WatchJob -------------------------------------

    def full_id(self, job_id: str) -> str:
        """The id of the one job whose id starts with ``job_id`` (at least
        :data:`MIN_ID_PREFIX` digits, as git and docker take a commit's or a container's),
        else ``job_id`` as given: a whole id, or one no job has, which the request's own
        lookup then refuses. The start of several jobs' ids is refused naming them."""
        if not MIN_ID_PREFIX <= len(job_id) < 2 * JOB_ID_BYTES:
            return job_id
        with self._changed:
            found = {known for known in self._live if known.startswith(job_id)}
        if self.records is not None:
            found.update(self.records.ids_starting(job_id, 3))
        if len(found) == 1:
            return found.pop()
        if found:
            shown = ", ".join(sorted(found)[:2]) + (", ..." if len(found) > 2 else "")
            raise InvalidArgument(
                "job_id", job_id,
                f"a job's id, or the start of one job's id only ({shown} start with it): "
                "give more of its digits",
            )  # fmt: skip
        return job_id

    def get(self, job_id: str, *, with_files: bool = False) -> JobRow:
        """The job as it is now: a running one as this process holds it, an ended one as
        stored, its record files' sizes with it (and with ``with_files``, the files).
        ``job_id`` may be the start of the id (:meth:`full_id`)."""
        job_id = self.full_id(job_id)
        with self._changed:
            live = self._live.get(job_id)
            held = live is not None and (
                live.row.state not in FINAL_STATES or live.stored < len(live.events)
            )  # running, or its end could not be stored: what this process knows
            job = self._snapshot(live) if live is not None and held else None
        if job is not None:
            if self.records is not None:  # the checkpoint it keeps as it runs
                job.file_sizes = self.records.file_sizes(job_id)
            return job
        stored = (
            self.records.get(job_id, with_files=with_files, with_sizes=True)
            if self.records is not None
            else None
        )
        if stored is None:
            raise JobNotFound(f"job_id: no job {job_id[:40]!r} on this server (ListJobs)")
        return stored

    def read_file(
        self, job_id: str, name: str, offset: int, max_bytes: int, most: int
    ) -> FilePiece:
        """Up to ``max_bytes`` (at most ``most``: sidra.server.jobs.pieces) bytes of the
        job's record file ``name`` from ``offset`` on, with the file's size and digest."""
        job_id = self.full_id(job_id)
        job = self.get(job_id)
        size = job.file_sizes.get(name)
        if size is None:
            raise _no_such_file(job_id, name, job.file_sizes)
        if offset > size:
            raise OutOfRange("offset", offset, f"0 .. {size} (the size of {name})")
        length = piece_length(max_bytes, most)
        assert self.records is not None  # get() found the job's record there
        try:  # the file may have gone since: a running job's files are replaced at its end
            return self.records.read_file(job_id, name, offset, length)
        except KeyError:
            raise _no_such_file(job_id, name, self.records.file_sizes(job_id)) from None

    def recent(
        self, principal: str = "", limit: int = 100, states: Sequence[str] = ()
    ) -> list[JobRow]:
        """Jobs, newest first; only ``principal``'s, only those in ``states``, when given."""
        self._prune_if_due()  # an idle server's list drops expired jobs too
        records = self.records
        rows = records.recent(principal, limit, states) if records is not None else []
        with self._changed:  # live rows are fresher than the store's
            fresh = [self._snapshot(self._live[r.id]) if r.id in self._live else r for r in rows]
        return [job for job in fresh if not states or job.state in states]

    def cancel(self, job_id: str, principal: str, *, admin: bool) -> JobRow:
        job_id = self.full_id(job_id)
        job = self.get(job_id)
        if job.principal != principal and not admin:
            raise NotJobOwner(
                f"job {job_id} belongs to {job.principal!r}; a principal cancels only its own jobs "
                "(an admin anyone's)"
            )
        with self._changed:  # (reentrant) the queue starts no job it holds
            live = self._live.get(job_id)
            if live is None or live.row.state in FINAL_STATES:
                return job
            if live.row.state == "queued":  # it never started: it ends now, with nothing
                assert self.records is not None
                self._end_unstarted(
                    live, self.records, "cancelled", f"cancelled by {principal} while queued"
                )
                return self._snapshot(live)
            if live.cancel.is_set():
                return self._snapshot(live)
            live.cancelled_by = principal
            if not live.stop.is_set():
                live.stop_asked_s = time.monotonic()
                live.stop.set()
                log.info("job %s: cancel asked by %s; it stops at its next step, epoch or run "
                         "boundary", job_id, principal)  # fmt: skip
            else:  # asked again: now
                live.cancel.set()
                log.info("job %s: cancel asked by %s; it stops at its next board call",
                         job_id, principal)  # fmt: skip
            return self._snapshot(live)

    def set_priority(self, job_id: str, priority: int, principal: str, *, admin: bool) -> JobRow:
        """Gives the queued job ``job_id`` of ``principal`` (an admin: anyone's) the new
        ``priority``, stored and logged as an event; the queue then takes its passes in
        the new order. A job that is not queued is refused (FailedPrecondition)."""
        job_id = self.full_id(job_id)
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise OutOfRange("priority", priority, f"{MIN_PRIORITY} .. {MAX_PRIORITY}")
        job = self.get(job_id)
        if job.principal != principal and not admin:
            raise NotJobOwner(
                f"job {job_id} belongs to {job.principal!r}; a principal changes only its own "
                "jobs' priority (an admin anyone's)"
            )
        check_priority_allowed(priority, principal, admin)
        with self._changed:
            live = self._live.get(job_id)
            if live is None or live.row.state != "queued":
                raise FailedPrecondition(
                    f"job {job_id} is {job.state}, not queued: a priority orders only the queue"
                )
            before, live.row.priority = live.row.priority, priority
            self._event(live, "log", message=f"priority {before} -> {priority}, set by {principal}")
            assert self.records is not None  # a queued job was stored
            self.records.update(live.row, live.events[live.stored :])
            live.stored = len(live.events)
        log.info("job %s: priority %d -> %d, set by %s", job_id, before, priority, principal)
        self._queue.run_pass()  # it may start at once
        self._queue.kick()
        with self._changed:
            return self._snapshot(live)

    def delete(self, job_id: str, principal: str, *, admin: bool) -> int:
        """Deletes an ended job of ``principal`` (an admin: anyone's) with its events and
        record files; returns the bytes of record files it had. A running job is refused."""
        job_id = self.full_id(job_id)
        job = self.get(job_id)
        if job.principal != principal and not admin:
            raise NotJobOwner(
                f"job {job_id} belongs to {job.principal!r}; a principal deletes only its own "
                "jobs (an admin anyone's)"
            )
        with self._changed:
            live = self._live.get(job_id)
            state = live.row.state if live is not None else job.state
        if state not in FINAL_STATES or job.state not in FINAL_STATES:
            raise FailedPrecondition(
                f"job_id: job {job_id} is {state}; cancel it (CancelJob) and delete it once "
                "it has ended"
            )
        assert self.records is not None  # get() found it there, or it ran here
        # A job held here has ended, but the store refused its end: stored as running.
        freed = self.records.delete(job_id, running_too=live is not None)
        with self._changed:
            self._live.pop(job_id, None)
        if freed is None:
            raise JobNotFound(f"job_id: no job {job_id[:40]!r} on this server (ListJobs)")
        log.info("job %s deleted by %s (%d bytes of record files)", job_id, principal, freed)
        return freed

    def prune(self) -> dict[str, int]:
        """Deletes the jobs that ended more than ``retention_s`` ago, with their events and
        record files (none when there is no retention); returns the bytes of record files
        each had, by id. Run when the manager starts and, at most every
        :data:`PRUNE_EVERY_S`, when a job ends or jobs are listed."""
        self._pruned_s = time.monotonic()
        if self.retention_s is None or self.records is None:
            return {}
        try:
            gone = self.records.delete_ended_before(self._clock() - self.retention_s)
        except SidraError as exc:  # kept for the next time
            log.warning("jobs past their retention not deleted: %s", exc)
            return {}
        if gone:
            log.info("deleted %d jobs that ended over %g days ago (%d bytes of record files)",
                     len(gone), self.retention_s / 86_400, sum(gone.values()))  # fmt: skip
        return gone

    def _prune_if_due(self) -> None:
        if time.monotonic() - self._pruned_s >= PRUNE_EVERY_S:
            self.prune()

    def watch(
        self, job_id: str, from_index: int, active: Callable[[], bool] = lambda: True
    ) -> Iterator[JobEventRow]:
        """The job's events from ``from_index`` on, until its final state (or until
        ``active`` says the watcher has gone)."""
        job_id = self.full_id(job_id)
        with self._changed:
            live = self._live.get(job_id)
        if live is None:
            job = self.get(job_id)
            self._check_index(job, from_index)
            assert self.records is not None  # get() found it there
            yield from self.records.events(job_id, from_index)
            return
        with self._changed:
            self._check_index(live.row, from_index)
        index = from_index
        while True:
            with self._changed:
                while len(live.events) <= index and live.row.state not in FINAL_STATES:
                    self._changed.wait(WATCH_POLL_S)
                    if not active():
                        return
                fresh = live.events[index:]
                final = live.row.state in FINAL_STATES
            yield from fresh
            index += len(fresh)
            if final and index >= len(live.events):
                return

    def _check_index(self, job: JobRow, from_index: int) -> None:
        if from_index > job.events:
            raise OutOfRange(
                "from_index", from_index, f"0 .. {job.events} (the job's events so far)"
            )

    def _snapshot(self, live: LiveJob) -> JobRow:
        return dataclasses.replace(live.row, files={})

    def stop_all(self, wait_s: float) -> list[str]:
        """The server stops: every running job is asked to stop at its next step, epoch or
        run boundary, as a first CancelJob asks, and no new job starts. A job that reaches
        its boundary within ``wait_s`` ends ``interrupted`` with its record (and its
        checkpoint, to go on from: jobs.proto); one that does not is stopped at its next
        board call, interrupted without a record. Returns the ids of the jobs it stopped."""
        with self._changed:
            self._stopping = True
            running = [j for j in self._live.values() if j.row.state == "running"]
            for live in running:
                live.server_stopping = True
                if not live.stop.is_set():
                    live.stop_asked_s = time.monotonic()
                    live.stop.set()
            if running:
                log.info("stopping: %d running jobs stop at their next boundary (up to "
                         "%g s)", len(running), wait_s)  # fmt: skip

            def ended() -> bool:
                return all(j.row.state in FINAL_STATES for j in running)

            if not self._changed.wait_for(ended, timeout=wait_s):
                late = [j for j in running if j.row.state not in FINAL_STATES]
                log.warning("stopping: jobs %s reached no boundary in %g s; stopped at "
                            "their next board call", [j.row.id for j in late], wait_s)  # fmt: skip
                for live in late:
                    live.cancel.set()
                self._changed.wait_for(ended, timeout=LATE_STOP_WAIT_S)
        return [j.row.id for j in running]

    def running(self) -> list[str]:
        """Ids of jobs running in this process."""
        with self._changed:
            return [i for i, j in self._live.items() if j.row.state == "running"]

    def queued(self) -> list[str]:
        """Ids of the jobs waiting in the queue."""
        with self._changed:
            return [i for i, j in self._live.items() if j.row.state == "queued"]

    def in_memory(self) -> list[str]:
        """Ids of the jobs this process holds in memory: those running, and those whose
        end the store refused (what only this process knows); the others are read from
        the store."""
        with self._changed:
            return list(self._live)


def _no_such_file(job_id: str, name: str, sizes: dict[str, int]) -> JobNotFound:
    files = ", ".join(sizes) or "none yet"
    return JobNotFound(f"name: job {job_id} has no record file {name[:80]!r} (its files: {files})")


class _Reporter:
    """What the training code reports to (sidra.server.jobs.runner.JobReporter)."""

    def __init__(self, manager: JobManager, live: LiveJob) -> None:
        self.manager = manager
        self.live = live

    def progress(self, step: int, total: int, message: str) -> None:
        self.manager._progress(self.live, step, total, message)

    def log(self, line: str) -> None:
        self.manager._log(self.live, line)

    def keep_tiles(self, tiles: tuple[int, ...]) -> None:
        self.manager._keep_tiles(self.live, tiles)

    def keep_file(self, name: str, content: bytes) -> None:
        self.manager._keep_file(self.live, name, content)
