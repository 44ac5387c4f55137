"""Command-line options several ``sidra`` commands share, and the one place that turns
a training job's option model into typer options.

A ``sidra train`` command names one parameter after each field of its option
model and declares it with :func:`field_option`, so the field's docstring
(with its unit) is the flag's help; :func:`job_options` builds and validates
the model from the parsed parameters and turns a refused value into a
``BadParameter`` naming the flag, the value and what is allowed. Which
parameters are fields and which belong to the command alone is checked by
``tests/test_cli.py``. Every other option's bounds and types are typer's to check
(``typer.Option(min=...)``); :class:`ValueNamingGroup`, the root command's group,
adds the value given to the message typer's check writes, so that every refusal
names the flag, the value and what is allowed.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from typer.core import TyperArgument, TyperGroup

from sidra.cli.completion import board_urls

__all__ = [
    "tile_on_board",
    "BOARD_ENV",
    "AsJson",
    "BoardArg",
    "Priority",
    "SERVER_ENV",
    "SERVER_HELP",
    "TLS_URL_HELP",
    "ValueNamingGroup",
    "field_help",
    "field_option",
    "flags_show_no_value",
    "help_text",
    "job_options",
    "new_file",
    "plain_help_where_cut",
    "reflow_help",
    "server_url",
]

TLS_URL_HELP = (
    "grpcs://HOST:PORT with ?ca=PATH (and &cert=PATH and &key=PATH for a client certificate) "
    "for TLS; the token from SIDRA_TOKEN"
)
"""How a help text names a server reached over TLS: in words short enough for the
narrow help column of an 80-column terminal, which cuts a longer one."""

SERVER_ENV = "SIDRA_SERVER"
"""The environment variable a command that needs a server reads when none is given: a
lab sets it once (``export SIDRA_SERVER=lab-pc:50051``), as it sets SIDRA_TOKEN.
Training and evaluation commands do not read it: their board is named on purpose."""

SERVER_HELP = f"The server: HOST:PORT (as --server takes it), grpc://HOST:PORT, or {TLS_URL_HELP}."
"""Help of a command's argument naming a sidra serve."""

BOARD_ENV = "SIDRA_BOARD"
"""The environment variable the ``sidra board`` commands that act on one board (probe,
read, program, mvm, wear, calibrate, clock, characterize, compare) read when given no
URL: a bench sets it once (``export SIDRA_BOARD=serial:///dev/ttyUSB0``). Training and
evaluation commands do not read it, as they do not read SIDRA_SERVER."""

BoardArg = Annotated[
    str,
    typer.Argument(
        help="Board URL: serial://, pcie://, grpc:// (a served board), emu://...",
        envvar=BOARD_ENV,
        show_default=False,
        autocompletion=board_urls,
    ),
]
"""A ``sidra board`` command's board: its URL, or SIDRA_BOARD's."""


def tile_on_board(tile: int, tile_count: int, option: str = "'--tile'") -> int:
    """``tile`` when a board of ``tile_count`` tiles has it; else BadParameter naming the
    option, the value and the board's tiles (checked once the board is open, before any
    work: the board's own refusal came after the command had begun, as a runtime error)."""
    if not 0 <= tile < tile_count:
        raise typer.BadParameter(
            f"got {tile}; the board has {tile_count} tile(s), 0 .. {tile_count - 1}",
            param_hint=option,
        )
    return tile


def new_file(path: Path | None, option: str = "'--out'") -> None:
    """``option`` names a file that does not exist yet (None: not given), in a folder this
    user can write, checked before any board is opened: one that exists is not written
    over, and a result is not computed to be lost for want of a place."""
    if path is None:
        return
    if path.exists():
        raise typer.BadParameter(f"got {path}, which exists; name a new file", param_hint=option)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise typer.BadParameter(
            f"got {path}; {folder} is not a folder this user can write", param_hint=option
        )


