"""Central-difference helpers against the design chapter's worked example."""

from __future__ import annotations

import numpy as np
import pytest

from sidra.training.gradients import numerical_gradient, numerical_jacobian


def f(v: np.ndarray) -> float:
    x, y, z = v
    return float(x**2 * y + y * z + z**3)


def test_worked_example_value_and_gradient() -> None:
    """f = x²y + yz + z³: f(1,2,3) = 35 and ∇f(1,2,3) = (4, 4, 29)."""
    point = np.array([1.0, 2.0, 3.0])
    assert f(point) == 35.0
    np.testing.assert_allclose(numerical_gradient(f, point), [4.0, 4.0, 29.0], atol=1e-6)


def test_gradient_of_linear_map_is_exact_jacobian() -> None:
    """The Jacobian of x -> W x is W itself."""
    w = np.random.default_rng(3).normal(size=(4, 6))
    jac = numerical_jacobian(lambda x: w @ x, np.zeros(6))
    np.testing.assert_allclose(jac, w, atol=1e-8)


def test_forward_difference_would_fail_where_central_passes() -> None:
    """Central differences are O(h²): at h = 1e-2 the z-component is still within 1e-3."""
    grad = numerical_gradient(f, np.array([1.0, 2.0, 3.0]), h=1e-2)
    assert abs(grad[2] - 29.0) < 1e-3


@pytest.mark.parametrize("h", [0.0, -1.0])
def test_step_must_be_positive(h: float) -> None:
    with pytest.raises(ValueError, match="h: got"):
        numerical_gradient(f, [1.0, 2.0, 3.0], h=h)


@pytest.mark.parametrize("x", [[], [[1.0, 2.0]]])
def test_the_point_is_a_vector_of_one_value_or_more(x: list[object]) -> None:
    """An empty point gave numpy's "need at least one array to stack"."""
    with pytest.raises(ValueError, match=r"x: got shape \[.*\], expected a 1-D vector of >= 1"):
        numerical_gradient(f, x)


def test_a_gradient_is_of_a_scalar_function() -> None:
    """A vector-valued f gave its Jacobian's first row as a 2-D "gradient"."""
    with pytest.raises(ValueError, match=r"f: returned shape \[2\], expected a scalar"):
        numerical_gradient(lambda v: v, [1.0, 2.0])
    assert numerical_gradient(lambda v: np.array([v @ v]), [1.0, 2.0]).shape == (2,)
