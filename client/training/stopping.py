"""Stopping a training run early and keeping what it did (Ctrl-C in ``sidra train``).

Each trainer takes a ``stop`` event and looks at it where its state is whole (an
SPSA step's boundary, the end of an epoch): set, the run ends there and is finished
as a complete run would be (evaluated, counted, its weights kept), its record saying
where it stopped (``stopped_at_step`` or ``stopped_at_epoch`` in its settings and its
summary). A stop asked during the last step or epoch changes nothing: the run ends
there anyway. ``sidra train`` sets it on Ctrl-C, a job in ``sidra serve`` on CancelJob.

A run whose board goes away (or refuses it, not for a value) mid-way ends in
:class:`RunInterrupted` keeping what it did: an SPSA run its checkpoint, to resume from;
a run in epochs (:class:`EpochsKept`) its record as it stood after its last whole
epoch, its settings saying so (``interrupted_at_epoch``, ``interrupted_by``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import InvalidArgument, SidraError
from sidra.training.accounting import JobCounts
from sidra.training.epoch_checkpoint import EpochCheckpoint
from sidra.training.records import INTERRUPTED, STOPPED_AT, Checkpoint, TrainingRecord

if TYPE_CHECKING:  # the trainers import this module
    from sidra.training.hybrid import HybridNetwork
    from sidra.training.model import TrainedModel

__all__ = ["EpochsKept", "RunInterrupted", "stopped"]


class RunInterrupted(Exception):
    """A run that lost its board (or was refused by it) mid-way, after ``steps`` steps
    (or epochs: ``unit``): what it did is kept, in ``checkpoint`` (an SPSA run, to
    resume from once the board is back) or as ``record`` (a run in epochs: its record
    up to its last whole epoch, to be saved as any record is). ``cause`` is the board's
    error (also ``__cause__``)."""

    def __init__(
        self,
        cause: SidraError,
        steps: int,
        checkpoint: Path | None = None,
        *,
        unit: str = "step",
        record: TrainingRecord | None = None,
    ) -> None:
        where = f"in {checkpoint}" if checkpoint is not None else "in the run's record"
        super().__init__(
            f"{type(cause).__name__}: {cause}; the {steps} {unit}s made are kept {where}"
        )
        self.cause, self.steps, self.unit = cause, steps, unit
        self.checkpoint, self.record = checkpoint, record


class EpochsKept:
    """A run in epochs as it stood after its last whole epoch: what it keeps if its
    board goes away before the end (:meth:`guard`).

    A trainer makes it with its record before it programs anything, enters
    :meth:`guard` before its first board call that writes, and calls :meth:`passed` once
    an epoch's test checkpoint is in the record: that copies the losses and checkpoints
    so far, the output layer's weights and, for a stack of layers, the model file of the
    whole network.
    """

    def __init__(
        self,
        record: TrainingRecord,
        checkpoint: Path | None = None,
        saved: EpochCheckpoint | None = None,
        *,
        every_s: float = 0.0,
        model_of: Callable[[HybridNetwork], TrainedModel] | None = None,
    ) -> None:
        """``saved``: the checkpoint a resumed run (or the second part of a schedule)
        starts from, what it keeps until its next epoch is whole; a board lost while the
        layers are programmed again ends the run there too. ``model_of``: the model file
        of the network after an epoch (None: the run keeps none)."""
        self.record = record
        self._model_of = model_of
        self._model: TrainedModel | None = None
        self.checkpoint = checkpoint
        """Where the run's state is saved to go on from (None: nowhere)."""
        self.every_s = every_s
        """Also save it after an epoch when this long has passed since the last save, s
        (0: only when the run stops early): what a crash of the process leaves."""
        self._saved_s = time.monotonic()
        self.epoch = 0
        """The last whole epoch (0: none yet)."""
        self._losses: list[float] = []
        self._checkpoints: list[Checkpoint] = []
        self._programs = 0
        self._counts = JobCounts()
        self._weights: npt.NDArray[np.float32] | None = None
        self._state: EpochCheckpoint | None = None
        if saved is not None:
            self.epoch, self._programs = saved.epoch, saved.programs
            self._losses, self._checkpoints = list(saved.losses), list(saved.checkpoints)
            self._counts, self._weights = saved.counts, saved.weights[-1].copy()
            self._state = saved

    def passed(
        self,
        epoch: int,
        net: HybridNetwork,
        rng: np.random.Generator,
        counts: JobCounts,
        extras: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        """Epoch ``epoch`` is whole: its losses and checkpoint are in the record, ``net``
        holds the weights it reached, ``rng`` will draw the next epoch's, ``counts`` is
        what the run spent (the meter's, read once). With a :attr:`checkpoint` to save
        to, that state is kept (an EpochCheckpoint, with ``extras()``: what else the
        trainer needs to go on), saved if the run stops or its board goes before the
        next epoch is whole."""
        self.epoch, self._programs, self._counts = epoch, net.programs, counts
        self._losses, self._checkpoints = list(self.record.losses), list(self.record.checkpoints)
        self._weights = net.weights[-1].copy()
        if self._model_of is not None:
            self._model = self._model_of(net)
        if self.checkpoint is not None:
            more = {} if extras is None else extras()
            self._state = EpochCheckpoint.at(epoch, self.record, net, rng, counts, more)
            if self.every_s and time.monotonic() - self._saved_s >= self.every_s:
                self.save()

    def save(self) -> Path | None:
        """Saves the state of the last whole epoch to :attr:`checkpoint`; where it went,
        None when there is nothing to save or nowhere to."""
        if self.checkpoint is None or self._state is None:
            return None
        self._state.save(self.checkpoint)
        self._saved_s = time.monotonic()
        return self.checkpoint

    def kept(self, cause: SidraError) -> TrainingRecord:
        """The record as it stood after :attr:`epoch`, saying why the run ended there
        (its final accuracies cannot be measured: the test accuracy is the last
        checkpoint's, the train accuracy 0.0)."""
        checkpoints = self._checkpoints
        record = TrainingRecord(
            settings=self.record.settings
            | {f"{INTERRUPTED}at_epoch": self.epoch, f"{INTERRUPTED}by": _named(cause)},
            losses=list(self._losses),
            checkpoints=list(checkpoints),
            weights=self._weights,
            test_accuracy=checkpoints[-1].test_accuracy if checkpoints else 0.0,
            steps=len(self._losses),
            programs=self._programs,
            loss_label=self.record.loss_label,
            model=self._model,
        )
        record.count(self._counts)
        return record

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Turns a board error after the first whole epoch into :class:`RunInterrupted`
        holding :meth:`kept`; a refused value (InvalidArgument: the run's own mistake),
        or an error before any epoch is whole, passes as it is."""
        try:
            yield
        except SidraError as exc:
            if isinstance(exc, InvalidArgument) or self.epoch == 0:
                raise
            saved = self.save()
            raise RunInterrupted(
                exc, self.epoch, saved, unit="epoch", record=self.kept(exc)
            ) from exc


def _named(error: SidraError) -> str:
    return f"{type(error).__name__}: {error}"


def stopped(
    stop: threading.Event | None,
    settings: dict[str, Any],
    done: int,
    last: int,
    unit: str = "epoch",
) -> bool:
    """Whether the run ends after its ``done``-th ``unit`` (epoch, step, run) because
    ``stop`` is set before its ``last``; if so, ``settings["stopped_at_<unit>"]`` (its
    record's settings) says after which."""
    if stop is None or not stop.is_set() or done >= last:
        return False
    settings[f"{STOPPED_AT}{unit}"] = done
    return True
