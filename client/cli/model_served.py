"""``sidra model list | pull | undeploy``, and what every ``sidra model`` command that
talks to a server's DeploymentService shares: the server option, opening it, how a time
and a check read (deployments.proto). Nothing here loads the training code: these
commands only ask the server."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from sidra.cli.job_board import job_board
from sidra.cli.options import SERVER_ENV, TLS_URL_HELP, AsJson, give_server, new_file
from sidra.cli.texts import tiles_text, when_text
from sidra.client import RemoteBoard
from sidra.client.deployments import Deployment, DeploymentCheck
from sidra.drivers import Board
from sidra.training.atomic_files import write_atomically
from sidra.training.held import holds

__all__ = [
    "DeploymentName",
    "RequiredServer",
    "list_deployments",
    "pull",
    "remote",
    "server_board",
    "undeploy",
]

RequiredServer = Annotated[
    str,
    typer.Option(
        "--server",
        help=f"The sidra serve keeping the deployments: HOST:PORT, or {TLS_URL_HELP}.",
        envvar=SERVER_ENV,
    ),
]
DeploymentName = Annotated[str, typer.Argument(help="The deployment's name (sidra model list).")]


@contextmanager
def server_board(address: str, what: str) -> Iterator[RemoteBoard]:
    """The server, or a usage error (a malformed address) or exit 1 naming the command and
    what went wrong."""
    with job_board("emu://", address, f"sidra model {what}") as board:
        yield remote(board, "'--server'")


def remote(board: Board, option: str) -> RemoteBoard:
    """``board`` as the server it must be for ``option``."""
    if not isinstance(board, RemoteBoard):
        raise typer.BadParameter(
            f"deployments are kept by a server: {give_server()}", param_hint=option
        )
    return board


def _intact_text(deployment: Deployment) -> str:
    if deployment.intact:
        return "yes, protected" if deployment.protected else "yes"
    rewritten = {(r.tile, r.rewritten_by): r for r in deployment.regions if not r.intact}
    return "no: " + "; ".join(
        f"tile {tile} rewritten" + (f" by {by}, {when_text(r.rewritten_unix_s)}" if by else "")
        for (tile, by), r in sorted(rewritten.items())
    )


def list_deployments(server: RequiredServer, as_json: AsJson = False) -> None:
    """Models deployed on a server's board by name: where, by whom, whether intact.

    Also what its cells read at its latest check (sidra model check, or the server's own
    at a metrics scrape): their correlation with the targets, and when."""
    with server_board(server, "list") as board:
        found = board.deployments.list()
    if as_json:
        typer.echo(json.dumps([d.as_dict() for d in found]))
        return
    if not found:
        typer.echo("no deployment (sidra model deploy --name NAME --server ... keeps one)")
        return
    # One block a deployment, not a table: eight fields do not fit 80 columns, and a
    # description is free text of any length.
    for d in found:
        typer.echo(
            f"{d.name}: by {d.principal}, {when_text(d.created_unix_s)}, {tiles_text(d.tiles)}"
        )
        typer.echo(f"  intact: {_intact_text(d)}")
        typer.echo(f"  cells read: {_check_text(d.last_check, d.intact)}")
        typer.echo(f"  model {d.model_sha256[:8]}: {d.description}")


def _check_text(check: DeploymentCheck | None, intact: bool = True) -> str:
    """A deployment's latest check in a few words: the correlation, and when. (The server
    keeps no check of a deployment written over: what was read is another model now.)"""
    if check is None:
        return "never checked (sidra model check)" if intact else "not checked: written over"
    held = "" if holds(check.correlation) else ", NOT HELD"
    reads = "" if check.read_repeats == 1 else f" (mean of {check.read_repeats} reads)"
    return f"correlation {check.correlation:.2f}{held}{reads} at {when_text(check.checked_unix_s)}"


def undeploy(name: DeploymentName, server: RequiredServer) -> None:
    """Forget a deployment (yours, or as an admin anyone's); its tiles keep what they hold."""
    with server_board(server, "undeploy") as board:
        gone = board.deployments.delete(name)
    typer.echo(
        f"deployment {gone.name!r} forgotten; its cells stay as they are on "
        f"{tiles_text(gone.tiles)}",
        err=True,
    )


def pull(
    name: DeploymentName,
    server: RequiredServer,
    out: Annotated[
        Path, typer.Option(help="The model file to write; an existing file is not written over.")
    ],
) -> None:
    """Fetch a deployment's model file from a server (to run elsewhere or keep)."""
    new_file(out)
    with server_board(server, "pull") as board:
        found = board.deployments.get(name, include_model=True)
    assert found.model is not None
    if hashlib.sha256(found.model).hexdigest() != found.model_sha256:
        typer.echo(f"sidra model pull: {name}: the model file arrived damaged", err=True)
        raise typer.Exit(1)
    write_atomically(out, found.model)
    typer.echo(f"{out}: deployment {name!r} ({found.model_bytes} bytes)", err=True)
