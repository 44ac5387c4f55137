"""A pass batch larger than the server takes in one call, sent as consecutive calls.

``sidra serve`` refuses an MVM or TransposeMVM of more vectors than its ``[limits]
max_batch`` (RESOURCE_EXHAUSTED): one call must not hold the board for long. The client
sends such a batch as calls of at most ``max_batch`` vectors each, in order, and joins
their results into the one the whole batch would give: every vector is its own pass, so
the currents are the same rows, the saturated outputs and costs add up. Other
principals' calls may run on the board between the parts, as between any two calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sidra.drivers.requests import MVMRequest, TransposeMVMRequest
from sidra.drivers.types import Cost, MVMResult

__all__ = ["DEFAULT_MAX_BATCH", "joined", "parts"]

DEFAULT_MAX_BATCH = 4096
"""Most vectors one MVM call carries unless told otherwise: ``sidra serve``'s default
``[limits] max_batch``, vectors."""

PassRequest = MVMRequest | TransposeMVMRequest


def parts(request: object, max_batch: int) -> list[PassRequest] | None:
    """``request`` cut into consecutive requests of at most ``max_batch`` vectors, or
    None when it is no pass or fits in one call (shared-memory passes are never cut)."""
    if not isinstance(request, MVMRequest | TransposeMVMRequest):
        return None
    inputs = request.voltages if request.input_codes is None else request.input_codes
    if inputs is None or np.ndim(inputs) != 2 or len(inputs) <= max_batch:
        return None
    field = "voltages" if request.input_codes is None else "input_codes"
    return [
        dataclasses.replace(request, **{field: inputs[start : start + max_batch]})
        for start in range(0, len(inputs), max_batch)
    ]


def joined(results: Sequence[MVMResult]) -> MVMResult:
    """The result of the whole batch from its parts' results, in order."""
    first = results[0]
    codes = [r.output_codes for r in results]
    return MVMResult(
        currents=np.concatenate([r.currents for r in results]),
        saturated_outputs=sum(r.saturated_outputs for r in results),
        cost=sum((r.cost for r in results), Cost()),
        output_codes=None if codes[0] is None else np.concatenate(codes),  # type: ignore[arg-type]
        dac_step_v=first.dac_step_v,
        adc_step_ua=first.adc_step_ua,
    )
