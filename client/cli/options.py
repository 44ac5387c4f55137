"""Command-line options several ``sidra`` commands share."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["AsJson", "Preset"]

AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object at the end.")]
Preset = Annotated[str, typer.Option("--preset", help="Emulator board preset.")]
