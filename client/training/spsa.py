"""Simultaneous-perturbation stochastic approximation (SPSA, Spall 1992), ask/tell.

Each step perturbs every parameter at once by ±c_k·Δ (Δ Rademacher, drawn
from a seed with the board's own generator, so Δ can be applied on the board
without crossing the wire), measures the losses and moves

    x ← clip(x − a_k · mean_r[(L⁺ − L⁻)/(2c_k)·Δ_r])       (1/Δ = Δ for ±1 entries)

Options, as in Spall's papers and Qiskit's implementation: resamplings,
blocking (reject a step that raises the loss by more than an allowed
increase), a trust region, iterate averaging and a diagonal second-order
(2-SPSA) preconditioner. The optimizer never evaluates anything itself: it
asks for points (x plus a sum of seeded ±1 perturbations) and is told their
losses, so the same code drives a host function, a board perturbed by the
Perturb RPC, or host-held weights. Every requested evaluation is counted.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sidra.drivers.errors import InvalidArgument
from sidra.drivers.rademacher import rademacher
from sidra.drivers.validation import is_integer, is_real
from sidra.training.schedules import Schedule

__all__ = [
    "Ask",
    "Evaluator",
    "PairEvaluator",
    "Point",
    "SPSA",
    "SPSAResult",
    "SPSASettings",
    "SPSAStep",
    "minimize_spsa",
    "perturbation_matrix",
    "run",
]

Array = npt.NDArray[np.float32]

Point = tuple[tuple[int, float], ...]
"""A point relative to x: terms (seed, coefficient) meaning x + Σ coefficient·Δ(seed)."""


def perturbation_matrix(point: Point, shape: tuple[int, ...]) -> Array:
    """Σ coefficient·Δ(seed) of ``point`` (zeros for the unperturbed point)."""
    total = np.zeros(shape, np.float32)
    for seed, coefficient in point:
        total += np.float32(coefficient) * rademacher(seed, shape)
    return total


class Evaluator(Protocol):
    """Losses at ``x`` plus each point's perturbation, all on one minibatch.

    A point is the weights' offset from ``x`` as seeded terms (:data:`Point`);
    ``x + perturbation_matrix(point, x.shape)`` is where to evaluate it on the host (a
    board-held layer applies the same terms by Perturb instead: ``OnBoardEvaluator``)::

        from sidra.training import SPSA, perturbation_matrix, run

        def evaluate(x, points):
            return [loss(x + perturbation_matrix(p, x.shape)) for p in points]
    """

    def __call__(self, x: Array, points: Sequence[Point]) -> list[float]: ...


class PairEvaluator(Protocol):
    """Returns (L(x + cΔ), L(x − cΔ)) with Δ = rademacher(seed, x.shape)."""

    def __call__(self, x: Array, seed: int, c: float) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class SPSASettings:
    """How SPSA steps. Gains are schedules (see ``schedules``).

    A value that is not allowed is refused when the settings are made, with
    :class:`~sidra.drivers.errors.InvalidArgument` (a ``ValueError``) naming the setting,
    the value and what is allowed; so is a gain a schedule yields at a later step (by
    :meth:`SPSA.ask`)."""

    learning_rate: Schedule
    """a_k, k = 1, 2, ... (weight units per unit gradient)."""
    perturbation: Schedule
    """c_k, k = 1, 2, ... (weight units)."""
    resamplings: int = 1
    """Gradient estimates (fresh Δ each) averaged per step: 2 evaluations each."""
    blocking: bool = False
    """Reject a step whose loss exceeds the current one by more than allowed_increase
    (+1 evaluation per step, +1 at the start)."""
    allowed_increase: float = 0.0
    """Loss increase blocking tolerates (nats); estimate it with ``noise_level``."""
    trust_radius: float | None = None
    """If set, updates are rescaled to this 2-norm at most (weight units)."""
    last_avg: int = 1
    """Return the mean of the last ``last_avg`` iterates (iterate averaging)."""
    second_order: bool = False
    """Diagonal 2-SPSA preconditioner: 4 evaluations per resampling instead of 2."""
    regularization: float = 0.01
    """Added to |H_ii| before dividing (2-SPSA)."""
    hessian_delay: int = 0
    """Steps that only accumulate the Hessian before it preconditions (2-SPSA)."""
    bounds: tuple[float, float] | None = None
    """Clip x to [low, high] after every update."""

    def __post_init__(self) -> None:
        # Refused when made, naming the setting: a resampling count of 0, bounds the wrong
        # way round or a negative gain would otherwise surface steps later (every iterate
        # clipped to one value, a loss climbed instead of descended), or never.
        for name in ("learning_rate", "perturbation"):
            _check_schedule(name, getattr(self, name))
        _check_count("resamplings", self.resamplings, least=1)
        _check_count("last_avg", self.last_avg, least=1)
        _check_count("hessian_delay", self.hessian_delay, least=0)
        for name in ("blocking", "second_order"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise InvalidArgument(name, getattr(self, name), "True or False")
        _check_finite("allowed_increase", self.allowed_increase, "a finite number >= 0 (nats)")
        _check_finite("regularization", self.regularization, "a finite number >= 0")
        if self.trust_radius is not None:
            allowed = "a finite number > 0 (weight units), or None"
            _check_finite("trust_radius", self.trust_radius, allowed, positive=True)
        if self.bounds is not None:
            _check_bounds(self.bounds)


_SCHEDULE_ALLOWED = (
    "a schedule: a callable of no arguments returning an endless iterator of gains "
    "(sidra.training.schedules: constant, powerseries, spall_gains)"
)
"""What :attr:`SPSASettings.learning_rate` and :attr:`SPSASettings.perturbation` are."""
_GAINS_ALLOWED = {
    "learning_rate": "finite gains > 0 at every step (weight units per unit gradient)",
    "perturbation": "finite gains > 0 at every step (weight units)",
}
"""What each schedule's values may be: a gain of 0 divides by zero (perturbation) or
stops the run, a negative one climbs the loss instead of descending it."""


def _check_schedule(name: str, schedule: Any) -> None:
    """``schedule`` is a zero-argument callable whose first value is a gain: the common
    mistakes (a number for a schedule, ``powerseries`` itself for ``powerseries(a, p)``,
    a negative gain) are refused when the settings are made, not at the first step."""
    if not callable(schedule) or not _takes_no_arguments(schedule):
        value = schedule if not callable(schedule) else f"{_named(schedule)}, which takes arguments"
        raise InvalidArgument(name, value, _SCHEDULE_ALLOWED)
    values = schedule()
    if not isinstance(values, Iterator):
        raise InvalidArgument(
            name, f"{_named(schedule)}, which returns {type(values).__name__}", _SCHEDULE_ALLOWED
        )
    _next_gain(name, values, 1)


def _takes_no_arguments(schedule: Callable[..., Any]) -> bool:
    try:
        inspect.signature(schedule).bind()
    except TypeError:
        return False
    except ValueError:  # a callable without a signature (some builtins): called, as before
        return True
    return True


def _named(value: Any) -> str:
    return str(getattr(value, "__qualname__", type(value).__name__))


_NO_VALUE = object()
"""What a schedule's iterator gives once it has ended."""


