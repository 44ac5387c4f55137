"""``sidra train``: SPSA and last-layer training jobs with records, plots and --json."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sidra.cli.options import AsJson
from sidra.client import connect
from sidra.drivers import Board, SidraError, open_board
from sidra.training import (
    LastLayerOptions,
    RecoveryOptions,
    SPSAOptions,
    SPSAStep,
    TrainingRecord,
    load_dataset,
    train_last_layer,
    train_softmax_spsa,
)

train_app = typer.Typer(no_args_is_help=True, help="Train with the board in the loop.")

Dataset = Annotated[
    str, typer.Option(help="digits, iris, wine, breast_cancer, or an .npz with X and y.")
]
BoardUrl = Annotated[str, typer.Option("--board", help="Board URL opened in-process.")]
ServerAddress = Annotated[
    str | None, typer.Option("--server", help="HOST:PORT of a remote sidra serve.")
]
Out = Annotated[Path | None, typer.Option(help="Record folder (default runs/<job>-<time>).")]
WeightLimit = Annotated[
    float, typer.Option(min=0.01, help="Weight at the edge of the conductance window.")
]

# Defaults come from the option classes: the library and the CLI cannot drift apart.
_SPSA = SPSAOptions()
_LAST_LAYER = LastLayerOptions()
_RECOVERY = RecoveryOptions()


@contextlib.contextmanager
def _board(url: str, server: str | None) -> Iterator[Board]:
    try:
        if server is not None:
            with connect(server) as remote:
                yield remote
        else:
            with open_board(url) as local:
                yield local
    except SidraError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
    )


def _finish(
    record: TrainingRecord,
    dataset: str,
    job: str,
    out: Path | None,
    as_json: bool,
    console: Console,
) -> None:
    record.settings["dataset"] = dataset
    folder = record.save(out or Path("runs") / f"{job}-{time.strftime('%Y%m%d-%H%M%S')}")
    summary = record.summary() | {"record": str(folder)}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"{job} on {dataset}", show_header=False)
    for key, value in summary.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


@train_app.command("spsa")
def spsa(
    dataset: Dataset = "digits",
    steps: Annotated[int, typer.Option(min=1)] = _SPSA.steps,
    seed: Annotated[int, typer.Option(min=0)] = _SPSA.seed,
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    mode: Annotated[
        str, typer.Option(help="board (Perturb RPC) or host (host-held).")
    ] = _SPSA.mode,
    resamplings: Annotated[int, typer.Option(min=1)] = _SPSA.resamplings,
    program_every: Annotated[
        int, typer.Option(min=1, help="Host mode: steps per Program.")
    ] = _SPSA.program_every,
    a: Annotated[
        float | None, typer.Option(help="Learning-rate gain; omit to calibrate.")
    ] = _SPSA.a,
    c: Annotated[
        float | None, typer.Option(help="Perturbation gain; omit to calibrate.")
    ] = _SPSA.c,
    calibrate: Annotated[bool, typer.Option(help="Calibrate a and c by Spall's rules.")] = False,
    blocking: bool = _SPSA.blocking,
    last_avg: Annotated[int, typer.Option(min=1)] = _SPSA.last_avg,
    batch_size: Annotated[int, typer.Option(min=1)] = _SPSA.batch_size,
    weight_limit: WeightLimit = _SPSA.weight_limit,
    checkpoint_every: Annotated[
        int, typer.Option(min=0, help="Save <out>/checkpoint.json every N steps (0: never).")
    ] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from <out>/checkpoint.json.")] = False,
    out: Out = None,
    as_json: AsJson = False,
) -> None:
    """SPSA training of a softmax layer (features → classes) on the board."""
    if mode not in ("board", "host"):
        raise typer.BadParameter(f"mode: got {mode!r}, expected board or host")
    console = Console(stderr=as_json)
    if resume and out is None:
        raise typer.BadParameter("--resume needs --out, the folder holding checkpoint.json")
    out = out or Path("runs") / f"spsa-{time.strftime('%Y%m%d-%H%M%S')}"
    data = load_dataset(dataset)
    options = SPSAOptions(
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        a=None if calibrate else a,
        c=None if calibrate else c,
        resamplings=resamplings,
        mode=mode,  # type: ignore[arg-type]
        program_every=program_every,
        blocking=blocking,
        last_avg=last_avg,
        eval_every=max(1, steps // 20),
        weight_limit=weight_limit,
    )
    with _board(board, server) as target, _progress(console) as progress:
        task = progress.add_task("spsa", total=steps, status="")

        def on_step(step: SPSAStep) -> None:
            if step.step % 10 == 0 or step.step == steps:
                progress.update(task, completed=step.step, status=f"loss {step.loss:.3f}")

        try:
            record = train_softmax_spsa(
                target,
                data,
                options,
                on_step=on_step,
                checkpoint=out / "checkpoint.json",
                checkpoint_every=checkpoint_every,
                resume=resume,
            )
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(str(exc)) from exc
    _finish(record, dataset, "spsa", out, as_json, console)


@train_app.command("last-layer")
def last_layer(
    dataset: Dataset = "digits",
    epochs: Annotated[int, typer.Option(min=1)] = _LAST_LAYER.epochs,
    seed: Annotated[int, typer.Option(min=0)] = _LAST_LAYER.seed,
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[int, typer.Option(min=1, help="Random ReLU features.")] = _LAST_LAYER.hidden,
    trainable: Annotated[
        int, typer.Option(min=1, max=2, help="Layers trained.")
    ] = _LAST_LAYER.trainable,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = _LAST_LAYER.learning_rate,
    final_learning_rate: Annotated[
        float | None, typer.Option(min=0.0, help="Reached by linear decay in the last epoch.")
    ] = _LAST_LAYER.final_learning_rate,
    batch_size: Annotated[int, typer.Option(min=1)] = _LAST_LAYER.batch_size,
    read_repeats: Annotated[
        int, typer.Option(min=1, help="Analog passes averaged per input (noise / √n).")
    ] = _LAST_LAYER.read_repeats,
    digital_bias: Annotated[
        bool, typer.Option(help="Biases added on the host, not a bias row on the array.")
    ] = _LAST_LAYER.digital_bias,
    head_weight_limit: WeightLimit = _LAST_LAYER.head_weight_limit,
    out: Out = None,
    as_json: AsJson = False,
) -> None:
    """Fixed random feature layer on the board, head trained with exact gradients."""
    console = Console(stderr=as_json)
    data = load_dataset(dataset)
    options = LastLayerOptions(
        hidden=hidden,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        final_learning_rate=final_learning_rate,
        trainable=trainable,
        seed=seed,
        read_repeats=read_repeats,
        digital_bias=digital_bias,
        head_weight_limit=head_weight_limit,
    )
    with _board(board, server) as target, _progress(console) as progress:
        task = progress.add_task("last-layer", total=epochs, status="")
        record = train_last_layer(
            target,
            data,
            options,
            on_epoch=lambda e, acc: progress.update(
                task, completed=e, status=f"test {100 * acc:.2f} %"
            ),
        )
    _finish(record, dataset, "last-layer", out, as_json, console)


@train_app.command("compare")
def compare(
    dataset: Dataset = "digits",
    budget: Annotated[
        int, typer.Option(min=1, help="Loss evaluations each estimator may spend.")
    ] = 20_000,
    seed: Annotated[int, typer.Option(min=0)] = 0,
    a: Annotated[float, typer.Option(min=0.0, help="Learning-rate gain (Spall).")] = 0.5,
    c: Annotated[float, typer.Option(min=0.0, help="Perturbation size, weight units.")] = 0.2,
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    as_json: AsJson = False,
) -> None:
    """SPSA, central differences, forward gradient and antithetic ES on one budget."""
    from sidra.training.compare import compare_estimators, standard_estimators

    console = Console(stderr=as_json)
    data = load_dataset(dataset)
    table = Table(title=f"estimators on {dataset}, {budget:,} loss evaluations each")
    for column in ("estimator", "steps", "evaluations", "test accuracy", "MVM calls", "writes"):
        table.add_column(column)
    with _board(board, server) as target:
        try:
            results = compare_estimators(
                target,
                data,
                budget,
                estimators=standard_estimators(c),
                a=a,
                seed=seed,
                on_result=lambda r: console.log(f"{r.name}: {100 * r.test_accuracy:.2f} %"),
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results]))
        return
    for r in results:
        table.add_row(
            r.name,
            f"{r.steps:,}",
            f"{r.loss_evaluations:,}",
            f"{100 * r.test_accuracy:.2f} %",
            f"{r.mvm_calls:,}",
            f"{r.device_writes:,}",
        )
    console.print(table)


@train_app.command("drift-recovery")
def drift_recovery_command(
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=pcm&seed=0",
    age_days: Annotated[
        float, typer.Option(min=0.0, help="Board time to age, days.")
    ] = _RECOVERY.age_s / 86_400.0,
    calibrate: Annotated[
        bool, typer.Option(help="Global drift compensation of every tile before retraining.")
    ] = _RECOVERY.calibrate,
    epochs: Annotated[int, typer.Option(min=1)] = _RECOVERY.epochs,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = _RECOVERY.learning_rate,
    threshold: Annotated[
        float, typer.Option(min=0.0, help="Reprogram a head cell once it moved this far.")
    ] = _RECOVERY.threshold,
    read_repeats: Annotated[
        int, typer.Option(min=1, help="Analog passes averaged per input while retraining.")
    ] = _RECOVERY.read_repeats,
    eval_read_repeats: Annotated[
        int, typer.Option(min=1, help="Analog passes averaged per input to measure accuracy.")
    ] = _RECOVERY.eval_read_repeats,
    reference_column: Annotated[
        bool, typer.Option(help="Offset mapping with a drifting reference column.")
    ] = _RECOVERY.reference_column,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the digital net and shuffles.")
    ] = _RECOVERY.seed,
    as_json: AsJson = False,
) -> None:
    """Deploy a digitally trained 64→H→10 net, age the board, calibrate, retrain the last layer."""
    from sidra.training.recovery import drift_recovery

    data = load_dataset(dataset)
    options = RecoveryOptions(
        age_s=age_days * 86_400.0,
        calibrate=calibrate,
        epochs=epochs,
        learning_rate=learning_rate,
        threshold=threshold,
        read_repeats=read_repeats,
        eval_read_repeats=eval_read_repeats,
        reference_column=reference_column,
        seed=seed,
    )
    with _board(board, None) as target:
        report = drift_recovery(target, data, options)
    summary = {
        "digital_accuracy": report.digital_accuracy,
        "deployed_accuracy": report.deployed_accuracy,
        "aged_accuracy": report.aged_accuracy,
        "calibrated_accuracy": report.calibrated_accuracy,
        "recovered_accuracy": report.recovered_accuracy,
        "recovered_fraction": report.recovered_fraction,
        "retraining_fraction": report.retraining_fraction,
        "device_writes": report.device_writes,
        "calibration_gains": list(report.calibration_gains),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        if isinstance(value, float):
            typer.echo(f"{key:20s} {value:.4f}")
        elif isinstance(value, list):
            typer.echo(f"{key:20s} {' '.join(f'{g:.3f}' for g in value)}")
        else:
            typer.echo(f"{key:20s} {value}")
