"""``sidra whoami SERVER``: who a server takes this client for (SessionService.GetCaller):
the principal its token names, the role, when the token expires, the connection as the
server sees it, and the principal's sessions. ``sidra status`` shows the same line."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from sidra.cli.options import SERVER_ENV, SERVER_HELP, AsJson, server_address, server_url
from sidra.cli.texts import duration_text
from sidra.client import Caller, RemoteBoard, Unauthenticated
from sidra.client.credentials import TOKEN_ENV, token_from_env
from sidra.drivers import SidraError, open_board
from sidra.server.security.tokens import EXPIRY_WARNING

__all__ = ["caller_text", "expiry_warning", "token_hint", "whoami"]


def token_hint(exc: BaseException) -> str:
    """What a command adds to ``exc``'s message when a server refused it for want of a
    token while ``SIDRA_TOKEN`` is unset: where every ``sidra`` command takes its token
    from (the server's message speaks of gRPC metadata, which a command line never
    sets itself); "" otherwise."""
    return missing_token_hint() if isinstance(exc, Unauthenticated) else ""


def missing_token_hint() -> str:
    """What :func:`token_hint` adds to a refusal for want of a token: where to set it
    while ``SIDRA_TOKEN`` is unset; "" when it is set (the token itself was refused)."""
    if token_from_env() is None:
        return f" ({TOKEN_ENV} is not set: export {TOKEN_ENV}=TOKEN, as sidra token add printed it)"
    return ""


def _when(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(unix_s))


def _days(seconds: float) -> str:
    """A token's time left: in days from a day on, in h, min or s before (a token 40 s
    from expiry read "0.0 days")."""
    days = seconds / 86_400
    if days < 1:
        return duration_text(seconds)
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


def caller_text(caller: Caller, now_unix_s: float) -> str:
    """The caller in a line: principal and role, and its token's expiry."""
    if not caller.authenticated:
        return f"{caller.principal} ({caller.role}): the server checks no tokens"
    text = f"{caller.principal} ({caller.role})"
    left = caller.expires_in_s(now_unix_s)
    if left is None:
        return f"{text}, token does not expire"
    assert caller.token_expires_unix_s is not None
    return f"{text}, token expires {_when(caller.token_expires_unix_s)} (in {_days(left)})"


def expiry_warning(caller: Caller, now_unix_s: float) -> str | None:
    """What to do about a token that expires within the service's warning time (the
    days before expiry its log names the principal: 14); None otherwise."""
    left = caller.expires_in_s(now_unix_s)
    if left is None or left >= EXPIRY_WARNING.total_seconds():
        return None
    return (
        f"the token of {caller.principal!r} expires in {_days(left)}: ask the server's admin "
        f"for a new one (sidra token add {caller.principal} --replace) before it does"
    )


def whoami(
    url: Annotated[str, typer.Argument(help=SERVER_HELP, show_default=False, envvar=SERVER_ENV)],
    as_json: AsJson = False,
) -> None:
    """Who a server takes this client for: principal, role, token expiry, connection.

    The token is SIDRA_TOKEN's, as for every command that reaches a server. Exit 1 when
    the server refuses the call (no token, an unknown or expired one: the error says
    which) or cannot be reached; a token expiring within 14 days is warned of on
    stderr."""
    server_address(url)
    now = time.time()
    try:
        with open_board(server_url(url)) as board:
            assert isinstance(board, RemoteBoard)  # grpc:// and grpcs:// open one
            caller = board.caller()
    except SidraError as exc:
        typer.echo(f"sidra whoami {url}: {type(exc).__name__}: {exc}{token_hint(exc)}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(caller.as_dict()))
    else:
        typer.echo(caller_text(caller, now))
        typer.echo(f"connection: {caller.peer}" + (
            " (on the server's host: shared memory offered)"
            if caller.shared_memory_offered else ""
        ))  # fmt: skip
        typer.echo(f"sessions: {caller.open_sessions} open of at most {caller.max_sessions}")
        if caller.token_created_unix_s is not None:
            typer.echo(f"token made: {_when(caller.token_created_unix_s)}")
    warning = expiry_warning(caller, now)
    if warning:
        typer.echo(f"sidra whoami: {warning}", err=True)
