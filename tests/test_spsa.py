"""SPSA core: exact evaluation counts, Spall schedules, convergence on analytic objectives."""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import pytest

from sidra.drivers import InvalidArgument, rademacher
from sidra.training import (
    SPSA,
    SPSASettings,
    SPSAStep,
    constant,
    minimize_spsa,
    powerseries,
    spall_gains,
)


class Quadratic:
    """L(x) = ½‖x − target‖², evaluated on the host at x ± cΔ(seed); counts calls."""

    def __init__(self, target: np.ndarray, noise: float = 0.0, seed: int = 0) -> None:
        self.target = target.astype(np.float32)
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def loss(self, x: np.ndarray) -> float:
        return 0.5 * float(np.sum((x - self.target) ** 2)) + self.noise * self.rng.normal()

    def __call__(self, x: np.ndarray, seed: int, c: float) -> tuple[float, float]:
        self.calls += 1
        delta = rademacher(seed, x.shape)
        return self.loss(x + c * delta), self.loss(x - c * delta)


def test_powerseries_is_spall_form() -> None:
    values = list(itertools.islice(powerseries(2.0, 0.5, 3.0)(), 3))
    np.testing.assert_allclose(values, [2 / 4**0.5, 2 / 5**0.5, 2 / 6**0.5])


def test_spall_gains_default_stability_is_ten_percent() -> None:
    rate, pert = spall_gains(0.3, 0.1, steps=1000)
    assert next(rate()) == pytest.approx(0.3 / (100 + 1) ** 0.602)
    assert next(pert()) == pytest.approx(0.1)
    # Factories restart: two iterators are independent.
    it = rate()
    next(it)
    assert next(rate()) == pytest.approx(0.3 / 101**0.602)


@pytest.mark.parametrize(("steps", "resamplings"), [(1, 1), (7, 1), (5, 3)])
def test_exact_evaluation_counts(steps: int, resamplings: int) -> None:
    """2 loss evaluations per resampling per step, nothing hidden."""
    objective = Quadratic(np.ones((2, 3)))
    result = minimize_spsa(
        objective,
        np.zeros((2, 3)),
        steps=steps,
        learning_rate=constant(0.01),
        perturbation=constant(0.1),
        rng=np.random.default_rng(0),
        resamplings=resamplings,
    )
    assert objective.calls == steps * resamplings
    assert result.nfev == 2 * steps * resamplings
    assert result.nit == steps


def test_single_step_matches_the_spsa_formula() -> None:
    """x1 = x0 − a·(L⁺ − L⁻)/(2c)·Δ with Δ regenerated from the seed the rng draws."""
    target = np.arange(6, dtype=np.float32).reshape(2, 3)
    objective = Quadratic(target)
    x0 = np.zeros((2, 3), np.float32)
    result = minimize_spsa(
        objective,
        x0,
        steps=1,
        learning_rate=constant(0.05),
        perturbation=constant(0.2),
        rng=np.random.default_rng(42),
    )
    seed = int(np.random.default_rng(42).integers(0, 2**63, size=1)[0])
    delta = rademacher(seed, x0.shape)
    plus, minus = objective.loss(x0 + 0.2 * delta), objective.loss(x0 - 0.2 * delta)
    expected = x0 - 0.05 * (plus - minus) / 0.4 * delta
    np.testing.assert_allclose(result.x, expected, rtol=1e-6)


def test_converges_on_noisy_quadratic() -> None:
    target = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    objective = Quadratic(target, noise=0.01, seed=2)
    rate, pert = spall_gains(0.2, 0.1, steps=3000)
    result = minimize_spsa(
        objective,
        np.zeros_like(target),
        steps=3000,
        learning_rate=rate,
        perturbation=pert,
        rng=np.random.default_rng(3),
    )
    assert np.linalg.norm(result.x - target) < 0.05 * np.linalg.norm(target)


