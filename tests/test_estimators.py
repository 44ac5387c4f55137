"""Gradient estimators behind one interface (counts, accuracy, descent, board); feedback alignment.

The analytic objective is L(x) = ½‖A(x − t)‖² over x of shape (2, 3) (p = 6),
gradient AᵀA(x − t), Hessian eigenvalues 0.36 .. 1.96. On a quadratic a
symmetric difference is exact, so SPSA's estimate is (g·Δ)Δ and the ES one
(g·ε)ε; the per-estimate errors E‖ĝ − g‖² are then (p − 1)‖g‖²/R for SPSA,
(p + 1)‖g‖²/n for ES and the forward gradient (Gaussian fourth moments).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from sidra.drivers import open_board, rademacher
from sidra.training import (
    AnalogLinear,
    AntitheticES,
    AnyPoint,
    CentralDifferences,
    Coordinate,
    Direction,
    FeedbackAlignmentNetwork,
    ForwardGradient,
    GradientEstimator,
    HostEvaluator,
    HostHeldAnyEvaluator,
    HostHeldEvaluator,
    HybridNetwork,
    OnBoardEvaluator,
    SPSAGradient,
    constant,
    cross_entropy,
    descend,
    displacement,
    load_dataset,
    minimize_spsa,
    random_feedback,
)

SHAPE = (2, 3)
P = 6


class Quadratic:
    """L(x) = ½‖A(vec x − t)‖² in float64."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(P, P)))
        self.a = q * np.linspace(0.6, 1.4, P)  # singular values 0.6 .. 1.4
        self.target = rng.normal(size=P)

    def loss(self, x: np.ndarray) -> float:
        r = self.a @ (np.asarray(x, np.float64).ravel() - self.target)
        return 0.5 * float(r @ r)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        r = np.asarray(x, np.float64).ravel() - self.target
        return (self.a.T @ self.a @ r).reshape(SHAPE)

    @property
    def minimum(self) -> np.ndarray:
        return self.target.reshape(SHAPE)


X = np.array([[0.5, -1.0, 0.25], [2.0, 0.0, -0.75]], np.float32)


Estimator = GradientEstimator[Any]


def estimate(
    estimator: Estimator,
    evaluate: Callable[[np.ndarray, Sequence[Any]], list[float]],
    x: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    points = estimator.ask(x, rng)
    return estimator.tell(x, points, evaluate(x, points))


# -- points and the host evaluator ------------------------------------------------


def test_every_point_kind_is_an_explicit_offset() -> None:
    v = np.arange(6, dtype=np.float32).reshape(SHAPE)
    np.testing.assert_array_equal(displacement(Coordinate(4, 0.5), SHAPE), [[0, 0, 0], [0, 0.5, 0]])
    np.testing.assert_array_equal(displacement(Direction(v, -2.0), SHAPE), -2.0 * v)
    np.testing.assert_array_equal(
        displacement(((7, 0.1), (8, -0.3)), SHAPE),
        0.1 * rademacher(7, SHAPE) - 0.3 * rademacher(8, SHAPE),
    )
    np.testing.assert_array_equal(displacement((), SHAPE), np.zeros(SHAPE))
    with pytest.raises(ValueError, match="coordinate index"):
        displacement(Coordinate(6, 0.1), SHAPE)
    with pytest.raises(ValueError, match="direction shape"):
        displacement(Direction(np.zeros(6, np.float32), 1.0), SHAPE)


def test_host_evaluator_takes_every_kind_in_one_call_and_counts() -> None:
    q = Quadratic()
    batches: list[int] = []
    evaluate = HostEvaluator(q.loss, new_batch=lambda: batches.append(1))
    v = np.ones(SHAPE, np.float32)
    points: list[AnyPoint] = [(), ((3, 0.2),), Coordinate(1, -0.5), Direction(v, 0.25)]
    losses = evaluate(X, points)
    offsets: list[Any] = [0.0, 0.2 * rademacher(3, SHAPE), [[0, -0.5, 0], [0, 0, 0]], 0.25 * v]
    assert losses == pytest.approx([q.loss(X + d) for d in offsets], rel=1e-6)
    assert evaluate.evaluations == 4 and len(batches) == 1  # one minibatch per call


# -- accuracy on the quadratic ----------------------------------------------------


def test_central_differences_are_exact_on_a_quadratic() -> None:
    """No third derivative: exact up to float32 rounding (rtol 1e-5), deterministically."""
    q = Quadratic()
    g = estimate(CentralDifferences(0.1), HostEvaluator(q.loss), X, np.random.default_rng(0))
    np.testing.assert_allclose(g, q.gradient(X), rtol=1e-5, atol=1e-5)


def test_central_differences_error_is_second_order_in_h() -> None:
    """L = Σ x⁴/4: g_i = x_i³ and the central difference gives x_i³ + h²·x_i exactly."""

    def quartic(x: np.ndarray) -> float:
        return float(np.sum(np.asarray(x, np.float64) ** 4) / 4)

    errors = []
    for h in (0.2, 0.1, 0.05):
        g = estimate(CentralDifferences(h), HostEvaluator(quartic), X, np.random.default_rng(0))
        np.testing.assert_allclose(g - X.astype(np.float64) ** 3, h**2 * X, atol=2e-5)
        errors.append(float(np.abs(g - X.astype(np.float64) ** 3).max()))
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.02)
    assert errors[1] / errors[2] == pytest.approx(4.0, rel=0.02)


