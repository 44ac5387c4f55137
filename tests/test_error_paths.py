"""BadRequest names only real fields of the request message.

test_bad_input.py walks every argument error the suite provokes per RPC; here the
rule's two sides in isolation: the path check itself, and an argument error that
is about the board's state ("endurance"), which travels in ErrorInfo alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidra.drivers import OutOfRange
from sidra.emulator.config import BoardProfile, Endurance, EndurancePolicy, Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server import create_server
from sidra.server.status import is_request_path, to_status

PROGRAM = pb.ProgramRequest.DESCRIPTOR


@pytest.mark.parametrize(
    ("path", "real"),
    [
        ("tile", True),
        ("row_offset", True),
        ("conductances", True),
        ("conductances.shape", True),
        ("conductances.data", True),
        ("conductances.rows", False),
        ("conductances.row_offset", False),
        ("region.rows", False),  # ProgramRequest has no region
        ("tile.rows", False),  # a scalar has no fields
        ("endurance", False),
        ("request", False),
        ("", False),
    ],
)
def test_is_request_path(path: str, real: bool) -> None:
    assert is_request_path(PROGRAM, path) is real


def _details(status: grpc.Status) -> set[str]:
    """The type names of the details in a status's rich-status trailer."""
    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    return {d.TypeName() for d in status_pb2.Status.FromString(raw).details}


def test_to_status_drops_bad_request_for_a_field_not_in_the_request() -> None:
    """With the request type known, a field of it gets a BadRequest; "endurance" does not,
    but keeps its field, value and allowed text in ErrorInfo."""
    inside = to_status(OutOfRange("row_offset", 300, "0 .. 255"), PROGRAM)
    outside = to_status(OutOfRange("endurance", "4 cells", "fewer writes"), PROGRAM)
    assert _details(inside) == {"google.rpc.BadRequest", "google.rpc.ErrorInfo"}
    assert _details(outside) == {"google.rpc.ErrorInfo"}


@pytest.fixture
def worn_stub() -> Iterator[pb_grpc.BoardServiceStub]:
    """An exact 1-tile 8 x 8 board whose cells take one write each (REFUSE), all spent."""
    profile = BoardProfile(
        preset="worn-test",
        geometry=Geometry(tiles=1, rows=8, cols=8),
        endurance=Endurance(write_budget=1, policy=EndurancePolicy.REFUSE),
    )
    driver = EmulatorDriver(profile, seed=0)
    driver.program(0, np.full((8, 8), 5.0, np.float32))
    server, port = create_server(driver, "127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.BoardServiceStub(channel)
    finally:
        server.stop(grace=None)


def test_endurance_refusal_has_error_info_but_no_bad_request(
    worn_stub: pb_grpc.BoardServiceStub,
) -> None:
    """A Program over worn cells is OUT_OF_RANGE; "endurance" is not a field of
    ProgramRequest, so the trailer has no BadRequest, and ErrorInfo names it."""
    request = pb.ProgramRequest(conductances=tensors.encode(np.full((2, 2), 9.0, np.float32)))
    with pytest.raises(grpc.RpcError) as caught:
        worn_stub.Program(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    status = rpc_status.from_call(caught.value)
    assert status is not None
    assert not any(d.Is(error_details_pb2.BadRequest.DESCRIPTOR) for d in status.details)
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details if d.Is(info.DESCRIPTOR))
    assert info.metadata["field"] == "endurance"
    assert info.reason == "OUT_OF_RANGE"
