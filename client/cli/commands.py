"""The ``sidra`` command groups, each imported when a command line first names it.

Building every group at start made every ``sidra`` command, and every shell completion
(each TAB runs ``sidra``), import the server, the emulator and the training package
first: about a second before anything happened. The top group here knows its groups
by name and loads one (its module, then typer's click group) only when it is asked for
it: ``sidra jobs list`` imports the jobs commands and what they use, nothing else. A
listing of the commands (``sidra --help``, the completions of ``sidra <TAB>``) shows
each one's summary, declared here with its loader, and loads none of them (a test
holds each summary to the loaded command's help).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import typer
import typer.main
from typer.core import TyperCommand
from typer.models import CommandInfo

from sidra.cli.options import (
    ValueNamingGroup,
    flags_show_no_value,
    plain_help_where_cut,
    reflow_help,
)

__all__ = [
    "LAZY_COMMANDS",
    "LazyCommands",
    "Loader",
    "command_loader",
    "lazy_app",
    "whole_command",
]


_DEFAULTS = typer.Typer(add_completion=False)
"""Where a command function gets the settings typer gives an app's commands by default
(the ``sidra`` app sets none of its own)."""


class Loader:
    """How a lazy group gets one of its commands (calling it loads and builds it), and
    what a listing of the group says of it: ``summary``, the first paragraph of its
    help."""

    def __init__(self, load: Callable[[], Any], summary: str) -> None:
        self.load, self.summary = load, summary

    def __call__(self) -> Any:
        return self.load()


def _group(module: str, attribute: str, summary: str, *extra: tuple[str, str, str]) -> Loader:
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

    return Loader(load, summary)


def command_loader(module: str, attribute: str, summary: str) -> Loader:
    """A loader of the command function ``attribute`` of ``module`` as a click command."""

    def load() -> Any:
        function = getattr(importlib.import_module(module), attribute)
        return typer.main.get_command_from_info(
            CommandInfo(callback=function),
            pretty_exceptions_short=_DEFAULTS.pretty_exceptions_short,
            rich_markup_mode=_DEFAULTS.rich_markup_mode,
        )

    return Loader(load, summary)


LAZY_COMMANDS: dict[str, Loader] = {
    "leases": command_loader(
        "sidra.cli.leases", "leases",
        "List the tile leases on the board behind a server (exit 1 if it cannot be asked)."),
    "status": command_loader(
        "sidra.cli.status", "status",
        "What served boards are doing now: health, board, totals, leases, jobs, deployments."),
    "whoami": command_loader(
        "sidra.cli.whoami", "whoami",
        "Who a server takes this client for: principal, role, token expiry, connection."),
    "bench": _group(
        "sidra.cli.bench", "bench_app", "Benchmarks; ratios are measured in one run.",
        ("serial", "sidra.cli.bench_serial", "serial_command")),
    "board": _group(
        "sidra.cli.board_group", "board_app",
        "Boards by URL: serve an emulated one (serial, TCP, PCIe), find, probe; read, "
        "program, drive, wear, calibrate, clock; characterize, compare."),
    "jobs": _group(
        "sidra.cli.jobs", "jobs_app", "Training jobs running inside a server, next to the board.",
        ("datasets", "sidra.cli.job_datasets", "datasets_app")),
    "model": _group(
        "sidra.cli.model_group", "model_app",
        "Trained networks (model.npz in a run's record): show one, evaluate it on a board, "
        "classify new samples there, keep it deployed on a served board by name."),
    "runs": _group(
        "sidra.cli.runs", "runs_app",
        "Training runs kept on disk (runs/ or --out): list, group by seed, show, compare."),
    "state": _group(
        "sidra.cli.state", "state_app",
        "The service's durable board state: show, history, usage, export, check, backup, "
        "restore, compact."),
    "token": _group("sidra.cli.token", "token_app", "Principals and bearer tokens of sidra serve."),
    "train": _group("sidra.cli.train", "train_app", "Train with the board in the loop."),
}  # fmt: skip
"""The commands and groups after ``serve`` and ``demo`` (sidra.cli.main's own), in the
order help lists them, each with its summary: each loaded once, by the first command
line that names it."""

_loaded: dict[tuple[int, str], Any] = {}


class LazyCommands(ValueNamingGroup):
    """A group whose commands in :attr:`lazy` are each loaded when a command line names
    it (help reflowed and made plain where cut, as every command's): the ``sidra`` group
    (:data:`LAZY_COMMANDS`), and groups whose commands need very different imports
    (``sidra model``: listing a server's deployments needs none of the training code that
    evaluating a model does)."""

    lazy: ClassVar[Mapping[str, Loader]] = LAZY_COMMANDS
    """Each command's name and loader, in the order help lists them."""

    _listing = False
    """True while the group lists its commands (its help, a shell completion): a command
    not loaded yet is shown by its summary, not loaded."""

    def list_commands(self, ctx: Any) -> list[str]:
        own = [name for name in super().list_commands(ctx) if name not in self.lazy]
        return [*own, *self.lazy]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            if self._listing:
                return TyperCommand(cmd_name, help=self.lazy[cmd_name].summary)  # never run
            self.add_command(_load(self.lazy, cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._listing_only():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> Any:
        with self._listing_only():
            return super().shell_complete(ctx, incomplete)

    @contextlib.contextmanager
    def _listing_only(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            # A name no command has: typer suggests the nearest of the commands the group
            # holds ("Did you mean 'status'?"), so it holds them all first (a typo's cost).
            for name in self.lazy:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


def lazy_app(commands: Mapping[str, Loader], help: str) -> typer.Typer:
    """A command group (``sidra model``, ``sidra board``) of ``commands``, each loaded
    when a command line names it, listed in their order."""
    group = type("LazyGroup", (LazyCommands,), {"lazy": commands})
    return typer.Typer(cls=group, no_args_is_help=True, help=help)


def _load(lazy: Mapping[str, Loader], name: str) -> Any:
    """The command ``name`` of ``lazy``, built once."""
    key = (id(lazy), name)
    if key not in _loaded:
        command = lazy[name]()
        command.name = name
        reflow_help(command)
        flags_show_no_value(command)
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
