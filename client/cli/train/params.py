"""What every ``sidra train`` command takes: the data set, the board or server, the record
folder, --remote-job."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from sidra.cli.completion import board_urls
from sidra.cli.options import TLS_URL_HELP, Priority
from sidra.training.records import earlier_record
from sidra.training.run_lock import RUN_LOCK, is_running

__all__ = [
    "ANY_TILE",
    "BoardUrl",
    "Dataset",
    "Out",
    "Priority",
    "QueueJob",
    "RemoteJob",
    "Resume",
    "CHECKPOINT_EVERY_S",
    "CheckpointEveryS",
    "ServerAddress",
    "keeps_no_record",
    "record_folder_usable",
    "usable_folder",
]


Dataset = Annotated[
    str,
    typer.Option(
        help="digits, iris, wine, breast_cancer, an .npz with X and y, or a .csv of a "
        "sample per line, its label last. With --remote-job, also a file the server keeps "
        "for you: its name (when no such file is here) or sha256:DIGITS."
    ),
]
BoardUrl = Annotated[
    str,
    typer.Option("--board", help="Board URL opened in-process.", autocompletion=board_urls),
]
ServerAddress = Annotated[
    str | None,
    typer.Option(
        "--server",
        help=f"A remote sidra serve: HOST:PORT, or {TLS_URL_HELP}.",
    ),
]


def usable_folder(ctx: typer.Context, out: Path | None) -> Path | None:
    """``out`` if a record can be saved there: refused while parsing, not after the run.
    A folder holding an earlier run's record is not written over (a command that can go
    on from it, ``--resume``, checks that itself with :func:`keeps_no_record`)."""
    resumes = any(param.name == "resume" for param in ctx.command.params)
    return record_folder_usable(out, "--out", resumes)


def record_folder_usable(folder: Path | None, flag: str, resumes: bool = False) -> Path | None:
    """``folder``, given as ``flag``, if a record can be saved there: a folder that can be
    written, holding no earlier run's record unless the command ``resumes`` from one."""
    if folder is None:
        return None
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # "/" at the least
    if not existing.is_dir():
        raise typer.BadParameter(f"got {folder}; {existing} is a file, expected a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"got {folder}; {existing} cannot be written by this user")
    if not resumes:
        keeps_no_record(folder, flag=flag)
    return folder


def keeps_no_record(
    out: Path, hint: str = "", also: tuple[str, ...] = (), flag: str = "--out"
) -> None:
    """BadParameter when ``out`` holds an earlier run's record (or one of the files
    ``also`` names: a checkpoint): written over, it would be lost. ``hint``: what else
    the command offers (``or --resume to go on from it``); ``flag``: the option that
    named the folder. A folder another run is saving into now is said so first: going
    on from it would write over that run."""
    if is_running(out):
        raise typer.BadParameter(
            f"got {out}: another run is saving into it now ({RUN_LOCK} held); name "
            f"another folder, or wait for that run to end",
            param_hint=f"'{flag}'",
        )
    held = earlier_record(out, also)
    if held is not None:
        raise typer.BadParameter(
            f"got {out}, which holds an earlier run's record ({held}); name another "
            f"folder or remove that one{hint}",
            param_hint=f"'{flag}'",
        )


Out = Annotated[
    Path | None,
    typer.Option(help="Record folder (default runs/<job>-<time>).", callback=usable_folder),
]
RemoteJob = Annotated[
    bool,
    typer.Option(
        "--remote-job",
        help="Run the job inside the --server, next to the board (it goes on if this "
        "command stops; see sidra jobs); the record is saved here when it ends.",
    ),
]
QueueJob = Annotated[
    bool,
    typer.Option(
        "--queue",
        help="With --remote-job: when the job cannot start now (its tiles leased, or "
        "\\[limits] max_jobs of yours running), wait in the server's queue instead of being "
        "refused; it starts when they are free (sidra jobs list shows why it waits).",
    ),
]


def queue_needs_remote_job(
    queue: bool, remote_job: bool, priority: int = 0, ctx: typer.Context | None = None
) -> None:
    """--queue is refused without --remote-job: only a job in a server waits in its queue;
    --priority without --queue: only a queued job has a place to take; --board typed with
    --remote-job (``ctx``, the command's): the job runs on the server's board, and the
    one named would be ignored."""
    if remote_job and ctx is not None and "board" in ctx.params:
        source = ctx.get_parameter_source("board")
        if source is not None and source.name == "COMMANDLINE":
            raise typer.BadParameter(
                f"got {ctx.params['board']} with --remote-job; a job runs on the board of "
                "the server it is sent to (--server), so --board is for runs from here",
                param_hint="'--board'",
            )
    if queue and not remote_job:
        raise typer.BadParameter(
            "a run from here has no queue; with --remote-job the job waits in the server's",
            param_hint="--queue",
        )
    if priority and not queue:
        raise typer.BadParameter(
            f"got {priority}; a priority orders the server's queue: give --remote-job --queue",
            param_hint="--priority",
        )


Resume = Annotated[
    bool,
    typer.Option(
        help="Go on from <out>/checkpoint.json, saved when a run of the same options "
        "stopped or lost its board (from here or as a job); with --remote-job the job "
        "goes on from it."
    ),
]

CHECKPOINT_EVERY_S = 60.0
"""How often a run from here saves its checkpoint by default, s (--checkpoint-every-s)."""

CheckpointEveryS = Annotated[
    float | None,
    typer.Option(
        "--checkpoint-every-s",
        min=0,
        help="Also save <out>/checkpoint.json at the next step or epoch once this many "
        "seconds have passed since the last save (0: only when the run stops early), so "
        "that a run killed or crashed goes on with --resume \\[default: 60]. A --remote-job "
        "keeps its checkpoint as its server's \\[state] job_checkpoint_every_s says.",
    ),
]

ANY_TILE: list[int] = []
"""--tiles not given: the layers may go on any tile of the board."""
