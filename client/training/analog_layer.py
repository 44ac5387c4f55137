"""A dense layer y = [x, 1] · W mapped onto one or more tiles.

Two conductance mappings, both centred on the middle of the window g_ref:

- OFFSET: one cell per weight, ``G = g_ref + W·scale_us``; the ``g_ref·ΣV``
  the offset adds to every output is removed digitally. A board perturbation
  ±c_us·Δ is exactly a weight perturbation ±(c_us/scale_us)·Δ.
- DIFFERENTIAL: a pair of columns per output, ``G± = g_ref ± W·scale_us/2``;
  the output is I⁺ − I⁻, so the common mode (offset, global drift, common
  IR drop) cancels in the array. Perturbations move the pair in opposite
  directions with the same seed. Twice the columns and twice the read noise
  cells per weight.

Inputs are scaled to read voltages (clipped to the DAC range) and a bias row
is driven at the voltage of input 1, or, with ``digital_bias``, the bias is
added on the host after the ADC (as aihwkit's inference presets do): a bias
far larger than the weights then no longer sets the conductance range.

Each pass is scoped to the block's region of its tile (region-scoped MVM and
TransposeMVM): a 65 × 10 layer on a 256 × 256 tile sends 65 voltages per vector
and gets 10 currents back, not 256 and 256.

A matrix larger than a tile spans several tiles in blocks of rows × outputs:
the host adds the partial sums of the row blocks (the crossbar's own Kirchhoff
sum, continued digitally) and places the output blocks side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers import (
    Board,
    InvalidArgument,
    PerturbationPoint,
    ProgramReport,
    Region,
    Unsupported,
)
from sidra.drivers.rademacher import seed_from_bit
from sidra.drivers.requests import (
    MAX_STEPS,
    MVMRequest,
    PerturbedMVMRequest,
    ProgramRequest,
    Request,
    TransposeMVMRequest,
)
from sidra.drivers.validation import is_integer, to_float32
from sidra.training.accounting import CostLedger

__all__ = ["AnalogLinear", "Mapping"]

Array = npt.NDArray[np.float32]


class Mapping(StrEnum):
    """How a signed weight becomes conductances."""

    OFFSET = "offset"
    DIFFERENTIAL = "differential"


@dataclass(frozen=True, slots=True)
class _Block:
    tile: int
    rows: slice
    """Rows of the weight matrix this tile holds."""
    outputs: slice
    """Outputs (weight-matrix columns) this tile holds."""
    region: Region
    """Cells used on the tile: weights (× 2 if differential) plus a reference column."""

    @property
    def width(self) -> int:
        """Outputs in this block."""
        return int(self.outputs.stop) - int(self.outputs.start)


def _check_geometry(tiles: list[Any], inputs: Any, outputs: Any, tile_count: int) -> None:
    """InvalidArgument for a size below 1 or a tile the board does not have (a layer made
    with either failed later in a list index, or not at all until its first pass)."""
    for name, value in (("inputs", inputs), ("outputs", outputs)):
        if not is_integer(value) or value < 1:
            raise InvalidArgument(name, value, "an integer >= 1")
    for k, tile in enumerate(tiles):
        if not is_integer(tile) or not 0 <= tile < tile_count or tile in tiles[:k]:
            raise InvalidArgument(
                "tiles", tiles, f"tile indices in 0 .. {tile_count - 1}, each once"
            )


def _check_settings(
    mapping: Mapping,
    reference_column: bool,
    read_repeats: int,
    weight_limit: float,
    input_clip: float,
) -> None:
    if reference_column and mapping is not Mapping.OFFSET:
        raise ValueError("reference_column: only the offset mapping uses one")
    if read_repeats < 1:
        raise ValueError(f"read_repeats: got {read_repeats}, expected >= 1")
    for name, value in (("weight_limit", weight_limit), ("input_clip", input_clip)):
        if not value > 0.0:
            raise ValueError(f"{name}: got {value}, expected > 0 (weight units)")


class AnalogLinear:
    """``inputs + 1`` rows (``inputs`` with a digital bias) × ``outputs`` columns at the
    top-left of ``tiles``."""

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
        mapping: Mapping = Mapping.OFFSET,
        reference_column: bool = False,
        digital_bias: bool = False,
    ) -> None:
        info = board.info
        tile_list = list(tiles) if isinstance(tiles, Sequence) else [tiles]
        _check_geometry(tile_list, inputs, outputs, info.tile_count)
        self.mapping = Mapping(mapping)
        self._pair = 2 if self.mapping is Mapping.DIFFERENTIAL else 1
        _check_settings(self.mapping, reference_column, read_repeats, weight_limit, input_clip)
        self.reference_column = reference_column
        """Offset mapping: one extra column at g_ref per tile whose current replaces the
        digital g_ref·ΣV subtraction, so the offset ages (drifts) with the array."""
        per_tile = (info.cols - int(reference_column)) // self._pair
        self.digital_bias = digital_bias
        self._bias = np.zeros(outputs, np.float32)
        self.analog_rows = inputs + int(not digital_bias)
        """Weight-matrix rows the tiles hold: the inputs, and the bias row unless digital."""
        row_starts = range(0, self.analog_rows, info.rows)
        out_starts = range(0, outputs, per_tile)
        needed = len(row_starts) * len(out_starts)
        if per_tile < 1 or needed > len(tile_list):
            raise ValueError(
                f"layer {inputs}+1 x {outputs} ({self.mapping.value}) needs {needed} tile(s) "
                f"of {info.rows} x {info.cols}; got tiles {tile_list}"
            )
        self.board = board
        self.inputs, self.outputs = inputs, outputs
        self.blocks = self._layout(tile_list, row_starts, out_starts, info.rows, per_tile)
        self.tile, self.region = self.blocks[0].tile, self.blocks[0].region
        self.weight_limit = weight_limit
        self.g_ref_us = (info.g_min_us + info.g_max_us) / 2.0
        self._g_window = (np.float32(info.g_min_us), np.float32(info.g_max_us))
        # Conductance signal per unit weight: a full half-window at weight_limit
        # (split over the two cells of a differential pair).
        self.scale_us = (info.g_max_us - info.g_min_us) / 2.0 / weight_limit * self._pair
        self.input_clip = input_clip
        self.read_repeats = read_repeats
        """Analog passes averaged per input vector (read noise falls as 1/√repeats)."""
        self.volts_per_unit = info.read_voltage_max_v / input_clip
        self._v_max = info.read_voltage_max_v
        self.mvm_calls = 0
        self.ledger = CostLedger.for_board(board)
        """Modeled cost of every board operation this layer issued."""

    def _layout(
        self,
        tiles: list[int],
        row_starts: range,
        out_starts: range,
        tile_rows: int,
        per_tile: int,
    ) -> list[_Block]:
        """Row blocks × output blocks, one tile each, in ``tiles`` order."""
        blocks: list[_Block] = []
        for r in row_starts:
            rows = slice(r, min(r + tile_rows, self.analog_rows))
            for o in out_starts:
                outs = slice(o, min(o + per_tile, self.outputs))
                width = (outs.stop - outs.start) * self._pair + int(self.reference_column)
                region = Region(0, 0, rows.stop - rows.start, width)
                blocks.append(_Block(tiles[len(blocks)], rows, outs, region))
        return blocks

    @property
    def shape(self) -> tuple[int, int]:
        """Weight matrix shape: (inputs + 1 bias row, outputs)."""
        return (self.inputs + 1, self.outputs)

    @property
    def columns(self) -> int:
        """Tile columns the first block uses."""
        return self.region.cols

    def checked_weights(self, weights: npt.ArrayLike, field: str = "weights") -> Array:
        """``weights`` as float32 of the layer's :attr:`shape`, or InvalidArgument: a
        matrix one row short (the bias row forgotten) programmed only the rows it had,
        and left the rest as they were."""
        w = to_float32(field, weights)
        if w.shape != self.shape:
            raise InvalidArgument(
                f"{field}.shape", list(w.shape),
                f"{list(self.shape)} (inputs + 1 bias row, outputs)",
            )  # fmt: skip
        return w

    def checked_inputs(self, x: npt.ArrayLike, width: int, field: str = "x") -> Array:
        """``x`` as float32 [batch >= 1, ``width``], or InvalidArgument: a single vector
        of shape [width] broadcast into ``width`` rows, one output per element."""
        a = to_float32(field, x)
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] != width:
            raise InvalidArgument(f"{field}.shape", list(a.shape), f"[batch >= 1, {width}]")
        # Here, not at the board: there the voltages a value drives (and the rows it
        # takes) would be named instead of what the caller passed.
        if not np.isfinite(a).all():
            bad = ~np.isfinite(a)
            first = [int(i) for i in np.argwhere(bad)[0]]
            raise InvalidArgument(
                field, f"{int(bad.sum())} NaN/Inf values (first at {first})", "finite numbers"
            )
        return a

    def conductances(self, weights: npt.ArrayLike) -> Array:
        """Target conductances (µS) of a weight block (clipped to ±weight_limit)."""
        w = np.clip(np.asarray(weights, dtype=np.float32), -self.weight_limit, self.weight_limit)
        if self.mapping is Mapping.OFFSET:
            g = self.g_ref_us + w * self.scale_us
            if self.reference_column:
                g = np.hstack([g, np.full((len(g), 1), self.g_ref_us, np.float32)])
        else:
            half = w * (self.scale_us / 2.0)
            g = np.hstack([self.g_ref_us + half, self.g_ref_us - half])
        # Clipped in µS too: a weight at ±weight_limit can map a float32 rounding step
        # outside the window (0.249999 µS of a 0.25 µS floor), which Program refuses.
        return np.clip(g.astype(np.float32), *self._g_window)

    def signal(self, currents: Array, volts: Array, width: int) -> Array:
        """The weight-carrying part of a block's column currents [batch, columns] (µA),
        driven by ``volts`` [batch, rows], for a block of ``width`` outputs."""
        if self.reference_column:
            signal: Array = currents[:, :width] - currents[:, width : width + 1]
        elif self.mapping is Mapping.OFFSET:
            signal = currents[:, :width] - self.g_ref_us * volts.sum(axis=1)[:, None]
        else:
            signal = currents[:, :width] - currents[:, width : 2 * width]
        return signal

    def program(self, weights: npt.ArrayLike) -> list[ProgramReport]:
        """Write-verify ``weights`` into the tiles (one round trip for all of them); what
        each block's write-verify reached, in :attr:`blocks` order."""
        reports: list[ProgramReport] = self._run_all(self.program_steps(weights))
        for report in reports:
            self.ledger.add(report.cost)
        return reports

    def _run_all(self, requests: Sequence[Request]) -> list[Any]:
        """Each request's result, in order. A layer on several tiles sends its blocks'
        requests as one RunSequence (of up to MAX_STEPS steps each): one round trip
        to a remote board per pass of the layer instead of one per tile."""
        if len(requests) == 1:
            return [self.board.run(requests[0])]
        results: list[Any] = []
        for start in range(0, len(requests), MAX_STEPS):
            chunk = requests[start : start + MAX_STEPS]
            results += self.board.run_sequence(chunk).results
        return results

    def program_steps(self, weights: npt.ArrayLike) -> list[ProgramRequest]:
        """The Program request of each tile that writes ``weights`` (the digital bias, if
        any, is kept on the host now): to run, or to send ahead of other steps in one
        RunSequence."""
        w = self.adopt(weights)
        return [
            ProgramRequest(block.tile, self.conductances(w[block.rows, block.outputs]))
            for block in self.blocks
        ]

    def adopt(self, weights: npt.ArrayLike) -> Array:
        """Takes ``weights`` as what the layer holds, writing nothing (tiles programmed
        with them before): a digital bias is kept on the host from now on. Returns them
        checked."""
        w = self.checked_weights(weights)
        if self.digital_bias:
            self._bias = w[self.inputs].copy()
        return w

    def input_volts(self, x: npt.ArrayLike) -> Array:
        """The read voltages [batch, analog rows] that carry ``x`` (and the bias row
        unless the bias is digital), clipped to the DAC range, V."""
        x = self.checked_inputs(x, self.inputs)
        u = np.empty((x.shape[0], self.analog_rows), np.float32)
        u[:, : self.inputs] = x
        if not self.digital_bias:
            u[:, self.inputs] = 1.0
        u *= self.volts_per_unit
        # Clip in volts: clip-then-scale can land a rounding step above the limit.
        v_max = np.float32(self._v_max)
        return np.clip(u, -v_max, v_max, out=u)

    @staticmethod
    def _pad(v: Array, width: int) -> Array:
        """``v`` with 0 V columns appended up to ``width``."""
        if v.shape[1] == width:
            return v
        padded = np.zeros((v.shape[0], width), np.float32)
        padded[:, : v.shape[1]] = v
        return padded

    def forward(
        self,
        x: npt.ArrayLike,
        *,
        read_repeats: int | None = None,
        program: npt.ArrayLike | None = None,
    ) -> Array:
        """Outputs [batch, outputs] of the layer as the board computes them, each the mean
        of ``read_repeats`` analog passes (default: the layer's :attr:`read_repeats`).
        With ``program``, those weights are programmed first, in the same RunSequence
        (one round trip for both)."""
        repeats = self.read_repeats if read_repeats is None else read_repeats
        if repeats < 1:
            raise ValueError(f"read_repeats: got {repeats}, expected >= 1")
        u = self.input_volts(x)
        total = np.zeros((u.shape[0], self.outputs), np.float32)
        requests = []
        for block in self.blocks:
            # The block's region only: its rows' voltages in, its columns' currents out
            # (the tile's other rows undriven), no padding to the tile on the way.
            v = u[:, block.rows]
            # Repeated reads travel as one batch: [v; v; ...] -> mean over repeats.
            batch = v if repeats == 1 else np.tile(v, (repeats, 1))
            requests.append(MVMRequest(block.tile, batch, block.region))
        programs: list[ProgramRequest] = [] if program is None else self.program_steps(program)
        results = self._run_all([*programs, *requests])
        for report in results[: len(programs)]:
            self.ledger.add(report.cost)
        for block, result in zip(self.blocks, results[len(programs) :], strict=True):
            self.ledger.add(result.cost)
            self.mvm_calls += 1
            v = u[:, block.rows]
            used = block.region.cols
            currents = result.currents.reshape(repeats, len(v), used)
            total[:, block.outputs] += self.signal(currents.mean(axis=0), v, block.width)
        outputs: Array = total / np.float32(self.scale_us * self.volts_per_unit)
        if self.digital_bias:
            outputs += self._bias
        return outputs.astype(np.float32, copy=False)

    def backward(self, delta: npt.ArrayLike) -> Array:
        """δ·Wᵀ [batch, inputs] by TransposeMVM (bias row dropped): the backward pass.

        Each δ row is scaled so its largest entry drives the full read voltage
        (abs-max noise management) and scaled back digitally.
        """
        d = self.checked_inputs(delta, self.outputs, "delta")
        peak = np.abs(d).max(axis=1, keepdims=True)
        peak[peak == 0.0] = 1.0
        scaled = d / peak * np.float32(self._v_max)
        rows = np.zeros((len(d), self.inputs + 1), np.float32)
        requests, offsets = [], []
        for block in self.blocks:
            part = scaled[:, block.outputs]
            if self.mapping is Mapping.DIFFERENTIAL:
                # Drive the G⁻ columns inverted: the common mode cancels.
                drive, offset = np.hstack([part, -part]), np.float32(0.0)
            else:
                drive = part  # the reference column, if any, stays undriven
                offset = self.g_ref_us * part.sum(axis=1)[:, None]
            # Region columns in (the reference column, if any, at 0 V), region rows out.
            drive = self._pad(drive, block.region.cols)
            requests.append(TransposeMVMRequest(block.tile, drive, block.region))
            offsets.append(offset)
        results = self._run_all(requests)
        for block, result, offset in zip(self.blocks, results, offsets, strict=True):
            self.ledger.add(result.cost)
            self.mvm_calls += 1
            rows[:, block.rows] += result.currents - offset
        grad: Array = rows[:, : self.inputs] * (peak / np.float32(self.scale_us * self._v_max))
        return grad.astype(np.float32, copy=False)

    def perturb(self, seed: int, c: float, sign: int) -> None:
        """Weights on the board become W_prog + sign·c·Δ(seed) (c in weight units).

        A layer split by rows over several tiles perturbs each tile's rows with the
        part of Δ(seed) they hold: the sign stream from the block's first weight on
        (:func:`~sidra.drivers.rademacher.seed_from_bit`), so the whole matrix moves
        by exactly sign·c·Δ(seed) as the host computes it."""
        for block, block_seed in zip(self.blocks, self._block_seeds(seed), strict=True):
            rows, o = block.region.rows, self.outputs
            if self.mapping is Mapping.OFFSET:
                weights = Region(0, 0, rows, o)  # never the reference column
                amplitude = c * self.scale_us
                report = self.board.perturb(block.tile, block_seed, amplitude, sign, weights)
                self.ledger.add(report.cost)
                continue
            # Same Δ on both halves of each pair, opposite directions: W ± c·Δ.
            for offset, direction in ((0, sign), (o, -sign)):
                half = Region(0, offset, rows, o)
                amplitude = c * self.scale_us / 2
                report = self.board.perturb(block.tile, block_seed, amplitude, direction, half)
                self.ledger.add(report.cost)

    def _block_seeds(self, seed: int) -> list[int]:
        """The seed of each block's part of Δ(seed) (a layer split by rows only)."""
        if self.digital_bias:
            raise Unsupported("on-board perturbation of a layer with a digital bias")
        if any(block.width != self.outputs for block in self.blocks):
            raise Unsupported(
                f"on-board perturbation of a layer whose {self.outputs} outputs span several "
                f"tiles (split by columns): use host mode"
            )
        first_bits = [int(block.rows.start) * self.outputs for block in self.blocks]
        if any(bit % 64 for bit in first_bits):
            raise Unsupported(
                "on-board perturbation of a layer whose row blocks do not start on a "
                "64-sign boundary of Δ (tile rows times outputs)"
            )
        return [seed_from_bit(seed, bit) for bit in first_bits]

    @property
    def fused_perturbation(self) -> bool:
        """Whether :meth:`perturbed_forward` evaluates perturbations with PerturbedMVM: the
        offset mapping, no reference column, an analog bias row (the perturbed cells are
        then exactly the cells the pass reads), one tile or a split by rows only."""
        return (
            self.mapping is Mapping.OFFSET
            and not self.reference_column
            and not self.digital_bias
            and all(block.width == self.outputs for block in self.blocks)
        )

    def perturbed_forward(
        self,
        x: npt.ArrayLike,
        perturbations: Sequence[tuple[int, float, int]],
        *,
        program: npt.ArrayLike | None = None,
    ) -> Array:
        """Outputs [points, batch, outputs] of the layer at W_prog + sign·c·Δ(seed) for each
        ``(seed, c, sign)`` (c in weight units), in one PerturbedMVM (one per tile of a
        layer split by rows, sent together as one RunSequence): the minibatch crosses
        the link once and the board ends with the programmed weights. With ``program``,
        those weights are programmed first, in the same RunSequence: one round trip for
        an SPSA step that moved the weights."""
        if not self.fused_perturbation:
            raise Unsupported(
                "a fused perturbed evaluation needs the offset mapping, no reference column, "
                "an analog bias and a layer split by rows only"
            )
        u = self.input_volts(x)  # [batch, analog rows]
        seeds = [self._block_seeds(seed) for seed, _, _ in perturbations]
        steps = []
        for b, block in enumerate(self.blocks):
            v = u[:, block.rows]
            batch = v if self.read_repeats == 1 else np.tile(v, (self.read_repeats, 1))
            points = tuple(
                PerturbationPoint(block_seeds[b], c * self.scale_us, sign)
                for block_seeds, (_, c, sign) in zip(seeds, perturbations, strict=True)
            )
            steps.append(PerturbedMVMRequest(block.tile, batch, points, block.region))
        programs: list[ProgramRequest] = [] if program is None else self.program_steps(program)
        results = self._run_all([*programs, *steps])
        for report in results[: len(programs)]:
            self.ledger.add(report.cost)
        results = results[len(programs) :]
        currents = np.zeros((len(perturbations), len(u), self.outputs), np.float32)
        for result in results:
            self.ledger.add(result.cost)
            currents += result.currents.reshape(
                len(perturbations), self.read_repeats, len(u), -1
            ).mean(axis=1)
        self.mvm_calls += len(perturbations) * len(steps)
        signal = currents - self.g_ref_us * u.sum(axis=1)[None, :, None]
        outputs: Array = signal / np.float32(self.scale_us * self.volts_per_unit)
        return outputs.astype(np.float32, copy=False)

    def calibrate(self) -> list[float]:
        """Global drift compensation of every tile the layer uses; returns their output gains.

        The board rescales each tile's outputs so a probe reads as it did when
        the cells were programmed: a common drift factor cancels, the spread of
        drift between cells does not. Cells written later start afresh, so
        calibrate again after reprogramming a large part of a tile.
        """
        gains = []
        for block in self.blocks:
            report = self.board.calibrate(block.tile)
            self.ledger.add(report.cost)
            gains.append(report.gain)
        return gains

    def restore(self) -> None:
        """Remove any perturbation: the board holds the programmed weights again."""
        for block in self.blocks:
            self.ledger.add(self.board.restore(block.tile, block.region).cost)
