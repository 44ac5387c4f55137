"""Equilibrium propagation (Scellier & Bengio 2017) on the board: a prototype.

A layered network x → s_1 → … → s_L (s_L the output, one unit per class) with
states in [0, 1] and symmetric couplings W_k between layers k and k + 1
(s_0 = x, clamped; biases b_k on the host). Its energy

    E(s) = ½ Σ_k ‖s_k‖² − Σ_k s_kᵀ W_k s_{k+1} − Σ_k b_kᵀ s_{k+1},   s_k ∈ [0, 1]

has its stationary points where every layer sits at the hard sigmoid of its
total drive: s_k = ρ(s_{k−1} W_{k−1} + b_{k−1} + s_{k+1} W_kᵀ), ρ = clip to [0, 1]
(the states never leave the box, so ρ(s) = s on them). Each coupling is one
:class:`~sidra.training.analog_layer.AnalogLinear`: the bottom-up drive
s_k W_k is its MVM and the top-down drive s_{k+1} W_kᵀ the TransposeMVM of the
same tiles, which is why the method suits a crossbar: one array serves both
directions. The input's drive x W_0 + b_0 is read once per minibatch (the input
is clamped) and serves every phase.

Settling: sweeps from the input side up, each layer set from the new state
below and the old state above, moved ``damping`` of the way to its fixed-point
value; it stops once no state changed by more than ``tolerance`` in a sweep, or
at the phase's cap. The free phase starts from zero states. A nudged phase
starts from the free equilibrium with the output cost C = ½‖s_L − t‖² (t the
one-hot target) added to the energy with weight β: the output's fixed point is
then ρ((drive + β·t) / (1 + β)).

Update, on the host from two equilibria only (local: each weight sees the two
states it couples): the cost's gradient is estimated as

    ∂C/∂W_k ≈ −(s_k^a ⊗ s_{k+1}^a − s_k^b ⊗ s_{k+1}^b) / (β_a − β_b)

with (a, b) = (+β, free) for positive nudging and (+β, −β) for symmetric
nudging (Laborieux et al. 2021, which cancels the estimate's first-order bias
in β); the host copy of the weights moves against it and a cell is
reprogrammed past a threshold (:class:`~sidra.training.hybrid.HybridNetwork`).

The exact gradient of the cost at the free equilibrium, what the estimate tends
to as β → 0, comes from implicit differentiation through the host's weights
(:func:`equilibrium_gradients`); the run compares the two every
``cosine_every`` steps, per coupling.

Classification: the output units' free equilibrium (``free_iterations`` sweeps at
most); the largest wins. The run keeps its network as ``model.npz`` with a settle
readout (sidra.training.model.SettleReadout), which ``sidra model eval|predict|deploy``
run the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, BoardInfo
from sidra.training.accounting import JobMeter
from sidra.training.analog_layer import AnalogLinear
from sidra.training.datasets import Dataset, Shaped
from sidra.training.epoch_checkpoint import EpochCheckpoint
from sidra.training.gradients import cosine, cosine_measures
from sidra.training.hybrid import HybridNetwork
from sidra.training.model import SettleReadout, TrainedModel
from sidra.training.options import EqPropOptions, Nudging
from sidra.training.placement import Placement, chain, claimed, named_tiles, place
from sidra.training.records import Checkpoint, TrainingRecord
from sidra.training.softmax import accuracy
from sidra.training.stopping import EpochsKept, stopped

__all__ = [
    "EquilibriumNetwork",
    "Settling",
    "eqprop_placement",
    "equilibrium_gradients",
    "host_equilibrium",
    "train_eqprop",
]

Array = npt.NDArray[np.float32]
Float64 = npt.NDArray[np.float64]

INPUT_CLIP = 4.0
"""Standardised features map to the read voltages up to this value (AnalogLinear's
default); the hidden states, in [0, 1], use :func:`state_clip`."""


def state_clip(info: BoardInfo, inputs: int) -> float:
    """The state that drives the full read voltage on a coupling fed by ``inputs``
    states (states span [0, 1], so they use 1/clip of the voltage range).

    The states are all non-negative, so each column of the offset mapping carries the
    offset g_ref·ΣV besides its signal. At the full voltage, 128 states averaging 0.3
    on ``sidra-y1`` (g_ref 20.5 µS, 0.2 V) already pass its ADC's 160 µA full scale:
    every forward output of the 128→10 coupling clipped (its systematic error measured
    9 times its signal, against 21 % at a third of the voltage). The scale keeps the
    offset of states all at ½ at half the full scale, and never drives a state of 1
    above the full voltage; with ideal converters (no clipping) it is 1.
    """
    if info.adc_bits == 0 or info.adc_full_scale_ua <= 0.0:
        return 1.0
    g_ref_us = (info.g_min_us + info.g_max_us) / 2.0
    return max(1.0, inputs * g_ref_us * info.read_voltage_max_v / info.adc_full_scale_ua)


@dataclass(frozen=True, slots=True)
class Settling:
    """Where a phase settled and what it took."""

    states: list[Array]
    """s_1 … s_L [batch, width], the output last."""
    iterations: int
    """Sweeps run."""
    settled: bool
    """The last sweep changed no state by more than the tolerance (else: the cap)."""
    mvm_calls: int
    """MVM and TransposeMVM calls of the phase (every tile block counted)."""


@dataclass
class SettlingLog:
    """Sweeps and board calls of every phase of a run's training steps."""

    free: list[Settling] = field(default_factory=list)
    nudged: list[Settling] = field(default_factory=list)
    input_calls: int = 0
    """Calls reading the input coupling's drive (one pass per minibatch)."""

    def note(self, phase: list[Settling], settling: Settling) -> None:
        """Adds ``settling`` to ``phase`` (:attr:`free` or :attr:`nudged`) without its
        states: the measures need only what it took, and a run's states add up."""
        phase.append(replace(settling, states=[]))

    def state(self) -> dict[str, Any]:
        """What the measures need, as JSON (an epoch checkpoint's)."""

        def rows(phases: list[Settling]) -> list[list[int | bool]]:
            return [[p.iterations, p.settled, p.mvm_calls] for p in phases]

        return {"free": rows(self.free), "nudged": rows(self.nudged),
                "input_calls": self.input_calls}  # fmt: skip

    @classmethod
    def restored(cls, state: dict[str, Any]) -> SettlingLog:
        """The log :meth:`state` was taken of."""

        def phases(rows: list[list[Any]]) -> list[Settling]:
            return [Settling([], int(i), bool(done), int(calls)) for i, done, calls in rows]

        return cls(phases(state["free"]), phases(state["nudged"]), int(state["input_calls"]))

    def measures(self, steps: int, examples: int) -> dict[str, float | int]:
        """The settling figures of the run record and summary."""

        def mean(values: Sequence[int]) -> float:
            return round(float(np.mean(values)), 2) if values else 0.0

        phases = self.free + self.nudged
        calls = self.input_calls + sum(p.mvm_calls for p in phases)
        return {
            "free_iterations_mean": mean([p.iterations for p in self.free]),
            "free_iterations_max": max((p.iterations for p in self.free), default=0),
            "nudged_iterations_mean": mean([p.iterations for p in self.nudged]),
            "nudged_iterations_max": max((p.iterations for p in self.nudged), default=0),
            "settled_fraction": round(sum(p.settled for p in phases) / max(1, len(phases)), 4),
            "free_mvm_calls_per_step": mean([p.mvm_calls for p in self.free]),
            "nudged_mvm_calls_per_step": round(
                sum(p.mvm_calls for p in self.nudged) / max(1, steps), 2
            ),
            "training_mvm_calls": calls,
            "training_mvm_calls_per_example": round(calls / max(1, examples), 2),
        }


