"""A started job's thread: the training code on the job's board, its reports, its end.

A :class:`RunningJob`

- runs the training loop on a :class:`~sidra.server.jobs.board.JobBoard`: the served
  board through the same turns and lease admission as clients' calls, every write it
  makes recorded in the store before the job ends;
- takes the training code's reports (it is the code's
  :class:`~sidra.server.jobs.runner.JobReporter`): progress and log lines become
  numbered events, kept in memory for watchers and written to the store about once a
  second; a checkpoint is stored at once;
- once cancelled, ends at its next step, epoch or run boundary with the record of what
  it did (the runner's ``stop``), or at its next board call with none when cancelled
  twice or still running the grace after the first cancel; past the server's time limit
  it is stopped as a first cancel stops it;
- closes its session when it ends, however it ends (the lease is released and
  perturbed cells restored before the final state is announced), tells the queue its
  tiles are free, then makes what its record left to make (the plot: drawing it holds
  no tile) and stores its final state with its record in one transaction.

The job's session is renewed from a thread of its own, so host work between board
calls (loading the data, a digital pre-training) never lets the lease lapse.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidra.drivers import FailedPrecondition, SidraError, tiles_text
from sidra.drivers.host_machine import software
from sidra.drivers.monitor import take_reset_notice
from sidra.drivers.requests import GetBoardInfoRequest
from sidra.server.jobs.board import JobBoard
from sidra.server.jobs.live import LiveJob, cancelled_text, ended, progress_interval_s
from sidra.server.jobs.recorder import BehindRecorder
from sidra.server.jobs.runner import CHECKPOINT_FILE, RUN_FILE, JobRunner, RecordFile
from sidra.server.jobs.table import JobTable
from sidra.server.limits import caller_key
from sidra.server.recording import store_in_order
from sidra.server.servicer import BoardServicer
from sidra.server.sessions import LeaseKeeper
from sidra.server.state.jobs import KEPT_CHECKPOINT, JobEventRow

__all__ = [
    "FLUSH_INTERVAL_S",
    "JobCancelled",
    "KeepDeployment",
    "MayKeepDeployment",
    "RunSettings",
    "RunningJob",
    "close_session",
    "no_deployment_to_keep",
    "no_deployments",
]

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
"""Most time a running job's events wait before they are written to the store, s."""


class JobCancelled(Exception):
    """Raised inside a job's thread to stop it; never leaves the job's thread."""


KeepDeployment = Callable[[str, str, bytes, str], dict[str, Any]]
"""``(principal, name, model, description)``: deployment ``name`` registered again in
place of itself with ``model`` as ``principal`` (DeploymentServicer.register_again); its
JSON values, or a SidraError saying why not."""


def no_deployments(principal: str, name: str, model: bytes, description: str) -> dict[str, Any]:
    """A server without a DeploymentService keeps no deployment a job could register."""
    raise FailedPrecondition("this server keeps no deployments (they live in its state store)")


MayKeepDeployment = Callable[[str, str], None]
"""``(principal, name)``: returns if ``principal``'s job could register deployment ``name``
again in place of itself (it is theirs); NotFound, PermissionDenied otherwise."""


def no_deployment_to_keep(principal: str, name: str) -> None:
    """A server without a DeploymentService has no deployment for a job to keep."""
    raise FailedPrecondition(
        f"options.deployment: got {name!r}, but this server keeps no deployments (they live "
        "in its state store)"
    )


@functools.cache
def server_software() -> dict[str, Any]:
    """The software and machine of this server (sidra.drivers.host_machine.software),
    found at its first job: a job's record names them as a run from a client does."""
    return software()


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How the server runs every job."""

    servicer: BoardServicer
    """Runs the jobs' board calls (its turns, leases and store)."""
    keeper: LeaseKeeper
    """Renews, narrows and closes the jobs' sessions."""
    max_job_s: float | None
    """How long a job runs before it is stopped at its next boundary, s (None: no limit)."""
    cancel_grace_s: float
    """How long a cancelled job may take to reach its next boundary before it is stopped
    at its next board call, s."""
    checkpoint_every_s: float
    """How often a running job keeps its checkpoint in the store, s."""
    on_ended: Callable[[str], object]
    """Told each job's final state once it is stored and announced."""
    on_released: Callable[[], object]
    """Told when a job has let go of its tiles (before its record is made and stored)."""
    keep_deployment: KeepDeployment = no_deployments
    """Registers a deployment again for a job (a tune job's, once tuned)."""


