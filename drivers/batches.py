"""An MVM batch cut into consecutive passes, and their results joined again.

The serial driver's stage, the PCIe driver's slot windows and a server's ``[limits]
max_batch`` each carry at most so many vectors per command. Every vector is its own
pass, so the parts' currents (and ADC codes) stack in order and their saturated outputs
and costs add up to what the whole batch in one command would give.

A PerturbedMVM too large for one command is cut by its points first: each part applies
its points from the programmed targets and restores the region, exactly as the whole
call would, so a part of whole points gives what the whole call gives for them (one more
restore per part: ``cells_written`` and the cost count it). Only when one point's batch
is itself too large are its vectors cut as well; each of those parts writes the same
seeded perturbation again, with the write noise of a new write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sidra.drivers.requests import MVMRequest, PerturbedMVMRequest, TransposeMVMRequest
from sidra.drivers.types import Cost, MVMResult, PerturbedMVMResult

__all__ = ["PassRequest", "PointsCut", "cut", "cut_points", "joined", "joined_points"]

PassRequest = MVMRequest | TransposeMVMRequest


def cut(request: PassRequest, per_part: int) -> list[PassRequest]:
    """``request`` as consecutive requests of at most ``per_part`` vectors each (its
    voltages or its input codes, whichever it carries); ``[request]`` when it fits."""
    field = "voltages" if request.input_codes is None else "input_codes"
    inputs = getattr(request, field)
    if len(inputs) <= per_part:
        return [request]
    return [
        replace(request, **{field: inputs[start : start + per_part]})
        for start in range(0, len(inputs), per_part)
    ]


def joined(parts: Sequence[MVMResult]) -> MVMResult:
    """The result of the whole batch from its parts' results, in order."""
    first = parts[0]
    codes = [p.output_codes for p in parts]
    return MVMResult(
        currents=np.concatenate([p.currents for p in parts]),
        saturated_outputs=sum(p.saturated_outputs for p in parts),
        cost=sum((p.cost for p in parts), Cost()),
        output_codes=None if codes[0] is None else np.concatenate(codes),  # type: ignore[arg-type]
        dac_step_v=first.dac_step_v,
        adc_step_ua=first.adc_step_ua,
    )


@dataclass(frozen=True)
class PointsCut:
    """A PerturbedMVM as consecutive calls: ``parts`` in order, the points in groups and
    each group's batch in ``slices`` consecutive parts (1: the batch whole)."""

    parts: list[PerturbedMVMRequest]
    slices: int

    def joined(self, results: Sequence[PerturbedMVMResult]) -> PerturbedMVMResult:
        """The whole call's result from its parts' results, in order."""
        return joined_points(results, self.slices)


def cut_points(request: PerturbedMVMRequest, most_passes: int, most_vectors: int) -> PointsCut:
    """``request`` as calls of at most ``most_passes`` passes (points × vectors) and
    ``most_vectors`` input vectors each; one part when it fits. Both at least 1."""
    points, batch = tuple(request.points), len(request.voltages)
    vectors = max(1, min(batch, most_vectors, most_passes))
    per_group = max(1, min(len(points), most_passes // vectors))
    if vectors == batch and per_group == len(points):
        return PointsCut([request], 1)
    parts = [
        replace(request, voltages=request.voltages[start : start + vectors], points=group)
        for group in (points[p : p + per_group] for p in range(0, len(points), per_group))
        for start in range(0, batch, vectors)
    ]
    return PointsCut(parts, -(-batch // vectors))


def joined_points(parts: Sequence[PerturbedMVMResult], slices: int) -> PerturbedMVMResult:
    """The result of a PerturbedMVM from its parts' results (:func:`cut_points`'s order:
    point groups, each in ``slices`` consecutive slices of the batch)."""
    groups = [parts[k : k + slices] for k in range(0, len(parts), slices)]
    currents = np.concatenate(
        [np.concatenate([p.currents for p in group], axis=1) for group in groups]
    )
    return PerturbedMVMResult(
        currents=currents,
        saturated_outputs=sum(p.saturated_outputs for p in parts),
        cells_written=sum(p.cells_written for p in parts),
        clipped_cells=sum(p.clipped_cells for p in parts),
        cells_over_budget=parts[-1].cells_over_budget,  # the region's state after the last
        cost=sum((p.cost for p in parts), Cost()),
    )