def test_bounds_clip_and_callback_stops_early() -> None:
    objective = Quadratic(np.full((1, 4), 10.0))
    seen: list[SPSAStep] = []

    def stop_at_five(step: SPSAStep) -> bool:
        seen.append(step)
        return step.step == 5

    result = minimize_spsa(
        objective,
        np.zeros((1, 4)),
        steps=100,
        learning_rate=constant(1.0),
        perturbation=constant(0.1),
        rng=np.random.default_rng(0),
        bounds=(-1.0, 1.0),
        callback=stop_at_five,
    )
    assert result.nit == 5 and result.nfev == 10 and len(seen) == 5
    assert np.all(np.abs(result.x) <= 1.0)
    assert [s.nfev for s in seen] == [2, 4, 6, 8, 10]


def test_same_seed_same_trajectory() -> None:
    def run() -> np.ndarray:
        return minimize_spsa(
            Quadratic(np.ones((3, 3))),
            np.zeros((3, 3)),
            steps=20,
            learning_rate=constant(0.1),
            perturbation=constant(0.1),
            rng=np.random.default_rng(9),
        ).x

    np.testing.assert_array_equal(run(), run())


# -- ask/tell optimizer options ---------------------------------------------------

from sidra.training import calibrate, run  # noqa: E402
from sidra.training.spsa import Point, perturbation_matrix  # noqa: E402


class CountingQuadratic:
    """Evaluator over points; records every evaluation."""

    def __init__(self, target: np.ndarray, noise: float = 0.0, seed: int = 0) -> None:
        self.q = Quadratic(target, noise, seed)
        self.evaluations = 0

    def __call__(self, x: np.ndarray, points: list[Point]) -> list[float]:
        self.evaluations += len(points)
        return [self.q.loss(x + perturbation_matrix(p, x.shape)) for p in points]


def settings(**overrides: object) -> SPSASettings:
    base = {"learning_rate": constant(0.05), "perturbation": constant(0.1)}
    return SPSASettings(**(base | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "per_step", "extra"),
    [
        ({}, 2, 0),
        ({"resamplings": 3}, 6, 0),
        ({"blocking": True}, 3, 1),  # Qiskit: 3·maxiter + 1
        ({"second_order": True}, 4, 0),
        ({"second_order": True, "blocking": True}, 5, 1),  # Qiskit 2-SPSA: 5·maxiter + 1
    ],
)
def test_exact_evaluation_counts_per_option(options: dict, per_step: int, extra: int) -> None:
    objective = CountingQuadratic(np.ones((2, 3)))
    result = run(
        SPSA(np.zeros((2, 3)), settings(**options), np.random.default_rng(0), 7), objective
    )
    assert objective.evaluations == result.nfev == per_step * 7 + extra


def test_blocking_rejects_steps_that_raise_the_loss() -> None:
    """With a huge learning rate every proposal overshoots; blocking keeps x0."""
    objective = CountingQuadratic(np.ones((1, 4)))
    opt = SPSA(
        np.zeros((1, 4)),
        settings(learning_rate=constant(50.0), blocking=True),
        np.random.default_rng(1),
        10,
    )
    result = run(opt, objective)
    assert result.rejected == 10
    np.testing.assert_array_equal(result.x, np.zeros((1, 4)))


def test_trust_region_caps_the_step_norm() -> None:
    seen = []
    opt = SPSA(
        np.zeros((3, 3)),
        settings(learning_rate=constant(10.0), trust_radius=0.05),
        np.random.default_rng(2),
        5,
    )
    opt.callback = seen.append
    run(opt, CountingQuadratic(np.full((3, 3), 5.0)))
    assert all(s.step_norm <= 0.05 + 1e-6 for s in seen)
    assert np.linalg.norm(opt.x) <= 5 * 0.05 + 1e-5


def test_last_avg_returns_the_mean_of_the_last_iterates() -> None:
    history = []
    opt = SPSA(np.zeros((2, 2)), settings(last_avg=3), np.random.default_rng(3), 6)
    opt.callback = lambda s: history.append(s.x.copy())
    result = run(opt, CountingQuadratic(np.ones((2, 2))))
    np.testing.assert_allclose(result.x, np.mean(history[-3:], axis=0), rtol=1e-6)


