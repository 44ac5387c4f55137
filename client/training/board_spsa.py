"""SPSA training of an analog softmax layer with the board in the loop.

:class:`SPSAJob` trains a ``features → classes`` layer mapped on a tile, with
either perturbation mode (see ``evaluators``), Spall gains given or
calibrated on the board, and a :class:`TrainingRecord` whose loss
evaluations, MVM calls, device writes and modeled hardware time and energy
come from the job's :class:`JobMeter`. :func:`train_softmax_spsa` runs one.

A run can be checkpointed between steps and resumed exactly
(:class:`SPSACheckpoint`): optimizer state, the random generators, the record
so far and the counts.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, BoardInfo, InvalidArgument, SidraError
from sidra.training.accounting import JobCounts, JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.calibration import calibrate
from sidra.training.datasets import Dataset, Shaped, check_trained_on
from sidra.training.epoch_checkpoint import options_differing
from sidra.training.evaluators import HostHeldEvaluator, OnBoardEvaluator
from sidra.training.model import ModelInputs, TrainedModel
from sidra.training.options import PerturbationMode, SPSAOptions
from sidra.training.placement import LayerShape, Placement, claimed, named_tiles, place
from sidra.training.records import (
    Checkpoint,
    TrainingRecord,
    array_from_json,
    array_to_json,
    checkpoint_json,
    checkpoint_text,
    write_json_atomically,
)
from sidra.training.schedules import spall_gains
from sidra.training.softmax import accuracy
from sidra.training.spsa import SPSA, SPSASettings, SPSAStep
from sidra.training.stopping import RunInterrupted, stopped

__all__ = [
    "SPSACheckpoint",
    "SPSAJob",
    "minibatch_stream",
    "spsa_layer_shape",
    "spsa_placement",
    "train_softmax_spsa",
]

Array = npt.NDArray[np.float32]


def train_softmax_spsa(
    board: Board,
    data: Dataset,
    options: SPSAOptions | None = None,
    *,
    on_step: Callable[[SPSAStep], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    stop: threading.Event | None = None,
    checkpoint_every_s: float = 0.0,
) -> TrainingRecord:
    """Trains a softmax layer on ``board`` with SPSA; returns the run's record.

    With ``checkpoint`` and ``checkpoint_every`` the run is saved to that JSON
    file every so many steps; ``resume=True`` continues from it (same options
    required; the board is reprogrammed with the checkpointed weights on the
    first step). Once ``stop`` is set the run ends at the next step boundary: saved
    to ``checkpoint`` (when given) whatever ``checkpoint_every``, evaluated as a
    finished run would be, its record's ``stopped_at_step`` the steps it made.
    ``checkpoint_every_s``: also saved at a step once that long has passed since the last
    save, so that a crash leaves a checkpoint.
    """
    opts = options or SPSAOptions()
    # Its model needs the data's scaling: checked now, not after every step was trained.
    ModelInputs.of(data)
    if checkpoint_every < 0:
        raise ValueError(f"checkpoint_every: got {checkpoint_every}, expected >= 0 (0: never)")
    saved = SPSACheckpoint.load(checkpoint, opts, dataset=data) if resume else None
    job = SPSAJob(board, data, opts, on_step=on_step, going_on_from=saved)
    return job.run(
        saved, checkpoint=checkpoint, every=checkpoint_every, stop=stop,
        every_s=checkpoint_every_s,
    )  # fmt: skip


def spsa_layer_shape(data: Dataset) -> tuple[int, int]:
    """The softmax layer's weights' shape: an input row for each feature and one for the
    bias, a column for each class."""
    return (data.features + 1, data.classes)


def spsa_placement(
    info: BoardInfo, data: Shaped, options: SPSAOptions, order: Sequence[int] = ()
) -> Placement:
    """The tiles of the SPSA job's one layer (features + bias row x classes); ``order``:
    the board's tiles as a layer allowed any takes them (:func:`tile_order`)."""
    layer = LayerShape("layer", data.features, data.classes)
    return place(info, [layer], allowed=options.tiles, order=order)


