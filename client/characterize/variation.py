"""Conductance window, stuck cells (maps per tile) and device-to-device gain spread.

Stuck cells: every tile is programmed to g_min and read, then to g_max and read
(each read the mean of ``reads``). A cell reading above the window's midpoint
when programmed to g_min is stuck at g_max; one reading below it when programmed
to g_max is stuck at g_min. Healthy cells sit many read-noise σ away from the
midpoint, so the expected number of healthy cells marked stuck is the Gaussian
tail beyond that margin, reported with the maps. Fractions: count / cells,
binomial standard error √(f(1−f)/n).

Gain maps (when asked for: a 256 × 256 tile's map is 175 kB of profile): every
tile programmed to g_max is read ``gain_reads`` times, moved to
the window's midpoint, programmed to g_max again and read as often. A healthy
cell's mean over both, over the tile's mean, is its gain m with an error of
variance σ_m² = var(first − second)/4 (read noise and the two programmings' own
residuals, pooled over the tile's healthy cells). With the gain spread s measured
below as the prior, each cell's estimate is shrunk towards 1 by w = s²/(s² + σ_m²):
ĝ = 1 + w·(m − 1), whose error has std √(w)·σ_m — a map is never a worse guess
than the spread alone. What both programmings share is not in σ_m: a cell's own
write-verify residual at g_max (on a board with a large pulse-gain spread the
maps err by up to twice what is reported) and the tile mean's own error (s/√cells).
Stuck cells get 1 (their stuck map decides what they conduct).

Gain spread s (a cell conducts G·(1 + s·ξ) for the G the verify loop left): the
block is programmed to A = g_min + 0.75·(g_max − g_min) and read, moved to a
lower level, programmed to A again and read. Across healthy cells the two
averaged reads share only the static gain, so their covariance is A²·s² (the
programming residuals of the two writes and the read noise are independent);
s = √cov / A, SE from the covariance's standard error √((v₁v₂ + cov²)/(n−1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.blocks import program_block, read_repeated
from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate
from sidra.characterize.statistics import upper_tail
from sidra.drivers import Region

__all__ = [
    "GainFinding",
    "GainMaps",
    "StuckFinding",
    "cell_gain_maps",
    "measure_gain_spread",
    "measure_stuck_cells",
]

Mask = npt.NDArray[np.bool_]
Reads = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class StuckFinding:
    at_min: tuple[Mask, ...]
    """Per tile, cells stuck at g_min."""
    at_max: tuple[Mask, ...]
    """Per tile, cells stuck at g_max."""
    min_fraction: Estimate
    max_fraction: Estimate
    g_min_read: Estimate
    g_max_read: Estimate
    expected_false_marks: float
    """Healthy cells expected to be marked stuck, from the margin of the healthy reads."""
    budget: Budget
    at_g_max: tuple[tuple[Reads, Reads], ...] = ()
    """Per tile, the mean reads of two programmings to g_max (µS): the gain maps'."""

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.min_fraction, self.max_fraction, self.g_min_read, self.g_max_read)

    def stuck(self, tile: int) -> Mask:
        return self.at_min[tile] | self.at_max[tile]


def measure_stuck_cells(board: MeteredBoard, reads: int = 2, gain_reads: int = 0) -> StuckFinding:
    """Stuck-at-min and stuck-at-max maps of every tile and, when ``gain_reads``, the reads
    at g_max the gain maps take (module docstring). Leaves every tile programmed to g_max."""
    info = board.info
    shape = (info.rows, info.cols)
    whole = Region(0, 0, info.rows, info.cols)
    mid = 0.5 * (info.g_min_us + info.g_max_us)
    at_min, at_max, low_reads, high_reads = [], [], [], []
    at_g_max = []
    with board.spend() as spent:
        for tile in range(info.tile_count):
            board.program(tile, np.full(shape, info.g_min_us, np.float32))
            low = read_repeated(board, tile, whole, reads).mean(axis=0)
            board.program(tile, np.full(shape, info.g_max_us, np.float32))
            if gain_reads:
                first = read_repeated(board, tile, whole, gain_reads).mean(axis=0)
                board.program(tile, np.full(shape, mid, np.float32))
                board.program(tile, np.full(shape, info.g_max_us, np.float32))
                second = read_repeated(board, tile, whole, gain_reads).mean(axis=0)
                at_g_max.append((first, second))
                high = 0.5 * (first + second)
            else:
                high = read_repeated(board, tile, whole, reads).mean(axis=0)
            at_max.append(low > mid)
            at_min.append((high < mid) & ~(low > mid))
            healthy = ~(at_max[-1] | at_min[-1])
            low_reads.append(low[healthy])
            high_reads.append(high[healthy])
    low_all, high_all = np.concatenate(low_reads), np.concatenate(high_reads)
    n = info.tile_count * info.rows * info.cols
    false_marks = 0.0
    for values in (low_all, high_all):
        if len(values) > 1 and values.std() > 0:
            z = abs(mid - values.mean()) / values.std()
            false_marks += len(values) * float(upper_tail(np.array([z]))[0])
    note = f"{n} cells over {info.tile_count} tiles, read at g_min then g_max"

    def fraction(name: str, masks: list[Mask]) -> Estimate:
        f = sum(int(m.sum()) for m in masks) / n
        return Estimate(name, f, float(np.sqrt(max(f * (1 - f), 1.0 / n) / n)), "", note)

    def window(name: str, values: npt.NDArray[np.float64], declared: float) -> Estimate:
        se = float(values.std() / np.sqrt(len(values))) if len(values) else 0.0
        text = f"mean read of healthy cells programmed there (declared {declared:g} µS)"
        return Estimate(name, float(values.mean()), se, "µS", text)

    return StuckFinding(
        tuple(at_min),
        tuple(at_max),
        fraction("variation.stuck_at_min_fraction", at_min),
        fraction("variation.stuck_at_max_fraction", at_max),
        window("conductance.g_min_us", low_all, info.g_min_us),
        window("conductance.g_max_us", high_all, info.g_max_us),
        false_marks,
        spent[0],
        tuple(at_g_max),
    )


