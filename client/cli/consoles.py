"""The console a command prints its tables and summaries on: a terminal's width on a
terminal, and lines as long as their content when the output goes to a file or a pipe.

Off a terminal rich folds every line at 80 columns (or at the width of the terminal a
pipe was started from): ``sidra board characterize ... > log`` or ``| less`` got each
table row over several lines, which grep and diff then see as several rows, and the
listings (``sidra state history``, ``jobs list``, ``runs list``, ...) left out the
columns 80 could not hold.
"""

from __future__ import annotations

import os

from rich.console import Console

__all__ = ["PIPED_WIDTH", "output_console"]

PIPED_WIDTH = 1_000
"""Characters a line may take when the output is no terminal: more than any row the
commands that use :func:`output_console` print (characterize's parameters, the widest,
take about 215). A table still takes only the width its cells need; a pager (``less
-S``) or an editor shows the rows as they are."""


def output_console(*, stderr: bool = False) -> Console:
    """A console on stdout (``stderr``: on stderr): the terminal's width on a terminal,
    :data:`PIPED_WIDTH` on a file or a pipe. ``COLUMNS``, when set, wins either way, as
    rich reads it: a user who sets it asks for that width."""
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console
    return Console(stderr=stderr, width=PIPED_WIDTH)
