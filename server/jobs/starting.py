"""Starting checked jobs: at once, leasing their tiles, or through the queue.

A job that starts at once opens a session of its own and leases its tiles (waiting
``lease_wait_s`` for a holder), is stored as running and handed to its thread
(sidra.server.jobs.running). A job submitted with ``queue`` is stored as queued and
started so by the queue (sidra.server.jobs.queue) once its tiles are free and its
principal under ``[limits] max_jobs``; the queue asks :meth:`JobStarter.try_start`,
which says what a job still waits for. Queued jobs outlive the server: the next one
takes them back from the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator

from sidra.drivers import (
    FailedPrecondition,
    LeaseHeld,
    ResourceExhausted,
    SidraError,
    TileUse,
    tiles_text,
)
from sidra.drivers.monitor import LinkMonitored
from sidra.server.jobs.live import LiveJob
from sidra.server.jobs.queue import JobQueue, Waiting, WaitsForTiles
from sidra.server.jobs.runner import (
    DATASET_QUEUED,
    HeldDataset,
    JobRunner,
    SentDataset,
    StoredDataset,
)
from sidra.server.jobs.running import close_session
from sidra.server.jobs.submission import Submission
from sidra.server.jobs.table import JobTable, snapshot
from sidra.server.servicer import BoardServicer
from sidra.server.sessions import LeaseKeeper
from sidra.server.state.datasets import DatasetRecords
from sidra.server.state.deployments import DeploymentRecords
from sidra.server.state.jobs import JobEventRow, JobRecords, JobRow

__all__ = ["JOB_ID_BYTES", "JobStarter"]

log = logging.getLogger(__name__)

JOB_ID_BYTES = 8
"""A job's id is this many random bytes as lowercase hex digits (twice as many)."""


