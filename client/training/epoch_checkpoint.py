"""A run in epochs saved between two epochs, to go on from once its board is back.

What a network of :class:`~sidra.training.hybrid.HybridNetwork` layers (every epoch
trainer's: last-layer, mlp, ff, eqprop, pat) needs to go on exactly as it would have:
every layer's weights as the host holds them and as they were last programmed (the
targets: a weight moved less than the threshold since is still to be written), the
generator's state (the next epoch's shuffle), the record so far, the counts spent,
and what else the trainer keeps between epochs (``extras``: its Adam moments, its
settling log, pat's twin epochs).
The board holds nothing the run needs back: going on, each layer is programmed with
its targets, so a board that restarted meanwhile (or another board) serves as well.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sidra.training.accounting import JobCounts, JobMeter
from sidra.training.datasets import Dataset, check_trained_on
from sidra.training.options import JobOptions
from sidra.training.records import (
    Checkpoint,
    TrainingRecord,
    array_from_json,
    array_to_json,
    checkpoint_json,
    checkpoint_text,
    write_json_atomically,
)

if TYPE_CHECKING:  # the trainers import this module
    from sidra.training.hybrid import HybridNetwork

__all__ = ["EPOCH_CHECKPOINT_VERSION", "EXTRAS", "EpochCheckpoint", "options_differing"]

EPOCH_CHECKPOINT_VERSION = 2
"""2: arrays as base64 float32 (records.array_to_json); version 1 files (arrays as
lists of numbers) still go on."""

EXTRAS: dict[str, tuple[str, ...]] = {
    "last-layer": (),
    "mlp": ("cosines",),
    "ff": ("adam", "by_label"),
    "eqprop": ("log", "cosines"),
    "pat": ("cosines",),
}
"""What each trainer keeps beside the network between epochs, which its checkpoint must
hold to go on (``extras``): mlp's and pat's gradient cosines, ff's Adam moments and
per-label goodness, eqprop's settling log. pat's checkpoint taken after epochs on the
twin also holds the twin's part of the record (sidra.training.pat)."""

Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EpochCheckpoint:
    """A run after its ``epoch``-th whole epoch: what going on from there exactly needs."""

    settings: dict[str, Any]
    """The record's settings (the options, job, placement)."""
    epoch: int
    """The last whole epoch."""
    generator: dict[str, Any]
    """The run's generator's ``bit_generator.state``."""
    weights: list[Array]
    """Every layer's weights as the host holds them."""
    targets: list[Array]
    """Every layer's weights as last programmed."""
    programs: int
    """Program calls the training updates issued."""
    losses: list[float]
    checkpoints: list[Checkpoint]
    counts: JobCounts
    """What the run had spent (the board's writes, calls and modeled cost)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """What else a trainer keeps between epochs, as JSON (mlp: its gradient cosines)."""

    @classmethod
    def at(
        cls,
        epoch: int,
        record: TrainingRecord,
        net: HybridNetwork,
        rng: np.random.Generator,
        counts: JobCounts,
        extras: dict[str, Any] | None = None,
    ) -> EpochCheckpoint:
        """The run as it stands now, after ``epoch``, having spent ``counts`` (copies of
        everything: training goes on; ``extras`` as JSON)."""
        return cls(
            dict(record.settings), epoch, dict(rng.bit_generator.state),
            [w.copy() for w in net.weights], [t.copy() for t in net.targets], net.programs,
            list(record.losses), list(record.checkpoints), counts,
            json.loads(json.dumps(extras or {})),
        )  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Writes the checkpoint atomically: a crash never leaves half a file."""
        payload = {
            "version": EPOCH_CHECKPOINT_VERSION,
            "settings": self.settings,
            "epoch": self.epoch,
            "generator": self.generator,
            "weights": [array_to_json(w) for w in self.weights],
            "targets": [array_to_json(t) for t in self.targets],
            "programs": self.programs,
            "losses": self.losses,
            "checkpoints": [dataclasses.asdict(c) for c in self.checkpoints],
            "counts": dataclasses.asdict(self.counts),
            "extras": self.extras,
        }
        write_json_atomically(path, payload)

    @classmethod
    def load(
        cls,
        path: str | Path | None,
        options: JobOptions,
        job: str,
        needs: tuple[str, ...] | None = None,
        *,
        dataset: Dataset | None = None,
    ) -> EpochCheckpoint:
        """Reads ``path`` (:meth:`parse`; its errors name the file)."""
        text = checkpoint_text(path)
        return cls.parse(text, options, job, needs, dataset=dataset, source=f"checkpoint {path}")

    @classmethod
    def parse(
        cls,
        text: str,
        options: JobOptions,
        job: str,
        needs: tuple[str, ...] | None = None,
        *,
        dataset: Dataset | None = None,
        source: str = "checkpoint",
    ) -> EpochCheckpoint:
        """The checkpoint ``text`` holds; ValueError starting with ``source`` for another
        version, another job, a run of other options or on another data set (going on with
        them would not be that run), or one without the :attr:`extras` the trainer
        ``needs`` (default: :data:`EXTRAS` of ``job``): before anything is programmed.
        ``dataset``: the run's data set (:func:`check_trained_on`; checkpoints that name
        none are taken)."""
        saved = checkpoint_json(text, source)
        settings = saved.get("settings") if isinstance(saved, dict) else None
        kind = settings.get("job") if isinstance(settings, dict) else None
        if isinstance(kind, str) and kind != job:  # said first: its version is another's
            raise ValueError(f"{source}: a checkpoint of a {kind} run, not of {job}")
        version = saved.get("version") if isinstance(saved, dict) else None
        if version not in (1, EPOCH_CHECKPOINT_VERSION) or "epoch" not in saved:
            raise ValueError(
                f"{source}: version {version}, expected an epoch checkpoint of "
                f"version 1 or {EPOCH_CHECKPOINT_VERSION}"
            )
        settings = saved.get("settings")
        if not isinstance(settings, dict) or settings.get("job") != job:
            kind = settings.get("job") if isinstance(settings, dict) else None
            raise ValueError(f"{source}: a {kind} run, not {job}")
        differing = options_differing(settings, options.settings())
        if differing:
            raise ValueError(f"{source}: {differing}")
        if dataset is not None:
            check_trained_on(settings, dataset, source)
        try:
            with np.errstate(over="ignore"):  # beyond float32: inf, refused as such
                checkpoint = cls._parsed(saved)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ValueError(
                f"{source}: not a whole epoch checkpoint ({type(exc).__name__}: {exc})"
            ) from exc
        try:
            _check_extras(checkpoint)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ValueError(
                f"{source}: extras not of a saved run ({type(exc).__name__}: {exc})"
            ) from exc
        needed = EXTRAS.get(job, ()) if needs is None else needs
        missing = [name for name in needed if name not in checkpoint.extras]
        if missing:
            raise ValueError(f"{source}: no {missing} saved, which {job} goes on from")
        epochs = settings.get("epochs")
        if not (isinstance(epochs, int) and 1 <= checkpoint.epoch <= epochs):
            raise ValueError(f"{source}: epoch {checkpoint.epoch}, expected 1 .. {epochs}")
        return checkpoint

    @classmethod
    def _parsed(cls, saved: dict[str, Any]) -> EpochCheckpoint:
        """The checkpoint ``saved`` holds (KeyError, TypeError or ValueError where it
        holds something else)."""
        weights = [array_from_json(w) for w in saved["weights"]]
        targets = [array_from_json(t) for t in saved["targets"]]
        if [w.shape for w in weights] != [t.shape for t in targets]:
            raise ValueError("weights and targets of other shapes")
        if not all(np.isfinite(w).all() for w in (*weights, *targets)):
            raise ValueError("weights that are not finite")
        extras = saved.get("extras", {})
        if not isinstance(extras, dict):
            raise TypeError(f"extras: got {type(extras).__name__}, expected an object")
        generator = dict(saved["generator"])
        np.random.default_rng(0).bit_generator.state = generator  # one a generator takes
        return cls(
            settings=saved["settings"],
            epoch=int(saved["epoch"]),
            generator=generator,
            weights=weights,
            targets=targets,
            programs=int(saved["programs"]),
            losses=[float(x) for x in saved["losses"]],
            checkpoints=[Checkpoint.from_json(c) for c in saved["checkpoints"]],
            counts=JobCounts.from_json(saved["counts"]),
            extras=extras,
        )

    def restore(
        self, record: TrainingRecord, meter: JobMeter, net: HybridNetwork, rng: np.random.Generator
    ) -> None:
        """Puts ``net`` (built with :attr:`targets`, so programmed with them), ``rng``, the
        record and the meter where the run was saved."""
        if len(net.weights) != len(self.weights):
            raise ValueError(f"checkpoint: {len(self.weights)} layers, expected {len(net.weights)}")
        for held, saved in zip(net.weights, self.weights, strict=True):
            if held.shape != saved.shape:
                raise ValueError(
                    f"checkpoint: a layer of shape {saved.shape}, expected {held.shape}"
                )
            held[...] = saved
        net.programs = self.programs
        rng.bit_generator.state = self.generator
        record.losses = list(self.losses)
        record.checkpoints = list(self.checkpoints)
        meter.carried = self.counts