def give_server() -> str:
    """What a command that needs a server and was given none asks for: ``give --server``,
    with the address SIDRA_SERVER names when it is set (this command does not read it:
    its board is named on purpose, but the lab's server is then one option away)."""
    named = os.environ.get(SERVER_ENV, "").strip()
    if not named:
        return "give --server"
    return f"give --server ({SERVER_ENV} is not read here: --server {named})"


def server_address(url: str) -> str:
    """``url`` when it names a server (HOST:PORT, ``grpc://``, ``grpcs://``); a usage error
    naming URL before anything is opened otherwise: a board's URL is a board, not a
    server (``sidra leases socket://...`` used to open the board, and say so after its
    HELLO), and any other scheme is no server address."""
    if "://" not in url or url.startswith(("grpc://", "grpcs://")):
        return url
    from sidra.drivers.url import schemes  # (a board's schemes: read on a refusal only)

    if url.split("://", 1)[0] in schemes():
        why = f"{url} is a board, not a server: give the address sidra serve listens on"
    else:
        why = f"{url} is no server address: give HOST:PORT, grpc://HOST:PORT or grpcs://HOST:PORT"
    raise typer.BadParameter(why, param_hint="URL")


def server_url(address: str) -> str:
    """The board URL of a server named as :data:`SERVER_HELP` allows: HOST:PORT is
    ``grpc://HOST:PORT``, a URL stays as given."""
    return address if "://" in address else f"grpc://{address}"


AsJson = Annotated[
    bool,
    typer.Option(
        "--json", help="Print the result as one JSON document at the end (a list for listings)."
    ),
]


Priority = Annotated[
    int,
    typer.Option(
        "--priority",
        min=-10,
        max=10,
        help="With --queue: the job's place in the queue before turns, -10 .. 10, higher "
        "first; below 0 gives way to everyone's, above 0 needs the admin role.",
    ),
]
"""--priority of a job submitted to a server's queue (sidra train --remote-job --queue,
sidra jobs resume --queue)."""

Options = TypeVar("Options", bound=BaseModel)
N = TypeVar("N", int, float)
"""The number an option takes: int or float."""


_ROLE = re.compile(r":(?:class|func|meth|attr|data|mod):`~?(?:[\w.]+\.)?([\w]+)`")
"""A Sphinx cross-reference in a docstring (``:class:`~sidra.x.Name```): on a terminal,
its last name alone."""


def help_text(docstring: str) -> str:
    """A docstring as help on a terminal: one paragraph, cross-references as plain
    names, ``literals`` without their backquotes."""
    return " ".join(_ROLE.sub(r"\1", docstring).replace("``", "").split())


def field_option(model: type[BaseModel], name: str, *flags: str, **option: Any) -> Any:
    """A typer option for field ``name`` of ``model``, its docstring as the help text
    (``option``: more of ``typer.Option``'s arguments)."""
    number = _number_or_none(model.model_fields[name].annotation)
    if number is not None:  # its docstring says what None does
        option.setdefault("parser", float_or_none if number is float else int_or_none)
    return typer.Option(*flags, help=field_help(model, name), **option)


def field_help(model: type[BaseModel], name: str) -> str:
    """The help of field ``name``'s flag: its docstring as :func:`help_text` shows it,
    another field it names as that field's flag."""
    # Imported here: importing any sidra.drivers module imports the drivers package, numpy
    # and all (~120 ms), which `sidra --help` and completion, importing this module, skip.
    from sidra.drivers.attribute_docs import attribute_doc  # noqa: PLC0415

    doc = _FIELD_LITERAL.sub(lambda m: _as_flag(model, m), attribute_doc(model, name))
    return help_text(doc)


_FIELD_LITERAL = re.compile(r"``(\w+)``")
"""A name in a docstring's literal (``read_repeats``): another field of the option
model, perhaps."""