def test_second_order_converges_faster_on_an_ill_conditioned_quadratic() -> None:
    """Curvatures 1 and 100: the diagonal preconditioner equalises them."""
    scales = np.array([[1.0, 100.0]], np.float32)

    def evaluate(x: np.ndarray, points: list[Point]) -> list[float]:
        return [
            float(0.5 * np.sum(scales * (x + perturbation_matrix(p, x.shape) - 1.0) ** 2))
            for p in points
        ]

    def final_error(second_order: bool, rate: float) -> float:
        opt = SPSA(
            np.zeros((1, 2)),
            settings(
                learning_rate=constant(rate), perturbation=constant(0.05), second_order=second_order
            ),
            np.random.default_rng(4),
            300,
        )
        return float(np.abs(run(opt, evaluate).x - 1.0).max())

    # First order must keep a·100 < 2 to stay stable, so the flat direction crawls.
    assert final_error(True, 0.5) < 0.05 < final_error(False, 0.009)


def test_checkpoint_and_resume_reproduce_the_uninterrupted_run() -> None:
    def fresh() -> SPSA:
        return SPSA(np.zeros((2, 3)), settings(resamplings=2), np.random.default_rng(5), 10)

    whole = run(fresh(), CountingQuadratic(np.ones((2, 3))))
    first = fresh()
    first.steps = 4
    run(first, CountingQuadratic(np.ones((2, 3))))
    state = first.state_dict()
    resumed = fresh()
    resumed.load_state_dict(state)
    result = run(resumed, CountingQuadratic(np.ones((2, 3))))
    np.testing.assert_array_equal(result.x, whole.x)
    assert result.nfev == whole.nfev


def test_calibration_follows_spall_rules_and_counts_its_evaluations() -> None:
    objective = CountingQuadratic(np.ones((4, 4)), noise=0.3, seed=6)
    cal = calibrate(
        objective,
        np.zeros((4, 4)),
        steps=1000,
        rng=np.random.default_rng(7),
        target_step=0.02,
        samples=25,
        noise_samples=10,
    )
    assert cal.nfev == objective.evaluations == 10 + 50
    assert cal.stability == pytest.approx(100.0)
    assert cal.c == pytest.approx(cal.noise_std) and 0.2 < cal.noise_std < 0.4
    # Rule 4: the first step moves a typical weight by the target. The SPSA
    # component magnitude exceeds the true |g_i| = 1 (other components leak in).
    first_rate = next(cal.schedules(1000)[0]())
    assert first_rate * cal.mean_gradient == pytest.approx(0.02)
    assert cal.mean_gradient > 1.0


@pytest.mark.parametrize(
    ("setting", "value", "allowed"),
    [
        ({"resamplings": 0}, 0, "an integer >= 1"),
        ({"resamplings": 1.5}, 1.5, "an integer >= 1"),
        ({"last_avg": 0}, 0, "an integer >= 1"),
        ({"hessian_delay": -1}, -1, "an integer >= 0"),
        ({"blocking": "yes"}, "yes", "True or False"),
        ({"second_order": 1}, 1, "True or False"),
        ({"allowed_increase": -0.1}, -0.1, "a finite number >= 0 (nats)"),
        ({"regularization": float("nan")}, "nan", "a finite number >= 0"),
        ({"regularization": math.inf}, "inf", "a finite number >= 0"),
        ({"trust_radius": 0.0}, 0.0, "a finite number > 0 (weight units), or None"),
        ({"bounds": (1.0, -1.0)}, (1.0, -1.0), "(low, high), finite, low < high"),
        ({"bounds": (-math.inf, 1.0)}, (-math.inf, 1.0), "(low, high), finite, low < high"),
        ({"bounds": (-1.0, 0.0, 1.0)}, (-1.0, 0.0, 1.0), "(low, high), finite, low < high"),
    ],
)
def test_settings_out_of_range_are_refused_when_made(
    setting: dict[str, Any], value: Any, allowed: str
) -> None:
    """They were taken, and surfaced steps later (bounds the wrong way round: every
    iterate clipped to one value) or never; refused as InvalidArgument (a ValueError, as
    before) naming the setting, the value and what is allowed."""
    with pytest.raises(InvalidArgument) as caught:
        SPSASettings(constant(0.1), constant(0.1), **setting)
    (name,) = setting
    assert type(caught.value) is InvalidArgument and isinstance(caught.value, ValueError)
    assert caught.value.field == name
    assert str(caught.value.value) == str(value)
    assert caught.value.allowed.startswith(allowed)
    assert str(caught.value).startswith(f"{name}: got ")


