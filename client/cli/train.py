"""``sidra train``: SPSA and last-layer training jobs with records, plots and --json."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sidra.cli.jobs import run_remote_job
from sidra.cli.options import AsJson, field_option, job_options
from sidra.cli.twin import characterize_twin, load_twin, twin_emulator, twin_url
from sidra.client.remote import connect_server
from sidra.drivers import Board, InvalidArgument, SidraError, open_board
from sidra.training import (
    STOPPED_AT,
    CompareOptions,
    Comparison,
    EqPropOptions,
    FFEstimator,
    FFOptions,
    JobOptions,
    LastLayerOptions,
    MethodName,
    MethodResult,
    MLPOptions,
    Nudging,
    PATOptions,
    PerturbationMode,
    RecoveryOptions,
    SPSAOptions,
    SPSAStep,
    TrainingRecord,
    TwinPhysics,
    load_dataset,
    train_eqprop,
    train_forward_forward,
    train_last_layer,
    train_mlp,
    train_pat,
    train_softmax_spsa,
)
from sidra.training import Dataset as TrainingData

train_app = typer.Typer(no_args_is_help=True, help="Train with the board in the loop.")

Dataset = Annotated[
    str, typer.Option(help="digits, iris, wine, breast_cancer, or an .npz with X and y.")
]
BoardUrl = Annotated[str, typer.Option("--board", help="Board URL opened in-process.")]
ServerAddress = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="A remote sidra serve: HOST:PORT, or grpcs://HOST:PORT?ca=PATH[&cert=PATH&"
        "key=PATH] for TLS (token from SIDRA_TOKEN).",
    ),
]


def _usable_folder(out: Path | None) -> Path | None:
    """``out`` if a record can be saved there: refused while parsing, not after the run."""
    if out is None:
        return None
    existing = next(p for p in (out, *out.parents) if p.exists())  # "/" at the least
    if not existing.is_dir():
        raise typer.BadParameter(f"got {out}; {existing} is a file, expected a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"got {out}; {existing} cannot be written by this user")
    return out


Out = Annotated[
    Path | None,
    typer.Option(help="Record folder (default runs/<job>-<time>).", callback=_usable_folder),
]
RemoteJob = Annotated[
    bool,
    typer.Option(
        "--remote-job",
        help="Run the job inside the --server, next to the board (it goes on if this "
        "command stops; see sidra jobs); the record is saved here when it ends.",
    ),
]

# Each option of a job is a parameter named like the field of its option model and
# declared with field_option (help = the field's docstring); the defaults are the
# model's. tests/test_cli.py checks that every field has a flag and every other
# parameter is one the command keeps for itself.
_SPSA = SPSAOptions()
_LAST_LAYER = LastLayerOptions()
_COMPARE = CompareOptions()
_RECOVERY = RecoveryOptions()
_MLP = MLPOptions()
_MLP_HIDDEN = list(_MLP.hidden)
_PAT = PATOptions()
_PAT_HIDDEN = list(_PAT.hidden)
_FF = FFOptions()
_FF_HIDDEN = list(_FF.hidden)
_EQPROP = EqPropOptions()
_EQPROP_HIDDEN = list(_EQPROP.hidden)
_ANY_TILE: list[int] = []
"""--tiles not given: the layers may go on any tile of the board."""
_METHODS = list(_COMPARE.methods)
_COMPARE_SEEDS = list(_COMPARE.seeds)


_spsa = functools.partial(field_option, SPSAOptions)
_last_layer = functools.partial(field_option, LastLayerOptions)
_compare = functools.partial(field_option, CompareOptions)
_recovery = functools.partial(field_option, RecoveryOptions)
_mlp = functools.partial(field_option, MLPOptions)
_pat = functools.partial(field_option, PATOptions)
_ff = functools.partial(field_option, FFOptions)
_eqprop = functools.partial(field_option, EqPropOptions)


@contextlib.contextmanager
def _board(url: str, server: str | None) -> Iterator[Board]:
    """The board a job runs on. A value the board or the job refuses (an argument error,
    a checkpoint it cannot read) is a usage error (exit 2); a refusal for who or when (a
    lease another session holds, a role, a limit) or a board gone ends the command with
    the error's class and message (exit 1): the command line was right."""
    try:
        if server is not None:
            with connect_server(server) as remote:
                yield remote
        else:
            with open_board(url) as local:
                yield local
    except SidraError as exc:
        if isinstance(exc, InvalidArgument):
            raise typer.BadParameter(str(exc)) from exc
        typer.echo(f"sidra train: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def _dataset(name: str) -> TrainingData:
    """The data set ``--dataset`` names; one it cannot load is a usage error naming it."""
    try:
        return load_dataset(name)
    except (ValueError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="'--dataset'") from exc


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
    )