class RunningJob:
    """One started job (stored as running, its lease held): its thread's work, and where
    its training code reports."""

    def __init__(self, live: LiveJob, table: JobTable, settings: RunSettings) -> None:
        self.live = live
        self.table = table
        self.settings = settings
        self._recorder: BehindRecorder | None = None
        """Records the job's board writes once it runs."""

    def start(self, runner: JobRunner) -> None:
        """Runs the job on a thread of its own."""
        server_software()  # found once, while the code the server loaded is checked out
        row = self.live.row
        log.info("job %s (%s on %s) of %s started on %s", row.id, row.kind, row.dataset,
                 row.principal, tiles_text(row.tiles, row.whole_board))  # fmt: skip
        threading.Thread(target=self.run, args=(runner,), name=f"sidra-job-{row.id}",
                         daemon=True).start()  # fmt: skip

    def run(self, runner: JobRunner) -> None:
        """The job's thread: runs the training code, then ends the job however it ended."""
        live, settings = self.live, self.settings
        row = live.row
        recorder = BehindRecorder(f"sidra-job-{row.id}-recorder", run=store_in_order)
        self._recorder = recorder
        board = JobBoard(
            settings.servicer,
            tiles=frozenset(row.tiles),
            whole_board=row.whole_board,
            principal=row.principal,
            caller=caller_key(row.principal, f"job {row.id}"),
            session_id=live.session_id,
            check=self.check,
            recorder=recorder,
        )
        keep_alive = threading.Thread(
            target=self._keep_alive, name=f"sidra-job-{row.id}-heartbeat", daemon=True
        )
        keep_alive.start()
        summary: dict[str, Any] = {}
        files: dict[str, RecordFile] = {}
        try:
            try:
                self._settle(board)
                summary, files = runner.run(
                    row.kind, live.options, row.dataset, board, self, live.stop, live.resume,
                    settings.checkpoint_every_s, live.dataset_file,
                    dataset_origin=live.dataset_origin,
                )  # fmt: skip
            finally:
                recorder.drain()  # every write the job made is in the store before it ends
            state, error = ended(live, summary, settings.max_job_s)
        except JobCancelled:
            state, error = "cancelled", self._cancelled_text()
            if live.server_stopping and not live.cancelled_by:
                state, error = (
                    "interrupted",
                    "the server stopped before the job reached a step, epoch or run "
                    "boundary; no record kept",
                )
        except Exception as exc:  # the job's failure is its record's, not the server's
            kept = getattr(exc, "outcome", None)  # what it made before (JobRunner.run)
            if kept is not None:
                summary, files = kept
            if live.cancel.is_set() and (isinstance(exc, SidraError) or kept is not None):
                state, error = "cancelled", self._cancelled_text()
            else:
                log.warning("job %s failed", row.id, exc_info=True)
                # An exception keeping a record says what ended the job and where it is.
                state, error = "failed", str(exc) if kept else f"{type(exc).__name__}: {exc}"
        finally:
            live.done.set()
            keep_alive.join()
            close_session(settings.keeper, row.principal, live.session_id)
        ended_unix_s = self.table.clock()  # its board work is over: what follows is its record's
        settings.on_released()  # a queued job may start on its tiles while its plot is drawn
        made = self._made(files)
        if made:  # a record: where it ran, as a run from a client names its machine
            made[RUN_FILE] = self._ran_here()
        self._finish(state, error, summary, made, ended_unix_s)

    def _ran_here(self) -> bytes:
        """The record's ``run.json`` as the server knows it: the job, and the host,
        SIDRA HIL, git commit, Python, numpy, BLAS and CPU that ran it. The client
        saving the record adds when, on which board and who saved it."""
        ran = {"where": "job", "job_id": self.live.row.id, "host": socket.gethostname()}
        return json.dumps(ran | server_software(), indent=2).encode()

    def _made(self, files: dict[str, RecordFile]) -> dict[str, bytes]:
        """The record's files, each one the job left to make (its plot) made now; one that
        fails is left out and said in the job's events (the record is kept)."""
        made: dict[str, bytes] = {}
        for name, content in files.items():
            if isinstance(content, bytes):
                made[name] = content
                continue
            try:
                made[name] = content()
            except Exception as exc:  # a figure that cannot be drawn costs the figure only
                log.warning("job %s: %s not made", self.live.row.id, name, exc_info=True)
                with self.table.changed:
                    self.table.event(self.live, "log", message=f"{name} not made: {exc}")
        return made

    def _settle(self, board: JobBoard) -> None:
        """Takes a restart of the board that its driver noticed before this job began.

        The driver reports such a restart to the next call that uses the array,
        whoever makes it. What the restart lost was not this job's (a job programs
        whatever it uses), so the job takes the notice, says so and goes on; clients
        learn of the restart from the board instance id every answer names (a new boot,
        a new id). GetBoardInfo first: a restart is found on the way (the link
        re-attached, a stale epoch), and kept."""
        board.run(GetBoardInfoRequest())
        notice = take_reset_notice(board.servicer.board)
        if notice is not None:
            self.log(f"the board restarted before this job began; going on ({notice})")

    def _cancelled_text(self) -> str:
        return cancelled_text(self.live, self.settings.cancel_grace_s, self.settings.max_job_s)

    def check(self) -> None:
        """Raises JobCancelled to stop the job now (before a board call or a report)."""
        live = self.live
        if live.cancel.is_set():
            raise JobCancelled
        if self.settings.max_job_s is not None:  # before every board call: none when no limit
            self._stop_if_over_time()
        grace_s = self.settings.cancel_grace_s
        if live.stop.is_set() and time.monotonic() - live.stop_asked_s > grace_s:
            live.grace_ran_out = True
            live.cancel.set()
            raise JobCancelled

    def _stop_if_over_time(self) -> None:
        """Asks the job to stop at its next boundary, as a first CancelJob does, once it
        has run longer than ``max_job_s``."""
        live, max_job_s = self.live, self.settings.max_job_s
        if max_job_s is None or live.stop.is_set():
            return
        if time.monotonic() - live.started_s > max_job_s:
            with self.table.changed:
                if live.stop.is_set():
                    return
                live.over_time = True
                live.stop_asked_s = time.monotonic()
                live.stop.set()
            log.info("job %s: ran %g s, the server's limit; it stops at its next step, epoch "
                     "or run boundary", live.row.id, max_job_s)  # fmt: skip

    def _keep_alive(self) -> None:
        """Renews the job's session every third of its time to live until the job ends
        (and stops it once over the time limit, between its board calls too)."""
        live, keeper, max_job_s = self.live, self.settings.keeper, self.settings.max_job_s
        period = keeper.registry.default_ttl_s / 3
        if max_job_s is not None:
            period = min(period, max(max_job_s / 10, 0.05))
        while not live.done.wait(period):
            self._stop_if_over_time()
            try:
                keeper.renew(live.row.principal, live.session_id)
            except SidraError as exc:  # closed by an admin: the job's next call fails
                log.warning("job %s: its session ended (%s)", live.row.id, exc)
                return

    def _finish(
        self,
        state: str,
        error: str,
        summary: dict[str, Any],
        files: dict[str, bytes],
        ended_unix_s: float,
    ) -> None:
        """Ends the job (``ended_unix_s``: when it let go of its tiles): its final row, last
        events and record are stored first, and only then does anyone see the final state
        (its watchers, GetJob), so a client told a job ended finds its record in the store,
        even after the server stops. Only the job's own thread adds its events, so the
        final event's index cannot be taken meanwhile."""
        live, table = self.live, self.table
        records = table.records
        assert records is not None  # a job is stored before it starts
        now = ended_unix_s
        if not files and self._kept_checkpoint():
            error += KEPT_CHECKPOINT  # no record, but the checkpoint it kept as it ran
        with table.changed:
            final = dataclasses.replace(
                live.row, state=state, error=error, ended_unix_s=now, events=len(live.events) + 1
            )
            if summary:  # succeeded, or ended early (CancelJob, its board gone) with its record
                final.summary_json = json.dumps(summary, default=str)
            event = JobEventRow(len(live.events), now, "state", message=error, state=state)
            pending = [*live.events[live.stored :], event]
        try:
            records.update(final, pending, files or None)
            stored = True
        except SidraError:
            log.exception("job %s ended %s but its record was not stored", final.id, state)
            stored = False
        with table.changed:
            live.row = final
            live.events.append(event)
            if stored:  # GetJob, ListJobs and WatchJob read it from the store from now on:
                live.stored = len(live.events)  # a server up for months does not keep
                del table.live[final.id]  # every job it ran, with its events, in memory
            table.changed.notify_all()
        log.info("job %s %s%s", final.id, state, f": {error}" if error else "")
        self.settings.on_ended(state)

    def _kept_checkpoint(self) -> bool:
        """Whether the store holds a checkpoint the job kept as it ran."""
        records = self.table.records
        try:
            return records is not None and CHECKPOINT_FILE in records.file_sizes(self.live.row.id)
        except SidraError:
            return False

    # -- what the training code reports (sidra.server.jobs.runner.JobReporter) ---------

    def progress(self, step: int, total: int, message: str) -> None:
        self.check()
        live, table = self.live, self.table
        now = time.monotonic()
        with table.changed:
            row = live.row
            row.step, row.total, row.message = step, total, message
            since = now - live.last_progress_s
            if step >= total or since >= progress_interval_s(now - live.started_s):
                live.last_progress_s = now
                table.event(live, "progress", step=step, total=total, message=message)
        self._flush_if_due(now)

    def log(self, line: str) -> None:
        self.check()
        with self.table.changed:
            self.table.event(self.live, "log", message=line)
        self._flush_if_due(time.monotonic())

    def keep_tiles(self, tiles: tuple[int, ...]) -> None:
        self.check()
        live = self.live
        row = live.row
        narrowed = self.settings.keeper.narrow(row.principal, live.session_id, tiles)
        kept = narrowed.ended.session.tiles
        with self.table.changed:
            row.tiles, row.whole_board = kept, False
        line = f"lease narrowed to {tiles_text(kept)} (the others freed)"
        log.info("job %s: %s", row.id, line)
        self.log(line)

    def keep_file(self, name: str, content: bytes) -> None:
        """Stores a record file of the job (its latest checkpoint) now; its end's record
        replaces it. A store that refuses leaves the job running: the file is a
        safeguard, not its record."""
        records = self.table.records
        if records is None:
            return
        try:
            records.put_file(self.live.row.id, name, content)
        except SidraError as exc:
            log.warning("job %s: %s not stored: %s", self.live.row.id, name, exc)

    def keep_deployment(self, name: str, model: bytes, description: str) -> dict[str, Any]:
        self.check()
        # The registration takes its digests from the targets the store holds: every
        # Program the job made is recorded first, or the last ones, recorded behind it,
        # would find the deployment written over.
        if self._recorder is not None:
            self._recorder.flush()
        row = self.live.row
        kept = self.settings.keep_deployment(row.principal, name, model, description)
        log.info("job %s registered deployment %s again", row.id, name)
        return kept

    def _flush_if_due(self, now: float) -> None:
        """Writes the job's new events and progress to the store about once a second."""
        live, table = self.live, self.table
        if now - live.last_flush_s < FLUSH_INTERVAL_S or table.records is None:
            return
        live.last_flush_s = now
        with table.changed:
            pending = live.events[live.stored :]
            row = dataclasses.replace(live.row)
        try:
            table.records.update(row, pending)
        except SidraError as exc:  # kept in memory; the final write tries again
            log.warning("job %s: progress not stored: %s", live.row.id, exc)
            return
        with table.changed:
            live.stored += len(pending)


def close_session(keeper: LeaseKeeper, principal: str, session_id: str) -> None:
    """Closes a job's session (releasing its lease), quietly when it has ended already."""
    try:
        keeper.close(principal, session_id, admin=False)
    except SidraError as exc:  # already ended (an admin closed it, it expired)
        log.info("job session %s already closed: %s", session_id[:8], exc)
