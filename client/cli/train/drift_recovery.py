"""``sidra train drift-recovery``: deploy, age the board, calibrate, retrain the last layer."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sidra.cli.job_board import job_board
from sidra.cli.options import AsJson, field_option, job_options
from sidra.cli.texts import figure_text
from sidra.cli.train.like import Like
from sidra.cli.train.params import (
    BoardUrl,
    Dataset,
    Priority,
    QueueJob,
    RemoteJob,
    ServerAddress,
    queue_needs_remote_job,
    usable_folder,
)
from sidra.cli.train.running import (
    StopRequest,
    dataset_named,
    exit_if_stopped,
    record_folder,
    run_clock,
    run_remote,
    save_or_keep,
    saving_into,
    stop_on_interrupt,
)
from sidra.training import RecoveryOptions
from sidra.training.atomic_files import write_files_atomically
from sidra.training.recovery import recovery_files

__all__ = ["drift_recovery_command"]


_RECOVERY = RecoveryOptions()
JOB = "drift-recovery"
_recovery = functools.partial(field_option, RecoveryOptions)


def drift_recovery_command(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=pcm&seed=0",
    server: ServerAddress = None,
    hidden: Annotated[int, _recovery("hidden")] = _RECOVERY.hidden,
    age_days: Annotated[float, _recovery("age_days")] = _RECOVERY.age_days,
    calibrate: Annotated[bool, _recovery("calibrate")] = _RECOVERY.calibrate,
    epochs: Annotated[int, _recovery("epochs")] = _RECOVERY.epochs,
    learning_rate: Annotated[float, _recovery("learning_rate")] = _RECOVERY.learning_rate,
    batch_size: Annotated[int, _recovery("batch_size")] = _RECOVERY.batch_size,
    threshold: Annotated[float, _recovery("threshold")] = _RECOVERY.threshold,
    read_repeats: Annotated[int, _recovery("read_repeats")] = _RECOVERY.read_repeats,
    eval_read_repeats: Annotated[int, _recovery("eval_read_repeats")] = _RECOVERY.eval_read_repeats,
    reference_column: Annotated[bool, _recovery("reference_column")] = _RECOVERY.reference_column,
    seed: Annotated[int, _recovery("seed")] = _RECOVERY.seed,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Record folder: settings.json, summary.json, run.json (default "
            "runs/drift-recovery-<time>).",
            callback=usable_folder,
        ),
    ] = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """Deploy a digitally trained 64→H→10 net, age the board, calibrate, retrain the last layer.

    It ages the board (AdvanceClock): through --server it needs the whole board, which a
    --remote-job leases; a run from here over --server needs the admin role.

    Ctrl-C stops after the retraining epoch under way and prints the figures so far
    (exit 130); a second Ctrl-C stops at once."""
    from sidra.training.recovery import drift_recovery

    options = job_options(RecoveryOptions, ctx)
    queue_needs_remote_job(queue, remote_job, priority, ctx)
    console = Console(stderr=True, log_path=False)
    stop: StopRequest | None = None  # a --remote-job is stopped by cancelling it
    if remote_job:
        summary = run_remote(
            server,
            "drift-recovery",
            options,
            dataset,
            out,
            console,
            queue=queue,
            priority=priority,
        )
    else:
        data = dataset_named(dataset)
        folder = record_folder(out, JOB)
        with saving_into(folder):  # runs list shows it running; another run is refused it
            run = run_clock(board, server)
            with (
                job_board(board, server, holding="sidra train drift-recovery") as target,
                stop_on_interrupt(console, "retraining epoch") as stop,
            ):
                console.print(
                    f"drift recovery: digital training, deployment, {options.age_days:g} days "
                    f"of ageing, {options.epochs} retraining epochs (Ctrl-C stops after the "
                    "retraining epoch under way)",
                    soft_wrap=True,  # one line, however wide the terminal
                )
                run.on(target)
                summary = drift_recovery(target, data, options, stop=stop).summary()
            summary |= {"dataset": data.name}
            files = recovery_files(options, data, summary, dataset)
            save = functools.partial(write_files_atomically, files)
            folder = save_or_keep(save, folder, JOB, run)
        summary |= {"record": str(folder)}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            if isinstance(value, list):
                typer.echo(f"{key:28s} {' '.join(f'{g:.3f}' for g in value)}")
            else:
                typer.echo(f"{key:28s} {figure_text(key, value)}")
    if not remote_job:  # a remote job's cancel is reported by the job (run_remote_job)
        exit_if_stopped(
            summary, options.epochs, console,
            kept=f"the figures above and the record in {summary['record']} are the run so far",
            stop=stop,
        )  # fmt: skip
