"""IR drop: the word- and bit-line segment resistances, from both pass directions.

The profile's first-order model (``IRDrop`` in the emulator's config): a cell's
effective conductance is G·(1 − 1e-6·(r_wl·A + r_bl·B)), r in Ω and G in µS, where
A[i, j] = Σ_m G[i, m]·(min(m, j) + 1) is the word-line load past cell j (periphery at
column 0) and B[i, j] = Σ_n G[n, j]·(R − max(n, i)) the bit-line load below cell i
(periphery at the last row); the same effective matrix serves TransposeMVM.

Measurement: the tile programmed to g_max and read ``reads`` times gives each cell's
G (reads see no wire resistance); then every row driven at one voltage V (``passes``
MVMs averaged) and every column at V (as many TransposeMVMs). Against the currents the
reads predict, P_j = V·Σ_i G[i, j], a column's relative deficit is

    I_j / P_j = s·(1 − r_wl·x_j − r_bl·y_j),
    x_j = 1e-6·Σ_i G·A / Σ_i G,   y_j = 1e-6·Σ_i G·B / Σ_i G,

and a row's in the transpose direction likewise (sums over j), with a scale s' of its
own: each direction's output scale (ADC gain, calibration) is not assumed. The
columns' deficits grow with j through A, the rows' with R − i through B, so one
least-squares fit of (s, s', r_wl, r_bl) over both directions separates the two
resistances; their standard errors come from the residuals. A value within two
standard errors of 0 goes into the profile as 0 (no IR drop found).

V is the highest DAC level at or below a quarter of the read range (one step at
least); as many rows (columns), evenly spread, are driven as keep every output below
80 % of the ADC's full scale (all of them on most boards). The loads come from the
whole programmed tile whatever is driven, so the sums above run over the driven lines
only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.characterize.blocks import read_repeated
from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.estimate import Estimate
from sidra.drivers import Region

__all__ = ["IRDropFinding", "measure_ir_drop"]

F64 = npt.NDArray[np.float64]

HEADROOM = 0.8
"""Largest output drawn, as a fraction of the ADC's full scale."""


@dataclass(frozen=True, slots=True)
class IRDropFinding:
    wordline_ohm: Estimate
    bitline_ohm: Estimate
    budget: Budget

    @property
    def estimates(self) -> tuple[Estimate, ...]:
        return (self.wordline_ohm, self.bitline_ohm)

    def profile_value(self, estimate: Estimate) -> float:
        """What the profile gets: the estimate, or 0 within two standard errors of 0."""
        return estimate.value if estimate.value > 2 * estimate.uncertainty else 0.0


def _loads(g: F64) -> tuple[F64, F64]:
    """Word-line load A and bit-line load B of every cell (µS; module docstring)."""
    rows, cols = g.shape
    col_weight = np.arange(1, cols + 1, dtype=np.float64)  # min(m, j) + 1 for m < j: m + 1
    before = np.cumsum(g * col_weight, axis=1) - g * col_weight
    from_here = np.cumsum(g[:, ::-1], axis=1)[:, ::-1]  # Σ_{m ≥ j} G[i, m]
    wordline = before + col_weight * from_here
    row_weight = (rows - np.arange(rows, dtype=np.float64))[:, None]  # R − n
    below = np.cumsum((g * row_weight)[::-1], axis=0)[::-1] - g * row_weight  # Σ_{n > i}
    up_to_here = np.cumsum(g, axis=0)  # Σ_{n ≤ i} G[n, j]
    bitline = below + row_weight * up_to_here
    return wordline, bitline


