"""``sidra token``: principals and bearer tokens in a service's tokens file.

``add`` prints the new token once, on stdout, and stores only its SHA-256:
whoever loses it gets a new one (``add --replace``), nobody can read it back.
A running ``sidra serve`` sees the change at its next call.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from sidra.cli import serve_files
from sidra.cli.options import AsJson
from sidra.cli.serve_files import ServeConfig
from sidra.cli.texts import duration_text
from sidra.server.security import Role, add_principal, read_tokens, remove_principal
from sidra.server.security.tokens import TokenEntry

__all__ = ["token_app"]

token_app = typer.Typer(no_args_is_help=True, help="Principals and bearer tokens of sidra serve.")

TokensFileOption = Annotated[
    Path | None,
    typer.Option(
        "--tokens-file",
        help="The tokens file; default: the one sidra serve uses (SIDRA_AUTH__TOKENS_FILE, "
        "\\[auth] tokens_file of --config).",
        show_default=False,
    ),
]
ROLES = ", ".join(role.label for role in Role)


@token_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Principal name (shown in logs and history).")],
    role: Annotated[str, typer.Option(help=f"Role: {ROLES}; each includes those before it.")],
    tokens_file: TokensFileOption = None,
    config: ServeConfig = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Give an existing principal a new token and role.")
    ] = False,
    expires_in_days: Annotated[
        float | None,
        typer.Option(
            "--expires-in-days",
            help="Refuse the token this many days from now (a student's term, a contractor's "
            "visit); without it the token does not expire.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Add a principal with a new random token; print the token (once: only its hash is kept)."""
    tokens_file = serve_files.tokens_file(tokens_file, config)
    if expires_in_days is not None and not 0 < expires_in_days <= MAX_DAYS:
        raise typer.BadParameter(
            f"got {expires_in_days:g}, expected more than 0 and at most {MAX_DAYS} days",
            param_hint="'--expires-in-days'",
        )
    valid_for = None if expires_in_days is None else timedelta(days=expires_in_days)
    try:
        token = add_principal(
            tokens_file, name, Role.from_label(role), replace=replace, valid_for=valid_for
        )
    except (OSError, ValueError) as exc:
        typer.echo(f"sidra token add: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(token)
    entry = read_tokens(tokens_file)[name]
    until = "" if entry.expires_utc is None else f", valid until {_utc(entry.expires_utc)}"
    typer.echo(
        f"{name} ({role}) added to {tokens_file}{until}; the token above is shown only this once",
        err=True,
    )


@token_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    tokens_file: TokensFileOption = None,
    config: ServeConfig = None,
) -> None:
    """Remove a principal: its token stops working at the service's next call."""
    tokens_file = serve_files.tokens_file(tokens_file, config)
    try:
        left = remove_principal(tokens_file, name)
    except (OSError, ValueError) as exc:
        typer.echo(f"sidra token remove: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name} removed from {tokens_file}", err=True)
    if not left:
        typer.echo(
            f"warning: {tokens_file} names no principal now: a sidra serve using it refuses "
            "every call that needs a token (and will not start with it) until one is added "
            "(sidra token add NAME --role ROLE)",
            err=True,
        )


@token_app.command("list")
def list_principals(
    tokens_file: TokensFileOption = None, config: ServeConfig = None, as_json: AsJson = False
) -> None:
    """Print each principal, its role and its token's dates (tokens cannot be shown).

    A line each: name, role, when the token was made, when it expires ("never", or
    EXPIRED once it is refused)."""
    tokens_file = serve_files.tokens_file(tokens_file, config)
    try:
        entries = read_tokens(tokens_file)
    except (OSError, ValueError) as exc:
        typer.echo(f"sidra token list: {exc}", err=True)
        raise typer.Exit(1) from None
    now = datetime.now(UTC)
    if as_json:
        typer.echo(json.dumps([_as_dict(entry, now) for _, entry in sorted(entries.items())]))
        return
    for name, entry in sorted(entries.items()):
        made = "made ?" if entry.created_utc is None else f"made {_utc(entry.created_utc)}"
        typer.echo(f"{name}\t{entry.principal.role.label}\t{made}\t{_expiry(entry, now)}")


MAX_DAYS = 36_600
"""Longest --expires-in-days: a century (past it, leave the option out)."""


def _utc(when: datetime) -> str:
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _expiry(entry: TokenEntry, now: datetime) -> str:
    if entry.expires_utc is None:
        return "expires never"
    if entry.expired(now):
        return f"EXPIRED {_utc(entry.expires_utc)}"
    left_s = (entry.expires_utc - now).total_seconds()
    left = duration_text(left_s) if left_s < 86_400 else f"{left_s / 86_400:.1f} days"
    return f"expires {_utc(entry.expires_utc)} (in {left})"


def _as_dict(entry: TokenEntry, now: datetime) -> dict[str, object]:
    return {
        "principal": entry.principal.name,
        "role": entry.principal.role.label,
        "created_utc": None if entry.created_utc is None else entry.created_utc.isoformat(),
        "expires_utc": None if entry.expires_utc is None else entry.expires_utc.isoformat(),
        "expired": entry.expired(now),
    }
