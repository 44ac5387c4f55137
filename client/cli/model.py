"""``sidra model``: a trained network (model.npz in a run's record) shown, evaluated on a
board, or run on new samples there."""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import zipfile
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from sidra.cli.completion import board_urls
from sidra.cli.consoles import output_console
from sidra.cli.eval_log import append_row, checked_log, log_row
from sidra.cli.job_board import job_board
from sidra.cli.model_deployments import (
    check_regions,
    check_registration,
    leased,
    register,
    target_of,
)
from sidra.cli.model_files import ModelPath, OptionalModelPath, Target, file_target
from sidra.cli.numpy_files import load_numpy
from sidra.cli.options import AsJson, give_server, new_file
from sidra.cli.recorded_dataset import fetched, not_here, recorded_file
from sidra.cli.sample_files import answers_csv, answers_file, checked_answers_path, read_samples
from sidra.cli.texts import count_text, tiles_text
from sidra.cli.train.params import ANY_TILE, BoardUrl, ServerAddress
from sidra.cli.train.running import dataset_named
from sidra.client import RemoteBoard
from sidra.drivers import Board, InvalidArgument, NotFound
from sidra.drivers.validation import to_float32
from sidra.training import BUNDLED, Dataset, load_dataset
from sidra.training.analog_layer import Mapping
from sidra.training.atomic_files import write_atomically
from sidra.training.deployment import (
    DeployedModel,
    LayerProgramming,
    ModelEvaluation,
    ModelNotHeld,
)
from sidra.training.importing import SCALING_ARRAYS, model_from_weights
from sidra.training.model import TrainedModel
from sidra.training.placement import refuse_deployed

__all__ = [
    "Calibrate",
    "DeploymentOption",
    "Held",
    "Tiles",
    "board_name",
    "deploy",
    "evaluate",
    "held_options",
    "import_weights",
    "labelled",
    "predict",
    "print_programming",
    "tiles_for",
]

DeploymentOption = Annotated[
    str | None,
    typer.Option(
        "--deployment",
        help="Run the model deployed under this name on the --server's board (sidra model "
        "deploy --name), as its tiles hold it: --held on its tiles, refused when they were "
        "programmed with anything else since. A MODEL given too must be its file.",
    ),
]
ReadRepeats = Annotated[
    int,
    typer.Option(
        "--read-repeats", min=1, help="Analog passes averaged per input vector and layer."
    ),
]
Held = Annotated[
    bool,
    typer.Option(
        "--held",
        help="Write nothing: run the model as tiles programmed earlier hold it (sidra model "
        "deploy, the same --tiles), aged as they are; refused when they hold something else.",
    ),
]
Calibrate = Annotated[
    bool,
    typer.Option(
        "--calibrate",
        help="Calibrate the model's tiles before running it: the board rescales each "
        "tile's outputs so that a probe reads as when its cells were programmed (a common "
        "drift cancels; the gains are reported). It changes the tiles' output gains.",
    ),
]
Tiles = Annotated[
    list[int],
    typer.Option(
        "--tiles",
        "--tile",
        help="Tiles the layers may go on, in order (default: any, those no other session "
        "leases and no deployed model holds first; with --held, 0 first).",
    ),
]


class Split(StrEnum):
    """Which samples of the data set an evaluation runs."""

    TEST = "test"
    TRAIN = "train"
    ALL = "all"


BOARD_DEFAULT: list[str] = ["emu://"]
"""--board not given: the default in-process emulator."""


