"""A board's digital twin as training's backward pass sees it.

Physics-aware training (:mod:`sidra.training.pat`) runs the forward pass on the board
and the backward pass through the twin: the Jacobian of each layer as the
characterized board computes it, not a TransposeMVM (whose read noise would enter
every gradient). The twin knows, from the board's profile (``sidra board
characterize``):

- **the stuck cells** of every tile: a stuck cell conducts at its bound whatever is
  programmed, so the weight the board holds there is fixed (its Jacobian
  dW_board/dW_target is 0; a differential pair with one cell stuck moves at half the
  rate), and the error it carries back is that of the stuck value;
- **where the outputs clip**: an output whose column current reaches the ADC's full
  scale (µA) passes no gradient, as a clipped input does not;
- **the conductance window** (µS) the weights map to, for the stuck values.

- **each cell's gain**, when the profile carries gain maps (``sidra board
  characterize --gain-maps``): a cell conducts its programmed conductance times its
  gain; without maps the twin knows the gains only as a spread and uses their mean, 1.

Training takes the twin as this plain data; the command line builds it from a
:class:`~sidra.emulator.config.BoardProfile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sidra.training.analog_layer import AnalogLinear
from sidra.training.analog_layer import Mapping as WeightMapping

__all__ = ["TwinLayer", "TwinPhysics"]

Array = npt.NDArray[np.float32]
Cells = npt.NDArray[np.int64]
"""(row, column) pairs, shape [n, 2]."""


def _no_cells() -> Cells:
    return np.zeros((0, 2), np.int64)


@dataclass(frozen=True)
class TwinPhysics:
    """What the backward pass takes from a board's characterized profile."""

    g_min_us: float
    """Conductance of a cell stuck at the bottom of the window, µS."""
    g_max_us: float
    """Conductance of a cell stuck at the top of the window, µS."""
    adc_full_scale_ua: float | None
    """Column current at which outputs clip, µA (None: the ADC does not clip)."""
    stuck_at_min: Mapping[int, Cells] = field(default_factory=dict)
    """Per tile: the cells stuck at g_min_us."""
    stuck_at_max: Mapping[int, Cells] = field(default_factory=dict)
    """Per tile: the cells stuck at g_max_us."""
    gains: Mapping[int, Array] = field(default_factory=dict)
    """Per tile: each cell's gain [rows, cols], dimensionless (a tile not listed: 1)."""

    def __post_init__(self) -> None:
        if not self.g_max_us > self.g_min_us:
            raise ValueError(
                f"g_max_us: got {self.g_max_us}, expected > g_min_us ({self.g_min_us}) µS"
            )
        if self.adc_full_scale_ua is not None and not self.adc_full_scale_ua > 0.0:
            raise ValueError(
                f"adc_full_scale_ua: got {self.adc_full_scale_ua}, expected > 0 µA or None"
            )

    @property
    def stuck_cells(self) -> int:
        """Stuck cells the twin knows of, every tile."""
        return sum(len(c) for c in (*self.stuck_at_min.values(), *self.stuck_at_max.values()))

    def stuck(self, tile: int, rows: int, cols: int) -> tuple[npt.NDArray[np.bool_], Array]:
        """The stuck cells of ``tile``'s top-left ``rows`` × ``cols`` corner (a mask) and
        their conductances (µS; NaN where the cell is healthy)."""
        mask = np.zeros((rows, cols), np.bool_)
        value = np.full((rows, cols), np.nan, np.float32)
        for cells, g in (
            (self.stuck_at_min.get(tile, _no_cells()), self.g_min_us),
            (self.stuck_at_max.get(tile, _no_cells()), self.g_max_us),
        ):
            inside = cells[(cells[:, 0] < rows) & (cells[:, 1] < cols)]
            mask[inside[:, 0], inside[:, 1]] = True
            value[inside[:, 0], inside[:, 1]] = g
        return mask, value

    def gain(self, tile: int, rows: int, cols: int) -> Array | None:
        """Each cell's gain in ``tile``'s top-left ``rows`` × ``cols`` corner; None for a
        tile without a map (every gain 1)."""
        gains = self.gains.get(tile)
        return None if gains is None else np.asarray(gains[:rows, :cols], np.float32)