def _next_gain(name: str, values: Iterator[Any], step: int) -> float:
    """The gain of step ``step`` a schedule's iterator yields next, or InvalidArgument
    naming the schedule, the value and the step: a finite number > 0."""
    value: Any = next(values, _NO_VALUE)
    if value is _NO_VALUE:
        raise InvalidArgument(name, f"no value at step {step}", _SCHEDULE_ALLOWED)
    if not (is_real(value) and math.isfinite(value) and value > 0):
        raise InvalidArgument(name, f"{value!r} at step {step}", _GAINS_ALLOWED[name])
    return float(value)


def _check_count(name: str, value: Any, *, least: int) -> None:
    if not is_integer(value) or value < least:
        raise InvalidArgument(name, value, f"an integer >= {least}")


def _check_finite(name: str, value: Any, allowed: str, *, positive: bool = False) -> None:
    """``value`` is a finite real number >= 0 (> 0 when ``positive``)."""
    if not (is_real(value) and math.isfinite(value)):
        raise InvalidArgument(name, value, allowed)
    if value < 0 or (positive and value == 0):
        raise InvalidArgument(name, value, allowed)


def _check_bounds(bounds: Any) -> None:
    allowed = "(low, high), finite, low < high (weight units), or None"
    try:
        low, high = bounds
    except (TypeError, ValueError):  # not a pair
        raise InvalidArgument("bounds", bounds, allowed) from None
    finite = all(is_real(v) and math.isfinite(v) for v in (low, high))
    if not (finite and low < high):
        raise InvalidArgument("bounds", bounds, allowed)