def _takes_a_gain(gain: float) -> Any:  # a schedule factory passed for the schedule itself
    return constant(gain)


@pytest.mark.parametrize(
    ("schedule", "value", "allowed"),
    [
        (constant(-0.1), "-0.1 at step 1", "finite gains > 0 at every step"),
        (powerseries(-0.5, 0.602), "-0.5 at step 1", "finite gains > 0 at every step"),
        (constant(0.0), "0.0 at step 1", "finite gains > 0 at every step"),
        (constant(math.nan), "nan at step 1", "finite gains > 0 at every step"),
        (constant(math.inf), "inf at step 1", "finite gains > 0 at every step"),
        (lambda: iter(()), "no value at step 1", "a schedule: a callable of no arguments"),
        (0.1, 0.1, "a schedule: a callable of no arguments"),
        (_takes_a_gain, "_takes_a_gain, which takes arguments", "a schedule: a callable"),
        (powerseries, "powerseries, which takes arguments", "a schedule: a callable"),
        (lambda: 0.1, "returns float", "a schedule: a callable of no arguments"),
        (lambda: [0.1, 0.1], "returns list", "a schedule: a callable of no arguments"),
    ],
)
@pytest.mark.parametrize("name", ["learning_rate", "perturbation"])
def test_a_schedule_that_is_none_or_yields_no_gain_is_refused_when_made(
    name: str, schedule: Any, value: Any, allowed: str
) -> None:
    """A negative learning rate climbed the loss, a perturbation of 0 divided by zero,
    and a number or a factory given for a schedule failed on the first step with a
    TypeError of Python's: each is refused as the settings are made, naming the gain."""
    with pytest.raises(InvalidArgument) as caught:
        SPSASettings(**{"learning_rate": constant(0.1), "perturbation": constant(0.1)}
                     | {name: schedule})  # fmt: skip
    assert caught.value.field == name
    assert str(value) in str(caught.value.value)
    assert caught.value.allowed.startswith(allowed)


def test_a_gain_a_schedule_yields_at_a_later_step_is_refused_at_that_step() -> None:
    """A schedule whose third gain is negative runs two steps, then ask() refuses naming
    the step; the optimizer has taken no third step."""

    def turns_negative() -> Any:
        return iter([0.1, 0.1, -0.1])

    settings = SPSASettings(turns_negative, constant(0.1))
    optimizer = SPSA(np.zeros(3), settings, np.random.default_rng(0), 5)
    for _ in range(2):
        ask = optimizer.ask()
        optimizer.tell([1.0] * len(ask.points))
    with pytest.raises(InvalidArgument) as caught:
        optimizer.ask()
    assert (caught.value.field, caught.value.value) == ("learning_rate", "-0.1 at step 3")
    assert (optimizer.step, optimizer.nfev) == (2, 4)


@pytest.mark.parametrize(
    ("arguments", "field", "value", "allowed"),
    [
        ({"steps": 0}, "steps", 0, "an integer >= 1"),
        ({"steps": 2.5}, "steps", 2.5, "an integer >= 1"),
        ({"steps": "5"}, "steps", "5", "an integer >= 1"),
        ({"x0": np.zeros(0)}, "x0", "shape [0]", "one or more finite numbers"),
        ({"x0": np.array([0.0, np.nan])}, "x0", "nan at [1]", "one or more finite numbers"),
        ({"x0": [[0.0], [1e39]]}, "x0", "inf at [1, 0]", "one or more finite numbers"),
        ({"x0": ["a"]}, "x0", "list ['a']", "one or more finite numbers"),
        ({"rng": 7}, "rng", "int", "a np.random.Generator"),
        ({"rng": np.random.RandomState(0)}, "rng", "RandomState", "a np.random.Generator"),
        ({"settings": {"learning_rate": constant(0.1)}}, "settings", "dict", "an SPSASettings"),
    ],
)
def test_an_optimizer_needs_a_point_a_generator_and_steps(
    arguments: dict[str, Any], field: str, value: Any, allowed: str
) -> None:
    """Each refused as InvalidArgument (a ValueError) naming the argument, the value and
    what is allowed; a seed given for the generator was a TypeError, a dict for the
    settings an AttributeError, 2.5 steps ran."""
    given: dict[str, Any] = {
        "x0": np.zeros(3),
        "settings": SPSASettings(constant(0.1), constant(0.1)),
        "rng": np.random.default_rng(0),
        "steps": 5,
    }
    with warnings.catch_warnings():  # 1e39 overflows float32 with numpy's warning
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(InvalidArgument) as caught:
            SPSA(**given | arguments)
    assert type(caught.value) is InvalidArgument
    assert (caught.value.field, caught.value.value) == (field, value)
    assert caught.value.allowed.startswith(allowed)