class JobStarter:
    """Starts the jobs of one served board, and keeps its queue.

    ``runner`` gives the training code (FailedPrecondition without the ``training``
    extra); ``launch`` hands a job stored as running, its lease held, to its thread;
    ``max_jobs`` bounds a principal's running jobs, ``max_queued_jobs`` its queued ones;
    ``on_end`` is told the final state of a job that ends without starting,
    ``on_queue_wait`` how long each queued job waited as it starts, s.
    """

    def __init__(
        self,
        table: JobTable,
        servicer: BoardServicer,
        keeper: LeaseKeeper,
        *,
        runner: Callable[[], JobRunner],
        launch: Callable[[LiveJob, JobRunner], None],
        max_jobs: int,
        max_queued_jobs: int,
        on_end: Callable[[str], object],
        on_queue_wait: Callable[[float], object],
        no_longer_allowed: Callable[[str], str | None] = lambda principal: None,
    ) -> None:
        self.table = table
        self._no_longer_allowed = no_longer_allowed
        """Why a principal may no longer submit jobs (its token removed, expired, its role
        lowered), None while it may: a queued job of one that may not ends at its turn."""
        self.servicer = servicer
        self.keeper = keeper
        self.max_jobs = max_jobs
        self.max_queued_jobs = max_queued_jobs
        self._runner = runner
        self._launch_thread = launch
        self._on_end = on_end
        self._on_queue_wait = on_queue_wait
        self.stopping = False
        """Set as the server stops (JobManager.stop_all): no job starts from then on."""
        self._starting: Counter[str] = Counter()  # principal -> SubmitJobs under way
        # principal -> when it last started a job, Unix s: the queue's turns, kept over
        # restarts (the jobs' start times are in the store)
        self._last_start: dict[str, float] = {}
        if table.records is not None:
            self._last_start = table.records.last_starts()
        self.queue = JobQueue(self._waiting, self.try_start, self._waits,
                              lambda: self.stopping, table.running_by_principal,
                              self._last_start_of, self._queued_placed_again)  # fmt: skip

    # -- at once -------------------------------------------------------------------

    def start(
        self,
        records: JobRecords,
        runner: JobRunner,
        principal: str,
        job: Submission,
        lease_wait_s: float,
        wanted: Callable[[], bool] | None = None,
    ) -> JobRow:
        """Leases the job's tiles (waiting ``lease_wait_s`` while ``wanted`` says the
        caller still waits: one that gave up gets no job), stores it running, runs it."""
        with self._reserved(principal) as placed:
            job_id = secrets.token_hex(JOB_ID_BYTES)
            session = self.keeper.open(principal, 0.0, f"job {job_id} {job.kind}")
            try:
                held = self.keeper.acquire(
                    principal, session.id, job.tiles, job.whole_board, lease_wait_s, wanted
                )
                now = self.table.clock()
                row = JobRow(
                    id=job_id, kind=job.kind, principal=principal, dataset=job.dataset,
                    options_json=runner.options_json(job.options), state="running",
                    submitted_unix_s=now, started_unix_s=now, tiles=held.tiles,
                    whole_board=held.whole_board, priority=job.priority,
                )  # fmt: skip
                records.add(row)
            except BaseException:
                close_session(self.keeper, principal, session.id)
                raise
            live = LiveJob(
                row, session.id, last_flush_s=time.monotonic(), options=job.options,
                resume=job.resume,
                dataset_file=None if job.dataset_file is None else job.dataset_file.content,
                dataset_origin="" if job.dataset_file is None else job.dataset_file.origin,
            )  # fmt: skip
            with self.table.changed:
                self.table.live[job_id] = live
                placed()  # running now counts it: the reservation must not count it twice
                self.table.event(live, "state", state="running")
            self._launch(live, runner)
            return snapshot(live)

    def _launch(self, live: LiveJob, runner: JobRunner) -> None:
        with self.table.changed:
            self._last_start[live.row.principal] = live.row.started_unix_s
        self._launch_thread(live, runner)

    @contextlib.contextmanager
    def _reserved(self, principal: str) -> Iterator[Callable[[], None]]:
        """Holds one of ``principal``'s ``max_jobs`` places while its job starts; yields
        what gives the place back early, under ``table.changed``, as the job is counted
        running (else a second SubmitJob would see it twice until the block ends)."""
        with self.table.changed:
            running = self.table.count(principal, "running") + self._starting[principal]
            if running >= self.max_jobs:
                raise ResourceExhausted(
                    "limits.max_jobs",
                    f"a job while {running} of principal {principal!r} are running",
                    f"at most {self.max_jobs} running jobs per principal; wait for one to end "
                    "or cancel one",
                )
            self._starting[principal] += 1
        held = [True]

        def give_back() -> None:
            if held:
                held.clear()
                self._starting[principal] -= 1
                if not self._starting[principal]:
                    del self._starting[principal]

        try:
            yield give_back
        finally:
            with self.table.changed:
                give_back()

    def tile_use(self, but: str = "") -> TileUse:
        """Which tiles others use now, for a job given none to take the others first: the
        tiles leased (the job's own session is not open yet) or claimed by a queued job
        (but job ``but``), and those holding an intact deployment."""
        queued = [t for w in self._waiting() if w.job_id != but for t in w.tiles]
        leased = frozenset(h.tile for h in self.keeper.registry.holders()) | set(queued)
        deployed: frozenset[int] = frozenset()
        if self.table.records is not None:
            serial = self.servicer.board.info.serial_number
            kept = DeploymentRecords(self.table.records.store).of_board(serial)
            deployed = frozenset(r.tile for d in kept if d.intact for r in d.regions)
        return TileUse(leased, deployed)

    # -- through the queue ---------------------------------------------------------

    def enqueue(
        self, records: JobRecords, runner: JobRunner, principal: str, job: Submission
    ) -> JobRow:
        """Stores a checked job as queued, tries the queue, and returns the job as it is
        then (running when it could start at once)."""
        table = self.table
        with table.changed:
            queued = table.count(principal, "queued")
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
                state="queued", submitted_unix_s=table.clock(), tiles=job.tiles,
                whole_board=job.whole_board, message="queued", priority=job.priority,
            )  # fmt: skip
            held = job.dataset_file
            live = LiveJob(
                row, "", options=job.options, resume=job.resume,
                queued_file=None if held is None else self._stored_file(held.sha256, held.origin),
            )  # fmt: skip
            table.event(live, "state", state="queued")
            # under the lock: the queue never sees it unstored
            records.add(
                row,
                job.resume,
                None if held is None else held.content,
                None if held is None else held.sha256,
                runner.queued_options_json(job.options),
            )
            records.update(row, live.events)
            live.stored = len(live.events)
            table.live[row.id] = live
        log.info("job %s (%s on %s) of %s queued for tiles %s", row.id, job.kind, job.dataset,
                 principal, "all" if job.whole_board else list(job.tiles))  # fmt: skip
        self.queue.run_pass()  # it may start at once
        self.queue.kick()
        with table.changed:
            return snapshot(live)

    def load_queue(self, records: JobRecords) -> None:
        """Takes back the jobs a previous server left queued (in submission order); one
        whose options this server no longer reads ends failed, saying why."""
        for queued in records.queued():
            row, resume = queued.row, queued.resume_checkpoint
            file: SentDataset | None = None
            # How the file came is not in the store: said as what is known.
            if queued.dataset_sha256 is not None:
                file = self._stored_file(queued.dataset_sha256, DATASET_QUEUED)
            elif queued.dataset_file is not None:  # queued before schema 11: its own copy
                file = HeldDataset(queued.dataset_file, origin=DATASET_QUEUED)
            live = LiveJob(row, "", resume=resume, queued_file=file)
            live.events = records.events(row.id)  # its next event's index follows them
            live.stored = len(live.events)
            try:
                live.options = self._runner().options(
                    row.kind, queued.options_json or row.options_json
                )
            except (SidraError, ValueError) as exc:
                self.end_unstarted(
                    live, "failed",
                    f"queued when the server stopped, and this server cannot run it: {exc}",
                )  # fmt: skip
                continue
            with self.table.changed:
                self.table.live[row.id] = live
            log.info("job %s of %s: queued before the server stopped, queued again",
                     row.id, row.principal)  # fmt: skip
        self.queue.kick()

    def end_unstarted(self, live: LiveJob, state: str, error: str) -> None:
        """Ends a job that never started (cancelled, or unreadable, in the queue)."""
        table = self.table
        assert table.records is not None  # a queued job was stored
        with table.changed:
            row = live.row
            row.state, row.error, row.ended_unix_s = state, error, table.clock()
            table.event(live, "state", message=error, state=state)
            pending = live.events[live.stored :]
        try:
            table.records.update(row, pending)
        except SidraError:
            log.exception("job %s ended %s in the queue but was not stored", row.id, state)
        else:
            with table.changed:
                live.stored = len(live.events)
                table.live.pop(row.id, None)
        log.info("job %s %s in the queue: %s", row.id, state, error)
        self._on_end(state)
        self.queue.kick()

    def _waiting(self) -> list[Waiting]:
        """The queued jobs, as the queue's passes see them."""
        count = self.servicer.board.info.tile_count
        with self.table.changed:
            return [
                Waiting(
                    j.row.id,
                    j.row.principal,
                    j.row.submitted_unix_s,
                    frozenset(range(count) if j.row.whole_board else j.row.tiles),
                    j.row.priority,
                )  # fmt: skip
                for j in self.table.live.values()
                if j.row.state == "queued"
            ]

    def _last_start_of(self) -> dict[str, float]:
        """When each principal last started a job, Unix s (the queue's turns)."""
        with self.table.changed:
            return dict(self._last_start)

    def _waits(self, reasons: dict[str, str]) -> None:
        """What each job left in the queue waits for, as its message."""
        with self.table.changed:
            for job_id, message in reasons.items():
                live = self.table.live.get(job_id)
                if live is not None and live.row.state == "queued":
                    live.row.message = message

    def try_start(self, waiting: Waiting) -> str:
        """Starts the queued job if it can; else says what it waits for (a
        :class:`~sidra.server.jobs.queue.WaitsForTiles` when it waits for tiles)."""
        table = self.table
        live = table.held(waiting.job_id)
        if live is None:
            return "not queued any more"
        row = live.row
        board = self.servicer.board
        if isinstance(board, LinkMonitored) and not board.link_up:
            return "the board is unavailable (its link is down); it starts once it is back"
        if self._protected_since_queued(live, waiting) or self._revoked_since_queued(live):
            return "not queued any more"
        held = [h for h in self.keeper.registry.holders() if h.tile in waiting.tiles]
        if held and (moved := self._placed_again(live, waiting)) is not None:
            waiting, held = moved, []
        if held:
            first = held[0]
            return WaitsForTiles(
                f"{tiles_text(sorted({h.tile for h in held}))} leased by session "
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
                    close_session(self.keeper, row.principal, session.id)
                    raise
                pending: list[JobEventRow] = []  # its events not stored yet, once started
                with table.changed:
                    if row.state != "queued" or self.stopping:  # cancelled meanwhile
                        started = False
                    else:
                        started = True
                        row.state, row.started_unix_s, row.message = "running", table.clock(), ""
                        row.tiles, row.whole_board = lease.tiles, lease.whole_board
                        live.session_id = session.id
                        if live.queued_file is not None:
                            live.dataset_origin = live.queued_file.origin
                        live.dataset_file, live.queued_file = content, None
                        live.started_s = live.last_flush_s = time.monotonic()
                        table.event(live, "state", state="running")
                        pending = live.events[live.stored :]
                if not started:
                    close_session(self.keeper, row.principal, session.id)
                    return "not queued any more"
        except LeaseHeld as exc:
            return WaitsForTiles(str(exc))  # "cannot lease tile 0: held by ..."
        except ResourceExhausted as exc:  # max_jobs, or its principal's open sessions
            return str(exc)
        except SidraError as exc:
            return f"cannot start yet: {exc}"
        assert table.records is not None
        try:
            table.records.update(row, pending)  # running: its checkpoint to go on from spent
            with table.changed:
                live.stored += len(pending)
        except SidraError as exc:  # kept in memory; the job's next write tries again
            log.warning("job %s: its start was not stored: %s", row.id, exc)
        self._on_queue_wait(max(row.started_unix_s - row.submitted_unix_s, 0.0))
        self._launch(live, self._runner())
        return ""

    def _queued_placed_again(self, waiting: Waiting) -> Waiting | None:
        """The queue's ``place_again``: :meth:`_placed_again` of a job still queued."""
        live = self.table.held(waiting.job_id)
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
            tiles, _ = self._runner().claim(
                row.kind, live.options, row.dataset, info, self.tile_use(but=row.id),
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
        with self.table.changed:
            if row.state != "queued":
                return None
            before, row.tiles = row.tiles, tuple(tiles)
            # Said in its events (stored as it starts): why it runs elsewhere than first said.
            said = f"{tiles_text(before)} held: placed again on {tiles_text(tiles)}, free now"
            self.table.event(live, "log", message=said)
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
            with self.table.changed:  # (reentrant) as cancel: the queue starts no job it holds
                if live.row.state == "queued":
                    self.end_unstarted(
                        live, "failed",
                        f"not started: its tiles came to be protected while it was queued: {exc}",
                    )  # fmt: skip
            return True
        return False

    def _revoked_since_queued(self, live: LiveJob) -> bool:
        """Ends ``live`` failed, before anything ran, when its principal may no longer
        submit jobs (SubmitJob would refuse it now; a queued job must not run with rights
        taken away since); True when it did."""
        why = self._no_longer_allowed(live.row.principal)
        if why is None:
            return False
        with self.table.changed:  # (reentrant) as cancel: the queue starts no job it holds
            if live.row.state == "queued":
                self.end_unstarted(
                    live, "failed", f"not started: {why} since it was queued"
                )  # fmt: skip
        log.warning("job %s of %s not started: %s", live.row.id, live.row.principal, why)
        return True

    def _stored_file(self, sha256: str, origin: str) -> StoredDataset:
        """A queued job's data set file, read from the store when asked; ``origin``: how
        it reached the server."""
        assert self.table.records is not None
        kept = DatasetRecords(self.table.records.store)

        def load(digest: str) -> bytes:
            content = kept.blob(digest)
            if content is None:  # a queued job holds its bytes: a store edited by hand
                raise FailedPrecondition(f"the data set file of SHA-256 {digest} is not in "
                                         "the state store")  # fmt: skip
            return content

        return StoredDataset(sha256, load, origin)
