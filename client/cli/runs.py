"""``sidra runs list|show|compare``: the training runs kept on disk, found, shown and set
side by side (sidra.training.saved_runs).

Every training command saves its record in a folder (``--out``, default
``runs/<job>-<time>``), a job's record is saved there too (``sidra train --remote-job``,
``sidra jobs show --out``). These commands only read them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich import box
from rich.table import Table

from sidra.cli.consoles import output_console
from sidra.cli.options import AsJson, new_file
from sidra.cli.tables import columns_that_fit
from sidra.cli.texts import count_text, duration_text, figure_text, when_text
from sidra.training.atomic_files import write_atomically
from sidra.training.figures import figure_bytes, new_figure
from sidra.training.records import INTERRUPTED, STOPPED_AT
from sidra.training.saved_runs import RecordUnreadable, SavedRun, find_runs, is_record, read_run

__all__ = ["runs_app"]

runs_app = typer.Typer(
    no_args_is_help=True,
    help="Training runs kept on disk (runs/ or --out): list, group by seed, show, compare.",
)

SORTS = ("time", "accuracy")

SUMMARY_ROWS = (
    ("test_accuracy", "test accuracy"),
    ("train_accuracy", "train accuracy"),
    ("steps", "steps"),
    ("loss_evaluations", "loss evaluations"),
    ("mvm_calls", "MVM calls"),
    ("device_writes", "device writes (cells)"),
    ("programs", "programs"),
    ("modeled_time_ns", "modeled time (ns)"),
    ("modeled_energy_nj", "modeled energy (nJ)"),
)
"""The figures ``compare`` sets side by side, with their names and units."""

PROVENANCE_NOT_COMPARED = frozenset(
    {"started_utc", "ended_utc", "submitted_utc", "wall_s", "parts"}
)
"""run.json keys every run has its own of: shown, never counted as a difference."""


SHOWN_ABOVE = frozenset({"job", "dataset"})
"""Settings the comparison's first row shows for every run ("mlp on digits"): not listed
again among the settings that differ."""


def _accuracy_text(accuracy: float | None) -> str:
    return "" if accuracy is None else f"{100 * accuracy:.2f} %"


def _wall_text(wall_s: float | None) -> str:
    return "" if wall_s is None else duration_text(wall_s)


def _listed(run: SavedRun, root: Path) -> dict[str, Any]:
    """A run as ``list --json`` prints it."""
    try:
        where = str(run.folder.relative_to(root)) if run.folder != root else "."
    except ValueError:
        where = str(run.folder)
    return {
        "record": str(run.folder),
        "name": where,
        "job": run.job,
        "dataset": run.dataset,
        "length": run.length,
        "ended": run.ended,
        "test_accuracy": run.test_accuracy,
        "started_unix_s": run.started_unix_s,
        "wall_s": run.wall_s,
        "board": run.board,
    }


RunsFolder = Annotated[
    Path, typer.Argument(help="Where to look (its subfolders too, 4 levels down).")
]
JobFilter = Annotated[
    str | None, typer.Option(help="Only runs of this kind (spsa, last-layer, mlp, ...).")
]
DatasetFilter = Annotated[str | None, typer.Option(help="Only runs on this data set.")]


def _runs_under(
    folder: Path, job: str | None, dataset: str | None
) -> tuple[list[SavedRun], list[str]]:
    """The records under ``folder`` of ``job`` on ``dataset`` (None: any), and a line for
    each that cannot be read; BadParameter naming FOLDER when it is none."""
    if not folder.is_dir():
        raise typer.BadParameter(
            f"{folder}: no such folder{_records_here()}", param_hint="'FOLDER'"
        )
    runs, unreadable = find_runs(folder)
    chosen = [
        r for r in runs
        if (job is None or r.job == job) and (dataset is None or r.dataset == dataset)
    ]  # fmt: skip
    return chosen, unreadable


def _records_here() -> str:
    """Where records are when the folder named is not there: the working folder's own
    (runs saved with --out NAME), named so the user need not guess."""
    try:
        here = sorted(e.name for e in os.scandir(".") if e.is_dir() and is_record(Path(e.name)))
    except OSError:
        return ""
    if not here:
        return ""
    shown = ", ".join(here[:3]) + (f" and {len(here) - 3} more" if len(here) > 3 else "")
    return f" (this folder holds records: {shown}; sidra runs list .)"


def _exit_if_unreadable(unreadable: list[str], command: str) -> None:
    """Names on stderr each record that could not be read; exit 1 if any."""
    for line in unreadable:
        typer.echo(f"sidra runs {command}: {line}", err=True)
    if unreadable:
        raise typer.Exit(1)


@runs_app.command("list")
def list_runs(
    folder: RunsFolder = Path("runs"),
    job: JobFilter = None,
    dataset: DatasetFilter = None,
    sort: Annotated[
        str, typer.Option(help="Order: time (newest first) or accuracy (best first).")
    ] = "time",
    limit: Annotated[int, typer.Option(min=0, help="Show only the first N (0: all).")] = 0,
    as_json: AsJson = False,
) -> None:
    """The runs recorded under a folder: kind, data set, length, how it ended, test accuracy.

    Records are the folders a training command saved (summary.json and settings.json);
    a record saved without run.json (before SIDRA HIL wrote one) shows when it was
    saved and no board. A folder holding only a run's checkpoint is listed with the step
    or epoch it last saved: running while its run still saves there, else unfinished
    (ended without its record: killed, its board gone; --resume --out FOLDER goes on
    from it). Exit 1 when
    a record cannot be read (each named on stderr; the others are listed)."""
    if sort not in SORTS:
        raise typer.BadParameter(
            f"got {sort!r}, expected one of {', '.join(SORTS)}", param_hint="'--sort'"
        )
    runs, unreadable = _runs_under(folder, job, dataset)
    if sort == "time":
        runs.sort(key=lambda r: r.started_unix_s, reverse=True)
    else:  # runs without an accuracy (drift recovery) last
        runs.sort(key=lambda r: (r.test_accuracy is not None, r.test_accuracy or 0), reverse=True)
    if limit:
        runs = runs[:limit]
    rows = [_listed(r, folder) for r in runs]
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        _print_list(rows, folder)
    _exit_if_unreadable(unreadable, "list")


LIST_COLUMNS = ("started", "record", "job", "dataset", "length", "ended", "test", "wall", "board")
DROPPED_FIRST = ("wall", "board", "length", "dataset")
"""The columns a terminal too narrow for all leaves out, first to last (``sidra runs show``
and ``--json`` have every one)."""


def _print_list(rows: list[dict[str, Any]], folder: Path) -> None:
    console = output_console()
    if not rows:
        console.print(f"no run records under {folder}")
        return
    cells = [
        {
            "started": when_text(row["started_unix_s"]), "record": row["name"],
            "job": row["job"], "dataset": row["dataset"], "length": row["length"],
            "ended": row["ended"], "test": _accuracy_text(row["test_accuracy"]),
            "wall": _wall_text(row["wall_s"]), "board": row["board"],
        }
        for row in rows
    ]  # fmt: skip
    columns = columns_that_fit(cells, LIST_COLUMNS, DROPPED_FIRST, console.width)
    table = Table(box=box.SIMPLE, title=f"runs under {folder}")
    for column in columns:
        # How a run ended may take two lines where nothing else fits; the rest stay whole.
        table.add_column(column, justify="right" if column == "test" else "left",
                         no_wrap=column != "ended", overflow="ellipsis")  # fmt: skip
    for line in cells:
        table.add_row(*(line[c] for c in columns))
    console.print(table)


def _seedless(settings: dict[str, Any]) -> str:
    """``settings`` without what differs between repeats of one experiment (its seeds,
    where its layers went, where it stopped), as a key: runs alike share it."""
    kept = {
        k: v for k, v in settings.items()
        if k != "seed" and not k.endswith("_seed") and k not in ("placement", "tiles")
        and not k.startswith((STOPPED_AT, INTERRUPTED))
    }  # fmt: skip
    return json.dumps(kept, sort_keys=True, default=str)


@runs_app.command("group")
def group_runs(
    folder: RunsFolder = Path("runs"),
    job: JobFilter = None,
    dataset: DatasetFilter = None,
    as_json: AsJson = False,
) -> None:
    """Runs that differ only by their seeds, a line each: the test accuracy's mean ± sd.

    Repeats of one experiment (the same command with --seed 0, 1, 2 ..., on one board or
    several) make a group; a line says how many, which seeds and boards, the mean and
    sample standard deviation of their test accuracy and its range, and the settings
    that tell the groups apart. Only finished runs count (those stopped or interrupted
    are said left out). Exit 1 when a record cannot be read."""
    runs, unreadable = _runs_under(folder, job, dataset)
    chosen = [r for r in runs if r.test_accuracy is not None]
    finished = [r for r in chosen if r.ended == "finished"]
    groups: dict[str, list[SavedRun]] = {}
    for run in sorted(finished, key=lambda r: r.started_unix_s):
        groups.setdefault(_seedless(run.settings), []).append(run)
    # What tells a group from the others of its kind (other kinds differ in everything).
    by_job: dict[str, list[dict[str, Any]]] = {}
    for key, members in groups.items():
        by_job.setdefault(members[0].job, []).append(json.loads(key))
    telling = {
        job: [k for k in _differing(keys) if k not in ("job", "dataset")]
        for job, keys in by_job.items()
    }
    rows = [_group_row(members, telling[members[0].job]) for members in groups.values()]
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        _print_groups(rows, folder, len(chosen) - len(finished))
    _exit_if_unreadable(unreadable, "group")


def _group_row(members: list[SavedRun], telling: list[str]) -> dict[str, Any]:
    accuracy = np.array([m.test_accuracy for m in members], np.float64)
    first = members[0].settings
    return {
        "job": members[0].job,
        "dataset": members[0].dataset,
        "runs": len(members),
        "seeds": [m.settings.get("seed") for m in members],
        "boards": sorted({m.board for m in members}),
        "records": [str(m.folder) for m in members],
        "test_accuracy_mean": float(accuracy.mean()),
        "test_accuracy_sd": float(accuracy.std(ddof=1)) if len(members) > 1 else 0.0,
        "test_accuracy_min": float(accuracy.min()),
        "test_accuracy_max": float(accuracy.max()),
        "settings": {k: first.get(k) for k in telling},
    }


def _print_groups(rows: list[dict[str, Any]], folder: Path, left_out: int) -> None:
    console = output_console()
    if not rows:
        console.print(f"no finished run records under {folder}")
    else:
        table = Table(box=box.SIMPLE, title=f"runs under {folder}, by what they ran")
        # A setting, a board a line, the header in two: rich narrows the widest columns
        # first, and a line of several settings cut them mid-name (final_learni / ng_rate).
        for column in ("job", "dataset", "settings", "runs", "seeds", "boards",
                       "test accuracy\n(mean ± sd)", "min – max"):  # fmt: skip
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                row["job"], row["dataset"],
                "\n".join(f"{k}={_value_text(v)}" for k, v in row["settings"].items()) or "—",
                str(row["runs"]),
                " ".join(str(seed) for seed in row["seeds"] if seed is not None) or "—",
                "\n".join(row["boards"]),
                *_accuracy_spread(row),
            )  # fmt: skip
        console.print(table)
    if left_out:
        console.print(f"left out: {count_text(left_out, 'run')} stopped or interrupted before "
                      "the end")  # fmt: skip


def _accuracy_spread(row: dict[str, Any]) -> tuple[str, str]:
    """A group's test accuracy, mean ± sd, and its range; a group of one run has neither
    spread nor range, and shows its accuracy alone (not ± 0.00, which reads as runs
    that agreed)."""
    mean = f"{100 * row['test_accuracy_mean']:.2f}"
    if row["runs"] == 1:
        return f"{mean} %", "—"
    return (
        f"{mean} ± {100 * row['test_accuracy_sd']:.2f} %",
        f"{100 * row['test_accuracy_min']:.2f} – {100 * row['test_accuracy_max']:.2f} %",
    )


RecordArgument = Annotated[
    Path, typer.Argument(help="A run's record folder (runs/<job>-<time>, or its --out).")
]


def _read(folder: Path, hint: str = "'RECORD'") -> SavedRun:
    try:
        return read_run(folder)
    except RecordUnreadable as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc


def _value_text(value: Any, key: str = "") -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):  # a placement's tiles, a tuned model's origin: as figures
        return figure_text(key, value)  # (it was JSON: "test_accuracy": 0.9203703703703704)
    if isinstance(value, list):
        return json.dumps(value)
    return "none" if value is None else str(value)  # as --trainable none gives it


@runs_app.command("show")
def show_run(record: RecordArgument, as_json: AsJson = False) -> None:
    """One run: where, when and by what it ran (run.json), its settings and its figures."""
    run = _read(record)
    if as_json:
        typer.echo(json.dumps({
            "record": str(run.folder), "provenance": run.provenance,
            "settings": run.settings, "summary": run.summary,
        }))  # fmt: skip
        return
    console = output_console()
    title = f"{run.job} on {run.dataset}: {run.folder} ({run.ended})"
    table = Table(title=title, show_header=False, box=box.SIMPLE)
    table.add_column("key")
    table.add_column("value", overflow="fold")
    if run.provenance is None:
        table.add_row("[bold]run[/bold]", f"saved {when_text(run.saved_unix_s)} (no run.json)")
    else:
        _add_rows(table, "[bold]run[/bold]", run.provenance)
    _add_rows(table, "[bold]settings[/bold]", run.settings)
    table.add_row("[bold]summary[/bold]", "")
    for key, value in run.summary.items():  # as the run's end printed them
        table.add_row(key, figure_text(key, value))
    console.print(table)


def _add_rows(table: Table, key: str, value: Any, depth: int = 0) -> None:
    """``key`` and ``value`` as rows: a mapping as its keys indented under it (the board,
    who saved it), a placement as its tiles, the command line as typed, anything else as
    a value."""
    if key.strip() == "placement" and isinstance(value, dict):  # layer -> tiles
        table.add_row(key, figure_text("placement", value))
    elif isinstance(value, dict) and (value or depth == 0):
        table.add_row(key, "")
        for inner, held in value.items():
            _add_rows(table, f"{'  ' * depth}{inner}", held, depth + 1)
    elif key.strip() == "parts" and isinstance(value, list):  # a run gone on: each part
        table.add_row(key, "")
        for number, part in enumerate(value, 1):
            _add_rows(table, f"{'  ' * depth}part {number}", part, depth + 1)
    elif key.strip() == "command" and isinstance(value, list):
        table.add_row(key, " ".join(map(str, value)))
    else:
        table.add_row(key, _value_text(value))


def _names(runs: list[SavedRun]) -> list[str]:
    """Each run's column name: its folder's name, or its path where two share a name."""
    names = [r.folder.name for r in runs]
    return [str(r.folder) if names.count(n) > 1 else n for r, n in zip(runs, names, strict=True)]


def _figure(run: SavedRun, key: str) -> Any:
    """A figure of ``run``'s summary; the test accuracy as :attr:`SavedRun.test_accuracy`
    has it (a comparison's: its best method's mean)."""
    return run.test_accuracy if key == "test_accuracy" else run.summary.get(key)


def _differing(values: list[dict[str, Any]], skip: frozenset[str] = frozenset()) -> list[str]:
    """The keys, in first-seen order, whose value is not the same in every dict (a key
    some lack counts as differing)."""
    keys = list(dict.fromkeys(k for v in values for k in v if k not in skip))
    missing = object()
    return [
        k for k in keys if len({json.dumps(v.get(k, missing), default=str) for v in values}) > 1
    ]


@runs_app.command("compare")
def compare_runs(
    records: Annotated[list[Path], typer.Argument(help="Two or more run record folders.")],
    every_setting: Annotated[
        bool, typer.Option("--all", help="Every setting, not only those that differ.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw every run's test accuracy against steps and against device "
            "writes, and its loss per step, into this PNG file."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Runs side by side: the settings that differ, where they ran, and their figures.

    The best test accuracy is marked. Runs of different kinds can be set side by side
    (their steps count what each counts: SPSA steps, epoch minibatches)."""
    if len(records) < 2:
        raise typer.BadParameter(
            f"got {len(records)} record, expected two or more", param_hint="'RECORDS'"
        )
    new_file(plot, "'--plot'")  # a plot kept from before is not drawn over
    runs = [_read(r, "'RECORDS'") for r in records]
    names = _names(runs)
    settings = [r.settings for r in runs]
    if every_setting:
        shown_settings = list(dict.fromkeys(k for s in settings for k in s))
    else:
        shown_settings = _differing(settings)
    provenances = [r.provenance or {} for r in runs]
    # A record without run.json says nothing of where it ran: not a difference.
    shown_provenance = _differing(
        [p for p in provenances if p], PROVENANCE_NOT_COMPARED | {"command", "saved_by"}
    )
    figures = [k for k, _ in SUMMARY_ROWS if any(_figure(r, k) is not None for r in runs)]
    if plot is not None:
        _plot(runs, names, plot)
    if as_json:
        listed = [{"name": n, "record": str(r.folder)} for n, r in zip(names, runs, strict=True)]
        typer.echo(json.dumps({
            "runs": listed,
            "settings": {k: [s.get(k) for s in settings] for k in shown_settings},
            "provenance": {k: [p.get(k) for p in provenances] for k in shown_provenance},
            "summary": {k: [_figure(r, k) for r in runs] for k in figures}
            | {"wall_s": [r.wall_s for r in runs], "ended": [r.ended for r in runs]},
        }, default=str))  # fmt: skip
        return
    _print_comparison(runs, names, shown_settings, shown_provenance, figures, every_setting)
    if plot is not None:
        output_console().print(f"plot: {plot}")


