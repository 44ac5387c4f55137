"""Properties of the declared operation set, over generated and hostile inputs.

- Any valid request of any operation survives proto and wire encoding unchanged
  (the host's encoder and the firmware's decoder are one table).
- Any payload bytes a host may send for any board-operation message leave the
  virtual board answering with a well-formed response frame; a refused request
  changes nothing on the board (conductances, write counts, totals).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidra.drivers import BoardInfo, Region
from sidra.drivers.operations import operation_of
from sidra.drivers.requests import (
    AdvanceClockRequest,
    CalibrateRequest,
    MVMRequest,
    PerturbMode,
    PerturbRequest,
    ProgramRequest,
    ReadConductanceRequest,
    ReadWriteCountsRequest,
    Request,
    TransposeMVMRequest,
)
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.framing import Flag, Frame, decode_frame, encode_frame
from sidra.drivers.wire.messages import Msg, Status
from sidra.drivers.wire.operations import ENTRIES, StagedData, entry_of
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import VirtualBoard
from sidra.hil import convert

PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=2, rows=12, cols=7)})
INFO = BoardInfo("T", "T-1", "t", 2, 12, 7, 1.0, 40.0, 0, 0, 0.2)


@st.composite
def regions(draw: st.DrawFn) -> Region:
    row = draw(st.integers(0, INFO.rows - 1))
    col = draw(st.integers(0, INFO.cols - 1))
    rows = draw(st.integers(1, INFO.rows - row))
    cols = draw(st.integers(1, INFO.cols - col))
    return Region(row, col, rows, cols)


def matrices(rows: int, cols: int, low: float, high: float) -> st.SearchStrategy[Any]:
    # The board compares float32 values with its limits rounded to float32 (board.proto).
    values = st.floats(float(np.float32(low)), float(np.float32(high)), width=32)
    return st.lists(values, min_size=rows * cols, max_size=rows * cols).map(
        lambda v: np.array(v, np.float32).reshape(rows, cols)
    )


@st.composite
def requests(draw: st.DrawFn) -> Request:
    tile = draw(st.integers(0, INFO.tile_count - 1))
    kind = draw(st.sampled_from(["program", "read", "mvm", "tmvm", "apply", "restore", "misc"]))
    volts = INFO.read_voltage_max_v
    if kind == "program":
        region = draw(regions())
        g = draw(matrices(region.rows, region.cols, INFO.g_min_us, INFO.g_max_us))
        return ProgramRequest(tile, g, region.row_offset, region.col_offset)
    if kind in ("mvm", "tmvm"):
        batch = draw(st.integers(1, 4))
        width = INFO.rows if kind == "mvm" else INFO.cols
        v = draw(matrices(batch, width, -volts, volts))
        return MVMRequest(tile, v) if kind == "mvm" else TransposeMVMRequest(tile, v)
    if kind == "apply":
        seed = draw(st.integers(0, 2**64 - 1))
        amplitude = draw(st.floats(1e-3, INFO.g_max_us - INFO.g_min_us))
        sign = draw(st.sampled_from([1, -1]))
        return PerturbRequest(tile, PerturbMode.APPLY, seed, amplitude, sign, draw(regions()))
    if kind == "restore":
        return PerturbRequest(tile, PerturbMode.RESTORE, region=draw(regions()))
    if kind == "read":
        return draw(st.sampled_from([ReadConductanceRequest, ReadWriteCountsRequest]))(
            tile, draw(regions())
        )
    return draw(
        st.sampled_from([CalibrateRequest(tile), AdvanceClockRequest(float(tile) * 3600.0)])
    )


class Stage:
    """The firmware side of a decode: the board and a stage holding ``data``."""

    info = INFO

    def __init__(self, data: bytes) -> None:
        self.data = data

    def verified(self, stage_id: int, crc: int, size: int) -> bytes:
        assert (stage_id, crc, size) == (3, zlib.crc32(self.data), len(self.data))
        return self.data


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and bool(np.array_equal(a, b))
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(
            same(getattr(a, n), getattr(b, n)) for n in a.__dataclass_fields__
        )
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(requests())
def test_any_valid_request_survives_proto_and_wire(request: Request) -> None:
    request = request.checked(INFO)
    op = operation_of(request)
    assert same(convert.request_from_pb(convert.request_to_pb(request, op), op), request)

    entry = entry_of(request)
    data = entry.data(request)
    staged = StagedData(3, zlib.crc32(data))
    for where in [staged] if entry.always_staged else [None, staged] if data else [None]:
        payload = entry.pack_request(request, where)
        decoded = entry.unpack_request(entry.msg(request), payload, Stage(data))
        assert same(decoded, request)


# -- hostile payloads at the firmware ------------------------------------------------------


class Host:
    """Frames straight into a VirtualBoard (no pty: this is about the firmware's parsing)."""

    def __init__(self) -> None:
        self.board = VirtualBoard(PROFILE, seed=1, boot_counter=7)
        self.req_id = 1
        hello = m.HELLO_REQ.pack(1, 0, 65535, 0)
        reply = self.call(Msg.HELLO, hello, epoch=0)
        assert reply.status == Status.OK
        self.epoch = reply.epoch

    def call(self, msg: int, payload: bytes, epoch: int | None = None) -> Frame:
        self.req_id += 1
        frame = Frame(msg, self.req_id, payload, Flag(0), 0, self.epoch if epoch is None else epoch)
        out = self.board.receive(encode_frame(frame))
        raws = [r for r in out.split(b"\x00") if r]
        assert len(raws) == 1, f"expected one response frame, got {len(raws)}"
        reply = decode_frame(raws[0])
        assert reply.is_response and reply.req_id == self.req_id and reply.msg == msg
        return reply

    def state(self) -> tuple[Any, ...]:
        driver = self.board.driver
        tiles = [driver.read_conductance(t).conductances for t in range(INFO.tile_count)]
        counts = [driver.read_write_counts(t).counts for t in range(INFO.tile_count)]
        stats = driver.stats()
        return (tiles, counts, stats.cell_writes, stats.mvm_passes, stats.clock_s)


OPERATION_MESSAGES = sorted({int(msg) for entry in ENTRIES for msg in entry.messages})


@pytest.fixture(scope="module")
def host() -> Host:
    return Host()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    msg=st.sampled_from(OPERATION_MESSAGES),
    payload=st.one_of(
        st.binary(max_size=96),
        # Well-sized heads with hostile numbers: the most likely to reach the board.
        st.sampled_from([m.REGION_REQ.size, m.PERTURB_REQ.size, m.MVM_REQ.size]).flatmap(
            lambda n: st.binary(min_size=n, max_size=n)
        ),
    ),
)
def test_hostile_payloads_get_an_answer_and_refusals_change_nothing(
    host: Host, msg: int, payload: bytes
) -> None:
    before = host.state()
    reply = host.call(msg, payload)
    known = {s.value for s in Status}
    assert reply.status in known
    if reply.status != Status.OK:
        after = host.state()
        # Reading the state costs passes (ReadConductance); compare what a refusal could touch.
        assert all(np.array_equal(a, b) for a, b in zip(before[0], after[0], strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(before[1], after[1], strict=True))
        assert before[2] == after[2] and before[4] == after[4]
        m.decode_error(reply.payload)  # a refusal always carries a decodable error payload
