"""``sidra train ... --like RECORD``: an earlier run's settings as the defaults of this one.

A run record's ``settings.json`` holds every option the run used (derived ones too: the
step sizes SPSA calibrated, the checkpoint interval made from ``--steps``) and its data
set. Given ``--like``, each of them becomes the default of the option of that name, so
the command line says only what changes: ``sidra train spsa --like runs/spsa-a --seed 3``
is run ``spsa-a`` again with another seed. Where the run was made is not taken: the
board, the server, the record folder and how the run is kept are this command's own.

It works through click's ``default_map``: the option is eager, so its callback fills the
map before any other option is read, and an option given on the command line wins over
the map as it wins over any default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["Like", "NOT_TAKEN", "settings_of"]

NOT_TAKEN = frozenset(
    {"board", "server", "out", "resume", "remote_job", "queue", "priority", "as_json",
     "like", "checkpoint_every", "checkpoint_every_s"}
)  # fmt: skip
"""Parameters a record's settings never set: where and how this run is made and kept."""


def settings_of(record: Path) -> dict[str, Any]:
    """The settings of the run record ``record`` (its folder, or its settings.json);
    BadParameter naming what is wrong with it."""
    path = record / "settings.json" if record.is_dir() else record
    its = "its settings.json " if record.is_dir() else ""
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        missing = "no settings.json in that folder" if record.is_dir() else "no such file"
        raise typer.BadParameter(
            f"got {record}: {missing}, expected a run record (the --out folder of a sidra "
            "train run) or its settings.json"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"got {record}: {its}cannot be read as JSON ({exc})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("job"), str):
        raise typer.BadParameter(
            f"got {record}: {its}names no job, expected the settings.json a sidra train run writes"
        )
    return settings


def _take(ctx: typer.Context, value: Path | None) -> Path | None:
    """Fills ``ctx.default_map`` with the record's settings for this command's options."""
    if value is None:
        return None
    settings = settings_of(value)
    command = ctx.command.name or ""
    job = str(settings["job"])
    if job != command and not job.startswith(f"{command}-"):  # pat-in-silico: a pat run
        raise typer.BadParameter(
            f"got {value}: a record of a {job!r} run; sidra train {command} takes the "
            f"settings of a {command!r} run"
        )
    names = {param.name for param in ctx.command.params} - NOT_TAKEN
    taken = {name: settings[name] for name in names if name in settings}
    ctx.default_map = {**(ctx.default_map or {}), **taken}
    return value


Like = Annotated[
    Path | None,
    typer.Option(
        "--like",
        metavar="RECORD",
        is_eager=True,
        callback=_take,
        help="Take every option not given here from this earlier run's record (its --out "
        "folder, or its settings.json), data set included; the board, server and --out "
        "are this command's.",
        show_default=False,
    ),
]
