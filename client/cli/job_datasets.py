"""``sidra jobs datasets``: the data set files a server keeps for your jobs (list, upload,
download, delete; jobs.proto "Stored data set files").

``sidra train ... --remote-job --dataset FILE`` keeps a file larger than 512 KiB in the
server by itself; these commands show what is kept, send a file ahead of its jobs, read
one back (a record names the file it trained on by its SHA-256), and give the space back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from sidra.cli.jobs import Server, jobs_server, transfer_bar
from sidra.cli.options import AsJson
from sidra.cli.tables import columns_that_fit
from sidra.cli.texts import count_text, size_text, when_text
from sidra.client.job_datasets import DatasetInfo, file_sha256, kept_file
from sidra.drivers import InvalidArgument, SidraError

__all__ = ["datasets_app"]

datasets_app = typer.Typer(
    no_args_is_help=True,
    help="Data set files the server keeps for your jobs (sent by --remote-job --dataset).",
)

Principal = Annotated[
    str, typer.Option(help="Another principal's files (an admin's right); default: yours.")
]

LIST_DROPPED_FIRST = ("last used", "uploaded", "queued jobs")
"""The columns ``list`` leaves out, in this order, on a terminal too narrow for them all
(``--json`` keeps every one)."""

SHOWN_DIGITS = 16
"""Hex digits of a SHA-256 the table shows (``delete`` takes any unique start of 8 or more)."""


def _as_dict(file: DatasetInfo) -> dict[str, object]:
    return dict(file.__dict__)


@datasets_app.command("list")
def list_datasets(
    server: Server,
    principal: Principal = "",
    every_principal: Annotated[
        bool,
        typer.Option(
            "--every-principal",
            help="Every principal's files, with whose each is (an admin's right).",
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """The files kept, newest first, with the queued jobs waiting on each."""
    if every_principal and principal:
        raise typer.BadParameter(
            f"got --principal {principal}; --every-principal lists everyone's",
            param_hint="'--every-principal'",
        )
    with jobs_server(server, "datasets list") as board:
        files = board.jobs.datasets(principal, every_principal=every_principal)
        room = board.jobs.dataset_room(principal, every_principal=every_principal)
    if as_json:
        typer.echo(json.dumps([_as_dict(f) for f in files]))
        return
    if not files:
        typer.echo("no data set files kept")
        return
    cells = [
        {
            "principal": f.principal, "sha256": f.sha256[:SHOWN_DIGITS], "name": f.name,
            "size": size_text(f.size_bytes), "uploaded": when_text(f.stored_unix_s),
            "last used": when_text(f.used_unix_s) or "never", "queued jobs": str(f.queued_jobs),
        }
        for f in files
    ]  # fmt: skip
    console = Console(log_path=False)
    columns = ["sha256", "name", "size", "uploaded", "last used", "queued jobs"]
    if every_principal:
        columns.insert(0, "principal")
    shown = columns_that_fit(cells, columns, LIST_DROPPED_FIRST, console.width, ["name"])
    table = Table(box=box.SIMPLE)
    for column in shown:
        # A long name may take two lines where nothing else fits; the rest stay whole.
        table.add_column(column, no_wrap=column != "name", overflow="fold")
    for line in cells:
        table.add_row(*(line[c] for c in shown))
    console.print(table)
    if every_principal:
        whose = len({f.principal for f in files})
        typer.echo(f"{count_text(len(files), 'file')} of {count_text(whose, 'principal')}, "
                   f"{size_text(room.stored_bytes)} in the store (bytes several keep counted "
                   f"once); each may keep {_setting(room.max_bytes)}")  # fmt: skip
        return
    typer.echo(f"{count_text(len(files), 'file')}, {size_text(room.stored_bytes)} of "
               f"{_setting(room.max_bytes)} allowed")  # fmt: skip


def _setting(max_bytes: int) -> str:
    """The most a principal may keep, in the units the sizes beside it are in, and the
    server's setting that says it (``[limits] max_dataset_mb``, in MiB)."""
    return f"{size_text(max_bytes)} ([limits] max_dataset_mb = {max_bytes / 2**20:g})"