@dataclass(frozen=True, slots=True)
class SPSAStep:
    """What the callback sees after each step."""

    step: int
    """1-based step number."""
    x: Array = field(repr=False)
    """Parameters after the step (unchanged if it was rejected); left out of the repr,
    which a progress callback prints every step."""
    loss: float
    """Mean loss of the step's perturbed evaluations."""
    learning_rate: float
    """The step's gain a_k (the learning-rate schedule's value)."""
    perturbation: float
    """The step's perturbation size c_k, in the units of x."""
    step_norm: float
    """‖x_k − x_(k−1)‖₂ of the proposed update."""
    accepted: bool
    """False when blocking rejected the update (``x`` then is the previous one)."""
    nfev: int
    """Evaluations so far."""


@dataclass(frozen=True, slots=True)
class SPSAResult:
    """What :meth:`SPSA.result`, :func:`run` and :func:`minimize_spsa` return (the names
    of ``scipy.optimize.OptimizeResult``)."""

    x: Array
    """The parameters found (float32, the shape of x0): the mean of the last
    ``SPSASettings.last_avg`` accepted iterates (1: the last one)."""
    nit: int
    """Steps taken."""
    nfev: int
    """Evaluations requested (calibration excluded unless passed in)."""
    rejected: int = 0
    """Steps whose update blocking rejected (``SPSASettings.blocking``; else 0)."""


@dataclass(frozen=True, slots=True)
class Ask:
    """Evaluate the loss at ``x`` + each point (one minibatch for all of them)."""

    x: Array
    points: tuple[Point, ...]


@dataclass
class _State:
    x: Array
    k: int = 0
    nfev: int = 0
    rejected: int = 0
    fx: float | None = None
    hessian: Array | None = None
    history: list[Array] = field(default_factory=list)


