"""The files ``sidra state`` and ``sidra token`` share with ``sidra serve``, found as the
server finds them.

A server started with ``--config /etc/sidra/serve.toml`` keeps its store where that
file's ``[state] path`` says; ``sidra state history`` reading the user's default store
instead would show another board's history without a word. So the commands that work on
a server's files take the same ``--config`` (or ``SIDRA_CONFIG``) and the same
``SIDRA_STATE__PATH`` / ``SIDRA_AUTH__TOKENS_FILE``; a file named on the line
(``--store``, ``--tokens-file``) wins. An error about the store names whichever of
these chose it, and the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from sidra.server.settings import ConfigError, ServedFiles, served_files

__all__ = ["ServeConfig", "StorePlace", "store_place", "tokens_file"]

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


@dataclass(frozen=True, slots=True)
class StorePlace:
    """The state store's file and what named it, so that an error about the store blames
    the setting that chose it: a store named by SIDRA_STATE__PATH or a settings file
    said "Invalid value for --store" to an admin who had given no --store."""

    path: Path
    named_by: str
    """``--store``, the environment variable, ``[state] path of FILE (--config)`` (or
    ``(SIDRA_CONFIG)``), or the default's own words."""

    def refused(self, message: str) -> typer.BadParameter:
        """``message`` about the store as a usage error under :attr:`named_by`, with the
        store's path (the store's own errors name it; one that does not gets it first)."""
        if str(self.path) not in message:
            message = f"state store {self.path}: {message}"
        return typer.BadParameter(message, param_hint=self.named_by)


DEFAULT_STORE = "the default store (no --store, SIDRA_STATE__PATH or [state] path names one)"
"""What names the store when no setting does, in an error about it."""


def store_place(given: Path | None, config: Path | None) -> StorePlace:
    """``--store`` if given, else the store a ``sidra serve`` with these settings uses;
    with what named it."""
    if given is not None:
        return StorePlace(given, "--store")
    files = _files(config)
    setting = files.store_path_setting
    if setting is None:
        return StorePlace(files.store_path, DEFAULT_STORE)
    if setting.startswith("[state]"):  # the file came from the option or the variable
        setting += " (--config)" if config is not None else " (SIDRA_CONFIG)"
    return StorePlace(files.store_path, setting)


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