def evaluate(
    model: OptionalModelPath = None,
    deployment: DeploymentOption = None,
    boards: Annotated[
        list[str],
        typer.Option(
            "--board",
            help="Board URL opened in-process. Given several times, the model runs on each "
            "in turn and the spread of its accuracy across them is reported (one chip to "
            "the next, or one emulated device draw to the next: ...&seed=1, ...&seed=2).",
            autocompletion=board_urls,
        ),
    ] = BOARD_DEFAULT,
    server: ServerAddress = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="The labelled data: digits, iris, wine, breast_cancer, an .npz with X and "
            "y, or a .csv of a sample per line, its label last; split as the model was "
            "trained (default: the model's own data set)."
        ),
    ] = None,
    split: Annotated[Split, typer.Option(help="Which samples to run.")] = Split.TEST,
    read_repeats: ReadRepeats = 1,
    tiles: Tiles = ANY_TILE,
    held: Held = False,
    calibrate: Calibrate = False,
    log: Annotated[
        Path | None,
        typer.Option(
            help="Append one CSV row of this evaluation to this file (made with its header "
            "when new; a row per board): a model run every day with --held shows its drift "
            "over time."
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write the confusion matrix as a figure (.png, .svg or .pdf; one board); an "
            "existing file is not written over."
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Program a model onto a board and measure it: accuracy, recall, cost per sample.

    Also the confusion matrix (--json) and what write-verify reached on each layer. The
    board's tiles the model goes on are written (a served board's are leased for the
    call): use --tiles to keep it off tiles in use. The data set is split as when the
    model was trained, so --split test runs samples it never saw. With --board given
    several times, each board in turn, and the accuracy's mean, spread and worst.
    """
    if log is not None:
        checked_log(log)
    if len(boards) > 1:
        if server is not None:
            raise typer.BadParameter(
                "--server runs the model on the board it serves; several --board URLs are "
                "opened here", param_hint="'--board'",
            )  # fmt: skip
        if plot is not None:
            raise typer.BadParameter(
                f"draws one board's confusion matrix; got {len(boards)} --board URLs",
                param_hint="'--plot'",
            )
    if plot is not None:
        new_file(plot, "'--plot'")
    held, tiles = held_options(deployment, server, held, tiles)
    # Read and checked once, before any board is opened (every board runs the same file).
    file = None if model is None else file_target(model)
    runs = []
    for url in boards:
        with job_board(url, server, "sidra model eval", holding="sidra model eval") as opened:
            target = target_of(opened, file, deployment)
            data = labelled(
                target.model, dataset, None if file is None else Path(file.label), opened
            )
            x, y = _samples_of(target.model, data, split)
            deployed = _deployed(
                target.model, opened, tiles_for(target, tiles, opened, held), read_repeats, held,
                calibrate, deployment,
            )  # fmt: skip
            check_regions(target, deployed)
            runs.append((board_name(opened), deployed, deployed.evaluate(x, y), target, data))
    reports = [
        {
            "model": target.label,
            "board": where,
            "dataset": data.name,
            "split": split.value,
            **result.to_json(),
            "trained_test_accuracy": target.model.trained.get("test_accuracy"),
            "placement": deployed.placement.summary(),
            "programming": [p.to_json() for p in deployed.programming],
            "held": [h.to_json() for h in deployed.held],
            "calibration_gains": {str(tile): g for tile, g in deployed.gains.items()},
        }
        for where, deployed, result, target, data in runs
    ]
    if log is not None:
        for where, deployed, result, target, data in runs:
            row = log_row(
                target.label, target.data, where, data.name, split.value, deployed, result
            )
            append_row(log, row)
    if plot is not None:
        [(where, _, result, target, data)] = runs
        result.plot(plot, f"{target.label} on {where} ({data.name}, {split.value})")
    if len(runs) > 1:
        _report_boards(reports, as_json)
        return
    if as_json:
        typer.echo(json.dumps(reports[0]))
        return
    [(_, deployed, result, _, _)] = runs
    _print_evaluation(reports[0], result, deployed, output_console())


def _samples_of(
    model: TrainedModel, data: Dataset, split: Split
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """The samples of ``split`` as ``model`` takes them (scaled with its own training
    statistics, whatever file they come from), and their labels."""
    if split is Split.TEST:
        x, y = data.x_test, data.y_test
    elif split is Split.TRAIN:
        x, y = data.x_train, data.y_train
    else:
        x = np.vstack([data.x_train, data.x_test])
        y = np.concatenate([data.y_train, data.y_test])
    return model.inputs.take(data, x), y


def _report_boards(reports: list[dict[str, Any]], as_json: bool) -> None:
    """An evaluation on several boards: each board's, then the accuracy's spread."""
    accuracies = np.array([r["accuracy"] for r in reports])
    spread = {
        "boards": len(reports),
        "mean": float(accuracies.mean()),
        "std": float(accuracies.std(ddof=1)),
        "min": float(accuracies.min()),
        "max": float(accuracies.max()),
    }
    if as_json:
        first = reports[0]
        typer.echo(json.dumps({
            "model": first["model"], "dataset": first["dataset"], "split": first["split"],
            "trained_test_accuracy": first["trained_test_accuracy"], "accuracy": spread,
            "boards": reports,
        }))  # fmt: skip
        return
    first = reports[0]
    table = Table(title=f"{first['model']} on {len(reports)} boards ({first['dataset']}, "
                  f"{first['split']})")  # fmt: skip
    for column in ("board", "accuracy", "unconverged cells", "time / sample", "energy / sample"):
        table.add_column(column, justify="left" if column == "board" else "right")
    for r in reports:
        unconverged = sum(p["unconverged_cells"] for p in r["programming"])
        table.add_row(
            r["board"], f"{100 * r['accuracy']:.2f} %",
            str(unconverged) if r["programming"] else "-",
            f"{r['time_per_sample_ns']:.1f} ns", f"{r['energy_per_sample_nj']:.1f} nJ",
        )  # fmt: skip
    console = output_console()
    console.print(table)
    trained = first["trained_test_accuracy"]
    when = f"; {100 * trained:.2f} % when trained (test)" if isinstance(trained, float) else ""
    console.print(
        f"accuracy {100 * spread['mean']:.2f} ± {100 * spread['std']:.2f} % (mean ± standard "
        f"deviation over {len(reports)} boards), worst {100 * spread['min']:.2f} %, best "
        f"{100 * spread['max']:.2f} %{when}"
    )


def deploy(
    model: ModelPath,
    board: BoardUrl = "emu://",
    server: ServerAddress = None,
    tiles: Tiles = ANY_TILE,
    name: Annotated[
        str | None,
        typer.Option(
            help="Keep it on the --server under this name (sidra model list): anyone using "
            "the board then runs it with --deployment NAME, and learns when its tiles are "
            "written over. 1-64 of A-Z a-z 0-9 . _ -",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option(help="With --name: in place of your deployment of that name.")
    ] = False,
    protect: Annotated[
        bool,
        typer.Option(
            help="With --name: the server refuses other principals' writes to its tiles' "
            "cells (Program, Perturb, Calibrate, their jobs) until it is undeployed."
        ),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Program a model onto a board and leave it there, to run later with --held.

    Prints where each layer went and what write-verify reached. sidra model eval or
    predict with --held and the same --tiles then run it as the tiles hold it, drifted
    as they are by then, without writing again; with --name, --deployment NAME finds its
    tiles on the server. An in-process emulator (emu://) forgets its tiles when the
    command ends: deploy to a served board (--server) or a board URL.
    """
    target = file_target(model)
    loaded = target.model
    if name is not None and server is None:
        raise typer.BadParameter(
            f"a deployment is kept by a server: {give_server()}", param_hint="'--name'"
        )
    if server is None and board.startswith("emu://"):
        raise typer.BadParameter(
            f"got {board}: an in-process emulator forgets what it holds when this command "
            f"ends; {give_server()}, or a board that keeps its tiles (serial://, pcie://)",
            param_hint="'--board'",
        )
    if (replace or protect) and name is None:
        raise typer.BadParameter(
            f"--{'replace' if replace else 'protect'} is for a deployment kept by name: give --name"
        )
    registered = None
    with job_board(board, server, "sidra model deploy") as opened:
        # Asked once: the registration checked first is of the placement programmed next.
        use = None if tiles else opened.tile_use()  # given no tiles: free ones first
        if use is not None:
            tiles = list(use.order(opened.info.tile_count))
        if name is None:
            planned = DeployedModel.planned_regions(loaded, opened, tiles)
        else:  # every refusal of the registration before anything is written
            planned = check_registration(opened, name, target, tiles, replace, protect)
        if use is not None:  # no deployment written over unasked, but the one replaced
            refuse_deployed(use, [t for t, _ in planned], _replaced_tiles(opened, name, replace))
        # Every tile leased before the first Program (a served board): a tile another
        # session holds refuses the deploy before any tile is written, not halfway.
        holding = leased(opened, name, planned) if isinstance(opened, RemoteBoard) else None
        try:
            with holding or contextlib.nullcontext():
                deployed = loaded.deploy(opened, tiles=tiles)
                if name is not None:
                    registered = register(
                        opened, name, target, deployed.regions(), replace, protect
                    )
        except KeyboardInterrupt:
            written = ", ".join(str(t) for t in sorted({t for t, _ in planned}))
            typer.echo(
                f"sidra model deploy: interrupted while programming: tiles {written} may hold "
                "part of the model"
                + (f", and nothing was registered as {name!r}" if name is not None else "")
                + "; deploy it again to finish",
                err=True,
            )
            raise typer.Exit(130) from None
        where = board_name(opened)
    report = {
        "model": str(model),
        "board": where,
        "placement": deployed.placement.summary(),
        "programming": [p.to_json() for p in deployed.programming],
        "deployment": None if registered is None else registered.as_dict(),
    }
    if as_json:
        typer.echo(json.dumps(report))
        return
    console = output_console()
    console.print(f"{model} deployed on {where}")
    print_programming(deployed.programming, console)
    if registered is not None:
        console.print(
            f"kept as {registered.name!r}: sidra model eval --deployment {registered.name} "
            f"--server {server}"
        )
        return
    # In placement order: the same --tile list places every layer as here.
    order = [t for tiles in deployed.placement.tiles.values() for t in tiles]
    used = " ".join(f"--tile {t}" for t in order)
    # The whole command, to be run as printed: it said "(and the same board)".
    place = ("--server", server) if server is not None else ("--board", board)
    same_board = f"{place[0]} {shlex.quote(place[1])}"
    console.print(
        f"run it as held: sidra model eval {shlex.quote(str(model))} --held {used} {same_board}",
        markup=False, highlight=False,
    )  # fmt: skip


def import_weights(
    weights: Annotated[
        Path,
        typer.Argument(
            help="An .npz of the software network's weights: layer0, layer1, ... each "
            "\\[inputs + 1, outputs], the last row the bias, ReLU between layers; and, when "
            "its training scaled the raw features other than by standardising them on the "
            "training part, feature_mean and feature_scale ((raw - mean) / scale; one value "
            "per feature or one for all).",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help="The data it was trained on (digits, iris, wine, breast_cancer, an .npz "
            "with X and y, or a .csv of a sample per line, its label last): its labels "
            "and split go into the model with the feature scaling (its training part's mean "
            "and standard deviation, unless the weights file has its own), its training "
            "part calibrates the input ranges."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="The model file to write; an existing file is not written over.")
    ],
    mapping: Annotated[
        Mapping, typer.Option(help="One cell per weight (offset) or a pair of columns per output.")
    ] = Mapping.OFFSET,
    digital_bias: Annotated[
        bool, typer.Option(help="Add each bias on the host after the ADC, not on a row.")
    ] = False,
    reference_column: Annotated[
        bool,
        typer.Option(
            help="Offset mapping: one column per tile at the reference conductance, "
            "subtracted from the others on the array, so that drift common to a tile's "
            "cells cancels (a year of PCM drift, uncalibrated: 94–96 % kept instead of "
            "60–68 %)."
        ),
    ] = False,
    input_percentile: Annotated[
        float,
        typer.Option(
            help="Each layer's input range: this percentile of |inputs| over the training "
            "samples maps to the full read voltage (larger ones clip).",
        ),
    ] = 99.9,
    as_json: AsJson = False,
) -> None:
    """Make a model of a network trained in software, to deploy with sidra model.

    Each layer's weight limit is set just above its largest weight on the array and its
    input range from the training samples; the digital test accuracy is kept in the model.
    """
    new_file(out)
    try:
        held = load_numpy(weights)
        if isinstance(held, np.ndarray):
            raise ValueError("an .npy holds one array, expected an .npz of layer0, layer1, ...")
        with held:
            scaling = {key: held[key] for key in SCALING_ARRAYS if key in held.files}
            names = sorted(set(held.files) - set(scaling), key=lambda n: (len(n), n))
            wanted = [f"layer{k}" for k in range(len(names))]
            if names != wanted:
                raise ValueError(
                    f"holds {names}, expected {wanted or ['layer0']} (and, if its training "
                    f"scaled the features its own way, {' and '.join(SCALING_ARRAYS)})"
                )
            matrices = [held[name] for name in names]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise typer.BadParameter(f"{weights}: {exc}", param_hint="WEIGHTS") from exc
    data = dataset_named(dataset)
    try:
        made = model_from_weights(
            matrices, data, mapping=mapping, digital_bias=digital_bias,
            reference_column=reference_column, input_percentile=input_percentile,
            feature_mean=scaling.get("feature_mean"), feature_scale=scaling.get("feature_scale"),
        )  # fmt: skip
    except InvalidArgument as exc:
        hints = {"input_percentile": "'--input-percentile'", "reference_column": "'--mapping'"}
        hint = hints.get(exc.field, "WEIGHTS")
        if exc.field in SCALING_ARRAYS:
            raise typer.BadParameter(f"{weights}: {exc}", param_hint=hint) from exc
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
    made.save(out)
    if as_json:
        typer.echo(json.dumps(made.meta()))
        return
    accuracy = made.trained["test_accuracy"]
    scaled = (
        f"the features scaled with {weights.name}'s {' and '.join(scaling)}"
        if scaling
        else f"the features standardised with the training part of {data.name}"
    )
    typer.echo(f"{out}: {len(made.layers)} layers, digital test accuracy "
               f"{100 * accuracy:.2f} % on {data.name} ({scaled})", err=True)  # fmt: skip


def _deployed(
    model: TrainedModel,
    board: Board,
    tiles: list[int],
    read_repeats: int,
    held: bool,
    calibrate: bool,
    deployment: str | None = None,
) -> DeployedModel:
    """``model`` on ``board``, programmed or (``held``) found there, then calibrated if
    asked; tiles that do not hold it are a usage error naming --held, or for a
    ``deployment`` (held without --held) why a deployment's tiles may not hold it."""
    try:
        return model.deploy(
            board, tiles=tiles, read_repeats=read_repeats, held=held, calibrate=calibrate
        )
    except ModelNotHeld as exc:
        if deployment is None:
            raise typer.BadParameter(str(exc), param_hint="'--held'") from exc
        raise typer.BadParameter(
            f"deployment {deployment!r} is not on the board now: {exc}. The board may have "
            "restarted under a server started without --restore (sidra serve --restore "
            "programs the store's targets back), or its cells were written around the "
            "server; deploying it again rewrites them",
            param_hint="'--deployment'",
        ) from exc


def held_options(
    deployment: str | None, server: str | None, held: bool, tiles: list[int]
) -> tuple[bool, list[int]]:
    """--held and --tiles as a command runs them: a --deployment is held on its own tiles
    (taken from the server), so it needs --server and no --tiles."""
    if deployment is None:
        return held, tiles
    if server is None:
        raise typer.BadParameter(
            f"a deployment is kept by a server: {give_server()}", param_hint="'--deployment'"
        )
    if tiles:
        raise typer.BadParameter(
            f"got --tiles {tiles}; a deployment runs on the tiles it was deployed on",
            param_hint="'--tiles'",
        )
    return True, tiles


def _replaced_tiles(board: Board, name: str | None, replace: bool) -> tuple[int, ...]:
    """The tiles of the deployment ``--name NAME --replace`` replaces (none without one)."""
    if name is None or not replace or not isinstance(board, RemoteBoard):
        return ()
    try:
        return board.deployments.get(name).tiles
    except NotFound:
        return ()


def tiles_for(target: Target, tiles: list[int], board: Board, held: bool) -> list[int]:
    """The tiles a model runs on: its deployment's, in placement order, or ``tiles``; none
    given, a model programmed now takes the tiles nobody else uses first (tile_order),
    one found ``held`` those a deployment given no tiles took (0 first)."""
    if target.deployment is not None:
        return list(target.deployment.tiles)
    if held:
        return tiles
    use = board.tile_use()
    if tiles:  # written over as asked; said now, not at the deployment's next check
        over = sorted(set(tiles) & use.deployed)
        if over:
            typer.echo(
                f"note: {tiles_text(over)} {'holds' if len(over) == 1 else 'hold'} a deployed "
                "model (sidra model list names it), written over now as --tile asks; "
                "--deployment NAME runs a deployment where it is",
                err=True,
            )
        return tiles
    order = list(use.order(board.info.tile_count))
    # A colleague's deployment is not written over by a model given no tiles.
    planned = DeployedModel.planned_regions(target.model, board, order)
    refuse_deployed(use, [t for t, _ in planned])
    return order


def labelled(
    model: TrainedModel, dataset: str | None, path: Path | None = None, board: Board | None = None
) -> Dataset:
    """The labelled samples an evaluation runs, split as ``model`` was trained. Given no
    ``dataset``, the model's bundled set, or the file the run that trained it read, as its
    record's settings.json (beside the model file at ``path``) names it: here, or read
    back from the server of ``board`` when it keeps that file (sidra.cli.recorded_dataset)."""
    name = dataset or model.inputs.dataset
    recorded = None if dataset is not None else recorded_file(path)
    # A file its record names goes first: it may bear a bundled set's name (iris.csv).
    if dataset is None and (recorded is not None or name not in BUNDLED):
        found = None if recorded is None else recorded.found or fetched(recorded, board)
        if found is None:
            raise typer.BadParameter(
                f"the model was trained on {name}{not_here(recorded, board)}",
                param_hint="'--dataset'",
            )
        name = str(found)
    try:
        data = load_dataset(
            name, test_size=model.inputs.test_size, random_state=model.inputs.random_state
        )
        model.check_data(data)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="'--dataset'") from exc
    if recorded is not None and recorded.sha256 and data.sha256 != recorded.sha256:
        raise typer.BadParameter(
            f"{name}, the data set file its record names, has changed since the run (SHA-256 "
            f"{recorded.sha256[:16]}… then, {data.sha256[:16]}… now): give --dataset to "
            "evaluate on it all the same",
            param_hint="'--dataset'",
        )
    return data