class SPSAJob:
    """One SPSA run: build the layer and evaluator, choose the gains, step, report.

    One generator seeded with ``options.seed`` draws the perturbation seeds and the
    calibration samples, and in board mode the minibatches, in that shared order.
    Host mode draws its minibatches ahead of the steps that use them
    (:class:`HostHeldEvaluator`), from a stream of their own spawned from the same
    seed (:func:`minibatch_stream`), so drawing ahead changes no other draw.
    """

    def __init__(
        self,
        board: Board,
        data: Dataset,
        options: SPSAOptions,
        *,
        on_step: Callable[[SPSAStep], None] | None = None,
        going_on_from: SPSACheckpoint | None = None,
    ) -> None:
        """``going_on_from``: the checkpoint :meth:`run` will go on from (its layer placed
        on the tiles it ran on, when free to choose)."""
        self.board, self.data, self.options = board, data, options
        self.on_step = on_step
        self.rng = np.random.default_rng(options.seed)
        earlier = None if going_on_from is None else going_on_from.settings
        self.placement = claimed(
            board, lambda order: spsa_placement(board.info, data, options, order), earlier,
            named=named_tiles(options),
        )  # fmt: skip
        self.layer = AnalogLinear(
            board,
            self.placement.of("layer"),
            data.features,
            data.classes,
            weight_limit=options.weight_limit,
        )
        self.evaluator = self._evaluator()
        self.meter = JobMeter(board, [self.layer])
        self.record = TrainingRecord(settings={})
        self.programs_before = 0
        """Program calls of the run this one goes on from (a resumed run's)."""

    def _evaluator(self) -> OnBoardEvaluator | HostHeldEvaluator:
        o, d = self.options, self.data
        if o.mode is PerturbationMode.BOARD:
            return OnBoardEvaluator(self.layer, d.x_train, d.y_train, o.batch_size, self.rng)
        batches = minibatch_stream(o.seed)
        return HostHeldEvaluator(
            self.layer, d.x_train, d.y_train, o.batch_size, batches, o.program_every
        )

    def run(
        self,
        saved: SPSACheckpoint | None = None,
        *,
        checkpoint: str | Path | None = None,
        every: int = 0,
        stop: threading.Event | None = None,
        every_s: float = 0.0,
    ) -> TrainingRecord:
        """Steps to the end (from ``saved`` if given), saving to ``checkpoint`` every
        ``every`` steps (0: never) and at a step once ``every_s`` seconds have passed since
        the last save (0: never), or to the first step boundary after ``stop`` is set
        (saved to ``checkpoint`` then); returns the record."""
        optimizer = self.start(saved)
        # Kept only for a run that has somewhere to save it (a few µs a step): what a
        # checkpoint due now saves, and what is saved if the board goes before the next.
        first = boundary = _Boundary.at(self, optimizer) if checkpoint else None
        saved_s = writes_read_s = time.monotonic()
        try:
            while not optimizer.done:
                ask = optimizer.ask()
                optimizer.tell(self.evaluator(ask.x, ask.points))
                if not optimizer.at_step_boundary:
                    continue
                stopping = stopped(
                    stop, self.record.settings, optimizer.step, self.options.steps, "step"
                )
                if checkpoint:
                    now = time.monotonic()
                    due = bool(every and optimizer.step % every == 0) or bool(
                        every_s and now - saved_s >= every_s
                    )
                    # Every step's boundary is kept (a board lost keeps the steps made);
                    # its device writes are read afresh when it is saved, and at least
                    # every WRITES_READ_EVERY_S: a stats call per step cost a job 9 %.
                    fresh = stopping or due or now - writes_read_s >= WRITES_READ_EVERY_S
                    boundary = _Boundary.at(self, optimizer, fresh_writes=fresh)
                    if fresh:
                        writes_read_s = now
                    if stopping or due:
                        boundary.checkpoint(self).save(checkpoint)
                        saved_s = time.monotonic()
                if stopping:
                    break
            return self.finish(optimizer)
        except SidraError as exc:
            # The board went away (or refused the run) mid-way: the steps made are kept
            # where a resume finds them, as at a Ctrl-C, though the final accuracies the
            # board would measure cannot be. A refused value is no such case.
            if boundary is None or isinstance(exc, InvalidArgument) or boundary is first:
                raise
            assert checkpoint is not None  # a boundary is kept only then
            boundary.checkpoint(self).save(checkpoint)
            raise RunInterrupted(exc, boundary.step, Path(checkpoint)) from exc

    def start(self, saved: SPSACheckpoint | None = None) -> SPSA:
        """The optimizer at step 0 (gains given or calibrated) or at ``saved``'s step."""
        o = self.options
        x0 = np.zeros(self.layer.shape, np.float32)
        a, c = self._gains(x0, saved)
        learning_rate, perturbation = spall_gains(a, c, o.steps)
        settings = SPSASettings(
            learning_rate=learning_rate,
            perturbation=perturbation,
            resamplings=o.resamplings,
            blocking=o.blocking,
            last_avg=o.last_avg,
            second_order=o.second_order,
            bounds=(-self.layer.weight_limit, self.layer.weight_limit),
        )
        optimizer = SPSA(x0, settings, self.rng, o.steps)
        placed = {"placement": self.placement.summary()}
        self.record = TrainingRecord(
            settings=o.settings() | {"a": a, "c": c, "job": "spsa"} | self.data.settings() | placed
        )
        if saved is not None:
            saved.restore(optimizer, self.record)
            self.meter.carried = saved.counts
            self.programs_before = saved.programs
            if saved.minibatches is not None and isinstance(self.evaluator, HostHeldEvaluator):
                self.evaluator.restore_minibatches(saved.minibatches)
        optimizer.callback = self._after_step
        return optimizer

    def _gains(self, x0: Array, saved: SPSACheckpoint | None) -> tuple[float, float]:
        o = self.options
        if saved is not None:
            return saved.settings["a"], saved.settings["c"]
        if o.a is None or o.c is None:  # the calibration's loss evaluations reach the meter
            cal = calibrate(self.evaluator, x0, o.steps, self.rng, c_floor=o.c or 0.1)
            return o.a or cal.a, o.c or cal.c
        return o.a, o.c

    def test_accuracy(self, weights: Array, final: bool = False) -> float:
        """Accuracy on the test set of the layer holding ``weights`` (each input the mean
        of ``eval_read_repeats`` passes)."""
        predicted = self.evaluator.predict(
            weights, self.data.x_test, final=final, read_repeats=self.options.eval_read_repeats
        )
        return accuracy(predicted, self.data.y_test)

    def _after_step(self, step: SPSAStep) -> None:
        self.record.losses.append(step.loss)
        if step.step % self.options.eval_every == 0:
            test = self.test_accuracy(step.x)  # before counting: it may program the board
            self.record.checkpoints.append(Checkpoint(step.step, test, self.meter.device_writes))
        if self.on_step is not None:
            self.on_step(step)

    def finish(self, optimizer: SPSA) -> TrainingRecord:
        """Final weights, accuracies and counts into the record."""
        result = optimizer.result()
        record, data = self.record, self.data
        record.weights = result.x
        record.model = TrainedModel.of([self.layer], [result.x], data, "spsa")
        record.test_accuracy = self.test_accuracy(result.x, final=True)
        train = self.evaluator.predict(
            result.x, data.x_train, read_repeats=self.options.eval_read_repeats
        )
        record.train_accuracy = accuracy(train, data.y_train)
        record.steps = result.nit
        record.count(self.meter.read())
        record.programs = self.programs_before + self.evaluator.programs
        return record