def _finite(values: Any, dtype: type = np.float32) -> npt.NDArray[Any]:
    with np.errstate(over="ignore"):  # beyond float32: inf, refused below
        array: npt.NDArray[Any] = np.array(values, dtype)
    if not np.isfinite(array).all():
        raise ValueError("values that are not finite")
    return array


def options_differing(
    saved: dict[str, Any], given: dict[str, Any], ignored: Collection[str] = ()
) -> str | None:
    """What keeps a run saved with ``saved`` settings from going on with ``given`` (each
    differing option with both values, and the way to go on); None when nothing does.
    "options differ from the run's: ['epochs']" said neither value nor what to do."""
    differ = [
        f"{name}: the run's {saved.get(name)!r}, given {value!r}"
        for name, value in given.items()
        if name not in ignored and saved.get(name) != value
    ]
    if not differ:
        return None
    return (
        f"options differ from the run's: {'; '.join(differ)} (go on with the run's own: "
        "the same options, or --like FOLDER --resume on the command line)"
    )


def _check_extras(saved: EpochCheckpoint) -> None:
    """Raises (KeyError, TypeError, ValueError) where an extra a trainer goes on from is
    not what that trainer saves, so that a damaged one is refused with the file, not met
    half-way through the run: mlp's and eqprop's gradient cosines, ff's Adam moments (the
    weights' shapes) and per-label goodness, eqprop's settling log, pat's twin part."""
    extras = saved.extras
    if "cosines" in extras:  # one per layer at each measurement; NaN for a frozen layer
        for row in extras["cosines"]:
            if len([float(c) for c in row]) != len(saved.weights):
                raise ValueError(f"gradient cosines for {len(row)} layers")
    if "adam" in extras:
        adam, shapes = extras["adam"], [w.shape for w in saved.weights]
        for name in ("m", "v"):
            moments = [array_from_json(m) for m in adam[name]]
            if [_finite(m).shape for m in moments] != shapes:
                raise ValueError(f"Adam moments {name} of other shapes than the weights")
        if len(adam["t"]) != len(shapes) or any(int(t) < 0 for t in adam["t"]):
            raise ValueError("Adam step counts: one count >= 0 for each layer")
    if "by_label" in extras:
        _finite(extras["by_label"], np.float64)
    if "log" in extras:
        log = extras["log"]
        for rows in (log["free"], log["nudged"]):
            for iterations, done, calls in rows:
                int(iterations), bool(done), int(calls)
        int(log["input_calls"])
    if "twin" in extras:  # sidra.training.pat.TWIN_PART
        part = extras["twin"]
        _finite([float(x) for x in part["losses"]], np.float64)
        int(part["steps"]), float(part["test_accuracy"])
