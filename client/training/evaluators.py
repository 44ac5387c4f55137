"""Loss evaluators that put the board in the SPSA loop, in two perturbation modes.

``OnBoardEvaluator``: the board holds the weights (programmed as absolute
targets whenever they change) and applies each ±c·Δ itself; Δ comes from a
seed and never crosses the wire. Where the layer allows it a step is one
RunSequence: the step's weights programmed (when they moved), then every point in
one PerturbedMVM (perturb, pass, and a restore at the end: three writes and two
passes per gradient estimate), one round trip in all; else Perturb and MVM calls.

``HostHeldEvaluator``: the host holds the weights and programs them as
absolute targets only every ``program_every`` updates (no accumulation of
write noise, far fewer writes). Between programs the board computes x·W_prog
and the host adds the small digital remainder x·(W − W_prog ± c·Δ), so the ±
points share one analog pass. Since W_prog stays until the next Program, the
passes of the minibatches still to come before it do not depend on the steps
between: they are drawn ahead and sent in one MVM call (one round trip per
``program_every`` steps rather than per step, the same passes on the board).

Both draw one minibatch per call and use it for every point (common random
numbers), compute the loss on the host and charge it to the layer's ledger.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import Unsupported
from sidra.training.analog_layer import AnalogLinear
from sidra.training.softmax import cross_entropy
from sidra.training.spsa import Point, perturbation_matrix

__all__ = ["HostHeldEvaluator", "OnBoardEvaluator"]

Array = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


class _Minibatches:
    def __init__(self, x: Array, y: Labels, batch_size: int, rng: np.random.Generator) -> None:
        self.x, self.y, self.rng = x, y, rng
        self.batch_size = min(batch_size, len(x))

    def draw(self) -> tuple[Array, Labels]:
        index = self.rng.choice(len(self.x), self.batch_size, replace=False)
        return self.x[index], self.y[index]

    @property
    def state(self) -> dict[str, Any]:
        """Where the next draw starts: the generator's state."""
        return dict(self.rng.bit_generator.state)

    def restore(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


@dataclass(slots=True)
class _Ahead:
    """A minibatch drawn before the call that uses it, with the board's pass of it."""

    x: Array
    y: Labels
    state: dict[str, Any]
    """The minibatch stream's state before this one was drawn."""
    analog: Array | None = None
    """The board's pass of ``x`` (None until it is passed)."""
    programs: int = -1
    """The evaluator's ``programs`` when ``analog`` was made: stale once they differ."""


class _LayerEvaluator:
    """What both modes share: the layer, its minibatches, what the board holds."""

    def __init__(
        self,
        layer: AnalogLinear,
        x: Array,
        y: Labels,
        batch_size: int,
        rng: np.random.Generator,
    ) -> None:
        self.layer = layer
        self.batches = _Minibatches(x, y, batch_size, rng)
        self.programmed: Array | None = None
        """The weights the board holds (as last programmed)."""
        self.programs = 0

    def _changed(self, weights: Array) -> bool:
        """Whether the board does not hold ``weights``."""
        return self.programmed is None or not np.array_equal(weights, self.programmed)

    def _program_if_changed(self, weights: Array) -> None:
        if self._changed(weights):
            self.layer.program(weights)
            self.programmed = weights.copy()
            self.programs += 1


class OnBoardEvaluator(_LayerEvaluator):
    """Perturbations applied on the board by the Perturb RPC."""

    def sync(self, weights: Array) -> None:
        """Program ``weights`` unless the board already holds them."""
        self._program_if_changed(weights)

    def __call__(self, x: Array, points: Sequence[Point]) -> list[float]:
        weights = x
        if self.layer.fused_perturbation and points and all(len(p) == 1 for p in points):
            # One RunSequence for the step: Program the new weights (if they moved), then
            # one PerturbedMVM for every point; the board perturbs, passes and restores
            # next to the array, the minibatch travels once, one round trip in all.
            changed = self._changed(weights)
            xb, yb = self.batches.draw()
            perturbations = [(p[0][0], abs(p[0][1]), 1 if p[0][1] > 0 else -1) for p in points]
            outputs = self.layer.perturbed_forward(
                xb, perturbations, program=weights if changed else None
            )
            if changed:
                self.programmed = weights.copy()
                self.programs += 1
            self.layer.ledger.charge_host_loss(len(points))
            return [cross_entropy(out, yb) for out in outputs]
        self.sync(weights)
        xb, yb = self.batches.draw()
        losses = []
        for point in points:
            if not point:
                self.layer.restore()
            elif len(point) == 1:
                seed, coefficient = point[0]
                self.layer.perturb(seed, abs(coefficient), 1 if coefficient > 0 else -1)
            else:
                raise Unsupported(
                    "on-board Perturb applies one Δ at a time; use host-held mode for 2-SPSA"
                )
            losses.append(cross_entropy(self.layer.forward(xb), yb))
        self.layer.ledger.charge_host_loss(len(points))
        return losses

    def predict(
        self, weights: Array, x: Array, *, final: bool = False, read_repeats: int | None = None
    ) -> Array:
        """Outputs of the layer holding ``weights``, unperturbed, from the board, each the
        mean of ``read_repeats`` analog passes (None: the layer's own; the board always
        holds the weights here, so ``final`` changes nothing)."""
        self.sync(weights)
        self.layer.restore()
        return _forward_chunks(self.layer, x, read_repeats)


PASSES_PER_CALL = 1024
"""Analog passes in one MVM call of an accuracy measurement (inputs × read repeats):
within a served board's default ``max_batch`` (4096)."""


def _forward_chunks(layer: AnalogLinear, x: Array, read_repeats: int | None) -> Array:
    """``layer.forward`` of ``x`` in calls of at most :data:`PASSES_PER_CALL` passes."""
    repeats = layer.read_repeats if read_repeats is None else read_repeats
    if repeats < 1:
        raise ValueError(f"read_repeats: got {repeats}, expected >= 1")
    chunk = max(1, PASSES_PER_CALL // repeats)
    return np.concatenate(
        [layer.forward(x[i : i + chunk], read_repeats=repeats) for i in range(0, len(x), chunk)]
    )


class HostHeldEvaluator(_LayerEvaluator):
    """Host-held weights, programmed as absolute targets every ``program_every`` updates.

    Minibatches are drawn from ``rng`` ahead of the calls that use them (as many as
    the programmed weights are sure to serve, within :data:`PASSES_PER_CALL`
    passes), so ``rng`` should be a stream of their own: shared with other draws
    it would interleave with them differently. :meth:`minibatch_state` is where
    the stream stands for the next call, for a checkpoint."""

    def __init__(
        self,
        layer: AnalogLinear,
        x: Array,
        y: Labels,
        batch_size: int,
        rng: np.random.Generator,
        program_every: int = 10,
    ) -> None:
        if program_every < 1:
            raise ValueError(f"program_every: got {program_every}, expected >= 1")
        super().__init__(layer, x, y, batch_size, rng)
        self.program_every = program_every
        self._last: Array | None = None
        self._updates = 0
        self._ahead: deque[_Ahead] = deque()

    def sync(self, weights: Array, *, force: bool = False) -> None:
        """Count an update when ``weights`` changed; program every ``program_every``."""
        if self._program_due(weights, force):
            self._program_if_changed(weights)

    def _program_due(self, weights: Array, force: bool) -> bool:
        """Counts an update when ``weights`` changed; whether a Program is due (the
        count then starts again)."""
        if self._last is not None and not np.array_equal(weights, self._last):
            self._updates += 1
        self._last = weights.copy()
        if self.programmed is None or force or self._updates >= self.program_every:
            self._updates = 0
            return True
        return False

    def __call__(self, x: Array, points: Sequence[Point]) -> list[float]:
        weights = x
        inputs, yb, analog = self._pass_at(weights)  # x·W_prog: one pass for every point
        assert self.programmed is not None
        remainder = weights - self.programmed
        losses = []
        for point in points:
            digital = inputs @ (remainder + perturbation_matrix(point, weights.shape))
            losses.append(cross_entropy(analog + digital, yb))
        self.layer.ledger.charge_host_loss(len(points))
        return losses

    def _pass_at(self, weights: Array) -> tuple[Array, Labels, Array]:
        """The next minibatch as the layer's inputs (clipped, bias column appended), its
        labels, and the board's pass of it with the weights it holds; ``weights``
        counted as an update and programmed first when a Program is due."""
        if self._program_due(weights, False) and self._changed(weights):
            # The passes drawn ahead for this Program go with it: one round trip.
            self._draw_ahead(program=weights)
        xb, yb, analog = self._next_pass()
        return self._inputs(xb), yb, analog

    def minibatch_state(self) -> dict[str, Any]:
        """The minibatch stream's state for the next call (before any minibatch drawn
        ahead and not used yet): what a checkpoint keeps."""
        return self._ahead[0].state if self._ahead else self.batches.state

    def restore_minibatches(self, state: dict[str, Any]) -> None:
        """Puts the minibatch stream at ``state`` (from :meth:`minibatch_state`)."""
        self._ahead.clear()
        self.batches.restore(state)

    def _next_pass(self) -> tuple[Array, Labels, Array]:
        """The next minibatch and the board's pass of it with the weights it holds."""
        if not self._ahead:
            self._draw_ahead()
        elif self._ahead[0].programs != self.programs:  # programmed since: passed again
            self._pass_ahead()
        ahead = self._ahead.popleft()
        assert ahead.analog is not None
        return ahead.x, ahead.y, ahead.analog

    def _draw_ahead(self, program: Array | None = None) -> None:
        """Draws the minibatches of the calls the board's weights (or ``program``, then
        programmed first) are sure to serve, unless some are drawn already, and passes
        them."""
        # Each call counts at most one update, and the weights are programmed when the
        # count reaches program_every: the board holds W_prog for this call and at
        # least program_every - 1 - updates more, whatever the optimizer does.
        calls = self.program_every - self._updates
        fit = PASSES_PER_CALL // (self.batches.batch_size * self.layer.read_repeats)
        for _ in range(max(1, min(calls, fit)) if not self._ahead else 0):
            state = self.batches.state
            x, y = self.batches.draw()
            self._ahead.append(_Ahead(x, y, state))
        self._pass_ahead(program)

    def _pass_ahead(self, program: Array | None = None) -> None:
        """Every minibatch in ``_ahead`` through the board in one MVM call (after
        ``program``'s Program, in the same round trip)."""
        xs = np.concatenate([ahead.x for ahead in self._ahead])
        analog = self.layer.forward(xs, program=program)
        if program is not None:
            self.programmed = program.copy()
            self.programs += 1
        start = 0
        for ahead in self._ahead:
            ahead.analog, ahead.programs = analog[start : start + len(ahead.x)], self.programs
            start += len(ahead.x)

    def _inputs(self, x: Array) -> Array:
        clip = self.layer.input_clip
        return np.hstack([np.clip(x, -clip, clip), np.ones((len(x), 1), np.float32)])

    def predict(
        self, weights: Array, x: Array, *, final: bool = False, read_repeats: int | None = None
    ) -> Array:
        """Outputs at ``weights``: board pass (the mean of ``read_repeats``, None: the
        layer's own) plus digital remainder, or, with ``final``, programmed first so the
        answer is the board's alone."""
        self.sync(weights, force=final)
        assert self.programmed is not None
        analog = _forward_chunks(self.layer, x, read_repeats)
        return analog + self._inputs(x) @ (weights - self.programmed)
