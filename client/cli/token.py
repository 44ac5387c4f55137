"""``sidra token``: principals and bearer tokens in a service's tokens file.

``add`` prints the new token once, on stdout, and stores only its SHA-256:
whoever loses it gets a new one (``add --replace``), nobody can read it back.
A running ``sidra serve`` sees the change at its next call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidra.server.security import Role, add_principal, read_tokens, remove_principal

__all__ = ["token_app"]

token_app = typer.Typer(no_args_is_help=True, help="Principals and bearer tokens of sidra serve.")

TokensFileOption = Annotated[
    Path, typer.Option("--tokens-file", help="The tokens file (auth.tokens_file of sidra serve).")
]
ROLES = ", ".join(role.label for role in Role)


@token_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Principal name (shown in logs and history).")],
    role: Annotated[str, typer.Option(help=f"Role: {ROLES}; each includes those before it.")],
    tokens_file: TokensFileOption,
    replace: Annotated[
        bool, typer.Option("--replace", help="Give an existing principal a new token and role.")
    ] = False,
) -> None:
    """Add a principal with a new random token; print the token (once: only its hash is kept)."""
    try:
        token = add_principal(tokens_file, name, Role.from_label(role), replace=replace)
    except (OSError, ValueError) as exc:
        typer.echo(f"sidra token add: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(token)
    typer.echo(
        f"{name} ({role}) added to {tokens_file}; the token above is shown only this once",
        err=True,
    )


@token_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="Principal name.")],
    tokens_file: TokensFileOption,
) -> None:
    """Remove a principal: its token stops working at the service's next call."""
    try:
        remove_principal(tokens_file, name)
    except (OSError, ValueError) as exc:
        typer.echo(f"sidra token remove: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name} removed from {tokens_file}", err=True)


@token_app.command("list")
def list_principals(tokens_file: TokensFileOption) -> None:
    """Print each principal and its role (tokens cannot be shown: only hashes are kept)."""
    try:
        entries = read_tokens(tokens_file)
    except (OSError, ValueError) as exc:
        typer.echo(f"sidra token list: {exc}", err=True)
        raise typer.Exit(1) from None
    for name, entry in sorted(entries.items()):
        typer.echo(f"{name}\t{entry.principal.role.label}")