def predict(
    inputs: Annotated[
        Path,
        typer.Option(
            help="Samples to classify: an .npy of \\[samples, features], an .npz with X, or "
            "a .csv of one sample per line (a header line is skipped); raw features "
            "(scaled as the model was trained: its feature_mean and feature_scale) unless "
            "--standardized.",
        ),
    ],
    model: OptionalModelPath = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The .npz to write: labels (text), classes (indices) and logits \\[samples, "
            "classes] (goodness for a forward-forward model); or a .csv of a line per "
            "sample: label, class, a score per class. An existing file is not written over. "
            "None: the .csv lines go to standard output.",
            show_default=False,
        ),
    ] = None,
    deployment: DeploymentOption = None,
    board: BoardUrl = "emu://",
    server: ServerAddress = None,
    standardized: Annotated[
        bool,
        typer.Option(
            help="The inputs are scaled already as the model takes them (a record's data "
            "set, standardised)."
        ),
    ] = False,
    read_repeats: ReadRepeats = 1,
    tiles: Tiles = ANY_TILE,
    held: Held = False,
    calibrate: Calibrate = False,
) -> None:
    """Program a model onto a board and classify new samples there.

    Without --out, the answers go to standard output as CSV (sidra model predict ... >
    answers.csv, or read on the terminal); what was classified is said on stderr.
    """
    if out is not None:
        checked_answers_path(out)
    held, tiles = held_options(deployment, server, held, tiles)
    file = None if model is None else file_target(model)  # before any board is opened
    raw = read_samples(inputs)
    with job_board(board, server, "sidra model predict", holding="sidra model predict") as opened:
        target = target_of(opened, file, deployment)
        loaded = target.model
        try:
            if standardized:
                x = to_float32("inputs", loaded.checked_features(raw))
            else:
                x = loaded.standardize(raw)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="'--inputs'") from exc
        _say_clipped(x, loaded.layers[0].input_clip)
        placed = tiles_for(target, tiles, opened, held)
        deployed = _deployed(loaded, opened, placed, read_repeats, held, calibrate, deployment)
        check_regions(target, deployed)
        scores = deployed.scores(x)
    classes = np.argmax(scores, axis=1)
    names = list(loaded.inputs.labels)
    labels = np.array(names)[classes]
    if out is None:
        typer.echo(answers_csv(labels, classes, scores, loaded.score_name, names), nl=False)
        typer.echo(f"{count_text(len(classes), 'sample')} classified", err=True)
        return
    write_atomically(out, answers_file(out, labels, classes, scores, loaded.score_name, names))
    typer.echo(f"{count_text(len(classes), 'sample')} classified: {out}", err=True)


