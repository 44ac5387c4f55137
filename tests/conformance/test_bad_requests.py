"""Hostile requests through gRPC: the right status, a message naming field / value / allowed
range, a google.rpc.BadRequest detail and an ErrorInfo, an unchanged board, and a server that
keeps serving, on any board.

Malformed wire messages (wrong dtypes, shapes and byte counts, NaN, unknown enums, huge
shapes, regions past the edge) go through a raw ``stub`` to the board served over gRPC; the
typed-exception side (``OutOfRange`` / ``InvalidArgument`` with ``.field``) goes through the
``remote`` client and is compared with the same board's local driver. The tables, and every
geometry and limit in them, are in bad_requests.py (from the board's info).

The board is shared and may have been used: a baseline (every tile programmed, one region
of tile 1 perturbed) is set when a test first needs it and set again only if something else
wrote to the board. A refusal must leave stats and write counters exactly as they were, and
conductances within bad_requests.assert_same_conductances (bit for bit on an ideal board).
"""

from __future__ import annotations

import re

import grpc
import numpy as np
import pytest
from bad_requests import (
    CASES,
    INVALID,
    TYPED,
    Bad,
    Baseline,
    BaselineKeeper,
    Typed,
    assert_holds_baseline,
    assert_same_typed_error,
    assert_still_serving,
    assert_unchanged,
    bad_request_details,
    raw,
    snapshot,
    stats_equal,
    text,
    write_counts,
)
from board_checks import assert_currents_close, is_ideal, sparse_voltages
from google.protobuf.descriptor import Descriptor

from sidra.client import OutOfRange, RemoteBoard
from sidra.drivers import Board
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server.settings import LimitsSettings

DEFAULT_MAX_BATCH = LimitsSettings().max_batch
"""Most vectors a default ``sidra serve`` takes in one MVM, vectors."""


@pytest.fixture(scope="module")
def keeper(remote: RemoteBoard) -> BaselineKeeper:
    return BaselineKeeper(remote)


@pytest.fixture
def baseline(keeper: BaselineKeeper) -> Baseline:
    return keeper.get()


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_request_is_rejected_cleanly(
    case: Bad, stub: pb_grpc.BoardServiceStub, remote: RemoteBoard, baseline: Baseline
) -> None:
    """Status code, message naming field/value/allowed, BadRequest detail; board unchanged
    (conductances and stats, including modeled cost); the server keeps serving."""
    info = remote.info
    before = snapshot(remote)
    assert_holds_baseline(remote, before, baseline)
    stats_before = remote.stats()

    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, case.rpc)(case.request(info), timeout=10)
    err = caught.value

    assert err.code() == case.code
    message: str = err.details()
    assert message.startswith(f"{case.field}: got "), message
    assert text(case.value, info) in message, message
    assert text(case.allowed, info) in message, message

    bad_request, error_info = bad_request_details(err)
    assert len(bad_request.field_violations) == 1
    assert bad_request.field_violations[0].field == case.field
    assert bad_request.field_violations[0].description == message
    assert error_info.domain == "sidra.hil"
    assert error_info.reason == case.code.name
    assert error_info.metadata["field"] == case.field

    assert stats_equal(remote.stats(), stats_before), "a rejected request was charged"
    assert_unchanged(remote, before)
    assert_still_serving(remote, baseline)


def resolves(message: Descriptor, path: str) -> bool:
    """Walks ``path`` field by field through ``message``'s descriptor."""
    # An element of a repeated message field is named with its index: points[1].sign.
    *parents, leaf = (re.sub(r"\[\d+\]$", "", part) for part in path.split("."))
    for name in parents:
        field = message.fields_by_name.get(name)
        if field is None or field.message_type is None:
            return False
        message = field.message_type
    return leaf in message.fields_by_name


def test_resolves_rejects_paths_that_are_not_in_the_request() -> None:
    """The walker itself: the old Program paths were not fields of ProgramRequest.
    (No board: not a conformance test, runs in every default run.)"""
    program = pb.ProgramRequest.DESCRIPTOR
    assert resolves(program, "conductances.shape")
    assert resolves(program, "row_offset")
    assert not resolves(program, "conductances.rows")
    assert not resolves(program, "conductances.row_offset")
    assert not resolves(program, "tile.rows")  # tile is a scalar, nothing below it
    assert resolves(pb.PerturbRequest.DESCRIPTOR, "region.rows")
    assert resolves(pb.PerturbedMVMRequest.DESCRIPTOR, "points[3].amplitude_us")
    assert not resolves(pb.PerturbedMVMRequest.DESCRIPTOR, "points[3].rows")


def test_every_rpc_with_arguments_has_bad_cases() -> None:
    """CASES covers every RPC of the service that takes an argument (no board)."""
    service = pb.DESCRIPTOR.services_by_name["BoardService"]
    with_arguments = {m.name for m in service.methods if m.input_type.fields}
    assert with_arguments == {case.rpc for case in CASES.values()}


