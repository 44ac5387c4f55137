"""Bad input: the right gRPC status, a message naming field / value / allowed range, a
google.rpc.BadRequest detail, an unchanged board, and a server that keeps serving.

Malformed wire messages go through the raw ``stub``; the typed-exception side
(``sidra.client.OutOfRange`` / ``InvalidArgument`` with ``.field``) goes
through the ``remote`` client and is compared with the local driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from google.protobuf.descriptor import Descriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidra.client import InvalidArgument, OutOfRange, Region, RemoteBoard, connect
from sidra.drivers import BoardDriver, BoardStats, open_board
from sidra.emulator.config import BoardProfile, Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server

ROWS = COLS = 256
TILES = 4
F32 = npt.NDArray[np.float32]


# -- board state before / after -----------------------------------------------------------


@dataclass
class Baseline:
    """What the board holds before a bad request: programmed G per tile, tile 1 perturbed."""

    g: list[F32]
    perturbed_tile1: F32


@pytest.fixture
def baseline(remote: RemoteBoard) -> Baseline:
    rng = np.random.default_rng(2024)
    gs = [rng.uniform(1.0, 40.0, (ROWS, COLS)).astype(np.float32) for _ in range(TILES)]
    for tile, g in enumerate(gs):
        remote.program(tile, g)
    remote.perturb(1, seed=11, amplitude_us=0.5, sign=1, region=Region(3, 4, 20, 30))
    return Baseline(gs, remote.read_conductance(1).conductances)


def snapshot(board: RemoteBoard) -> list[F32]:
    return [board.read_conductance(t).conductances for t in range(TILES)]


def assert_unchanged(board: RemoteBoard, before: list[F32]) -> None:
    after = snapshot(board)
    for tile, (a, b) in enumerate(zip(before, after, strict=True)):
        assert np.array_equal(a, b), f"tile {tile} changed by a rejected request"


def assert_still_serving(board: RemoteBoard, base: Baseline) -> None:
    """A valid MVM right after the rejection returns V·G."""
    v = np.random.default_rng(7).uniform(-0.2, 0.2, (3, ROWS)).astype(np.float32)
    got = board.mvm(0, v).currents
    ref = v.astype(np.float64) @ base.g[0].astype(np.float64)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-3)


def stats_equal(a: BoardStats, b: BoardStats) -> bool:
    return (a.mvm_passes, a.cell_writes, a.total_cost, a.clock_s) == (
        b.mvm_passes,
        b.cell_writes,
        b.total_cost,
        b.clock_s,
    )


# -- request builders ---------------------------------------------------------------------


def f32(array: Any) -> pb.Tensor:
    return tensors.encode(np.asarray(array, dtype=np.float32))


def raw(dtype: int, shape: list[int], nbytes: int) -> pb.Tensor:
    """A Tensor exactly as given, however inconsistent (zero-filled data)."""
    tensor = pb.Tensor(shape=shape, data=b"\x00" * nbytes)
    tensor.dtype = dtype  # type: ignore[assignment]  # any enum number, valid or not
    return tensor


def vrow(value: float, width: int = ROWS, batch: int = 2) -> F32:
    """A valid batch of zeros with one bad value at [batch - 1, 5]."""
    v = np.zeros((batch, width), np.float32)
    v[batch - 1, 5] = value
    return v


def gmat(value: float, shape: tuple[int, int] = (3, 4)) -> F32:
    g = np.full(shape, 10.0, np.float32)
    g[1, 2] = value
    return g


def apply(**kw: Any) -> pb.PerturbRequest:
    fields = {
        "tile": 0,
        "mode": pb.PERTURB_MODE_APPLY,
        "seed": 1,
        "amplitude_us": 1.0,
        "sign": 1,
    } | kw
    return pb.PerturbRequest(**fields)


INVALID = grpc.StatusCode.INVALID_ARGUMENT
RANGE = grpc.StatusCode.OUT_OF_RANGE
NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Bad:
    """One bad request: expected code and substrings of field, value and allowed range."""

    rpc: str
    request: Callable[[], Any]
    code: grpc.StatusCode
    field: str
    value: str
    allowed: str


CASES: dict[str, Bad] = {
    # MVM ---------------------------------------------------------------------------------
    "mvm-wrong-width": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=f32(np.zeros((2, 100)))),
        INVALID,
        "voltages.shape",
        "[2, 100]",
        "[batch >= 1, 256] (tile rows)",
    ),
    "mvm-float64": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT64, [1, 256], 2048)),
        INVALID,
        "voltages.dtype",
        "DTYPE_FLOAT64",
        "DTYPE_FLOAT32",
    ),
    "mvm-int32": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_INT32, [1, 256], 1024)),
        INVALID,
        "voltages.dtype",
        "DTYPE_INT32",
        "DTYPE_FLOAT32",
    ),
    "mvm-dtype-unspecified": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_UNSPECIFIED, [1, 256], 1024)),
        INVALID,
        "voltages.dtype",
        "DTYPE_UNSPECIFIED",
        "DTYPE_FLOAT32",
    ),
    "mvm-dtype-unknown-number": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(99, [1, 256], 1024)),
        INVALID,
        "voltages.dtype",
        "got 99",
        "DTYPE_FLOAT32",
    ),
    "mvm-voltages-unset": Bad(
        "MVM",
        lambda: pb.MVMRequest(tile=0),
        INVALID,
        "voltages.dtype",
        "DTYPE_UNSPECIFIED",
        "DTYPE_FLOAT32",
    ),
    "mvm-bytes-short": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [1, 256], 1020)),
        INVALID,
        "voltages.data",
        "1020 bytes",
        "1024 bytes",
    ),
    "mvm-bytes-long": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [1, 256], 2048)),
        INVALID,
        "voltages.data",
        "2048 bytes",
        "1024 bytes",
    ),
    "mvm-3d": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [1, 1, 256], 1024)),
        INVALID,
        "voltages.shape",
        "[1, 1, 256]",
        "2 dimensions",
    ),
    "mvm-1d": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [256], 1024)),
        INVALID,
        "voltages.shape",
        "[256]",
        "2 dimensions",
    ),
    "mvm-empty-batch": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [0, 256], 0)),
        INVALID,
        "voltages.shape",
        "[0, 256]",
        "n >= 1",
    ),
    "mvm-nan": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=f32(vrow(NAN))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "mvm-inf": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=f32(vrow(-INF))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "mvm-over-voltage": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=f32(vrow(0.25))),
        RANGE,
        "voltages",
        "0.25 V at [1, 5]",
        "[-0.2, +0.2] V",
    ),
    "mvm-under-voltage": Bad(
        "MVM",
        lambda: pb.MVMRequest(voltages=f32(vrow(-0.375))),
        RANGE,
        "voltages",
        "-0.375 V at [1, 5]",
        "[-0.2, +0.2] V",
    ),
    "mvm-tile": Bad(
        "MVM",
        lambda: pb.MVMRequest(tile=4, voltages=f32(np.zeros((1, 256)))),
        RANGE,
        "tile",
        "got 4",
        "0 .. 3",
    ),
    "mvm-tile-max": Bad(
        "MVM",
        lambda: pb.MVMRequest(tile=2**32 - 1, voltages=f32(np.zeros((1, 256)))),
        RANGE,
        "tile",
        "got 4294967295",
        "0 .. 3",
    ),
    # TransposeMVM --------------------------------------------------------------------------
    "tmvm-wrong-width": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(voltages=f32(np.zeros((1, 100)))),
        INVALID,
        "voltages.shape",
        "[1, 100]",
        "[batch >= 1, 256] (tile columns)",
    ),
    "tmvm-float64": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(voltages=raw(pb.DTYPE_FLOAT64, [1, 256], 2048)),
        INVALID,
        "voltages.dtype",
        "DTYPE_FLOAT64",
        "DTYPE_FLOAT32",
    ),
    "tmvm-bytes": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [2, 256], 1024)),
        INVALID,
        "voltages.data",
        "1024 bytes",
        "2048 bytes",
    ),
    "tmvm-empty-batch": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(voltages=raw(pb.DTYPE_FLOAT32, [0, 256], 0)),
        INVALID,
        "voltages.shape",
        "[0, 256]",
        "n >= 1",
    ),
    "tmvm-nan": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(voltages=f32(vrow(NAN))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "tmvm-inf": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(voltages=f32(vrow(INF))),
        INVALID,
        "voltages",
        "NaN/Inf",
        "finite",
    ),
    "tmvm-over-voltage": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(voltages=f32(vrow(0.2109375))),
        RANGE,
        "voltages",
        "0.2109375 V at [1, 5]",
        "[-0.2, +0.2] V",
    ),
    "tmvm-tile": Bad(
        "TransposeMVM",
        lambda: pb.TransposeMVMRequest(tile=7, voltages=f32(np.zeros((1, 256)))),
        RANGE,
        "tile",
        "got 7",
        "0 .. 3",
    ),
    # Program -------------------------------------------------------------------------------
    "program-float64": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT64, [2, 2], 32)),
        INVALID,
        "conductances.dtype",
        "DTYPE_FLOAT64",
        "DTYPE_FLOAT32",
    ),
    "program-int32": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=raw(pb.DTYPE_INT32, [2, 2], 16)),
        INVALID,
        "conductances.dtype",
        "DTYPE_INT32",
        "DTYPE_FLOAT32",
    ),
    "program-bytes": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, [2, 3], 20)),
        INVALID,
        "conductances.data",
        "20 bytes",
        "24 bytes",
    ),
    "program-3d": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, [2, 2, 2], 32)),
        INVALID,
        "conductances.shape",
        "[2, 2, 2]",
        "2 dimensions",
    ),
    "program-empty": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=raw(pb.DTYPE_FLOAT32, [0, 4], 0)),
        INVALID,
        "conductances.shape",
        "[0, 4]",
        "n >= 1",
    ),
    "program-nan": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=f32(gmat(NAN))),
        INVALID,
        "conductances",
        "NaN/Inf",
        "finite",
    ),
    "program-inf": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=f32(gmat(INF))),
        INVALID,
        "conductances",
        "NaN/Inf",
        "finite",
    ),
    "program-below-gmin": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=f32(gmat(0.5))),
        RANGE,
        "conductances",
        "0.5 µS at [1, 2]",
        "[1, 40] µS",
    ),
    "program-above-gmax": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=f32(gmat(40.5))),
        RANGE,
        "conductances",
        "40.5 µS at [1, 2]",
        "[1, 40] µS",
    ),
    "program-negative": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=f32(gmat(-3.0))),
        RANGE,
        "conductances",
        "-3 µS",
        "[1, 40] µS",
    ),
    "program-tile": Bad(
        "Program",
        lambda: pb.ProgramRequest(tile=4, conductances=f32(gmat(5.0))),
        RANGE,
        "tile",
        "got 4",
        "0 .. 3",
    ),
    "program-offset-rows": Bad(
        "Program",
        lambda: pb.ProgramRequest(row_offset=250, conductances=f32(np.full((10, 4), 5.0))),
        RANGE,
        "conductances.shape",
        "got [10, 4]",
        "rows in 1 .. 6",
    ),
    "program-offset-cols": Bad(
        "Program",
        lambda: pb.ProgramRequest(
            row_offset=3, col_offset=255, conductances=f32(np.full((2, 2), 5.0))
        ),
        RANGE,
        "conductances.shape",
        "got [2, 2]",
        "cols in 1 .. 1",
    ),
    "program-row-offset-outside": Bad(
        "Program",
        lambda: pb.ProgramRequest(row_offset=256, conductances=f32(np.full((1, 1), 5.0))),
        RANGE,
        "row_offset",
        "got 256",
        "0 .. 255",
    ),
    "program-col-offset-outside": Bad(
        "Program",
        lambda: pb.ProgramRequest(col_offset=1000, conductances=f32(np.full((1, 1), 5.0))),
        RANGE,
        "col_offset",
        "got 1000",
        "0 .. 255",
    ),
    "program-too-tall": Bad(
        "Program",
        lambda: pb.ProgramRequest(conductances=f32(np.full((257, 1), 5.0))),
        RANGE,
        "conductances.shape",
        "got [257, 1]",
        "rows in 1 .. 256",
    ),
    # ReadConductance -----------------------------------------------------------------------
    "read-tile": Bad(
        "ReadConductance",
        lambda: pb.ReadConductanceRequest(tile=4),
        RANGE,
        "tile",
        "got 4",
        "0 .. 3",
    ),
    "read-row-offset": Bad(
        "ReadConductance",
        lambda: pb.ReadConductanceRequest(region=pb.Region(row_offset=256)),
        RANGE,
        "region.row_offset",
        "got 256",
        "0 .. 255",
    ),
    "read-rows": Bad(
        "ReadConductance",
        lambda: pb.ReadConductanceRequest(region=pb.Region(row_offset=200, rows=57)),
        RANGE,
        "region.rows",
        "got 57",
        "1 .. 56",
    ),
    "read-cols": Bad(
        "ReadConductance",
        lambda: pb.ReadConductanceRequest(region=pb.Region(col_offset=10, cols=247)),
        RANGE,
        "region.cols",
        "got 247",
        "1 .. 246",
    ),
    # Perturb -------------------------------------------------------------------------------
    "perturb-mode-unspecified": Bad(
        "Perturb",
        lambda: apply(mode=pb.PERTURB_MODE_UNSPECIFIED),
        INVALID,
        "mode",
        "PERTURB_MODE_UNSPECIFIED",
        "PERTURB_MODE_APPLY or PERTURB_MODE_RESTORE",
    ),
    "perturb-mode-unknown": Bad(
        "Perturb",
        lambda: apply(mode=7),
        INVALID,
        "mode",
        "got 7",
        "PERTURB_MODE_APPLY or PERTURB_MODE_RESTORE",
    ),
    "perturb-sign-0": Bad("Perturb", lambda: apply(sign=0), INVALID, "sign", "got 0", "+1 or -1"),
    "perturb-sign-2": Bad("Perturb", lambda: apply(sign=2), INVALID, "sign", "got 2", "+1 or -1"),
    "perturb-sign-minus-2": Bad(
        "Perturb", lambda: apply(sign=-2), INVALID, "sign", "got -2", "+1 or -1"
    ),
    "perturb-amplitude-nan": Bad(
        "Perturb",
        lambda: apply(amplitude_us=NAN),
        INVALID,
        "amplitude_us",
        "got nan",
        "finite value in (0, 39]",
    ),
    "perturb-amplitude-inf": Bad(
        "Perturb",
        lambda: apply(amplitude_us=INF),
        INVALID,
        "amplitude_us",
        "got inf",
        "finite value in (0, 39]",
    ),
    "perturb-amplitude-negative": Bad(
        "Perturb", lambda: apply(amplitude_us=-1.0), RANGE, "amplitude_us", "got -1.0", "(0, 39] µS"
    ),
    "perturb-amplitude-zero": Bad(
        "Perturb", lambda: apply(amplitude_us=0.0), RANGE, "amplitude_us", "got 0.0", "(0, 39] µS"
    ),
    "perturb-amplitude-too-large": Bad(
        "Perturb", lambda: apply(amplitude_us=39.5), RANGE, "amplitude_us", "got 39.5", "(0, 39] µS"
    ),
    "perturb-apply-tile": Bad("Perturb", lambda: apply(tile=4), RANGE, "tile", "got 4", "0 .. 3"),
    "perturb-restore-tile": Bad(
        "Perturb",
        lambda: pb.PerturbRequest(tile=100, mode=pb.PERTURB_MODE_RESTORE),
        RANGE,
        "tile",
        "got 100",
        "0 .. 3",
    ),
    "perturb-apply-region": Bad(
        "Perturb",
        lambda: apply(region=pb.Region(row_offset=300)),
        RANGE,
        "region.row_offset",
        "got 300",
        "0 .. 255",
    ),
    "perturb-apply-region-cols": Bad(
        "Perturb",
        lambda: apply(region=pb.Region(col_offset=250, cols=7)),
        RANGE,
        "region.cols",
        "got 7",
        "1 .. 6",
    ),
    "perturb-restore-region": Bad(
        "Perturb",
        lambda: pb.PerturbRequest(
            mode=pb.PERTURB_MODE_RESTORE, region=pb.Region(row_offset=255, rows=2)
        ),
        RANGE,
        "region.rows",
        "got 2",
        "1 .. 1",
    ),
    # ReadWriteCounts -----------------------------------------------------------------------
    "counts-tile": Bad(
        "ReadWriteCounts",
        lambda: pb.ReadWriteCountsRequest(tile=4),
        RANGE,
        "tile",
        "got 4",
        "0 .. 3",
    ),
    "counts-region": Bad(
        "ReadWriteCounts",
        lambda: pb.ReadWriteCountsRequest(region=pb.Region(col_offset=256)),
        RANGE,
        "region.col_offset",
        "got 256",
        "0 .. 255",
    ),
    # Calibrate -----------------------------------------------------------------------------
    "calibrate-tile": Bad(
        "Calibrate", lambda: pb.CalibrateRequest(tile=5), RANGE, "tile", "got 5", "0 .. 3"
    ),
    # AdvanceClock: NaN/Inf is malformed, a finite number outside [0, headroom] out of range --
    "clock-nan": Bad(
        "AdvanceClock",
        lambda: pb.AdvanceClockRequest(seconds=NAN),
        INVALID,
        "seconds",
        "got nan",
        "finite seconds in [0, 1e+12]",
    ),
    "clock-inf": Bad(
        "AdvanceClock",
        lambda: pb.AdvanceClockRequest(seconds=INF),
        INVALID,
        "seconds",
        "got inf",
        "finite seconds in [0, 1e+12]",
    ),
    "clock-negative": Bad(
        "AdvanceClock",
        lambda: pb.AdvanceClockRequest(seconds=-1.0),
        RANGE,
        "seconds",
        "got -1.0",
        "seconds in [0, 1e+12]",
    ),
    "clock-past-limit": Bad(
        "AdvanceClock",
        lambda: pb.AdvanceClockRequest(seconds=1.7e308),
        RANGE,
        "seconds",
        "got 1.7e+308",
        "may not pass 1e+12 s",
    ),
}


def bad_request_details(
    err: grpc.RpcError,
) -> tuple[error_details_pb2.BadRequest, error_details_pb2.ErrorInfo]:
    status = rpc_status.from_call(err)
    assert status is not None, "no grpc-status-details-bin trailer"
    assert status.code == err.code().value[0]
    found: dict[str, Any] = {}
    for detail in status.details:
        for cls in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                found[cls.__name__] = msg
    assert set(found) == {"BadRequest", "ErrorInfo"}
    return found["BadRequest"], found["ErrorInfo"]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_request_is_rejected_cleanly(
    case: Bad, stub: pb_grpc.BoardServiceStub, remote: RemoteBoard, baseline: Baseline
) -> None:
    """Status code, message naming field/value/allowed, BadRequest detail; board unchanged
    (conductances and stats, including modeled cost); the server keeps serving."""
    before = snapshot(remote)
    stats_before = remote.stats()

    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, case.rpc)(case.request(), timeout=10)
    err = caught.value

    assert err.code() == case.code
    message: str = err.details()
    assert message.startswith(f"{case.field}: got "), message
    assert case.value in message, message
    assert case.allowed in message, message

    bad_request, error_info = bad_request_details(err)
    assert len(bad_request.field_violations) == 1
    assert bad_request.field_violations[0].field == case.field
    assert bad_request.field_violations[0].description == message
    assert error_info.domain == "sidra.hil"
    assert error_info.reason == case.code.name
    assert error_info.metadata["field"] == case.field

    assert stats_equal(remote.stats(), stats_before), "a rejected request was charged"
    assert_unchanged(remote, before)
    assert np.array_equal(before[1], baseline.perturbed_tile1)
    assert_still_serving(remote, baseline)


def resolves(message: Descriptor, path: str) -> bool:
    """Walks ``path`` field by field through ``message``'s descriptor."""
    *parents, leaf = path.split(".")
    for name in parents:
        field = message.fields_by_name.get(name)
        if field is None or field.message_type is None:
            return False
        message = field.message_type
    return leaf in message.fields_by_name


