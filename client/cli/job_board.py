"""The board a command runs on, from a URL or a server, and what a run over a server
holds: its tiles in a session of its own, leased as it uses them.

Every command that opens a board (the training runs, ``sidra model``, ``sidra board
read | program | mvm | wear | calibrate``) opens it here, so a refused value is a usage
error (exit 2) and a refusal for who or when, or a board gone, ends the command with the
error's class and message (exit 1) the same way everywhere. It imports no training
code: the commands that only read or write a board start without it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping

import typer

from sidra.cli.options import SERVER_ENV
from sidra.cli.whoami import expiry_warning, token_hint
from sidra.client.remote import RemoteBoard, connect_server
from sidra.client.session import Session
from sidra.drivers import Board, InvalidArgument, OutOfRange, SidraError, open_board

__all__ = ["HOLDING_TTL_S", "job_board"]


@contextlib.contextmanager
def job_board(
    url: str,
    server: str | None,
    command: str = "sidra train",
    *,
    holding: str | None = None,
    options: Mapping[str, str] | None = None,
) -> Iterator[Board]:
    """The board a job runs on. A value the board or the job refuses (an argument error,
    a checkpoint it cannot read) is a usage error (exit 2); a refusal for who or when (a
    lease another session holds, a role, a limit) or a board gone ends the command with
    the error's class and message after ``command`` (exit 1): the command line was
    right.

    ``holding``: on a served board (``server``, or a ``grpc://`` URL), the job runs in a
    session of that label which leases each tile the first time the job uses it (nobody
    else writes them until the job ends; what a job that dies leaves perturbed is
    restored when its session expires); a tile another session leases stops the job
    naming the holder.

    ``options``: the command's option for a request field the board may refuse (the
    whole field, else its first part: ``{"voltages": "'--inputs'"}``), named as the usage
    error's option: the command line says ``--inputs``, not the request's ``voltages``."""
    if holding is not None and server is None:  # a run (training, evaluation), not a bench op
        _note_server_not_used(url, command)
    try:
        with connect_server(server) if server is not None else open_board(url) as board:
            if holding is None or not isinstance(board, RemoteBoard):
                yield board
            else:
                _warn_of_expiry(board, command)
                session = _holding_session(board, holding)
                try:
                    yield board
                finally:
                    _close_quietly(session, command)
    except SidraError as exc:
        if isinstance(exc, InvalidArgument):
            named = options or {}
            hint = named.get(exc.field, named.get(exc.field.split(".", 1)[0].split("[", 1)[0]))
            raise typer.BadParameter(str(exc), param_hint=hint) from exc
        typer.echo(f"{command}: {type(exc).__name__}: {exc}{token_hint(exc)}", err=True)
        raise typer.Exit(1) from exc
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def _note_server_not_used(url: str, command: str) -> None:
    """One line on stderr when a run goes to an emulator in this process while
    SIDRA_SERVER names a server: the lab's other commands read it, this one does not (its
    board is named on purpose), and a run meant for the lab's board would otherwise go
    on unnoticed on the emulator."""
    named = os.environ.get(SERVER_ENV, "").strip()
    if named and url.startswith("emu:"):
        typer.echo(
            f"{command}: runs on {url} in this process; {SERVER_ENV} is not read here "
            f"(--server {named} runs it on that server's board)",
            err=True,
        )


def _warn_of_expiry(board: RemoteBoard, command: str) -> None:
    """Says on stderr, before a run starts, that the caller's token expires soon: a long
    run would be refused at its first call past the expiry."""
    try:
        caller = board.caller()
    except SidraError:  # a server older than GetCaller: nothing to say
        return
    warning = expiry_warning(caller, time.time())
    if warning:
        typer.echo(f"{command}: {warning}", err=True)


HOLDING_TTL_S = 120.0
"""Time to live of the session a run over a server holds its tiles in, s: a run stalled
longer (a suspended process, a laptop asleep) loses its tiles and stops, its steps kept;
a dead run's tiles are free again after as long."""


def _holding_session(board: RemoteBoard, label: str) -> Session:
    """A session of ``label`` leasing tiles as used, living :data:`HOLDING_TTL_S` (or the
    server's default, when the server allows less)."""
    try:
        return board.session(HOLDING_TTL_S, label=label, lease_as_used=True)
    except OutOfRange as exc:  # [leases] max_ttl_s below it
        if exc.field != "ttl_s":
            raise
        return board.session(label=label, lease_as_used=True)


def _close_quietly(session: Session, command: str) -> None:
    """Closes the session a job held its tiles in. A server gone or restarted by then
    must not cost the job its outcome (the record to save, the error that says how to
    go on): the session's leases end with its time to live anyway."""
    try:
        session.close()
    except SidraError as exc:
        typer.echo(
            f"{command}: the session holding the run's tiles was not closed ({exc}); its "
            "leases end when it expires",
            err=True,
        )
