"""Perturbation write noise: the error a single-pulse Perturb APPLY leaves on a cell.

The block is programmed mid-window. For each of ``seeds`` perturbations of
amplitude c (2 % of the window, far from clipping) the block is read ``reads``
times; after a Restore (which returns every cell to its programmed value) it is
read again. Per healthy cell, d = mean(perturbed) − mean(restored) − c·Δ, with Δ
the Rademacher signs of the seed, has variance w² + 2·σ_read²/reads + c²·s²
(s the gain spread); σ_read² is the cells' own variance over their reads, so
w² = var(d) − 2·σ_read²/reads − c²·s², SE from the variance of a sample variance.
The read noise must be averaged down to a few w per cell: with σ_read/w = 20
(sidra-y1) 64 reads over 8 perturbations of 1024 cells give about 10 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.blocks import program_block, read_repeated
from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate
from sidra.drivers import Region, rademacher

__all__ = ["PerturbationFinding", "measure_perturbation_noise"]


@dataclass(frozen=True, slots=True)
class PerturbationFinding:
    write_noise_us: Estimate
    budget: Budget

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.write_noise_us,)


def measure_perturbation_noise(
    board: MeteredBoard,
    tile: int,
    block: Region,
    stuck: npt.NDArray[np.bool_],
    gain_spread: float = 0.0,
    seeds: int = 8,
    reads: int = 64,
) -> PerturbationFinding:
    """Perturbation write noise w (µS), module docstring."""
    info = board.info
    span = info.g_max_us - info.g_min_us
    amplitude = 0.02 * span
    healthy = ~stuck[block.slices]
    residuals, read_vars = [], []
    with board.spend() as spent:
        program_block(board, tile, block, info.g_min_us + 0.5 * span)
        restored = read_repeated(board, tile, block, reads)
        for seed in range(1, seeds + 1):  # Restore is exact: one restored read serves all
            board.perturb(tile, seed, amplitude, 1, block)
            perturbed = read_repeated(board, tile, block, reads)
            board.restore(tile, block)
            delta = rademacher(seed, block.shape).astype(np.float64)
            d = perturbed.mean(axis=0) - restored.mean(axis=0) - amplitude * delta
            residuals.append(d[healthy])
            both = (perturbed.var(axis=0, ddof=1) + restored.var(axis=0, ddof=1))[healthy]
            read_vars.append(both / reads)
    d_all, noise = np.concatenate(residuals), np.concatenate(read_vars)
    var = float(d_all.var(ddof=1) - noise.mean()) - (amplitude * gain_spread) ** 2
    w = float(np.sqrt(max(var, 0.0)))
    se_var = float(d_all.var() * np.sqrt(2.0 / (len(d_all) - 1)))
    se = se_var / (2 * w) if w > 0 else float(np.sqrt(se_var))
    note = (
        f"{seeds} perturbations of {amplitude:.3g} µS over {len(d_all) // seeds} cells, "
        f"{reads} reads each"
    )
    return PerturbationFinding(Estimate("perturbation.write_noise_us", w, se, "µS", note), spent[0])
