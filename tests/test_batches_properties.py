"""Properties of cutting a PerturbedMVM into calls and joining their results
(sidra.drivers.batches), over generated sizes and bounds.

Every part keeps within both bounds (passes and vectors) unless one pass alone
exceeds them, the batch is cut only when it alone does not fit, and joining the parts' results gives
the whole call's: each output in its place, the counts summed, the region's
state taken from the last part.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sidra.drivers.batches import cut_points
from sidra.drivers.requests import PerturbedMVMRequest
from sidra.drivers.types import Cost, PerturbationPoint, PerturbedMVMResult

COLS = 3


def evaluated(request: PerturbedMVMRequest, over_budget: int) -> PerturbedMVMResult:
    """What a board would answer, made so each output names its point and vector."""
    points = np.array([p.sign * p.seed for p in request.points], np.float32)
    vectors = request.voltages[:, 0]
    currents = points[:, None, None] * 1000 + vectors[None, :, None] + np.arange(COLS)
    return PerturbedMVMResult(
        currents=currents.astype(np.float32),
        saturated_outputs=len(request.points),
        cells_written=len(request.points) + 1,
        clipped_cells=len(vectors),
        cells_over_budget=over_budget,
        cost=Cost(float(len(request.points) * len(vectors)), 1.0),
    )


@settings(max_examples=300, deadline=None)
@given(
    points=st.integers(1, 64),
    batch=st.integers(1, 40),
    most_passes=st.integers(1, 200),
    most_vectors=st.integers(1, 50),
)
def test_parts_keep_within_bounds_and_join_to_the_whole(
    points: int, batch: int, most_passes: int, most_vectors: int
) -> None:
    request = PerturbedMVMRequest(
        0,
        np.arange(batch, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32),
        tuple(PerturbationPoint(k + 1, 1.0, 1 if k % 2 else -1) for k in range(points)),
    )
    cut = cut_points(request, most_passes, most_vectors)
    for part in cut.parts:
        vectors, count = len(part.voltages), len(part.points)
        assert vectors <= max(1, min(most_passes, most_vectors))
        assert count * vectors <= most_passes or count == 1
        # The batch is cut only when it alone does not fit one call.
        assert vectors == batch or batch > min(most_passes, most_vectors)
    assert (len(cut.parts) == 1) == (points * batch <= most_passes and batch <= most_vectors)
    results = [evaluated(part, k) for k, part in enumerate(cut.parts)]
    joined = cut.joined(results)
    whole = evaluated(request, len(cut.parts) - 1)
    np.testing.assert_array_equal(joined.currents, whole.currents)
    groups = len(cut.parts) // cut.slices
    assert groups * cut.slices == len(cut.parts)
    assert joined.saturated_outputs == points * cut.slices  # every point once per slice
    assert joined.cells_written == points * cut.slices + len(cut.parts)  # and a restore
    assert joined.clipped_cells == batch * groups  # every vector once per group
    assert joined.cells_over_budget == whole.cells_over_budget  # the last part's
    assert joined.cost.time_ns == whole.cost.time_ns
