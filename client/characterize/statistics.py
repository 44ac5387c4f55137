"""Estimators shared by the measurements: Gaussian tails and noise seen through an ADC."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "QuantisedNoise",
    "bin_log_probabilities",
    "erfc",
    "grid_fit",
    "interval_log_probability",
    "quantised_noise_sigma",
    "upper_tail",
]

F64 = npt.NDArray[np.float64]

_SQRT2 = float(np.sqrt(2.0))


def erfc(x: F64) -> F64:
    """Complementary error function with relative error below 1.2·10⁻⁷ everywhere
    (Numerical Recipes' Chebyshev fit ``erfcc``): relative, so far tails stay usable
    in a log-likelihood."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))  # fmt: skip
    tail: F64 = t * np.exp(-z * z + poly)
    return np.where(x >= 0.0, tail, 2.0 - tail)


def upper_tail(x: F64) -> F64:
    """P(Z > x) for a standard normal Z, relatively accurate in the upper tail."""
    return 0.5 * erfc(x / _SQRT2)


def bin_log_probabilities(edges: F64) -> F64:
    """log P(edges[..., w] < Z < edges[..., w + 1]) for sorted ``edges`` (last axis),
    accurate in both tails: one erfc per edge, differences of the smaller tail."""
    tail = upper_tail(np.abs(edges))  # P(Z > |e|)
    above = np.where(edges >= 0.0, tail, 1.0 - tail)  # P(Z > e)
    below = np.where(edges >= 0.0, 1.0 - tail, tail)  # P(Z < e)
    lo_above, hi_above = above[..., :-1], above[..., 1:]
    lo_below, hi_below = below[..., :-1], below[..., 1:]
    upper = lo_above - hi_above
    lower = hi_below - lo_below
    p = np.where(edges[..., :-1] >= 0.0, upper, lower)
    p = np.where((edges[..., :-1] < 0.0) & (edges[..., 1:] > 0.0), 1.0 - hi_above - lo_below, p)
    out: F64 = np.log(np.maximum(p, 1e-300))
    return out


def interval_log_probability(a: F64, b: F64) -> F64:
    """log P(a < Z < b) element-wise (a <= b), accurate in both tails."""
    return bin_log_probabilities(np.stack(np.broadcast_arrays(a, b), axis=-1))[..., 0]


def _golden_max(f: Callable[[F64], F64], lo: F64, hi: F64, iterations: int) -> F64:
    """Element-wise argmax of a concave ``f`` on [lo, hi] (vectors of independent problems)."""
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo.copy(), hi.copy()
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        left = fc > fd  # the maximum lies in [a, d]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c_new = np.where(left, b - ratio * (b - a), d)
        d_new = np.where(left, c, a + ratio * (b - a))
        c, d = c_new, d_new
        fc, fd = f(c), f(d)
    out: F64 = (a + b) / 2.0
    return out


@dataclass(frozen=True, slots=True)
class QuantisedNoise:
    """Gaussian noise std recovered from ADC codes, in LSB."""

    sigma_lsb: float
    se_lsb: float
    """Standard error from the curvature of the profile log-likelihood."""
    groups: int
    """Groups (one repeated output each) that carried information (codes not all equal)."""


def quantised_noise_sigma(codes: npt.NDArray[np.int64], extra_var_lsb2: F64) -> QuantisedNoise:
    """Std σ of Gaussian noise behind rounded outputs, in LSB, with its standard error.

    ``codes`` [groups, repeats]: each group is one output read ``repeats`` times; its
    pre-ADC value is x ~ N(μ_g, σ² + extra_g) with ``extra_var_lsb2`` [groups] a known
    variance (e.g. the conductance-referred part) and its code is rint(x).

    When the codes spread over several LSB (pooled variance − 1/12 ≥ 1 LSB²) the
    sample variance with Sheppard's correction, s² − 1/12, is exact to well under 1 %
    and is used, its SE from the variance of a sample variance. Below, rounding hides
    most of the noise and σ is the maximum of the marginal likelihood: each group's
    mean μ_g is unknown and integrated out over a uniform prior (the offsets of
    distinct outputs against the code grid are spread evenly), so
    L_g(σ) = ∫ Π_k P(code_k − ½ < x < code_k + ½ | μ, s_g) dμ; how many groups
    straddle a code boundary, and how far, carries σ. The SE comes from the curvature
    of log L in log σ. The inputs should make the outputs' means differ by several
    LSB across groups, or the uniform prior does not hold.
    """
    codes = np.asarray(codes, np.int64)
    extra = np.asarray(extra_var_lsb2, np.float64)
    repeats = codes.shape[1]
    sample_var = codes.var(axis=1, ddof=1)
    corrected = float(np.mean(sample_var - extra)) - 1.0 / 12.0
    if corrected >= 1.0:
        sigma = float(np.sqrt(corrected))
        pooled = float(np.mean(sample_var))
        se_var = pooled * float(np.sqrt(2.0 / (codes.size - len(codes))))
        return QuantisedNoise(sigma, se_var / (2.0 * sigma), len(codes))
    base = codes.min(axis=1)
    span = codes.max(axis=1) - base
    flat = span == 0
    rel = (codes - base[:, None])[~flat]
    width = int(span.max()) + 1
    counts = np.stack([np.count_nonzero(rel == w, axis=1) for w in range(width)], axis=1)
    counts = counts.astype(np.float64)
    edges = np.arange(width + 1, dtype=np.float64) - 0.5  # code w spans w ± ½
    steps = 120
    unit = np.linspace(0.0, 1.0, steps)

    def marginal(cnt: F64, spans: F64, sg: F64, edge: F64) -> float:
        """Σ_g log ∫ Π_k P(code_k | μ, s_g) dμ over μ within 4 s_g of the codes."""
        pad = 0.5 + 4.0 * sg
        mu = -pad[:, None] + unit[None, :] * (spans + 2 * pad)[:, None]  # [groups, steps]
        z = (edge[None, None, :] - mu[:, :, None]) / sg[:, None, None]
        ll = (cnt[:, None, :] * bin_log_probabilities(z)).sum(axis=2)
        top = ll.max(axis=1)
        dmu = (spans + 2 * pad) / (steps - 1)
        return float((top + np.log(np.exp(ll - top[:, None]).sum(axis=1) * dmu)).sum())

    flat_counts = np.full((int(flat.sum()), 1), float(repeats))
    flat_edges = np.array([-0.5, 0.5])
    spans = span[~flat].astype(np.float64)

    def loglik(log_sigma: float) -> float:
        sg = np.sqrt(np.exp(2.0 * log_sigma) + extra)
        total = 0.0
        if flat.any():  # one code for every repeat: two edges suffice
            total += marginal(flat_counts, np.zeros(len(flat_counts)), sg[flat], flat_edges)
        if len(rel):
            total += marginal(counts, spans, sg[~flat], edges)
        return total

    grid = np.log(np.geomspace(1e-3, 4.0, 13))
    values = [loglik(float(x)) for x in grid]
    k = int(np.argmax(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    best_log = float(
        _golden_max(lambda x: np.array([loglik(float(x[0]))]), np.array([lo]), np.array([hi]), 12)[
            0
        ]
    )
    best = float(np.exp(best_log))
    h = 0.05
    curvature = (loglik(best_log + h) - 2 * loglik(best_log) + loglik(best_log - h)) / h**2
    # Curvature in log σ: SE(σ) = σ · SE(log σ).
    se = best / float(np.sqrt(-curvature)) if curvature < 0 else float("inf")
    return QuantisedNoise(best, se, len(rel))


def grid_fit(
    loglik: Callable[..., F64], axes: tuple[F64, ...], refine: int = 2
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Maximum of ``loglik`` (broadcasting over one array per parameter) on the grid of
    ``axes``, refined ``refine`` times on a 5× finer grid around the best point. Returns
    the best values and, per parameter, a standard error from the curvature of its
    profile log-likelihood (the others maximised) — the half-width where it falls by ½."""
    axes = tuple(np.asarray(a, np.float64) for a in axes)
    if refine < 0:
        raise ValueError(f"refine: got {refine}, expected >= 0")
    # Bound before the loop, which runs at least once and binds them again.
    best: tuple[float, ...] = ()
    final_values, final_axes = np.zeros(()), axes
    for _ in range(refine + 1):
        mesh = np.meshgrid(*axes, indexing="ij")
        values = loglik(*mesh)
        index = np.unravel_index(int(np.argmax(values)), values.shape)
        best = tuple(float(a[i]) for a, i in zip(axes, index, strict=True))
        finer = []
        for a, at in zip(axes, index, strict=True):
            i = int(at)
            if len(a) < 2:
                finer.append(a)
                continue
            lo, hi = float(a[max(i - 1, 0)]), float(a[min(i + 1, len(a) - 1)])
            finer.append(np.linspace(lo, hi, 11))
        final_values, final_axes = values, axes
        axes = tuple(finer)
    errors = []
    for k, a in enumerate(final_axes):
        others = tuple(j for j in range(len(final_axes)) if j != k)
        profile = final_values.max(axis=others) if others else final_values
        peak = float(profile.max())
        within = a[profile >= peak - 0.5]
        half = float(within.max() - within.min()) / 2 if len(within) > 1 else 0.0
        step = float(a[1] - a[0]) if len(a) > 1 else 0.0
        errors.append(max(half, step / 2))
    return best, tuple(errors)
