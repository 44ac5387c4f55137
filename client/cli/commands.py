"""The ``sidra`` command groups, each imported when a command line first names it.

Building every group at start made every ``sidra`` command, and every shell completion
(each TAB runs ``sidra``), import the server, the emulator and the training package
first: about a second before anything happened. The top group here knows its groups
by name and loads one (its module, then typer's click group) only when it is asked for
it: ``sidra jobs list`` imports the jobs commands and what they use, nothing else. A
listing of every command (``sidra --help``) loads them all, as it must to show their
help.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import typer
import typer.main
from typer.models import CommandInfo

from sidra.cli.options import ValueNamingGroup, plain_help_where_cut, reflow_help

__all__ = ["LAZY_COMMANDS", "LazyCommands", "command_loader", "lazy_app", "whole_command"]


_DEFAULTS = typer.Typer(add_completion=False)
"""Where a command function gets the settings typer gives an app's commands by default
(the ``sidra`` app sets none of its own)."""


def _group(module: str, attribute: str, *extra: tuple[str, str, str]) -> Callable[[], Any]:
    """A loader of the typer app ``attribute`` of ``module`` as a click group, given the
    ``extra`` commands ``(name, module, attribute)`` it takes from other modules (a
    typer app of its own, or a command function)."""

    def load() -> Any:
        sub_app: typer.Typer = getattr(importlib.import_module(module), attribute)
        for name, where, what in extra:
            found = getattr(importlib.import_module(where), what)
            if isinstance(found, typer.Typer):
                sub_app.add_typer(found, name=name)
            else:
                sub_app.command(name)(found)
        return typer.main.get_group(sub_app)

    return load


def command_loader(module: str, attribute: str) -> Callable[[], Any]:
    """A loader of the command function ``attribute`` of ``module`` as a click command."""

    def load() -> Any:
        function = getattr(importlib.import_module(module), attribute)
        return typer.main.get_command_from_info(
            CommandInfo(callback=function),
            pretty_exceptions_short=_DEFAULTS.pretty_exceptions_short,
            rich_markup_mode=_DEFAULTS.rich_markup_mode,
        )

    return load


LAZY_COMMANDS: dict[str, Callable[[], Any]] = {
    "leases": command_loader("sidra.cli.leases", "leases"),
    "status": command_loader("sidra.cli.status", "status"),
    "whoami": command_loader("sidra.cli.whoami", "whoami"),
    "bench": _group("sidra.cli.bench", "bench_app",
                    ("serial", "sidra.cli.bench_serial", "serial_command")),
    "board": _group("sidra.cli.board_group", "board_app"),
    "jobs": _group("sidra.cli.jobs", "jobs_app",
                   ("datasets", "sidra.cli.job_datasets", "datasets_app")),
    "model": _group("sidra.cli.model_group", "model_app"),
    "runs": _group("sidra.cli.runs", "runs_app"),
    "state": _group("sidra.cli.state", "state_app"),
    "token": _group("sidra.cli.token", "token_app"),
    "train": _group("sidra.cli.train", "train_app"),
}  # fmt: skip
"""The commands and groups after ``serve`` and ``demo`` (sidra.cli.main's own), in the
order help lists them: each loaded once, by the first command line that names it."""

_loaded: dict[tuple[int, str], Any] = {}


class LazyCommands(ValueNamingGroup):
    """A group whose commands in :attr:`lazy` are each loaded when a command line names
    it (help reflowed and made plain where cut, as every command's): the ``sidra`` group
    (:data:`LAZY_COMMANDS`), and groups whose commands need very different imports
    (``sidra model``: listing a server's deployments needs none of the training code that
    evaluating a model does)."""

    lazy: ClassVar[Mapping[str, Callable[[], Any]]] = LAZY_COMMANDS
    """Each command's name and loader, in the order help lists them."""

    def list_commands(self, ctx: Any) -> list[str]:
        own = [name for name in super().list_commands(ctx) if name not in self.lazy]
        return [*own, *self.lazy]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(_load(self.lazy, cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            # A name no command has: typer suggests the nearest of the commands the group
            # holds ("Did you mean 'status'?"), so it holds them all first (a typo's cost).
            for name in self.lazy:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def lazy_app(commands: Mapping[str, Callable[[], Any]], help: str) -> typer.Typer:
    """A command group (``sidra model``, ``sidra board``) of ``commands``, each loaded
    when a command line names it, listed in their order."""
    group = type("LazyGroup", (LazyCommands,), {"lazy": commands})
    return typer.Typer(cls=group, no_args_is_help=True, help=help)


def _load(lazy: Mapping[str, Callable[[], Any]], name: str) -> Any:
    """The command ``name`` of ``lazy``, built once."""
    key = (id(lazy), name)
    if key not in _loaded:
        command = lazy[name]()
        command.name = name
        reflow_help(command)
        plain_help_where_cut(command)
        _loaded[key] = command
    return _loaded[key]


def whole_command(app: typer.Typer) -> Any:
    """``app`` as a click group with every command loaded, its groups' too, for what walks
    them all (the tests that check every command's help and every documented command
    line)."""
    group = typer.main.get_group(app)
    _load_every(group)
    return group


def _load_every(group: Any) -> None:
    context = typer.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if hasattr(command, "list_commands"):
            _load_every(command)
