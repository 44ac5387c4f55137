"""``sidra model check|checks``: a deployment's cells read by the server and compared with
the targets it was registered with, now or as kept over time (deployments.proto
"Checked", "Checks kept")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from sidra.cli.consoles import output_console
from sidra.cli.model_served import DeploymentName, RequiredServer, server_board
from sidra.cli.options import AsJson
from sidra.cli.texts import when_text
from sidra.client import RemoteBoard
from sidra.client.deployments import MAX_CHECK_READ_REPEATS, CheckHistory, DeploymentCheck
from sidra.drivers import SidraError
from sidra.training.atomic_files import write_atomically
from sidra.training.figures import figure_bytes, new_figure
from sidra.training.held import MIN_HELD_CORRELATION, holds

__all__ = ["check_deployment", "check_history"]

MAX_LIMIT = 10_000
"""Most checks one answer holds (deployments.proto ListDeploymentChecksRequest.limit)."""


def check_deployment(
    server: RequiredServer,
    name: Annotated[
        str | None,
        typer.Argument(help="The deployment's name (sidra model list); every one when left out."),
    ] = None,
    repeats: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_CHECK_READ_REPEATS,
            help="Have the cells read this many times and compared by their means; from 2 "
            "on, also say the read noise (each cell's spread from read to read).",
        ),
    ] = 1,
    as_json: AsJson = False,
) -> None:
    """Have the server read a deployment's cells now and compare them with its targets.

    Per region and over all: the correlation of the conductances read with the targets
    registered, and how far they moved (µS); a mean move past 2 % of the board's
    conductance window is named as drift on stderr (--json: drifted), with what to do.
    One read carries the read noise into the deviations; --repeats 16 says how far the
    cells themselves moved. Without NAME
    every deployment, one line each (for cron). Exit 1 when a correlation is under the
    held check's least (the tiles no longer hold the model: written around the server,
    another board, drift past recall) or a deployment cannot be checked."""
    with server_board(server, "check") as board:
        window_us = board.info.g_max_us - board.info.g_min_us
        if name is not None:
            checked = board.deployments.check(name, read_repeats=repeats)
            _print_check(checked, as_json, window_us)
            failed = [] if _held(checked) else [_not_held(checked)]
            notes = [_drift_note(checked, window_us)]
        else:
            failed, notes = _check_every(board, repeats, as_json, window_us)
    for note in filter(None, notes):  # held, but not as programmed: said, exit 0
        typer.echo(f"sidra model check: {note}", err=True)
    for line in failed:
        typer.echo(f"sidra model check: {line}", err=True)
    if failed:
        raise typer.Exit(1)


def _held(checked: DeploymentCheck) -> bool:
    return holds(checked.correlation)


DRIFT_SHARE = 0.02
"""A deployment whose cells read, on average, more than this share of the board's
conductance window off their targets has drifted (sidra-y1, 1–40 µS: 0.8 µS; right after
programming the mean is within ±0.1 µS, a year on -1.5 µS): its correlation stays high, as
drift keeps the cells' order, while its outputs shrink."""


def _drifted(checked: DeploymentCheck, window_us: float) -> bool:
    return abs(checked.mean_deviation_us) > DRIFT_SHARE * window_us


def _drift_note(checked: DeploymentCheck, window_us: float) -> str:
    """What to do about a deployment held but drifted ("" when it has not drifted)."""
    if not _held(checked) or not _drifted(checked, window_us):
        return ""
    mean = checked.mean_deviation_us
    return (
        f"deployment {checked.name!r} reads {abs(mean):.2f} µS {'below' if mean < 0 else 'above'} "
        f"its targets on average (more than {DRIFT_SHARE:.0%} of the board's "
        f"{window_us:g} µS window: drift); its outputs are off by as much: sidra model eval "
        f"--deployment {checked.name} --calibrate rescales them, sidra model tune "
        f"--deployment {checked.name} trains them back, deploying it again rewrites them"
    )


def _not_held(checked: DeploymentCheck) -> str:
    return (
        f"deployment {checked.name!r} correlates {checked.correlation:.3f} with its targets, "
        f"expected >= {MIN_HELD_CORRELATION}: its tiles no longer hold the model (written "
        "around this server, another board, or drift); deploy it again"
    )