def _folder(out: Path | None, job: str) -> Path:
    """The record folder: ``out``, or ``runs/<job>-<time>``."""
    return out or Path("runs") / f"{job}-{time.strftime('%Y%m%d-%H%M%S')}"


def _finish(
    record: TrainingRecord,
    dataset: str,
    job: str,
    out: Path | None,
    as_json: bool,
    console: Console,
) -> None:
    record.settings["dataset"] = dataset
    folder = _save_or_keep(record.save, _folder(out, job), job)
    _print_summary(record.summary() | {"record": str(folder)}, f"{job} on {dataset}", as_json,
                   console)  # fmt: skip


@contextlib.contextmanager
def _stop_on_interrupt(console: Console, unit: str) -> Iterator[threading.Event]:
    """An event the first Ctrl-C (SIGINT) sets, for a run to stop after the ``unit``
    (step, epoch) under way and keep what it did (sidra.training.stopping); a second
    Ctrl-C interrupts at once, as without this."""
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def first(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)
        console.print(f"stopping after this {unit} (Ctrl-C again to stop at once)")

    signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_if_stopped(
    settings: Mapping[str, Any],
    total: int,
    console: Console,
    *,
    kept: str = "the record holds the run so far",
    resume: Path | None = None,
) -> None:
    """Says where a run Ctrl-C stopped (``stopped_at_<unit>`` in its record's ``settings``
    or summary: the record is saved by then) and, with ``resume`` (the folder of its
    checkpoint), how to go on; exit status 130. Nothing for a run that was not stopped."""
    where = [
        (k.removeprefix(STOPPED_AT), v) for k, v in settings.items() if k.startswith(STOPPED_AT)
    ]
    if not where:
        return
    (unit, done), how = where[0], ""
    if resume is not None:
        how = (
            f", {resume / 'checkpoint.json'} too: the same command with --resume --out "
            f"{resume} goes on from there"
        )
    console.print(f"stopped after {unit} {done} of {total}: {kept}{how}")
    raise typer.Exit(130)  # as an interrupted command exits


def _save_or_keep(save: Callable[[Path], Any], folder: Path, job: str) -> Path:
    """``save(folder)``, or, when that fails once the run is over (a full disk, a folder
    removed meanwhile), the record saved in a temporary folder and the command failed
    naming both: a finished run is not lost."""
    try:
        save(folder)
        return folder
    except OSError as exc:
        kept = Path(tempfile.mkdtemp(prefix=f"sidra-{job}-"))
        try:
            save(kept)
            where = f"it is saved in {kept}"
        except OSError as again:  # the temporary folder's disk is full too
            where = f"nor in {kept} ({again})"
        typer.echo(
            f"sidra train {job}: the record could not be saved in {folder} ({exc}); {where}",
            err=True,
        )
        raise typer.Exit(1) from exc


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):  # the placement: layer -> tiles
        return "; ".join(f"{k}: tiles {', '.join(map(str, v))}" for k, v in value.items())
    return str(value)


def _print_summary(summary: dict[str, Any], title: str, as_json: bool, console: Console) -> None:
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=title, show_header=False)
    for key, value in summary.items():
        table.add_row(key, _shown(value))
    console.print(table)