def test_every_bad_request_field_is_a_path_into_its_request(
    stub: pb_grpc.BoardServiceStub, remote: RemoteBoard
) -> None:
    """Each BadRequest field of every case names a field of that RPC's request message
    (a dotted path through nested messages; a repeated leaf such as ``shape`` is fine)."""
    info = remote.info
    service = pb.DESCRIPTOR.services_by_name["BoardService"]
    for name, case in CASES.items():
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, case.rpc)(case.request(info), timeout=10)
        bad_request, error_info = bad_request_details(caught.value)
        request_type = service.methods_by_name[case.rpc].input_type
        for violation in bad_request.field_violations:
            assert resolves(request_type, violation.field), (name, violation.field)
        assert resolves(request_type, error_info.metadata["field"]), name


def test_many_bad_requests_in_a_row_leave_server_healthy(
    stub: pb_grpc.BoardServiceStub, remote: RemoteBoard, baseline: Baseline
) -> None:
    """Every bad request back to back: each rejected, none changes the board (stats and every
    cell's write counter exactly, conductances as read)."""
    info = remote.info
    before = snapshot(remote)
    stats_before = remote.stats()
    counts_before = write_counts(remote)
    for name, case in CASES.items():
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, case.rpc)(case.request(info), timeout=10)
        assert caught.value.code() == case.code, name
    assert stats_equal(remote.stats(), stats_before)
    assert write_counts(remote) == counts_before, "a rejected request wrote cells"
    assert_unchanged(remote, before)
    assert_still_serving(remote, baseline)


# -- typed exceptions on the client, identical to the board's local driver --------------------


@pytest.mark.parametrize("case", list(TYPED.values()), ids=list(TYPED))
def test_remote_raises_same_typed_error_as_local_driver(
    case: Typed, served: tuple[Board, int], remote: RemoteBoard, baseline: Baseline
) -> None:
    """RemoteBoard raises the SIDRA exception class of the status code, with .field, .value and
    .allowed from the server, and the board's own local driver (the one being served) raises
    the same class for the same field; nothing is written or charged."""
    assert_same_typed_error(case, remote, served[0])


# -- message size ---------------------------------------------------------------------------


def test_request_larger_than_grpc_default_4_mib(remote: RemoteBoard, baseline: Baseline) -> None:
    """An MVM request of 4 MiB of inputs (4096 x 256 float32 on a 256-row tile), over
    gRPC's default 4 MiB message once framed, and its reply pass within sidra serve's
    defaults (max_message_mb 8, [limits] max_batch 4096), and every vector is one MVM
    pass. The currents follow V·G (G as read for the baseline): every input driven on an
    ideal board, 8 inputs elsewhere (board_checks)."""
    info = remote.info
    batch = -(-(4 << 20) // (4 * info.rows))
    if batch > DEFAULT_MAX_BATCH:
        pytest.skip(
            f"4 MiB of inputs in {DEFAULT_MAX_BATCH} vectors at most needs a tile of "
            f"{(4 << 20) // (4 * DEFAULT_MAX_BATCH)} rows or more; the board's has {info.rows}"
        )
    rng = np.random.default_rng(64)
    if is_ideal(info):
        vmax = info.read_voltage_max_v
        v = rng.uniform(-vmax, vmax, (batch, info.rows)).astype(np.float32)
    else:
        v = sparse_voltages(info, rng, batch, info.rows, (info.rows - 8) // 2)
    assert v.nbytes >= 4 << 20
    passes_before = remote.stats().mvm_passes

    result = remote.mvm(0, v)

    assert result.currents.shape == (batch, info.cols)
    assert_currents_close(result.currents, v, baseline.read[0], info)
    assert remote.stats().mvm_passes == passes_before + batch


# -- edge cases of the codecs ---------------------------------------------------------------


def test_huge_shape_reports_true_byte_count(
    stub: pb_grpc.BoardServiceStub, remote: RemoteBoard, baseline: Baseline
) -> None:
    """A shape whose byte count overflows int64 is INVALID_ARGUMENT and the message states the
    true expected byte count ((2**32 - 1)**2 x 4), not a wrapped-around negative number.
    (A Program: an MVM of 2**32 - 1 vectors is refused for its batch, limits.max_batch.)"""
    shape = [2**32 - 1, 2**32 - 1]
    request = pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, shape, 1024))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Program(request, timeout=10)
    assert caught.value.code() == INVALID
    message = caught.value.details()
    assert message.startswith("conductances.data: got '1024 bytes'"), message
    assert f"expected {(2**32 - 1) ** 2 * 4} bytes" in message, message
    assert_still_serving(remote, baseline)


def test_remote_float64_beyond_float32_is_out_of_range(
    remote: RemoteBoard, baseline: Baseline
) -> None:
    """RemoteBoard given a finite float64 voltage too large for float32 raises OutOfRange on
    "voltages" (a finite value outside the read voltage range), with no numpy overflow warning
    escaping."""
    before = snapshot(remote)
    with pytest.raises(OutOfRange) as caught:
        remote.mvm(0, np.full((1, remote.info.rows), 1e39))
    assert caught.value.field == "voltages"
    assert_unchanged(remote, before)
