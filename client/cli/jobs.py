"""``sidra jobs``: training jobs running inside a server (list, show, resume, cancel, logs,
delete; the data set files kept for them are sidra.cli.job_datasets'), and the client half
of ``sidra train … --server ADDR --remote-job``."""

from __future__ import annotations

import dataclasses
import json
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from sidra.cli.consoles import output_console
from sidra.cli.options import (
    SERVER_ENV,
    TLS_URL_HELP,
    AsJson,
    Priority,
)
from sidra.cli.progress import progress_bar
from sidra.cli.tables import columns_that_fit
from sidra.cli.texts import duration_text, figure_text, size_text, tiles_text, when_text
from sidra.cli.whoami import token_hint
from sidra.client import DatasetInfo, JobEvent, JobInfo, RemoteBoard
from sidra.client.job_datasets import UploadProgress, kept_file
from sidra.client.jobs import DATASET_FILES
from sidra.client.remote import connect_server
from sidra.drivers import (
    BoardUnavailable,
    DeadlineExceeded,
    InvalidArgument,
    LeaseHeld,
    ResourceExhausted,
    SidraError,
)
from sidra.training.atomic_files import write_atomically
from sidra.training.datasets import BUNDLED
from sidra.training.provenance import (
    RUN_FILE,
    going_on_from,
    job_provenance,
    provenance_bytes,
    read_provenance,
)
from sidra.training.records import CHECKPOINT_FILE, earlier_record

__all__ = ["Server", "event_line", "jobs_app", "jobs_server", "run_remote_job", "transfer_bar"]

jobs_app = typer.Typer(
    no_args_is_help=True, help="Training jobs running inside a server, next to the board."
)

Server = Annotated[
    str,
    typer.Option(
        "--server",
        help=f"The sidra serve running the jobs: HOST:PORT, or {TLS_URL_HELP}.",
        envvar=SERVER_ENV,
    ),
]
JobId = Annotated[
    str,
    typer.Argument(
        help="The job's id (sidra jobs list), or its first digits (4 or more) when "
        "no other job's id starts so."
    ),  # fmt: skip
]


KEPT_PREFIX = "sha256:"
"""How ``--dataset`` names a file the server keeps by its SHA-256 (``sha256:3f2a9c1e``)."""

DATASET_FIELDS = ("dataset", "dataset_file", "name", "data", "chunks")
"""Fields of a job's refusal that are about the file ``--dataset`` names (SubmitJob's,
and UploadDataset's for a file kept in the server first)."""

LIST_DROPPED_FIRST = ("submitted", "kind", "priority", "principal")
"""The columns of ``sidra jobs list`` a terminal too narrow for all leaves out, first to
last (``sidra jobs show`` and ``--json`` have every one): whose job it is goes last, and
the last message wraps narrower (LAST_WIDTH) so that it stays on 80 columns."""
LAST_WIDTH = 16
"""Characters counted for the last message's column, which wraps over lines."""


@contextmanager
def jobs_server(address: str, what: str) -> Iterator[RemoteBoard]:
    """The server, or exit 1 naming the command and what went wrong."""
    try:
        with connect_server(address) as board:
            yield board
    except SidraError as exc:
        typer.echo(f"sidra jobs {what}: {exc}{token_hint(exc)}", err=True)
        raise typer.Exit(1) from None


def _progress_text(job: JobInfo) -> str:
    return f"{job.step}/{job.total}" if job.total else ""


def event_line(event: JobEvent) -> str:
    """One event as ``sidra jobs logs`` prints it."""
    stamp = time.strftime("%H:%M:%S", time.localtime(event.unix_s))
    if event.kind == "progress":
        text = f"step {event.step}/{event.total} {event.message}"
    elif event.kind == "state":
        text = f"{event.state}" + (f": {event.message}" if event.message else "")
    else:
        text = event.message
    return f"{event.index:>6} {stamp} {event.kind:<8} {text}"