class EquilibriumNetwork:
    """Couplings on the board (AnalogLinear, input side first) and how their states
    settle; the weights they were programmed with are the caller's (a training run's
    HybridNetwork, or a model file's)."""

    def __init__(
        self,
        layers: Sequence[AnalogLinear],
        *,
        tolerance: float,
        damping: float = 1.0,
        read_repeats: int | None = None,
    ) -> None:
        self.layers = list(layers)
        """The couplings, input side first."""
        self.tolerance = tolerance
        self.damping = np.float32(damping)
        self.read_repeats = read_repeats
        """Reads averaged per MVM (None: each layer's own); a TransposeMVM is one read."""

    @property
    def mvm_calls(self) -> int:
        """MVM and TransposeMVM calls the couplings have issued (every tile block)."""
        return sum(layer.mvm_calls for layer in self.layers)

    def input_drive(self, x: Array) -> Array:
        """x W_0 + b_0 [batch, s_1 width]: the clamped input's drive, one MVM."""
        return self.layers[0].forward(x, read_repeats=self.read_repeats)

    def zero_states(self, batch: int) -> list[Array]:
        return [np.zeros((batch, layer.outputs), np.float32) for layer in self.layers]

    def settle(
        self,
        drive: Array,
        states: Sequence[Array],
        max_iterations: int,
        *,
        beta: float = 0.0,
        target: Array | None = None,
    ) -> Settling:
        """Sweeps from ``states`` until no state moves more than the tolerance or for
        ``max_iterations`` sweeps; with ``beta`` ≠ 0 the output is nudged to ``target``."""
        start = self.mvm_calls
        s = [np.array(v, np.float32) for v in states]
        top = len(s) - 1
        nudge = None if beta == 0.0 else np.float32(beta) * np.asarray(target, np.float32)
        for sweep in range(1, max_iterations + 1):
            change = 0.0
            for k in range(len(s)):
                net: Array = (
                    drive if k == 0
                    else self.layers[k].forward(s[k - 1], read_repeats=self.read_repeats)
                )  # fmt: skip
                if k < top:
                    net = net + self.layers[k + 1].backward(s[k + 1])
                elif nudge is not None:
                    net = ((net + nudge) / (1.0 + beta)).astype(np.float32, copy=False)
                fixed: Array = np.clip(net, 0.0, 1.0)
                step = fixed - s[k]
                change = max(change, float(np.abs(step).max(initial=0.0)))
                s[k] += self.damping * step
            if change <= self.tolerance:
                return Settling(s, sweep, True, self.mvm_calls - start)
        return Settling(s, max_iterations, False, self.mvm_calls - start)

    def predict(self, x: Array, max_iterations: int, chunk: int = 1024) -> Array:
        """The free equilibrium's output for every row of ``x`` (argmax: the class)."""
        outputs = []
        for i in range(0, len(x), chunk):
            part = x[i : i + chunk]
            settled = self.settle(self.input_drive(part), self.zero_states(len(part)),
                                  max_iterations)  # fmt: skip
            outputs.append(settled.states[-1])
        return np.concatenate(outputs)

    def estimate(
        self, x: Array, high: Settling, low: Settling, beta_high: float, beta_low: float
    ) -> list[Array]:
        """Each coupling's cost gradient estimated from two equilibria (nudged at
        ``beta_high`` and ``beta_low``), weight units per unit cost: minibatch mean of
        −(s_k ⊗ s_{k+1} at high − at low) / (beta_high − beta_low), the bias row too."""
        scale = np.float32(-1.0 / ((beta_high - beta_low) * len(x)))
        clipped = np.clip(x, -self.layers[0].input_clip, self.layers[0].input_clip)
        below_high, below_low = [clipped, *high.states[:-1]], [clipped, *low.states[:-1]]
        ones = np.ones((len(x), 1), np.float32)
        gradients: list[Array] = []
        for k in range(len(self.layers)):
            h_hi, h_lo = np.hstack([below_high[k], ones]), np.hstack([below_low[k], ones])
            contrast = h_hi.T @ high.states[k] - h_lo.T @ low.states[k]
            gradients.append((scale * contrast).astype(np.float32, copy=False))
        return gradients