def test_resolves_rejects_paths_that_are_not_in_the_request() -> None:
    """The walker itself: the old Program paths were not fields of ProgramRequest."""
    program = pb.ProgramRequest.DESCRIPTOR
    assert resolves(program, "conductances.shape")
    assert resolves(program, "row_offset")
    assert not resolves(program, "conductances.rows")
    assert not resolves(program, "conductances.row_offset")
    assert not resolves(program, "tile.rows")  # tile is a scalar, nothing below it
    assert resolves(pb.PerturbRequest.DESCRIPTOR, "region.rows")


def test_every_rpc_with_arguments_has_bad_cases() -> None:
    """CASES covers every RPC of the service that takes an argument."""
    service = pb.DESCRIPTOR.services_by_name["BoardService"]
    with_arguments = {m.name for m in service.methods if m.input_type.fields}
    assert with_arguments == {case.rpc for case in CASES.values()}


def test_every_bad_request_field_is_a_path_into_its_request(
    stub: pb_grpc.BoardServiceStub,
) -> None:
    """Each BadRequest field of every case names a field of that RPC's request message
    (a dotted path through nested messages; a repeated leaf such as ``shape`` is fine)."""
    service = pb.DESCRIPTOR.services_by_name["BoardService"]
    for name, case in CASES.items():
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, case.rpc)(case.request(), timeout=10)
        bad_request, error_info = bad_request_details(caught.value)
        request_type = service.methods_by_name[case.rpc].input_type
        for violation in bad_request.field_violations:
            assert resolves(request_type, violation.field), (name, violation.field)
        assert resolves(request_type, error_info.metadata["field"]), name