def _print_comparison(
    runs: list[SavedRun],
    names: list[str],
    shown_settings: list[str],
    shown_provenance: list[str],
    figures: list[str],
    every_setting: bool,
) -> None:
    table = Table(box=box.SIMPLE, show_lines=False)
    table.add_column("")
    for name in names:
        table.add_column(name, overflow="fold")
    table.add_row("job", *(f"{r.job} on {r.dataset}" for r in runs))
    table.add_row("started", *(when_text(r.started_unix_s) for r in runs))
    table.add_row("board", *(r.board for r in runs))
    table.add_row("ended", *(r.ended for r in runs))
    table.add_section()
    what = "settings" if every_setting else "settings that differ"
    table.add_row(f"[bold]{what}[/bold]", *("" for _ in runs))
    if not shown_settings:
        table.add_row("(none)", *("" for _ in runs))
    for key in shown_settings:
        if key in SHOWN_ABOVE and not every_setting:
            continue  # in the job row already ("mlp on digits")
        table.add_row(key, *(_value_text(r.settings.get(key, "—"), key) for r in runs))
    for key in shown_provenance:
        if key not in ("board", "board_url", "server"):  # shown above, as the board
            table.add_row(
                f"run: {key}", *(_value_text((r.provenance or {}).get(key)) for r in runs)
            )
    table.add_section()
    table.add_row("[bold]figures[/bold]", *("" for _ in runs))
    label = dict(SUMMARY_ROWS)
    accuracies = [r.test_accuracy for r in runs]
    best = max((a for a in accuracies if a is not None), default=None)
    for key in figures:
        cells = []
        for r in runs:
            value = _figure(r, key)
            if value is None:
                cells.append("—")
            elif key.endswith("accuracy"):
                mark = " (best)" if key == "test_accuracy" and value == best else ""
                cells.append(f"{100 * float(value):.2f} %{mark}")
            else:
                cells.append(f"{float(value):,.0f}")
        table.add_row(label[key], *cells)
    table.add_row("wall time", *(_wall_text(r.wall_s) or "—" for r in runs))
    output_console().print(table)