FAR_PAST_CLIP = 100.0
"""A feature this many times the first layer's input range (after the model's scaling)
is far outside anything a data set gives (the digits' rarest pixels reach 42 standard
deviations, ten times the usual range of 4): worth a warning, which the many ordinary
samples just past the range are not."""


def _say_clipped(x: np.ndarray, clip: float) -> None:
    """Warns (stderr) of samples with a feature far past the first layer's input range:
    the board's DACs clip it to the full read voltage, so the answer is that of a sample
    at the edge, not of the one given (1e30 was classified as confidently as any)."""
    outside = np.abs(x) > FAR_PAST_CLIP * clip
    rows = np.flatnonzero(outside.any(axis=1))
    if rows.size == 0:
        return
    first = int(rows[0])
    feature = int(np.flatnonzero(outside[first])[0])
    typer.echo(
        f"warning: {count_text(rows.size, 'sample')} of {len(x)} with features far past the "
        f"model's input range (±{clip:g} after its scaling, the DACs' full scale: they are "
        f"clipped, and their answers are those of samples at the edge); first: sample "
        f"{first}, feature {feature} = {float(x[first, feature]):.4g}",
        err=True,
    )


def board_name(board: Board) -> str:
    info = board.info
    preset = f" ({info.emulator_preset})" if info.emulated else ""
    return f"{info.model} {info.serial_number}{preset}"


