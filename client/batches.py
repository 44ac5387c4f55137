"""A pass batch larger than the server takes in one call, sent as consecutive calls.

``sidra serve`` refuses an MVM or TransposeMVM of more vectors than its ``[limits]
max_batch``, and a request over its message size (RESOURCE_EXHAUSTED): one call must
not hold the board for long, nor one message its memory. The client sends such a batch
as calls of at most as many vectors as both allow, each way (the request's inputs and
the answer's outputs each fit one message), in order, and joins their results
(sidra.drivers.batches, as the serial and PCIe drivers do for their buffers). Other
principals' calls may run on the board between the parts, as between any two calls.

A PerturbedMVM counts its points times its vectors against ``max_batch`` and is cut by
its points first (sidra.drivers.batches.cut_points). Cut for ``max_batch`` alone, its
parts go as one RunSequence (one round trip, one hold of the board); cut for the
message sizes, as consecutive calls. A RunSequence with such a step is sent as one
sequence of the cut steps, still under one hold of the board, when they come to at most
MAX_STEPS; a longer one is sent as it is, for the service to refuse with its limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sidra.drivers.batches import PassRequest, cut, cut_points, joined
from sidra.drivers.requests import (
    MAX_STEPS,
    MVMRequest,
    PerturbedMVMRequest,
    SequenceRequest,
    TransposeMVMRequest,
)
from sidra.drivers.types import BoardInfo, Region, SequenceResult
from sidra.hil.chunks import CHUNK_FRAMING_BYTES

__all__ = ["DEFAULT_MAX_BATCH", "Split", "joined", "parts", "per_call", "split"]

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


@dataclass(frozen=True)
class Split:
    """A request sent as ``parts`` in order; ``join`` makes their results the result of
    the request as a whole."""

    parts: Sequence[Any]
    join: Callable[[list[Any]], Any]


def split(
    request: object, max_batch: int, message_bytes: int, info: Callable[[], BoardInfo]
) -> Split | None:
    """``request`` as consecutive calls that each fit ``max_batch`` passes and
    ``message_bytes`` each way (0: no message bound), or None when it fits in one call
    or is no pass, PerturbedMVM or RunSequence."""
    if isinstance(request, PerturbedMVMRequest):
        return _perturbed(request, max_batch, message_bytes, info)
    if isinstance(request, SequenceRequest):
        return _sequence(request, max_batch, info)
    cut_parts = parts(request, max_batch, message_bytes, info)
    return None if cut_parts is None else Split(cut_parts, joined)


def _perturbed(
    request: PerturbedMVMRequest,
    max_batch: int,
    message_bytes: int,
    info: Callable[[], BoardInfo],
) -> Split | None:
    try:
        shape, points = np.shape(request.voltages), len(request.points)
    except (ValueError, TypeError):  # malformed: sent whole, to be refused with its field
        return None
    if len(shape) != 2 or shape[0] < 1 or points < 1:
        return None
    most_passes = most_vectors = max_batch
    room = message_bytes - CHUNK_FRAMING_BYTES
    passes = shape[0] * points
    outputs = 0
    if room > 0:  # the inputs, and the answer's currents [points, batch, cols], each fit
        board = info()
        if passes <= max_batch and 4 * passes * max(shape[1], board.rows, board.cols) <= room:
            return None  # the usual case (an SPSA step's minibatch): no region to read
        region = request.region if isinstance(request.region, Region) else Region()
        outputs = max(region.resolve(board.rows, board.cols).cols, 1)
        most_passes = max(1, min(max_batch, room // (4 * outputs)))
        most_vectors = max(1, min(max_batch, room // (4 * max(shape[1], 1))))
    elif passes <= max_batch:
        return None
    cut_request = cut_points(request, most_passes, most_vectors)
    parts = cut_request.parts
    if len(parts) == 1:
        return None
    sent = sum(4 * len(part.voltages) * shape[1] + 32 * len(part.points) for part in parts)
    if room > 0 and max(sent, 4 * passes * outputs) <= room and len(parts) <= MAX_STEPS:
        # Cut for max_batch alone: the parts go as one RunSequence, one round trip
        # under one hold of the board (no other call runs between them).
        return Split(
            [SequenceRequest(tuple(parts))], lambda done: cut_request.joined(done[0].results)
        )
    return Split(parts, cut_request.joined)


def _sequence(
    request: SequenceRequest, max_batch: int, info: Callable[[], BoardInfo]
) -> Split | None:
    try:
        steps = list(request.steps)
    except TypeError:
        return None
    # Within one message the sequence's bytes are what they are: only max_batch binds.
    splits = [split(step, max_batch, 0, info) for step in steps]
    if all(s is None for s in splits):
        return None
    sent = [step for step, s in zip(steps, splits, strict=True) for step in _parts_of(step, s)]
    if len(sent) > MAX_STEPS:  # not one sequence any more: the service refuses it whole
        return None

    def rejoin(results: list[Any]) -> SequenceResult:
        answers: tuple[Any, ...] = results[0].results
        whole, at = [], 0
        for s in splits:
            count = 1 if s is None else len(s.parts)
            mine = list(answers[at : at + count])
            whole.append(mine[0] if s is None else s.join(mine))
            at += count
        return SequenceResult(tuple(whole))

    return Split([SequenceRequest(tuple(sent))], rejoin)


def _parts_of(step: Any, s: Split | None) -> Sequence[Any]:
    return [step] if s is None else s.parts
