"""The files ``sidra state`` and ``sidra token`` share with ``sidra serve``, found as the
server finds them.

A server started with ``--config /etc/sidra/serve.toml`` keeps its store where that
file's ``[state] path`` says; ``sidra state history`` reading the user's default store
instead would show another board's history without a word. So the commands that work on
a server's files take the same ``--config`` (or ``SIDRA_CONFIG``) and the same
``SIDRA_STATE__PATH`` / ``SIDRA_AUTH__TOKENS_FILE``; a file named on the line
(``--store``, ``--tokens-file``) wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidra.server.settings import ConfigError, ServedFiles, served_files

__all__ = ["ServeConfig", "store_path", "tokens_file"]

ServeConfig = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The settings file of the sidra serve whose files these are (default: "
        "SIDRA_CONFIG): its \\[state] path and \\[auth] tokens_file.",
        show_default=False,
    ),
]


def _files(config: Path | None) -> ServedFiles:
    try:
        return served_files(config)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config / SIDRA_CONFIG") from None


def store_path(given: Path | None, config: Path | None) -> Path:
    """``--store`` if given, else the store a ``sidra serve`` with these settings uses."""
    return given if given is not None else _files(config).store_path


def tokens_file(given: Path | None, config: Path | None) -> Path:
    """``--tokens-file`` if given, else the one these settings name; refused when none does."""
    if given is not None:
        return given
    found = _files(config).tokens_file
    if found is None:
        raise typer.BadParameter(
            "not given, and no setting names one (SIDRA_AUTH__TOKENS_FILE, or [auth] "
            "tokens_file in the --config or SIDRA_CONFIG file)",
            param_hint="--tokens-file",
        )
    return found