def _print_evaluation(
    report: dict[str, Any], result: ModelEvaluation, deployed: DeployedModel, console: Console
) -> None:
    trained = report["trained_test_accuracy"]
    title = f"{report['model']} on {report['board']}"
    summary = Table(title=title, show_header=False)
    summary.add_row("samples", f"{result.samples} ({report['dataset']}, {report['split']})")
    summary.add_row("accuracy", f"{100 * result.accuracy:.2f} %")
    if isinstance(trained, float):
        summary.add_row("accuracy when trained", f"{100 * trained:.2f} % (test)")
    summary.add_row("read repeats", str(result.read_repeats))
    if deployed.gains:
        gains = ", ".join(f"tile {t}: {g:.4f}" for t, g in deployed.gains.items())
        summary.add_row("calibration gains", gains)
    summary.add_row("MVM calls", str(result.mvm_calls))
    summary.add_row("modeled time / sample", f"{result.time_per_sample_ns:.1f} ns")
    summary.add_row("modeled energy / sample", f"{result.energy_per_sample_nj:.1f} nJ")
    console.print(summary)
    recall = Table(title="recall per class")
    recall.add_column("label")
    recall.add_column("samples", justify="right")
    recall.add_column("recall", justify="right")
    for label, share, row in zip(result.labels, result.recall, result.confusion, strict=True):
        recall.add_row(
            label, str(int(row.sum())), "-" if math.isnan(share) else f"{100 * share:.1f} %"
        )
    console.print(recall)
    if deployed.held:
        _print_held(deployed, console)
    else:
        print_programming(deployed.programming, console)


