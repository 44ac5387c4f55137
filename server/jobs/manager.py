"""Training jobs in the service: submitted, run, watched, cancelled (jobs.proto).

:class:`JobManager` owns every job this process runs, and answers for them:

- a SubmitJob is checked whole before anything happens (kind, data set, options,
  tiles, the principal's ``[limits] max_jobs``: sidra.server.jobs.submission), so a
  refused one leaves no trace; the job then starts at once or through the queue
  (sidra.server.jobs.starting) and runs on a thread of its own
  (sidra.server.jobs.running);
- GetJob, ListJobs and WatchJob read a job as this process holds it while it is
  queued or running (sidra.server.jobs.table), and from the state store once its end
  is stored there;
- CancelJob asks a running job to stop at its next step, epoch or run boundary, and
  at its next board call when asked twice (or still running ``CANCEL_GRACE_S`` after
  the first); a queued job ends at once;
- jobs that ended longer ago than the retention are deleted, with their record files.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence

from sidra.drivers import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, SidraError
from sidra.server.jobs.live import LiveJob
from sidra.server.jobs.pieces import piece_length
from sidra.server.jobs.runner import HeldDataset, JobRunner, RunnerLoader, load_runner
from sidra.server.jobs.running import (
    KeepDeployment,
    MayKeepDeployment,
    RunningJob,
    RunSettings,
    no_deployment_to_keep,
    no_deployments,
)
from sidra.server.jobs.starting import JOB_ID_BYTES, JobStarter
from sidra.server.jobs.submission import MAX_PRIORITY, MIN_PRIORITY, checked_submission
from sidra.server.jobs.table import JobTable, snapshot
from sidra.server.servicer import BoardServicer
from sidra.server.sessions import LeaseKeeper
from sidra.server.state import StateStore
from sidra.server.state.jobs import FINAL_STATES, FilePiece, JobEventRow, JobRecords, JobRow

__all__ = [
    "STOPS_AT_BOARD_CALL",
    "STOPS_AT_BOUNDARY",
    "JobManager",
    "JobNotFound",
    "NotJobOwner",
    "PriorityNotAllowed",
    "check_priority_allowed",
]

log = logging.getLogger(__name__)

WATCH_POLL_S = 0.5
"""How often a waiting watcher checks that its client is still there, s."""

LATE_STOP_WAIT_S = 5.0
"""How long :meth:`JobManager.stop_all` waits for jobs stopped at their next board call
(after its ``wait_s``) to store their end, s."""

PRUNE_EVERY_S = 3600.0
"""How often, at most, the jobs past the retention (``[state] job_retention_days``) are
deleted when a job ends or jobs are listed, s (and once when the manager starts)."""

MIN_ID_PREFIX = 4
"""The fewest leading digits of a job's id a request may name the job by."""

