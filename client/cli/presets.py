"""The ``--preset`` option of the commands that run an emulated board (bench, board
serve): its own module, as it lists the presets and so imports the emulator, which the
other commands' options do not need."""

from __future__ import annotations

from typing import Annotated

import typer

from sidra.emulator import PRESETS

__all__ = ["Preset"]


def _known_preset(name: str) -> str:
    """``name`` if it is a preset; refused while parsing, before anything starts."""
    if name not in PRESETS:
        raise typer.BadParameter(f"got {name}; expected one of {', '.join(sorted(PRESETS))}")
    return name


Preset = Annotated[
    str,
    typer.Option(
        "--preset",
        help=f"Emulator board preset: {', '.join(sorted(PRESETS))}.",
        callback=_known_preset,
    ),
]
