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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sidra.training.accounting import JobCounts, JobMeter
from sidra.training.options import JobOptions
from sidra.training.records import Checkpoint, TrainingRecord, write_json_atomically

if TYPE_CHECKING:  # the trainers import this module
    from sidra.training.hybrid import HybridNetwork

__all__ = ["EPOCH_CHECKPOINT_VERSION", "EpochCheckpoint"]

EPOCH_CHECKPOINT_VERSION = 1

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
            "weights": [w.tolist() for w in self.weights],
            "targets": [t.tolist() for t in self.targets],
            "programs": self.programs,
            "losses": self.losses,
            "checkpoints": [dataclasses.asdict(c) for c in self.checkpoints],
            "counts": dataclasses.asdict(self.counts),
            "extras": self.extras,
        }
        write_json_atomically(path, payload)

    @classmethod
    def load(
        cls, path: str | Path | None, options: JobOptions, job: str, needs: tuple[str, ...] = ()
    ) -> EpochCheckpoint:
        """Reads ``path``; ValueError naming the file for another version, another job,
        a run of other options (going on with them would not be that run), or one
        without the :attr:`extras` the trainer ``needs``: before anything is programmed."""
        if path is None:
            raise ValueError("resume: needs a checkpoint path")
        try:
            saved = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"checkpoint {path}: cannot be read ({exc})") from exc
        version = saved.get("version") if isinstance(saved, dict) else None
        if version != EPOCH_CHECKPOINT_VERSION or "epoch" not in saved:
            raise ValueError(
                f"checkpoint {path}: version {version}, expected an epoch checkpoint of "
                f"version {EPOCH_CHECKPOINT_VERSION}"
            )
        settings = saved.get("settings")
        if not isinstance(settings, dict) or settings.get("job") != job:
            kind = settings.get("job") if isinstance(settings, dict) else None
            raise ValueError(f"checkpoint {path}: a {kind} run, not {job}")
        mismatched = [
            name for name, value in options.settings().items() if settings.get(name) != value
        ]
        if mismatched:
            raise ValueError(f"checkpoint {path}: options differ from the run's: {mismatched}")
        try:
            checkpoint = cls._parsed(saved)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(
                f"checkpoint {path}: not a whole epoch checkpoint ({type(exc).__name__}: {exc})"
            ) from exc
        missing = [name for name in needs if name not in checkpoint.extras]
        if missing:
            raise ValueError(f"checkpoint {path}: no {missing} saved, which {job} goes on from")
        epochs = settings.get("epochs")
        if not (isinstance(epochs, int) and 1 <= checkpoint.epoch <= epochs):
            raise ValueError(f"checkpoint {path}: epoch {checkpoint.epoch}, expected 1 .. {epochs}")
        return checkpoint

    @classmethod
    def _parsed(cls, saved: dict[str, Any]) -> EpochCheckpoint:
        """The checkpoint ``saved`` holds (KeyError, TypeError or ValueError where it
        holds something else)."""
        weights = [np.array(w, np.float32) for w in saved["weights"]]
        targets = [np.array(t, np.float32) for t in saved["targets"]]
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
            checkpoints=[Checkpoint(**c) for c in saved["checkpoints"]],
            counts=JobCounts(**saved["counts"]),
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
