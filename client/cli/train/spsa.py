"""``sidra train spsa``: SPSA training of a softmax layer on the board."""

from __future__ import annotations

import functools
from typing import Annotated

import typer
from rich.console import Console

from sidra.cli.job_board import job_board
from sidra.cli.options import AsJson, field_option, job_options
from sidra.cli.train.like import Like
from sidra.cli.train.params import (
    ANY_TILE,
    BoardUrl,
    CheckpointEveryS,
    Dataset,
    Out,
    Priority,
    QueueJob,
    RemoteJob,
    Resume,
    ServerAddress,
    queue_needs_remote_job,
)
from sidra.cli.train.running import (
    CHECKPOINT,
    check_resume,
    dataset_named,
    drop_finished_checkpoint,
    exit_if_stopped,
    finish,
    progress_bar,
    record_folder,
    run_clock,
    saving_interval_s,
    saving_into,
    stop_on_interrupt,
    submitted,
)
from sidra.training import PerturbationMode, SPSAOptions, SPSAStep, train_softmax_spsa
from sidra.training.stopping import RunInterrupted

__all__ = ["default_eval_every", "spsa"]


def default_eval_every(steps: int) -> int:
    """Steps between test-accuracy checkpoints when --eval-every is not given: 5 % of
    ``steps`` (twenty points on the plot), at least 1."""
    return max(1, steps // 20)


_SPSA = SPSAOptions()
_spsa = functools.partial(field_option, SPSAOptions)


def spsa(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    steps: Annotated[int, _spsa("steps")] = _SPSA.steps,
    seed: Annotated[int, _spsa("seed")] = _SPSA.seed,
    batch_size: Annotated[int, _spsa("batch_size")] = _SPSA.batch_size,
    a: Annotated[float | None, _spsa("a")] = _SPSA.a,
    c: Annotated[float | None, _spsa("c")] = _SPSA.c,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Calibrate a and c on the board by Spall's rules 3 and 4 (a gain given "
            "with it, --a or --c, is kept; the other is calibrated)."
        ),
    ] = False,
    resamplings: Annotated[int, _spsa("resamplings")] = _SPSA.resamplings,
    mode: Annotated[PerturbationMode, _spsa("mode")] = _SPSA.mode,
    program_every: Annotated[int, _spsa("program_every")] = _SPSA.program_every,
    blocking: Annotated[bool, _spsa("blocking")] = _SPSA.blocking,
    last_avg: Annotated[int, _spsa("last_avg")] = _SPSA.last_avg,
    second_order: Annotated[bool, _spsa("second_order")] = _SPSA.second_order,
    eval_every: Annotated[
        int | None,
        typer.Option(help="Steps between test-accuracy checkpoints \\[default: 5 % of --steps]."),
    ] = None,
    eval_read_repeats: Annotated[int, _spsa("eval_read_repeats")] = _SPSA.eval_read_repeats,
    tiles: Annotated[list[int], _spsa("tiles", "--tiles", "--tile")] = ANY_TILE,
    weight_limit: Annotated[float, _spsa("weight_limit")] = _SPSA.weight_limit,
    checkpoint_every: Annotated[
        int, typer.Option(min=0, help=f"Save <out>/{CHECKPOINT} every N steps (0: never).")
    ] = 0,
    resume: Resume = False,
    checkpoint_every_s: CheckpointEveryS = None,
    out: Out = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """SPSA training of a softmax layer (features → classes) on the board.

    Ctrl-C stops the run at its next step and keeps the record and a checkpoint in
    --out (the same command with --resume goes on); a second Ctrl-C stops at once."""
    options = job_options(
        SPSAOptions,
        ctx,
        a=_gain(ctx, calibrate, "a", a),
        c=_gain(ctx, calibrate, "c", c),
        eval_every=default_eval_every(steps) if eval_every is None else eval_every,
    )
    check_resume(out, resume)  # here, not in a callback: --out may come before --resume
    console = Console(stderr=as_json, log_path=False)  # lines stamped with the time only
    saving_every_s = saving_interval_s(checkpoint_every_s, remote_job)
    queue_needs_remote_job(queue, remote_job, priority, ctx)
    if remote_job:
        if checkpoint_every:
            raise typer.BadParameter(
                "--checkpoint-every is for runs from here; a --remote-job keeps its "
                "checkpoint in the server when it stops early"
            )
        submitted(
            server,
            "spsa",
            options,
            dataset,
            out,
            as_json,
            console,
            resume=resume,
            queue=queue,
            priority=priority,
        )
        return
    out = record_folder(out, "spsa")
    data = dataset_named(dataset, options, console)
    run = run_clock(board, server)
    with saving_into(out):  # runs list shows it running; another run is refused it
        try:
            with (
                job_board(board, server, holding="sidra train spsa") as target,
                progress_bar(console) as progress,
                stop_on_interrupt(console, "step") as stop,
            ):
                run.on(target)
                task = progress.add_task("spsa", total=options.steps, status="")

                def on_step(step: SPSAStep) -> None:
                    if step.step % 10 == 0 or step.step == options.steps:
                        progress.update(task, completed=step.step, status=f"loss {step.loss:.3f}")

                record = train_softmax_spsa(
                    target,
                    data,
                    options,
                    on_step=on_step,
                    checkpoint=out / CHECKPOINT,
                    checkpoint_every=checkpoint_every,
                    resume=resume,
                    checkpoint_every_s=saving_every_s,
                    stop=stop,
                )
        except RunInterrupted as lost:  # the board went away mid-run: its steps are kept
            typer.echo(
                f"sidra train: {lost}: the same command with --out {out} --resume goes on once "
                "the board answers again",
                err=True,
            )
            raise typer.Exit(1) from lost
        finish(record, dataset, "spsa", out, as_json, console, run)
        drop_finished_checkpoint(record.settings, out)
        exit_if_stopped(record.settings, options.steps, console, resume=out, stop=stop)


def _gain(ctx: typer.Context, calibrate: bool, name: str, value: float | None) -> float | None:
    """Gain ``name`` as the run takes it: None (calibrated) with --calibrate unless given
    on the command line too (``--calibrate --a 3.0`` dropped the 3.0 without a word)."""
    source = ctx.get_parameter_source(name)
    given = source is not None and source.name == "COMMANDLINE"
    return None if calibrate and not given else value
