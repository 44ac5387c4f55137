"""``sidra board read|program|mvm|wear|calibrate|clock URL``: one operation on a board,
from the shell.

What a bench engineer does by hand on a board under test: look at what a tile holds,
write a pattern into it, drive it and look at the currents, see how worn its cells are,
calibrate it, age an emulated one. Any board URL works
(``serial://``, ``pcie://``, ``grpc://`` for a board behind ``sidra serve``, ``emu://``,
which forgets its cells when the command ends). Arrays go in and out as ``.npy`` files
in the operation's units: conductances in µS, voltages in V, currents in µA; a file
this writes is new (an existing one is not written over) and whole or absent.

A value the board refuses is a usage error naming the field, the value and what is
allowed (exit 2), before anything is written; a board that cannot be reached, or that
refuses for who or when (a lease, a role, a protected deployment), exits 1.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console

from sidra.cli.consoles import output_console
from sidra.cli.job_board import job_board
from sidra.cli.numpy_files import load_numpy
from sidra.cli.options import AsJson, BoardArg, new_file
from sidra.cli.totals import cost_values, totals
from sidra.client import RemoteBoard
from sidra.drivers import BoardInfo, Cost, Region
from sidra.training.atomic_files import write_atomically
from sidra.training.figures import figure_bytes, new_figure

__all__ = [
    "calibrate_cells",
    "clock",
    "mvm_cells",
    "parse_region",
    "program_cells",
    "read_cells",
    "totals",
    "wear_cells",
]

MAX_READ_REPEATS = 1000
"""Most reads one ``sidra board read --repeats`` makes (each a ReadConductance call)."""

TileOption = Annotated[int, typer.Option(min=0, help="The tile.")]
RegionOption = Annotated[
    str | None,
    typer.Option(
        "--region",
        metavar="ROW,COL[,ROWS,COLS]",
        help="The cells: first row and column, then how many of each (left out or 0: to the "
        "tile's edge); the whole tile when not given.",
    ),
]
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
NEAR_EDGE_SHARE = 0.01
"""A cell within this share of the conductance window of g_min (or g_max) counts as there
in ``read``'s summary: where stuck cells and cells never programmed sit."""


_AT = {"tile": "'--tile'", "region": "'--region'"}
"""The options of a request's place on the board, by the field a refusal names."""
_INPUTS = {"voltages": "'--inputs'", "input_codes": "'--inputs'"}