@pytest.mark.parametrize(
    ("estimator", "variance"),
    [
        (SPSAGradient(0.1, resamplings=2), (P - 1) / 2),
        (ForwardGradient(1e-3, directions=1), P + 1),
        (AntitheticES(0.1, pairs=4), (P + 1) / 4),
    ],
    ids=["spsa", "forward", "es"],
)
def test_stochastic_estimates_are_unbiased_with_the_predicted_variance(
    estimator: SPSAGradient | ForwardGradient | AntitheticES, variance: float
) -> None:
    """Over N = 10,000 estimates: the mean is within 3 standard errors of g
    (‖mean − g‖ ≤ 3·√(k/N)·‖g‖, k = E‖ĝ − g‖²/‖g‖²), and the measured
    per-estimate k is within 10 % of the formula in the module docstring."""
    q = Quadratic()
    evaluate = HostEvaluator(q.loss)
    rng = np.random.default_rng(11)
    n = 10_000
    samples = np.stack([estimate(estimator, evaluate, X, rng) for _ in range(n)])
    g = q.gradient(X)
    norm2 = float(np.sum(g**2))
    error = float(np.linalg.norm(samples.mean(axis=0) - g))
    assert error <= 3 * np.sqrt(variance / n * norm2)
    measured = float(np.mean(np.sum((samples - g) ** 2, axis=(1, 2)))) / norm2
    assert measured == pytest.approx(variance, rel=0.1)


# -- evaluation counts ------------------------------------------------------------

ESTIMATORS: list[tuple[str, Callable[[], Estimator], int]] = [
    ("spsa-R3", lambda: SPSAGradient(0.1, resamplings=3), 6),  # 2R
    ("central", lambda: CentralDifferences(0.05), 2 * P),  # 2p
    ("forward-n4", lambda: ForwardGradient(1e-3, directions=4), 5),  # 1 + n: one shared base
    ("es-n3", lambda: AntitheticES(0.1, pairs=3), 6),  # 2n
]


@pytest.mark.parametrize(
    ("make", "per_estimate"), [e[1:] for e in ESTIMATORS], ids=[e[0] for e in ESTIMATORS]
)
def test_exact_evaluation_counts(make: Callable[[], Estimator], per_estimate: int) -> None:
    estimator = make()
    assert estimator.evaluations_per_estimate(SHAPE) == per_estimate
    evaluate = HostEvaluator(Quadratic().loss)
    _, nfev = descend(
        estimator,
        evaluate,
        np.zeros(SHAPE),
        7,
        constant(0.01),
        np.random.default_rng(0),
    )
    assert nfev == evaluate.evaluations == 7 * per_estimate


def test_the_forward_gradient_evaluates_the_base_point_once() -> None:
    points = ForwardGradient(1e-3, directions=3).ask(X, np.random.default_rng(0))
    assert points[0] == () and all(isinstance(p, Direction) for p in points[1:])
    assert len(points) == 4


# -- descent --------------------------------------------------------------------

DESCENT = [
    ("spsa", SPSAGradient(0.1), 0.1, 400),
    ("central", CentralDifferences(0.1), 0.5, 40),
    ("forward", ForwardGradient(1e-3, directions=2), 0.1, 400),
    ("es", AntitheticES(0.1, pairs=2), 0.1, 400),
]


@pytest.mark.parametrize(
    ("estimator", "rate", "steps"), [d[1:] for d in DESCENT], ids=[d[0] for d in DESCENT]
)
def test_descend_converges_on_the_quadratic(estimator: Estimator, rate: float, steps: int) -> None:
    """From 0 to within 1 % of ‖t‖ (noise-free: the estimator's noise shrinks with g)."""
    q = Quadratic()
    x, _ = descend(
        estimator,
        HostEvaluator(q.loss),
        np.zeros(SHAPE),
        steps,
        constant(rate),
        np.random.default_rng(1),
    )
    assert np.linalg.norm(x - q.minimum) < 0.01 * np.linalg.norm(q.minimum)