@dataclass(frozen=True, slots=True)
class GainMaps:
    gains: tuple[npt.NDArray[np.float32], ...]
    """Per tile, each cell's estimated gain (1 on stuck cells)."""
    error: Estimate
    """Expected std of a healthy cell's estimate against its true gain."""


def cell_gain_maps(stuck: StuckFinding, gain_spread: float) -> GainMaps:
    """Each tile's gains from the reads at g_max, shrunk by the prior ``gain_spread``
    (module docstring)."""
    maps, noise = [], []
    for tile, (first, second) in enumerate(stuck.at_g_max):
        healthy = ~stuck.stuck(tile)
        level = float(0.5 * (first + second)[healthy].mean())
        m = 0.5 * (first + second) / level
        noise.append(float(np.var((first - second)[healthy] / level)) / 4.0)
        maps.append((m, healthy))
    var_m = float(np.mean(noise)) if noise else 0.0
    prior = gain_spread**2
    w = prior / (prior + var_m) if prior + var_m > 0.0 else 0.0
    gains = tuple(
        np.where(healthy, 1.0 + w * (m - 1.0), 1.0).astype(np.float32) for m, healthy in maps
    )
    error = float(np.sqrt(w * var_m)) if w > 0.0 else gain_spread
    note = (
        f"expected error of each healthy cell's gain: its reads at g_max err by "
        f"{np.sqrt(var_m):.2%} against a spread of {gain_spread:.2%}, shrunk by {w:.2f}"
    )
    # σ_m is pooled over every healthy cell of every tile: its relative standard error
    # is 1/√(2n), and the shrunk error's follows it.
    cells = sum(int(healthy.sum()) for _, healthy in maps)
    se = error / np.sqrt(2.0 * cells) if cells else 0.0
    return GainMaps(gains, Estimate("variation.gain_maps", error, float(se), "", note))


@dataclass(frozen=True, slots=True)
class GainFinding:
    gain_spread: Estimate
    budget: Budget

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.gain_spread,)


def measure_gain_spread(
    board: MeteredBoard, tile: int, block: Region, stuck: Mask, reads: int = 8
) -> GainFinding:
    """Gain spread from two independent programmings of one level (module docstring)."""
    info = board.info
    span = info.g_max_us - info.g_min_us
    level = info.g_min_us + 0.75 * span
    with board.spend() as spent:
        program_block(board, tile, block, level)
        first = read_repeated(board, tile, block, reads).mean(axis=0)
        program_block(board, tile, block, info.g_min_us + 0.25 * span)
        program_block(board, tile, block, level)
        second = read_repeated(board, tile, block, reads).mean(axis=0)
    healthy = ~stuck[block.slices]
    a, b = first[healthy], second[healthy]
    n = len(a)
    cov = float(np.cov(a, b)[0, 1])
    se_cov = float(np.sqrt((a.var() * b.var() + cov**2) / (n - 1)))
    s = float(np.sqrt(max(cov, 0.0))) / level
    se = se_cov / (2 * level**2 * s) if s > 0 else float(np.sqrt(se_cov)) / level
    note = f"covariance of two programmings to {level:.3g} µS over {n} cells, {reads} reads each"
    return GainFinding(Estimate("variation.gain_spread", s, se, "", note), spent[0])