WRITES_READ_EVERY_S = 0.5
"""Most time between two reads of the board's write counter for the step boundary a run
keeps, s: a checkpoint saved when the board goes away may count that much fewer device
writes than were made (the step's other counts are exact)."""

_MEASUREMENT_ONLY = ("a", "c", "eval_every", "eval_read_repeats")
"""Settings left out of the comparison with a resumed run's: the gains (stored in the
checkpoint, which it goes on with: one given otherwise is refused on its own) and how
accuracy is measured, which leaves the optimizer's path unchanged."""

CHECKPOINT_VERSION = 4
"""4: arrays as base64 float32 (records.array_to_json) and ``programs``; 3: host mode's
minibatch stream (``minibatches``); 2: ``counts`` holds the :class:`JobCounts` fields.
Files of every earlier version still resume: version 1 (``counts`` with mvm_calls,
device_writes, time_ns, energy_nj; loss evaluations from the optimizer state plus
``calibration_evals``); a host-mode run saved before version 3 drew its minibatches
from the shared generator, and resumes with the minibatch stream at its start."""


def minibatch_stream(seed: int) -> np.random.Generator:
    """Host mode's minibatch generator: the first child of ``seed``'s sequence,
    independent of the generator ``seed`` itself starts."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


@dataclass(frozen=True, slots=True)
class _Boundary:
    """The run between two steps, kept as cheaply as a step allows (the optimizer's
    state, the counts, how far the record got): the checkpoint saved when one is due,
    and the one saved if the board is lost before the next boundary."""

    step: int
    optimizer: dict[str, Any]
    counts: JobCounts
    minibatches: dict[str, Any] | None
    losses: int
    checkpoints: int
    programs: int

    @classmethod
    def at(cls, job: SPSAJob, optimizer: SPSA, *, fresh_writes: bool = True) -> _Boundary:
        """The boundary after ``optimizer``'s step; ``fresh_writes`` False: its device
        writes as last read (JobMeter.read), which spares a stats call."""
        return cls(
            optimizer.step, optimizer.state_dict(), job.meter.read(fresh_writes=fresh_writes),
            job.evaluator.minibatch_state()
            if isinstance(job.evaluator, HostHeldEvaluator) else None,
            len(job.record.losses), len(job.record.checkpoints),
            job.programs_before + job.evaluator.programs,
        )  # fmt: skip

    def checkpoint(self, job: SPSAJob) -> SPSACheckpoint:
        """The checkpoint this boundary is: the record as it stood then."""
        record = job.record
        return SPSACheckpoint(
            record.settings, self.optimizer, record.losses[: self.losses],
            record.checkpoints[: self.checkpoints], self.counts, self.minibatches,
            self.programs,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SPSACheckpoint:
    """A run saved between two steps: what resuming it exactly needs."""

    settings: dict[str, Any]
    """The record's settings (options, gains a and c, job)."""
    optimizer: dict[str, Any]
    """``SPSA.state_dict()``: arrays, counters and the generator state."""
    losses: list[float]
    checkpoints: list[Checkpoint]
    counts: JobCounts
    """What the run had spent when saved (calibration included)."""
    minibatches: dict[str, Any] | None = None
    """Host mode: the minibatch stream's state for the next step (None in board mode,
    whose minibatches come from the optimizer's generator)."""
    programs: int = 0
    """Program calls the run had issued (0 in files saved before they were kept)."""

    def save(self, path: str | Path) -> None:
        """Writes the checkpoint atomically: a crash never leaves half a file."""
        state = self.optimizer
        payload = {
            "version": CHECKPOINT_VERSION,
            "settings": self.settings,
            "optimizer": {
                **state,
                "x": array_to_json(state["x"]),
                "hessian": None if state["hessian"] is None else array_to_json(state["hessian"]),
                "history": [array_to_json(h) for h in state["history"]],
            },
            "losses": self.losses,
            "checkpoints": [dataclasses.asdict(c) for c in self.checkpoints],
            "counts": dataclasses.asdict(self.counts),
            "minibatches": self.minibatches,
            "programs": self.programs,
        }
        write_json_atomically(path, payload)

    @classmethod
    def load(
        cls,
        path: str | Path | None,
        options: SPSAOptions,
        *,
        dataset: Dataset | None = None,
    ) -> SPSACheckpoint:
        """Reads ``path`` (:meth:`parse`; its errors name the file)."""
        text = checkpoint_text(path)
        return cls.parse(text, options, dataset=dataset, source=f"checkpoint {path}")

    @classmethod
    def parse(
        cls,
        text: str,
        options: SPSAOptions,
        *,
        dataset: Dataset | None = None,
        source: str = "checkpoint",
    ) -> SPSACheckpoint:
        """The checkpoint ``text`` holds; ValueError starting with ``source`` for another
        version or job, a run of other options or (``dataset`` given) on another data set
        or of another layer's shape, or anything a saved run cannot hold (weights that are
        not finite, a step beyond the run, a generator state no generator takes): before
        anything is programmed."""
        saved = checkpoint_json(text, source)
        settings = saved.get("settings") if isinstance(saved, dict) else None
        kind = settings.get("job", "spsa") if isinstance(settings, dict) else None
        if isinstance(kind, str) and kind != "spsa":  # said first: its version is another's
            raise ValueError(f"{source}: a checkpoint of a {kind} run, not of spsa")
        version = saved.get("version") if isinstance(saved, dict) else None
        if version not in (1, 2, 3, CHECKPOINT_VERSION) or "optimizer" not in saved:
            raise ValueError(
                f"{source}: version {version}, expected an SPSA checkpoint of version 1 to "
                f"{CHECKPOINT_VERSION}"
            )
        if not isinstance(settings, dict):
            raise ValueError(f"{source}: no settings, expected those of an spsa run")
        differing = options_differing(settings, options.settings(), _MEASUREMENT_ONLY)
        if differing:
            raise ValueError(f"{source}: {differing}")
        if dataset is not None:
            check_trained_on(settings, dataset, source)
        try:
            with np.errstate(over="ignore"):  # beyond float32: inf, refused as such
                checkpoint = cls._parsed(saved)
            checkpoint._check(options, None if dataset is None else spsa_layer_shape(dataset))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ValueError(
                f"{source}: not a whole SPSA checkpoint ({type(exc).__name__}: {exc})"
            ) from exc
        for gain in ("a", "c"):  # the checkpoint's gains go on; one given otherwise is refused
            given = getattr(options, gain)
            if given is not None and settings.get(gain) != given:
                raise ValueError(
                    f"{source}: {gain} {given!r} given, the run's is {settings.get(gain)!r}: "
                    "a resumed run goes on with its own gains (leave it out, or give that)"
                )
        return checkpoint

    @classmethod
    def _parsed(cls, saved: dict[str, Any]) -> SPSACheckpoint:
        state = saved["optimizer"]
        hessian = state["hessian"]
        minibatches = saved.get("minibatches")
        return cls(
            settings=saved["settings"],
            optimizer={
                **state,
                "x": array_from_json(state["x"]),
                "hessian": None if hessian is None else array_from_json(hessian),
                "history": [array_from_json(h) for h in state["history"]],
            },
            losses=[float(x) for x in saved["losses"]],
            checkpoints=[Checkpoint.from_json(c) for c in saved["checkpoints"]],
            counts=_counts(saved),
            minibatches=None if minibatches is None else dict(minibatches),
            programs=int(saved.get("programs", 0)),
        )

    def _check(self, options: SPSAOptions, shape: tuple[int, int] | None) -> None:
        """ValueError (or TypeError) for what no saved run of ``options`` holds: going on
        from it would fail mid-run, or fast-forward its schedules without end."""
        state = self.optimizer
        x = state["x"]
        if shape is not None and x.shape != shape:
            raise ValueError(f"weights of shape {list(x.shape)}, expected {list(shape)}")
        arrays = [x, *state["history"], *([] if state["hessian"] is None else [state["hessian"]])]
        if any(a.shape != x.shape for a in arrays):
            raise ValueError("optimizer arrays of other shapes than its weights")
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("optimizer arrays that are not finite")
        if self.programs < 0:
            raise ValueError(f"programs: {self.programs}, expected >= 0")
        for name, bound in (("k", options.steps), ("nfev", None), ("rejected", None)):
            value = state[name]
            if type(value) is not int or value < 0 or (bound is not None and value > bound):
                raise ValueError(f"optimizer {name}: {value!r}, expected 0 .. {bound or 'any'}")
        fx = state["fx"]
        if fx is not None and not (type(fx) in (int, float) and np.isfinite(fx)):
            raise ValueError(f"optimizer fx: {fx!r}, expected a finite loss or null")
        for gain in ("a", "c"):
            value = self.settings.get(gain)
            if not (isinstance(value, (int, float)) and 0 < value < np.inf):
                raise ValueError(f"gain {gain}: {value!r}, expected a finite number > 0")
        generators = [state["rng"], *([] if self.minibatches is None else [self.minibatches])]
        for generator in generators:  # a state, and one a generator takes
            if not isinstance(generator, dict):
                raise TypeError(f"a generator state of {type(generator).__name__}")
            np.random.default_rng(0).bit_generator.state = dict(generator)

    def restore(self, optimizer: SPSA, record: TrainingRecord) -> None:
        """Puts the optimizer and the record where the run was saved."""
        optimizer.load_state_dict(self.optimizer)
        record.losses = list(self.losses)
        record.checkpoints = list(self.checkpoints)


def _counts(saved: dict[str, Any]) -> JobCounts:
    counts = saved["counts"]
    if saved["version"] >= 2:
        return JobCounts.from_json(counts)
    return JobCounts.from_json(
        dict(
            loss_evaluations=saved["optimizer"]["nfev"] + saved["calibration_evals"],
            mvm_calls=counts["mvm_calls"],
            device_writes=counts["device_writes"],
            modeled_time_ns=counts["time_ns"],
            modeled_energy_nj=counts["energy_nj"],
        )
    )