def parse_region(text: str | None) -> Region | None:
    """``--region`` as a Region (None when not given); a usage error naming it otherwise.
    Whether it fits the tile is the board's to check."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) not in (2, 4) or not all(p.strip().isdecimal() for p in parts):
        raise typer.BadParameter(
            f"got {text!r}, expected ROW,COL or ROW,COL,ROWS,COLS (integers >= 0)",
            param_hint="'--region'",
        )
    row, col, *size = (int(p) for p in parts)
    rows, cols = size or (0, 0)
    return Region(row, col, rows, cols)


def read_cells(
    url: BoardArg,
    tile: TileOption = 0,
    region: RegionOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the conductances (µS, \\[rows, cols]) to this .npy.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Draw them as a map (.png, .svg or .pdf), on the board's window."),
    ] = None,
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_READ_REPEATS,
            help="Read the cells this many times and keep each cell's mean; from 2 on, also "
            "say the read noise (each cell's spread from read to read).",
        ),
    ] = 1,
    as_json: AsJson = False,
) -> None:
    """Read a tile's conductances (ReadConductance) and summarise them, µS.

    Prints their spread, the cells at either edge of the window (stuck or never
    programmed) and what the read cost; --out keeps them, --plot draws them. With
    --repeats, the cells' spread is of their means, apart from the read noise."""
    cells = parse_region(region)
    for path, option in ((out, "'--out'"), (plot, "'--plot'")):
        new_file(path, option)
    if plot is not None and plot.suffix not in PLOT_SUFFIXES:
        raise typer.BadParameter(
            f"got {plot}, expected a file ending {', '.join(PLOT_SUFFIXES)}", param_hint="'--plot'"
        )
    with job_board(url, None, "sidra board read", options=_AT) as board:
        info = board.info
        reads = [board.read_conductance(tile, cells) for _ in range(repeats)]
    each = np.stack([np.asarray(r.conductances, np.float64) for r in reads])
    g = each.mean(axis=0).astype(np.float32)
    cost = sum((r.cost for r in reads), Cost())
    # Read to read: each cell's sample deviation, rms over the cells (None from one read).
    noise = float(np.sqrt(each.var(axis=0, ddof=1).mean())) if repeats > 1 else None
    where = (cells or Region()).resolve(info.rows, info.cols)
    window = info.g_max_us - info.g_min_us
    summary = {
        **_head(info, tile, where),
        "cells": int(g.size),
        "min_us": float(g.min()),
        "mean_us": float(g.mean()),
        "max_us": float(g.max()),
        "std_us": float(g.std()),
        "window_us": [info.g_min_us, info.g_max_us],
        "near_g_min_cells": int(np.sum(g <= info.g_min_us + NEAR_EDGE_SHARE * window)),
        "near_g_max_cells": int(np.sum(g >= info.g_max_us - NEAR_EDGE_SHARE * window)),
        "reads": repeats,
        "read_noise_us": noise,
        **cost_values(cost),
        "out": None if out is None else str(out),
    }
    if out is not None:
        _save(out, g)
    if plot is not None:
        _draw(plot, g, where, info, f"{summary['board']}: tile {tile} {where.cells_text()}")
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = output_console()
    console.print(f"{summary['board']}: tile {tile} {where.cells_text()}, {g.size:,} cells")
    console.print(
        f"conductance (µS): min {g.min():.3f}, mean {g.mean():.3f}, max {g.max():.3f}, "
        f"std {g.std():.3f}; window {info.g_min_us:g} .. {info.g_max_us:g}"
    )
    if noise is not None:
        console.print(
            f"means of {repeats} reads; read noise {noise:.3f} µS rms (each cell's spread "
            "from read to read)"
        )
    console.print(
        f"within {NEAR_EDGE_SHARE:.0%} of the window's edges: "
        f"{summary['near_g_min_cells']:,} at g_min, {summary['near_g_max_cells']:,} at g_max"
    )
    _print_cost(console, cost)


