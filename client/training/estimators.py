"""Gradient estimators behind one ask/tell interface, for comparison with SPSA.

A :class:`GradientEstimator` asks for the points to evaluate around x and is
told their losses (all measured on one minibatch); it returns a gradient
estimate of x's shape. :func:`descend` turns any of them into plain
stochastic gradient descent and counts every evaluation.

Points extend SPSA's vocabulary (:data:`~sidra.training.spsa.Point`,
x + Σ coefficient·Δ(seed) with Rademacher Δ from the board's generator) by
two explicit kinds:

``Coordinate(index, step)``
    x + step·e_index, one parameter moved (central differences). On the board
    this is a Perturb of a 1 × 1 region: 2p Perturb RPCs (and restores) and 2p MVM passes per
    estimate (p = parameters) instead of SPSA's 2, so these points run in
    host-held mode, where the ±h·e_i is added digitally to one analog pass.
``Direction(vector, scale)``
    x + scale·vector with an explicit vector (Gaussian directions for forward
    gradients and evolution strategies). The board generates only Rademacher
    signs, so these also run host-held.

:class:`HostEvaluator` evaluates every kind with a host loss function
(analytic objectives, or a closure over host-held weights), and
:class:`HostHeldAnyEvaluator` is the board's host-held evaluator extended to
every kind. ``OnBoardEvaluator`` stays the evaluator for Rademacher points.

Estimators and their evaluations per estimate (p parameters):

========================  ==========================================  ===========
SPSAGradient(c, R)        mean_R[(L(x+cΔ) − L(x−cΔ))/(2c)]·Δ          2R
CentralDifferences(h)     g_i = (L(x+h·e_i) − L(x−h·e_i))/(2h)        2p
ForwardGradient(ε, n)     mean_n[(L(x+εv) − L(x))/ε]·v, v ~ N(0, I)   1 + n
AntitheticES(σ, n)        Σ[L(x+σε_i) − L(x−σε_i)]ε_i/(2nσ)           2n
========================  ==========================================  ===========

The forward gradient shares one base evaluation L(x) among its n directions
(hence 1 + n, not 2n). Its directional derivative is a forward difference
(bias O(ε) in general, none in expectation on a quadratic); the exact JVP of
Baydin et al. (2022) needs forward-mode on the crossbar and is not here.
``tell`` uses only the points and losses it is given, so estimators hold no
state between steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from sidra.drivers.rademacher import rademacher
from sidra.training.evaluators import HostHeldEvaluator
from sidra.training.schedules import Schedule
from sidra.training.softmax import cross_entropy
from sidra.training.spsa import Point, perturbation_matrix

__all__ = [
    "AnyPoint",
    "AntitheticES",
    "CentralDifferences",
    "Coordinate",
    "Direction",
    "ForwardGradient",
    "GradientEstimator",
    "HostEvaluator",
    "HostHeldAnyEvaluator",
    "SPSAGradient",
    "descend",
    "displacement",
]

Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Coordinate:
    """x + step·e_index: one parameter moved (``index`` into x flattened row-major)."""

    index: int
    step: float


@dataclass(frozen=True, slots=True, eq=False)
class Direction:
    """x + scale·vector, with ``vector`` of x's shape."""

    vector: Array
    scale: float


AnyPoint = Point | Coordinate | Direction
"""A Rademacher point (seeds), one coordinate, or an explicit direction."""

P = TypeVar("P")


def displacement(point: AnyPoint, shape: tuple[int, ...]) -> Array:
    """The offset from x that ``point`` stands for, as a float32 array of ``shape``."""
    if isinstance(point, Coordinate):
        size = int(np.prod(shape, dtype=np.int64))
        if not 0 <= point.index < size:
            raise ValueError(f"coordinate index: got {point.index}, expected 0 .. {size - 1}")
        offset = np.zeros(shape, np.float32)
        offset.flat[point.index] = point.step
        return offset
    if isinstance(point, Direction):
        if point.vector.shape != shape:
            raise ValueError(f"direction shape: got {point.vector.shape}, expected {shape}")
        return np.asarray(np.float32(point.scale) * point.vector, dtype=np.float32)
    return perturbation_matrix(point, shape)


class GradientEstimator(Protocol[P]):
    """Asks for points around x, is told their losses, returns ĝ of x's shape."""

    def ask(self, x: Array, rng: np.random.Generator) -> tuple[P, ...]:
        """The points to evaluate (all on one minibatch); randomness only from ``rng``."""
        ...

    def tell(self, x: Array, points: Sequence[P], losses: Sequence[float]) -> Array:
        """The gradient estimate from the losses at ``points`` (those ``ask`` returned)."""
        ...

    def evaluations_per_estimate(self, shape: tuple[int, ...]) -> int:
        """Loss evaluations one estimate costs for parameters of ``shape``."""
        ...


