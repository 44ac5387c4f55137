"""Conductance window, stuck cells (maps per tile) and device-to-device gain spread.

Stuck cells: every tile is programmed to g_min and read, then to g_max and read
(each read the mean of ``reads``). A cell reading above the window's midpoint
when programmed to g_min is stuck at g_max; one reading below it when programmed
to g_max is stuck at g_min. Healthy cells sit many read-noise σ away from the
midpoint, so the expected number of healthy cells marked stuck is the Gaussian
tail beyond that margin, reported with the maps. Fractions: count / cells,
binomial standard error √(f(1−f)/n).

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

__all__ = ["GainFinding", "StuckFinding", "measure_gain_spread", "measure_stuck_cells"]

Mask = npt.NDArray[np.bool_]


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

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.min_fraction, self.max_fraction, self.g_min_read, self.g_max_read)

    def stuck(self, tile: int) -> Mask:
        return self.at_min[tile] | self.at_max[tile]


def measure_stuck_cells(board: MeteredBoard, reads: int = 2) -> StuckFinding:
    """Stuck-at-min and stuck-at-max maps of every tile (module docstring). Leaves every
    tile programmed to g_max."""
    info = board.info
    shape = (info.rows, info.cols)
    whole = Region(0, 0, info.rows, info.cols)
    mid = 0.5 * (info.g_min_us + info.g_max_us)
    at_min, at_max, low_reads, high_reads = [], [], [], []
    with board.spend() as spent:
        for tile in range(info.tile_count):
            board.program(tile, np.full(shape, info.g_min_us, np.float32))
            low = read_repeated(board, tile, whole, reads).mean(axis=0)
            board.program(tile, np.full(shape, info.g_max_us, np.float32))
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
    )


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
