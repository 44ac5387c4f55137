"""Tables of a line per row on any terminal: the columns a narrow one cannot hold left out.

Rich squeezes a table wider than the terminal by cutting every column to a letter and an
ellipsis, which leaves a listing unreadable on a laptop's 80 columns. A listing instead
names the columns it may leave out, least needed first; ``--json`` keeps every one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["CELL_PADDING", "TABLE_EDGES", "WRAPPED_WIDTH", "columns_that_fit"]

CELL_PADDING = 3
"""Characters a column takes beside its widest cell (rich's padding and a separator)."""

TABLE_EDGES = 1
"""Characters a table takes beside its columns' (its edges less the last separator)."""

WRAPPED_WIDTH = 24
"""Characters counted for a column whose cells may wrap over several lines (a message)."""


def columns_that_fit(
    rows: Sequence[Mapping[str, str]],
    columns: Sequence[str],
    dropped_first: Sequence[str],
    width: int,
    wrapped: Sequence[str] = (),
    wrapped_width: int = WRAPPED_WIDTH,
) -> list[str]:
    """``columns`` less as few of ``dropped_first``, taken in that order, as leave every
    row on one line of ``width`` characters (a ``wrapped`` column's cells may take
    several lines: it counts ``wrapped_width`` at most). Columns not in
    ``dropped_first`` always stay."""
    widths = {
        c: max([len(c), *(len(row.get(c, "")) for row in rows)]) + CELL_PADDING for c in columns
    }
    for c in wrapped:
        widths[c] = min(widths[c], wrapped_width + CELL_PADDING)
    kept = list(columns)
    for dropped in dropped_first:
        if sum(widths[c] for c in kept) + TABLE_EDGES <= width:
            break
        if dropped in kept:
            kept.remove(dropped)
    return kept