def program_cells(
    url: BoardArg,
    tile: TileOption = 0,
    targets: Annotated[
        Path | None,
        typer.Option(
            help="The target conductances (µS, \\[rows, cols] .npy), at --region's "
            "ROW,COL (its ROWS,COLS, if given, must be the file's)."
        ),
    ] = None,  # fmt: skip
    fill_us: Annotated[
        float | None,
        typer.Option("--fill-us", help="Program every cell of --region to this conductance, µS."),
    ] = None,
    region: RegionOption = None,
    as_json: AsJson = False,
) -> None:
    """Write-verify target conductances into a tile (Program), from a file or one value.

    Prints what write-verify reached (error, unconverged cells) and what it cost."""
    cells = parse_region(region) or Region()
    if (targets is None) == (fill_us is None):
        raise typer.BadParameter("give one of --targets FILE and --fill-us VALUE")
    values = None if targets is None else _array(targets, "'--targets'", 2)
    sized = cells.rows or cells.cols
    if values is not None and sized and (cells.rows, cells.cols) != values.shape:
        raise typer.BadParameter(
            f"{targets} holds {list(values.shape)} targets, --region names "
            f"{cells.rows} x {cells.cols} cells",
            param_hint="'--region'",
        )
    if url.startswith("emu://"):
        typer.echo(f"note: {url} is emulated in this process and forgets these cells when "
                   "the command ends (sidra serve keeps a board)", err=True)  # fmt: skip
    with job_board(
        url,
        None,
        "sidra board program",
        options=_AT
        | {
            "conductances": "'--targets'" if fill_us is None else "'--fill-us'",
            "conductances.shape": "'--region'",  # its size, or its place past the edge
        },
    ) as board:
        info = board.info
        if values is None:
            shape = cells.resolve(info.rows, info.cols).shape
            values = np.full(shape, fill_us, np.float32)
        report = board.program(
            tile, values, row_offset=cells.row_offset, col_offset=cells.col_offset
        )
    where = Region(cells.row_offset, cells.col_offset, *values.shape)
    summary = {
        **_head(info, tile, where),
        "cells_written": report.cells_written,
        "verify_iterations": report.verify_iterations,
        "pulses": report.pulses,
        "rms_error_us": report.rms_error_us,
        "max_error_us": report.max_error_us,
        "unconverged_cells": report.unconverged_cells,
        "cells_over_budget": report.cells_over_budget,
        **cost_values(report.cost),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = output_console()
    console.print(f"{summary['board']}: tile {tile} {where.cells_text()} programmed")
    console.print(
        f"{report.cells_written:,} cells written in {report.verify_iterations} verify "
        f"iterations ({report.pulses:,} pulses); error rms {report.rms_error_us:.3f} µS, "
        f"max {report.max_error_us:.3f} µS; {report.unconverged_cells} unconverged"
        + (f", {report.cells_over_budget} past their write budget"
           if report.cells_over_budget else "")
    )  # fmt: skip
    _print_cost(console, report.cost)


def mvm_cells(
    url: BoardArg,
    inputs: Annotated[
        Path,
        typer.Option(
            help="Input voltages (V): \\[batch, inputs], or one vector (1-D), .npy; "
            "inputs the rows of --region (its columns with --transpose)."
        ),
    ],  # fmt: skip
    tile: TileOption = 0,
    region: RegionOption = None,
    transpose: Annotated[
        bool,
        typer.Option(
            help="Drive the columns and read the rows (TransposeMVM, the backward "
            "pass) instead of the rows and columns (MVM)."
        ),
    ] = False,  # fmt: skip
    out: Annotated[
        Path | None, typer.Option(help="Write the output currents (µA, \\[batch, outputs]) here.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Drive a tile with input voltages (MVM; TransposeMVM with --transpose).

    Prints the output currents' range, saturated outputs and cost; --out keeps them."""
    cells = parse_region(region)
    new_file(out, "'--out'")
    volts = _array(inputs, "'--inputs'", 1, 2)
    batch = volts if volts.ndim == 2 else volts[None, :]
    with job_board(url, None, "sidra board mvm", options=_AT | _INPUTS) as board:
        info = board.info
        _check_inputs(inputs, batch, (cells or Region()).resolve(info.rows, info.cols), transpose)
        run = board.transpose_mvm if transpose else board.mvm
        result = run(tile, batch, cells)
    currents = np.asarray(result.currents, np.float32)
    where = (cells or Region()).resolve(info.rows, info.cols)
    summary = {
        **_head(info, tile, where),
        "operation": "TransposeMVM" if transpose else "MVM",
        "batch": int(currents.shape[0]),
        "outputs": int(currents.shape[1]),
        "min_ua": float(currents.min()),
        "max_ua": float(currents.max()),
        "saturated_outputs": int(result.saturated_outputs),
        **cost_values(result.cost),
        "out": None if out is None else str(out),
    }
    if out is not None:
        _save(out, currents)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = output_console()
    console.print(
        f"{summary['board']}: {summary['operation']} of tile {tile} {where.cells_text()}, "
        f"{currents.shape[0]} vector{'' if currents.shape[0] == 1 else 's'} -> "
        f"{currents.shape[1]} outputs each"
    )
    console.print(
        f"currents (µA): min {currents.min():.3f}, max {currents.max():.3f}; "
        f"{result.saturated_outputs} outputs at the ADC's full scale"
    )
    _print_cost(console, result.cost)


def _check_inputs(
    path: Path, batch: npt.NDArray[np.float32], where: Region, transpose: bool
) -> None:
    """A file of as many inputs per vector as the region has rows (columns with
    --transpose), else a usage error naming --inputs and the --region that fits it (the
    board's own refusal names only its wire field)."""
    driven, across = ("columns", where.cols) if transpose else ("rows", where.rows)
    given = batch.shape[1]
    if given == across or where.rows <= 0 or where.cols <= 0:
        return  # a region off the tile is the board's to refuse, naming it
    at = f"{where.row_offset},{where.col_offset}"
    fits = f"{at},{where.rows},{given}" if transpose else f"{at},{given},{where.cols}"
    raise typer.BadParameter(
        f"{path} holds {given} inputs per vector; {where.cells_text()} takes {across}, one "
        f"per {driven[:-1]} it drives (--region {fits} drives {given} {driven})",
        param_hint="'--inputs'",
    )


def _head(info: BoardInfo, tile: int, where: Region) -> dict[str, Any]:
    return {
        "board": f"{info.model} {info.serial_number}",
        "tile": tile,
        "region": {
            "row_offset": where.row_offset, "col_offset": where.col_offset,
            "rows": where.rows, "cols": where.cols,
        },
    }  # fmt: skip


def _print_cost(console: Console, cost: Cost) -> None:
    console.print(f"modeled board time {cost.time_ns:,.1f} ns, energy {cost.energy_nj:,.1f} nJ")


def _array(path: Path, option: str, *dims: int) -> npt.NDArray[np.float32]:
    """The real numbers an .npy file holds, with one of ``dims`` dimensions (the board
    checks their values); a usage error naming ``option`` otherwise."""
    try:
        held = load_numpy(path)
    except (OSError, ValueError, EOFError) as exc:
        raise typer.BadParameter(
            f"{path}: not an .npy of numbers ({exc})", param_hint=option
        ) from exc
    if not isinstance(held, np.ndarray):
        held.close()
        raise typer.BadParameter(f"{path}: got an .npz archive, expected an .npy of real "
                                 "numbers", param_hint=option)  # fmt: skip
    if held.dtype.kind not in "biuf":
        raise typer.BadParameter(f"{path}: got dtype {held.dtype}, expected real numbers",
                                 param_hint=option)  # fmt: skip
    if held.ndim not in dims or 0 in held.shape:
        shapes = " or ".join(f"{d}-D" for d in dims)
        raise typer.BadParameter(
            f"{path}: got shape {list(held.shape)}, expected a non-empty {shapes} array",
            param_hint=option,
        )
    values: npt.NDArray[np.float32] = held.astype(np.float32)
    return values


def _save(path: Path, values: npt.NDArray[Any]) -> None:
    buffer = io.BytesIO()
    np.save(buffer, values)
    _written(path, buffer.getvalue(), "'--out'")


def _written(path: Path, data: bytes, option: str) -> None:
    """``data`` in ``path``, or a usage error naming ``option`` (the folder checked before
    the board work may have gone since)."""
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise typer.BadParameter(f"{path}: cannot be written ({exc})", param_hint=option) from exc


def _draw(
    path: Path, g: npt.NDArray[np.float32], where: Region, info: BoardInfo, title: str
) -> None:
    """The conductances of ``where`` as a map, its axes the tile's own row and column
    numbers, its colours the board's whole window (µS)."""
    rows, cols = g.shape
    fig = new_figure(figsize=(min(12.0, 3.0 + cols / 24), min(12.0, 2.5 + rows / 24)))
    axes = fig.subplots()
    left, top = where.col_offset - 0.5, where.row_offset - 0.5
    image = axes.imshow(g, cmap="viridis", vmin=info.g_min_us, vmax=info.g_max_us,
                        interpolation="nearest", aspect="auto",
                        extent=(left, left + cols, top + rows, top))  # fmt: skip
    axes.set_xlabel("column")
    axes.set_ylabel("row")
    axes.set_title(title)
    fig.colorbar(image, ax=axes, label="conductance (µS)")
    fig.tight_layout()
    _written(path, figure_bytes(fig, path.suffix.lstrip(".")), "'--plot'")


def wear_cells(
    url: BoardArg,
    tile: TileOption = 0,
    region: RegionOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the write counts (\\[rows, cols], uint32) to this .npy."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """How often a tile's cells were written (ReadWriteCounts), against their budget.

    Prints the most and mean writes per cell and, when the board has an endurance budget,
    the cells past it and the most-written cell's share of it; --out keeps the counts."""
    cells = parse_region(region)
    new_file(out, "'--out'")
    with job_board(url, None, "sidra board wear", options=_AT) as board:
        info = board.info
        counts = board.read_write_counts(tile, cells)
    n = np.asarray(counts.counts, np.uint32)
    where = (cells or Region()).resolve(info.rows, info.cols)
    budget = counts.write_budget
    summary = {
        **_head(info, tile, where),
        "cells": int(n.size),
        "max_writes": int(n.max()),
        "mean_writes": float(n.mean()),
        "never_written_cells": int(np.sum(n == 0)),
        "write_budget": budget,
        "over_budget_cells": int(np.sum(n > budget)) if budget else 0,
        "out": None if out is None else str(out),
    }
    if out is not None:
        _save(out, n)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = output_console()
    console.print(f"{summary['board']}: tile {tile} {where.cells_text()}, {n.size:,} cells")
    console.print(
        f"writes per cell: most {summary['max_writes']:,}, mean {summary['mean_writes']:.1f}; "
        f"{summary['never_written_cells']:,} never written"
    )
    if budget:
        console.print(
            f"budget {budget:,} writes a cell: {summary['over_budget_cells']:,} cells past it, "
            f"the most written at {summary['max_writes'] / budget:.1%}"
        )
    else:
        console.print("the board sets no write budget")


def calibrate_cells(url: BoardArg, tile: TileOption = 0, as_json: AsJson = False) -> None:
    """Calibrate a tile against drift (Calibrate): the output gain the board now applies.

    The board rescales the tile's outputs so that its probe reads as when the cells were
    programmed: a drift common to the tile cancels. A write (a programmer's right)."""
    with job_board(url, None, "sidra board calibrate", options=_AT) as board:
        info = board.info
        report = board.calibrate(tile)
    summary = {
        "board": f"{info.model} {info.serial_number}", "tile": tile, "gain": report.gain,
        **cost_values(report.cost),
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = output_console()
    console.print(f"{summary['board']}: tile {tile} calibrated, output gain {report.gain:.4f}")
    _print_cost(console, report.cost)


def clock(
    url: BoardArg,
    advance_s: Annotated[
        float | None,
        typer.Option(
            "--advance-s",
            help="Advance the board's virtual clock this far "
            "(AdvanceClock: an emulated board's cells drift as they would), s.",
        ),
    ] = None,  # fmt: skip
    as_json: AsJson = False,
) -> None:
    """A board's clock and running totals; --advance-s moves an emulated board's clock.

    Advancing acts on every tile: through a server the command leases the whole board
    for the call (refused, naming them, while other sessions hold tiles)."""
    if advance_s is not None and not 0.0 <= advance_s < float("inf"):
        raise typer.BadParameter(f"got {advance_s:g}; expected seconds >= 0",
                                 param_hint="'--advance-s'")  # fmt: skip
    with job_board(url, None, "sidra board clock") as board:
        info = board.info
        if advance_s is not None:
            if isinstance(board, RemoteBoard):
                # A programmer had no command to take the whole-board lease it needs.
                with (
                    board.session(label="sidra board clock") as session,
                    session.lease(whole_board=True),
                ):
                    board.advance_clock(advance_s)
            else:
                board.advance_clock(advance_s)
        stats = board.stats()
    summary = {"board": f"{info.model} {info.serial_number}", **totals(stats)}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = output_console()
    console.print(
        f"{summary['board']}: clock {stats.clock_s:,.1f} s ({stats.clock_s / 86_400:,.2f} days)"
    )
    console.print(
        f"since opened: {stats.mvm_passes:,} MVM passes, {stats.cell_writes:,} cell writes "
        f"(most on one cell {stats.max_cell_writes:,})"
    )
    _print_cost(console, stats.total_cost)