class TwinLayer:
    """One analog layer as the twin computes it, for the weights last programmed.

    :meth:`update` takes the programmed weights (each time the layer is
    reprogrammed); :attr:`weights` is then the matrix the board holds by the twin's
    account, :attr:`movable` dW_board/dW_target per weight, :meth:`input_gradient`
    the error at the layer's input and :meth:`unclipped` where its outputs pass a
    gradient.
    """

    def __init__(self, layer: AnalogLinear, twin: TwinPhysics) -> None:
        self.layer = layer
        self.twin = twin
        self._stuck = [
            twin.stuck(block.tile, block.region.rows, block.region.cols) for block in layer.blocks
        ]
        self._gains = [
            twin.gain(block.tile, block.region.rows, block.region.cols) for block in layer.blocks
        ]
        self.conductances: list[Array] = []
        """Each block's region as the twin holds it, µS."""
        rows = layer.analog_rows
        self.weights = np.zeros((rows, layer.outputs), np.float32)
        """The analog rows of the weight matrix the board holds (stuck cells at their
        bound, each cell times its gain), weight units."""
        self.movable = np.ones((rows, layer.outputs), np.float32)
        """dW_board/dW_target: each cell moves its weight by its gain (1 without a gain
        map), a stuck cell not at all, a differential pair by the mean of its two."""
        for block, (mask, _), gain in zip(layer.blocks, self._stuck, self._gains, strict=True):
            moves = np.float32(1.0) if gain is None else gain
            free: Array = np.where(mask, np.float32(0.0), moves).astype(np.float32)
            width = block.width
            part: Array = free[:, :width]
            if layer.mapping is WeightMapping.DIFFERENTIAL:
                part = (part + free[:, width : 2 * width]) / np.float32(2.0)
            self.movable[block.rows, block.outputs] = part

    def update(self, weights: npt.ArrayLike) -> None:
        """The layer was programmed with ``weights`` (the full matrix, bias row included)."""
        w = np.asarray(weights, dtype=np.float32)
        layer = self.layer
        self.conductances = []
        for block, (mask, value), gain in zip(layer.blocks, self._stuck, self._gains, strict=True):
            g = layer.conductances(w[block.rows, block.outputs])
            if gain is not None:  # no map: every gain 1, nothing to multiply
                g = g * gain
            g = np.where(mask, value, g).astype(np.float32)
            self.conductances.append(g)
            # Each row driven alone at 1 V: its currents are its conductances, and the
            # layer's own signal (offset, reference column or pair) is that row's weights.
            one_volt = np.eye(len(g), dtype=np.float32)
            held = layer.signal(g, one_volt, block.width) / np.float32(layer.scale_us)
            self.weights[block.rows, block.outputs] = held

    def input_gradient(self, delta: Array) -> Array:
        """δ·W_boardᵀ [batch, inputs]: the error at the layer's inputs (bias row dropped)."""
        out: Array = delta @ self.weights[: self.layer.inputs].T
        return out

    def unclipped(self, x: Array) -> npt.NDArray[np.bool_]:
        """[batch, outputs]: True where no column current of the output reaches the ADC's
        full scale for inputs ``x`` (a clipped output passes no gradient)."""
        full_scale = self.twin.adc_full_scale_ua
        passes = np.ones((len(x), self.layer.outputs), np.bool_)
        if full_scale is None:
            return passes
        volts = self.layer.input_volts(x)
        for block, g in zip(self.layer.blocks, self.conductances, strict=True):
            currents = volts[:, block.rows] @ g  # µA, every column of the block's region
            clipped = np.abs(currents) >= full_scale
            width = block.width
            hit = clipped[:, :width]
            if self.layer.mapping is WeightMapping.DIFFERENTIAL:
                hit = hit | clipped[:, width : 2 * width]
            elif self.layer.reference_column:
                hit = hit | clipped[:, width : width + 1]
            passes[:, block.outputs] &= ~hit
        return passes
