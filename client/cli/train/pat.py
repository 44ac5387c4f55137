"""``sidra train pat``: physics-aware training, forward on the board, backward through its
twin."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sidra.characterize.compare import twin_differences
from sidra.cli.job_board import job_board
from sidra.cli.options import AsJson, field_option, job_options
from sidra.cli.train.like import Like, settings_of
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
    epoch_status,
    exit_if_stopped,
    finish,
    keeping_lost_epochs,
    progress_bar,
    record_folder,
    run_clock,
    saving_interval_s,
    saving_into,
    stop_on_interrupt,
    submitted,
)
from sidra.cli.twin import (
    characterize_twin,
    holding_every_tile,
    load_twin,
    twin_emulator,
    twin_url,
)
from sidra.drivers import Board, open_board
from sidra.training import PATOptions, TrainingRecord, TwinPhysics, train_pat
from sidra.training.atomic_files import write_atomically
from sidra.training.mlp import mlp_placement
from sidra.training.stopping import RunInterrupted

__all__ = ["pat"]


_PAT = PATOptions()
_PAT_HIDDEN = list(_PAT.hidden)
_pat = functools.partial(field_option, PATOptions)


def pat(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    profile: Annotated[
        Path | None,
        typer.Option(
            help="The board's twin: a profile from sidra board characterize (default: the "
            "board is characterized first, drift skipped, into <record>/twin.toml)."
        ),
    ] = None,
    hidden: Annotated[list[int], _pat("hidden")] = _PAT_HIDDEN,
    epochs: Annotated[int, _pat("epochs")] = _PAT.epochs,
    batch_size: Annotated[int, _pat("batch_size")] = _PAT.batch_size,
    learning_rate: Annotated[float, _pat("learning_rate")] = _PAT.learning_rate,
    final_learning_rate: Annotated[
        float | None, _pat("final_learning_rate")
    ] = _PAT.final_learning_rate,
    threshold: Annotated[float, _pat("threshold")] = _PAT.threshold,
    weight_limit: Annotated[float, _pat("weight_limit")] = _PAT.weight_limit,
    read_repeats: Annotated[int, _pat("read_repeats")] = _PAT.read_repeats,
    eval_read_repeats: Annotated[int | None, _pat("eval_read_repeats")] = _PAT.eval_read_repeats,
    digital_bias: Annotated[bool, _pat("digital_bias")] = _PAT.digital_bias,
    cosine_every: Annotated[int, _pat("cosine_every")] = _PAT.cosine_every,
    seed: Annotated[int, _pat("seed")] = _PAT.seed,
    tiles: Annotated[list[int], _pat("tiles", "--tiles", "--tile")] = ANY_TILE,
    trainable: Annotated[int | None, _pat("trainable")] = _PAT.trainable,
    board_epochs: Annotated[int, _pat("board_epochs")] = _PAT.board_epochs,
    in_silico: Annotated[bool, _pat("in_silico")] = _PAT.in_silico,
    twin_seed: Annotated[int | None, _pat("twin_seed")] = _PAT.twin_seed,
    resume: Resume = False,
    checkpoint_every_s: CheckpointEveryS = None,
    out: Out = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """Physics-aware training: forward on the board, backward through its twin.

    Every layer's forward pass runs on the board; the backward pass runs through the
    board's twin at the board's activations (no TransposeMVM), the schedule's first
    epochs on the twin itself (--board-epochs). With --in-silico, trained on the twin
    alone and deployed to the board. A --remote-job sends --profile with the job,
    or without it has the server characterize the board first (on a lease of the whole
    board until then, overwriting every tile); the twin emulator runs in the server.

    Ctrl-C stops the run after the epoch under way and keeps its record (exit 130), in
    the board's epochs a checkpoint too (the same command with --resume goes on, the
    twin's epochs not run again); while it characterizes the board, once the profile
    is complete, keeping it for --profile. A second Ctrl-C stops at once. A board gone
    mid-way keeps them too (exit 1)."""
    options = job_options(PATOptions, ctx)
    console = Console(stderr=as_json, log_path=False)  # lines stamped with the time only
    check_resume(out, resume)
    saving_every_s = saving_interval_s(checkpoint_every_s, remote_job)
    queue_needs_remote_job(queue, remote_job, priority, ctx)
    folder = record_folder(out, "pat")
    if like is not None and profile is None and not resume:
        profile = _recorded_twin(like)  # that run again: its twin, not the board measured anew
    if resume and profile is None:  # the twin the run measured, not a new one
        profile = folder / "twin.toml"
        if not profile.is_file():
            raise typer.BadParameter(
                f"--resume without --profile goes on with the twin the run measured, "
                f"{profile}; there is none: give --profile"
            )
    if remote_job:
        sent = options.settings()
        if profile is not None:
            _twin_from(profile)  # a bad profile is refused here, before anything is sent
            # The server cannot read this file: its text goes with the options.
            sent |= {"twin_profile_toml": profile.read_text(encoding="utf-8")}
        submitted(
            server, "pat", options, dataset, out, as_json, console, sent=sent, resume=resume,
            queue=queue, priority=priority,
        )  # fmt: skip
        return
    data = dataset_named(dataset, options, console)
    # A profile given is read before the board is opened: a bad one touches no board.
    twin = None if profile is None else _twin_from(profile)
    with saving_into(folder):  # runs list shows it running; another run is refused it
        run = run_clock(board, server)
        with (
            keeping_lost_epochs(dataset, "pat", folder, options.epochs, as_json, console, run),
            job_board(board, server, holding="sidra train pat") as target,
        ):
            run.on(target)
            # A network no tiles hold is refused before the board is characterized (minutes)
            # or a profile is copied into the record: nothing left behind for nothing.
            mlp_placement(target.info, data, options)
            if profile is None:
                source = _characterized(target, folder / TWIN_FILE, console)
            else:
                source = _kept_in_record(profile, folder)
            twin = twin or _twin_from(source)
            _check_fits(source, target, options)
            with (
                twin_emulator(source, options) as on_twin,
                progress_bar(console) as progress,
                stop_on_interrupt(console, "epoch") as stop,
            ):
                task = progress.add_task("pat", total=options.epochs, status="")
                try:
                    record = train_pat(
                        target,
                        twin,
                        data,
                        options,
                        twin_board=on_twin,
                        on_epoch=epoch_status(progress, task),
                        stop=stop,
                        checkpoint=folder / CHECKPOINT,
                        resume=resume,
                        checkpoint_every_s=saving_every_s,
                    )
                except RunInterrupted as lost:  # kept (keeping_lost_epochs), saying its twin
                    assert lost.record is not None
                    _name_twin(lost.record, source, options)
                    raise
        _name_twin(record, source, options)
        finish(record, dataset, "pat", folder, as_json, console, run)
        drop_finished_checkpoint(record.settings, folder)
    # Stopped on the twin or in silico, the run was deployed: nothing to go on from.
    going_on = folder if (folder / CHECKPOINT).is_file() else None
    exit_if_stopped(record.settings, options.epochs, console, resume=going_on, stop=stop)


def _check_fits(profile: Path, board: Board, options: PATOptions) -> None:
    """BadParameter naming --profile when its twin is not ``board``'s (another geometry,
    conductance window or read range): it trained a whole schedule on the twin and then
    failed, or trained on against the wrong window without a word."""
    with open_board(twin_url(profile, options.twin_device_seed)) as twin:
        differences = twin_differences(board.info, twin.info)
    if differences:
        raise typer.BadParameter(
            f"{profile}: a profile of another board ({'; '.join(differences)})",
            param_hint="'--profile'",
        )


TWIN_FILE = "twin.toml"
"""The twin's profile in a pat run's record: measured there, or a copy of --profile."""


def _recorded_twin(record: Path) -> Path:
    """The twin a pat run's record names (``--like``): its own copy, else the profile
    its settings name; BadParameter when neither is there (measuring the board again
    would overwrite every tile, which ``--like`` must not do unasked)."""
    folder = record if record.is_dir() else record.parent
    kept = folder / TWIN_FILE
    if kept.is_file():
        return kept
    named = settings_of(record).get("twin_profile")
    if isinstance(named, str) and Path(named).is_file():
        return Path(named)
    raise typer.BadParameter(
        f"got {record}: its twin ({named or TWIN_FILE}) is not there; give --profile (a "
        "profile of this board) to train as that run did",
        param_hint="'--like'",
    )


def _kept_in_record(profile: Path, folder: Path) -> Path:
    """``profile`` copied into the record ``folder`` (the twin that trained the run stays
    with it when the file given changes); the copy, which the run then uses."""
    kept = folder / TWIN_FILE
    if kept.exists() and kept.resolve() == profile.resolve():
        return kept
    write_atomically(kept, profile.read_bytes())
    return kept


def _name_twin(record: TrainingRecord, source: Path, options: PATOptions) -> None:
    """Names in ``record``'s settings the twin's profile and the emulator it ran on."""
    record.settings["twin_profile"] = str(source)
    if options.twin_epochs:
        record.settings["twin_board"] = twin_url(source, options.twin_device_seed)


def _characterized(board: Board, out: Path, console: Console) -> Path:
    """The board's twin profile, measured into ``out``. Ctrl-C ends the command once the
    profile is complete (exit 130), nothing trained: the board time it cost is kept, and
    --profile trains from it without measuring again."""
    with (
        stop_on_interrupt(console, "characterization") as stop,
        holding_every_tile(board, "sidra train pat"),
    ):
        source = characterize_twin(board, out, console)
    if stop.is_set():
        console.print(
            f"stopped before training{stop.asked_by}: the twin's profile is in {source} "
            f"(--profile {source} trains without measuring the board again)"
        )
        raise typer.Exit(stop.exit_status)
    return source


def _twin_from(profile: Path) -> TwinPhysics:
    """The twin in ``profile``; a bad file is a bad --profile."""
    try:
        return load_twin(profile)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--profile'") from exc
