"""How a training command runs: its board, progress, Ctrl-C, record and summary, or a job
inside a server (--remote-job)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from sidra.cli.job_board import job_board
from sidra.cli.jobs import run_remote_job
from sidra.cli.options import SERVER_ENV
from sidra.cli.progress import progress_bar
from sidra.cli.texts import figure_text
from sidra.cli.train.params import CHECKPOINT_EVERY_S, keeps_no_record, queue_needs_remote_job
from sidra.training import (
    BUNDLED,
    FILE_SUFFIXES,
    STOPPED_AT,
    EqPropOptions,
    FFOptions,
    JobOptions,
    LastLayerOptions,
    MLPOptions,
    TrainingRecord,
    load_dataset,
)
from sidra.training import Dataset as TrainingData
from sidra.training.atomic_files import write_atomically
from sidra.training.provenance import (
    RUN_FILE,
    RunClock,
    going_on_from,
    provenance_bytes,
    read_provenance,
)
from sidra.training.records import CHECKPOINT_FILE
from sidra.training.run_lock import FolderInUse, running_in
from sidra.training.stopping import RunInterrupted

__all__ = [
    "CHECKPOINT",
    "EpochJobOptions",
    "by_epochs",
    "check_resume",
    "saving_interval_s",
    "drop_finished_checkpoint",
    "checkpoint_to_send",
    "dataset_named",
    "epoch_status",
    "exit_if_stopped",
    "finish",
    "keeping_lost_epochs",
    "print_summary",
    "progress_bar",
    "record_folder",
    "run_clock",
    "run_remote",
    "save_or_keep",
    "STOP_SIGNALS",
    "StopRequest",
    "saving_into",
    "stop_on_interrupt",
    "submitted",
]

CHECKPOINT = CHECKPOINT_FILE
"""The file in ``--out`` a run saves its checkpoint to and ``--resume`` goes on from
(every training command but ``compare`` and ``drift-recovery``)."""


def check_resume(out: Path | None, resume: bool) -> None:
    """``--out`` and ``--resume`` of a command that goes on from a checkpoint: a folder
    holding an earlier run's record (or a checkpoint) is refused unless the command
    goes on from it, which needs that folder. Checked once every option is parsed, not
    in ``--out``'s callback: --out may come before --resume."""
    if out is not None and not resume:
        going_on = (out / CHECKPOINT).is_file()
        hint = (
            ", or --resume to go on from it" if going_on else f", or --like {out} to run it again"
        )
        keeps_no_record(out, hint, also=(CHECKPOINT,))
    if resume and out is None:
        raise typer.BadParameter(f"--resume needs --out, the folder holding {CHECKPOINT}")
    if resume and out is not None and not (out / CHECKPOINT).is_file():
        finished = (out / "summary.json").is_file()
        raise typer.BadParameter(
            f"got {out}: "
            + (
                f"its record keeps no {CHECKPOINT} to go on from (a run that went to the "
                f"end keeps none, nor a pat run deployed from its twin); --like {out} runs "
                "it again into another --out"
                if finished
                else f"no {CHECKPOINT} there to go on from"
            ),
            param_hint="'--out'",
        )


def saving_interval_s(value: float | None, remote_job: bool) -> float:
    """--checkpoint-every-s as a run from here uses it; refused with --remote-job, whose
    server decides."""
    if value is not None and remote_job:
        raise typer.BadParameter(
            "--checkpoint-every-s is for runs from here; a --remote-job keeps its checkpoint "
            "as its server's [state] job_checkpoint_every_s says"
        )
    return CHECKPOINT_EVERY_S if value is None else value


def drop_finished_checkpoint(settings: Mapping[str, Any], folder: Path) -> None:
    """Removes ``folder``'s checkpoint once its run went to the end (it was not stopped):
    a finished run has nothing to go on from, and a checkpoint left there would be one."""
    if not any(key.startswith(STOPPED_AT) for key in settings):
        (folder / CHECKPOINT).unlink(missing_ok=True)


