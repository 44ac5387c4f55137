"""A dense layer y = [x, 1] · W mapped onto one or more tiles, with offset conductance mapping.

Weights map to conductances around the middle of the window,
``G = g_ref + W · scale_us``, so every cell carries one signed weight and a
board perturbation ±c_us·Δ is exactly a weight perturbation ±(c_us/scale_us)·Δ.
The ``g_ref · ΣV`` term the offset adds to every output is removed digitally.
Inputs are scaled to read voltages (clipped to the DAC range) and a bias row
is driven at the voltage of input 1. A matrix with more rows than a tile
spans several tiles: each holds a block of rows, and the host adds the
blocks' partial sums (the crossbar's own Kirchhoff sum, continued digitally).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidra.client.accounting import CostLedger
from sidra.drivers import Board, Region, Unsupported

__all__ = ["AnalogLinear"]

Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class _Block:
    tile: int
    rows: slice
    """Rows of the weight matrix this tile holds."""
    region: Region


class AnalogLinear:
    """``inputs + 1`` rows × ``outputs`` columns at the top-left of ``tiles``."""

    def __init__(
        self,
        board: Board,
        tiles: int | Sequence[int],
        inputs: int,
        outputs: int,
        *,
        weight_limit: float = 1.5,
        input_clip: float = 4.0,
        read_repeats: int = 1,
    ) -> None:
        info = board.info
        tile_list = [tiles] if isinstance(tiles, int) else list(tiles)
        needed = math.ceil((inputs + 1) / info.rows)
        if outputs > info.cols or needed > len(tile_list):
            raise ValueError(
                f"layer {inputs}+1 x {outputs} needs {needed} tile(s) of {info.rows} x "
                f"{info.cols}; got tiles {tile_list}"
            )
        self.board = board
        self.inputs, self.outputs = inputs, outputs
        self.blocks = [
            _Block(
                tile_list[b],
                slice(b * info.rows, min((b + 1) * info.rows, inputs + 1)),
                Region(0, 0, min((b + 1) * info.rows, inputs + 1) - b * info.rows, outputs),
            )
            for b in range(needed)
        ]
        self.tile, self.region = self.blocks[0].tile, self.blocks[0].region
        self.weight_limit = weight_limit
        self.g_ref_us = (info.g_min_us + info.g_max_us) / 2.0
        self.scale_us = (info.g_max_us - info.g_min_us) / 2.0 / weight_limit
        self.input_clip = input_clip
        if read_repeats < 1:
            raise ValueError(f"read_repeats: got {read_repeats}, expected >= 1")
        self.read_repeats = read_repeats
        """Analog passes averaged per input vector (read noise falls as 1/√repeats)."""
        self.volts_per_unit = info.read_voltage_max_v / input_clip
        self._v_max = info.read_voltage_max_v
        self._rows, self._cols = info.rows, info.cols
        self.mvm_calls = 0
        self.ledger = CostLedger.for_board(board)
        """Modeled cost of every board operation this layer issued."""

    @property
    def shape(self) -> tuple[int, int]:
        """Weight matrix shape: (inputs + 1 bias row, outputs)."""
        return (self.inputs + 1, self.outputs)

    def conductances(self, weights: npt.ArrayLike) -> Array:
        """Target conductances (µS) of ``weights`` (clipped to ±weight_limit)."""
        w = np.clip(np.asarray(weights, dtype=np.float32), -self.weight_limit, self.weight_limit)
        return (self.g_ref_us + w * self.scale_us).astype(np.float32)

    def program(self, weights: npt.ArrayLike) -> None:
        """Write-verify ``weights`` into the tiles."""
        g = self.conductances(weights)
        for block in self.blocks:
            self.ledger.add(self.board.program(block.tile, g[block.rows]).cost)

    def voltages(self, x: npt.ArrayLike) -> Array:
        """Row voltages [batch, tile rows] for inputs x [batch, inputs]; bias row at +1.

        Single-tile layers only; see :meth:`forward` for the general case.
        """
        return self._pad(self._input_volts(x)[:, self.blocks[0].rows], self._rows)

    def _input_volts(self, x: npt.ArrayLike) -> Array:
        x = np.asarray(x, dtype=np.float32)
        u = np.empty((x.shape[0], self.inputs + 1), np.float32)
        u[:, : self.inputs] = x
        u[:, self.inputs] = 1.0
        u *= self.volts_per_unit
        # Clip in volts: clip-then-scale can land a rounding step above the limit.
        v_max = np.float32(self._v_max)
        return np.clip(u, -v_max, v_max, out=u)

    @staticmethod
    def _pad(v: Array, width: int) -> Array:
        padded = np.zeros((v.shape[0], width), np.float32)
        padded[:, : v.shape[1]] = v
        return padded

    def forward(self, x: npt.ArrayLike) -> Array:
        """Outputs [batch, outputs] of the layer as the board computes them."""
        u = self._input_volts(x)
        total = np.zeros((u.shape[0], self.outputs), np.float32)
        for block in self.blocks:
            v = self._pad(u[:, block.rows], self._rows)
            # Repeated reads travel as one batch: [v; v; ...] -> mean over repeats.
            result = self.board.mvm(block.tile, np.tile(v, (self.read_repeats, 1)))
            self.ledger.add(result.cost)
            self.mvm_calls += 1
            currents = result.currents[:, : self.outputs].reshape(self.read_repeats, len(v), -1)
            total += currents.mean(axis=0) - self.g_ref_us * v.sum(axis=1)[:, None]
        outputs: Array = total / np.float32(self.scale_us * self.volts_per_unit)
        return outputs.astype(np.float32, copy=False)

    def backward(self, delta: npt.ArrayLike) -> Array:
        """δ·Wᵀ [batch, inputs] by TransposeMVM (bias row dropped): the backward pass.

        Each δ row is scaled so its largest entry drives the full read voltage
        (abs-max noise management) and scaled back digitally.
        """
        d = np.asarray(delta, dtype=np.float32)
        peak = np.abs(d).max(axis=1, keepdims=True)
        peak[peak == 0.0] = 1.0
        v = self._pad(d / peak * np.float32(self._v_max), self._cols)
        offset = self.g_ref_us * v.sum(axis=1)[:, None]
        parts = []
        for block in self.blocks:
            result = self.board.transpose_mvm(block.tile, v)
            self.ledger.add(result.cost)
            self.mvm_calls += 1
            parts.append(result.currents[:, : block.region.rows] - offset)
        rows = np.concatenate(parts, axis=1)[:, : self.inputs]
        grad: Array = rows * (peak / np.float32(self.scale_us * self._v_max))
        return grad.astype(np.float32, copy=False)

    def perturb(self, seed: int, c: float, sign: int) -> None:
        """Weights on the board become W_prog + sign·c·Δ(seed) (c in weight units)."""
        if len(self.blocks) > 1:
            raise Unsupported("on-board perturbation of a layer spanning several tiles")
        report = self.board.perturb(self.tile, seed, c * self.scale_us, sign, self.region)
        self.ledger.add(report.cost)

    def restore(self) -> None:
        """Remove any perturbation: the board holds the programmed weights again."""
        for block in self.blocks:
            self.ledger.add(self.board.restore(block.tile, block.region).cost)