def _as_flag(model: type[BaseModel], literal: re.Match[str]) -> str:
    """A field of ``model`` named in another's docstring, as the flag a person types
    (``read_repeats`` -> ``--read-repeats``): the help said "None: read_repeats" and
    "see tiles", names the command line has not. Any other literal is left as it is."""
    name = literal[1]
    return f"--{name.replace('_', '-')}" if name in model.model_fields else literal[0]


def _number_or_none(annotation: Any) -> type | None:
    """``float`` or ``int`` for a field that is that number or None (a bound on the
    number, ``Annotated[int, Field(ge=0)]``, included), else None."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    given = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(given) != 1 or len(given) == len(typing.get_args(annotation)):
        return None
    number = typing.get_args(given[0])[0] if typing.get_origin(given[0]) is Annotated else given[0]
    return number if number in (float, int) else None


def float_or_none(given: str | float | None) -> float | None:
    """An option's number, or ``none`` for a setting whose None means something (a
    learning rate kept constant, a gain calibrated): the help said "None keeps it
    constant" and the command line refused None as no number."""
    return given if not isinstance(given, str) else _or_none(given, float, "a number")


def int_or_none(given: str | int | None) -> int | None:
    """An option's whole number, or ``none`` for a setting whose None means something
    (every layer trained, the read repeats of training, a tile placed by the job): the
    help said "None: every layer" and the command line refused none as no integer, so a
    run started ``--like`` a record of ``--trainable 1`` could not train every layer."""
    return given if not isinstance(given, str) else _or_none(given, int, "a whole number")


def _or_none(given: str, parse: Callable[[str], N], expected: str) -> N | None:
    """``given`` as typed on the command line (a default, as declared, is not parsed):
    ``none`` (any case) is None, anything else ``parse``'s number or a usage error."""
    if given.strip().lower() == "none":
        return None
    try:
        return parse(given)
    except ValueError:
        raise typer.BadParameter(f"got {given!r}, expected {expected} or none") from None


def job_options(model: type[Options], ctx: typer.Context, **changes: Any) -> Options:
    """``model`` from the command's parameters named like its fields, with ``changes``
    (values the command derives itself); a refused value raises ``BadParameter``."""
    values = {name: ctx.params[name] for name in model.model_fields} | changes
    try:
        return model(**values)
    except ValidationError as exc:
        raise typer.BadParameter(_explain(exc, ctx)) from exc


def _explain(exc: ValidationError, ctx: typer.Context) -> str:
    """One line per refused value: the flag, the value given and what is allowed."""
    flags = {param.name: param.opts[0] for param in ctx.command.params if param.opts}
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            name = str(error["loc"][0])
            allowed = message[:1].lower() + message[1:]
            lines.append(f"{flags.get(name, name)}: got {error['input']!r}; {allowed}")
        else:  # a check across fields: its message starts with the field's name
            name, _, rest = message.partition(":")
            lines.append(f"{flags.get(name, name)}:{rest}" if rest else message)
    return "\n".join(lines)


