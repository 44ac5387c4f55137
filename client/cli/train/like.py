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

A setting no option of the command is named after (an option renamed or removed since
the record was made) is not taken, and said so on stderr: the run would otherwise differ
from the record without a word.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from sidra.training.records import INTERRUPTED, STOPPED_AT

__all__ = ["Like", "NOT_TAKEN", "RECORD_ONLY", "settings_of"]

NOT_TAKEN = frozenset(
    {"board", "server", "out", "resume", "remote_job", "queue", "priority", "as_json",
     "like", "checkpoint_every", "checkpoint_every_s"}
)  # fmt: skip
"""Parameters a record's settings never set: where and how this run is made and kept."""


RECORD_ONLY = frozenset({"job", "dataset", "dataset_sha256", "placement", "twin_profile",
                         "twin_board", "twin_stuck_cells"})  # fmt: skip
"""Settings a record keeps that are no option: what ran, on which data set file, where its
layers went, which twin a pat run used (the data set is taken, as ``--dataset``)."""


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
    params = {param.name for param in ctx.command.params}
    names = params - NOT_TAKEN
    taken = {name: settings[name] for name in names if name in settings}
    if command == "spsa" and _derived_eval_every(settings):
        del taken["eval_every"]  # made from --steps: made again from this run's
    ctx.default_map = {**(ctx.default_map or {}), **taken}
    unknown = sorted(
        key for key in settings
        if key not in params and key not in RECORD_ONLY
        and not key.startswith((STOPPED_AT, INTERRUPTED))
    )  # fmt: skip
    if unknown:  # a record of another SIDRA HIL: an option renamed or gone since
        typer.echo(
            f"sidra train {command} --like {value}: not taken, as no option of this command "
            f"has its name: {', '.join(unknown)} (a record of another SIDRA HIL? give what "
            "they meant as options)",
            err=True,
        )
    return value


def _derived_eval_every(settings: dict[str, Any]) -> bool:
    """Whether an spsa record's ``eval_every`` is the default its ``steps`` made (5 % of
    them): taken as it is, a --like run of fewer steps measured no accuracy at all."""
    from sidra.cli.train.spsa import default_eval_every  # (that module imports this one)

    steps, every = settings.get("steps"), settings.get("eval_every")
    return type(steps) is int and steps > 0 and every == default_eval_every(steps)


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