@pytest.mark.parametrize("estimator", [d[1] for d in DESCENT], ids=[d[0] for d in DESCENT])
def test_same_seed_same_trajectory(estimator: Estimator) -> None:
    def run(seed: int) -> np.ndarray:
        return descend(
            estimator,
            HostEvaluator(Quadratic().loss),
            np.zeros(SHAPE),
            20,
            constant(0.05),
            np.random.default_rng(seed),
        )[0]

    np.testing.assert_array_equal(run(4), run(4))
    if not isinstance(estimator, CentralDifferences):  # the one deterministic estimator
        assert not np.array_equal(run(4), run(5))


def test_spsa_gradient_in_descend_is_the_spsa_optimizer() -> None:
    """Same rng, constant gains, bounds: the trajectories agree bit for bit."""
    q = Quadratic()

    def pair(x: np.ndarray, seed: int, c: float) -> tuple[float, float]:
        d = rademacher(seed, x.shape)
        return q.loss(x + c * d), q.loss(x - c * d)

    reference = minimize_spsa(
        pair,
        np.zeros(SHAPE),
        steps=30,
        learning_rate=constant(0.2),
        perturbation=constant(0.15),
        rng=np.random.default_rng(6),
        resamplings=2,
        bounds=(-0.8, 0.8),
    )
    x, nfev = descend(
        SPSAGradient(0.15, resamplings=2),
        HostEvaluator(q.loss),
        np.zeros(SHAPE),
        30,
        constant(0.2),
        np.random.default_rng(6),
        bounds=(-0.8, 0.8),
    )
    np.testing.assert_array_equal(x, reference.x)
    assert nfev == reference.nfev == 120


def test_tell_rejects_mismatched_points_and_losses() -> None:
    estimator = AntitheticES(0.1)
    points = estimator.ask(X, np.random.default_rng(0))
    with pytest.raises(ValueError, match="losses"):
        estimator.tell(X, points, [1.0])
    with pytest.raises(ValueError, match="pair"):
        estimator.tell(X, (points[0], points[0]), [1.0, 0.0])
    with pytest.raises(ValueError, match="expected >= 1"):
        SPSAGradient(0.1, resamplings=0)
    with pytest.raises(ValueError, match="expected > 0"):
        CentralDifferences(0.0)


# -- on the board (ideal emulator) ---------------------------------------------------


def test_spsa_gradient_drives_the_on_board_evaluator() -> None:
    """Rademacher points go to the board's Perturb RPC unchanged: 2 forwards per estimate."""
    data = load_dataset("digits")
    with open_board("emu://?preset=ideal&seed=0") as board:
        layer = AnalogLinear(board, 0, data.features, data.classes)
        evaluate = OnBoardEvaluator(layer, data.x_train, data.y_train, 64, np.random.default_rng(0))
        w, nfev = descend(
            SPSAGradient(0.1),
            evaluate,
            np.zeros(layer.shape),
            3,
            constant(0.05),
            np.random.default_rng(1),
        )
    assert nfev == 6 == layer.ledger.loss_evaluations == layer.mvm_calls
    assert np.abs(w).max() > 0