@jobs_app.command("list")
def list_jobs(
    server: Server,
    principal: Annotated[str, typer.Option(help="Only this principal's jobs.")] = "",
    limit: Annotated[int, typer.Option(min=0, help="At most this many (0: 100).")] = 0,
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            help="Only jobs in this state (queued, running, succeeded, failed, "
            "cancelled, interrupted); repeat for several.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Jobs on the server, newest first.

    --state queued --state running lists the queue and what holds the board."""
    with jobs_server(server, "list") as board:
        try:
            jobs = board.jobs.list(principal, limit, state or ())
        except InvalidArgument as exc:
            raise typer.BadParameter(str(exc), param_hint="--state") from exc
    if as_json:
        typer.echo(json.dumps([job.as_dict() for job in jobs]))
        return
    if not jobs:
        typer.echo("no jobs")
        return
    # A priority column only when some job has one: most servers never use them.
    prioritised = any(job.priority for job in jobs)
    columns = ("job", "kind", "principal", "state", *("priority",) * prioritised, "progress",
               "submitted", "last")  # fmt: skip
    cells = [
        {
            "job": job.job_id, "kind": job.kind, "principal": job.principal,
            "state": job.state, "priority": f"{job.priority:+d}" if job.priority else "0",
            "progress": _progress_text(job),
            "submitted": when_text(job.submitted_unix_s, seconds=True),
            "last": job.error or job.message,
        }
        for job in jobs
    ]  # fmt: skip
    console = output_console()
    shown = columns_that_fit(
        cells, columns, LIST_DROPPED_FIRST, console.width, ["last"], wrapped_width=LAST_WIDTH
    )
    table = Table(box=box.SIMPLE)
    for column in shown:  # the id whole, to be copied; the last message wraps
        table.add_column(column, no_wrap=column != "last")
    for line in cells:
        table.add_row(*(line[c] for c in shown))
    console.print(table)


@jobs_app.command("show")
def show(
    job_id: JobId,
    server: Server,
    out: Annotated[
        Path | None, typer.Option(help="Write the run record's files into this folder.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """One job: options, state, progress, summary; --out saves its record."""
    with jobs_server(server, "show") as board:
        job = board.jobs.get(job_id, include_record=out is not None)
        if out is not None:
            _refuse_another_record(out, job)
            _save(job, out, server, board)
    if as_json:
        typer.echo(json.dumps(job.as_dict()))
        return
    output_console().print(job_table(job, out))


def job_table(job: JobInfo, out: Path | None = None, now_unix_s: float | None = None) -> Table:
    """``sidra jobs show``'s view of ``job``: its state, times and tiles, then its options,
    summary and record files, each figure as the run's end prints it (sidra.cli.texts).
    ``out``: where its record was saved; ``now_unix_s``: the clock a running or queued
    job's time so far is measured to (now)."""
    now = time.time() if now_unix_s is None else now_unix_s
    table = Table(title=f"job {job.job_id}: {job.kind} on {job.dataset}", show_header=False,
                  box=box.SIMPLE)  # fmt: skip
    table.add_column("key")
    table.add_column("value", overflow="fold")
    table.add_row("state", job.state)
    if job.error:
        table.add_row("error", job.error)
    table.add_row("principal", job.principal)
    if job.priority:
        table.add_row("priority", f"{job.priority:+d}")
    submitted, started, ended = job.submitted_unix_s, job.started_unix_s, job.ended_unix_s
    table.add_row("submitted", when_text(submitted, seconds=True))
    if started:
        table.add_row(
            "started",
            f"{when_text(started, seconds=True)} (queued {duration_text(started - submitted)})",
        )
    elif job.state == "queued":
        table.add_row("started", f"not yet (queued for {duration_text(now - submitted)})")
    if ended:
        ran = f"ran {duration_text(ended - started)}" if started else "never started"
        table.add_row("ended", f"{when_text(ended, seconds=True)} ({ran})")
    elif started:
        table.add_row("ended", f"not yet (running for {duration_text(now - started)})")
    progress = " ".join(part for part in (_progress_text(job), job.message) if part)
    table.add_row("progress", progress or "none reported")
    if job.tiles or job.whole_board:
        table.add_row("tiles", tiles_text(job.tiles, job.whole_board))
    elif job.state == "queued":
        table.add_row("tiles", "placed when it starts")
    table.add_row("events", f"{job.events} (sidra jobs logs {job.job_id})")
    table.add_section()
    table.add_row("[bold]options[/bold]", "")
    for key, value in job.options.items():
        table.add_row(key, _option_text(value))
    if job.summary is not None:
        table.add_section()
        table.add_row("[bold]summary[/bold]", "")
        for key, value in job.summary.items():
            table.add_row(key, figure_text(key, value))
    if job.record_files:
        table.add_section()
        total = size_text(sum(job.record_files.values()))
        saved = f"in {out}" if out is not None else "--out DIR saves them"
        table.add_row("[bold]record files[/bold]", f"{total} ({saved})")
        for name, size_bytes in job.record_files.items():
            table.add_row(name, size_text(size_bytes))
    return table


def _option_text(value: Any) -> str:
    """An option as ``--json`` and settings.json give it: a list or a mapping as JSON."""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


@jobs_app.command("resume")
def resume(
    job_id: JobId,
    server: Server,
    lease_wait_s: Annotated[
        float, typer.Option(min=0, max=60, help="Seconds to wait for leased tiles (0-60).")
    ] = 0.0,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="Wait in the server's queue when it cannot start now (not refused)."
        ),
    ] = False,
    priority: Priority = 0,
    dataset_file: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="The data set file job ID was sent (a job that trained on a file of "
            "yours, unless the server keeps it for you: sidra jobs datasets).",
            dir_okay=False,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Start a job that goes on from where job ID stopped.

    The same kind, options and data set, sent with the checkpoint.json it kept (cancelled,
    its board gone, or found interrupted after its server stopped); a pat job with the
    twin.toml its record holds; a job that trained on a file of yours with that file again
    (--dataset). Follow it with sidra jobs logs NEW_ID --follow."""
    if priority and not queue:
        raise typer.BadParameter(
            f"got {priority}; a priority orders the server's queue: give --queue",
            param_hint="--priority",
        )
    with jobs_server(server, "resume") as board:
        job = board.jobs.get(job_id, include_record=True)
        checkpoint = job.files.get(CHECKPOINT_FILE)
        if checkpoint is None:
            typer.echo(
                f"sidra jobs resume: job {job.job_id} ({job.state}) kept no "
                f"{CHECKPOINT_FILE} to go on from; its record files: "
                f"{', '.join(job.files) or 'none'}",
                err=True,
            )
            raise typer.Exit(1)
        options = dict(job.options)
        if "twin.toml" in job.files:  # pat: the twin it trained with
            options["twin_profile_toml"] = job.files["twin.toml"].decode("utf-8")
        dataset = _dataset_again(job, dataset_file, board)
        try:
            new = board.jobs.submit(
                job.kind, options, dataset=dataset, lease_wait_s=lease_wait_s,
                resume_checkpoint=checkpoint, queue=queue, priority=priority,
            )  # fmt: skip
        except InvalidArgument as exc:  # the checkpoint refused: exit 1, nothing to retype
            typer.echo(f"sidra jobs resume: {exc}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(new.as_dict()))
        return
    waits = f" ({new.message})" if new.state == "queued" else ""
    typer.echo(
        f"job {new.job_id} goes on from job {job.job_id} ({job.kind} on {job.dataset}){waits}: "
        f"sidra jobs logs {new.job_id} --follow --server {server}"
    )


def _dataset_again(job: JobInfo, file: Path | None, board: RemoteBoard) -> str | Path | DatasetInfo:
    """What a job going on from ``job`` is submitted with: its bundled set's name, or
    ``file``, the data set file ``job`` was sent, or without ``file`` that file as the
    server keeps it (uploaded: ``sidra jobs datasets``); BadParameter naming --dataset
    when it is not given and not kept, or of another name."""
    if not job.dataset.lower().endswith(DATASET_FILES):
        if file is not None:
            raise typer.BadParameter(
                f"got {file}; job {job.job_id} trained on the server's {job.dataset} data "
                "set: it is sent no file",
                param_hint="'--dataset'",
            )
        return job.dataset
    if file is None and (kept := _kept_file_of(job, board)) is not None:
        return dataclasses.replace(kept, name=job.dataset)
    if file is None or file.name != job.dataset:
        got = "nothing" if file is None else str(file)
        raise typer.BadParameter(
            f"got {got}; job {job.job_id} trained on a file it was sent, {job.dataset}, "
            "which the server does not keep for you (sidra jobs datasets list): give that "
            "file",
            param_hint="'--dataset'",
        )
    return file


def _kept_file_of(job: JobInfo, board: RemoteBoard) -> DatasetInfo | None:
    """The file the server keeps for the caller with the bytes ``job`` trained on (its
    record's ``dataset_sha256``), if any."""
    settings = json.loads(job.files.get("settings.json", b"{}"))
    digest = settings.get("dataset_sha256") if isinstance(settings, dict) else None
    if not isinstance(digest, str) or not digest:
        return None
    try:
        kept = board.jobs.datasets(sha256=digest)
    except InvalidArgument:  # a record whose digest no file has (edited): none kept
        return None
    return kept[0] if kept else None


@jobs_app.command("cancel")
def cancel(job_id: JobId, server: Server, as_json: AsJson = False) -> None:
    """Ask a job to stop; it keeps its record (asked again: stops at once, without).

    The job ends at its next step, epoch or (compare) run, evaluated, with its record.
    Asked again, it stops at its next board call, without a record."""
    with jobs_server(server, "cancel") as board:
        job = board.jobs.cancel(job_id)
    if as_json:
        typer.echo(json.dumps(job.as_dict()))
        return
    if job.state != "running":
        typer.echo(f"job {job.job_id}: {job.state}")
    elif job.message.startswith("stopping"):  # how it stops, as the server says it
        typer.echo(f"job {job.job_id}: {job.message}")
    else:  # a server before 2026-12-06 says no more: as a first cancel stops it
        typer.echo(
            f"job {job.job_id}: stopping at its next step, epoch or run boundary, with its "
            "record; cancel it again to stop it at its next board call, without its record"
        )


@jobs_app.command("priority")
def set_priority(
    job_id: JobId,
    priority: Annotated[
        int,
        typer.Option(
            "--priority",
            min=-10,
            max=10,
            help="The new priority, -10 .. 10: higher goes first; below 0 gives way to "
            "everyone's, above 0 needs the admin role.",
            show_default=False,
        ),
    ],
    server: Server,
    as_json: AsJson = False,
) -> None:
    """Change a queued job's place in the server's queue (yours; an admin's: anyone's)."""
    with jobs_server(server, "priority") as board:
        job = board.jobs.set_priority(job_id, priority)
    if as_json:
        typer.echo(json.dumps(job.as_dict()))
        return
    where = f"queued: {job.message}" if job.state == "queued" else job.state
    typer.echo(f"job {job.job_id}: priority {job.priority:+d}; {where}")


@jobs_app.command("delete")
def delete(
    job_ids: Annotated[
        list[str],
        typer.Argument(
            help="The ended jobs' ids (sidra jobs list), or their first digits (4 or more).",
            show_default=False,
        ),
    ],
    server: Server,
) -> None:
    """Delete ended jobs with their events and records (save one first: show --out).

    A running job is refused (cancel it first), as is another principal's unless the
    caller is an admin; the others named are deleted all the same (exit 1)."""
    refused = 0
    with jobs_server(server, "delete") as board:
        for given in job_ids:
            try:
                # The whole id, to say which job went: DeleteJob answers only the bytes.
                job_id = board.jobs.get(given).job_id
                freed = board.jobs.delete(job_id)
            except SidraError as exc:
                typer.echo(f"sidra jobs delete: {exc}", err=True)
                refused += 1
                continue
            typer.echo(f"job {job_id}: deleted ({size_text(freed)} of record files)")
    if refused:
        raise typer.Exit(1)


@jobs_app.command("logs")
def logs(
    job_id: JobId,
    server: Server,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
    from_index: Annotated[
        int, typer.Option("--from", min=0, help="First event index to print.")
    ] = 0,
) -> None:
    """A job's events: progress, log lines, state changes (one line each, numbered)."""
    with jobs_server(server, "logs") as board:
        known = board.jobs.get(job_id).events
        for event in board.jobs.watch(job_id, from_index):
            typer.echo(event_line(event))
            if not follow and event.index >= known - 1:
                break


@jobs_app.command("follow")
def follow(
    job_id: JobId,
    server: Server,
    out: Annotated[
        Path | None,
        typer.Option(help="Save the job's record into this folder once it has ended."),
    ] = None,
) -> None:
    """Follow a job with a progress bar until it ends, as the command that submitted it
    did, and with --out save its record there (what that command did not, once left).

    Ctrl-C, SIGTERM and SIGHUP stop following, not the job. Exit 0 when the job
    succeeded, 1 otherwise (its record is saved all the same)."""
    console = Console(log_path=False)  # lines stamped with the time only, as a run's
    with jobs_server(server, "follow") as board:
        job = board.jobs.get(job_id)
        if out is not None:  # before following: a folder of another run is not written over
            _refuse_another_record(out, job)
        try:
            with _leaving_on_signals():
                _follow(board, job, console)
                done = board.jobs.get(job.job_id, include_record=out is not None)
        except (KeyboardInterrupt, _Left) as left:
            with suppress(OSError):
                again = _follow_command(job.job_id, server, out)
                typer.echo(f"job {job.job_id} goes on in the server; follow it again: {again}",
                           err=True)  # fmt: skip
            raise typer.Exit(128 + getattr(left, "signum", signal.SIGINT)) from None
        if out is not None and done.files:
            _save(done, out, server, board)
    kept = f"; record in {out}" if out is not None and done.files else ""
    if done.state != "succeeded":
        typer.echo(f"job {done.job_id} {done.state}: {done.error}{kept}", err=True)
        raise typer.Exit(1)
    console.log(f"job {done.job_id} succeeded{kept}")


def _follow_command(job_id: str, server: str, out: Path | None) -> str:
    """``sidra jobs follow`` of ``job_id``, ready to paste (the server's URL quoted: a
    grpcs:// one holds ``&``, a folder may hold a space)."""
    saving = "" if out is None else f" --out {shlex.quote(str(out))}"
    return f"sidra jobs follow {job_id}{saving} --server {shlex.quote(server)}"


def _refuse_another_record(folder: Path, job: JobInfo) -> None:
    """BadParameter when ``folder`` holds the record of another run: written over, it
    would be lost. The same job's record, saved before, is saved again."""
    held = earlier_record(folder, same=job.files)
    if held is not None:
        raise typer.BadParameter(
            f"got {folder}, which holds another run's record ({held}); name another "
            "folder or remove that one",
            param_hint="'--out'",
        )


def _save(job: JobInfo, folder: Path, server: str, board: RemoteBoard) -> Path:
    """``job``'s record files in ``folder``, and with them its ``run.json`` (where, when,
    by whom)."""
    folder.mkdir(parents=True, exist_ok=True)
    earlier = read_provenance(folder)  # a run gone on (--resume) from the record here
    files = dict(job.files)
    ran_on = _json_object(files.pop(RUN_FILE, None))  # the server's: completed below
    for name, content in files.items():
        (folder / name).write_bytes(content)
    stale = folder / CHECKPOINT_FILE
    if job.state == "succeeded" and CHECKPOINT_FILE not in job.files and stale.exists():
        # The checkpoint a resumed run went on from: the run reached its end, and a
        # --resume from it again would train the same steps twice over this record.
        stale.unlink()
    if not job.files:  # no record (yet): nothing to say where it ran
        return folder
    try:
        identity = board.info.identity()
    except SidraError:  # the board gone since: the record is kept without its identity
        identity = None
    provenance = job_provenance(
        server=server, job_id=job.job_id, principal=job.principal,
        submitted_unix_s=job.submitted_unix_s, started_unix_s=job.started_unix_s,
        ended_unix_s=job.ended_unix_s, board=identity, ran_on=ran_on,
    )  # fmt: skip
    # A job gone on (--resume) from a run whose record is here: its parts kept.
    provenance = going_on_from(earlier, provenance)
    write_atomically(folder / RUN_FILE, provenance_bytes(provenance))
    return folder


def _json_object(content: bytes | None) -> dict[str, Any] | None:
    """``content`` read as a JSON object; None when there is none or it is not one."""
    if content is None:
        return None
    try:
        read = json.loads(content)
    except ValueError:
        return None
    return read if isinstance(read, dict) else None


def run_remote_job(
    server: str,
    kind: str,
    options: dict[str, Any],
    dataset: str | Path,
    out: Path,
    console: Console,
    *,
    resume_checkpoint: bytes | None = None,
    queue: bool = False,
    priority: int = 0,
) -> JobInfo:
    """Submits a job to ``server`` (going on from ``resume_checkpoint``, if given; with
    ``queue``, waiting in the server's queue if it cannot start now), follows it with a
    progress bar, saves its record into ``out`` and returns it. Ctrl-C stops following,
    not the job."""
    # Said at once: over a long link the connection (TCP, TLS, a first call) and the
    # submission take round trips of seconds before the job has an id to show.
    console.log(f"submitting the {kind} job on {dataset} to {server}")
    try:
        with connect_server(server) as board:
            sent = _kept_if_not_here(dataset, board, console)
            try:
                with transfer_bar(console) as on_upload:
                    job = board.jobs.submit(
                        kind, options, dataset=sent, resume_checkpoint=resume_checkpoint,
                        queue=queue, priority=priority, on_upload=on_upload,
                    )  # fmt: skip
            except (BoardUnavailable, DeadlineExceeded) as exc:  # its answer never came
                typer.echo(_lost_while_submitting(kind, server, exc), err=True)
                raise typer.Exit(1) from exc
            tiles = tiles_text(job.tiles, job.whole_board)
            if job.state == "queued":
                console.log(f"job {job.job_id} queued on {server} for {tiles}: "
                            f"{job.message.removeprefix('queued, ')}")  # fmt: skip
            else:
                console.log(f"job {job.job_id} running on {server} ({tiles})")
            try:
                with _leaving_on_signals():
                    _follow(board, job, console)
                    done = board.jobs.get(job.job_id, include_record=True)
            except (KeyboardInterrupt, _Left) as left:
                with suppress(OSError):  # a terminal gone: the job goes on all the same
                    typer.echo(_left_running(job, server, out), err=True)
                # As a command that signal ends exits (Ctrl-C: 130).
                raise typer.Exit(128 + getattr(left, "signum", signal.SIGINT)) from None
            except (BoardUnavailable, DeadlineExceeded) as exc:  # the server, not the job
                typer.echo(_lost_while_following(kind, job.job_id, server, out, exc), err=True)
                raise typer.Exit(1) from exc
            if done.files:  # saved while the connection is open: its board is named
                _save(done, out, server, board)
    except InvalidArgument as exc:
        if exc.field == "options":  # what it names is an option: the JSON sent is ours
            raise typer.BadParameter(f"the server refused the job: {exc.allowed}") from exc
        if exc.field in DATASET_FIELDS and isinstance(dataset, Path):
            raise typer.BadParameter(
                f"got {dataset}, expected {exc.allowed}", param_hint="'--dataset'"
            ) from exc
        if exc.field == "dataset" and isinstance(dataset, str):
            # A name no bundled set has: the server's words are its API's (dataset_file).
            raise typer.BadParameter(
                f"got {dataset!r}, which the server has no bundled data set of; expected "
                f"one of {', '.join(BUNDLED)}, an .npz or .csv file here (sent with the "
                "job), or a file the server keeps for you (sidra jobs datasets list; "
                "sha256:DIGITS names one by its SHA-256)",
                param_hint="'--dataset'",
            ) from exc
        raise typer.BadParameter(str(exc)) from exc
    except SidraError as exc:  # who or when (a lease, a role, no store), not what: exit 1
        refused = exc if isinstance(exc, ResourceExhausted) else None
        if refused is not None and refused.field == "limits.max_dataset_mb":
            raise typer.BadParameter(  # the file is what to change (or what the server keeps)
                f"got {dataset} ({size_text(Path(dataset).stat().st_size)}), expected "
                f"{refused.allowed}; the server refused {refused.value}",
                param_hint="'--dataset'",
            ) from exc
        hint = token_hint(exc)
        if isinstance(exc, LeaseHeld) and not queue:  # its words are the API's (wait_s)
            hint += (
                f". The job was not submitted: {_command(kind)} ... --remote-job --queue "
                "waits in the server's queue until those tiles are free (sidra jobs list "
                "shows what it waits for), or --tile names others"
            )
        typer.echo(f"{_command(kind)}: {type(exc).__name__}: {exc}{hint}", err=True)
        raise typer.Exit(1) from exc
    if done.state != "succeeded":
        if done.files:  # stopped early: what it did is a record all the same
            how = ""
            if CHECKPOINT_FILE in done.files:
                how = (
                    f"; the same command with --resume --out {out} goes on from its "
                    f"{CHECKPOINT_FILE}"
                )
            typer.echo(
                f"job {done.job_id} {done.state}: {done.error}; record in {out}{how}", err=True
            )
        else:
            typer.echo(f"job {done.job_id} {done.state}: {done.error}", err=True)
        raise typer.Exit(1)
    return done


def _command(kind: str) -> str:
    """The command that submits a job of ``kind``, as its messages name it."""
    return "sidra model tune" if kind == "tune" else f"sidra train {kind}"


class _Left(Exception):
    """A signal other than Ctrl-C's (:data:`LEAVING_SIGNALS`) that stopped following a
    job."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


LEAVING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""What stops following a job as Ctrl-C does (the job goes on): a batch system's time
limit, ``timeout``, the terminal closed (an ssh connection lost)."""


@contextmanager
def _leaving_on_signals() -> Iterator[None]:
    """:data:`LEAVING_SIGNALS` raise :class:`_Left` in the block, as Ctrl-C raises
    KeyboardInterrupt: the command says where the job is before it exits, instead of
    being ended without a word. The handlers before are back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return

    def leave(signum: int, frame: Any) -> None:
        raise _Left(signum)

    previous = {signum: signal.getsignal(signum) for signum in LEAVING_SIGNALS}
    for signum in LEAVING_SIGNALS:
        signal.signal(signum, leave)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _left_running(job: JobInfo, server: str, out: Path) -> str:
    """What a command that stopped following ``job`` (Ctrl-C, SIGTERM, SIGHUP) says: the
    job goes on in the server, and the commands, ready to paste (the server's URL quoted:
    a grpcs:// one holds ``&``), that follows it again and, once it has ended, saves its
    record into ``out``, which this command no longer does."""
    where = (
        "keeps its place in the server's queue" if job.state == "queued"
        else "keeps running in the server"
    )  # fmt: skip
    return (
        f"job {job.job_id} {where}; its record is not saved in {out} by this command. "
        "Follow it again, its record saved there once it has ended: "
        f"{_follow_command(job.job_id, server, out)}"
    )


def _lost_while_submitting(kind: str, server: str, exc: SidraError) -> str:
    """What to do when the server went away before it answered the submission: the job
    may have been taken (and may be running) or not, and only the server knows."""
    return (
        f"{_command(kind)}: lost {server} before it answered the job's submission "
        f"({type(exc).__name__}: {exc}). Whether it took the job is not known: once it "
        f"answers again, sidra jobs list --server {shlex.quote(server)} shows your jobs "
        "(sidra jobs resume JOB goes on with one it ended interrupted); submit again only "
        "if none is there."
    )


def _lost_while_following(kind: str, job_id: str, server: str, out: Path, exc: SidraError) -> str:
    """What to do when the server went away (or stopped answering) while a job was
    followed: the job is the server's, and so is what became of it; the record it kept
    was not saved into ``out``, which the command to see where it stands also does."""
    at = shlex.quote(server)
    return (
        f"{_command(kind)}: lost {server} while following job {job_id} ({type(exc).__name__}: "
        f"{exc}). A server that stops ends its jobs interrupted, with their record and "
        f"checkpoint, which this command did not save: once it answers again, sidra jobs "
        f"show {job_id} --out {shlex.quote(str(out))} --server {at} says where the job "
        f"stands and saves its record there, and sidra jobs resume {job_id} --server {at} "
        "goes on from its checkpoint."
    )


def _kept_if_not_here(
    dataset: str | Path, board: RemoteBoard, console: Console
) -> str | Path | DatasetInfo:
    """``dataset`` as the job is sent it: a bundled set's name or a local file as given; a
    file's name that is no file here (or ``sha256:DIGITS``), the file the server keeps for
    the caller under that name (or digest), if exactly one; BadParameter naming --dataset
    otherwise."""
    if isinstance(dataset, Path):
        return dataset
    by_digest = dataset.lower().startswith(KEPT_PREFIX)
    if not by_digest and not dataset.lower().endswith(DATASET_FILES):
        return dataset  # a bundled set's name (or a name the server refuses as none)
    kept = board.jobs.datasets()
    if by_digest:
        try:
            found = [kept_file(kept, dataset[len(KEPT_PREFIX) :])]
        except ValueError as exc:
            raise typer.BadParameter(f"got {dataset}: {exc}", param_hint="'--dataset'") from exc
        how = f"{dataset}: the job trains on"
    else:
        found = [f for f in kept if f.name == Path(dataset).name]
        if len(found) != 1:
            kept_too = (
                f"; the server keeps {len(found)} files of that name for you: name one by "
                "its SHA-256 (--dataset sha256:DIGITS; sidra jobs datasets list)" if found
                else ", nor does the server keep one of that name for you: a --remote-job is "
                "sent the file named, trains on a file the server keeps for you (sidra jobs "
                "datasets list; sha256:DIGITS names one by its SHA-256), or on one of the "
                f"server's bundled sets ({', '.join(BUNDLED)})"
            )  # fmt: skip
            raise typer.BadParameter(
                f"got {dataset}, which is no file here{kept_too}", param_hint="'--dataset'"
            )
        how = f"{dataset} is not here: the job trains on"
    file = found[0]
    console.log(f"{how} the file the server keeps for you, {file.name} (SHA-256 "
                f"{file.sha256[:16]}, {size_text(file.size_bytes)})")  # fmt: skip
    return file


@contextmanager
def transfer_bar(console: Console, download: bool = False) -> Iterator[UploadProgress]:
    """A progress bar for a data set file sent to keep in the server (or read back from
    it: ``download``) as it goes (shown from the first piece on, gone once done): what a
    file of hundreds of MB over a slow link needs to not look hung."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    # Started at the first piece, drawn on a terminal only: a bar started and stopped
    # writes an empty line where it cannot be redrawn (a log, a pipe).
    progress = Progress(*columns, console=console, transient=True, disable=not console.is_terminal)
    task: TaskID | None = None

    def told(done: int, size: int) -> None:
        nonlocal task
        if task is None:
            what = (
                "reading the data set file ({}) back from the server"
                if download
                else "sending the data set file ({}) to keep in the server"
            )
            console.log(what.format(size_text(size)) + ", in pieces")
            progress.start()
            task = progress.add_task("download" if download else "upload", total=size)
        progress.update(task, completed=done)

    try:
        yield told
    finally:
        if task is not None:
            progress.stop()


def _follow(board: RemoteBoard, job: JobInfo, console: Console) -> None:
    """Shows ``job``'s progress and log lines as the server reports them, until it ends:
    a bar on a terminal, elsewhere (a log under nohup or a batch system) a line every
    LOG_EVERY_S, as a run from here shows its own."""
    with progress_bar(console) as progress:
        task = progress.add_task(job.kind, total=None, status="")
        for event in board.jobs.watch(job.job_id):
            if event.kind == "progress":
                progress.update(task, completed=event.step, total=event.total,
                                status=event.message)  # fmt: skip
            elif event.kind == "log":
                console.log(event.message)