class ValueNamingGroup(TyperGroup):
    """The ``sidra`` command group: a value typer refuses while parsing any command's
    options (a bound of ``typer.Option(min=...)``, a type) is reported with the value
    given: "Invalid value for '--batch': got 0; input should be greater than or equal
    to 1" rather than the bound alone. Every command's help is reflowed
    (:func:`reflow_help`) and plain where panels would cut it (:func:`plain_help_where_cut`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reflow_help(self)
        flags_show_no_value(self)
        plain_help_where_cut(self)

    def invoke(self, ctx: Any) -> Any:  # typer's Context (its base class is not public)
        # Subcommands parse their options inside this call, so their refusals pass here.
        try:
            return super().invoke(ctx)
        except typer.BadParameter as exc:
            param, cause = exc.param, exc.__cause__
            # A missing argument (typer's click is its own copy: its MissingParameter is not
            # importable): click names an option's variable ("env var: ...") but not an
            # argument's, which a command taking SIDRA_SERVER then never mentions.
            missing = type(exc).__name__ == "MissingParameter"
            if missing and isinstance(param, TyperArgument) and param.envvar and not exc.message:
                exc.message = f"Name it, or set {param.envvar}."
            # Typer's own check names its parameter; job_options' message is complete.
            if exc.param is not None and isinstance(cause, ValidationError) and cause.errors():
                error = cause.errors()[0]
                given = error["input"]  # as typed: a string, shown without quotes
                given = given if isinstance(given, str) else repr(given)
                message = str(error["msg"]).removeprefix("Value error, ")
                exc.message = f"got {given}; {message[:1].lower()}{message[1:]}"
                exc.message += _once_per_value(param, given)
            raise


def _once_per_value(param: Any, given: str) -> str:
    """How to give several values to an option that takes a list (``--hidden``,
    ``--tiles``) when they came in one, separated by commas or spaces: the refusal said
    only that ``32,16`` is no integer, not that the option is given once per value."""
    values = [v for v in re.split(r"[,\s]+", given) if v]
    if not getattr(param, "multiple", False) or len(values) < 2 or not param.opts:
        return ""
    flag = max(param.opts, key=len)  # --tiles rather than its alias --tile
    return f"; give {flag} once per value: " + " ".join(f"{flag} {v}" for v in values)


def reflow_help(command: Any) -> None:
    """Joins the lines of each paragraph of ``command``'s help and its subcommands' into
    one, for the terminal to wrap: typer's help keeps a docstring's line breaks after its
    first paragraph, and on a terminal narrower than the source's lines each of them
    then wraps into a stub of a word or two. A paragraph of list items (a line opening
    with ``- ``) keeps its lines."""
    if command.help:
        paragraphs = inspect.cleandoc(command.help).split("\n\n")
        command.help = "\n\n".join(
            p if re.search(r"^\s*- ", p, re.MULTILINE) else " ".join(p.split()) for p in paragraphs
        )
    for sub in getattr(command, "commands", {}).values():
        reflow_help(sub)


def flags_show_no_value(command: Any) -> None:
    """Lists ``command``'s flags and its subcommands' (``--json``, ``--help``) without a
    value: typer's panels give each flag the type ``<bool>``, which reads as if ``--json
    true`` were asked for (an empty metavar is typer's way to show none). Done as the
    parameters are listed: ``--help`` is made then, and typer adds the top group's
    ``--install-completion`` after the group is built."""
    listed = command.get_params

    def get_params(ctx: Any) -> Any:
        params = listed(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    command.get_params = get_params
    for sub in getattr(command, "commands", {}).values():
        flags_show_no_value(sub)


def plain_help_where_cut(command: Any) -> None:
    """Makes ``command``'s help and its subcommands' fall back to click's plain two
    columns where typer's panels would cut a word short on this terminal. Typer gives an
    option's name, its ``--no-`` form, its type and its help a column each; on 80
    columns a long name then shows as ``--eval-read-repe…``, a default URL as
    ``emu://?pr…``. The panels are drawn once to a buffer to see (an ellipsis the help
    text does not hold itself is a cut), then again for real or replaced by the plain
    text, in which a ``\\[`` that escaped a bracket from rich's markup is a ``[``."""
    panels = command.format_help
    texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
    own = sum(text.count("…") for text in texts)

    def format_help(ctx: Any, formatter: Any) -> None:
        trial = io.StringIO()
        with contextlib.redirect_stdout(trial):  # rich reads the width from the terminal
            panels(ctx, formatter)
        if trial.getvalue().count("…") <= own:
            panels(ctx, formatter)
            return
        mode, command.rich_markup_mode = command.rich_markup_mode, None
        try:
            type(command).format_help(command, ctx, formatter)
        finally:
            command.rich_markup_mode = mode
        formatter.buffer[:] = [piece.replace("\\[", "[") for piece in formatter.buffer]

    command.format_help = format_help
    for sub in getattr(command, "commands", {}).values():
        plain_help_where_cut(sub)