def _remote(
    server: str | None,
    job: str,
    options: JobOptions,
    dataset: str,
    out: Path | None,
    console: Console,
    *,
    sent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs ``job`` inside ``server`` (--remote-job); its summary, with the job id and the
    folder its record was saved into. ``sent``: the options as submitted, when they hold
    more than ``options.settings()`` (a pat job's twin profile)."""
    if server is None:
        raise typer.BadParameter("--remote-job runs the job inside a server: give --server")
    folder = _folder(out, job)
    submitted = options.settings() if sent is None else sent
    done = run_remote_job(server, job, submitted, dataset, folder, console)
    return (done.summary or {}) | {"job_id": done.job_id, "record": str(folder)}


def _submitted(
    server: str | None,
    job: str,
    options: JobOptions,
    dataset: str,
    out: Path | None,
    as_json: bool,
    console: Console,
    *,
    sent: dict[str, Any] | None = None,
) -> None:
    """``job`` run inside ``server`` (--remote-job, :func:`_remote`), its summary printed."""
    summary = _remote(server, job, options, dataset, out, console, sent=sent)
    _print_summary(summary, f"{job} on {dataset} (job {summary['job_id']})", as_json, console)


def _epoch_status(progress: Progress, task: TaskID) -> Callable[[int, float | None], None]:
    """An ``on_epoch`` that moves ``task`` on, with the test accuracy when there is one
    (None: no test checkpoint that epoch)."""

    def on_epoch(epoch: int, test: float | None) -> None:
        if test is None:
            progress.update(task, completed=epoch)
        else:
            progress.update(task, completed=epoch, status=f"test {100 * test:.2f} %")

    return on_epoch


_EpochJobOptions = LastLayerOptions | MLPOptions | FFOptions | EqPropOptions
"""Options of the jobs trained in whole epochs."""


def _by_epochs(
    job: str,
    train: Callable[..., TrainingRecord],
    options: _EpochJobOptions,
    dataset: str,
    board: str,
    server: str | None,
    out: Path | None,
    remote_job: bool,
    as_json: bool,
) -> None:
    """A job trained in epochs (``train(board, data, options, on_epoch=...)``): run here
    with a progress bar and its record saved, or inside ``server`` (``remote_job``)."""
    console = Console(stderr=as_json)
    if remote_job:
        _submitted(server, job, options, dataset, out, as_json, console)
        return
    data = _dataset(dataset)
    with (
        _board(board, server) as target,
        _progress(console) as progress,
        _stop_on_interrupt(console, "epoch") as stop,
    ):
        task = progress.add_task(job, total=options.epochs, status="")
        record = train(target, data, options, on_epoch=_epoch_status(progress, task), stop=stop)
    _finish(record, dataset, job, out, as_json, console)
    _exit_if_stopped(record.settings, options.epochs, console)


@train_app.command("spsa")
def spsa(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    steps: Annotated[int, _spsa("steps")] = _SPSA.steps,
    seed: Annotated[int, _spsa("seed")] = _SPSA.seed,
    batch_size: Annotated[int, _spsa("batch_size")] = _SPSA.batch_size,
    a: Annotated[float | None, _spsa("a")] = _SPSA.a,
    c: Annotated[float | None, _spsa("c")] = _SPSA.c,
    calibrate: Annotated[
        bool, typer.Option(help="Calibrate a and c on the board by Spall's rules 3 and 4.")
    ] = False,
    resamplings: Annotated[int, _spsa("resamplings")] = _SPSA.resamplings,
    mode: Annotated[PerturbationMode, _spsa("mode")] = _SPSA.mode,
    program_every: Annotated[int, _spsa("program_every")] = _SPSA.program_every,
    blocking: Annotated[bool, _spsa("blocking")] = _SPSA.blocking,
    last_avg: Annotated[int, _spsa("last_avg")] = _SPSA.last_avg,
    second_order: Annotated[bool, _spsa("second_order")] = _SPSA.second_order,
    eval_every: Annotated[
        int | None,
        typer.Option(help="Steps between test-accuracy checkpoints [default: 5 % of --steps]."),
    ] = None,
    eval_read_repeats: Annotated[int, _spsa("eval_read_repeats")] = _SPSA.eval_read_repeats,
    tiles: Annotated[list[int], _spsa("tiles", "--tiles", "--tile")] = _ANY_TILE,
    weight_limit: Annotated[float, _spsa("weight_limit")] = _SPSA.weight_limit,
    checkpoint_every: Annotated[
        int, typer.Option(min=0, help="Save <out>/checkpoint.json every N steps (0: never).")
    ] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from <out>/checkpoint.json.")] = False,
    out: Out = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """SPSA training of a softmax layer (features → classes) on the board.

    Ctrl-C stops the run at its next step and keeps the record and a checkpoint in
    --out (the same command with --resume goes on); a second Ctrl-C stops at once."""
    options = job_options(
        SPSAOptions,
        ctx,
        a=None if calibrate else a,
        c=None if calibrate else c,
        eval_every=max(1, steps // 20) if eval_every is None else eval_every,
    )
    console = Console(stderr=as_json)
    if remote_job:
        if checkpoint_every or resume:
            raise typer.BadParameter(
                "--checkpoint-every and --resume are for runs from here; a --remote-job "
                "keeps its record in the server"
            )
        _submitted(server, "spsa", options, dataset, out, as_json, console)
        return
    if resume and out is None:
        raise typer.BadParameter("--resume needs --out, the folder holding checkpoint.json")
    out = _folder(out, "spsa")
    data = _dataset(dataset)
    with (
        _board(board, server) as target,
        _progress(console) as progress,
        _stop_on_interrupt(console, "step") as stop,
    ):
        task = progress.add_task("spsa", total=options.steps, status="")

        def on_step(step: SPSAStep) -> None:
            if step.step % 10 == 0 or step.step == options.steps:
                progress.update(task, completed=step.step, status=f"loss {step.loss:.3f}")

        record = train_softmax_spsa(
            target,
            data,
            options,
            on_step=on_step,
            checkpoint=out / "checkpoint.json",
            checkpoint_every=checkpoint_every,
            resume=resume,
            stop=stop,
        )
    _finish(record, dataset, "spsa", out, as_json, console)
    _exit_if_stopped(record.settings, options.steps, console, resume=out)


@train_app.command("last-layer")
def last_layer(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[int, _last_layer("hidden")] = _LAST_LAYER.hidden,
    epochs: Annotated[int, _last_layer("epochs")] = _LAST_LAYER.epochs,
    batch_size: Annotated[int, _last_layer("batch_size")] = _LAST_LAYER.batch_size,
    learning_rate: Annotated[float, _last_layer("learning_rate")] = _LAST_LAYER.learning_rate,
    final_learning_rate: Annotated[
        float | None, _last_layer("final_learning_rate")
    ] = _LAST_LAYER.final_learning_rate,
    threshold: Annotated[float, _last_layer("threshold")] = _LAST_LAYER.threshold,
    trainable: Annotated[int, _last_layer("trainable")] = _LAST_LAYER.trainable,
    seed: Annotated[int, _last_layer("seed")] = _LAST_LAYER.seed,
    feature_tile: Annotated[int | None, _last_layer("feature_tile")] = None,
    head_tiles: Annotated[list[int] | None, _last_layer("head_tiles")] = None,
    tiles: Annotated[list[int], _last_layer("tiles", "--tiles", "--tile")] = _ANY_TILE,
    read_repeats: Annotated[int, _last_layer("read_repeats")] = _LAST_LAYER.read_repeats,
    digital_bias: Annotated[bool, _last_layer("digital_bias")] = _LAST_LAYER.digital_bias,
    head_weight_limit: Annotated[
        float, _last_layer("head_weight_limit")
    ] = _LAST_LAYER.head_weight_limit,
    out: Out = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """Fixed random feature layer on the board, head trained with exact gradients.

    Ctrl-C stops the run after the epoch under way and keeps its record (exit 130); a
    second Ctrl-C stops at once."""
    # typer gives an option never named as an empty list: no head tiles means "placed".
    options = job_options(LastLayerOptions, ctx, head_tiles=head_tiles or None)
    _by_epochs(
        "last-layer", train_last_layer, options, dataset, board, server, out, remote_job, as_json
    )


@train_app.command("mlp")
def mlp(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[list[int], _mlp("hidden")] = _MLP_HIDDEN,
    epochs: Annotated[int, _mlp("epochs")] = _MLP.epochs,
    batch_size: Annotated[int, _mlp("batch_size")] = _MLP.batch_size,
    learning_rate: Annotated[float, _mlp("learning_rate")] = _MLP.learning_rate,
    final_learning_rate: Annotated[
        float | None, _mlp("final_learning_rate")
    ] = _MLP.final_learning_rate,
    threshold: Annotated[float, _mlp("threshold")] = _MLP.threshold,
    weight_limit: Annotated[float, _mlp("weight_limit")] = _MLP.weight_limit,
    read_repeats: Annotated[int, _mlp("read_repeats")] = _MLP.read_repeats,
    eval_read_repeats: Annotated[int | None, _mlp("eval_read_repeats")] = _MLP.eval_read_repeats,
    digital_bias: Annotated[bool, _mlp("digital_bias")] = _MLP.digital_bias,
    cosine_every: Annotated[int, _mlp("cosine_every")] = _MLP.cosine_every,
    seed: Annotated[int, _mlp("seed")] = _MLP.seed,
    tiles: Annotated[list[int], _mlp("tiles", "--tiles", "--tile")] = _ANY_TILE,
    trainable: Annotated[int | None, _mlp("trainable")] = _MLP.trainable,
    out: Out = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """Every layer on the board: forward by MVM, backward by TransposeMVM.

    The summary gives each layer's gradient cosine to the exact gradient.

    Ctrl-C stops the run after the epoch under way and keeps its record (exit 130); a
    second Ctrl-C stops at once."""
    options = job_options(MLPOptions, ctx)
    _by_epochs("mlp", train_mlp, options, dataset, board, server, out, remote_job, as_json)


@train_app.command("pat")
def pat(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    profile: Annotated[
        Path | None,
        typer.Option(
            help="The board's twin: a profile from sidra board characterize (default: the "
            "board is characterized first, drift skipped, into <record>/twin.toml)."
        ),
    ] = None,
    hidden: Annotated[list[int], _pat("hidden")] = _PAT_HIDDEN,
    epochs: Annotated[int, _pat("epochs")] = _PAT.epochs,
    batch_size: Annotated[int, _pat("batch_size")] = _PAT.batch_size,
    learning_rate: Annotated[float, _pat("learning_rate")] = _PAT.learning_rate,
    final_learning_rate: Annotated[
        float | None, _pat("final_learning_rate")
    ] = _PAT.final_learning_rate,
    threshold: Annotated[float, _pat("threshold")] = _PAT.threshold,
    weight_limit: Annotated[float, _pat("weight_limit")] = _PAT.weight_limit,
    read_repeats: Annotated[int, _pat("read_repeats")] = _PAT.read_repeats,
    eval_read_repeats: Annotated[int | None, _pat("eval_read_repeats")] = _PAT.eval_read_repeats,
    digital_bias: Annotated[bool, _pat("digital_bias")] = _PAT.digital_bias,
    cosine_every: Annotated[int, _pat("cosine_every")] = _PAT.cosine_every,
    seed: Annotated[int, _pat("seed")] = _PAT.seed,
    tiles: Annotated[list[int], _pat("tiles", "--tiles", "--tile")] = _ANY_TILE,
    trainable: Annotated[int | None, _pat("trainable")] = _PAT.trainable,
    board_epochs: Annotated[int, _pat("board_epochs")] = _PAT.board_epochs,
    in_silico: Annotated[bool, _pat("in_silico")] = _PAT.in_silico,
    twin_seed: Annotated[int | None, _pat("twin_seed")] = _PAT.twin_seed,
    out: Out = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """Physics-aware training: forward on the board, backward through its twin.

    Every layer's forward pass runs on the board; the backward pass runs through the
    board's twin at the board's activations (no TransposeMVM), the schedule's first
    epochs on the twin itself (--board-epochs). With --in-silico, trained on the twin
    alone and deployed to the board. A --remote-job sends --profile with the job,
    or without it has the server characterize the board first (on a lease of the whole
    board until then, overwriting every tile); the twin emulator runs in the server.

    Ctrl-C stops the run after the epoch under way and keeps its record (exit 130);
    while it characterizes the board, once the profile is complete, keeping it for
    --profile. A second Ctrl-C stops at once."""
    options = job_options(PATOptions, ctx)
    console = Console(stderr=as_json)
    if remote_job:
        sent = options.settings()
        if profile is not None:
            _twin_from(profile)  # a bad profile is refused here, before anything is sent
            # The server cannot read this file: its text goes with the options.
            sent |= {"twin_profile_toml": profile.read_text(encoding="utf-8")}
        _submitted(server, "pat", options, dataset, out, as_json, console, sent=sent)
        return
    data = _dataset(dataset)
    folder = _folder(out, "pat")
    # A profile given is read before the board is opened: a bad one touches no board.
    twin = None if profile is None else _twin_from(profile)
    with _board(board, server) as target:
        if profile is None:
            source = _characterized(target, folder / "twin.toml", console)
        else:
            source = profile
        twin = twin or _twin_from(source)
        with (
            twin_emulator(source, options) as on_twin,
            _progress(console) as progress,
            _stop_on_interrupt(console, "epoch") as stop,
        ):
            task = progress.add_task("pat", total=options.epochs, status="")
            record = train_pat(
                target,
                twin,
                data,
                options,
                twin_board=on_twin,
                on_epoch=_epoch_status(progress, task),
                stop=stop,
            )
    record.settings["twin_profile"] = str(source)
    if options.twin_epochs:
        record.settings["twin_board"] = twin_url(source, options.twin_device_seed)
    _finish(record, dataset, "pat", folder, as_json, console)
    _exit_if_stopped(record.settings, options.epochs, console)


def _characterized(board: Board, out: Path, console: Console) -> Path:
    """The board's twin profile, measured into ``out``. Ctrl-C ends the command once the
    profile is complete (exit 130), nothing trained: the board time it cost is kept, and
    --profile trains from it without measuring again."""
    with _stop_on_interrupt(console, "characterization") as stop:
        source = characterize_twin(board, out, console)
    if stop.is_set():
        console.print(
            f"stopped before training: the twin's profile is in {source} "
            f"(--profile {source} trains without measuring the board again)"
        )
        raise typer.Exit(130)
    return source


def _twin_from(profile: Path) -> TwinPhysics:
    """The twin in ``profile``; a bad file is a bad --profile."""
    try:
        return load_twin(profile)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--profile'") from exc


@train_app.command("ff")
def forward_forward(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[list[int], _ff("hidden")] = _FF_HIDDEN,
    estimator: Annotated[FFEstimator, _ff("estimator")] = _FF.estimator,
    epochs: Annotated[int, _ff("epochs")] = _FF.epochs,
    batch_size: Annotated[int, _ff("batch_size")] = _FF.batch_size,
    learning_rate: Annotated[float, _ff("learning_rate")] = _FF.learning_rate,
    final_learning_rate: Annotated[
        float | None, _ff("final_learning_rate")
    ] = _FF.final_learning_rate,
    goodness_threshold: Annotated[float, _ff("goodness_threshold")] = _FF.goodness_threshold,
    label_scale: Annotated[float, _ff("label_scale")] = _FF.label_scale,
    spsa_a: Annotated[float, _ff("spsa_a")] = _FF.spsa_a,
    spsa_c: Annotated[float, _ff("spsa_c")] = _FF.spsa_c,
    resamplings: Annotated[int, _ff("resamplings")] = _FF.resamplings,
    eval_every: Annotated[int, _ff("eval_every")] = _FF.eval_every,
    threshold: Annotated[float, _ff("threshold")] = _FF.threshold,
    weight_limit: Annotated[float, _ff("weight_limit")] = _FF.weight_limit,
    read_repeats: Annotated[int, _ff("read_repeats")] = _FF.read_repeats,
    digital_bias: Annotated[bool | None, _ff("digital_bias")] = _FF.digital_bias,
    seed: Annotated[int, _ff("seed")] = _FF.seed,
    tiles: Annotated[list[int], _ff("tiles", "--tiles", "--tile")] = _ANY_TILE,
    out: Out = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """Forward-forward: each layer trained on its own goodness, no backward pass.

    Every layer's forward passes run on the board; each layer learns from its own
    goodness (exact local gradient, or layer-local SPSA).

    Ctrl-C stops the run after the epoch under way and keeps its record (exit 130); a
    second Ctrl-C stops at once."""
    options = job_options(FFOptions, ctx)
    _by_epochs(
        "ff", train_forward_forward, options, dataset, board, server, out, remote_job, as_json
    )


@train_app.command("eqprop")
def eqprop(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    hidden: Annotated[list[int], _eqprop("hidden")] = _EQPROP_HIDDEN,
    epochs: Annotated[int, _eqprop("epochs")] = _EQPROP.epochs,
    batch_size: Annotated[int, _eqprop("batch_size")] = _EQPROP.batch_size,
    learning_rate: Annotated[float, _eqprop("learning_rate")] = _EQPROP.learning_rate,
    final_learning_rate: Annotated[
        float | None, _eqprop("final_learning_rate")
    ] = _EQPROP.final_learning_rate,
    beta: Annotated[float, _eqprop("beta")] = _EQPROP.beta,
    nudging: Annotated[Nudging, _eqprop("nudging")] = _EQPROP.nudging,
    free_iterations: Annotated[int, _eqprop("free_iterations")] = _EQPROP.free_iterations,
    nudged_iterations: Annotated[int, _eqprop("nudged_iterations")] = _EQPROP.nudged_iterations,
    tolerance: Annotated[float, _eqprop("tolerance")] = _EQPROP.tolerance,
    damping: Annotated[float, _eqprop("damping")] = _EQPROP.damping,
    threshold: Annotated[float, _eqprop("threshold")] = _EQPROP.threshold,
    weight_limit: Annotated[float, _eqprop("weight_limit")] = _EQPROP.weight_limit,
    read_repeats: Annotated[int, _eqprop("read_repeats")] = _EQPROP.read_repeats,
    init_scale: Annotated[float, _eqprop("init_scale")] = _EQPROP.init_scale,
    cosine_every: Annotated[int, _eqprop("cosine_every")] = _EQPROP.cosine_every,
    seed: Annotated[int, _eqprop("seed")] = _EQPROP.seed,
    tiles: Annotated[list[int], _eqprop("tiles", "--tiles", "--tile")] = _ANY_TILE,
    out: Out = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """Equilibrium propagation: free and nudged phases settle on the same tiles.

    The phases settle by MVM and TransposeMVM; the local update contrasts their
    equilibria. The summary gives the settling cost.

    Ctrl-C stops the run after the epoch under way and keeps its record (exit 130); a
    second Ctrl-C stops at once."""
    options = job_options(EqPropOptions, ctx)
    _by_epochs("eqprop", train_eqprop, options, dataset, board, server, out, remote_job, as_json)


@train_app.command("compare")
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
    tiles: Annotated[list[int], _compare("tiles", "--tiles", "--tile")] = _ANY_TILE,
    methods: Annotated[
        list[MethodName], _compare("methods", "--methods", "--method", "--estimator")
    ] = _METHODS,
    out: Out = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """Every estimator and training algorithm on one budget and one board, per seed.

    One loss-evaluation budget for all; mean and spread per method, a record with a
    plot.

    Ctrl-C stops after the method run under way and keeps the runs so far, with their
    plot (exit 130); a second Ctrl-C stops at once."""
    from sidra.training.compare import compare_methods

    options = job_options(CompareOptions, ctx)
    console = Console(stderr=as_json)
    folder = _folder(out, "compare")
    if remote_job:
        summary = _remote(server, "compare", options, dataset, folder, console)
        runs = [MethodResult(**r) for r in summary["runs"]]
        comparison = Comparison(options.settings() | {"job": "compare", "dataset": dataset}, runs)
        comparison.plot(folder / "plot.png")
    else:
        data = _dataset(dataset)
        # Every finished run is in the record at once (runs.csv, summary.json): a long
        # comparison stopped midway keeps what it measured.
        partial = Comparison(options.settings() | {"job": "compare", "dataset": dataset})

        def on_result(r: MethodResult) -> None:
            console.log(f"{r.name}, seed {r.seed}: {100 * r.test_accuracy:.2f} %")
            partial.runs.append(r)
            folder.mkdir(parents=True, exist_ok=True)
            for name, content in partial.files().items():
                # Whole files only: a stop mid-write leaves the previous version.
                staged = folder / f".{name}.partial"
                staged.write_bytes(content)
                staged.replace(folder / name)

        with _board(board, server) as target, _stop_on_interrupt(console, "run") as stop:
            comparison = compare_methods(target, data, options, on_result=on_result, stop=stop)
        comparison.settings["dataset"] = dataset
        _save_or_keep(comparison.save, folder, "compare")
    if as_json:
        typer.echo(json.dumps(comparison.summary() | {"record": str(folder)}))
    else:
        _print_comparison(comparison, options, dataset, folder, console)
    total = len(options.seeds) * len(options.methods)
    _exit_if_stopped(comparison.settings, total, console, kept="the record holds the runs so far")


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


@train_app.command("drift-recovery")
def drift_recovery_command(
    ctx: typer.Context,
    dataset: Dataset = "digits",
    board: BoardUrl = "emu://?preset=pcm&seed=0",
    server: ServerAddress = None,
    hidden: Annotated[int, _recovery("hidden")] = _RECOVERY.hidden,
    age_days: Annotated[float, _recovery("age_days")] = _RECOVERY.age_days,
    calibrate: Annotated[bool, _recovery("calibrate")] = _RECOVERY.calibrate,
    epochs: Annotated[int, _recovery("epochs")] = _RECOVERY.epochs,
    learning_rate: Annotated[float, _recovery("learning_rate")] = _RECOVERY.learning_rate,
    batch_size: Annotated[int, _recovery("batch_size")] = _RECOVERY.batch_size,
    threshold: Annotated[float, _recovery("threshold")] = _RECOVERY.threshold,
    read_repeats: Annotated[int, _recovery("read_repeats")] = _RECOVERY.read_repeats,
    eval_read_repeats: Annotated[int, _recovery("eval_read_repeats")] = _RECOVERY.eval_read_repeats,
    reference_column: Annotated[bool, _recovery("reference_column")] = _RECOVERY.reference_column,
    seed: Annotated[int, _recovery("seed")] = _RECOVERY.seed,
    out: Annotated[
        Path | None,
        typer.Option(
            help="--remote-job: record folder (default runs/drift-recovery-<time>).",
            callback=_usable_folder,
        ),
    ] = None,
    remote_job: RemoteJob = False,
    as_json: AsJson = False,
) -> None:
    """Deploy a digitally trained 64→H→10 net, age the board, calibrate, retrain the last layer.

    It ages the board (AdvanceClock): through --server it needs the whole board, which a
    --remote-job leases; a run from here over --server needs the admin role.

    Ctrl-C stops after the retraining epoch under way and prints the figures so far
    (exit 130); a second Ctrl-C stops at once."""
    from sidra.training.recovery import drift_recovery

    options = job_options(RecoveryOptions, ctx)
    if remote_job:
        summary = _remote(server, "drift-recovery", options, dataset, out, Console(stderr=True))
    else:
        data = _dataset(dataset)
        console = Console(stderr=True)
        with (
            _board(board, server) as target,
            _stop_on_interrupt(console, "retraining epoch") as stop,
        ):
            console.print(
                f"drift recovery: digital training, deployment, {options.age_days:g} days of "
                f"ageing, {options.epochs} retraining epochs (Ctrl-C stops after the retraining "
                "epoch under way)",
                soft_wrap=True,  # one line, however wide the terminal
            )
            summary = drift_recovery(target, data, options, stop=stop).summary()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        for key, value in summary.items():
            if isinstance(value, float):
                typer.echo(f"{key:28s} {value:.4f}")
            elif isinstance(value, list):
                typer.echo(f"{key:28s} {' '.join(f'{g:.3f}' for g in value)}")
            else:
                typer.echo(f"{key:28s} {value}")
    if not remote_job:  # a remote job's cancel is reported by the job (run_remote_job)
        _exit_if_stopped(
            summary, options.epochs, console, kept="the figures above are the run so far"
        )
