"""The data set file a training run read, found again for ``sidra model eval RECORD``.

A run on a file of the user's own names it in its record's settings.json (the name as
given, and its SHA-256). The file is looked for where it was named (relative to where
the run was started) and beside the record; a job's file a server keeps for the caller
(jobs.proto "Stored data set files") is read back from the served board's server into
the record's folder, where the next evaluation finds it without the server: a record
made on one machine evaluates on another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import typer

from sidra.client.remote import RemoteBoard
from sidra.drivers import Board, InvalidArgument, NotFound, PermissionDenied, Unsupported
from sidra.training import BUNDLED

__all__ = ["RecordedFile", "fetched", "not_here", "recorded_file"]


class RecordedFile(NamedTuple):
    named: str
    """The data set file as the run's settings name it."""
    sha256: str
    """Its SHA-256 then ("" when the record kept none)."""
    found: Path | None
    """The file here: the path as named (relative to where the run was started), or in
    the record's folder (a job's file saved beside its record); None when neither is."""
    folder: Path
    """The record's folder."""


def recorded_file(path: Path | None) -> RecordedFile | None:
    """The data set file the training run read, as the settings.json of the record
    holding the model file at ``path`` names it; None when the model is in no record, or
    its run read a bundled set."""
    if path is None:
        return None
    try:
        settings = json.loads((path.parent / "settings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    named, digest = settings.get("dataset"), settings.get("dataset_sha256", "")
    if not isinstance(named, str) or named in BUNDLED or not isinstance(digest, str):
        return None
    here = [c for c in (Path(named), path.parent / Path(named).name) if c.is_file()]
    return RecordedFile(named, digest, here[0] if here else None, path.parent)


def fetched(recorded: RecordedFile, board: Board | None) -> Path | None:
    """``recorded``'s file read back from the server of ``board`` into the record's
    folder, when ``board`` is served and its server keeps that file for the caller; None
    otherwise (:func:`not_here` then says so). BadParameter naming --dataset when the
    server keeps it but the record's folder cannot take it."""
    if not (recorded.sha256 and isinstance(board, RemoteBoard)):
        return None
    path = recorded.folder / Path(recorded.named).name
    try:
        if not board.jobs.datasets(sha256=recorded.sha256):
            return None
        board.jobs.download_dataset(recorded.sha256, path)
    except InvalidArgument as exc:
        if exc.field != "path":  # a digest no file can have (the record edited)
            return None
        raise typer.BadParameter(
            f"the server keeps the data set file the record names ({recorded.named}), but "
            f"{recorded.folder} cannot take it ({exc.allowed}): read it back elsewhere (sidra "
            f"jobs datasets download {recorded.sha256[:16]} --out DIR/) and give it",
            param_hint="'--dataset'",
        ) from exc
    except (NotFound, PermissionDenied, Unsupported):  # not the caller's, gone meanwhile,
        return None  # or a server that keeps no files
    typer.echo(
        f"read the data set file {recorded.named} (SHA-256 {recorded.sha256[:16]}…) back from "
        f"the server into {path}",
        err=True,
    )
    return path


def not_here(recorded: RecordedFile | None, board: Board | None) -> str:
    """Why "the model was trained on NAME" found no file, and where to get it."""
    if recorded is None:
        return ", not a bundled data set, and no such file is here: give its file (.npz or .csv)"
    said = f" ({recorded.named}, its record says), not a bundled data set, and no such file is here"
    if not recorded.sha256:
        return f"{said}: give its file (.npz or .csv)"
    if isinstance(board, RemoteBoard):
        return (
            f"{said} nor kept for you by the server (SHA-256 {recorded.sha256[:16]}…): give "
            "its file (.npz or .csv)"
        )
    return (
        f"{said}: give its file (.npz or .csv), or --server when a server keeps it for you "
        f"(a job's file), to read it back from there (as sidra jobs datasets download "
        f"{recorded.sha256[:16]} does)"
    )