def _plot(runs: list[SavedRun], names: list[str], path: Path) -> None:
    """Test accuracy against steps and against device writes, and the loss per step
    (smoothed over a hundredth of the run), one line per run."""
    try:
        figures = [(run.checkpoints(), run.losses()) for run in runs]
    except RecordUnreadable as exc:
        raise typer.BadParameter(str(exc), param_hint="'RECORDS'") from exc
    # A compare or estimators record keeps its methods' results, not steps: three empty
    # axes were written and their path printed as if plotted.
    bare = [n for n, (c, lo) in zip(names, figures, strict=True) if not c and not lo.size]
    if len(bare) == len(runs):
        raise typer.BadParameter(
            f"none of the runs keeps figures per step (checkpoints, losses) to plot: "
            f"{', '.join(bare)}; a compare or estimators run's own plot.png shows its methods",
            param_hint="'--plot'",
        )
    if bare:
        typer.echo(f"not in the plot (no figures per step): {', '.join(bare)}", err=True)
    fig = new_figure(figsize=(15, 4))
    by_step, by_writes, loss = fig.subplots(1, 3)
    for (checkpoints, losses), name in zip(figures, names, strict=True):
        if checkpoints:
            steps = [c.step for c in checkpoints]
            accuracy = [100 * c.test_accuracy for c in checkpoints]
            by_step.plot(steps, accuracy, ".-", label=name)
            by_writes.plot([c.device_writes for c in checkpoints], accuracy, ".-", label=name)
        if losses.size:
            window = max(1, losses.size // 100)
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            loss.plot(np.arange(window, losses.size + 1), smooth, label=name)
    by_step.set_xlabel("step")
    by_step.set_ylabel("test accuracy (%)")
    by_writes.set_xlabel("device writes (cells)")
    by_writes.set_ylabel("test accuracy (%)")
    loss.set_xlabel("step")
    loss.set_ylabel("loss (smoothed)")
    for axes in (by_step, by_writes, loss):
        if axes.lines:
            axes.legend(fontsize="small")
    fig.tight_layout()
    try:
        write_atomically(path, figure_bytes(fig))
    except OSError as exc:
        raise typer.BadParameter(
            f"{path}: cannot be written ({exc})", param_hint="'--plot'"
        ) from exc
