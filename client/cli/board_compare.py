"""``sidra board compare URL --profile FILE``: a board against its twin, output by output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rich.console import Console
from rich.table import Table

from sidra.characterize.compare import Comparison, compare
from sidra.cli.board_characterize import block_cut
from sidra.cli.consoles import output_console
from sidra.cli.options import tile_on_board
from sidra.drivers import open_board

__all__ = [
    "comparison_json",
    "comparison_table",
    "comparison_title",
    "run_compare",
    "sampling_caption",
]


def comparison_json(result: Comparison) -> dict[str, Any]:
    """Per phase and direction: the averages, the worst output and every output's distance."""
    return {
        "block_rows": result.block.rows,
        "block_cols": result.block.cols,
        "inputs": result.inputs,
        "repeats": result.repeats,
        "cycles": result.cycles,
        "distances": [
            {
                "phase": d.phase,
                "direction": d.direction,
                "mean_distance": d.mean_of_means,
                "mean_distance_max": float(d.mean_distance.max()),
                "mean_distance_sampling": d.mean_of_mean_sampling,
                "spread_distance": d.mean_of_spreads,
                "spread_distance_max": float(d.spread_distance.max()),
                "spread_distance_sampling": d.spread_sampling,
                "per_output_mean_distance": [round(float(v), 6) for v in d.mean_distance],
                "per_output_spread_distance": [round(float(v), 6) for v in d.spread_distance],
            }
            for d in result.distances
        ],
    }


def comparison_title(result: Comparison) -> str:
    """What was compared: the tile, the block, the workload."""
    return (
        f"Board vs twin (tile {result.tile}, block {result.block.rows} × "
        f"{result.block.cols}; {result.inputs} inputs × {result.repeats} repeats; "
        f"'after' = {result.cycles} program + perturb cycles)"
    )


def comparison_table(result: Comparison) -> Table:
    """The averages and the worst output per phase and direction. Its title
    (:func:`comparison_title`) and what sampling alone scores (:func:`sampling_caption`)
    are lines of their own: as the table's title and caption they wrapped to its width,
    some 76 characters, however wide the terminal or a log."""
    table = Table()
    for column in ("phase", "direction", "mean dist. avg", "max", "spread dist. avg", "max"):
        table.add_column(column, justify="left" if column in ("phase", "direction") else "right")
    for d in result.distances:
        table.add_row(
            d.phase,
            d.direction,
            f"{d.mean_of_means:.2%}",
            f"{float(d.mean_distance.max()):.2%}",
            f"{d.mean_of_spreads:.2%}",
            f"{float(d.spread_distance.max()):.2%}",
        )
    return table


def sampling_caption(result: Comparison) -> str:
    """What sampling alone gives on average, as a range over the table's rows."""

    def span(values: list[float]) -> str:
        low, high = f"{min(values):.2%}", f"{max(values):.2%}"
        return low if low == high else f"{low}–{high}"

    means = span([d.mean_of_mean_sampling for d in result.distances])
    spreads = span([d.spread_sampling for d in result.distances])
    return (
        f"Sampling alone (a twin identical to the board, these inputs and repeats): "
        f"mean distance {means}, spread distance {spreads} on average. Distances near "
        "these are noise; well above them, what the twin does not know."
    )


def board_seed(url: str) -> int | None:
    """The seed of an emulated board's URL (``emu://...&seed=N``); None for another board."""
    parts = urlsplit(url)
    if parts.scheme != "emu":
        return None
    seeds = parse_qs(parts.query).get("seed", [])
    return int(seeds[0]) if seeds and seeds[0].isdecimal() else None


def run_compare(
    url: str,
    profile: Path,
    twin_seed: int,
    options: dict[str, int],
    as_json: bool,
    console: Console,
) -> Comparison:
    """Opens the board and ``emu://?profile=PROFILE``, runs the comparison, prints it."""
    with open_board(url) as board, open_board(f"emu://?profile={profile}&seed={twin_seed}") as twin:
        tile_on_board(options["tile"], board.info.tile_count)
        if board_seed(url) == twin_seed:
            output_console(stderr=True).print(
                f"note: the board and the twin are emulated from one seed ({twin_seed}): "
                "they share their per-cell draws, which no real board and its twin do "
                "(--twin-seed another)",
                style="yellow",
            )
        result = compare(board, twin, **options)
        cut = block_cut(options["block_size"], board.info.rows, board.info.cols)
        if cut:
            output_console(stderr=True).print(f"note: {cut}", style="yellow")
    if as_json:
        made = {"board": url, "profile": str(profile), "twin_seed": twin_seed, **options}
        print(json.dumps(made | comparison_json(result)))
    else:
        console.print(comparison_title(result), highlight=False)
        console.print(comparison_table(result))
        console.print(sampling_caption(result), highlight=False)
    return result
