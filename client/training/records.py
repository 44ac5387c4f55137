"""Run records: settings, per-step loss, accuracy checkpoints, counts; saved with a plot."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sidra.training.accounting import JobCounts
from sidra.training.atomic_files import write_atomically
from sidra.training.figures import figure_bytes, new_figure
from sidra.training.model import MODEL_FILE, TrainedModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STOPPED_AT = "stopped_at_"
"""Prefix of the setting (and summary key) saying where a stopped run ended:
``stopped_at_step`` or ``stopped_at_epoch`` (sidra.training.stopping), or
``stopped_at_run`` (a comparison: sidra.training.compare)."""

INTERRUPTED = "interrupted_"
"""Prefix of the settings (and summary keys) of a run whose board went away mid-way
(sidra.training.stopping.EpochsKept): ``interrupted_at_epoch``, the last whole epoch,
and ``interrupted_by``, the board's error."""

__all__ = [
    "CHECKPOINT_FILE",
    "array_from_json",
    "array_to_json",
    "checkpoint_json",
    "checkpoint_text",
    "INTERRUPTED",
    "RECORD_FILES",
    "STOPPED_AT",
    "Checkpoint",
    "TrainingRecord",
    "earlier_record",
    "write_json_atomically",
]

CHECKPOINT_FILE = "checkpoint.json"
"""The file a run saves its checkpoint to, beside its record (``sidra train --out``, a
job's record files), and goes on from: every trainer's but a comparison's and drift
recovery's."""

PLOT_FILE = "plot.png"
"""A record's figure (:meth:`TrainingRecord.figure`, a comparison's too)."""

RECORD_FILES = ("summary.json", "settings.json")
"""Files every run record has (this module's and a comparison's,
sidra.training.compare_record): a folder holding one holds a run's record."""


def array_to_json(array: npt.NDArray[Any]) -> dict[str, Any]:
    """A float32 array as a checkpoint keeps it in JSON: its shape and its little-endian
    bytes in base64 (a quarter of the text of a list of decimal numbers, and exact)."""
    data = np.ascontiguousarray(array, "<f4")
    return {"shape": list(data.shape), "float32_base64": base64.b64encode(data.tobytes()).decode()}


def array_from_json(saved: Any) -> npt.NDArray[np.float32]:
    """The float32 array :func:`array_to_json` wrote, or one written as nested lists of
    numbers (checkpoints saved before); ValueError or TypeError for anything else."""
    if not isinstance(saved, dict):
        with np.errstate(over="ignore"):  # beyond float32: inf, which callers refuse
            return np.array(saved, np.float32)
    shape = saved["shape"]
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"array shape: {shape!r}, expected a list of sizes")
    data = base64.b64decode(saved["float32_base64"], validate=True)
    if len(data) != 4 * math.prod(shape):
        raise ValueError(f"array of shape {shape}: {len(data)} bytes, expected 4 per value")
    return np.frombuffer(data, "<f4").astype(np.float32).reshape(shape)


