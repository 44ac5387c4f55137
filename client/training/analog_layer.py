"""A dense layer y = [x, 1] · W mapped onto a tile region, with offset conductance mapping.

Weights map to conductances around the middle of the window,
``G = g_ref + W · scale_us``, so every cell carries one signed weight and a
board perturbation ±c_us·Δ is exactly a weight perturbation ±(c_us/scale_us)·Δ.
The ``g_ref · ΣV`` term the offset adds to every output is removed digitally.
Inputs are scaled to read voltages (clipped to the DAC range) and a bias row
is driven at the voltage of input 1.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sidra.client.accounting import CostLedger
from sidra.drivers import Board, Region

__all__ = ["AnalogLinear"]

Array = npt.NDArray[np.float32]


class AnalogLinear:
    """``inputs + 1`` rows × ``outputs`` columns at the top-left of ``tile``."""

    def __init__(
        self,
        board: Board,
        tile: int,
        inputs: int,
        outputs: int,
        *,
        weight_limit: float = 1.5,
        input_clip: float = 4.0,
    ) -> None:
        info = board.info
        if inputs + 1 > info.rows or outputs > info.cols:
            raise ValueError(
                f"layer {inputs}+1 x {outputs} does not fit a {info.rows} x {info.cols} tile"
            )
        self.board, self.tile = board, tile
        self.inputs, self.outputs = inputs, outputs
        self.region = Region(0, 0, inputs + 1, outputs)
        self.weight_limit = weight_limit
        self.g_ref_us = (info.g_min_us + info.g_max_us) / 2.0
        self.scale_us = (info.g_max_us - info.g_min_us) / 2.0 / weight_limit
        self.input_clip = input_clip
        self.volts_per_unit = info.read_voltage_max_v / input_clip
        self._rows = info.rows
        self.mvm_calls = 0
        self.ledger = CostLedger.for_board(board)
        """Modeled cost of every board operation this layer issued."""

    @property
    def shape(self) -> tuple[int, int]:
        """Weight matrix shape: (inputs + 1 bias row, outputs)."""
        return self.region.shape

    def conductances(self, weights: npt.ArrayLike) -> Array:
        """Target conductances (µS) of ``weights`` (clipped to ±weight_limit)."""
        w = np.clip(np.asarray(weights, dtype=np.float32), -self.weight_limit, self.weight_limit)
        return (self.g_ref_us + w * self.scale_us).astype(np.float32)

    def program(self, weights: npt.ArrayLike) -> None:
        """Write-verify ``weights`` into the tile region."""
        self.ledger.add(self.board.program(self.tile, self.conductances(weights)).cost)

    def voltages(self, x: npt.ArrayLike) -> Array:
        """Row voltages [batch, tile rows] for inputs x [batch, inputs]; bias row at +1."""
        x = np.asarray(x, dtype=np.float32)
        v = np.zeros((x.shape[0], self._rows), np.float32)
        v[:, : self.inputs] = np.clip(x, -self.input_clip, self.input_clip)
        v[:, self.inputs] = 1.0
        v *= self.volts_per_unit
        return v

    def forward(self, x: npt.ArrayLike) -> Array:
        """Outputs [batch, outputs] of the layer as the board computes them."""
        v = self.voltages(x)
        result = self.board.mvm(self.tile, v)
        self.ledger.add(result.cost)
        self.mvm_calls += 1
        currents = result.currents[:, : self.outputs]
        offset = self.g_ref_us * v.sum(axis=1, keepdims=True)
        outputs: Array = (currents - offset) / np.float32(self.scale_us * self.volts_per_unit)
        return outputs.astype(np.float32, copy=False)

    def perturb(self, seed: int, c: float, sign: int) -> None:
        """Weights on the board become W_prog + sign·c·Δ(seed) (c in weight units)."""
        report = self.board.perturb(self.tile, seed, c * self.scale_us, sign, self.region)
        self.ledger.add(report.cost)

    def restore(self) -> None:
        """Remove any perturbation: the board holds the programmed weights again."""
        self.ledger.add(self.board.restore(self.tile, self.region).cost)