def _drive(
    g: F64, v_max: float, dac_step_v: float, full_scale_ua: float | None
) -> tuple[float, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The drive voltage (V) and the rows and columns driven, evenly spread (module
    docstring): all of them unless that would take an output past the headroom."""
    v = v_max / 4.0
    if dac_step_v:
        v = max(np.floor(v / dac_step_v), 1.0) * dac_step_v
    # One line's worth of cells at the brightest cell's current: how many lines fit.
    lines = max(g.shape)
    if full_scale_ua:
        lines = max(1, int(HEADROOM * full_scale_ua / (v * float(g.max()))))

    def spread(count: int) -> npt.NDArray[np.intp]:
        return np.unique(np.linspace(0, count - 1, min(count, lines)).round().astype(np.intp))

    rows, cols = g.shape
    return float(v), spread(rows), spread(cols)


def _fit(
    ratios: list[F64], xs: list[F64], ys: list[F64], rounds: int = 12
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Least squares of ratio = s_d·(1 − r_wl·x − r_bl·y) over both directions d, each
    with its own scale s_d, by Gauss-Newton from s_d = median ratio and r = 0 (the model
    is bilinear: a few rounds converge); standard errors from the residuals and the
    Jacobian at the solution."""
    p = np.array([float(np.median(ratios[0])), float(np.median(ratios[1])), 0.0, 0.0])
    observed = np.concatenate(ratios)

    def model_and_jacobian() -> tuple[F64, F64]:
        values, blocks = [], []
        for d, (xd, yd) in enumerate(zip(xs, ys, strict=True)):
            shape = 1.0 - p[2] * xd - p[3] * yd
            block = np.zeros((len(xd), 4))
            block[:, d] = shape
            block[:, 2], block[:, 3] = -p[d] * xd, -p[d] * yd
            values.append(p[d] * shape)
            blocks.append(block)
        return np.concatenate(values), np.vstack(blocks)

    for _ in range(rounds):
        values, jacobian = model_and_jacobian()
        step, *_ = np.linalg.lstsq(jacobian, observed - values, rcond=None)
        p = p + step
    values, jacobian = model_and_jacobian()
    residual = observed - values
    dof = max(len(residual) - 4, 1)
    covariance = float(residual @ residual) / dof * np.linalg.pinv(jacobian.T @ jacobian)
    se = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    return (float(p[2]), float(p[3])), (float(se[2]), float(se[3]))


def measure_ir_drop(
    board: MeteredBoard,
    tile: int,
    adc_full_scale_ua: float | None,
    dac_step_v: float,
    reads: int = 8,
    passes: int = 32,
) -> IRDropFinding:
    """Word- and bit-line segment resistances of ``tile`` (module docstring). Leaves the
    tile programmed to g_max."""
    info = board.info
    rows, cols = info.rows, info.cols
    whole = Region(0, 0, rows, cols)
    with board.spend() as spent:
        board.program(tile, np.full((rows, cols), info.g_max_us, np.float32))
        g = read_repeated(board, tile, whole, reads).mean(axis=0)
        v, driven_rows, driven_cols = _drive(
            g, info.read_voltage_max_v, dac_step_v, adc_full_scale_ua
        )
        row_volts = np.zeros((passes, rows), np.float32)
        row_volts[:, driven_rows] = v
        col_volts = np.zeros((passes, cols), np.float32)
        col_volts[:, driven_cols] = v
        forward = board.mvm(tile, row_volts).currents.mean(axis=0, dtype=np.float64)
        backward = board.transpose_mvm(tile, col_volts).currents.mean(axis=0, dtype=np.float64)
    wordline, bitline = _loads(g)
    # MVM: driven rows, every column read; TransposeMVM: driven columns, every row read.
    passes_seen = (
        (forward, 0, g[driven_rows], wordline[driven_rows], bitline[driven_rows]),
        (backward, 1, g[:, driven_cols], wordline[:, driven_cols], bitline[:, driven_cols]),
    )
    ratios, xs, ys = [], [], []
    for currents, axis, gd, wd, bd in passes_seen:
        weight = gd.sum(axis=axis)  # the sums run over the driven lines
        ratios.append(currents / (v * weight))
        xs.append(1e-6 * (gd * wd).sum(axis=axis) / weight)
        ys.append(1e-6 * (gd * bd).sum(axis=axis) / weight)
    (r_wl, r_bl), se = _fit(ratios, xs, ys)
    note = (
        f"{len(driven_rows)} rows, then {len(driven_cols)} columns, driven at "
        f"{v * 1e3:.3g} mV ({passes} passes each) against {reads} reads of the tile at "
        f"g_max: deficit fitted over {cols} columns and {rows} rows"
    )
    return IRDropFinding(
        Estimate("ir_drop.wordline_segment_ohm", r_wl, se[0], "Ω", note),
        Estimate("ir_drop.bitline_segment_ohm", r_bl, se[1], "Ω", note),
        spent[0],
    )
