"""``sidra model tune``: a trained model's last layers trained again on the board it runs
on (sidra.training.tuning), written out as a new model file."""

from __future__ import annotations

import base64
import functools
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sidra.cli.consoles import output_console
from sidra.cli.job_board import job_board
from sidra.cli.model import (
    Calibrate,
    DeploymentOption,
    Held,
    Tiles,
    board_name,
    held_options,
    labelled,
    print_programming,
    tiles_for,
)
from sidra.cli.model_deployments import register, target_of
from sidra.cli.model_files import OptionalModelPath, Target, file_target
from sidra.cli.model_served import server_board
from sidra.cli.options import SERVER_ENV, AsJson, field_option, job_options, new_file
from sidra.cli.texts import count_text, figure_text, tiles_text
from sidra.cli.train.params import (
    ANY_TILE,
    BoardUrl,
    Priority,
    QueueJob,
    RemoteJob,
    ServerAddress,
    queue_needs_remote_job,
    record_folder_usable,
)
from sidra.cli.train.running import (
    epoch_status,
    exit_if_stopped,
    print_summary,
    progress_bar,
    record_folder,
    run_clock,
    run_remote,
    save_or_keep,
    stop_on_interrupt,
)
from sidra.drivers import Board, InvalidArgument, PermissionDenied, SidraError
from sidra.training.atomic_files import write_atomically, write_files_atomically
from sidra.training.model import MODEL_FILE
from sidra.training.options import TuneOptions
from sidra.training.tuning import TuneResult, tune_model, tune_settings

__all__ = ["tune"]

_TUNE = TuneOptions()
_tune = functools.partial(field_option, TuneOptions)


def _usable_record(folder: Path | None) -> Path | None:
    """--record, refused while parsing when no record can be saved there (before the
    board is touched, not after the tuning)."""
    return record_folder_usable(folder, "--record")