def _check(points: Sequence[object], losses: Sequence[float]) -> None:
    if len(points) != len(losses):
        raise ValueError(f"losses: got {len(losses)} for {len(points)} points")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}: got {value}, expected > 0")


def _count(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name}: got {value}, expected >= 1")


@dataclass(frozen=True, slots=True)
class SPSAGradient:
    """SPSA's estimate: R Rademacher pairs ±cΔ from seeds (the board can apply them)."""

    c: float
    resamplings: int = 1

    def __post_init__(self) -> None:
        _positive("c", self.c)
        _count("resamplings", self.resamplings)

    def evaluations_per_estimate(self, shape: tuple[int, ...]) -> int:
        return 2 * self.resamplings

    def ask(self, x: Array, rng: np.random.Generator) -> tuple[Point, ...]:
        # The same draw as the SPSA optimizer's, so both follow one trajectory.
        seeds = [int(s) for s in rng.integers(0, 2**63, size=self.resamplings)]
        return tuple(p for s in seeds for p in (((s, self.c),), ((s, -self.c),)))

    def tell(self, x: Array, points: Sequence[Point], losses: Sequence[float]) -> Array:
        _check(points, losses)
        # float32 in SPSA's order of operations: descend reproduces SPSA exactly.
        gradient = np.zeros(x.shape, np.float32)
        for r in range(0, len(points), 2):
            ((seed, c),), ((seed_minus, c_minus),) = points[r], points[r + 1]
            if seed_minus != seed or c_minus != -c:
                raise ValueError(f"points {r}, {r + 1}: expected a ±c pair of one seed")
            delta = rademacher(seed, x.shape)
            gradient += np.float32((losses[r] - losses[r + 1]) / (2.0 * c)) * delta
        gradient /= np.float32(len(points) // 2)
        return gradient


@dataclass(frozen=True, slots=True)
class CentralDifferences:
    """Kiefer-Wolfowitz: every coordinate ±h, bias O(h²), deterministic (rng unused)."""

    h: float

    def __post_init__(self) -> None:
        _positive("h", self.h)

    def evaluations_per_estimate(self, shape: tuple[int, ...]) -> int:
        return 2 * int(np.prod(shape, dtype=np.int64))

    def ask(self, x: Array, rng: np.random.Generator) -> tuple[Coordinate, ...]:
        return tuple(
            p for i in range(x.size) for p in (Coordinate(i, self.h), Coordinate(i, -self.h))
        )

    def tell(self, x: Array, points: Sequence[Coordinate], losses: Sequence[float]) -> Array:
        _check(points, losses)
        gradient = np.zeros(x.size, np.float64)
        for r in range(0, len(points), 2):
            plus, minus = points[r], points[r + 1]
            if plus.index != minus.index or minus.step != -plus.step:
                raise ValueError(f"points {r}, {r + 1}: expected a ±h pair of one coordinate")
            gradient[plus.index] += (losses[r] - losses[r + 1]) / (2.0 * plus.step)
        return gradient.reshape(x.shape).astype(np.float32)


def _gaussian(rng: np.random.Generator, shape: tuple[int, ...]) -> Array:
    return rng.standard_normal(shape, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class ForwardGradient:
    """Baydin et al. 2022 with a forward difference: ĝ = mean_n[(L(x+εv) − L(x))/ε]·v.

    Points: the unperturbed x (the empty Rademacher point ``()``), then n
    Gaussian directions. Per estimate E‖ĝ − g‖² = (p + 1)‖g‖²/n on a quadratic.
    """

    epsilon: float
    directions: int = 1

    def __post_init__(self) -> None:
        _positive("epsilon", self.epsilon)
        _count("directions", self.directions)

    def evaluations_per_estimate(self, shape: tuple[int, ...]) -> int:
        return 1 + self.directions

    def ask(self, x: Array, rng: np.random.Generator) -> tuple[Point | Direction, ...]:
        base: Point = ()
        directions = [
            Direction(_gaussian(rng, x.shape), self.epsilon) for _ in range(self.directions)
        ]
        return (base, *directions)

    def tell(self, x: Array, points: Sequence[Point | Direction], losses: Sequence[float]) -> Array:
        _check(points, losses)
        if len(points) < 2 or points[0] != ():
            raise ValueError("points: expected the unperturbed x first, then directions")
        gradient = np.zeros(x.shape, np.float64)
        for point, loss in zip(points[1:], losses[1:], strict=True):
            if not isinstance(point, Direction):
                raise ValueError(f"points: expected directions after x, got {point!r}")
            gradient += (loss - losses[0]) / point.scale * point.vector
        return (gradient / (len(points) - 1)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class AntitheticES:
    """Salimans et al. 2017: ĝ = Σ[L(x+σε_i) − L(x−σε_i)]ε_i/(2nσ), ε_i ~ N(0, I).

    No fitness shaping (raw losses). E‖ĝ − g‖² = (p + 1)‖g‖²/n on a quadratic.
    """

    sigma: float
    pairs: int = 1

    def __post_init__(self) -> None:
        _positive("sigma", self.sigma)
        _count("pairs", self.pairs)

    def evaluations_per_estimate(self, shape: tuple[int, ...]) -> int:
        return 2 * self.pairs

    def ask(self, x: Array, rng: np.random.Generator) -> tuple[Direction, ...]:
        noise = [_gaussian(rng, x.shape) for _ in range(self.pairs)]
        return tuple(
            p for e in noise for p in (Direction(e, self.sigma), Direction(e, -self.sigma))
        )

    def tell(self, x: Array, points: Sequence[Direction], losses: Sequence[float]) -> Array:
        _check(points, losses)
        gradient = np.zeros(x.shape, np.float64)
        for r in range(0, len(points), 2):
            plus, minus = points[r], points[r + 1]
            same = minus.vector is plus.vector or np.array_equal(minus.vector, plus.vector)
            if not same or minus.scale != -plus.scale:
                raise ValueError(f"points {r}, {r + 1}: expected a ±σ pair of one direction")
            gradient += (losses[r] - losses[r + 1]) / (2.0 * plus.scale) * plus.vector
        return (gradient / (len(points) // 2)).astype(np.float32)


class HostEvaluator:
    """Any point kind on the host: ``loss_fn(x + displacement)`` for each point.

    ``new_batch``, if given, is called once per evaluator call before any
    point, so a stochastic ``loss_fn`` can draw one minibatch that every point
    of the call shares (the ``Evaluator`` contract). ``evaluations`` counts
    every loss computed.
    """

    def __init__(
        self,
        loss_fn: Callable[[Array], float],
        *,
        new_batch: Callable[[], object] | None = None,
    ) -> None:
        self.loss_fn = loss_fn
        self.new_batch = new_batch
        self.evaluations = 0

    def __call__(self, x: Array, points: Sequence[AnyPoint]) -> list[float]:
        if self.new_batch is not None:
            self.new_batch()
        self.evaluations += len(points)
        return [float(self.loss_fn(x + displacement(p, x.shape))) for p in points]


class HostHeldAnyEvaluator(HostHeldEvaluator):
    """``HostHeldEvaluator`` for every point kind: one board pass of the programmed
    weights per call (drawn ahead, as there), the remainder and each point's offset
    added digitally (a coordinate touches one output column, so 2p points stay cheap)."""

    def __call__(self, x: Array, points: Sequence[AnyPoint]) -> list[float]:
        weights = x
        inputs, yb, analog = self._pass_at(weights)
        assert self.programmed is not None
        base = analog + inputs @ (weights - self.programmed)
        losses = []
        for point in points:
            if isinstance(point, Coordinate):
                displacement(point, weights.shape)  # validates the index
                row, col = divmod(point.index, weights.shape[1])
                logits = base.copy()
                logits[:, col] += np.float32(point.step) * inputs[:, row]
            else:
                logits = base + inputs @ displacement(point, weights.shape)
            losses.append(cross_entropy(logits, yb))
        self.layer.ledger.charge_host_loss(len(points))
        return losses


def descend(
    estimator: GradientEstimator[P],
    evaluate: Callable[[Array, Sequence[P]], list[float]],
    x0: npt.ArrayLike,
    steps: int,
    learning_rate: Schedule,
    rng: np.random.Generator,
    bounds: tuple[float, float] | None = None,
) -> tuple[Array, int]:
    """``steps`` of x ← clip(x − a_k·ĝ(x)); returns (x, evaluations requested).

    With ``SPSAGradient`` and the same ``rng`` this is the SPSA optimizer's
    plain trajectory (no blocking, averaging or 2-SPSA).
    """
    _count("steps", steps)
    x = np.array(x0, dtype=np.float32)
    rates = learning_rate()
    nfev = 0
    for _ in range(steps):
        points = estimator.ask(x, rng)
        losses = evaluate(x, points)
        _check(points, losses)
        nfev += len(losses)
        x = x - np.float32(next(rates)) * estimator.tell(x, points, losses)
        if bounds is not None:
            np.clip(x, *bounds, out=x)
    return x, nfev
