"""Conductance drift G(t) = G₀·((t + t0)/t0)^(−ν) on the board's virtual clock.

Needs AdvanceClock: a board without a virtual clock is refused (drift not
measured, said so) rather than waited for. The block is programmed to two
levels (left and right half of its columns, 30 % and 85 % of the window) and
read ``reads`` times; the clock is then advanced to ages t_k (1 s … 65 536 s,
×4 each, the total wait stated in the budget) and the block read again at each.

Per healthy cell r_k = ln(mean read at t_k / mean read at 0) = −ν·ln((t_k + t0)/t0)
(static gain cancels in the ratio). The mean of r_k over cells against t_k gives
ν̄ and t0 by least squares (t0 on a log grid, ν̄ in closed form for each). The
spread: per cell ν_i = −r_K / ln((t_K + t0)/t0) at the longest wait, whose
variance is σ_ν² plus read noise (the cells' variance over their reads
propagated through the logarithm); σ_ν² = var(ν_i) − mean(noise). SEs: of a
mean, and of a sample variance. The two levels are reported apart: a clear
difference (more than 4 SE and 20 %) means state-dependent drift, which this
estimator reports as the mean over both levels with the difference stated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.blocks import program_block, read_repeated
from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate, not_measured
from sidra.drivers import Region, SidraError

__all__ = ["DriftFinding", "measure_drift"]

F64 = npt.NDArray[np.float64]
AGES_S = tuple(float(4**k) for k in range(9))
"""Ages read at: 1 s to 65 536 s."""


@dataclass(frozen=True, slots=True)
class DriftFinding:
    nu_mean: Estimate
    nu_std: Estimate
    t0_s: Estimate
    budget: Budget

    @property
    def measured(self) -> bool:
        return self.nu_mean.measured

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.nu_mean, self.nu_std, self.t0_s)


def _refused(why: str, budget: Budget) -> DriftFinding:
    return DriftFinding(
        not_measured("drift.nu_mean", 0.0, "", why),
        not_measured("drift.nu_std", 0.0, "", why),
        not_measured("drift.t0_s", 20.0, "s", why),
        budget,
    )


def measure_drift(
    board: MeteredBoard, tile: int, block: Region, stuck: npt.NDArray[np.bool_], reads: int = 8
) -> DriftFinding:
    """Drift exponent mean and spread and the time scale t0 (module docstring)."""
    info = board.info
    span = info.g_max_us - info.g_min_us
    start, clock_error = 0.0, ""
    with board.spend() as spent:
        try:
            start = board.advance_clock(0.0)
        except SidraError as exc:
            clock_error = str(exc)
    if clock_error:
        return _refused(f"the board has no virtual clock ({clock_error})", spent[0])
    levels = np.where(np.arange(block.cols) < block.cols // 2, 0.3, 0.85)
    healthy = ~stuck[block.slices]
    with board.spend() as spent:
        program_block(
            board, tile, block, np.broadcast_to(info.g_min_us + span * levels, block.shape)
        )
        first = read_repeated(board, tile, block, reads)
        later = []
        now = start
        for age in AGES_S:
            now = board.advance_clock(start + age - now)
            later.append(read_repeated(board, tile, block, reads))
    g0 = first.mean(axis=0)[healthy]
    logs = np.stack([np.log(s.mean(axis=0)[healthy] / g0) for s in later])  # [ages, cells]
    ages = np.asarray(AGES_S)
    mean_log = logs.mean(axis=1)
    best: tuple[float, float, float] = (np.inf, 0.0, 20.0)
    for t0 in np.geomspace(1e-2, 1e4, 241):
        x = np.log((ages + t0) / t0)
        nu = -float(np.dot(x, mean_log) / np.dot(x, x))
        sse = float(np.sum((mean_log + nu * x) ** 2))
        if sse < best[0]:
            best = (sse, nu, float(t0))
    _, nu_mean, t0 = best
    x_last = float(np.log((ages[-1] + t0) / t0))
    nu_cells = -logs[-1] / x_last
    # Read noise of each ratio through the logarithm: var(ln a − ln b) ≈ σa²/a² + σb²/b².
    var_first = first.var(axis=0, ddof=1)[healthy] / reads / g0**2
    last_mean = later[-1].mean(axis=0)[healthy]
    var_last = later[-1].var(axis=0, ddof=1)[healthy] / reads / last_mean**2
    noise = float(np.mean(var_first + var_last)) / x_last**2
    var_nu = float(nu_cells.var(ddof=1)) - noise
    nu_std = float(np.sqrt(max(var_nu, 0.0)))
    n = len(nu_cells)
    se_mean = float(nu_cells.std(ddof=1) / np.sqrt(n))
    se_var = float(nu_cells.var(ddof=1) * np.sqrt(2.0 / (n - 1)))
    se_std = se_var / (2 * nu_std) if nu_std > 0 else float(np.sqrt(se_var))
    half = healthy[:, : block.cols // 2].sum()
    by_level = [float(nu_cells[:half].mean()), float(nu_cells[half:].mean())]
    waited = f"virtual clock advanced {AGES_S[-1]:g} s in {len(AGES_S)} steps"
    note = f"{waited}; ν̄ at 30 % / 85 % of the window: {by_level[0]:.4g} / {by_level[1]:.4g}"
    if abs(by_level[0] - by_level[1]) > max(4 * se_mean * np.sqrt(2), 0.2 * abs(nu_mean)):
        note += " (state-dependent: the mean is kept)"
    return DriftFinding(
        Estimate("drift.nu_mean", nu_mean, se_mean, "", note),
        Estimate("drift.nu_std", nu_std, se_std, "", note),
        Estimate("drift.t0_s", t0, 0.0, "s", f"{waited}; least squares over a log grid of t0"),
        spent[0],
    )