def tune(
    ctx: typer.Context,
    out: Annotated[
        Path,
        typer.Option(
            help="The tuned model file to write (the same layout, the trained layers' new "
            "weights); an existing file is not written over.",
            show_default=False,
        ),
    ],
    model: OptionalModelPath = None,
    deployment: DeploymentOption = None,
    board: BoardUrl = "emu://?preset=sidra-y1",
    server: ServerAddress = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help="The labelled data to train on: digits, iris, wine, breast_cancer, an .npz "
            "with X and y, or a .csv of a sample per line, its label last; split as the "
            "model was trained (default: the model's own)."
        ),
    ] = None,
    tiles: Tiles = ANY_TILE,
    held: Held = False,
    calibrate: Calibrate = False,
    epochs: Annotated[int, _tune("epochs")] = _TUNE.epochs,
    trainable: Annotated[int, _tune("trainable")] = _TUNE.trainable,
    batch_size: Annotated[int, _tune("batch_size")] = _TUNE.batch_size,
    learning_rate: Annotated[float, _tune("learning_rate")] = _TUNE.learning_rate,
    final_learning_rate: Annotated[
        float | None, _tune("final_learning_rate")
    ] = _TUNE.final_learning_rate,
    threshold_share: Annotated[float, _tune("threshold_share")] = _TUNE.threshold_share,
    read_repeats: Annotated[int, _tune("read_repeats")] = _TUNE.read_repeats,
    eval_read_repeats: Annotated[int, _tune("eval_read_repeats")] = _TUNE.eval_read_repeats,
    seed: Annotated[int, _tune("seed")] = _TUNE.seed,
    record: Annotated[
        Path | None,
        typer.Option(
            help="The tuning's record folder (settings, every step's loss, the model, "
            "run.json: what sidra runs list, show and compare read), as a training run's "
            "--out; one holding an earlier record is refused. Default runs/tune-<time>.",
            callback=_usable_record,
        ),
    ] = None,
    remote_job: RemoteJob = False,
    queue: QueueJob = False,
    priority: Priority = 0,
    as_json: AsJson = False,
) -> None:
    """Train a model's last layers again on the board it runs on, and write it out.

    Hardware-aware fine-tuning: the model is programmed (or, with --held, found on the
    tiles that hold it, aged as they are), then its top --trainable layers learn from
    the board's own forward passes with exact gradients on the host, the error carried
    down by TransposeMVM; the layers below stay as the board holds them. Test accuracy
    before and after (--eval-read-repeats passes per input). The tiles hold the tuned
    model when it ends: sidra model eval --held with the same --tiles runs it there, and
    a --deployment is registered again as its tiles hold it (the tuned model under its
    name; not written again). A
    ReLU network read out by its logits (sidra train mlp, last-layer, spsa, pat, sidra
    model import); forward-forward and equilibrium-propagation models are trained by
    their own commands.

    Ctrl-C stops after the epoch under way and writes the model so far (exit 130); a
    second Ctrl-C stops at once, without a file. With --remote-job the tuning runs inside
    the server, next to the board (its record saved in --record when it ends, the model
    in --out); a --deployment is registered again by the server even if this command
    stops following it.
    """
    new_file(out)
    queue_needs_remote_job(queue, remote_job, priority, ctx)
    if remote_job and server is None:  # a job names only a server: the lab's, as submitted
        server = os.environ.get(SERVER_ENV, "").strip() or None  # jobs take it (a FILE's did)
    held, tiles = held_options(deployment, server, held, tiles)
    file = None if model is None else file_target(model)  # before any board is opened
    console = Console(stderr=True, log_path=False)  # lines stamped with the time only
    if remote_job:
        sent = _RemoteTune(
            ctx, out, record, file, deployment, server, dataset, tiles, held, calibrate
        )
        sent.run(console, queue, priority, as_json)
        return
    run = run_clock(board, server)
    with job_board(board, server, "sidra model tune", holding="sidra model tune") as opened:
        run.on(opened)
        target = target_of(opened, file, deployment)
        _check_may_keep_name(opened, target, server)
        data = labelled(target.model, dataset, None if file is None else Path(file.label), opened)
        placed = tiles_for(target, tiles, opened, held)
        options = job_options(TuneOptions, ctx, tiles=tuple(placed))
        with stop_on_interrupt(console, "epoch") as stop, progress_bar(console) as progress:
            console.print(
                f"tuning {target.label}: {count_text(options.epochs, 'epoch')} of "
                f"{options.trainable} "
                f"layer{'s' * (options.trainable > 1)} (Ctrl-C stops after the epoch under "
                "way and writes the model so far)",
                soft_wrap=True,  # one line, however wide the terminal
                highlight=False,
            )
            task = progress.add_task("tune", total=options.epochs, status="")
            try:
                result = tune_model(
                    target.model, opened, data, options, held=held, calibrate=calibrate,
                    on_epoch=epoch_status(progress, task), stop=stop,
                )  # fmt: skip
            except InvalidArgument as exc:
                hint = "'--trainable'" if exc.field == "trainable" else "MODEL"
                raise typer.BadParameter(str(exc), param_hint=hint) from exc
        tuned = Target(result.model, str(out), result.model.to_bytes(), None)
        registered, refused = _kept_under_name(opened, target, tuned)
        where = board_name(opened)
    write_atomically(out, tuned.data)
    # Its record, as a tune job keeps it: sidra runs lists tunings from here and jobs alike.
    kept: dict[str, Any] = {"registered": registered} if registered else {}
    kept |= {"not_registered": refused} if refused else {}
    settings = tune_settings(
        options.settings() | {"held": held, "calibrate": calibrate, "deployment": deployment or ""},
        data, target.model,
    )  # fmt: skip
    files = result.files(settings, result.summary() | {"dataset": data.named_as} | kept, tuned.data)
    folder = save_or_keep(functools.partial(write_files_atomically, files),
                          record_folder(record, "tune"), "tune", run)  # fmt: skip
    report = {
        "model": target.label, "out": str(out), "board": where, "dataset": data.name,
        "board_url": board, "server": server, "deployment": deployment, "held": held,
        "calibrated": calibrate, "registered": registered, "not_registered": refused,
        "options": options.settings(), **result.summary(),
        "epoch_accuracies": result.epoch_accuracies,
        "programming": [p.to_json() for p in result.programming], "record": str(folder),
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _print_tuned(report, result, output_console())
    exit_if_stopped(report, options.epochs, console, kept=f"{out} holds the epochs so far",
                    stop=stop)  # fmt: skip


class _RemoteTune:
    """``sidra model tune --remote-job``: the model (the file, or the deployment's as the
    server keeps it) sent with a tune job's options; the record saved in ``record``
    (None: runs/), the tuned model in ``out``."""

    def __init__(
        self,
        ctx: typer.Context,
        out: Path,
        record: Path | None,
        file: Target | None,
        deployment: str | None,
        server: str | None,
        dataset: str | None,
        tiles: list[int],
        held: bool,
        calibrate: bool,
    ) -> None:
        self.out, self.record, self.server, self.deployment = out, record, server, deployment
        target = file
        if deployment is not None:  # its model and tiles, as the server keeps them
            assert server is not None  # held_options asked for it
            with server_board(server, "tune") as board:
                target = target_of(board, file, deployment)
                _check_may_keep_name(board, target, server)
                if target.deployment is not None:
                    tiles = list(target.deployment.tiles)
        if target is None:
            raise typer.BadParameter("give a MODEL file, or --deployment NAME with --server")
        self.target = target
        self.dataset = dataset or target.model.inputs.dataset
        self.options = job_options(TuneOptions, ctx, tiles=tuple(tiles))
        self.sent = self.options.settings() | {
            "model_file_base64": base64.b64encode(target.data).decode("ascii"),
            "held": held, "calibrate": calibrate, "deployment": deployment or "",
        }  # fmt: skip

    def run(self, console: Console, queue: bool, priority: int, as_json: bool) -> None:
        summary = run_remote(
            self.server, "tune", self.options, self.dataset, self.record, console, sent=self.sent,
            queue=queue, priority=priority,
        )  # fmt: skip
        record = Path(summary["record"])
        write_atomically(self.out, (record / MODEL_FILE).read_bytes())
        report = {"model": self.target.label, "out": str(self.out), **summary}
        if as_json:
            typer.echo(json.dumps(report))
            return
        title = f"{self.target.label} tuned (job {summary['job_id']})"
        shown = {k: v for k, v in summary.items() if k not in ("registered", "not_registered")}
        console = output_console()  # the outcome on stdout, as a tuning run here prints it
        print_summary(shown, title, False, console)
        console.print(f"{self.out}: the tuned model; the job's record in {record}",
                      highlight=False)  # fmt: skip
        refused = summary.get("not_registered")
        if refused is not None:
            console.print(
                f"deployment {self.deployment!r} no longer matches its tiles, and was not "
                f"registered again ({refused}): its owner or an admin keeps the tuned model "
                f"under its name with sidra model deploy {self.out} --server {self.server} "
                f"--name {self.deployment} --replace",
                highlight=False,
            )
        elif self.deployment is not None:
            console.print(f"deployment {self.deployment!r}: the tuned model, registered "
                          "again by the server as its tiles hold it", highlight=False)  # fmt: skip


def _check_may_keep_name(board: Board, target: Target, server: str | None) -> None:
    """Before any tile is written: a tuned deployment is registered again under its name
    (:func:`_kept_under_name`), which only its owner or an admin may. Tuning another's
    rewrote its tiles and then left it registered as what they no longer hold; refused
    instead, naming the way to tune a copy."""
    found = target.deployment
    if found is None:
        return
    regions = [(r.tile, r.region) for r in found.regions]
    try:  # as _kept_under_name registers it, kept nowhere
        register(board, found.name, target, regions, replace=True, protect=found.protected,
                 validate_only=True)  # fmt: skip
    except PermissionDenied as exc:
        # As many tiles as the deployment takes: "--tile N" did not fit a 3-layer model.
        count = len(found.tiles)
        tiles = " ".join(f"--tile {chr(ord('A') + i)}" for i in range(count))
        raise typer.BadParameter(
            f"{exc}: tuning it would rewrite its tiles and could not keep the tuned model "
            f"under its name. Tune a copy on tiles of your own: sidra model pull "
            f"{found.name} --server {server} --out FILE, then sidra model tune FILE {tiles} "
            f"({count} free tile{'s' * (count > 1)} of yours, as many as it takes)",
            param_hint="'--deployment'",
        ) from exc


def _kept_under_name(
    board: Board, target: Target, tuned: Target
) -> tuple[dict[str, Any] | None, str | None]:
    """A tuned deployment registered again, in place of itself, as its tiles hold it now:
    the tuning wrote its trained layers there through the server (and left the others as
    they were), so the server's targets of its regions are the tuned model's. Programming
    it again instead (``deploy --replace``) would rewrite every cell write-verify finds
    off target, and on a noisy board (pcm: most of them) lose part of what the tuning
    matched (docs/models.md: 95.4 % kept, 94.8 % programmed again).
    The deployment as registered (its JSON) or the server's refusal (another principal's
    deployment: deploying it again is then its owner's or an admin's); neither when the
    model was not a deployment."""
    found = target.deployment
    if found is None:
        return None, None
    regions = [(r.tile, r.region) for r in found.regions]
    try:
        kept = register(board, found.name, tuned, regions, replace=True, protect=found.protected)
    except SidraError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return kept.as_dict(), None


def _print_tuned(report: dict[str, object], result: TuneResult, console: Console) -> None:
    """The tuning's figures, what its first programming reached, and how to run it."""
    if result.programming:
        print_programming(result.programming, console)
    table = Table(title=f"{report['model']} tuned on {report['board']}", show_header=False)
    table.add_column()
    table.add_column()
    # Before and after are read with --eval-read-repeats, the bar's epochs with
    # --read-repeats: two figures apart by the read noise alone, unless said.
    options = report["options"]
    assert isinstance(options, dict)
    table.add_row("test_accuracy", f"{figure_text('accuracy', result.accuracy_before)} -> "
                  f"{figure_text('accuracy', result.accuracy_after)} "
                  f"({_passes(options['eval_read_repeats'])} an input; the epochs' figures "
                  f"{_passes(options['read_repeats'])})")  # fmt: skip
    at = result.stopped_at_epoch
    stopped = "" if at is None else f" (stopped after {at})"
    table.add_row("epochs", f"{len(result.epoch_accuracies)}{stopped}, "
                  f"{count_text(len(result.losses), 'step')}")  # fmt: skip
    for key in ("placement", "programs", "device_writes", "mvm_calls", "modeled_time_ns",
                "modeled_energy_nj", "record"):  # fmt: skip
        table.add_row(key, figure_text(key, report[key]))
    console.print(table)
    # In placement order: the same --tile list places every layer as here.
    tiles = [t for layer in result.placement.values() for t in layer]
    used = " ".join(f"--tile {t}" for t in tiles)
    server = "" if report["server"] is None else f" --server {report['server']}"
    if not server and str(report["board_url"]).startswith("emu:"):
        console.print(f"{report['out']}: the tuned model (the emulator in this process, and "
                      "what its tiles held, ended with the command)", highlight=False)  # fmt: skip
        return
    console.print(
        f"{report['out']}: the tuned model; {tiles_text(tiles)} {_hold(tiles)} it now (sidra model "
        f"eval {report['out']} --held {used}{server})",
        highlight=False,
    )
    name = report["deployment"]
    if report["registered"] is not None:
        console.print(f"deployment {name!r}: the tuned model, as {tiles_text(tiles)} "
                      f"{_hold(tiles)} it (registered again in place of the model it was)",
                      highlight=False)  # fmt: skip
    elif name is not None:
        console.print(
            f"deployment {name!r} no longer matches its tiles, and was not registered again "
            f"({report['not_registered']}): its owner or an admin keeps the tuned model under "
            f"its name with sidra model deploy {report['out']}{server} --name {name} "
            f"--replace {used}",
            highlight=False,
        )


def _passes(repeats: int) -> str:
    return f"{repeats} read pass{'' if repeats == 1 else 'es'}"


def _hold(tiles: list[int]) -> str:
    """The verb after :func:`tiles_text` of ``tiles``: "tile 2 holds", "tiles 2, 3 hold"."""
    return "holds" if len(set(tiles)) == 1 else "hold"
