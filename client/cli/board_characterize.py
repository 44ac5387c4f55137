"""``sidra board characterize URL --out profile.toml``: a board measured into its twin's profile."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sidra.characterize import Characterization, Estimate, characterize
from sidra.characterize.toml import dumps
from sidra.cli.options import tile_on_board
from sidra.cli.twin import holding_every_tile
from sidra.drivers import open_board

__all__ = ["block_cut", "format_tables", "run_characterize"]


def _number(value: float) -> str:
    return f"{value:.4g}"


def _written(profile: dict[str, Any], name: str) -> float | None:
    """The number the profile holds at the dotted ``name``; None where it holds none."""
    value: Any = profile
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _profile_note(estimate: Estimate, profile: dict[str, Any]) -> str:
    """What the row adds when the profile holds another value than the estimate (an
    IR-drop resistance within two standard errors of 0, drift within its noise, the
    declared window, a value clipped to its field's range): the table must not
    disagree with the file in silence."""
    written = _written(profile, estimate.name)
    if written is None or _number(written) == _number(estimate.value):
        return ""
    unit = f" {estimate.unit}" if estimate.unit else ""
    why = " (not told apart from 0)" if written == 0 else ""
    return f"; the profile gets {_number(written)}{unit}{why}"


def format_tables(result: Characterization) -> list[Table]:
    """The parameters (value ± SE, unit, how, and what the profile gets when it is not
    the value) and the budget of each measurement."""
    params = Table(title="Characterized parameters (± one standard error)")
    for column in ("parameter", "value", "±", "unit", "how / why not"):
        params.add_column(column, overflow="fold")
    profile = result.profile.model_dump(mode="json")
    for part in result.parts:
        for e in part.estimates:
            mark = "" if e.measured else " *"
            note = e.note + _profile_note(e, profile)
            params.add_row(e.name + mark, _number(e.value), _number(e.uncertainty), e.unit, note)
    budget = Table(title="Budget spent")
    # "in calls": the wall time the board's calls took; the command's analysis is on top
    columns = ("measurement", "calls", "cell writes", "MVM passes", "modeled", "clock", "in calls")
    for column in columns:
        budget.add_column(column, justify="right" if column != "measurement" else "left")
    rows = [(part.name, part.budget) for part in result.parts] + [("total", result.budget)]
    for name, b in rows:
        budget.add_row(
            name,
            str(b.calls),
            str(b.cell_writes),
            str(b.mvm_passes),
            f"{b.modeled_time_ns:,.0f} ns",
            f"{b.clock_advanced_s:g} s",
            f"{b.wall_s:.2f} s",
        )
    return [params, budget]


def block_cut(block: int, rows: int, cols: int) -> str:
    """The note a ``--block`` wider or taller than the tile gets (the block is cut to the
    tile's size); "" when it fits."""
    if block <= rows and block <= cols:
        return ""
    return (
        f"--block {block}: the tile is {rows} × {cols}, so the block used is "
        f"{min(block, rows)} × {min(block, cols)}"
    )


def _operations(result: Characterization) -> str:
    ops = result.budget.operations
    return ", ".join(f"{name} {count}" for name, count in sorted(ops.items()))


def run_characterize(
    url: str,
    out: Path,
    tile: int,
    block: int,
    seed: int,
    drift: bool,
    console: Console,
    *,
    gain_maps: bool = False,
) -> Characterization:
    """Characterizes the board at ``url``, prints the tables, writes the profile to ``out``."""
    start = time.perf_counter()
    with open_board(url) as board:
        info = board.info
        tile_on_board(tile, info.tile_count)
        with holding_every_tile(board, "sidra board characterize"):
            result = characterize(
                board, tile=tile, block_size=block, seed=seed, drift=drift, gain_maps=gain_maps
            )
    elapsed = time.perf_counter() - start
    cut = block_cut(block, info.rows, info.cols)
    if cut:
        console.print(f"note: {cut}")
    for table in format_tables(result):
        console.print(table)
    console.print(f"operations: {_operations(result)}")
    stuck = result.stuck
    console.print(
        f"stuck cells: {sum(int(m.sum()) for m in stuck.at_min)} at g_min, "
        f"{sum(int(m.sum()) for m in stuck.at_max)} at g_max over {len(stuck.at_min)} tiles "
        f"(healthy cells expected marked stuck: {stuck.expected_false_marks:.2g})"
    )
    for line in result.not_measured:
        console.print(f"* {line}")
    shape = f"{min(block, info.rows)}x{min(block, info.cols)}"  # as measured on a small tile
    header = (
        f"Board profile measured by `sidra board characterize {url}`\n"
        f"of {info.model} {info.serial_number} (seed {seed}, tile {tile}, {shape} block, "
        f"drift {'measured' if drift else 'not measured (--no-drift)'}, gain maps "
        f"{'measured' if gain_maps else 'not measured'}, {elapsed:.1f} s).\n"
        f"Load it with emu://?profile={out.name} or `sidra board serve --profile {out.name}`."
    )
    text = dumps(result.profile.model_dump(mode="json"), header)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:  # the measurement took minutes: keep it somewhere
        fd, kept = tempfile.mkstemp(prefix="sidra-profile-", suffix=".toml")
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        raise OSError(
            exc.errno, f"--out {str(out)!r}: {exc.strerror}; the profile is kept in {kept}"
        ) from exc
    console.print(f"profile written to {out} ({elapsed:.1f} s in all)")
    return result