def eqprop_placement(
    info: BoardInfo, data: Shaped, o: EqPropOptions, order: Sequence[int] = ()
) -> Placement:
    """The tiles of each coupling, input side first (``coupling0``, ``coupling1``, ...)."""
    widths = [data.features, *o.hidden, data.classes]
    layers = chain(widths, "coupling", digital_bias=True)
    return place(info, layers, allowed=o.tiles, order=order)


def train_eqprop(
    board: Board,
    data: Dataset,
    options: EqPropOptions | None = None,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    checkpoint_every_s: float = 0.0,
) -> TrainingRecord:
    """Trains the network on ``board`` by equilibrium propagation; returns its record.
    Once ``stop`` is set the run ends after the epoch under way, its record's
    ``stopped_at_epoch`` that epoch. With ``checkpoint`` the run is saved there (an
    EpochCheckpoint) when it stops so or its board goes away (RunInterrupted);
    ``resume`` goes on from it (the same options).
    ``checkpoint_every_s``: also saved after an epoch once that long has passed since the
    last save (0: only when it stops early), so that a crash leaves a checkpoint."""
    o = options or EqPropOptions()
    saved = EpochCheckpoint.load(checkpoint, o, "eqprop", dataset=data) if resume else None
    rng = np.random.default_rng(o.seed)
    earlier = None if saved is None else saved.settings
    placement = claimed(
        board, lambda order: eqprop_placement(board.info, data, o, order), earlier,
        named=named_tiles(o),
    )  # fmt: skip
    widths = [data.features, *o.hidden, data.classes]
    layers, weights = [], []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        # Glorot-uniform couplings (Scellier & Bengio 2017) scaled by init_scale, biases 0.
        bound = o.init_scale * np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-bound, bound, (n_in + 1, n_out)).astype(np.float32)
        w[-1] = 0.0
        np.clip(w, -o.weight_limit, o.weight_limit, out=w)
        weights.append(w)
        layers.append(
            AnalogLinear(
                board, placement.of(f"coupling{i}"), n_in, n_out,
                weight_limit=o.weight_limit, read_repeats=o.read_repeats, digital_bias=True,
                input_clip=INPUT_CLIP if i == 0 else state_clip(board.info, n_in),
            )
        )  # fmt: skip
    if saved is not None:  # programmed as they were last
        weights = [np.array(w, np.float32) for w in saved.targets]
    record = TrainingRecord(
        settings=o.settings()
        | {"job": "eqprop"}
        | data.settings()
        | {"placement": placement.summary()},
        loss_label="squared error ½‖y − onehot‖²",
    )
    place = None if checkpoint is None else Path(checkpoint)

    def model_of(net: HybridNetwork) -> TrainedModel:
        readout = SettleReadout(o.free_iterations, o.tolerance, o.damping)
        return TrainedModel.of(net.layers, net.targets, data, "eqprop", readout)

    kept = EpochsKept(record, place, saved, every_s=checkpoint_every_s, model_of=model_of)
    with kept.guard():  # a resumed run's board gone while it is programmed again
        meter = JobMeter(board, layers)
        couplings = HybridNetwork(layers, weights, trainable=len(layers), threshold=o.threshold)
    net = EquilibriumNetwork(couplings.layers, tolerance=o.tolerance, damping=o.damping)
    log = SettlingLog()
    cosines: list[list[float]] = []
    eye = np.eye(data.classes, dtype=np.float32)
    final = o.learning_rate if o.final_learning_rate is None else o.final_learning_rate
    if saved is not None:
        saved.restore(record, meter, couplings, rng)
        log = SettlingLog.restored(saved.extras["log"])
        cosines = [list(c) for c in saved.extras["cosines"]]

    def going_on() -> dict[str, Any]:
        """What else the run needs to go on from an epoch (its checkpoint's extras)."""
        return {"log": log.state(), "cosines": cosines}

    with kept.guard():  # the board gone mid-way: the epochs made are kept
        for epoch, rate in enumerate(np.linspace(o.learning_rate, final, o.epochs), start=1):
            if saved is not None and epoch <= saved.epoch:
                continue
            order = rng.permutation(len(data.x_train))
            starts = range(0, len(order), o.batch_size)
            for start in starts:
                batch = order[start : start + o.batch_size]
                x, target = data.x_train[batch], eye[data.y_train[batch]]
                before = net.mvm_calls
                drive = net.input_drive(x)
                log.input_calls += net.mvm_calls - before
                free = net.settle(drive, net.zero_states(len(x)), o.free_iterations)
                log.note(log.free, free)
                plus = net.settle(drive, free.states, o.nudged_iterations, beta=o.beta,
                                  target=target)  # fmt: skip
                log.note(log.nudged, plus)
                if o.nudging is Nudging.SYMMETRIC:
                    minus = net.settle(drive, free.states, o.nudged_iterations, beta=-o.beta,
                                       target=target)  # fmt: skip
                    log.note(log.nudged, minus)
                    estimate = net.estimate(x, plus, minus, o.beta, -o.beta)
                else:
                    estimate = net.estimate(x, plus, free, o.beta, 0.0)
                if len(record.losses) % o.cosine_every == 0:
                    exact = equilibrium_gradients(couplings.weights, x, target, free.states)
                    cosines.append([cosine(a, e) for a, e in zip(estimate, exact, strict=True)])
                record.losses.append(_cost(free.states[-1], target))
                couplings.apply(estimate, float(rate))
            meter.charge_losses(len(starts))  # each step's cost, counted by the epoch
            test = accuracy(net.predict(data.x_test, o.free_iterations), data.y_test)
            record.checkpoints.append(Checkpoint(len(record.losses), test, meter.device_writes))
            kept.passed(epoch, couplings, rng, meter.read(), going_on)
            if on_epoch is not None:
                on_epoch(epoch, test)
            if stopped(stop, record.settings, epoch, o.epochs):
                kept.save()  # to go on from, as from a board gone
                break
        record.weights = couplings.weights[-1]
        record.steps = len(record.losses)
        record.test_accuracy = record.checkpoints[-1].test_accuracy
        record.train_accuracy = accuracy(net.predict(data.x_train, o.free_iterations), data.y_train)
        record.count(meter.read())
        record.programs = couplings.programs
        record.model = model_of(couplings)
    record.measures = log.measures(record.steps, o.epochs * len(data.x_train)) | (
        cosine_measures(cosines, len(couplings.weights))
    )
    return record


