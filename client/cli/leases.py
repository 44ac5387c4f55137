"""``sidra leases SERVER``: who holds which tiles of the board behind a server, until when."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from sidra.cli.consoles import output_console
from sidra.cli.options import SERVER_ENV, SERVER_HELP, AsJson, server_address, server_url
from sidra.cli.tables import columns_that_fit
from sidra.cli.whoami import token_hint
from sidra.client import RemoteBoard, TileLease
from sidra.drivers import SidraError, open_board

__all__ = ["Holder", "holders", "leases"]


@dataclass(frozen=True)
class Holder:
    """One session's leases on a board: what ``sidra leases`` and ``sidra status`` show as
    a line, a run of three layers being one holder."""

    session_id: str
    principal: str
    label: str
    whole_board: bool
    tiles: tuple[int, ...]
    expires_in_s: float
    """The soonest of its leases', s."""


def holders(held: Sequence[TileLease]) -> list[Holder]:
    """The sessions holding ``held``'s tiles, in the order of their first tile."""
    by_session: dict[tuple[str, str, str, bool], list[TileLease]] = {}
    for lease in held:
        key = (lease.session_id, lease.principal, lease.label, lease.whole_board)
        by_session.setdefault(key, []).append(lease)
    return [
        Holder(*key, tuple(t.tile for t in tiles), min(t.expires_in_s for t in tiles))
        for key, tiles in by_session.items()
    ]


MIN_ID_PREFIX = 4
"""Fewest characters of a session id that ``--close`` takes for the whole id."""


def _session_named(board: RemoteBoard, given: str) -> str:
    """The whole id of the session ``given`` names: itself, or the start (at least
    :data:`MIN_ID_PREFIX` characters) of exactly one id the caller may close that holds a
    lease; the start of several is refused naming them. Anything else goes to the server
    as given (which refuses an unknown id)."""
    if len(given) < MIN_ID_PREFIX:  # no id is that short: it went to the server as one
        raise typer.BadParameter(
            f"got {given!r}: give a session's id, or its first {MIN_ID_PREFIX} characters "
            "or more (sidra leases lists the sessions holding leases)",
            param_hint="'--close'",
        )
    ids = sorted({lease.session_id for lease in board.leases() if lease.session_id})
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) > 1:
        raise typer.BadParameter(
            f"got {given!r}, the start of {len(matches)} sessions' ids ({', '.join(matches)}); "
            "give more of it",
            param_hint="'--close'",
        )
    return matches[0] if matches else given


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
            "the ids you may close (the first 4 or more characters of one do).",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List the tile leases on the board behind a server (exit 1 if it cannot be asked)."""
    server_address(url)  # a board's URL refused before it is opened
    try:
        # HOST:PORT as every --server takes it; a URL names the scheme itself.
        with open_board(server_url(url)) as board:
            assert isinstance(board, RemoteBoard)  # grpc:// and grpcs:// open one
            if close is not None:
                session_id = _session_named(board, close)
                restored = board.close_session(session_id)
                typer.echo(
                    f"closed session {session_id}; tiles restored: {list(restored)}", err=True
                )
            held = board.leases()
    except SidraError as exc:
        typer.echo(f"sidra leases {url}: {exc}{token_hint(exc)}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps([asdict(lease) for lease in held]))
        return
    if not held:
        typer.echo("no tile is leased")
        return
    cells = [
        {
            "tiles": "all" if h.whole_board else ", ".join(map(str, h.tiles)),
            "principal": h.principal, "session label": h.label,
            "expires in, s": f"{h.expires_in_s:.1f}", "session": h.session_id,
        }
        for h in holders(held)
    ]  # fmt: skip
    ids = any(lease.session_id for lease in held)  # only those the caller may close
    columns = ("tiles", "principal", "session label", "expires in, s", *(("session",) * ids))
    console = output_console()
    shown = columns_that_fit(cells, columns, ("expires in, s",), console.width,
                             ["session label", "tiles"])  # fmt: skip
    table = Table(box=box.SIMPLE)
    for column in shown:  # the session id whole: --close takes it
        table.add_column(column, no_wrap=column not in ("session label", "tiles"))
    for line in cells:
        table.add_row(*(line[c] for c in shown))
    console.print(table)
