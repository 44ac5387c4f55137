"""SPSA training of an analog softmax layer with the board in the loop.

One call trains a ``features → classes`` layer mapped on a tile, with either
perturbation mode (see ``evaluators``), Spall gains given or calibrated on
the board, and a :class:`TrainingRecord` that counts every loss evaluation,
MVM call and device write and the modeled hardware time and energy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sidra.drivers import Board
from sidra.training.analog_layer import AnalogLinear
from sidra.training.calibration import calibrate
from sidra.training.datasets import Dataset
from sidra.training.evaluators import HostHeldEvaluator, OnBoardEvaluator
from sidra.training.records import Checkpoint, TrainingRecord
from sidra.training.schedules import spall_gains
from sidra.training.softmax import accuracy
from sidra.training.spsa import SPSA, SPSASettings, SPSAStep

__all__ = ["SPSAOptions", "train_softmax_spsa"]

Mode = Literal["board", "host"]


@dataclass(frozen=True, slots=True)
class SPSAOptions:
    """Settings of an SPSA training run (gains in weight units)."""

    steps: int = 4000
    seed: int = 0
    batch_size: int = 64
    a: float | None = 0.5
    """Learning-rate gain; None = calibrate by Spall's rule 4 (costs evaluations)."""
    c: float | None = 0.2
    """Perturbation gain; None = calibrate by Spall's rule 3."""
    resamplings: int = 1
    mode: Mode = "board"
    """"board": Perturb RPC, weights programmed every step; "host": host-held weights."""
    program_every: int = 10
    """Host-held mode: program the weights every this many updates."""
    blocking: bool = False
    last_avg: int = 1
    second_order: bool = False
    eval_every: int = 500
    """Steps between test-accuracy checkpoints in the record."""
    tile: int = 0
    weight_limit: float = 1.5
    """Weight at the edge of the conductance window (weight units); SPSA's bounds. A
    tighter window puts more µS per weight unit, so read noise costs less."""


