"""``sidra train compare``: every estimator and training algorithm on one budget."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sidra.cli.job_board import job_board
from sidra.cli.options import AsJson, field_option, job_options
from sidra.cli.train.like import Like
from sidra.cli.train.params import (
    ANY_TILE,
    BoardUrl,
    Dataset,
    Out,
    Priority,
    QueueJob,
    RemoteJob,
    ServerAddress,
    queue_needs_remote_job,
)
from sidra.cli.train.running import (
    StopRequest,
    dataset_named,
    exit_if_stopped,
    record_folder,
    run_clock,
    run_remote,
    save_or_keep,
    saving_into,
    stop_on_interrupt,
)
from sidra.training import CompareOptions, Comparison, MethodName, MethodResult
from sidra.training.atomic_files import write_atomically
from sidra.training.compare_record import PLANNED_RUNS
from sidra.training.records import PLOT_FILE

__all__ = ["compare"]


_COMPARE = CompareOptions()
_METHODS = list(_COMPARE.methods)
_COMPARE_SEEDS = list(_COMPARE.seeds)
_compare = functools.partial(field_option, CompareOptions)


def compare(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    budget: Annotated[int, _compare("budget")] = _COMPARE.budget,
    a: Annotated[float, _compare("a")] = _COMPARE.a,
    c: Annotated[float, _compare("c")] = _COMPARE.c,
    seeds: Annotated[list[int], _compare("seeds", "--seeds", "--seed")] = _COMPARE_SEEDS,
    batch_size: Annotated[int, _compare("batch_size")] = _COMPARE.batch_size,
    program_every: Annotated[int, _compare("program_every")] = _COMPARE.program_every,
    tiles: Annotated[list[int], _compare("tiles", "--tiles", "--tile")] = ANY_TILE,
    methods: Annotated[
        list[MethodName],
        # METHOD: the list of every choice is the default shown beside it.
        _compare("methods", "--methods", "--method", "--estimator", metavar="METHOD"),
    ] = _METHODS,
    out: Out = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    like: Like = None,
    as_json: AsJson = False,
) -> None:
    """Every estimator and training algorithm on one budget and one board, per seed.

    One loss-evaluation budget for all; mean and spread per method, a record with a
    plot.

    Ctrl-C stops after the method run under way and keeps the runs so far, with their
    plot (exit 130); a second Ctrl-C stops at once."""
    from sidra.training.compare import compare_methods

    options = job_options(CompareOptions, ctx)
    console = Console(stderr=as_json, log_path=False)  # lines stamped with the time only
    queue_needs_remote_job(queue, remote_job, priority, ctx)
    folder = record_folder(out, "compare")
    total = len(options.seeds) * len(options.methods)
    settings = options.settings() | {"job": "compare", "dataset": dataset, PLANNED_RUNS: total}
    stop: StopRequest | None = None  # a --remote-job is stopped by cancelling it
    if remote_job:
        summary = run_remote(
            server, "compare", options, dataset, folder, console, queue=queue, priority=priority
        )
        runs = [MethodResult(**r) for r in summary["runs"]]
        comparison = Comparison(settings, runs)
        if not (folder / PLOT_FILE).is_file():  # a server before records carried their plot
            comparison.plot(folder / PLOT_FILE)
    else:
        data = dataset_named(dataset)
        # Every finished run is in the record at once (runs.csv, summary.json): a long
        # comparison stopped midway keeps what it measured.
        partial = Comparison(settings)

        def on_result(r: MethodResult) -> None:
            console.log(f"{r.name}, seed {r.seed}: {100 * r.test_accuracy:.2f} %")
            partial.runs.append(r)
            for name, content in partial.files().items():
                # Whole files only: a stop mid-write leaves the previous version.
                write_atomically(folder / name, content)

        run = run_clock(board, server)
        with saving_into(folder):  # its record grows run by run: shown running meanwhile
            with (
                job_board(board, server, holding="sidra train compare") as target,
                stop_on_interrupt(console, "run") as stop,
            ):
                run.on(target)
                comparison = compare_methods(target, data, options, on_result=on_result, stop=stop)
            comparison.settings["dataset"] = dataset
            save_or_keep(comparison.save, folder, "compare", run)
    if as_json:
        typer.echo(json.dumps(comparison.summary() | {"record": str(folder)}))
    else:
        _print_comparison(comparison, options, dataset, folder, console)
    exit_if_stopped(
        comparison.settings, total, console, kept="the record holds the runs so far", stop=stop
    )


def _print_comparison(
    comparison: Comparison, options: CompareOptions, dataset: str, folder: Path, console: Console
) -> None:
    title = (
        f"methods on {dataset}, {options.budget:,} loss evaluations per run, "
        f"seeds {', '.join(map(str, options.seeds))}"
    )
    table = Table(title=title)
    for column in ("method", "test accuracy (mean ± sd)", "min – max", "steps", "evaluations",
                   "MVM calls", "writes"):  # fmt: skip
        table.add_column(column)
    for m in comparison.summaries():
        table.add_row(
            m.name,
            f"{100 * m.test_accuracy:.2f} ± {100 * m.test_accuracy_std:.2f} %",
            f"{100 * m.test_accuracy_min:.2f} – {100 * m.test_accuracy_max:.2f} %",
            f"{m.steps:,.0f}",
            f"{m.loss_evaluations:,.0f}",
            f"{m.mvm_calls:,.0f}",
            f"{m.device_writes:,.0f}",
        )
    console.print(table)
    console.print(f"record: {folder}")