def _print_held(deployed: DeployedModel, console: Console) -> None:
    table = Table(title="held by the tiles (read once, against the model's targets)")
    columns = ("layer", "tiles", "correlation", "rms deviation (µS)", "mean deviation (µS)",
               "read (ns, nJ)")  # fmt: skip
    for column in columns:
        table.add_column(column)
    for h in deployed.held:
        table.add_row(
            h.layer, ", ".join(map(str, h.tiles)), f"{h.correlation:.3f}",
            f"{h.rms_deviation_us:.3f}", f"{h.mean_deviation_us:+.3f}",
            f"{h.read_cost.time_ns:,.0f}, {h.read_cost.energy_nj:,.0f}",
        )  # fmt: skip
    console.print(table)


def print_programming(programming: Sequence[LayerProgramming], console: Console) -> None:
    """What write-verify reached on each layer, a line each."""
    written = Table(title="write-verify")
    for column in ("layer", "tiles", "cells", "rms error (µS)", "max error (µS)", "unconverged"):
        written.add_column(column)
    for p in programming:
        written.add_row(
            p.layer, ", ".join(map(str, p.tiles)), f"{p.cells:,}", f"{p.rms_error_us:.3f}",
            f"{p.max_error_us:.3f}", f"{p.unconverged_cells:,}",
        )  # fmt: skip
    console.print(written)