class SPSA:
    """Ask/tell SPSA. ``ask()`` returns what to evaluate, ``tell(losses)`` consumes it.

    ``x0`` is copied as float32 (the dtype of :attr:`x`, of every ask and of the
    result); ``rng`` (a generator of the caller's, never a seed or numpy's global state)
    draws the perturbation seeds; ``steps`` is how many steps until :attr:`done`. An
    argument that is not allowed is refused with
    :class:`~sidra.drivers.errors.InvalidArgument` (a ``ValueError``) naming it, the
    value and what is allowed, as :class:`SPSASettings` refuses its values."""

    def __init__(
        self,
        x0: npt.ArrayLike,
        settings: SPSASettings,
        rng: np.random.Generator,
        steps: int,
    ) -> None:
        if not isinstance(settings, SPSASettings):
            raise InvalidArgument("settings", type(settings).__name__, "an SPSASettings")
        if not isinstance(rng, np.random.Generator):  # never a seed or the global state
            raise InvalidArgument("rng", type(rng).__name__, _RNG_ALLOWED)
        _check_count("steps", steps, least=1)
        x = _checked_x0(x0)
        self.settings = settings
        self.steps = steps
        self.rng = rng
        self._s = _State(x)
        self._rates = settings.learning_rate()
        self._perts = settings.perturbation()
        self._pending: tuple[str, Any] | None = None
        self._queued: tuple[str, Any] | None = None
        self._asked = 0  # points of the pending ask: the losses tell() takes
        self.callback: Callable[[SPSAStep], bool | None] | None = None
        self._stopped = False

    # -- ask / tell -----------------------------------------------------------

    @property
    def x(self) -> Array:
        """The current parameters (float32, the shape of x0): read, do not change."""
        return self._s.x

    @property
    def nfev(self) -> int:
        """Evaluations requested so far (each point of each ask counts one)."""
        return self._s.nfev

    @property
    def step(self) -> int:
        """Steps taken so far."""
        return self._s.k

    @property
    def at_step_boundary(self) -> bool:
        """True between steps: the moment :meth:`state_dict` may be taken."""
        return self._pending is None and self._queued is None

    @property
    def done(self) -> bool:
        """True once ``steps`` steps are taken or a callback stopped the run."""
        return self._queued is None and (self._stopped or self._s.k >= self.steps)

    def ask(self) -> Ask:
        """The next points to evaluate (:class:`Ask`); :meth:`tell` their losses before
        asking again."""
        if self._pending is not None:
            raise RuntimeError("ask() called twice without tell()")
        if self._queued is not None:  # blocking: the candidate's unperturbed loss
            self._pending, self._queued = self._queued, None
            self._asked = 1
            return Ask(self._pending[1][0], ((),))
        s = self._s
        self._asked = 1
        if self.settings.blocking and s.fx is None:
            self._pending = ("initial", None)
            return Ask(s.x, ((),))
        # Checked as drawn, before anything else: a schedule yielding a negative gain at a
        # later step is refused there (that step's gains are spent; nothing else moved).
        a_k = _next_gain("learning_rate", self._rates, s.k + 1)
        c_k = _next_gain("perturbation", self._perts, s.k + 1)
        seeds = [int(v) for v in self.rng.integers(0, 2**63, size=self._seeds_per_step())]
        points = self._gradient_points(seeds, c_k)
        self._pending = ("gradient", (a_k, c_k, seeds))
        self._asked = len(points)
        return Ask(s.x, points)

    def tell(self, losses: Sequence[float]) -> None:
        """The losses of the last :meth:`ask`'s points: one finite number per point, in its
        order. Anything else is refused (InvalidArgument) with the optimizer unchanged,
        so the same ask may still be told."""
        if self._pending is None:
            raise RuntimeError("tell() without ask()")
        losses = _checked_losses(losses, self._asked)
        kind, data = self._pending
        self._pending = None
        self._s.nfev += len(losses)
        if kind == "initial":
            self._s.fx = float(losses[0])
        elif kind == "gradient":
            self._after_gradient(losses, *data)
        else:
            self._after_blocking(float(losses[0]), *data)

    # -- internals ------------------------------------------------------------

    def _seeds_per_step(self) -> int:
        return self.settings.resamplings * (2 if self.settings.second_order else 1)

    def _gradient_points(self, seeds: list[int], c: float) -> tuple[Point, ...]:
        points: list[Point] = []
        if not self.settings.second_order:
            for seed in seeds:
                points += [((seed, c),), ((seed, -c),)]
            return tuple(points)
        for d1, d2 in zip(seeds[::2], seeds[1::2], strict=True):
            points += [
                ((d1, c),),
                ((d1, -c),),
                ((d1, c), (d2, c)),
                ((d1, -c), (d2, c)),
            ]
        return tuple(points)

    def _after_gradient(
        self, losses: Sequence[float], a_k: float, c_k: float, seeds: list[int]
    ) -> None:
        s, cfg = self._s, self.settings
        shape = s.x.shape
        gradient = np.zeros(shape, np.float32)
        hessian = np.zeros(shape, np.float32)
        per = 4 if cfg.second_order else 2
        pairs = seeds[::2] if cfg.second_order else seeds
        for r, seed in enumerate(pairs):
            chunk = losses[per * r : per * (r + 1)]
            delta = rademacher(seed, shape)
            gradient += np.float32((chunk[0] - chunk[1]) / (2.0 * c_k)) * delta
            if cfg.second_order:
                delta2 = rademacher(seeds[2 * r + 1], shape)
                curvature = ((chunk[2] - chunk[0]) - (chunk[3] - chunk[1])) / (2.0 * c_k**2)
                hessian += np.float32(curvature) * delta * delta2
        gradient /= np.float32(len(pairs))
        update = gradient
        if cfg.second_order:
            update = self._precondition(gradient, hessian / np.float32(len(pairs)))
        step = np.float32(a_k) * update
        norm = float(np.linalg.norm(step))
        if cfg.trust_radius is not None and norm > cfg.trust_radius:
            step *= np.float32(cfg.trust_radius / norm)
            norm = cfg.trust_radius
        candidate = s.x - step
        if cfg.bounds is not None:
            np.clip(candidate, *cfg.bounds, out=candidate)
        loss = float(np.mean(losses))
        s.k += 1
        if cfg.blocking:
            self._queued = ("blocking", (candidate, a_k, c_k, norm, loss))
            return
        self._accept(candidate, a_k, c_k, norm, loss, True)

    def _precondition(self, gradient: Array, hessian: Array) -> Array:
        s, cfg = self._s, self.settings
        # Running mean of the per-step diagonal estimates (Spall 2000, 2SPSA).
        k = np.float32(s.k)
        average = hessian if s.hessian is None else (k * s.hessian + hessian) / (k + 1)
        s.hessian = np.asarray(average, dtype=np.float32)
        if s.k < cfg.hessian_delay:
            return gradient
        scale = np.abs(s.hessian) + np.float32(cfg.regularization)
        return np.asarray(gradient / scale, dtype=np.float32)

    def _after_blocking(
        self, f_candidate: float, candidate: Array, a_k: float, c_k: float, norm: float, loss: float
    ) -> None:
        s = self._s
        assert s.fx is not None
        accepted = f_candidate < s.fx + self.settings.allowed_increase
        if accepted:
            s.fx = f_candidate
        else:
            s.rejected += 1
        self._accept(candidate if accepted else s.x, a_k, c_k, norm, loss, accepted)

    def _accept(
        self, x: Array, a_k: float, c_k: float, norm: float, loss: float, accepted: bool
    ) -> None:
        s = self._s
        s.x = x
        if accepted:
            s.history.append(x)
            del s.history[: -self.settings.last_avg]
        if self.callback is not None:
            report = SPSAStep(s.k, x, loss, a_k, c_k, norm, accepted, s.nfev)
            if self.callback(report):
                self._stopped = True

    def result(self) -> SPSAResult:
        """What the run reached so far (:class:`SPSAResult`)."""
        s = self._s
        x = np.mean(s.history, axis=0).astype(np.float32) if s.history else s.x
        return SPSAResult(x, s.k, s.nfev, s.rejected)

    # -- checkpoint / resume ---------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: arrays and the random generator state."""
        if self._pending is not None or self._queued is not None:
            raise RuntimeError("checkpoint between steps, not in the middle of one")
        s = self._s
        return {
            "x": s.x.copy(),
            "k": s.k,
            "nfev": s.nfev,
            "rejected": s.rejected,
            "fx": s.fx,
            "hessian": None if s.hessian is None else s.hessian.copy(),
            "history": [h.copy() for h in s.history],
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`; schedules are fast-forwarded to step k."""
        s = self._s
        s.x = np.array(state["x"], dtype=np.float32)
        s.k, s.nfev, s.rejected, s.fx = state["k"], state["nfev"], state["rejected"], state["fx"]
        s.hessian = None if state["hessian"] is None else np.array(state["hessian"], np.float32)
        s.history = [np.array(h, np.float32) for h in state["history"]]
        self.rng.bit_generator.state = state["rng"]
        self._rates = self.settings.learning_rate()
        self._perts = self.settings.perturbation()
        for _ in range(s.k):
            next(self._rates)
            next(self._perts)


def run(optimizer: SPSA, evaluate: Evaluator) -> SPSAResult:
    """Drives ``optimizer`` to completion with ``evaluate``."""
    while not optimizer.done:
        ask = optimizer.ask()
        optimizer.tell(evaluate(ask.x, ask.points))
    return optimizer.result()


def minimize_spsa(
    evaluate: PairEvaluator,
    x0: npt.ArrayLike,
    *,
    steps: int,
    learning_rate: Schedule,
    perturbation: Schedule,
    rng: np.random.Generator,
    resamplings: int = 1,
    bounds: tuple[float, float] | None = None,
    callback: Callable[[SPSAStep], bool | None] | None = None,
) -> SPSAResult:
    """Plain SPSA over a pair evaluator; a callback returning True stops early."""
    settings = SPSASettings(
        learning_rate=learning_rate,
        perturbation=perturbation,
        resamplings=resamplings,
        bounds=bounds,
    )
    optimizer = SPSA(x0, settings, rng, steps)
    optimizer.callback = callback

    def evaluate_points(x: Array, points: Sequence[Point]) -> list[float]:
        losses: list[float] = []
        for ((seed, c),) in points[::2]:  # (+c, −c) pairs of one seed
            losses += evaluate(x, seed, c)
        return losses

    return run(optimizer, evaluate_points)


_RNG_ALLOWED = "a np.random.Generator (np.random.default_rng(seed)), never a seed"
"""What SPSA's ``rng`` allows: draws the caller can reproduce and checkpoint."""


def _checked_x0(x0: Any) -> Array:
    """``x0`` as float32, or InvalidArgument naming what is wrong with it: one or more
    finite numbers (a float64 beyond float32's range is no finite float32)."""
    allowed = "one or more finite numbers (float32)"
    try:
        x = np.array(x0, dtype=np.float32)
    except (TypeError, ValueError):  # text, None, rows of different lengths
        raise InvalidArgument("x0", f"{type(x0).__name__} {x0!r}", allowed) from None
    if x.size == 0:
        raise InvalidArgument("x0", f"shape {list(x.shape)}", allowed)
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        where = [int(i) for i in np.unravel_index(int(bad[0]), x.shape)]
        raise InvalidArgument("x0", f"{x.flat[bad[0]]} at {where}", allowed)
    return x


def _checked_losses(losses: Sequence[float], asked: int) -> list[float]:
    """``losses`` as floats, or InvalidArgument naming what is wrong with them: one finite
    number per point asked."""
    allowed = f"{asked} finite number{'s' if asked != 1 else ''}, one per point asked"
    try:
        values = np.asarray(losses, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument("losses", f"{type(losses).__name__} {losses!r}", allowed) from None
    if values.shape != (asked,):
        raise InvalidArgument("losses", f"shape {values.shape}", allowed)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise InvalidArgument("losses", f"{values[bad[0]]} at [{bad[0]}]", allowed)
    return [float(v) for v in values]