def checkpoint_to_send(out: Path | None, resume: bool) -> bytes | None:
    """The checkpoint a ``--remote-job --resume`` sends, read from ``out`` (None without
    --resume); a folder without one is a usage error naming it."""
    if not resume:
        return None
    assert out is not None  # check_resume: --resume needs --out
    path = out / CHECKPOINT
    try:
        return path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(
            f"--resume: cannot read {path} ({exc.strerror or exc}); a run that stopped "
            f"early, from here or as a job, saves it there"
        ) from exc


def dataset_named(name: str, options: Any = None, console: Console | None = None) -> TrainingData:
    """The data set ``--dataset`` names; one it cannot load is a usage error naming it.
    With ``options`` and ``console``: a note when their ``batch_size`` is more than its
    training samples (each batch then takes them all: the run goes on, as asked of it,
    but not with the batches the command line seems to say)."""
    try:
        data = load_dataset(name)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="'--dataset'") from exc
    wanted, samples = getattr(options, "batch_size", None), len(data.x_train)
    if console is not None and isinstance(wanted, int) and wanted > samples:
        console.print(
            f"note: --batch-size {wanted} is more than the {samples:,} training samples of "
            f"{data.name}: each batch takes all {samples:,}",
            style="yellow",
        )
    return data


def record_folder(out: Path | None, job: str) -> Path:
    """The record folder: ``out``, or ``runs/<job>-<time>`` (``-2``, ``-3``... after it when
    a run of the same second holds that one: a script's runs follow each other closely)."""
    if out is not None:
        return out
    first = Path("runs") / f"{job}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, n = first, 1
    while folder.exists():
        n += 1
        folder = first.with_name(f"{first.name}-{n}")
    return folder


def run_clock(board: str, server: str | None) -> RunClock:
    """The clock of a run from here on ``board``, or on ``server``'s board: started now,
    before the board is opened; its ``run.json`` is written with the record."""
    return RunClock(None if server is not None else board, server)


def finish(
    record: TrainingRecord,
    dataset: str,
    job: str,
    out: Path | None,
    as_json: bool,
    console: Console,
    run: RunClock | None = None,
) -> None:
    record.settings["dataset"] = dataset
    folder = save_or_keep(record.save, record_folder(out, job), job, run)
    print_summary(record.summary() | {"record": str(folder)}, f"{job} on {dataset}", as_json,
                   console)  # fmt: skip


@contextlib.contextmanager
def saving_into(folder: Path) -> Iterator[None]:
    """``folder`` held for a run saving into it (sidra.training.run_lock): ``sidra runs``
    then shows it running, and another run given it is refused as ``--out``."""
    held = contextlib.ExitStack()
    try:  # the lock taken here, so that its errors are told apart from the run's
        held.enter_context(running_in(folder))
    except FolderInUse as exc:
        raise typer.BadParameter(str(exc), param_hint="'--out'") from exc
    except OSError as exc:  # not made or not locked: before any board was opened
        raise typer.BadParameter(
            f"{folder}: cannot be made a record folder ({exc.strerror or exc})",
            param_hint="'--out'",
        ) from exc
    with held:
        yield