def test_many_bad_requests_in_a_row_leave_server_healthy(
    stub: pb_grpc.BoardServiceStub, remote: RemoteBoard, baseline: Baseline
) -> None:
    """Every bad request back to back: each rejected, none changes the board."""
    before = snapshot(remote)
    stats_before = remote.stats()
    for name, case in CASES.items():
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, case.rpc)(case.request(), timeout=10)
        assert caught.value.code() == case.code, name
    assert stats_equal(remote.stats(), stats_before)
    assert_unchanged(remote, before)
    assert_still_serving(remote, baseline)


# -- typed exceptions on the client, identical to the local driver ---------------------------

Call = Callable[[Any], Any]

TYPED: dict[str, tuple[Call, type[InvalidArgument], str, str]] = {
    "mvm-width": (
        lambda b: b.mvm(0, np.zeros((1, 100))),
        InvalidArgument,
        "voltages.shape",
        "[1, 100]",
    ),
    "mvm-3d": (
        lambda b: b.mvm(0, np.zeros((2, 2, 256))),
        InvalidArgument,
        "voltages.shape",
        "[2, 2, 256]",
    ),
    "mvm-nan": (lambda b: b.mvm(0, vrow(NAN)), InvalidArgument, "voltages", "NaN"),
    "mvm-over-voltage": (lambda b: b.mvm(0, vrow(0.5)), OutOfRange, "voltages", "0.5 V"),
    "tmvm-tile": (lambda b: b.transpose_mvm(9, np.zeros((1, 256))), OutOfRange, "tile", "9"),
    "program-above-gmax": (
        lambda b: b.program(0, np.full((2, 2), 50.0)),
        OutOfRange,
        "conductances",
        "50 µS",
    ),
    "program-empty": (
        lambda b: b.program(0, np.zeros((0, 3))),
        InvalidArgument,
        "conductances.shape",
        "[0, 3]",
    ),
    "program-inf": (lambda b: b.program(0, gmat(INF)), InvalidArgument, "conductances", "Inf"),
    "program-offset": (
        lambda b: b.program(0, np.full((3, 3), 5.0), row_offset=255),
        OutOfRange,
        "conductances.shape",
        "[3, 3]",
    ),
    "read-region": (
        lambda b: b.read_conductance(0, Region(0, 300)),
        OutOfRange,
        "region.col_offset",
        "300",
    ),
    "read-tile": (lambda b: b.read_conductance(4), OutOfRange, "tile", "4"),
    "perturb-amplitude": (
        lambda b: b.perturb(0, seed=1, amplitude_us=100.0),
        OutOfRange,
        "amplitude_us",
        "100",
    ),
    "perturb-amplitude-nan": (
        lambda b: b.perturb(0, seed=1, amplitude_us=NAN),
        InvalidArgument,
        "amplitude_us",
        "nan",
    ),
    "perturb-sign": (
        lambda b: b.perturb(0, seed=1, amplitude_us=1.0, sign=0),
        InvalidArgument,
        "sign",
        "0",
    ),
    "restore-tile": (lambda b: b.restore(4), OutOfRange, "tile", "4"),
}