def train_softmax_spsa(
    board: Board,
    data: Dataset,
    options: SPSAOptions | None = None,
    *,
    on_step: Callable[[SPSAStep], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    **overrides: object,
) -> TrainingRecord:
    """Trains a softmax layer on ``board`` with SPSA; returns the run's record.

    With ``checkpoint`` and ``checkpoint_every`` the optimizer state, the random
    generator and the record so far are written to that JSON file every so
    many steps; ``resume=True`` continues from it (same options required; the
    board is reprogrammed with the checkpointed weights on the first step).
    """
    opts = options or SPSAOptions()
    if overrides:
        opts = SPSAOptions(**{**_fields(opts), **overrides})  # type: ignore[arg-type]
    saved = _load_checkpoint(checkpoint, opts) if resume else None
    rng = np.random.default_rng(opts.seed)
    layer = AnalogLinear(
        board, opts.tile, data.features, data.classes, weight_limit=opts.weight_limit
    )
    evaluator: OnBoardEvaluator | HostHeldEvaluator
    if opts.mode == "board":
        evaluator = OnBoardEvaluator(layer, data.x_train, data.y_train, opts.batch_size, rng)
    else:
        evaluator = HostHeldEvaluator(
            layer, data.x_train, data.y_train, opts.batch_size, rng, opts.program_every
        )
    writes_before = board.stats().cell_writes
    x0 = np.zeros(layer.shape, np.float32)
    calibration_evals = 0
    if saved is not None:
        a, c = saved["settings"]["a"], saved["settings"]["c"]
        calibration_evals = saved["calibration_evals"]
    elif opts.a is None or opts.c is None:
        cal = calibrate(evaluator, x0, opts.steps, rng, c_floor=opts.c or 0.1)
        calibration_evals = cal.nfev
        a, c = opts.a or cal.a, opts.c or cal.c
    else:
        a, c = opts.a, opts.c
    learning_rate, perturbation = spall_gains(a, c, opts.steps)
    settings = SPSASettings(
        learning_rate=learning_rate,
        perturbation=perturbation,
        resamplings=opts.resamplings,
        blocking=opts.blocking,
        last_avg=opts.last_avg,
        second_order=opts.second_order,
        bounds=(-layer.weight_limit, layer.weight_limit),
    )
    optimizer = SPSA(x0, settings, rng, opts.steps)
    record = TrainingRecord(settings=_fields(opts) | {"a": a, "c": c, "job": "spsa"})
    before = {"mvm_calls": 0, "device_writes": 0, "time_ns": 0.0, "energy_nj": 0.0}
    if saved is not None:
        optimizer.load_state_dict(_decode_state(saved["optimizer"]))
        record.losses = list(saved["losses"])
        record.checkpoints = [Checkpoint(**c) for c in saved["checkpoints"]]
        before = saved["counts"]

    def test_accuracy(weights: np.ndarray, final: bool = False) -> float:
        return accuracy(evaluator.predict(weights, data.x_test, final=final), data.y_test)

    def callback(step: SPSAStep) -> None:
        record.losses.append(step.loss)
        if step.step % opts.eval_every == 0:
            record.checkpoints.append(
                Checkpoint(
                    step.step, test_accuracy(step.x), board.stats().cell_writes - writes_before
                )
            )
        if on_step is not None:
            on_step(step)

    def counts() -> dict[str, Any]:
        return {
            "mvm_calls": before["mvm_calls"] + layer.mvm_calls,
            "device_writes": before["device_writes"] + board.stats().cell_writes - writes_before,
            "time_ns": before["time_ns"] + layer.ledger.total.time_ns,
            "energy_nj": before["energy_nj"] + layer.ledger.total.energy_nj,
        }

    optimizer.callback = callback
    while not optimizer.done:
        ask = optimizer.ask()
        optimizer.tell(evaluator(ask.x, ask.points))
        if (
            checkpoint
            and checkpoint_every
            and optimizer.at_step_boundary
            and optimizer.step % checkpoint_every == 0
        ):
            _save_checkpoint(checkpoint, optimizer, record, calibration_evals, counts())
    result = optimizer.result()
    record.weights = result.x
    record.test_accuracy = test_accuracy(result.x, final=True)
    record.train_accuracy = accuracy(evaluator.predict(result.x, data.x_train), data.y_train)
    record.steps = result.nit
    record.loss_evaluations = result.nfev + calibration_evals
    final = counts()
    record.mvm_calls = final["mvm_calls"]
    record.device_writes = final["device_writes"]
    record.programs = evaluator.programs
    record.modeled_time_ns = final["time_ns"]
    record.modeled_energy_nj = final["energy_nj"]
    return record


CHECKPOINT_VERSION = 1


def _save_checkpoint(
    path: str | Path,
    optimizer: SPSA,
    record: TrainingRecord,
    calibration_evals: int,
    counts: dict[str, Any],
) -> None:
    state = optimizer.state_dict()
    payload = {
        "version": CHECKPOINT_VERSION,
        "settings": record.settings,
        "calibration_evals": calibration_evals,
        "optimizer": {
            **state,
            "x": state["x"].tolist(),
            "hessian": None if state["hessian"] is None else state["hessian"].tolist(),
            "history": [h.tolist() for h in state["history"]],
        },
        "losses": record.losses,
        "checkpoints": [dataclasses.asdict(c) for c in record.checkpoints],
        "counts": counts,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(payload))
    partial.replace(target)  # atomic: a crash never leaves half a checkpoint


def _load_checkpoint(path: str | Path | None, options: SPSAOptions) -> dict[str, Any]:
    if path is None:
        raise ValueError("resume: needs a checkpoint path")
    saved: dict[str, Any] = json.loads(Path(path).read_text())
    if saved.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path}: version {saved.get('version')}, expected 1")
    mismatched = [
        name
        for name, value in _fields(options).items()
        if name not in ("a", "c", "eval_every") and saved["settings"].get(name) != value
    ]
    if mismatched:
        raise ValueError(f"checkpoint {path}: options differ from the run's: {mismatched}")
    return saved


def _decode_state(state: dict[str, Any]) -> dict[str, Any]:
    return {
        **state,
        "x": np.array(state["x"], np.float32),
        "hessian": None if state["hessian"] is None else np.array(state["hessian"], np.float32),
        "history": [np.array(h, np.float32) for h in state["history"]],
    }


def _fields(options: SPSAOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in SPSAOptions.__slots__}
