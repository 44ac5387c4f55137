"""A pass batch larger than the server takes in one call, sent as consecutive calls.

``sidra serve`` refuses an MVM or TransposeMVM of more vectors than its ``[limits]
max_batch`` (RESOURCE_EXHAUSTED): one call must not hold the board for long. The client
sends such a batch as calls of at most ``max_batch`` vectors each, in order, and joins
their results (sidra.drivers.batches, as the serial and PCIe drivers do for their
buffers). Other principals' calls may run on the board between the parts, as between
any two calls.
"""

from __future__ import annotations

import numpy as np

from sidra.drivers.batches import PassRequest, cut, joined
from sidra.drivers.requests import MVMRequest, TransposeMVMRequest

__all__ = ["DEFAULT_MAX_BATCH", "joined", "parts"]

DEFAULT_MAX_BATCH = 4096
"""Most vectors one MVM call carries unless told otherwise: ``sidra serve``'s default
``[limits] max_batch``, vectors."""


def parts(request: object, max_batch: int) -> list[PassRequest] | None:
    """``request`` cut into consecutive requests of at most ``max_batch`` vectors, or
    None when it is no pass or fits in one call (shared-memory passes are never cut)."""
    if not isinstance(request, MVMRequest | TransposeMVMRequest):
        return None
    inputs = request.voltages if request.input_codes is None else request.input_codes
    try:
        shape = np.shape(inputs)
    except ValueError:  # ragged: sent whole, to be refused with its field
        return None
    if inputs is None or len(shape) != 2 or shape[0] <= max_batch:
        return None
    return cut(request, max_batch)
