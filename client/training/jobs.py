"""Training jobs as ``sidra serve`` runs them, next to the board (jobs.proto).

The service finds :class:`TrainingJobs` through the ``sidra.jobs`` entry point and
loads it at the first SubmitJob, so it imports no training code until a job is
asked for. Each kind is a ``sidra train`` command with the same option model
(:mod:`sidra.training.options`); the service hands :meth:`TrainingJobs.run` a
board whose calls go through its turns and leases, and a reporter for progress.

This module needs the ``training`` extra: it imports scikit-learn (the data sets)
at import, so a service installed without the extra learns it at load time and
refuses the job with an error naming the extra, rather than failing mid-run.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sklearn  # noqa: F401  (the training extra: see the module docstring)
from pydantic import BaseModel, ValidationError

from sidra.drivers import Board, BoardInfo, InvalidArgument, SidraError, TileUse
from sidra.drivers.errors import refused_argument
from sidra.training.board_spsa import SPSACheckpoint, spsa_placement, train_softmax_spsa
from sidra.training.compare import compare_methods, compare_tiles
from sidra.training.datasets import BUNDLED, FILE_SUFFIXES, Dataset, DataShape, load_dataset
from sidra.training.epoch_checkpoint import EpochCheckpoint
from sidra.training.eqprop import eqprop_placement, train_eqprop
from sidra.training.figures import figure_bytes
from sidra.training.forward_forward import ff_placement, train_forward_forward
from sidra.training.hybrid import last_layer_placement, train_last_layer
from sidra.training.mlp import mlp_placement, train_mlp
from sidra.training.model import TrainedModel
from sidra.training.options import (
    CompareOptions,
    EqPropOptions,
    FFOptions,
    JobOptions,
    LastLayerOptions,
    MLPOptions,
    RecoveryOptions,
    SPSAOptions,
    TuneJobOptions,
)
from sidra.training.placement import resumed_order
from sidra.training.records import (
    CHECKPOINT_FILE,
    INTERRUPTED,
    PLOT_FILE,
    STOPPED_AT,
    TrainingRecord,
)
from sidra.training.recovery import drift_recovery, recovery_files
from sidra.training.stopping import RunInterrupted
from sidra.training.tuning import tune_model, tune_settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CHECKPOINT_EVERY_S",
    "KINDS",
    "RESUMABLE",
    "RESUME_FIELD",
    "DigestedFile",
    "Drawn",
    "JobReporter",
    "Outcome",
    "RecordFile",
    "RecordKept",
    "TrainingJobs",
    "claim_order",
    "placed_shape",
    "with_plot",
]

KINDS: dict[str, type[JobOptions]] = {
    "spsa": SPSAOptions,
    "last-layer": LastLayerOptions,
    "compare": CompareOptions,
    "drift-recovery": RecoveryOptions,
    "mlp": MLPOptions,
    "ff": FFOptions,
    "eqprop": EqPropOptions,
    "tune": TuneJobOptions,
}
"""Each job kind (the ``sidra train`` command's name; ``tune``: ``sidra model tune``) and
its option model."""

RESUMABLE = ("spsa", "last-layer", "mlp", "ff", "eqprop")
"""The kinds that keep a checkpoint when they stop early (cancelled at a boundary, or their
board gone) and go on from one: every kind but compare and drift-recovery."""

RESUME_FIELD = "resume_checkpoint"
"""SubmitJob's field carrying the checkpoint a job goes on from."""

CHECKPOINT_EVERY_S = 60.0
"""How often a running job saves its checkpoint and keeps it in the server's store by
default, s (at its next step or epoch boundary): what a server that dies mid-job leaves
to go on from (``sidra serve``: ``[state] job_checkpoint_every_s``)."""

SENT = "the one sent"
"""How refusals of the checkpoint a job was sent name it (the service names the field)."""


class JobReporter(Protocol):
    """Where a job reports to; either call may raise to stop the job (cancellation)."""

    def progress(self, step: int, total: int, message: str) -> None: ...

    def log(self, line: str) -> None: ...

    def keep_tiles(self, tiles: tuple[int, ...]) -> None:
        """Narrows the job's lease of the whole board to ``tiles``: a job that needed
        the whole board only for its start frees the rest for others."""
        ...

    def keep_file(self, name: str, content: bytes) -> None:
        """Stores one record file while the job runs (its latest checkpoint), at once: a
        server that dies mid-job leaves it for a new job to go on from."""
        ...

    def keep_deployment(self, name: str, model: bytes, description: str) -> dict[str, Any]:
        """Registers ``model`` (a model file's bytes) under deployment ``name`` again, in
        place of itself (its regions, its protection), as the job's principal: the tiles
        hold it now. The deployment as JSON values; a SidraError saying why not (another
        principal's deployment, no such deployment)."""
        ...


RecordFile = bytes | Callable[[], bytes]
"""A record file's bytes, or what draws them (its plot): the service calls it once the
job has let go of its tiles (sidra.server.jobs.runner.RecordFile)."""

Outcome = tuple[dict[str, Any], dict[str, RecordFile]]
"""A finished job's summary (what ``sidra train --json`` prints) and record files."""


class Drawn(Protocol):
    """A record with a plot (a run's, a comparison's)."""

    def figure(self) -> Figure: ...


def with_plot(files: dict[str, bytes], drawn: Drawn) -> dict[str, RecordFile]:
    """``files`` and :data:`~sidra.training.records.PLOT_FILE`, drawn from ``drawn`` when
    the service asks for it: drawing takes a good part of a second."""
    return {**files, PLOT_FILE: lambda: figure_bytes(drawn.figure())}


def claim_order(tile_count: int, use: TileUse | None, resume: bytes | None) -> tuple[int, ...]:
    """The order a job given no tiles takes a board's tiles in, as :func:`tile_order` says
    for a run in process: a checkpoint's own tiles first, else the free ones first."""
    if resume:
        saved = json.loads(resume).get("settings")  # checked by check_resume before
        earlier = resumed_order(saved if isinstance(saved, dict) else None, tile_count)
        if earlier:
            return earlier
    return () if use is None else use.order(tile_count)


SHAPES_KEPT = 64
"""Data sets whose shape :func:`placed_shape` keeps (the oldest is forgotten first)."""

_shapes: dict[tuple[str, str | None], DataShape] = {}
_shapes_lock = threading.Lock()


class DigestedFile(Protocol):
    """A data set file known by its SHA-256, read only when needed (the service's
    ``SentDataset``: a queued job's file stays in the server's store)."""

    @property
    def sha256(self) -> str: ...

    def read(self) -> bytes: ...


def placed_shape(dataset: str, content: bytes | DigestedFile | None = None) -> DataShape:
    """``dataset``'s features and classes (of ``content``: a file a client sent), read once
    per data set: the queue places a waiting job again every pass while its tiles are
    held. A sent file is known by its SHA-256 (given, or computed from bytes), so no file
    or data is kept for it, and a file given by digest is read only the first time."""
    if content is None or isinstance(content, bytes):
        digest = None if content is None else hashlib.sha256(content).hexdigest()
    else:
        digest = content.sha256
    key = (dataset, digest)
    with _shapes_lock:
        known = _shapes.get(key)
    if known is not None:
        return known
    data = content if content is None or isinstance(content, bytes) else content.read()
    shape = load_dataset(dataset, content=data).shape
    with _shapes_lock:
        if len(_shapes) >= SHAPES_KEPT:
            del _shapes[next(iter(_shapes))]  # the oldest
        _shapes[key] = shape
    return shape


class TrainingJobs:
    """The training jobs a service can run (the ``sidra.jobs`` entry point)."""

    models: dict[str, type[JobOptions]] = KINDS
    """Each kind this runner runs and its option model."""
    kinds: tuple[str, ...] = tuple(KINDS)
    datasets: tuple[str, ...] = BUNDLED
    dataset_files: tuple[str, ...] = FILE_SUFFIXES
    """The data set files a job may be sent (the name's suffix, any case)."""

    def options(self, kind: str, options_json: str) -> JobOptions:
        """The validated options of a ``kind`` job; ValueError naming the option, the
        value and what is allowed."""
        model = self.models[kind]
        try:
            values = json.loads(options_json or "{}")
        except RecursionError:  # nested deeper than the parser's stack: no options are
            raise ValueError(
                "options_json: nested deeper than any options go, expected a JSON object "
                "of option names to values"
            ) from None
        if not isinstance(values, dict):
            raise ValueError(f"options_json: got {type(values).__name__}, expected a JSON object")
        try:  # strict: JSON true is no step count, nor "10" a number (as JSON means them)
            options = model.model_validate_json(options_json or "{}", strict=True)
        except ValidationError as exc:
            raise refused_option(kind, model, exc) from None
        if isinstance(options, TuneJobOptions):
            _check_tunable(_sent_model(options), options)  # refused now, not at its start
        return options

    def options_json(self, options: JobOptions) -> str:
        """Every option's value, defaults included, as JSON (what a job's listing shows:
        a twin profile's text or a model's bytes left out)."""
        return json.dumps(options.settings(), sort_keys=True)

    def queued_options_json(self, options: JobOptions) -> str:
        """The options whole, as JSON: what a queued job is read back from when the server
        restarts."""
        return json.dumps(options.model_dump(mode="json"), sort_keys=True)

    def claim(
        self,
        kind: str,
        options: JobOptions,
        dataset: str,
        info: BoardInfo,
        use: TileUse | None = None,
        resume: bytes | None = None,
        dataset_file: DigestedFile | None = None,
    ) -> tuple[tuple[int, ...], bool]:
        """The tiles the job writes (where its layers are placed on a board described by
        ``info``, for ``dataset``'s shape), and whether it needs the whole board.
        PlacementError (a ValueError) when the network does not fit. Given no tiles, a job
        going on from ``resume`` (a checkpoint's bytes, checked) takes the tiles it ran on
        first, any other those ``use`` says nobody else uses (:func:`tile_order`).
        ``dataset_file``: the file ``dataset`` names (:meth:`check_dataset`), read only when
        its shape is not known yet."""
        order = claim_order(info.tile_count, use, resume)
        data = placed_shape(dataset, dataset_file)
        if isinstance(options, SPSAOptions):
            return spsa_placement(info, data, options, order).of("layer"), False
        if isinstance(options, CompareOptions):
            return compare_tiles(info, data, options, order), False
        if isinstance(options, LastLayerOptions):
            placed = last_layer_placement(info, data.features, data.classes, options, order)
            return placed.used, False
        if isinstance(options, MLPOptions):
            return mlp_placement(info, data, options, order).used, False
        if isinstance(options, FFOptions):
            return ff_placement(info, data, options, order).used, False
        if isinstance(options, EqPropOptions):
            return eqprop_placement(info, data, options, order).used, False
        if isinstance(options, TuneJobOptions):  # held: where it was deployed (0 first)
            model = _sent_model(options)
            if (data.features, data.classes) != (model.features, model.classes):
                raise InvalidArgument(
                    "dataset", dataset, f"a data set of {model.features} features and "
                    f"{model.classes} classes, as the model sent takes ({model.inputs.dataset})",
                )  # fmt: skip
            tiles = options.tiles or (() if options.held else order)
            return model.placement(info, tiles).used, False
        return (), True  # drift recovery ages the board: AdvanceClock acts on every tile

    resumable: tuple[str, ...] = RESUMABLE
    """The kinds that keep a checkpoint and go on from one."""

    def check_dataset(self, dataset: str, content: bytes | DigestedFile) -> None:
        """ValueError saying what is wrong with the data set file named ``dataset`` (a name,
        no folder) of ``content``, as training would read it: refused at submission (a
        file known by digest is read once, however often it is checked)."""
        placed_shape(dataset, content)

    def deployment_kept(self, kind: str, options: JobOptions) -> str:
        """The deployment the job registers again when it ends: a tune job's, if given."""
        return options.deployment if isinstance(options, TuneJobOptions) else ""

    def check_resume(
        self,
        kind: str,
        options: JobOptions,
        dataset: str,
        checkpoint: bytes,
        dataset_file: bytes | None = None,
    ) -> None:
        """ValueError saying why a ``kind`` job of ``options`` on ``dataset`` (of
        ``dataset_file``, a file sent) cannot go on from ``checkpoint`` (the bytes of a
        ``checkpoint.json``): a kind that keeps none, not a checkpoint, another run's
        (another job, other options, another data set), or damaged. Checked when the job
        is submitted, before anything is leased."""
        if kind not in self.resumable:
            raise ValueError(
                f"a {kind} job keeps no checkpoint to go on from (the kinds that do: "
                f"{', '.join(self.resumable)})"
            )
        text = _text(checkpoint)
        data = load_dataset(dataset, content=dataset_file)
        if isinstance(options, SPSAOptions):
            SPSACheckpoint.parse(text, options, dataset=data, source=SENT)
        else:
            EpochCheckpoint.parse(
                text, options, kind, self._extras(options), dataset=data, source=SENT
            )

    def _extras(self, options: JobOptions) -> tuple[str, ...] | None:
        """What a checkpoint of a run of ``options`` holds beside its network (None: the
        trainer's usual, sidra.training.epoch_checkpoint.EXTRAS)."""
        return None

    def run(
        self,
        kind: str,
        options: JobOptions,
        dataset: str,
        board: Board,
        reporter: JobReporter,
        stop: threading.Event,
        resume: bytes | None = None,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
        dataset_file: bytes | None = None,
        dataset_origin: str = "sent with the job",
    ) -> Outcome:
        """Runs the job on ``board``; returns its summary and record files. Once ``stop`` is
        set it ends at its next step, epoch (drift-recovery: of its retraining) or run
        (compare) boundary, evaluated, with the record of what it did, and (a kind of
        :attr:`resumable`) its ``checkpoint.json``, which it also hands the service every
        ``checkpoint_every_s`` while it runs (``reporter.keep_file``). ``resume``: a
        checkpoint's bytes (:meth:`check_resume`), which the job goes on from.
        ``dataset_file``: the content of the file ``dataset`` names; ``dataset_origin``: how
        it reached the server, as the log says it (sent with the job, or kept on the
        server: sidra.server.jobs.runner.DATASET_SENT and the others)."""
        split = _split(options)
        if dataset_file is None:
            reporter.log(f"loading data set {dataset}")
            data = load_dataset(dataset, **split)
        else:  # its digest as the load computed it (the record's settings hold it whole)
            data = load_dataset(dataset, content=dataset_file, **split)
            reporter.log(f"loading data set {dataset} ({dataset_origin}: "
                         f"{len(dataset_file):,} bytes, SHA-256 {data.sha256[:16]})")  # fmt: skip
        reporter.log(f"{kind} on {data.name}: {len(data.x_train)} training samples")
        with tempfile.TemporaryDirectory(prefix="sidra-job-") as folder:
            path = Path(folder) / CHECKPOINT_FILE if kind in self.resumable else None
            if resume is not None:
                assert path is not None, f"{kind} jobs go on from no checkpoint"
                path.write_bytes(resume)
                reporter.log(f"going on from the checkpoint sent ({len(resume)} bytes)")
            watched = reporter if path is None else _KeepingCheckpoint(reporter, path)
            going_on = {} if path is None else {
                "checkpoint": path, "resume": resume is not None,
                "checkpoint_every_s": checkpoint_every_s,
            }  # fmt: skip
            try:
                summary, files = self._train(board, data, options, watched, stop, going_on)
            except RunInterrupted as lost:
                if lost.record is None and _saved(path) is None:
                    raise
                outcome = None if lost.record is None else _record(lost.record, data.named_as)
                raise RecordKept(lost, outcome, path, data.named_as) from lost.cause
            except RecordKept as kept:  # a kind that builds its own record (pat)
                raise kept.keeping(path, data.named_as) from kept.__cause__
            if any(key.startswith(STOPPED_AT) for key in summary):
                saved = _saved(path)  # stopped at a boundary: go on from there later
                if saved is not None:
                    files = files | {CHECKPOINT_FILE: saved}
            return summary, files

    def _train(
        self,
        board: Board,
        data: Dataset,
        options: JobOptions,
        reporter: JobReporter,
        stop: threading.Event,
        going_on: dict[str, Any],
    ) -> Outcome:
        """The job's run: its summary and files. ``going_on``: its trainer's
        ``checkpoint`` (where it saves its state now and then and if it stops early or
        loses its board), ``resume`` and ``checkpoint_every_s``; empty for a kind that
        keeps no checkpoint."""
        return _run(board, data, options, reporter, stop, going_on)


class _KeepingCheckpoint:
    """A job's reporter that, at each progress report (after a step or an epoch), hands
    the service the checkpoint its trainer saved since the last one (keep_file)."""

    def __init__(self, reporter: JobReporter, path: Path) -> None:
        self.reporter, self.path = reporter, path
        self._seen: tuple[int, int] | None = None
        self._looked_s = 0.0

    def progress(self, step: int, total: int, message: str) -> None:
        self.reporter.progress(step, total, message)
        now = time.monotonic()
        if now - self._looked_s < 1.0:  # SPSA reports every step: look once a second
            return
        self._looked_s = now
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if (stat.st_mtime_ns, stat.st_size) != self._seen:
            self._seen = (stat.st_mtime_ns, stat.st_size)
            self.reporter.keep_file(CHECKPOINT_FILE, self.path.read_bytes())

    def log(self, line: str) -> None:
        self.reporter.log(line)

    def keep_tiles(self, tiles: tuple[int, ...]) -> None:
        self.reporter.keep_tiles(tiles)

    def keep_file(self, name: str, content: bytes) -> None:
        self.reporter.keep_file(name, content)

    def keep_deployment(self, name: str, model: bytes, description: str) -> dict[str, Any]:
        return self.reporter.keep_deployment(name, model, description)


def _text(checkpoint: bytes) -> str:
    try:
        return checkpoint.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{SENT}: not UTF-8 text ({exc})") from exc


def _saved(path: Path | None) -> bytes | None:
    """The checkpoint the run saved (or went on from) at ``path``, if any."""
    return path.read_bytes() if path is not None and path.is_file() else None


class RecordKept(Exception):
    """A job whose board went away mid-way, with what it made: ``outcome``, its summary
    and files, which the service keeps for the failed job
    (sidra.server.jobs.runner.JobRunner.run): the record up to its last whole epoch (a
    run in epochs) and the checkpoint it saved (or went on from), ``checkpoint.json``.
    The message is the board's error, how far the run got and where that is kept."""

    def __init__(
        self,
        lost: RunInterrupted,
        outcome: Outcome | None,
        checkpoint: Path | None = None,
        dataset: str = "",
    ) -> None:
        saved = _saved(checkpoint)
        cause = f"{type(lost.cause).__name__}: {lost.cause}"
        where = "in the run's record"
        if outcome is None:  # an SPSA run keeps its checkpoint alone
            unit = f"{INTERRUPTED}at_{lost.unit}"
            outcome = {unit: lost.steps, f"{INTERRUPTED}by": cause, "dataset": dataset}, {}
            where = "in the job's"
        if saved is not None:
            where += (
                f"{' and its' if outcome[1] else ''} {CHECKPOINT_FILE}, which a job "
                f"submitted with it ({RESUME_FIELD}) goes on from"
            )
            outcome = outcome[0], outcome[1] | {CHECKPOINT_FILE: saved}
        super().__init__(f"{cause}; the {lost.steps} {lost.unit}s made are kept {where}")
        self.lost, self.outcome = lost, outcome

    def keeping(self, checkpoint: Path | None, dataset: str) -> RecordKept:
        """The same, with the checkpoint the run saved at ``checkpoint``."""
        return RecordKept(self.lost, self.outcome, checkpoint, dataset)


def _run(
    board: Board,
    data: Dataset,
    options: JobOptions,
    reporter: JobReporter,
    stop: threading.Event,
    going_on: dict[str, Any],
) -> Outcome:
    """``going_on``: the trainer's ``checkpoint`` and ``resume`` (a kind of RESUMABLE)."""
    if isinstance(options, SPSAOptions):
        return _spsa(board, data, options, reporter, stop, going_on)
    if isinstance(options, LastLayerOptions):
        return _last_layer(board, data, options, reporter, stop, going_on)
    if isinstance(options, CompareOptions):
        return _compare(board, data, options, reporter, stop)
    if isinstance(options, MLPOptions):
        return _mlp(board, data, options, reporter, stop, going_on)
    if isinstance(options, FFOptions):
        return _forward_forward(board, data, options, reporter, stop, going_on)
    if isinstance(options, EqPropOptions):
        return _eqprop(board, data, options, reporter, stop, going_on)
    if isinstance(options, TuneJobOptions):
        return _tune(board, data, options, reporter, stop)
    assert isinstance(options, RecoveryOptions)
    return _recovery(board, data, options, reporter, stop)


def _record(record: TrainingRecord, dataset: str) -> Outcome:
    record.settings["dataset"] = dataset
    return record.summary(), with_plot(record.files(), record)  # saved by the client as it is


def _spsa(
    board: Board,
    data: Dataset,
    options: SPSAOptions,
    reporter: JobReporter,
    stop: threading.Event,
    going_on: dict[str, Any],
) -> Outcome:
    def on_step(step: Any) -> None:
        # Every step: the service decides which become events. A cancelled job ends at
        # the step boundary through ``stop``, its record kept.
        reporter.progress(step.step, options.steps, f"loss {step.loss:.3f}")

    record = train_softmax_spsa(board, data, options, on_step=on_step, stop=stop, **going_on)
    return _record(record, data.named_as)


def _last_layer(
    board: Board,
    data: Dataset,
    options: LastLayerOptions,
    reporter: JobReporter,
    stop: threading.Event,
    going_on: dict[str, Any],
) -> Outcome:
    def on_epoch(epoch: int, test: float) -> None:
        reporter.progress(epoch, options.epochs, f"test {100 * test:.2f} %")

    record = train_last_layer(board, data, options, on_epoch=on_epoch, stop=stop, **going_on)
    return _record(record, data.named_as)


def _mlp(
    board: Board,
    data: Dataset,
    options: MLPOptions,
    reporter: JobReporter,
    stop: threading.Event,
    going_on: dict[str, Any],
) -> Outcome:
    def on_epoch(epoch: int, test: float) -> None:
        reporter.progress(epoch, options.epochs, f"test {100 * test:.2f} %")

    record = train_mlp(board, data, options, on_epoch=on_epoch, stop=stop, **going_on)
    return _record(record, data.named_as)


def _forward_forward(
    board: Board,
    data: Dataset,
    options: FFOptions,
    reporter: JobReporter,
    stop: threading.Event,
    going_on: dict[str, Any],
) -> Outcome:
    def on_epoch(epoch: int, test: float | None) -> None:
        status = "" if test is None else f"test {100 * test:.2f} %"
        reporter.progress(epoch, options.epochs, status)

    record = train_forward_forward(board, data, options, on_epoch=on_epoch, stop=stop, **going_on)
    return _record(record, data.named_as)


def _eqprop(
    board: Board,
    data: Dataset,
    options: EqPropOptions,
    reporter: JobReporter,
    stop: threading.Event,
    going_on: dict[str, Any],
) -> Outcome:
    def on_epoch(epoch: int, test: float) -> None:
        reporter.progress(epoch, options.epochs, f"test {100 * test:.2f} %")

    record = train_eqprop(board, data, options, on_epoch=on_epoch, stop=stop, **going_on)
    return _record(record, data.named_as)


def _compare(
    board: Board,
    data: Dataset,
    options: CompareOptions,
    reporter: JobReporter,
    stop: threading.Event,
) -> Outcome:
    done: list[Any] = []
    total = len(options.methods) * len(options.seeds)

    def on_result(result: Any) -> None:
        done.append(result)
        status = f"{result.name} seed {result.seed}: {100 * result.test_accuracy:.2f} %"
        reporter.progress(len(done), total, status)

    comparison = compare_methods(board, data, options, on_result=on_result, stop=stop)
    comparison.settings["dataset"] = data.named_as  # as every job's record names it
    summary = comparison.summary() | {"dataset": data.named_as}
    return summary, with_plot(comparison.files(), comparison)


def _recovery(
    board: Board,
    data: Dataset,
    options: RecoveryOptions,
    reporter: JobReporter,
    stop: threading.Event,
) -> Outcome:
    reporter.progress(0, 1, "deploying, ageing, retraining")
    report = drift_recovery(board, data, options, stop=stop)
    summary = report.summary() | {"dataset": data.named_as}
    reporter.progress(1, 1, f"recovered {100 * report.recovered_accuracy:.2f} %")
    files: dict[str, RecordFile] = dict(recovery_files(options, data, summary))  # no plot
    return summary, files


def _sent_model(options: TuneJobOptions) -> TrainedModel:
    """The model a tune job was sent; InvalidArgument naming the option otherwise."""
    return _model_of(options.model_file_base64)


@functools.lru_cache(maxsize=4)
def _model_of(text: str) -> TrainedModel:
    # Submission, every pass of the queue (its placement) and the run ask for the model
    # of the same text: read once.
    field = "options_json.model_file_base64"
    try:
        return TrainedModel.from_bytes(base64.b64decode(text, validate=True), "the model sent")
    except (binascii.Error, ValueError) as exc:
        what = "not base64" if isinstance(exc, binascii.Error) else str(exc)
        raise InvalidArgument(
            field, f"{len(text)} characters", f"a model file (model.npz) in base64: {what}"
        ) from exc


def _check_tunable(model: TrainedModel, options: TuneJobOptions) -> None:
    """What tune_model refuses before any board call, refused when the job is submitted."""
    if model.readout is not None:
        raise InvalidArgument(
            "options_json.model_file_base64", f"a {model.job} model",
            "a ReLU network read out by its logits; a forward-forward or "
            "equilibrium-propagation model is trained by its own command",
        )  # fmt: skip
    if options.trainable > len(model.layers):
        raise InvalidArgument(
            "options_json.trainable", options.trainable,
            f"1 .. {len(model.layers)}, the model's layers",
        )  # fmt: skip


def _split(options: JobOptions) -> dict[str, Any]:
    """How a job's data set is split: as its model was trained (a tune job), or as every
    training run splits it."""
    if isinstance(options, TuneJobOptions):
        inputs = _sent_model(options).inputs
        return {"test_size": inputs.test_size, "random_state": inputs.random_state}
    return {}


def _tune(
    board: Board,
    data: Dataset,
    options: TuneJobOptions,
    reporter: JobReporter,
    stop: threading.Event,
) -> Outcome:
    """``sidra model tune``, next to the board; a deployment tuned is registered again in
    place of itself once tuned, before the record is made (the tiles hold the tuned model
    however the client fares)."""
    model = _sent_model(options)

    def on_epoch(epoch: int, test: float) -> None:
        reporter.progress(epoch, options.epochs, f"test {100 * test:.2f} %")

    result = tune_model(
        model, board, data, options, on_epoch=on_epoch, stop=stop, held=options.held,
        calibrate=options.calibrate,
    )  # fmt: skip
    tuned = result.model.to_bytes()
    summary: dict[str, Any] = {**result.summary(), "dataset": data.named_as}
    if options.deployment:
        score = f", {100 * result.accuracy_after:.2f} % test accuracy"
        description = f"tuned on {data.named_as}{score}, in a job next to the board"
        try:
            kept = reporter.keep_deployment(options.deployment, tuned, description)
            summary |= {"registered": kept}
            reporter.log(f"deployment {options.deployment!r} registered again: the tuned model")
        except SidraError as exc:
            refused = f"{type(exc).__name__}: {exc}"
            summary |= {"not_registered": refused}
            reporter.log(f"deployment {options.deployment!r} not registered again: {refused}")
    settings = tune_settings(options.settings(), data, model)
    return summary, dict(result.files(settings, summary, tuned))


def refused_option(kind: str, model: type[BaseModel], exc: ValidationError) -> InvalidArgument:
    """The first value ``model`` refused, named by its path in SubmitJob's ``options_json``
    (sidra.drivers.errors.refused_argument); the other refusals, if any, are counted in
    ``allowed``."""
    errors = exc.errors()
    options = f"the {kind} options ({', '.join(model.model_fields)})"
    refused = refused_argument(errors[0], "options_json", lambda: options)
    if len(errors) > 1:
        refused = InvalidArgument(
            refused.field, refused.value, f"{refused.allowed} ({len(errors) - 1} more refused)"
        )
    return refused
