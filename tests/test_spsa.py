"""SPSA core: exact evaluation counts, Spall schedules, convergence on analytic objectives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sidra.client.training import (
    SPSAStep,
    constant,
    minimize_spsa,
    powerseries,
    spall_gains,
)
from sidra.drivers import rademacher


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