@contextlib.contextmanager
def keeping_lost_epochs(
    dataset: str,
    job: str,
    out: Path | None,
    total: int,
    as_json: bool,
    console: Console,
    run: RunClock | None = None,
) -> Iterator[None]:
    """A run in epochs whose board goes away mid-way (RunInterrupted with its record up
    to its last whole epoch): that record saved as a finished run's is, its summary
    printed, then the board's error and where the record is; exit status 1."""
    try:
        yield
    except RunInterrupted as lost:
        if lost.record is None:
            raise
        lost.record.settings["dataset"] = dataset
        folder = save_or_keep(lost.record.save, record_folder(out, job), job, run)
        summary = lost.record.summary() | {"record": str(folder)}
        print_summary(summary, f"{job} on {dataset}", as_json, console)
        cause = lost.cause
        how = ""
        if lost.checkpoint is not None:
            how = (
                f"; the same command with --resume --out {folder} goes on from "
                f"{lost.checkpoint.name} once the board answers again"
            )
        typer.echo(
            f"sidra train: {type(cause).__name__}: {cause}; the board went away after "
            f"{lost.unit} {lost.steps} of {total}: the record of the {lost.unit}s made is "
            f"in {folder}{how}",
            err=True,
        )
        raise typer.Exit(1) from lost


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What stops a run gracefully: Ctrl-C, a scheduler's or service manager's SIGTERM (a
batch system's time limit, ``timeout``, ``systemctl stop``), the terminal closed."""


class StopRequest(threading.Event):
    """Set by the first of :data:`STOP_SIGNALS`: the run stops after the unit under way;
    :attr:`signum` says which signal asked."""

    signum: int | None = None

    @property
    def exit_status(self) -> int:
        """128 + the signal's number, as a command that signal ends exits (Ctrl-C: 130)."""
        return 128 + (self.signum or signal.SIGINT)

    @property
    def asked_by(self) -> str:
        """``""`` for Ctrl-C, else the signal's name in brackets (`` (SIGTERM)``)."""
        if self.signum in (None, signal.SIGINT):
            return ""
        return f" ({signal.Signals(self.signum).name})"


@contextlib.contextmanager
def stop_on_interrupt(console: Console, unit: str) -> Iterator[StopRequest]:
    """An event the first Ctrl-C (SIGINT), SIGTERM or SIGHUP sets, for a run to stop after
    the ``unit`` (step, epoch) under way and keep what it did (sidra.training.stopping);
    a second of them interrupts at once, as without this."""

    def say(stop: StopRequest, again: str) -> None:
        # SIGHUP: the terminal may be gone; the run still stops and keeps its record.
        console.print(f"stopping after this {unit}{stop.asked_by}; {again} again stops at once")

    with _first_signal_sets(say) as stop:
        yield stop


@contextlib.contextmanager
def _first_signal_sets(say: Callable[[StopRequest, str], object]) -> Iterator[StopRequest]:
    """A request the first of :data:`STOP_SIGNALS` sets, then ``say(request, again)`` is
    told (``again``: "Ctrl-C" or the signal's name; a terminal gone is no error); the
    handlers before are back from then on, so a second signal interrupts as without
    this, and at the end of the block."""
    stop = StopRequest()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def first(signum: int, frame: Any) -> None:
        stop.signum = signum
        stop.set()
        restore()
        with contextlib.suppress(OSError):
            say(stop, "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)

    for signum in STOP_SIGNALS:
        signal.signal(signum, first)
    try:
        yield stop
    finally:
        restore()


def exit_if_stopped(
    settings: Mapping[str, Any],
    total: int,
    console: Console,
    *,
    kept: str = "the record holds the run so far",
    resume: Path | None = None,
    stop: StopRequest | None = None,
) -> None:
    """Says where a run Ctrl-C (or the ``stop`` request's signal) stopped
    (``stopped_at_<unit>`` in its record's ``settings`` or summary: the record is saved by
    then) and, with ``resume`` (the folder of its checkpoint), how to go on; exit status
    128 + the signal's number (130 for Ctrl-C). Nothing for a run that was not stopped."""
    where = [
        (k.removeprefix(STOPPED_AT), v) for k, v in settings.items() if k.startswith(STOPPED_AT)
    ]
    if not where:
        return
    (unit, done), how = where[0], ""
    if resume is not None:
        how = (
            f", {resume / CHECKPOINT} too: the same command with --resume --out "
            f"{resume} goes on from there"
        )
    asked_by = "" if stop is None else stop.asked_by
    console.print(f"stopped after {unit} {done} of {total}{asked_by}: {kept}{how}")
    # As a command that signal ends exits.
    raise typer.Exit(130 if stop is None else stop.exit_status)


def save_or_keep(
    save: Callable[[Path], Any], folder: Path, job: str, run: RunClock | None = None
) -> Path:
    """``save(folder)`` and the ``run``'s ``run.json`` beside it (ended now), or, when
    that fails once the run is over (a full disk, a folder removed meanwhile), the record
    saved in a temporary folder and the command failed naming both: a finished run is not
    lost."""
    provenance = None
    if run is not None:  # a run gone on from a stopped one's record: its parts kept
        provenance = provenance_bytes(going_on_from(read_provenance(folder), run.provenance()))

    def with_provenance(where: Path) -> None:
        save(where)
        if provenance is not None:
            write_atomically(where / RUN_FILE, provenance)

    try:
        with signals_after_saving(job) as stop:
            with_provenance(folder)
    except OSError as exc:
        kept = Path(tempfile.mkdtemp(prefix=f"sidra-{job}-"))
        try:
            with_provenance(kept)
            where = f"it is saved in {kept}"
        except OSError as again:  # the temporary folder's disk is full too
            where = f"nor in {kept} ({again})"
        typer.echo(
            f"sidra train {job}: the record could not be saved in {folder} ({exc}); {where}",
            err=True,
        )
        raise typer.Exit(1) from exc
    if stop.is_set():  # asked while saving: the record is whole, then the command stops
        typer.echo(
            f"sidra train {job}: stopped{stop.asked_by} while saving the record; it is "
            f"complete in {folder}",
            err=True,
        )
        raise typer.Exit(stop.exit_status)
    return folder


@contextlib.contextmanager
def signals_after_saving(job: str) -> Iterator[StopRequest]:
    """A stop signal (:data:`STOP_SIGNALS`) that comes while a record is saved is held
    until it is whole (the plot alone takes half a second; the run's Ctrl-C handler has
    ended by then, and a bare KeyboardInterrupt lost the record without a word); the
    request it sets says so. A second one stops at once, as without this."""
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest()  # signals reach the main thread only
        return

    def say(stop: StopRequest, again: str) -> None:
        typer.echo(
            f"sidra train {job}: saving the record first ({again} again to stop at once "
            "and lose it)",
            err=True,
        )

    with _first_signal_sets(say) as stop:
        yield stop


def print_summary(summary: dict[str, Any], title: str, as_json: bool, console: Console) -> None:
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        table.add_row(key, figure_text(key, value))
    console.print(table)


def run_remote(
    server: str | None,
    job: str,
    options: JobOptions,
    dataset: str,
    out: Path | None,
    console: Console,
    *,
    sent: dict[str, Any] | None = None,
    resume: bool = False,
    queue: bool = False,
    priority: int = 0,
) -> dict[str, Any]:
    """Runs ``job`` inside ``server`` (--remote-job); its summary, with the job id and the
    folder its record was saved into. ``sent``: the options as submitted, when they hold
    more than ``options.settings()`` (a pat job's twin profile). ``resume``: the job goes
    on from the checkpoint in ``out``. ``queue``: it may wait in the server's queue, at
    ``priority``."""
    # A job names no board of its own to run on, only a server: the lab's, as the commands
    # that only talk to a server take it, when --server does not name one.
    server = server or os.environ.get(SERVER_ENV, "").strip() or None
    if server is None:
        raise typer.BadParameter(
            f"--remote-job runs the job inside a server: give --server (or set {SERVER_ENV})"
        )
    checkpoint = checkpoint_to_send(out, resume)
    folder = record_folder(out, job)
    submitted = options.settings() if sent is None else sent
    done = run_remote_job(
        server, job, submitted, sent_dataset(dataset), folder, console,
        resume_checkpoint=checkpoint, queue=queue, priority=priority,
    )  # fmt: skip
    return (done.summary or {}) | {"job_id": done.job_id, "record": str(folder)}


def sent_dataset(dataset: str) -> str | Path:
    """What a job is submitted with for ``--dataset``: a bundled set's name, the local
    file (a path ending in .npz or .csv), whose content is sent with the job, or a file's
    name without a folder that is no file here (or ``sha256:DIGITS``), which the server may
    keep for the caller (sidra.cli.jobs finds it there); a path to a file that is not
    there is refused before any server is asked."""
    if dataset in BUNDLED or not dataset.lower().endswith(FILE_SUFFIXES):
        return dataset
    path = Path(dataset)
    if path.is_file() or path.name == dataset:
        return path if path.is_file() else dataset
    raise typer.BadParameter(
        f"got {dataset}, which is no file here: a --remote-job is sent the file named "
        f"(or trains on a file the server keeps for you, named without a folder, or on one "
        f"of the server's bundled sets: {', '.join(BUNDLED)})",
        param_hint="'--dataset'",
    )


def submitted(
    server: str | None,
    job: str,
    options: JobOptions,
    dataset: str,
    out: Path | None,
    as_json: bool,
    console: Console,
    *,
    sent: dict[str, Any] | None = None,
    resume: bool = False,
    queue: bool = False,
    priority: int = 0,
) -> None:
    """``job`` run inside ``server`` (--remote-job, :func:`run_remote`), its summary printed."""
    summary = run_remote(
        server,
        job,
        options,
        dataset,
        out,
        console,
        sent=sent,
        resume=resume,
        queue=queue,
        priority=priority,
    )
    print_summary(summary, f"{job} on {dataset} (job {summary['job_id']})", as_json, console)


def epoch_status(progress: Progress, task: TaskID) -> Callable[[int, float | None], None]:
    """An ``on_epoch`` that moves ``task`` on, with the test accuracy when there is one
    (None: no test checkpoint that epoch)."""

    def on_epoch(epoch: int, test: float | None) -> None:
        if test is None:
            progress.update(task, completed=epoch)
        else:
            progress.update(task, completed=epoch, status=f"test {100 * test:.2f} %")

    return on_epoch


EpochJobOptions = LastLayerOptions | MLPOptions | FFOptions | EqPropOptions
"""Options of the jobs trained in whole epochs."""


def by_epochs(
    job: str,
    train: Callable[..., TrainingRecord],
    options: EpochJobOptions,
    dataset: str,
    board: str,
    server: str | None,
    out: Path | None,
    remote_job: bool,
    as_json: bool,
    resume: bool | None = None,
    every_s: float | None = None,
    queue: bool = False,
    priority: int = 0,
    ctx: typer.Context | None = None,
) -> None:
    """A job trained in epochs (``train(board, data, options, on_epoch=...)``): run here
    with a progress bar and its record saved, or inside ``server`` (``remote_job``).
    ``resume`` not None: the job can go on from a checkpoint (``train(...,
    checkpoint=, resume=)``), saved in the record folder when it stops or its board
    goes away, and every ``every_s`` (--checkpoint-every-s); True goes on from it."""
    console = Console(stderr=as_json, log_path=False)  # lines stamped with the time only
    if resume is not None:
        check_resume(out, resume)
    saving_every_s = saving_interval_s(every_s, remote_job)
    queue_needs_remote_job(queue, remote_job, priority, ctx)
    if remote_job:
        submitted(
            server, job, options, dataset, out, as_json, console, resume=bool(resume),
            queue=queue, priority=priority,
        )  # fmt: skip
        return
    going_on: dict[str, Any] = {}
    if resume is not None:
        out = record_folder(out, job)
        going_on = {
            "checkpoint": out / CHECKPOINT, "resume": resume,
            "checkpoint_every_s": saving_every_s,
        }  # fmt: skip
    # Held while a run going on from checkpoints saves into its folder (runs list shows it
    # running; another run is refused it).
    with saving_into(out) if going_on and out is not None else contextlib.nullcontext():
        data = dataset_named(dataset, options, console)
        run = run_clock(board, server)
        with (
            keeping_lost_epochs(dataset, job, out, options.epochs, as_json, console, run),
            job_board(board, server, holding=f"sidra train {job}") as target,
            progress_bar(console) as progress,
            stop_on_interrupt(console, "epoch") as stop,
        ):
            run.on(target)
            task = progress.add_task(job, total=options.epochs, status="")
            record = train(
                target, data, options, on_epoch=epoch_status(progress, task), stop=stop, **going_on
            )
        finish(record, dataset, job, out, as_json, console, run)
        if going_on:
            assert out is not None
            drop_finished_checkpoint(record.settings, out)
        exit_if_stopped(
            record.settings, options.epochs, console, resume=out if going_on else None, stop=stop
        )
