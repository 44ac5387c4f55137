"""First-order IR drop: the crossbar's effective conductances with wire resistance.

Geometry (see ``IRDrop`` in config): word line i has its periphery at column 0,
bit line j at the last row. To first order in the segment resistances,

    G_eff[i, j] = G[i, j] · (1 − r_wl·A[i, j] − r_bl·B[i, j])
    A[i, j] = Σ_m G[i, m]·(min(m, j) + 1)       (word-line current past cell j)
    B[i, j] = Σ_n G[n, j]·(R − max(n, i))       (bit-line current below cell i)

A linear resistive network is reciprocal, so driving the bit lines and
sensing the word lines (TransposeMVM) sees G_effᵀ: one matrix serves both
directions. r in Ω, G in µS, so r·G carries a factor 1e-6.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["attenuation", "bitline_load", "effective_conductance", "wordline_load"]

Array = npt.NDArray[np.float32]


def wordline_load(g: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A[i, j] = Σ_{m<j} G[i, m]·(m + 1) + (j + 1)·Σ_{m≥j} G[i, m]."""
    cols = g.shape[1]
    weights = np.arange(1, cols + 1, dtype=np.float64)
    before = np.cumsum(g * weights, axis=1) - g * weights  # Σ_{m<j} G·(m+1)
    at_or_after = np.cumsum(g[:, ::-1], axis=1)[:, ::-1]  # Σ_{m≥j} G
    load: npt.NDArray[np.float64] = before + weights * at_or_after
    return load


def bitline_load(g: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """B[i, j] = Σ_{n>i} G[n, j]·(R − n) + (R − i)·Σ_{n≤i} G[n, j]."""
    rows = g.shape[0]
    weights = (rows - np.arange(rows, dtype=np.float64))[:, None]  # R − n
    after = np.cumsum((g * weights)[::-1], axis=0)[::-1] - g * weights  # Σ_{n>i}
    at_or_before = np.cumsum(g, axis=0)  # Σ_{n≤i}
    load: npt.NDArray[np.float64] = after + weights * at_or_before
    return load


def attenuation(
    wordline: npt.NDArray[np.float64],
    bitline: npt.NDArray[np.float64],
    wordline_ohm: float,
    bitline_ohm: float,
) -> npt.NDArray[np.float64]:
    """G_eff / G = 1 − r_wl·A − r_bl·B for loads A, B (µS) and resistances in Ω."""
    factor: npt.NDArray[np.float64] = 1.0 - 1e-6 * (wordline_ohm * wordline + bitline_ohm * bitline)
    return factor


def effective_conductance(g: Array, wordline_ohm: float, bitline_ohm: float) -> Array:
    """G_eff of ``g`` (µS) with segment resistances in Ω; ``g`` itself if both are 0.

    The whole-tile reference; the pass kernel updates the same formula by rows
    and columns as cells are written.
    """
    if wordline_ohm == 0.0 and bitline_ohm == 0.0:
        return g
    g64 = g.astype(np.float64)
    factor = attenuation(wordline_load(g64), bitline_load(g64), wordline_ohm, bitline_ohm)
    return (g64 * factor).astype(np.float32)