@datasets_app.command("upload")
def upload(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Data set files (.npz or .csv).",
            exists=True,
            dir_okay=False,
            show_default=False,
        ),  # fmt: skip
    ],
    server: Server,
    as_json: AsJson = False,
) -> None:
    """Keep files in the server for your jobs, checked there as a job reads them.

    A job sent the same bytes later (--remote-job --dataset FILE) names them by their
    SHA-256 instead of sending them again."""
    kept: list[DatasetInfo] = []
    console = Console(stderr=True, log_path=False)
    with jobs_server(server, "datasets upload") as board:
        for path in files:
            try:
                with transfer_bar(console) as on_progress:
                    kept.append(board.jobs.upload_dataset(path, on_progress))
            except InvalidArgument as exc:
                raise typer.BadParameter(
                    f"got {path}, expected {exc.allowed}", param_hint="'FILES...'"
                ) from exc
            if not as_json:
                f = kept[-1]
                typer.echo(f"{f.name}: kept, {size_text(f.size_bytes)}, SHA-256 {f.sha256}")
    if as_json:
        typer.echo(json.dumps([_as_dict(f) for f in kept]))


@datasets_app.command("download")
def download(
    digest: Annotated[
        str,
        typer.Argument(
            metavar="SHA256",
            help="The file's SHA-256 (sidra jobs datasets list, or a record's settings.json "
            "dataset_sha256), or its first hex digits (8 or more) when no other file's "
            "starts so.",
            show_default=False,
        ),
    ],
    server: Server,
    out: Annotated[
        str | None,
        typer.Option(
            help="Where to write it: a file, or a folder (one there, or a path ending in /, "
            "made if need be) to write it into under its kept name; default: its kept name "
            "here. A different file there is not written over.",
            show_default=False,
        ),
    ] = None,
    principal: Principal = "",
) -> None:
    """Read a kept file back, checked against its SHA-256."""
    console = Console(stderr=True, log_path=False)
    with jobs_server(server, "datasets download") as board:
        try:
            file = kept_file(board.jobs.datasets(principal), digest)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'SHA256'") from exc
        path = _download_path(out, file)
        if path.is_file() and file_sha256(path) == file.sha256:
            typer.echo(f"{path}: already here ({size_text(file.size_bytes)}, SHA-256 "
                       f"{file.sha256[:SHOWN_DIGITS]})")  # fmt: skip
            return
        with transfer_bar(console, download=True) as on_progress:
            board.jobs.download_dataset(file.sha256, path, principal, on_progress)
    typer.echo(f"{path}: {file.name}, {size_text(file.size_bytes)}, SHA-256 {file.sha256}")


def _download_path(out: str | None, file: DatasetInfo) -> Path:
    """Where ``download`` writes ``file``: ``out``, or the kept name in ``out`` (a folder:
    one there, or a path ending in a slash, made here) or here; BadParameter naming --out
    for a different file there."""
    folder = out is None or out.endswith(("/", os.sep)) or Path(out).is_dir()
    path = Path(out or ".") / file.name if folder else Path(str(out))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise typer.BadParameter(f"got {out}: {exc.strerror}", param_hint="'--out'") from exc
    if path.exists() and not path.is_file():
        raise typer.BadParameter(f"got {path}, which is not a file", param_hint="'--out'")
    if path.is_file() and file_sha256(path) != file.sha256:
        raise typer.BadParameter(
            f"got {path}, which holds another file (SHA-256 {file_sha256(path)[:SHOWN_DIGITS]}, "
            f"not {file.sha256[:SHOWN_DIGITS]}); name another or remove it",
            param_hint="'--out'",
        )
    return path


@datasets_app.command("delete")
def delete(
    digests: Annotated[
        list[str],
        typer.Argument(
            help="The files' SHA-256 (sidra jobs datasets list), or their first hex digits "
            "(8 or more) when no other file's starts so.",
            show_default=False,
        ),
    ],
    server: Server,
    principal: Principal = "",
) -> None:
    """Forget kept files; jobs queued on one still start with it."""
    refused = 0
    with jobs_server(server, "datasets delete") as board:
        kept = board.jobs.datasets(principal)
        for given in digests:
            try:
                file = kept_file(kept, given)
                freed = board.jobs.delete_dataset(file.sha256, principal)
            except (SidraError, ValueError) as exc:
                typer.echo(f"sidra jobs datasets delete: {exc}", err=True)
                refused += 1
                continue
            held = "" if freed else " (its bytes stay while queued jobs or others hold them)"
            typer.echo(f"{file.name} ({file.sha256[:SHOWN_DIGITS]}): deleted, "
                       f"{size_text(freed)} given back{held}")  # fmt: skip
    if refused:
        raise typer.Exit(1)
