"""Write-verify programming: tolerance, pulse budget, pulse gain, its spread and noise.

The verify loop pulses a cell while |G − target| > tolerance, each pulse moving it
by (target − G)·p·(1 + s·ξ) + σ_n·ζ. Per-cell write counters (ReadWriteCounts)
around a Program give each cell's pulse count.

Tolerance: the block is programmed to a base B (residual e per cell; programmed
again up to SETTLE_PROGRAMS times, so that cells whose relaxation took them past
the tolerance are re-pulsed and e sits within about ±tol), then to
B + δ with δ differing from cell to cell. A cell is pulsed iff |e − δ| > tol. With
e ~ N(μ_e, σ_e²) (the residual, relaxation included),
P(pulsed | δ) = 1 − [Φ((δ + tol − μ_e)/σ_e) − Φ((δ − tol − μ_e)/σ_e)];
(tol, μ_e, σ_e) maximise the binomial likelihood over δ bins.

Pulses: from B the block is programmed to B + D with D beyond the tolerance, so
every healthy cell takes a first pulse, after which its error is Gaussian:
N((D − μ_e)(1 − p), ((D − μ_e)² + σ_e²)·(p·s)² + σ_n² + (1 − p)²σ_e²). It stops after that one pulse
iff the error is within ±tol, so P(one pulse | D) = Φ((tol − m)/v) − Φ((−tol − m)/v);
D starts at the tolerance, so some cells take no pulse (probability from the
tolerance model); (p, s, σ_n) maximise the multinomial likelihood of none / one /
more pulses over D bins (the variance grows with D through s only, which
separates s from σ_n). p and 2 − p give the same statistics (the error's sign
is not seen): the undershooting p ≤ 1 is reported. Standard errors
from the profile likelihood (:func:`grid_fit`).

Pulse budget: a stuck cell never reaches a target away from its stuck value, so
it takes every pulse a Program allows: max_iterations is the stuck cells' pulse
count. With no stuck cell in the block it is only bounded below by the most
pulses any cell took.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.blocks import program_block, write_counts
from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate
from sidra.characterize.statistics import grid_fit, interval_log_probability
from sidra.drivers import Region

__all__ = ["ProgrammingFinding", "measure_programming"]

F64 = npt.NDArray[np.float64]
BINS = 24
SETTLE_PROGRAMS = 6
"""Most programmings of the base per round (cells relaxing beyond tolerance are re-pulsed)."""


@dataclass(frozen=True, slots=True)
class ProgrammingFinding:
    tolerance_us: Estimate
    max_iterations: Estimate
    pulse_gain: Estimate
    pulse_gain_spread: Estimate
    pulse_noise_us: Estimate
    residual_sigma_us: float
    """σ_e of the residual a Program leaves (relaxation included), µS."""
    budget: Budget

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (
            self.tolerance_us,
            self.max_iterations,
            self.pulse_gain,
            self.pulse_gain_spread,
            self.pulse_noise_us,
        )


def _pulses(
    board: MeteredBoard, tile: int, block: Region, base: float, offsets: F64, settled: float
) -> npt.NDArray[np.int64]:
    """Programs ``base`` (again while more than ``settled`` cells are off target), then
    ``base + offsets``; returns the pulses each cell took for the last."""
    info = board.info
    for _ in range(SETTLE_PROGRAMS):
        # Programming again re-pulses only the cells whose residual (relaxation included)
        # the verify sees beyond tolerance: after a few, residuals sit within ±tol.
        report = program_block(board, tile, block, base)
        if report.unconverged_cells <= settled:
            break
    before = write_counts(board, tile, block)
    program_block(board, tile, block, np.clip(base + offsets, info.g_min_us, info.g_max_us))
    return write_counts(board, tile, block) - before


def _binned(x: F64, hit: npt.NDArray[np.bool_]) -> tuple[F64, F64, F64]:
    """Centres, trials and successes of ``hit`` over BINS equal-count bins of ``x``."""
    order = np.argsort(x)
    chunks = np.array_split(order, BINS)
    centre = np.array([x[c].mean() for c in chunks])
    trials = np.array([len(c) for c in chunks], np.float64)
    hits = np.array([hit[c].sum() for c in chunks], np.float64)
    return centre, trials, hits


def _bernoulli(p_in: F64, trials: F64, hits_in: F64) -> F64:
    """Log-likelihood of ``hits_in`` of ``trials`` inside, P(inside) = p_in (last axis: bins)."""
    p = np.clip(p_in, 1e-12, 1 - 1e-12)
    out: F64 = (hits_in * np.log(p) + (trials - hits_in) * np.log1p(-p)).sum(axis=-1)
    return out


def measure_programming(
    board: MeteredBoard,
    tile: int,
    block: Region,
    stuck: npt.NDArray[np.bool_],
    rng: np.random.Generator,
    rounds: int = 4,
) -> ProgrammingFinding:
    """Write-verify parameters (module docstring)."""
    info = board.info
    span = info.g_max_us - info.g_min_us
    base = info.g_min_us + 0.1 * span  # low: PCM and RRAM relax least there
    healthy = ~stuck[block.slices]
    n_cells = block.rows * block.cols
    settled = int((~healthy).sum()) + 0.02 * n_cells  # unconverged cells a settled base has
    stuck_counts: list[npt.NDArray[np.int64]] = []
    with board.spend() as spent:
        # Coarse: the smallest |δ| most cells are pulsed for sets the scale.
        ladder = np.geomspace(1e-4 * span, 0.05 * span, 16)
        coarse = rng.choice(np.concatenate([ladder, -ladder]), n_cells).reshape(block.shape)
        counts = _pulses(board, tile, block, base, coarse, settled)
        pulsed = counts > 0
        stuck_counts.append(counts[~healthy])
        most = int(counts[healthy].max(initial=0))
        # Cells pulsed at the smallest step have residuals beyond the tolerance: the
        # scale is where half of the others are pulsed too.
        fractions = [float(pulsed[healthy & (np.abs(coarse) == st)].mean()) for st in ladder]
        floor = fractions[0]
        scale = float(ladder[-1])
        for step, fraction in zip(ladder, fractions, strict=True):
            if fraction >= floor + 0.5 * (1.0 - floor):
                scale = float(step)
                break
        # Low in the window (PCM and RRAM relax least there), with room for -3·scale.
        base = max(base, info.g_min_us + 3.5 * scale)
        deltas, hits = [], []
        for _ in range(rounds):
            delta = rng.uniform(-3 * scale, 3 * scale, block.shape)
            n = _pulses(board, tile, block, base, delta, settled)
            deltas.append(delta[healthy])
            hits.append(n[healthy] > 0)
            stuck_counts.append(n[~healthy])
            most = max(most, int(n[healthy].max(initial=0)))
        centre, trials, pulsed_hits = _binned(np.concatenate(deltas), np.concatenate(hits))

        def tolerance_ll(tol: F64, mu: F64, sigma: F64) -> F64:
            a = (centre - tol[..., None] - mu[..., None]) / sigma[..., None]
            b = (centre + tol[..., None] - mu[..., None]) / sigma[..., None]
            return _bernoulli(np.exp(interval_log_probability(a, b)), trials, trials - pulsed_hits)

        (tol, mu_e, sigma_e), (se_tol, _, _) = grid_fit(
            tolerance_ll,
            (
                np.linspace(0.0, 2 * scale, 41),
                np.linspace(-scale, scale, 21),
                np.geomspace(0.01 * scale, 3 * scale, 30),
            ),
        )
        exact = floor >= 0.99  # nearly every cell pulsed at the smallest step: no tolerance
        width = tol + sigma_e
        lo = tol + abs(mu_e) + 3 * sigma_e
        d_all, one = [], []
        for _ in range(rounds):
            d = (
                rng.uniform(tol, lo + 8 * width, block.shape)
                if not exact
                else np.full(block.shape, 0.1 * span)
            )
            n = _pulses(board, tile, block, base, d, settled)
            d_all.append(d[healthy])
            one.append(np.minimum(n[healthy], 2))
            stuck_counts.append(n[~healthy])
            most = max(most, int(n[healthy].max(initial=0)))
    d_cat, one_cat = np.concatenate(d_all), np.concatenate(one)
    all_counts = np.concatenate(stuck_counts)
    notes = f"{rounds} rounds over {int(healthy.sum())} healthy cells"
    if exact or bool((one_cat == 1).all()) and tol < 1e-3 * span:
        gain, spread, noise = (1.0, 0.0), (0.0, 0.0), (0.0, 0.0)
        pulse_note = "every cell reached its target in one pulse: exact pulses"
    else:
        centre, trials, none = _binned(d_cat, one_cat == 0)
        _, _, ones = _binned(d_cat, one_cat == 1)
        # No pulse: the cell was already within tolerance of B + D (tolerance model).
        p_none = np.exp(
            interval_log_probability(
                (centre - tol - mu_e) / sigma_e, (centre + tol - mu_e) / sigma_e
            )
        )

        def pulse_ll(p: F64, s: F64, noise_us: F64) -> F64:
            error = centre - mu_e
            m = error * (1 - p[..., None])
            v = np.sqrt(
                (error**2 + sigma_e**2) * (p[..., None] * s[..., None]) ** 2
                + noise_us[..., None] ** 2
                + ((1 - p[..., None]) * sigma_e) ** 2
                + 1e-12
            )
            inside = np.exp(interval_log_probability((-tol - m) / v, (tol - m) / v))
            p_one = np.clip((1 - p_none) * inside, 1e-12, 1.0)
            p_more = np.clip(1 - p_none - p_one, 1e-12, 1.0)
            out: F64 = (
                none * np.log(np.clip(p_none, 1e-12, 1.0))
                + ones * np.log(p_one)
                + (trials - none - ones) * np.log(p_more)
            ).sum(axis=-1)
            return out

        best, errors = grid_fit(
            pulse_ll,
            (
                np.linspace(0.05, 1.0, 39),
                np.linspace(0.0, 0.6, 31),
                np.linspace(0.0, 3 * width, 31),
            ),
        )
        gain, spread, noise = zip(best, errors, strict=True)
        pulse_note = f"{notes}: P(one pulse | D) over D in [{lo:.3g}, {lo + 8 * width:.3g}] µS"
    if len(all_counts) and all_counts.max() > 0:
        iterations = Estimate(
            "programming.max_iterations", float(np.median(all_counts)), 0.0, "pulses",
            f"pulses of {len(all_counts)} stuck-cell programmings (they take every pulse)",
        )  # fmt: skip
    else:
        iterations = Estimate(
            "programming.max_iterations", float(max(most, 1)), 0.0, "pulses",
            "no stuck cell in the block: a lower bound (the most pulses seen)",
            measured=False,
        )  # fmt: skip
    return ProgrammingFinding(
        Estimate(
            "programming.tolerance_us", 0.0 if exact else tol, 0.0 if exact else se_tol, "µS",
            f"{notes}: P(pulsed | δ) for δ within ±{3 * scale:.3g} µS; residual σ_e "
            f"{sigma_e:.3g} µS",
        ),
        iterations,
        Estimate("programming.pulse_gain", gain[0], gain[1], "", pulse_note),
        Estimate("programming.pulse_gain_spread", spread[0], spread[1], "", pulse_note),
        Estimate("programming.pulse_noise_us", noise[0], noise[1], "µS", pulse_note),
        0.0 if exact else sigma_e,
        spent[0],
    )  # fmt: skip