def _cost(output: Array, target: Array) -> float:
    """Minibatch mean of ½‖y − t‖² (state units squared)."""
    return float(0.5 * np.mean(np.sum((output.astype(np.float64) - target) ** 2, axis=1)))


def host_equilibrium(
    weights: Sequence[npt.ArrayLike],
    x: npt.ArrayLike,
    states: Sequence[npt.ArrayLike] | None = None,
    *,
    tolerance: float = 1e-12,
    max_iterations: int = 100_000,
) -> list[Float64]:
    """The free equilibrium in float64 on the host: the same sweeps as the board's
    settling from ``states`` (zero states if None), run until no state moves by more than
    ``tolerance``; ValueError if that takes more than ``max_iterations`` sweeps."""
    w = [np.asarray(v, np.float64) for v in weights]
    u = np.clip(np.asarray(x, np.float64), -INPUT_CLIP, INPUT_CLIP)
    s = (
        [np.zeros((len(u), v.shape[1])) for v in w]
        if states is None
        else [np.asarray(v, np.float64).copy() for v in states]
    )
    drive = u @ w[0][:-1] + w[0][-1]
    for _ in range(max_iterations):
        change = 0.0
        for k in range(len(s)):
            net = drive if k == 0 else s[k - 1] @ w[k][:-1] + w[k][-1]
            if k < len(s) - 1:
                net = net + s[k + 1] @ w[k + 1][:-1].T
            fixed = np.clip(net, 0.0, 1.0)
            change = max(change, float(np.abs(fixed - s[k]).max(initial=0.0)))
            s[k] = fixed
        if change <= tolerance:
            return s
    raise ValueError(f"host_equilibrium: no fixed point within {max_iterations} sweeps")