def test_host_held_central_differences_match_the_exact_gradient_on_the_board() -> None:
    """2p = 54 coordinate points from one analog pass; the central differences of the
    board's loss equal the exact softmax gradient [x, 1]ᵀ(softmax − onehot)/B."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    with open_board("emu://?preset=ideal&seed=0") as board:
        layer = AnalogLinear(board, 0, 8, 3)
        w = rng.uniform(-0.5, 0.5, layer.shape).astype(np.float32)
        # Whole data set as the batch: every call sees the same rows.
        evaluate = HostHeldAnyEvaluator(layer, x, y, len(x), np.random.default_rng(0))
        g = estimate(CentralDifferences(0.01), evaluate, w, rng)
        assert layer.mvm_calls == 1 and layer.ledger.loss_evaluations == 54
        # The other kinds agree with the parent evaluator and with host arithmetic.
        v = rng.normal(size=layer.shape).astype(np.float32)
        parent = HostHeldEvaluator(layer, x, y, len(x), np.random.default_rng(0))
        seeds = [((5, 0.2),), ((5, -0.2),), ()]
        np.testing.assert_allclose(evaluate(w, seeds), parent(w, seeds), rtol=1e-5)
        h = np.hstack([np.clip(x, -layer.input_clip, layer.input_clip), np.ones((40, 1))])
        (loss,) = evaluate(w, [Direction(v, 0.3)])
        assert loss == pytest.approx(cross_entropy(h @ (w + 0.3 * v), y), rel=1e-4)
    p = np.exp(h @ w)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(40), y] -= 1.0
    np.testing.assert_allclose(g, h.T @ p / 40, atol=2e-3)


# -- feedback alignment ------------------------------------------------------------


def _rows_with_bias(x: np.ndarray, clip: float) -> np.ndarray:
    return np.hstack([np.clip(x, -clip, clip), np.ones((len(x), 1), np.float32)])


def test_feedback_alignment_hidden_update_uses_b_not_w2_transposed() -> None:
    rng = np.random.default_rng(2)
    with open_board("emu://?preset=ideal&seed=0") as board:
        l1, l2 = AnalogLinear(board, 0, 8, 6), AnalogLinear(board, 1, 6, 3)
        w1 = rng.uniform(-0.5, 0.5, l1.shape).astype(np.float32)
        w2 = rng.uniform(-0.5, 0.5, l2.shape).astype(np.float32)
        (b,) = random_feedback([l1, l2], rng)
        net = FeedbackAlignmentNetwork([l1, l2], [w1, w2], [b], trainable=2)
        x = rng.normal(size=(4, 8)).astype(np.float32)
        y = np.array([0, 2, 1, 2])
        net.step(x, y, learning_rate=0.1)
        assert l2.mvm_calls == 1  # the forward pass only: no TransposeMVM
    h0 = _rows_with_bias(x, l1.input_clip)
    z1 = h0 @ w1
    h1 = _rows_with_bias(np.maximum(z1, 0), l2.input_clip)
    p = np.exp(h1 @ w2)
    p /= p.sum(1, keepdims=True)
    p[np.arange(4), y] -= 1
    d2 = p / 4
    through_b = w1 - 0.1 * h0.T @ ((d2 @ b) * (z1 > 0))
    through_w2t = w1 - 0.1 * h0.T @ ((d2 @ w2[:-1].T) * (z1 > 0))
    np.testing.assert_allclose(net.weights[1], w2 - 0.1 * h1.T @ d2, atol=2e-4)
    np.testing.assert_allclose(net.weights[0], through_b, atol=2e-4)
    assert np.abs(net.weights[0] - through_w2t).max() > 100 * 2e-4


def test_feedback_through_w2_transposed_is_backprop() -> None:
    """B = W2ᵀ (bias row dropped) reproduces the hybrid network's TransposeMVM step."""
    rng = np.random.default_rng(4)
    w1 = rng.uniform(-0.5, 0.5, (9, 6)).astype(np.float32)
    w2 = rng.uniform(-0.5, 0.5, (7, 3)).astype(np.float32)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    y = np.array([1, 0, 2, 2, 1])
    after = []
    for feedback in (None, [w2[:-1].T]):
        with open_board("emu://?preset=ideal&seed=0") as board:
            layers = [AnalogLinear(board, 0, 8, 6), AnalogLinear(board, 1, 6, 3)]
            net = (
                HybridNetwork(layers, [w1, w2], trainable=2)
                if feedback is None
                else FeedbackAlignmentNetwork(layers, [w1, w2], feedback, trainable=2)
            )
            net.step(x, y, learning_rate=0.2)
            after.append(net.weights)
    for backprop, aligned in zip(*after, strict=True):
        np.testing.assert_allclose(aligned, backprop, atol=2e-4)


def test_feedback_alignment_trains_a_two_layer_net_on_the_ideal_board() -> None:
    """Digits 64-32-10, both layers trained through a fixed random B: the loss falls
    from ln 10 to under a third of it in 4 epochs, the hidden layer learns, and W2
    comes to align with Bᵀ (cosine ≈ 0.54 here; W2 starts at 0), the mechanism
    Lillicrap et al. describe."""
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    with open_board("emu://?preset=ideal&seed=0") as board:
        l1 = AnalogLinear(board, 0, data.features, 32, weight_limit=2.0)
        l2 = AnalogLinear(board, 1, 32, data.classes, weight_limit=2.0, input_clip=6.0)
        w1 = rng.normal(0, 1 / np.sqrt(data.features), l1.shape).astype(np.float32)
        feedback = random_feedback([l1, l2], rng)
        net = FeedbackAlignmentNetwork(
            [l1, l2], [w1, np.zeros(l2.shape, np.float32)], feedback, trainable=2
        )
        losses = []
        for _ in range(4):
            order = rng.permutation(len(data.x_train))
            for index in np.array_split(order, len(order) // 32):
                losses.append(net.step(data.x_train[index], data.y_train[index], 0.1))
        accuracy = float(np.mean(net.predict(data.x_test).argmax(axis=1) == data.y_test))
    epoch = len(losses) // 4
    assert losses[0] == pytest.approx(np.log(10), rel=1e-3)  # W2 = 0: uniform softmax
    assert np.mean(losses[-epoch:]) < np.log(10) / 3
    assert accuracy > 0.85
    assert np.abs(net.weights[0] - w1).max() > 0.05
    np.testing.assert_array_equal(net.feedback[0], feedback[0])  # B never changes
    w2 = net.weights[1][:-1]
    cosine = np.sum(w2.T * feedback[0]) / (np.linalg.norm(w2) * np.linalg.norm(feedback[0]))
    assert cosine > 0.3