CANCEL_GRACE_S = 60.0
"""How long a cancelled job may take to reach its next step, epoch or run boundary (and its
final evaluation) before it is stopped at its next board call, s."""


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
    state, ``on_queue_wait`` how long each queued job waited as it starts, s;
    ``keep_deployment`` registers a deployment again for a job (a tune job's), and
    ``may_keep_deployment`` says at its submission whether it could (another principal's
    deployment is refused then, before its tiles are written).
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
        keep_deployment: KeepDeployment = no_deployments,
        may_keep_deployment: MayKeepDeployment = no_deployment_to_keep,
        no_longer_allowed: Callable[[str], str | None] = lambda principal: None,
    ) -> None:
        self.servicer = servicer
        self._may_keep_deployment = may_keep_deployment
        self.records = JobRecords(store) if store is not None else None
        self.retention_s = retention_s
        """How long an ended job is kept, s (None: for ever): :meth:`prune`."""
        self._load_runner = load_runner
        self._runner: JobRunner | None = None
        self._on_end = on_end
        self._pruned_s = -math.inf
        self._table = JobTable(self.records, clock)
        self._run_settings = RunSettings(
            servicer, keeper, max_job_s,
            CANCEL_GRACE_S if cancel_grace_s is None else cancel_grace_s,
            checkpoint_every_s, self._ended, lambda: self._starter.queue.kick(),
            keep_deployment,
        )  # fmt: skip
        self._starter = JobStarter(
            self._table, servicer, keeper, runner=self.runner, launch=self._launch,
            max_jobs=max_jobs, max_queued_jobs=max_queued_jobs, on_end=on_end,
            on_queue_wait=on_queue_wait, no_longer_allowed=no_longer_allowed,
        )  # fmt: skip
        if self.records is not None:
            for job_id in self.records.interrupt_running(clock()):
                log.warning("job %s was running when the server stopped: interrupted", job_id)
            self._starter.load_queue(self.records)
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
        dataset_file: bytes | HeldDataset = b"",
        wanted: Callable[[], bool] | None = None,
    ) -> JobRow:
        """Starts a job of ``principal``; returns it as stored (state running).
        ``resume_checkpoint``: the checkpoint it goes on from (empty: none).
        ``dataset_file``: the content of the data set file ``dataset`` names (empty: a
        bundled set; a HeldDataset: with its digest, a stored file's; kept in the store
        while the job is queued). ``queue``:
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
        if self._starter.stopping:
            raise FailedPrecondition("the server is stopping: submit the job again once it is back")
        runner = self.runner()
        job = checked_submission(
            runner, self.servicer.board.info, kind, options_json, dataset, lease_wait_s,
            resume_checkpoint, priority, self._starter.tile_use(), dataset_file,
        )  # fmt: skip
        protections = self.servicer.protections
        if protections is not None:
            count = self.servicer.board.info.tile_count
            tiles = range(count) if job.whole_board else job.tiles
            protections.check_tiles(tiles, principal, admin=False)
        kept = runner.deployment_kept(job.kind, job.options)
        if kept:  # refused now, before its tiles are written, not once it is tuned
            self._may_keep_deployment(principal, kept)
        if queue:
            return self._starter.enqueue(records, runner, principal, job)
        return self._starter.start(records, runner, principal, job, lease_wait_s, wanted)

    def runner(self) -> JobRunner:
        """The runner the jobs run with; FailedPrecondition naming the ``training`` extra
        when it cannot be loaded."""
        if self._runner is None:
            self._runner = self._load_runner()  # FailedPrecondition without the extra
        return self._runner

    def _launch(self, live: LiveJob, runner: JobRunner) -> None:
        RunningJob(live, self._table, self._run_settings).start(runner)

    def _ended(self, state: str) -> None:
        """A job's end is stored and announced."""
        self._on_end(state)
        self._starter.queue.kick()  # its tiles and its principal's place are free
        self._prune_if_due()

    # -- GetJob, ListJobs, CancelJob, WatchJob -------------------------------------

    def full_id(self, job_id: str) -> str:
        """The id of the one job whose id starts with ``job_id`` (at least
        :data:`MIN_ID_PREFIX` digits, as git and docker take a commit's or a container's),
        else ``job_id`` as given: a whole id, or one no job has, which the request's own
        lookup then refuses. The start of several jobs' ids is refused naming them."""
        if not MIN_ID_PREFIX <= len(job_id) < 2 * JOB_ID_BYTES:
            return job_id
        with self._table.changed:
            found = {known for known in self._table.live if known.startswith(job_id)}
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
        with self._table.changed:
            live = self._table.live.get(job_id)
            held = live is not None and (
                live.row.state not in FINAL_STATES or live.stored < len(live.events)
            )  # running, or its end could not be stored: what this process knows
            job = snapshot(live) if live is not None and held else None
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
            raise JobNotFound(_no_such_job(job_id))
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
        with self._table.changed:  # live rows are fresher than the store's
            fresh = [
                snapshot(self._table.live[r.id]) if r.id in self._table.live else r for r in rows
            ]
        return [job for job in fresh if not states or job.state in states]

    def cancel(self, job_id: str, principal: str, *, admin: bool) -> JobRow:
        job_id = self.full_id(job_id)
        job = self.get(job_id)
        if job.principal != principal and not admin:
            raise NotJobOwner(
                f"job {job_id} belongs to {job.principal!r}; a principal cancels only its own jobs "
                "(an admin anyone's)"
            )
        with self._table.changed:  # (reentrant) the queue starts no job it holds
            live = self._table.live.get(job_id)
            if live is None or live.row.state in FINAL_STATES:
                return job
            if live.row.state == "queued":  # it never started: it ends now, with nothing
                self._starter.end_unstarted(
                    live, "cancelled", f"cancelled by {principal} while queued"
                )
                return snapshot(live)
            if live.cancel.is_set():
                return _stopping(live, STOPS_AT_BOARD_CALL)
            live.cancelled_by = principal
            if not live.stop.is_set():
                live.stop_asked_s = time.monotonic()
                live.stop.set()
                log.info("job %s: cancel asked by %s; it stops at its next step, epoch or run "
                         "boundary", job_id, principal)  # fmt: skip
                return _stopping(live, STOPS_AT_BOUNDARY)
            live.cancel.set()  # asked again (or past the time limit): now
            log.info("job %s: cancel asked by %s; it stops at its next board call",
                     job_id, principal)  # fmt: skip
            return _stopping(live, STOPS_AT_BOARD_CALL)

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
        with self._table.changed:
            live = self._table.live.get(job_id)
            if live is None or live.row.state != "queued":
                raise FailedPrecondition(
                    f"job {job_id} is {job.state}, not queued: a priority orders only the queue"
                )
            before, live.row.priority = live.row.priority, priority
            self._table.event(
                live, "log", message=f"priority {before} -> {priority}, set by {principal}"
            )
            assert self.records is not None  # a queued job was stored
            self.records.update(live.row, live.events[live.stored :])
            live.stored = len(live.events)
        log.info("job %s: priority %d -> %d, set by %s", job_id, before, priority, principal)
        self._starter.queue.run_pass()  # it may start at once
        self._starter.queue.kick()
        with self._table.changed:
            return snapshot(live)

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
        with self._table.changed:
            live = self._table.live.get(job_id)
            state = live.row.state if live is not None else job.state
        if state not in FINAL_STATES or job.state not in FINAL_STATES:
            raise FailedPrecondition(
                f"job_id: job {job_id} is {state}; cancel it (CancelJob) and delete it once "
                "it has ended"
            )
        assert self.records is not None  # get() found it there, or it ran here
        # A job held here has ended, but the store refused its end: stored as running.
        freed = self.records.delete(job_id, running_too=live is not None)
        with self._table.changed:
            self._table.live.pop(job_id, None)
        if freed is None:
            raise JobNotFound(_no_such_job(job_id))
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
            gone = self.records.delete_ended_before(self._table.clock() - self.retention_s)
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
        with self._table.changed:
            live = self._table.live.get(job_id)
        if live is None:
            job = self.get(job_id)
            self._check_index(job, from_index)
            assert self.records is not None  # get() found it there
            yield from self.records.events(job_id, from_index)
            return
        with self._table.changed:
            self._check_index(live.row, from_index)
        index = from_index
        while True:
            with self._table.changed:
                while len(live.events) <= index and live.row.state not in FINAL_STATES:
                    self._table.changed.wait(WATCH_POLL_S)
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

    def stop_all(self, wait_s: float) -> list[str]:
        """The server stops: every running job is asked to stop at its next step, epoch or
        run boundary, as a first CancelJob asks, and no new job starts. A job that reaches
        its boundary within ``wait_s`` ends ``interrupted`` with its record (and its
        checkpoint, to go on from: jobs.proto); one that does not is stopped at its next
        board call, interrupted without a record. Returns the ids of the jobs it stopped."""
        with self._table.changed:
            self._starter.stopping = True
            running = [j for j in self._table.live.values() if j.row.state == "running"]
            for live in running:
                live.server_stopping = True
                if not live.stop.is_set():
                    live.stop_asked_s = time.monotonic()
                    live.stop.set()
            if running:
                log.info("stopping: %d running job%s stop%s at %s next boundary (up to %g s)",
                         len(running), "" if len(running) == 1 else "s",
                         "s" if len(running) == 1 else "",
                         "its" if len(running) == 1 else "their", wait_s)  # fmt: skip

            def ended() -> bool:
                return all(j.row.state in FINAL_STATES for j in running)

            if not self._table.changed.wait_for(ended, timeout=wait_s):
                late = [j for j in running if j.row.state not in FINAL_STATES]
                log.warning("stopping: jobs %s reached no boundary in %g s; stopped at "
                            "their next board call", [j.row.id for j in late], wait_s)  # fmt: skip
                for live in late:
                    live.cancel.set()
                self._table.changed.wait_for(ended, timeout=LATE_STOP_WAIT_S)
        return [j.row.id for j in running]

    def running(self) -> list[str]:
        """Ids of jobs running in this process."""
        return self._table.ids("running")

    def queued(self) -> list[str]:
        """Ids of the jobs waiting in the queue."""
        return self._table.ids("queued")

    def in_memory(self) -> list[str]:
        """Ids of the jobs this process holds in memory: those running, and those whose
        end the store refused (what only this process knows); the others are read from
        the store."""
        return self._table.ids()


