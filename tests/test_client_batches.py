"""How the clients cut a PerturbedMVM (sidra.client.batches.split): as one RunSequence of
its parts when only ``max_batch`` cuts it, as consecutive calls when the message size
does, and whole when it fits; the join gives back the whole call's currents."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from sidra.client.batches import split
from sidra.drivers import Board, open_board
from sidra.drivers.requests import PerturbedMVMRequest, SequenceRequest
from sidra.drivers.types import PerturbationPoint, Region
from sidra.hil.chunks import CHUNK_FRAMING_BYTES

POINTS = tuple(PerturbationPoint(seed, 0.5, sign) for seed in (3, 4) for sign in (1, -1))
REGION = Region(0, 0, 16, 8)


@pytest.fixture
def board() -> Iterator[Board]:
    with open_board("emu://?preset=ideal&seed=0") as b:
        rng = np.random.default_rng(0)
        b.program(0, rng.uniform(5.0, 30.0, (16, 8)).astype(np.float32))
        yield b


def _request(batch: int) -> PerturbedMVMRequest:
    v = np.random.default_rng(1).uniform(-0.1, 0.1, (batch, 16)).astype(np.float32)
    return PerturbedMVMRequest(0, v, POINTS, REGION)


def test_cut_for_max_batch_alone_goes_as_one_sequence(board: Board) -> None:
    request = _request(batch=8)  # 4 points x 8 vectors = 32 passes
    cut = split(request, 16, 4 * 2**20, lambda: board.info)
    assert cut is not None
    assert len(cut.parts) == 1 and isinstance(cut.parts[0], SequenceRequest)
    steps = cut.parts[0].steps
    assert [len(step.points) for step in steps] == [2, 2]
    joined = cut.join([board.run(part) for part in cut.parts])
    whole = board.run(request)
    np.testing.assert_array_equal(joined.currents, whole.currents)  # the ideal board


def test_without_a_message_bound_the_parts_come_flat(board: Board) -> None:
    """message_bytes 0 is how a RunSequence's steps are cut: their parts become steps of
    the one sequence, so they must not be a sequence of their own."""
    request = _request(batch=8)
    cut = split(request, 16, 0, lambda: board.info)
    assert cut is not None
    assert [type(part) for part in cut.parts] == [PerturbedMVMRequest] * 2
    joined = cut.join([board.run(part) for part in cut.parts])
    np.testing.assert_array_equal(joined.currents, board.run(request).currents)


def test_cut_for_the_message_size_goes_as_consecutive_calls(board: Board) -> None:
    request = _request(batch=256)  # answer: 4 points x 256 x 8 float32 = 32 KiB
    room = 16 * 2**10  # past the framing every message keeps
    cut = split(request, 4096, CHUNK_FRAMING_BYTES + room, lambda: board.info)
    assert cut is not None
    assert len(cut.parts) > 1
    assert all(isinstance(part, PerturbedMVMRequest) for part in cut.parts)
    joined = cut.join([board.run(part) for part in cut.parts])
    np.testing.assert_array_equal(joined.currents, board.run(request).currents)


def test_a_call_that_fits_is_not_cut(board: Board) -> None:
    assert split(_request(batch=8), 32, 4 * 2**20, lambda: board.info) is None
