"""RunSequence: board operations in order, in one call, validated all before any runs.

On any board, locally (the driver runs the steps itself) and through gRPC (the
service runs them next to the board, under one hold of it): every step answers
what its own call would, in step order; one invalid step and none runs, the
error naming the step as a path into the request; board-wide calls are not
steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from board_checks import (
    DRIVEN_ROWS,
    assert_currents_close,
    assert_reads_back,
    is_ideal,
    mid_range_g,
    region_of,
    span,
    tile_of,
    write_counts,
)

from sidra.drivers import (
    Board,
    InvalidArgument,
    MVMResult,
    OutOfRange,
    PerturbationPoint,
    PerturbedMVMResult,
    ProgramReport,
    ReadResult,
    Region,
)
from sidra.drivers.requests import (
    MAX_STEPS,
    AdvanceClockRequest,
    GetBoardInfoRequest,
    MVMRequest,
    PerturbedMVMRequest,
    ProgramRequest,
    ReadConductanceRequest,
    TransposeMVMRequest,
)


def _program(tile: int, region: Region, g: np.ndarray) -> ProgramRequest:
    return ProgramRequest(tile, g, region.row_offset, region.col_offset)


def _volts(board: Board, batch: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, board.info.read_voltage_max_v / 2, (batch, width)).astype(np.float32)


def test_steps_run_in_order_and_each_answers_as_its_own_call(board: Board) -> None:
    """Program a region, read it, evaluate two perturbations and pass a batch through it:
    four results of the four types, the read after the Program seeing its targets, the
    PerturbedMVM leaving the region restored for the MVM after it."""
    info = board.info
    region = region_of(info, DRIVEN_ROWS, 5)
    g = mid_range_g(info, np.random.default_rng(90), region.shape)
    v = _volts(board, 3, region.rows, seed=91)
    c = 0.1 * span(info)
    points = (PerturbationPoint(92, c, 1), PerturbationPoint(92, c, -1))
    before = write_counts(board, tile_of(info, 1), region)
    result = board.run_sequence(
        [
            _program(tile_of(info, 1), region, g),
            ReadConductanceRequest(tile_of(info, 1), region),
            PerturbedMVMRequest(tile_of(info, 1), v, points, region),
            MVMRequest(tile_of(info, 1), v, region),
        ]
    )
    program, read, perturbed, mvm = result.results
    assert isinstance(program, ProgramReport) and program.cells_written == region.rows * region.cols
    assert isinstance(read, ReadResult)
    assert_reads_back(read.conductances, g, info)
    assert isinstance(perturbed, PerturbedMVMResult)
    assert perturbed.currents.shape == (2, 3, region.cols)
    assert isinstance(mvm, MVMResult) and mvm.currents.shape == (3, region.cols)
    assert_currents_close(mvm.currents, v, read.conductances, info)
    assert result.cost.time_ns >= program.cost.time_ns + perturbed.cost.time_ns
    grown = write_counts(board, tile_of(info, 1), region) - before
    assert grown.min() >= len(points) + 1  # perturbed twice and restored (and programmed)


@pytest.mark.ideal_only
def test_a_sequence_answers_what_its_steps_answer_one_by_one(board: Board) -> None:
    info = board.info
    region = Region(10, 20, 6, 7)
    g = mid_range_g(info, np.random.default_rng(93), region.shape)
    v = _volts(board, 2, region.rows, seed=94)
    vt = _volts(board, 2, region.cols, seed=95)
    points = (PerturbationPoint(96, 0.1 * span(info), 1),)
    steps = [
        _program(tile_of(info, 2), region, g),
        PerturbedMVMRequest(tile_of(info, 2), v, points, region),
        MVMRequest(tile_of(info, 2), v, region),
        TransposeMVMRequest(tile_of(info, 2), vt, region),
    ]
    together = board.run_sequence(steps).results
    one_by_one = [board.run(step) for step in steps]
    for a, b in zip(together[1:], one_by_one[1:], strict=True):
        assert np.array_equal(a.currents, b.currents)


def test_one_invalid_step_and_none_runs(board: Board) -> None:
    """A valid Program before an MVM of the wrong width: refused as a whole, the error
    naming steps[1].mvm.voltages.shape; no write, no pass, the cells as they were."""
    info = board.info
    region = region_of(info, 4, 4)
    tile = tile_of(info, 3)
    board.program(tile, mid_range_g(info, np.random.default_rng(97), region.shape),
                  row_offset=region.row_offset, col_offset=region.col_offset)  # fmt: skip
    held = board.read_conductance(tile_of(info, 3), region).conductances
    counts, stats = write_counts(board, tile_of(info, 3), region), board.stats()
    g = np.full(region.shape, info.g_max_us, np.float32)
    bad = MVMRequest(tile_of(info, 3), np.zeros((1, region.rows + 1), np.float32), region)
    with pytest.raises(InvalidArgument) as caught:
        board.run_sequence([_program(tile_of(info, 3), region, g), bad])
    assert caught.value.field == "steps[1].mvm.voltages.shape"
    after = board.stats()
    assert (after.cell_writes, after.mvm_passes) == (stats.cell_writes, stats.mvm_passes)
    assert np.array_equal(write_counts(board, tile_of(info, 3), region), counts)
    now = board.read_conductance(tile_of(info, 3), region).conductances
    if is_ideal(info):
        assert np.array_equal(now, held)
    with pytest.raises(OutOfRange) as caught:
        board.run_sequence([_program(info.tile_count + 1, region, g)])
    assert caught.value.field == "steps[0].program.tile"


@pytest.mark.parametrize("count", [0, MAX_STEPS + 1])
def test_the_number_of_steps_is_bounded(board: Board, count: int) -> None:
    info = board.info
    steps = [ReadConductanceRequest(0, region_of(info, 1, 1))] * count
    with pytest.raises(InvalidArgument) as caught:
        board.run_sequence(steps)
    assert caught.value.field == "steps"
    assert f"1 .. {MAX_STEPS} steps" in str(caught.value)


@pytest.mark.parametrize("step", [GetBoardInfoRequest(), AdvanceClockRequest(1.0)])
def test_board_wide_calls_are_not_steps(board: Board, step: object) -> None:
    stats = board.stats()
    with pytest.raises(InvalidArgument) as caught:
        board.run_sequence([ReadConductanceRequest(0, region_of(board.info, 2, 2)), step])
    assert caught.value.field == "steps[1]"
    assert "perturbed_mvm" in str(caught.value)  # the steps allowed are listed
    assert board.stats().clock_s == stats.clock_s


def test_shared_memory_in_a_step_is_refused_naming_it(stub: Any) -> None:
    """A sequence carries its tensors: a step naming shared memory was read as no inputs
    (refused as ``voltages.dtype``, a field not sent) or its outputs left unwritten."""
    import grpc

    from sidra.hil.v1 import board_pb2 as pb

    shared = pb.SharedTensor(region="r", dtype=pb.DTYPE_FLOAT32, shape=[1, 256])
    for step, field in (
        (pb.SequenceStep(mvm=pb.MVMRequest(tile=0, shared_inputs=shared)),
         "steps[0].mvm.shared_inputs"),
        (pb.SequenceStep(transpose_mvm=pb.TransposeMVMRequest(tile=0, shared_outputs=shared)),
         "steps[0].transpose_mvm.shared_outputs"),
    ):  # fmt: skip
        with pytest.raises(grpc.RpcError) as refused:
            stub.RunSequence(pb.RunSequenceRequest(steps=[step]))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith(f"{field}: got 'set'")