@pytest.mark.parametrize(
    ("losses", "says"),
    [
        ([1.0, float("nan")], "nan at [1]"),
        ([1.0], "shape (1,)"),
        ([1.0, 2.0, 3.0], "shape (3,)"),
        (["x", "y"], "list ['x', 'y']"),
        (4.0, "shape ()"),
    ],
)
def test_losses_told_that_do_not_fit_the_ask_are_refused_and_change_nothing(
    losses: Any, says: str
) -> None:
    """One finite loss per point asked, or InvalidArgument; the optimizer is as it was, so
    the same ask can still be told (it used to step with NaN, or lose the ask)."""
    settings = SPSASettings(constant(0.1), constant(0.1))
    told = SPSA(np.zeros(3), settings, np.random.default_rng(0), 5)
    clean = SPSA(np.zeros(3), settings, np.random.default_rng(0), 5)
    asked, expected = told.ask(), clean.ask()
    with pytest.raises(InvalidArgument) as caught:
        told.tell(losses)
    assert caught.value.field == "losses" and says in str(caught.value.value)
    assert caught.value.allowed == "2 finite numbers, one per point asked"
    assert (told.step, told.nfev) == (0, 0) and asked.points == expected.points
    told.tell([1.0, 2.0])
    clean.tell([1.0, 2.0])
    np.testing.assert_array_equal(told.x, clean.x)


def test_a_resumed_run_given_other_gains_is_refused_naming_them(tmp_path: Any) -> None:
    """A run goes on with the gains its checkpoint holds; ``--a 1.0`` on --resume of a run
    of a = 0.5 was ignored without a word (settings said 0.5, the command line 1.0)."""
    import threading

    from sidra.drivers import open_board
    from sidra.training import SPSAOptions, load_dataset, train_softmax_spsa

    data = load_dataset("iris")
    options = SPSAOptions(steps=6, a=0.5, eval_every=6, batch_size=8)
    stop = threading.Event()
    stop.set()  # stops at its first step, its checkpoint saved
    checkpoint = tmp_path / "checkpoint.json"
    with open_board("emu://?preset=ideal&seed=1") as board:
        train_softmax_spsa(board, data, options, checkpoint=checkpoint, stop=stop)
        with pytest.raises(ValueError, match=r"a 1.0 given, the run's is 0.5: a resumed run"):
            train_softmax_spsa(board, data, options.model_copy(update={"a": 1.0}),
                               checkpoint=checkpoint, resume=True)  # fmt: skip
        same = train_softmax_spsa(board, data, options, checkpoint=checkpoint, resume=True)
    assert same.settings["a"] == 0.5


def test_what_a_hand_written_loop_reads_is_documented() -> None:
    """help(SPSAResult) showed only its generated signature: what x is (averaged?), what
    rejected counts, had to be read in the source; SPSA.x, nfev, done, ask and result
    had no docstring at all."""
    import dataclasses

    from sidra.drivers.attribute_docs import attribute_docs
    from sidra.training.spsa import SPSA, SPSAResult, SPSAStep

    for cls in (SPSAResult, SPSAStep):
        assert cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(")
        documented = attribute_docs(cls)
        undocumented = [f.name for f in dataclasses.fields(cls) if not documented.get(f.name)]
        assert not undocumented, (cls.__name__, undocumented)
    for name in ("x", "nfev", "step", "done", "ask", "tell", "result"):
        assert getattr(SPSA, name).__doc__, name