def _no_such_file(job_id: str, name: str, sizes: dict[str, int]) -> JobNotFound:
    files = ", ".join(sizes) or "none yet"
    return JobNotFound(f"name: job {job_id} has no record file {name[:80]!r} (its files: {files})")


STOPS_AT_BOUNDARY = (
    "stopping at its next step, epoch or run boundary, with its record; cancel it again "
    "to stop it at its next board call, without its record"
)
"""CancelJob's message for a running job asked to stop the first time (jobs.proto)."""

STOPS_AT_BOARD_CALL = "stopping at its next board call, without its record"
"""CancelJob's message for a running job asked again, or past the server's time limit."""


def _stopping(live: LiveJob, how: str) -> JobRow:
    """The running job as CancelJob answers it: its message says how it stops (the row
    kept keeps its last progress line)."""
    row = snapshot(live)
    row.message = how
    return row


def _no_such_job(job_id: str) -> str:
    """NotFound's text for ``job_id``: a start of an id shorter than MIN_ID_PREFIX is
    never looked up, and says so (it may well start a job's id)."""
    if len(job_id) < MIN_ID_PREFIX:
        return (
            f"job_id: no job {job_id!r} on this server: give a job's whole id, or its first "
            f"{MIN_ID_PREFIX} digits or more (ListJobs)"
        )
    return f"job_id: no job {job_id[:40]!r} on this server (ListJobs)"