# Malformed tensors are caught by the server's wire decoder, whose wording ("2 dimensions
# [n >= 1, n >= 1]") differs from the local driver's; field and class still match.
WIRE_SHAPE_CHECKED = {"voltages.shape", "conductances.shape"}


@pytest.fixture
def local_board() -> Iterator[BoardDriver]:
    with open_board("emu://?preset=ideal&seed=1") as board:
        yield board


@pytest.mark.parametrize(("call", "cls", "field", "value"), list(TYPED.values()), ids=list(TYPED))
def test_remote_raises_same_typed_error_as_local_driver(
    call: Call,
    cls: type[InvalidArgument],
    field: str,
    value: str,
    remote: RemoteBoard,
    local_board: BoardDriver,
    baseline: Baseline,
) -> None:
    """RemoteBoard raises the SIDRA exception class of the status code, with .field, .value and
    .allowed from the server, and the local driver raises the same class for the same field."""
    before = snapshot(remote)
    with pytest.raises(cls) as remote_caught:
        call(remote)
    with pytest.raises(cls) as local_caught:
        call(local_board)
    for exc in (remote_caught.value, local_caught.value):
        assert type(exc) is cls  # InvalidArgument cases must not come back as OutOfRange
        assert isinstance(exc, ValueError)
        assert exc.field == field
        assert value in str(exc.value)
        assert exc.allowed
        assert str(exc).startswith(f"{field}: got ")
    if field not in WIRE_SHAPE_CHECKED:
        # Same check on both sides: the server's message reaches the caller verbatim.
        assert str(remote_caught.value) == str(local_caught.value)
        assert remote_caught.value.allowed == local_caught.value.allowed
    assert_unchanged(remote, before)


