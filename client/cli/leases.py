"""``sidra leases SERVER``: who holds which tiles of the board behind a server, until when."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from sidra.cli.options import SERVER_ENV, SERVER_HELP, AsJson, server_url
from sidra.cli.tables import columns_that_fit
from sidra.client import RemoteBoard, TileLease
from sidra.drivers import SidraError, open_board

__all__ = ["leases"]


def leases(
    url: Annotated[
        str,
        typer.Argument(help=SERVER_HELP, envvar=SERVER_ENV),
    ],
    close: Annotated[
        str | None,
        typer.Option(
            "--close",
            metavar="SESSION",
            help="End this session and its leases first (its cells left perturbed are "
            "restored): one of yours, or as an admin anyone's; the session column lists "
            "the ids you may close.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List the tile leases on the board behind a server (exit 1 if it cannot be asked)."""
    try:
        # HOST:PORT as every --server takes it; a URL names the scheme itself.
        with open_board(server_url(url)) as board:
            if not isinstance(board, RemoteBoard):
                raise typer.BadParameter(
                    f"{url} is a board, not a server: leases live in `sidra serve`",
                    param_hint="URL",
                )
            if close is not None:
                restored = board.close_session(close)
                typer.echo(f"closed session {close}; tiles restored: {list(restored)}", err=True)
            held = board.leases()
    except SidraError as exc:
        typer.echo(f"sidra leases {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps([asdict(lease) for lease in held]))
        return
    if not held:
        typer.echo("no tile is leased")
        return
    # A line per session, its tiles together: a run of three layers is one holder.
    sessions: dict[tuple[str, str, str, bool], list[TileLease]] = {}
    for lease in held:
        key = (lease.session_id, lease.principal, lease.label, lease.whole_board)
        sessions.setdefault(key, []).append(lease)
    cells = [
        {
            "tiles": "all" if whole else ", ".join(str(t.tile) for t in tiles),
            "principal": principal, "session label": label,
            "expires in, s": f"{min(t.expires_in_s for t in tiles):.1f}", "session": session_id,
        }
        for (session_id, principal, label, whole), tiles in sessions.items()
    ]  # fmt: skip
    ids = any(lease.session_id for lease in held)  # only those the caller may close
    columns = ("tiles", "principal", "session label", "expires in, s", *(("session",) * ids))
    console = Console()
    shown = columns_that_fit(cells, columns, ("expires in, s",), console.width,
                             ["session label", "tiles"])  # fmt: skip
    table = Table(box=box.SIMPLE)
    for column in shown:  # the session id whole: --close takes it
        table.add_column(column, no_wrap=column not in ("session label", "tiles"))
    for line in cells:
        table.add_row(*(line[c] for c in shown))
    console.print(table)