def equilibrium_gradients(
    weights: Sequence[npt.ArrayLike],
    x: npt.ArrayLike,
    target: npt.ArrayLike,
    states: Sequence[npt.ArrayLike] | None = None,
) -> list[Float64]:
    """Each coupling's exact gradient of the minibatch mean of ½‖s_L − t‖² at the free
    equilibrium (found on the host from ``states``), float64, bias row last.

    Implicit differentiation: at the equilibrium s = P(A s + c), with A the symmetric
    couplings between the layers above the input, c the input's drive and the biases,
    and P the units strictly inside (0, 1) (a clipped unit does not move). Then
    dC/dθ = μᵀ ∂(A s + c)/∂θ with μ = P λ, (I − A P) λ = ∂C/∂s."""
    w = [np.asarray(v, np.float64) for v in weights]
    u = np.clip(np.asarray(x, np.float64), -INPUT_CLIP, INPUT_CLIP)
    t = np.asarray(target, np.float64)
    s = host_equilibrium(w, u, states)
    widths = [v.shape[1] for v in w]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    coupling = np.zeros((offsets[-1], offsets[-1]))
    for k in range(1, len(w)):  # W_k couples s_k (rows) and s_{k+1} (columns)
        rows, cols = slice(offsets[k - 1], offsets[k]), slice(offsets[k], offsets[k + 1])
        coupling[rows, cols] = w[k][:-1]
        coupling[cols, rows] = w[k][:-1].T
    full = np.hstack(s)
    inside = ((full > 0.0) & (full < 1.0)).astype(np.float64)
    error = np.zeros_like(full)
    error[:, offsets[-2] :] = (s[-1] - t) / len(u)
    # One stacked solve: (I − A P_n) λ_n = e_n for every example n.
    systems = np.eye(len(coupling)) - coupling[None, :, :] * inside[:, None, :]
    mu = inside * np.linalg.solve(systems, error[:, :, None])[:, :, 0]
    parts = [mu[:, offsets[k] : offsets[k + 1]] for k in range(len(w))]
    gradients = []
    ones = np.ones((len(u), 1))
    for k in range(len(w)):
        below = np.hstack([u if k == 0 else s[k - 1], ones])
        g = below.T @ parts[k]
        if k > 0:  # s_k also feels W_k from above: its top-down drive s_{k+1} W_kᵀ
            g[:-1] += parts[k - 1].T @ s[k]
        gradients.append(g)
    return gradients
