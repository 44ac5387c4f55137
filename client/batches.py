"""A pass batch larger than the server takes in one call, sent as consecutive calls.

``sidra serve`` refuses an MVM or TransposeMVM of more vectors than its ``[limits]
max_batch``, and a request over its message size (RESOURCE_EXHAUSTED): one call must
not hold the board for long, nor one message its memory. The client sends such a batch
as calls of at most as many vectors as both allow, each way (the request's inputs and
the answer's outputs each fit one message), in order, and joins their results
(sidra.drivers.batches, as the serial and PCIe drivers do for their buffers). Other
principals' calls may run on the board between the parts, as between any two calls.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sidra.drivers.batches import PassRequest, cut, joined
from sidra.drivers.requests import MVMRequest, TransposeMVMRequest
from sidra.drivers.types import BoardInfo, Region
from sidra.hil.chunks import CHUNK_FRAMING_BYTES

__all__ = ["DEFAULT_MAX_BATCH", "joined", "parts", "per_call"]

DEFAULT_MAX_BATCH = 4096
"""Most vectors one MVM call carries unless told otherwise: ``sidra serve``'s default
``[limits] max_batch``, vectors."""


def parts(
    request: object, max_batch: int, message_bytes: int, info: Callable[[], BoardInfo]
) -> list[PassRequest] | None:
    """``request`` cut into consecutive requests of at most :func:`per_call` vectors, or
    None when it is no pass or fits in one call (shared-memory passes are never cut).
    ``info``: the board's description, asked only for a batch that may not fit."""
    if not isinstance(request, MVMRequest | TransposeMVMRequest):
        return None
    inputs = request.voltages if request.input_codes is None else request.input_codes
    try:
        shape = np.shape(inputs)
    except ValueError:  # ragged: sent whole, to be refused with its field
        return None
    if inputs is None or len(shape) != 2 or shape[0] <= 1:
        return None
    most = per_call(request, shape[1], max_batch, message_bytes, info)
    return None if shape[0] <= most else cut(request, most)


def per_call(
    request: PassRequest,
    inputs: int,
    max_batch: int,
    message_bytes: int,
    info: Callable[[], BoardInfo],
) -> int:
    """Most vectors of ``request`` (``inputs`` values each) one call carries: at most
    ``max_batch``, and as many as leave the request and its answer each within
    ``message_bytes`` less the framing (4 bytes a value: float32 voltages and
    currents, or converter codes of at most 32 bits, plus 2 bytes an output for the
    ADC codes an answer may carry beside its currents)."""
    room = message_bytes - CHUNK_FRAMING_BYTES
    if room <= 0:
        return max_batch
    board = info()
    widest = 6 * max(inputs, board.rows, board.cols)  # no region has more outputs
    if max_batch * widest <= room:  # the usual case (a training minibatch): no region to read
        return max_batch
    region = request.region
    if isinstance(region, Region):
        outputs = request.region_outputs(region.resolve(board.rows, board.cols))
    else:  # the whole tile (a malformed region is refused, whole, by the server)
        outputs = board.cols if isinstance(request, MVMRequest) else board.rows
    per_vector = max(4 * inputs, (6 if request.output_codes else 4) * outputs, 1)
    return max(1, min(max_batch, room // per_vector))
