"""A comparison's record: every run, each method's mean and spread over seeds, a plot."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sidra.training.figures import figure_bytes, new_figure
from sidra.training.records import PLOT_FILE, STOPPED_AT

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PLANNED_RUNS", "Comparison", "MethodResult", "MethodSummary"]

PLANNED_RUNS = "planned_runs"
"""The settings key of the runs a comparison is to make (seeds times methods): its record,
saved after every run, holds fewer while it runs or when it ended part-way."""


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One method's run with one seed."""

    name: str
    seed: int
    steps: int
    """Steps the budget bought (updates of the weights)."""
    loss_evaluations: int
    """Loss evaluations the run spent (at most the budget)."""
    test_accuracy: float
    """Final test accuracy (fraction, 0 … 1)."""
    mvm_calls: int
    device_writes: int
    """Cell writes the run spent."""
    modeled_time_ns: float
    """Modeled hardware time, ns."""
    modeled_energy_nj: float
    """Modeled hardware energy, nJ."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class MethodSummary:
    """One method over its seeds: test accuracy's mean and spread, the costs' means."""

    name: str
    seeds: tuple[int, ...]
    test_accuracy: float
    """Mean final test accuracy over the seeds (fraction)."""
    test_accuracy_std: float
    """Sample standard deviation of the final test accuracy over the seeds (n − 1; 0 for
    one seed), fraction."""
    test_accuracy_min: float
    test_accuracy_max: float
    steps: float
    """Mean steps per run."""
    loss_evaluations: float
    """Mean loss evaluations per run."""
    mvm_calls: float
    """Mean MVM calls per run."""
    device_writes: float
    """Mean cell writes per run."""
    modeled_time_ns: float
    """Mean modeled hardware time per run, ns."""
    modeled_energy_nj: float
    """Mean modeled hardware energy per run, nJ."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"seeds": list(self.seeds)}


_MEANS = ("steps", "loss_evaluations", "mvm_calls", "device_writes", "modeled_time_ns",
          "modeled_energy_nj")  # fmt: skip


@dataclass
class Comparison:
    """Every run of a comparison, in the order they ran."""

    settings: dict[str, Any]
    runs: list[MethodResult] = field(default_factory=list)

    def summaries(self) -> list[MethodSummary]:
        """Each method over its seeds, in the order the methods first ran."""
        by_name: dict[str, list[MethodResult]] = {}
        for run in self.runs:
            by_name.setdefault(run.name, []).append(run)
        summaries = []
        for name, runs in by_name.items():
            accuracy = np.array([r.test_accuracy for r in runs], np.float64)
            means = {k: float(np.mean([getattr(r, k) for r in runs])) for k in _MEANS}
            summaries.append(
                MethodSummary(
                    name,
                    tuple(r.seed for r in runs),
                    float(accuracy.mean()),
                    float(accuracy.std(ddof=1)) if len(runs) > 1 else 0.0,
                    float(accuracy.min()),
                    float(accuracy.max()),
                    **means,
                )
            )
        return summaries

    def summary(self) -> dict[str, Any]:
        """What ``--json`` prints: each method's summary, then every run (and, for a
        comparison stopped early, ``stopped_at_run``: the runs it made)."""
        return {
            "methods": [s.as_dict() for s in self.summaries()],
            "runs": [r.as_dict() for r in self.runs],
        } | {k: v for k, v in self.settings.items() if k.startswith(STOPPED_AT)}

    def files(self, *, plot: bool = False) -> dict[str, bytes]:
        """settings.json, summary.json (per method), runs.csv (per run); with ``plot``,
        plot.png (drawing it takes a good part of a second: a record rewritten after
        every run, as ``sidra train compare`` keeps it, leaves it out)."""
        runs = io.StringIO(newline="")
        writer = csv.writer(runs)
        names = [f.name for f in fields(MethodResult)]
        writer.writerow(names)
        writer.writerows([getattr(r, n) for n in names] for r in self.runs)
        files = {
            "settings.json": json.dumps(self.settings, indent=2, default=str).encode(),
            "summary.json": json.dumps(self.summary(), indent=2).encode(),
            "runs.csv": runs.getvalue().encode(),
        }
        if plot:
            files[PLOT_FILE] = figure_bytes(self.figure())
        return files

    def save(self, folder: str | Path) -> Path:
        """Writes :meth:`files` with the plot into ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, content in self.files(plot=True).items():
            (out / name).write_bytes(content)
        return out

    def plot(self, path: Path) -> None:
        """Writes :meth:`figure` to ``path`` (PNG)."""
        path.write_bytes(figure_bytes(self.figure()))

    def figure(self) -> Figure:
        """Test accuracy per method (each seed a dot, mean ± standard deviation a bar),
        and mean accuracy against mean device writes."""
        summaries = self.summaries()
        fig = new_figure(figsize=(12, 4.5))
        left, right = fig.subplots(1, 2)
        for i, s in enumerate(summaries):
            seeds = [100 * r.test_accuracy for r in self.runs if r.name == s.name]
            left.plot([i] * len(seeds), seeds, "o", color="0.6", markersize=4)
            left.errorbar(i, 100 * s.test_accuracy, yerr=100 * s.test_accuracy_std, fmt="ks",
                          capsize=4)  # fmt: skip
            right.plot(max(s.device_writes, 1.0), 100 * s.test_accuracy, "o")
            right.annotate(s.name, (max(s.device_writes, 1.0), 100 * s.test_accuracy),
                           fontsize=8, xytext=(4, 2), textcoords="offset points")  # fmt: skip
        left.set_xticks(range(len(summaries)), [s.name for s in summaries], rotation=30,
                        ha="right")  # fmt: skip
        left.set_ylabel("test accuracy (%)")
        left.set_title("each seed (dots), mean ± sd (squares)")
        right.set_xscale("log")
        right.set_xlabel("device writes per run (cells, mean)")
        right.set_ylabel("test accuracy (%, mean)")
        budget, dataset = self.settings.get("budget", ""), self.settings.get("dataset", "")
        fig.suptitle(f"methods on {dataset}, {budget:,} loss evaluations per run"
                     if isinstance(budget, int) else f"methods on {dataset}")  # fmt: skip
        fig.tight_layout()
        return fig