def checkpoint_text(path: str | Path | None) -> str:
    """The text of the checkpoint file at ``path`` (``--resume``); ValueError naming the
    file when there is none to read."""
    if path is None:
        raise ValueError("resume: needs a checkpoint path")
    try:
        return Path(path).read_text()
    except (OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: cannot be read ({exc})") from exc


def checkpoint_json(text: str, source: str) -> Any:
    """The JSON value a checkpoint's ``text`` holds; ValueError starting with ``source``
    when it holds none (or one nested deeper than the parser goes)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{source}: cannot be read ({type(exc).__name__}: {exc})") from exc


def write_json_atomically(path: str | Path, payload: Any) -> None:
    """Writes ``payload`` as JSON to ``path`` through a neighbour renamed over it: a
    crash never leaves half a file (a checkpoint's)."""
    write_atomically(path, json.dumps(payload).encode())


def earlier_record(
    folder: Path, also: tuple[str, ...] = (), same: Mapping[str, bytes] | None = None
) -> str | None:
    """The first file of a run's record (:data:`RECORD_FILES`, then ``also``: a
    checkpoint) that ``folder`` holds, but one whose bytes are ``same``'s of that name (the
    same record saved again); None when there is none. A record saved there would write
    over it and lose that run."""
    for name in (*RECORD_FILES, *also):
        path = folder / name
        if path.is_file() and (same is None or path.read_bytes() != same.get(name)):
            return name
    return None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Test accuracy after ``step`` steps and the device writes spent so far."""

    step: int
    test_accuracy: float
    device_writes: int

    @classmethod
    def from_json(cls, saved: Any) -> Checkpoint:
        """The checkpoint a saved run holds as JSON (KeyError, TypeError or ValueError for
        anything else)."""
        return cls(int(saved["step"]), float(saved["test_accuracy"]), int(saved["device_writes"]))


@dataclass
class TrainingRecord:
    """Everything a training run measured. Counts include calibration."""

    settings: dict[str, Any]
    losses: list[float] = field(default_factory=list)
    """Mean loss of each step's evaluations."""
    checkpoints: list[Checkpoint] = field(default_factory=list)
    weights: npt.NDArray[np.float32] | None = None
    test_accuracy: float = 0.0
    train_accuracy: float = 0.0
    steps: int = 0
    loss_evaluations: int = 0
    mvm_calls: int = 0
    device_writes: int = 0
    """Cell writes (programming pulses and perturbation writes) during the run."""
    programs: int = 0
    """Program calls issued."""
    modeled_time_ns: float = 0.0
    """Modeled hardware time of the run, ns."""
    modeled_energy_nj: float = 0.0
    """Modeled hardware energy of the run, nJ."""
    loss_label: str = "cross-entropy (nats)"
    """What the per-step loss is, as the plot's axis names it."""
    measures: dict[str, Any] = field(default_factory=dict)
    """What a job measures beyond the counts (e.g. ``gradient_cosine`` per layer): in the
    summary and summary.json as they are."""
    model: TrainedModel | None = None
    """The trained network, to deploy and run on any board (model.npz; none for a
    network that is not a stack of layers: forward-forward, equilibrium propagation)."""

    def count(self, counts: JobCounts) -> None:
        """Takes the run's loss evaluations, MVM calls, writes and modeled cost."""
        self.loss_evaluations = counts.loss_evaluations
        self.mvm_calls = counts.mvm_calls
        self.device_writes = counts.device_writes
        self.modeled_time_ns = counts.modeled_time_ns
        self.modeled_energy_nj = counts.modeled_energy_nj

    def summary(self) -> dict[str, Any]:
        """The final figures (what ``--json`` prints)."""
        return (
            {
                "test_accuracy": self.test_accuracy,
                "train_accuracy": self.train_accuracy,
                "steps": self.steps,
                "loss_evaluations": self.loss_evaluations,
                "mvm_calls": self.mvm_calls,
                "device_writes": self.device_writes,
                "programs": self.programs,
                "modeled_time_ns": self.modeled_time_ns,
                "modeled_energy_nj": self.modeled_energy_nj,
            }
            | ({"placement": self.settings["placement"]} if "placement" in self.settings else {})
            | self.measures
            | {k: v for k, v in self.settings.items() if k.startswith((STOPPED_AT, INTERRUPTED))}
        )

    def save(self, folder: str | Path) -> Path:
        """Writes settings.json, summary.json, steps.csv, checkpoints.csv, weights.npy,
        model.npz (sidra.training.model), plot.png."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, content in self.files(plot=True).items():
            (out / name).write_bytes(content)
        return out

    def files(self, *, plot: bool = False) -> dict[str, bytes]:
        """The record's files by name, as :meth:`save` writes them and a job run in the
        service keeps them in its state store; the plot (:data:`PLOT_FILE`) only with
        ``plot``: drawing it takes a good part of a second."""
        files = {
            "settings.json": json.dumps(self.settings, indent=2, default=str).encode(),
            "summary.json": json.dumps(self.summary(), indent=2).encode(),
        }
        steps = io.StringIO(newline="")
        writer = csv.writer(steps)
        writer.writerow(["step", "loss"])
        writer.writerows((i + 1, loss) for i, loss in enumerate(self.losses))
        files["steps.csv"] = steps.getvalue().encode()
        checkpoints = io.StringIO(newline="")
        writer = csv.writer(checkpoints)
        writer.writerow(["step", "test_accuracy", "device_writes"])
        writer.writerows((c.step, c.test_accuracy, c.device_writes) for c in self.checkpoints)
        files["checkpoints.csv"] = checkpoints.getvalue().encode()
        if self.weights is not None:
            weights = io.BytesIO()
            np.save(weights, self.weights)
            files["weights.npy"] = weights.getvalue()
        if self.model is not None:
            figures = {"test_accuracy": self.test_accuracy, "steps": self.steps}
            files[MODEL_FILE] = self.model.with_figures(**figures).to_bytes()
        if plot:
            files[PLOT_FILE] = figure_bytes(self.figure())
        return files

    def figure(self) -> Figure:
        """Loss and accuracy against steps and against device writes."""
        from matplotlib.ticker import FuncFormatter, MaxNLocator  # only where a plot is drawn

        fig = new_figure(figsize=(11, 4))
        left, right = fig.subplots(1, 2)
        if self.losses:
            steps = np.arange(1, len(self.losses) + 1)
            window = max(1, len(self.losses) // 100)
            smooth = np.convolve(self.losses, np.ones(window) / window, mode="valid")
            left.plot(steps, self.losses, alpha=0.25, label="loss per step")
            if window > 1:  # a mean of one step is the loss itself
                left.plot(steps[window - 1 :], smooth, label=f"mean of {window} steps")
        left.set_xlabel("step")
        left.set_ylabel(self.loss_label)
        twin = left.twinx()
        if self.checkpoints:
            twin.plot(
                [c.step for c in self.checkpoints],
                [100 * c.test_accuracy for c in self.checkpoints],
                "k.-",
                label="test accuracy",
            )
            right.plot(
                [c.device_writes for c in self.checkpoints],
                [100 * c.test_accuracy for c in self.checkpoints],
                "k.-",
            )
        twin.set_ylabel("test accuracy (%)")
        # Both axes' lines in one legend, above the plot: the loss falls and the accuracy
        # rises across it, so any corner inside covers one of them.
        handles = [h for axis in (left, twin) for h in axis.get_legend_handles_labels()[0]]
        if handles:
            left.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01),
                        ncol=len(handles), frameon=False, fontsize="small")  # fmt: skip
        right.set_xlabel("device writes (cells)")
        right.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        # Five ticks at most: "15,000" labels at matplotlib's default count ran together.
        right.xaxis.set_major_locator(MaxNLocator(5))
        right.set_ylabel("test accuracy (%)")
        right.set_title(f"final test accuracy {100 * self.test_accuracy:.2f} %")
        job, dataset = self.settings.get("job", "training"), self.settings.get("dataset", "")
        fig.suptitle(f"{job} on {dataset}")
        fig.tight_layout()
        return fig
