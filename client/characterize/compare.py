"""Twin quality: the same workload on a board and on its twin, output distributions compared.

Both boards get identical calls. A block of one tile is programmed to a seeded random
matrix W (uniform over the window) and ``inputs`` seeded non-negative input vectors are
each passed ``repeats`` times, forward (MVM) and backward (TransposeMVM): the
**start** phase. Then a programmed-and-perturbed workload runs (``cycles`` × Program
of a fresh random matrix and a PerturbedMVM at two points of 2 % of the window), W is
programmed again and the passes repeated: the **after** phase.

Per output (column of MVM, row of TransposeMVM) and input, the board's and the twin's
mean over the repeats are compared as |m_twin − m_board| / |m_board|, averaged over the
inputs; the spreads as |s_twin − s_board| / max(s_board, s_twin) with s the output's
standard deviation pooled over the inputs (√ of the mean variance): symmetric and at most
1, so an output whose noise the ADC rounds away on one board (s = 0) counts as 100 %.
Each phase and direction reports the mean of these over the outputs and the worst one.

Beside them, what sampling alone gives, the distances a twin identical to the board would
score with these inputs and repeats: per output and input, E|m_twin − m_board| =
√(2/π)·√((s_board² + s_twin²)/repeats) over |m_board|, averaged over the inputs; for the
spreads √(2/(π·n)), n = inputs·(repeats − 1) the pooled degrees of freedom (a sample
std's relative standard error is 1/√(2n) per side). A distance near its sampling figure
is noise; one well above it is what the twin does not know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.blocks import block_of, program_block
from sidra.drivers import Board, BoardInfo, PerturbationPoint, Region

__all__ = ["Comparison", "Distance", "compare", "twin_differences"]

_SHARED = (
    ("tile_count", "tiles", ""), ("rows", "rows", ""), ("cols", "cols", ""),
    ("g_min_us", "g_min_us", " µS"), ("g_max_us", "g_max_us", " µS"),
    ("read_voltage_max_v", "read_voltage_max_v", " V"),
)  # fmt: skip
"""What a twin must share with its board: geometry, conductance window, read range."""


def twin_differences(board: BoardInfo, twin: BoardInfo) -> list[str]:
    """Each of geometry, conductance window and read range in which ``twin`` is not
    ``board``, as ``rows: the twin's 32, the board's 256`` (with its unit); [] when
    none. The window to float32's precision: a profile keeps it as text."""
    found = []
    for attribute, name, unit in _SHARED:
        mine, theirs = getattr(twin, attribute), getattr(board, attribute)
        if not math.isclose(mine, theirs, rel_tol=1e-6):
            found.append(f"{name}: the twin's {mine:g}{unit}, the board's {theirs:g}{unit}")
    return found


F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Distance:
    """Board vs twin for one phase and direction, per output (relative, dimensionless)."""

    phase: str
    """``start`` or ``after`` (the programmed-and-perturbed workload)."""
    direction: str
    """``MVM`` or ``TransposeMVM``."""
    mean_distance: F64
    """Per output: |m_twin − m_board| / |m_board|, averaged over the inputs."""
    spread_distance: F64
    """Per output: |s_twin − s_board| / max(s_board, s_twin), s pooled over the inputs."""
    mean_sampling: F64
    """Per output: the mean distance sampling alone gives (module docstring)."""
    spread_sampling: float
    """The spread distance sampling alone gives (module docstring), every output's."""

    @property
    def mean_of_means(self) -> float:
        return float(self.mean_distance.mean())

    @property
    def mean_of_spreads(self) -> float:
        return float(self.spread_distance.mean())

    @property
    def mean_of_mean_sampling(self) -> float:
        return float(self.mean_sampling.mean())


@dataclass(frozen=True, slots=True)
class Comparison:
    distances: tuple[Distance, ...]
    inputs: int
    repeats: int
    cycles: int
    tile: int
    block: Region
    """The block the workload ran on: ``block_size`` square, cut to the tile's size."""


def _passes(board: Board, tile: int, block: Region, x: F64, repeats: int, transpose: bool) -> F64:
    """[inputs, repeats, outputs] currents (µA) of each input passed ``repeats`` times."""
    batch = np.repeat(x.astype(np.float32), repeats, axis=0)
    run = board.transpose_mvm if transpose else board.mvm
    out = run(tile, batch, block).currents.astype(np.float64)
    return out.reshape(len(x), repeats, -1)


def _distance(phase: str, direction: str, board: F64, twin: F64) -> Distance:
    inputs, repeats = board.shape[:2]
    m_b, m_t = board.mean(axis=1), twin.mean(axis=1)  # [inputs, outputs]
    scale = np.maximum(np.abs(m_b), 1e-9)
    means = (np.abs(m_t - m_b) / scale).mean(axis=0)
    v_b, v_t = board.var(axis=1, ddof=1), twin.var(axis=1, ddof=1)  # [inputs, outputs]
    s_b, s_t = np.sqrt(v_b.mean(axis=0)), np.sqrt(v_t.mean(axis=0))
    spreads = np.abs(s_t - s_b) / np.maximum(np.maximum(s_b, s_t), 1e-12)
    half_normal = math.sqrt(2 / math.pi)  # E|x| of x ~ N(0, 1)
    mean_sampling = (half_normal * np.sqrt((v_b + v_t) / repeats) / scale).mean(axis=0)
    spread_sampling = half_normal / math.sqrt(inputs * (repeats - 1))
    return Distance(phase, direction, means, spreads, mean_sampling, spread_sampling)


def compare(
    board: Board,
    twin: Board,
    *,
    tile: int = 0,
    block_size: int = 32,
    seed: int = 0,
    inputs: int = 8,
    repeats: int = 256,
    cycles: int = 10,
) -> Comparison:
    """Runs the workload of the module docstring on ``board`` and ``twin``; returns the
    distances. Both must have the same geometry, window and read range."""
    a = board.info
    differences = twin_differences(a, twin.info)
    if differences:
        raise ValueError(f"twin: not this board's ({'; '.join(differences)})")
    block = block_of(board, block_size, block_size)
    rng = np.random.default_rng(seed)
    span = a.g_max_us - a.g_min_us
    weights = rng.uniform(a.g_min_us, a.g_max_us, block.shape)
    v_max = a.read_voltage_max_v
    # Non-negative inputs at a quarter of the range keep outputs clear of zero and clipping.
    x_rows = rng.uniform(0.0, 0.25 * v_max, (inputs, block.rows))
    x_cols = rng.uniform(0.0, 0.25 * v_max, (inputs, block.cols))
    workload = [rng.uniform(a.g_min_us, a.g_max_us, block.shape) for _ in range(cycles)]
    probe = rng.uniform(0.0, 0.25 * v_max, (4, block.rows)).astype(np.float32)
    distances = []
    for phase in ("start", "after"):
        outputs: dict[str, list[F64]] = {"MVM": [], "TransposeMVM": []}
        for target in (board, twin):
            if phase == "after":
                for k, w in enumerate(workload):
                    program_block(target, tile, block, w)
                    points = [PerturbationPoint(k + 1, 0.02 * span, s) for s in (1, -1)]
                    target.perturbed_mvm(tile, probe, points, block)
            program_block(target, tile, block, weights)
            outputs["MVM"].append(_passes(target, tile, block, x_rows, repeats, False))
            outputs["TransposeMVM"].append(_passes(target, tile, block, x_cols, repeats, True))
        for direction, (on_board, on_twin) in outputs.items():
            distances.append(_distance(phase, direction, on_board, on_twin))
    return Comparison(tuple(distances), inputs, repeats, cycles, tile, block)