# -- wrong shape on a non-square board: rows and columns cannot be confused ------------------


@pytest.fixture
def narrow_remote() -> Iterator[RemoteBoard]:
    """An exact (ideal-physics) board of 2 tiles x 16 rows x 8 columns, served over gRPC."""
    profile = BoardProfile(preset="narrow-test", geometry=Geometry(tiles=2, rows=16, cols=8))
    driver = EmulatorDriver(profile, seed=0)
    server, port = create_server(driver, "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as board:
            yield board
    finally:
        server.stop(grace=None)


def test_mvm_and_transpose_widths_on_non_square_tile(narrow_remote: RemoteBoard) -> None:
    """MVM takes [batch, rows] and TransposeMVM [batch, cols]; swapping them is INVALID_ARGUMENT
    naming the expected width; the correct widths compute V·G and V·Gᵀ."""
    board = narrow_remote
    g = np.random.default_rng(31).uniform(1.0, 40.0, (16, 8)).astype(np.float32)
    board.program(1, g)

    with pytest.raises(InvalidArgument) as caught:
        board.mvm(1, np.zeros((2, 8), np.float32))  # column width into MVM
    assert type(caught.value) is InvalidArgument
    assert caught.value.field == "voltages.shape"
    assert "[2, 8]" in str(caught.value)
    assert "[batch >= 1, 16] (tile rows)" in str(caught.value)

    with pytest.raises(InvalidArgument) as caught:
        board.transpose_mvm(1, np.zeros((1, 16), np.float32))  # row width into TransposeMVM
    assert type(caught.value) is InvalidArgument
    assert caught.value.field == "voltages.shape"
    assert "[1, 16]" in str(caught.value)
    assert "[batch >= 1, 8] (tile columns)" in str(caught.value)

    with pytest.raises(OutOfRange) as out:
        board.mvm(2, np.zeros((1, 16), np.float32))
    assert out.value.field == "tile"
    assert "0 .. 1" in str(out.value)

    assert np.array_equal(board.read_conductance(1).conductances, g)
    rng = np.random.default_rng(32)
    v = rng.uniform(-0.2, 0.2, (3, 16)).astype(np.float32)
    u = rng.uniform(-0.2, 0.2, (3, 8)).astype(np.float32)
    np.testing.assert_allclose(
        board.mvm(1, v).currents, v.astype(np.float64) @ g, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        board.transpose_mvm(1, u).currents, u.astype(np.float64) @ g.T, rtol=1e-5, atol=1e-5
    )


# -- message size ---------------------------------------------------------------------------


def test_request_larger_than_grpc_default_4_mib(remote: RemoteBoard) -> None:
    """An 8 MiB MVM request (8192 x 256 float32) and its 8 MiB reply pass the 64 MiB limit."""
    rng = np.random.default_rng(64)
    g = rng.uniform(1.0, 40.0, (ROWS, COLS)).astype(np.float32)
    remote.program(0, g)
    v = rng.uniform(-0.2, 0.2, (8192, ROWS)).astype(np.float32)
    assert v.nbytes == 8 * 1024 * 1024
    passes_before = remote.stats().mvm_passes

    result = remote.mvm(0, v)

    assert result.currents.shape == (8192, COLS)
    ref = v.astype(np.float64) @ g.astype(np.float64)
    np.testing.assert_allclose(result.currents, ref, rtol=1e-5, atol=1e-3)
    assert remote.stats().mvm_passes == passes_before + 8192


# -- edge cases of the codecs ---------------------------------------------------------------


def test_huge_shape_reports_true_byte_count(
    stub: pb_grpc.BoardServiceStub, remote: RemoteBoard, baseline: Baseline
) -> None:
    """A shape whose byte count overflows int64 is INVALID_ARGUMENT and the message states the
    true expected byte count ((2**32 - 1)**2 x 4), not a wrapped-around negative number."""
    shape = [2**32 - 1, 2**32 - 1]
    request = pb.MVMRequest(voltages=raw(pb.DTYPE_FLOAT32, shape, 1024))
    with pytest.raises(grpc.RpcError) as caught:
        stub.MVM(request, timeout=10)
    assert caught.value.code() == INVALID
    message = caught.value.details()
    assert message.startswith("voltages.data: got '1024 bytes'"), message
    assert f"expected {(2**32 - 1) ** 2 * 4} bytes" in message, message
    assert_still_serving(remote, baseline)


def test_remote_float64_beyond_float32_is_out_of_range(
    remote: RemoteBoard, baseline: Baseline
) -> None:
    """RemoteBoard given a finite float64 voltage too large for float32 raises OutOfRange on
    "voltages" (a finite value outside ±0.2 V), with no numpy overflow warning escaping."""
    before = snapshot(remote)
    with pytest.raises(OutOfRange) as caught:
        remote.mvm(0, np.full((1, ROWS), 1e39))
    assert caught.value.field == "voltages"
    assert_unchanged(remote, before)
