"""The state-dependent part of an analog pass, cached and updated incrementally.

Drift, defects, IR drop and converter scaling depend only on the tile state
and the clock, so they are folded into one matrix that a pass multiplies by.
Training loops write a small region many times between reads; a write marks
that region dirty and only the rows and columns it touches are recomputed
(IR drop couples a cell to its whole word line and bit line). Advancing the
clock ages every cell and rebuilds everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sidra.drivers.types import Region
from sidra.emulator import drift
from sidra.emulator.config import ConductanceNoiseModel, DriftModel
from sidra.emulator.ir_drop import attenuation, bitline_load, wordline_load

if TYPE_CHECKING:
    from sidra.emulator.tile import CrossbarTile

__all__ = ["PassKernel"]

FloatArray = npt.NDArray[np.float32]


class PassKernel:
    """Cached arrays of one tile; read them after :meth:`refresh`."""

    def __init__(self, tile: CrossbarTile, scale: float) -> None:
        self._tile = tile
        self._scale = np.float32(scale)
        shape = tile.g.shape
        self.measured: FloatArray = np.zeros(shape, np.float32)
        """Conductances a read sees: drift, gain variation, stuck cells (µS)."""
        self.matrix: FloatArray = np.zeros(shape, np.float32)
        """IR-dropped effective conductances × DAC step / output unit."""
        self.cell_sigma_us: FloatArray | None = None
        """Per-cell read-noise std (PCM flicker), µS; None for state-independent noise."""
        self.cell_variance: FloatArray | None = None
        """cell_sigma_us² × scale², ready for V² @ σ²."""
        self._wl = np.zeros(shape, np.float64)
        self._bl = np.zeros(shape, np.float64)
        self._clock: float | None = None
        self._dirty: tuple[int, int, int, int] | None = None

    def mark_dirty(self, region: Region) -> None:
        """Cells of ``region`` were written."""
        r0, c0 = region.row_offset, region.col_offset
        r1, c1 = r0 + region.rows, c0 + region.cols
        if self._dirty is not None:
            a, b, c, d = self._dirty
            r0, r1, c0, c1 = min(r0, a), max(r1, b), min(c0, c), max(c1, d)
        self._dirty = (r0, r1, c0, c1)

    def refresh(self, now_s: float) -> PassKernel:
        if self._clock != now_s:
            rows, cols = self.matrix.shape
            self._update(now_s, 0, rows, 0, cols)
            self._clock = now_s
        elif self._dirty is not None:
            self._update(now_s, *self._dirty)
        self._dirty = None
        return self

    def _update(self, now_s: float, r0: int, r1: int, c0: int, c1: int) -> None:
        t = self._tile
        p = t.profile
        sl = np.s_[r0:r1, c0:c1]
        g = t.g[sl]
        age = (now_s - t.written_at_s[sl]).astype(np.float32)
        if p.drift.model is not DriftModel.NONE:
            g = g * drift.drift_factor(t.nu[sl], age, p.drift.t0_s)
        measured = g * t.gain[sl]
        measured[t.stuck_min[sl]] = p.conductance.g_min_us
        measured[t.stuck_max[sl]] = p.conductance.g_max_us
        self.measured[sl] = measured
        self._update_noise(now_s, sl, age)
        self._update_matrix(r0, r1, c0, c1)

    def _update_noise(self, now_s: float, sl: tuple[slice, slice], age: FloatArray) -> None:
        p = self._tile.profile
        if p.read_noise.conductance_model is not ConductanceNoiseModel.PCM_FLICKER:
            return
        if self.cell_sigma_us is None:
            self.cell_sigma_us = np.zeros_like(self.measured)
            self.cell_variance = np.zeros_like(self.measured)
        t_read, t0 = p.read_noise.t_read_s, p.drift.t0_s
        measured = self.measured[sl]
        q = drift.pcm_flicker_q(measured, p.conductance.g_max_us)
        sigma = (
            p.read_noise.flicker_scale
            * measured
            * q
            * np.sqrt(np.log((age + t0 + t_read) / (2.0 * t_read)))
        )
        self.cell_sigma_us[sl] = sigma
        assert self.cell_variance is not None
        self.cell_variance[sl] = (sigma * self._scale) ** 2

    def _update_matrix(self, r0: int, r1: int, c0: int, c1: int) -> None:
        ir = self._tile.profile.ir_drop
        r_wl, r_bl = ir.wordline_segment_ohm, ir.bitline_segment_ohm
        if r_wl == 0.0 and r_bl == 0.0:
            self.matrix[r0:r1, c0:c1] = self.measured[r0:r1, c0:c1] * self._scale
            return
        # A cell's word-line load depends on its whole row, its bit-line load on
        # its whole column: refresh the dirty rows and columns in full.
        g = self.measured
        self._wl[r0:r1, :] = wordline_load(g[r0:r1, :].astype(np.float64))
        self._bl[:, c0:c1] = bitline_load(g[:, c0:c1].astype(np.float64))
        for sl in (np.s_[r0:r1, :], np.s_[:, c0:c1]):
            factor = attenuation(self._wl[sl], self._bl[sl], r_wl, r_bl)
            self.matrix[sl] = (g[sl] * factor * self._scale).astype(np.float32)