def _check_every(
    board: RemoteBoard, repeats: int, as_json: bool, window_us: float
) -> tuple[list[str], list[str]]:
    """Checks every deployment of the server, each cell read ``repeats`` times; what
    failed, a line each, and the notes of those drifted."""
    failed: list[str] = []
    notes: list[str] = []
    reports: list[dict[str, Any]] = []
    for deployment in board.deployments.list():
        try:
            checked = board.deployments.check(deployment.name, read_repeats=repeats)
        except SidraError as exc:  # not intact, a lease: the others are still checked
            failed.append(f"deployment {deployment.name!r} not checked: {exc}")
            reports.append({"name": deployment.name, "error": str(exc)})
            if not as_json:
                typer.echo(f"{deployment.name}: not checked ({type(exc).__name__})")
            continue
        reports.append(
            {**checked.as_dict(), "held": _held(checked), "drifted": _drifted(checked, window_us)}
        )
        if not _held(checked):
            failed.append(_not_held(checked))
        notes.append(_drift_note(checked, window_us))
        if not as_json:
            typer.echo(
                f"{checked.name}: correlation {checked.correlation:.3f}"
                f"{'' if _held(checked) else ' NOT HELD'}, rms deviation "
                f"{checked.rms_deviation_us:.2f} µS, mean {checked.mean_deviation_us:+.2f} µS"
                f"{_noise_text(checked)}"
            )
    if as_json:
        typer.echo(json.dumps(reports))
    elif not reports:
        typer.echo("no deployment (sidra model deploy --name NAME --server ... keeps one)")
    return failed, notes


def _print_check(checked: DeploymentCheck, as_json: bool, window_us: float) -> None:
    """One deployment's check: a row per region, then over all."""
    if as_json:
        drifted = _drifted(checked, window_us)
        typer.echo(json.dumps({**checked.as_dict(), "held": _held(checked), "drifted": drifted}))
        return
    reads = "" if checked.read_repeats == 1 else f" (mean of {checked.read_repeats} reads)"
    table = Table(
        box=box.SIMPLE,
        title=f"deployment {checked.name}, read {when_text(checked.checked_unix_s)}{reads}",
    )
    repeated = checked.read_repeats > 1  # then each region's read noise too, in 80 columns
    columns: tuple[str, ...] = ("tile", "cells", "correlation", "rms deviation", "mean deviation")
    if repeated:
        columns = ("tile", "cells", "correlation", "rms dev", "mean dev", "read noise")
    for column in columns:
        table.add_column(
            column, justify="left" if column == "cells" else "right", no_wrap=column == "cells"
        )
    for r in checked.regions:
        table.add_row(
            str(r.tile), r.region.cells_text(), f"{r.correlation:.3f}",
            f"{r.rms_deviation_us:.2f} µS", f"{r.mean_deviation_us:+.2f} µS",
            *((f"{r.read_noise_us:.2f} µS",) if repeated else ()),
        )  # fmt: skip
    output_console().print(table)
    typer.echo(
        f"over all: correlation {checked.correlation:.3f}, rms deviation "
        f"{checked.rms_deviation_us:.2f} µS, mean {checked.mean_deviation_us:+.2f} µS"
        f"{_noise_text(checked)}; reads {checked.cost.time_ns:,.0f} ns, "
        f"{checked.cost.energy_nj:,.0f} nJ"
    )


def _noise_text(checked: DeploymentCheck) -> str:
    """The read noise a check of several reads measured, as the end of its line."""
    if checked.read_repeats == 1:
        return ""
    return f", read noise {checked.read_noise_us:.2f} µS a read ({checked.read_repeats} reads)"


def check_history(
    name: DeploymentName,
    server: RequiredServer,
    limit: Annotated[
        int, typer.Option("--limit", help="How many of the latest checks, 1 to 10000.")
    ] = 100,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also draw the correlation and the mean deviation over time into this "
            "image (.png, .svg, .pdf).",
            show_default=False,
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The checks the server kept of a deployment, oldest first: how its cells aged.

    Each check's time, who asked ((server): the server's own at a metrics scrape), the
    correlation of the cells with the targets and how far they moved (µS). The server
    keeps the latest 10000 checks of a deployment. Exit 1 when the latest is under the
    held check's least."""
    if not 1 <= limit <= MAX_LIMIT:  # typer's own bound message names no unit
        raise typer.BadParameter(f"got {limit}, expected 1 to {MAX_LIMIT}", param_hint="'--limit'")
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise typer.BadParameter(
            f"got {str(plot)!r}, expected a .png, .svg or .pdf file", param_hint="'--plot'"
        )
    with server_board(server, "checks") as board:
        history = board.deployments.checks(name, limit=limit)
    if as_json:
        typer.echo(json.dumps({
            "name": name, "kept": history.kept,
            "checks": [{**c.as_dict(), "held": _held(c)} for c in history.checks],
        }))  # fmt: skip
    else:
        _print_history(name, history)
    if plot is not None and history.checks:
        _plot_history(plot, name, history)
    if history.checks and not _held(history.checks[-1]):
        typer.echo(f"sidra model checks: {_not_held(history.checks[-1])}", err=True)
        raise typer.Exit(1)


def _print_history(name: str, history: CheckHistory) -> None:
    if not history.checks:
        typer.echo(f"deployment {name} was never checked (sidra model check {name})")
        return
    table = Table(box=box.SIMPLE, pad_edge=False, title=f"deployment {name}: checks, oldest first")
    # The reads each check averaged, once any did more than one: their deviations hold
    # less read noise than one read's, so checks of different reads compare only so.
    repeated = any(c.read_repeats > 1 for c in history.checks)
    columns: tuple[str, ...] = ("checked", "by", "correlation", "rms deviation", "mean deviation")
    if repeated:  # two more columns in 80 characters
        columns = ("checked", "by", "correlation", "rms dev", "mean dev", "reads", "noise")
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("checked", "by") else "right",
            no_wrap=column == "checked",
        )  # fmt: skip
    for c in history.checks:
        held = "" if _held(c) else " NOT HELD"
        noise = f"{c.read_noise_us:.2f} µS" if c.read_repeats > 1 else "-"
        table.add_row(
            when_text(c.checked_unix_s), c.checked_by, f"{c.correlation:.3f}{held}",
            f"{c.rms_deviation_us:.2f} µS", f"{c.mean_deviation_us:+.2f} µS",
            *((str(c.read_repeats), noise) if repeated else ()),
        )  # fmt: skip
    output_console().print(table)
    first, last = history.checks[0], history.checks[-1]
    shown = len(history.checks)
    # Fewer reads carry more read noise: the two compare only with that said.
    reads = (
        "" if first.read_repeats == last.read_repeats
        else f" (means of {first.read_repeats} and {last.read_repeats} reads)"
    )  # fmt: skip
    kept = f"{shown} check{'' if shown == 1 else 's'} kept"
    if shown < history.kept:  # --limit, or a page of a longer history
        kept = f"the latest {shown} of the {history.kept} checks kept"
    typer.echo(
        f"{kept}; from {when_text(first.checked_unix_s)} to "
        f"{when_text(last.checked_unix_s)} the correlation went {first.correlation:.3f} -> "
        f"{last.correlation:.3f}, the mean deviation {first.mean_deviation_us:+.2f} -> "
        f"{last.mean_deviation_us:+.2f} µS{reads}"
    )


def _plot_history(path: Path, name: str, history: CheckHistory) -> None:
    """Correlation (with the held check's least) and mean deviation against time."""
    import datetime

    when = [datetime.datetime.fromtimestamp(c.checked_unix_s) for c in history.checks]
    fig = new_figure(figsize=(8.0, 5.5))
    upper, lower = fig.subplots(2, 1, sharex=True)
    upper.plot(when, [c.correlation for c in history.checks], marker=".")
    upper.axhline(MIN_HELD_CORRELATION, color="tab:red", linestyle="--", label="held above")
    upper.set_ylabel("correlation with targets")
    upper.set_ylim(min(0.0, *(c.correlation for c in history.checks)) - 0.05, 1.05)
    upper.legend(loc="lower left")
    upper.set_title(f"deployment {name}")
    lower.plot(when, [c.mean_deviation_us for c in history.checks], marker=".", label="mean")
    lower.plot(when, [c.rms_deviation_us for c in history.checks], marker=".", label="rms")
    lower.set_ylabel("read - target (µS)")
    lower.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    write_atomically(path, figure_bytes(fig, path.suffix.lstrip(".").lower()))
