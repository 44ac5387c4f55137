"""Per-principal limits ([limits]): request size, vectors per batch and calls in flight.

Each limit refuses with RESOURCE_EXHAUSTED and an ErrorInfo naming the limit
(``limits.<key>``), what the call asked for and for which principal, before the
request reaches the board: board and state store stay as they were, and the
client raises :class:`~sidra.client.ResourceExhausted`. Calls in flight are
counted per principal; concurrency is made deterministic by holding every MVM on
the board until the test lets it go.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from board_data import dyadic_g, dyadic_v
from cli_support import process, serving_line
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sidra.client import InvalidArgument, OutOfRange, ResourceExhausted, SidraError, connect
from sidra.client.aio import connect as aio_connect
from sidra.client.errors import from_rpc_error
from sidra.drivers import BoardDriver, open_board
from sidra.drivers.requests import MAX_STEPS, MVMRequest, PerturbedMVMRequest, ProgramRequest
from sidra.drivers.types import PerturbationPoint, Region
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server.app import DEFAULT_MAX_MESSAGE_BYTES, create_configured_server, create_server
from sidra.server.limits import PrincipalLimits
from sidra.server.observability import ServiceMetrics
from sidra.server.security import Role, TokensFile, add_principal
from sidra.server.settings import LimitsSettings, load_settings
from sidra.server.state import StateStore
from sidra.training import SPSAOptions, load_dataset, train_softmax_spsa

IDEAL_URL = "emu://?preset=ideal&seed=1"
ROWS = COLS = 256  # the ideal preset's tiles
# Passes compared bit for bit across batch splits use dyadic data (board_data): every
# float32 sum is exact, so the order BLAS adds in (batch size, threads) cannot show.
MIB = 2**20
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@dataclass
class Served:
    board: BoardDriver
    port: int
    metrics: ServiceMetrics

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def calls(self, method: str) -> float:
        """BoardService calls of ``method`` answered OK so far."""
        labels = {"service": "sidra.hil.v1.BoardService", "method": method, "code": "OK"}
        value = self.metrics.registry.get_sample_value("sidra_rpc_requests_total", labels)
        return value or 0.0

    def mvms_in_flight(self) -> float | None:
        """BoardService MVM calls the service is serving now (on the board or waiting)."""
        labels = {"service": "sidra.hil.v1.BoardService", "method": "MVM"}
        return self.metrics.registry.get_sample_value("sidra_rpc_in_flight", labels)

    def await_mvms_in_flight(self, count: int, missing: str) -> None:
        """Waits (30 s at most, then fails saying ``missing``) for ``count`` MVMs in flight."""
        deadline = time.monotonic() + 30
        while self.mvms_in_flight() != count:
            assert time.monotonic() < deadline, missing
            time.sleep(0.01)

    def refusals(self, limit: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "sidra_limit_refusals_total", {"limit": limit}
        )
        assert value is not None
        return value


@contextmanager
def serving(
    limits: LimitsSettings,
    *,
    tokens_file: Path | None = None,
    store: StateStore | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Iterator[Served]:
    """The ideal board served on 127.0.0.1 under ``limits``."""
    with open_board(IDEAL_URL) as board:
        assert isinstance(board, BoardDriver)
        metrics = ServiceMetrics()
        server, port = create_server(
            board,
            "127.0.0.1:0",
            limits=limits,
            tokens=TokensFile(tokens_file) if tokens_file else None,
            store=store,
            metrics=metrics,
            max_message_bytes=max_message_bytes,
        )
        server.start()
        try:
            yield Served(board, port, metrics)
        finally:
            server.stop(grace=None).wait()


class BoardGate:
    """Holds every MVM at the board until :meth:`open`: calls of the test pile up in
    the service (one on the board, the rest waiting for their turn) for as long as it
    needs, with no timing involved."""

    def __init__(self, board: BoardDriver, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on_board = threading.Event()
        self._opened = threading.Event()
        run = board.run

        def gated(request: Any) -> Any:
            if isinstance(request, MVMRequest):
                self.on_board.set()
                assert self._opened.wait(timeout=60), "the test never let the MVM go"
            return run(request)

        monkeypatch.setattr(board, "run", gated)

    def open(self) -> None:
        self._opened.set()


def first_to_end(calls: list[Any]) -> Any:
    """The first of ``calls`` (gRPC futures) to end."""
    ended: list[Any] = []
    signal = threading.Event()

    def note(call: Any) -> None:
        ended.append(call)
        signal.set()

    for call in calls:
        call.add_done_callback(note)
    assert signal.wait(timeout=30), "no call ended"
    return ended[0]


def voltages(batch: int, width: int = ROWS) -> np.ndarray:
    return np.full((batch, width), 0.1, np.float32)


def mvm_request(batch: int) -> pb.MVMRequest:
    data = voltages(batch).tobytes()
    return pb.MVMRequest(
        tile=0, voltages=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[batch, ROWS], data=data)
    )


def error_info(exc: grpc.RpcError) -> dict[str, str]:
    """The ErrorInfo metadata of a failed call; asserts there is no BadRequest (a limit
    is not a field of the request)."""
    status = rpc_status.from_call(exc)
    assert status is not None
    found: dict[str, str] = {}
    for detail in status.details:
        assert not detail.Is(error_details_pb2.BadRequest.DESCRIPTOR)
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.reason == "RESOURCE_EXHAUSTED"
            found = dict(info.metadata)
    assert found, "no ErrorInfo"
    return found


@contextmanager
def unchanged(board: BoardDriver) -> Iterator[None]:
    """Asserts that what runs inside changes nothing on ``board``: its totals (time,
    energy, passes, writes), tile 0's conductances and write counts."""
    conductances = board.read_conductance(0).conductances.tobytes()
    counts = board.read_write_counts(0).counts.tobytes()
    stats = board.stats()  # read last: the reads above count in the totals
    yield
    assert board.stats() == stats
    assert board.read_conductance(0).conductances.tobytes() == conductances
    assert board.read_write_counts(0).counts.tobytes() == counts


# -- vectors per batch -------------------------------------------------------------------------


def test_a_batch_over_max_batch_is_refused_naming_the_limit() -> None:
    # A client told a larger max_batch than the server's sends the batch as one call.
    with (
        serving(LimitsSettings(max_batch=8)) as served,
        connect(served.address, max_batch=1_000_000) as board,
    ):
        assert board.mvm(0, voltages(8)).currents.shape == (8, COLS)  # at the limit: served

        with unchanged(served.board):
            with pytest.raises(ResourceExhausted) as caught:
                board.mvm(0, voltages(9))
            with pytest.raises(ResourceExhausted, match="per TransposeMVM request"):
                board.transpose_mvm(0, voltages(9, COLS))
        error = caught.value
        assert (error.field, error.value) == ("limits.max_batch", "9 vectors")
        on_connection = r" on connection ipv4:127\.0\.0\.1:\d+"  # no [auth]: each its own
        assert re.fullmatch(
            "at most 8 vectors per MVM request for principal 'local'" + on_connection,
            error.allowed,
        )
        assert re.fullmatch(
            "limits.max_batch: got 9 vectors, expected at most 8 vectors per MVM request "
            "for principal 'local'" + on_connection,
            str(error),
        )
        assert not isinstance(error, InvalidArgument)  # another try may pass; bad input never
        assert served.refusals("max_batch") == 2


def test_a_client_told_the_limit_sends_a_larger_batch_in_parts() -> None:
    """connect(max_batch=8): 21 vectors go as calls of 8, 8 and 5, none refused, and the
    joined result is the whole batch's (bit for bit on the ideal board, both directions,
    sync and asyncio); a bad vector in the last part is refused before any part runs."""
    rng = np.random.default_rng(5)
    v = dyadic_v(rng, (21, ROWS))
    with serving(LimitsSettings(max_batch=8)) as served:
        served.board.program(0, dyadic_g(rng, (ROWS, COLS)))
        whole = served.board.mvm(0, v).currents
        back = served.board.transpose_mvm(0, v).currents
        with connect(served.address, max_batch=8) as board:
            before = served.board.stats().mvm_passes
            got = board.mvm(0, v)
            np.testing.assert_array_equal(got.currents, whole)
            assert got.cost.time_ns == pytest.approx(21 * board.info.timing.mvm_pass_ns)
            np.testing.assert_array_equal(board.transpose_mvm(0, v).currents, back)
            assert served.board.stats().mvm_passes - before == 42
            bad = v.copy()
            bad[20, 3] = 1.0  # in the third part: 1 V is outside ±0.2 V
            with unchanged(served.board), pytest.raises(OutOfRange) as caught:
                board.mvm(0, bad)
            assert caught.value.field == "voltages"

        async def run() -> None:
            async with await aio_connect(served.address, max_batch=8) as board:
                np.testing.assert_array_equal((await board.mvm(0, v)).currents, whole)

        asyncio.run(run())
        assert served.refusals("max_batch") == 0


def test_a_perturbed_pass_over_max_batch_goes_in_parts_by_its_points() -> None:
    """connect(max_batch=8): a PerturbedMVM of 3 points x 6 vectors (18 passes) goes as
    3 parts of one point each in one RunSequence, 1 point x 12 vectors as 8 and 4
    vectors, and a RunSequence with such a step as one sequence of the cut steps. Each
    result is the whole call's, bit for bit on the ideal board, through both clients;
    each part restores the region once more, which cells_written counts. None is
    refused."""
    rng = np.random.default_rng(6)
    g = dyadic_g(rng, (ROWS, COLS))
    v = dyadic_v(rng, (12, ROWS))
    points = [PerturbationPoint(seed, 2.0, sign) for seed, sign in ((1, 1), (1, -1), (7, 1))]
    region = Region(0, 0, 64, 10)
    with serving(LimitsSettings(max_batch=8)) as served:
        served.board.program(0, g)
        whole = served.board.perturbed_mvm(0, v[:6], points)
        one_point = served.board.perturbed_mvm(0, v, points[:1])
        steps = [
            ProgramRequest(0, g[:64, :10]),
            PerturbedMVMRequest(0, v[:6, :64], tuple(points), region),
        ]
        in_sequence = served.board.run_sequence(steps).results[1]
        with connect(served.address, max_batch=8) as board:
            sequences = served.calls("RunSequence")
            got = board.perturbed_mvm(0, v[:6], points)
            assert served.calls("RunSequence") == sequences + 1  # the parts in one round trip
            np.testing.assert_array_equal(got.currents, whole.currents)
            assert got.cells_written == 3 * 2 * ROWS * COLS  # 3 parts: a point and a restore
            assert whole.cells_written == 4 * ROWS * COLS
            assert got.cost.time_ns > whole.cost.time_ns
            got = board.perturbed_mvm(0, v, points[:1])
            np.testing.assert_array_equal(got.currents, one_point.currents)
            assert got.currents.shape == (1, 12, COLS)
            results = board.run_sequence(steps).results
            assert len(results) == 2
            np.testing.assert_array_equal(results[1].currents, in_sequence.currents)
            assert results[1].currents.shape == (3, 6, 10)

        async def run() -> None:
            async with await aio_connect(served.address, max_batch=8) as board:
                got = await board.perturbed_mvm(0, v[:6], points)
                np.testing.assert_array_equal(got.currents, whole.currents)
                results = (await board.run_sequence(steps)).results
                np.testing.assert_array_equal(results[1].currents, in_sequence.currents)

        asyncio.run(run())
        assert served.refusals("max_batch") == 0


def test_a_sequence_that_would_need_more_than_max_steps_is_refused_whole() -> None:
    """Cut to max_batch 8, a PerturbedMVM step of 64 points x 8 vectors would take 64
    steps, more than one RunSequence carries: the client sends it as it is and the
    service refuses it, naming the limit, before any step runs."""
    points = tuple(PerturbationPoint(seed, 1.0, 1) for seed in range(64))
    steps = [
        ProgramRequest(0, np.full((ROWS, COLS), 5.0, np.float32)),
        PerturbedMVMRequest(0, voltages(8), points),
    ]
    with serving(LimitsSettings(max_batch=8)) as served:
        with (
            connect(served.address, max_batch=8) as board,
            unchanged(served.board),
            pytest.raises(ResourceExhausted) as caught,
        ):
            board.run_sequence(steps)
        assert caught.value.field == "limits.max_batch"
        assert len(points) > MAX_STEPS
        assert served.refusals("max_batch") == 1


def test_every_caller_is_told_the_limits_and_a_client_told_nothing_fits_its_calls() -> None:
    """GetBoardInfo announces the limits (board.proto ServiceLimits). A client given no
    max_batch learns it before its first pass and sends 21 vectors as 8, 8 and 5, none
    refused (sync and asyncio), and takes the principal's max_message_mb as its message
    size; sizes a caller gives are kept as given."""
    limits = LimitsSettings(max_batch=8, max_message_mb=1, max_in_flight=3)
    rng = np.random.default_rng(6)
    v = dyadic_v(rng, (21, ROWS))
    with serving(limits) as served, grpc.insecure_channel(served.address) as channel:
        reply = pb_grpc.BoardServiceStub(channel).GetBoardInfo(pb.GetBoardInfoRequest())
        assert reply.limits == pb.ServiceLimits(
            max_batch=8,
            max_request_bytes=MIB,
            max_in_flight=3,
            max_streams=4,
            max_response_bytes=DEFAULT_MAX_MESSAGE_BYTES,
        )
        served.board.program(0, dyadic_g(rng, (ROWS, COLS)))
        whole = served.board.mvm(0, v).currents
        with connect(served.address) as board:
            assert (board.max_batch, board.message_limit_bytes) == (4096, 8 * MIB)  # not yet
            np.testing.assert_array_equal(board.mvm(0, v).currents, whole)
            assert (board.max_batch, board.message_limit_bytes) == (8, MIB)
            assert board.chunk_bytes <= MIB  # a Program or read over 1 MiB goes in bands
        with connect(served.address, max_batch=7, server_max_message_bytes=2 * MIB) as board:
            np.testing.assert_array_equal(board.mvm(0, v).currents, whole)  # 7, 7 and 7
            assert (board.max_batch, board.message_limit_bytes) == (7, 2 * MIB)  # as told
            assert board.max_in_flight == 3  # not told: the service's
        with connect(served.address, max_in_flight=5) as board:
            board.max_batch = 6  # told after connect: kept, and the rest still learnt
            np.testing.assert_array_equal(board.mvm(0, v).currents, whole)  # 6, 6, 6 and 3
            assert (board.max_batch, board.max_in_flight) == (6, 5)
            assert board.message_limit_bytes == MIB

        async def run() -> None:
            async with await aio_connect(served.address) as board:
                np.testing.assert_array_equal((await board.mvm(0, v)).currents, whole)
                assert board.max_batch == 8
            async with await aio_connect(served.address) as board:  # gathered: asked once
                before = served.board.stats()
                got = await asyncio.gather(*(board.mvm(0, v) for _ in range(5)))
                assert all(np.array_equal(r.currents, whole) for r in got)
                assert board.max_batch == 8
                assert served.board.stats().mvm_passes - before.mvm_passes == 5 * 21

        asyncio.run(run())
        assert served.refusals("max_batch") == 0


def test_a_stream_sends_a_batch_over_the_limit_as_items_and_joins_their_results() -> None:
    """Under max_batch = 8, an MVM stream of batches of 21, 3 and 16 vectors: the client
    (told nothing) sends 8 + 8 + 5, 3 and 8 + 8 items and yields three results, each the
    whole batch's (sync and asyncio); a batch with a bad vector in its last part is
    refused before any of its items is sent."""
    rng = np.random.default_rng(8)
    sizes = (21, 3, 16)
    vs = [dyadic_v(rng, (n, ROWS)) for n in sizes]
    with serving(LimitsSettings(max_batch=8)) as served:
        served.board.program(0, dyadic_g(rng, (ROWS, COLS)))
        wholes = [served.board.mvm(0, v).currents for v in vs]
        with connect(served.address) as board:
            before = served.board.stats().mvm_passes
            results = list(board.mvm_stream(0, vs))
            assert [r.currents.shape[0] for r in results] == list(sizes)
            for got, whole in zip(results, wholes, strict=True):
                np.testing.assert_array_equal(got.currents, whole)
            assert served.board.stats().mvm_passes - before == sum(sizes)
            bad = vs[0].copy()
            bad[20, 3] = 1.0  # in the third item: 1 V is outside ±0.2 V
            before = served.board.stats().mvm_passes
            with pytest.raises(OutOfRange) as caught:
                list(board.mvm_stream(0, [bad]))
            assert caught.value.field == "voltages"
            assert served.board.stats().mvm_passes == before

        async def run() -> None:
            async with await aio_connect(served.address) as board:
                got = [r.currents async for r in board.mvm_stream(0, vs)]
                for currents, whole in zip(got, wholes, strict=True):
                    np.testing.assert_array_equal(currents, whole)

        asyncio.run(run())
        assert served.refusals("max_batch") == 0


def test_the_batch_is_judged_from_the_shape_before_the_data_is_read() -> None:
    """A shape over the limit whose data is missing altogether is refused for its batch,
    not for its bytes: the limit is checked before the tensor becomes an array."""
    with (
        serving(LimitsSettings(max_batch=8)) as served,
        grpc.insecure_channel(served.address) as channel,
    ):
        stub = pb_grpc.BoardServiceStub(channel)
        hollow = pb.MVMRequest(voltages=pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[10_000, ROWS]))
        with pytest.raises(grpc.RpcError) as caught:
            stub.MVM(hollow, timeout=10)
        assert caught.value.code() == EXHAUSTED
        info = error_info(caught.value)
        assert info.pop("allowed").startswith(
            "at most 8 vectors per MVM request for principal 'local' on connection ipv4:"
        )
        assert info == {
            "exception": "ResourceExhausted",
            "field": "limits.max_batch",
            "value": "10000 vectors",
        }
        # Within the limit, the same hollow tensor is the driver's to refuse, as before.
        hollow.voltages.shape[0] = 8
        with pytest.raises(grpc.RpcError) as caught:
            stub.MVM(hollow, timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- request size ------------------------------------------------------------------------------


def test_a_request_over_max_message_mb_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """2 MiB of bytes that would not even parse, under a 1 MiB limit: refused for their
    size; the board and the state store are untouched."""
    with (
        StateStore(tmp_path / "state.sqlite3") as store,
        serving(LimitsSettings(max_message_mb=1), store=store) as served,
        grpc.insecure_channel(served.address) as channel,
    ):
        program = channel.unary_unary(f"/{pb.DESCRIPTOR.package}.BoardService/Program")
        with unchanged(served.board), pytest.raises(grpc.RpcError) as caught:
            program(b"\xff" * (2 * MIB), timeout=10)
        assert caught.value.code() == EXHAUSTED
        info = error_info(caught.value)
        assert info.pop("allowed").startswith(
            "at most 1048576 bytes (1 MiB) per request for principal 'local' on connection ipv4:"
        )
        assert info == {
            "exception": "ResourceExhausted",
            "field": "limits.max_message_mb",
            "value": "2097152 bytes (2.0 MiB)",
        }
        assert store.history() == []
        assert served.refusals("max_message_mb") == 1

        # A client told the server takes more sends the batch whole, to be refused.
        with connect(served.address, server_max_message_bytes=64 * MIB) as board:
            # 1024 vectors of 256 float32 is 1 MiB of data alone: over, with its framing.
            with pytest.raises(ResourceExhausted, match=r"^limits\.max_message_mb: got 10"):
                board.mvm(0, voltages(1024))
            assert board.mvm(0, voltages(1000)).currents.shape == (1000, COLS)
        with connect(served.address) as board:  # told nothing: it fits its calls to 1 MiB
            assert board.mvm(0, voltages(1024)).currents.shape == (1024, COLS)
        assert served.refusals("max_message_mb") == 2


def test_a_message_over_the_server_wide_limit_is_refused_by_grpc_with_the_same_class() -> None:
    """Over the server-wide max_message_mb gRPC itself refuses, before the service: the
    client raises the same ResourceExhausted (without a limit's details)."""
    with (
        serving(LimitsSettings(), max_message_bytes=1 * MIB) as served,
        connect(served.address, server_max_message_bytes=64 * MIB) as board,
    ):
        with pytest.raises(ResourceExhausted, match="RESOURCE_EXHAUSTED") as caught:
            board.mvm(0, voltages(2048))
        assert caught.value.field == "request"
        assert board.mvm(0, voltages(4)).currents.shape == (4, COLS)
        with connect(served.address) as fitted:  # told nothing: calls of at most 1 MiB
            assert fitted.mvm(0, voltages(2048)).currents.shape == (2048, COLS)


# -- calls in flight ---------------------------------------------------------------------------


def test_calls_in_flight_are_counted_per_principal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice has one MVM on the board and asks for 2 more under max_in_flight = 2: exactly
    one of those is refused at once, naming her, while the board is still busy; bob's
    call meanwhile is his first and waits for its turn. Once the board is let go, every
    admitted call is served."""
    tokens = tmp_path / "tokens.toml"
    alice = add_principal(tokens, "alice", Role.OPERATOR)
    bob = add_principal(tokens, "bob", Role.OPERATOR)
    with (
        serving(LimitsSettings(max_in_flight=2), tokens_file=tokens) as served,
        grpc.insecure_channel(served.address) as channel,
    ):
        gate = BoardGate(served.board, monkeypatch)
        stub = pb_grpc.BoardServiceStub(channel)

        def mvm(token: str) -> Any:
            metadata = (("authorization", f"Bearer {token}"),)
            return stub.MVM.future(mvm_request(1), timeout=60, metadata=metadata)

        try:
            first = mvm(alice)
            assert gate.on_board.wait(timeout=30)
            more = [mvm(alice), mvm(alice)]
            ended = first_to_end(more)
            assert [call.done() for call in more].count(True) == 1  # the board is still held
            refused = ended.exception()
            assert isinstance(refused, grpc.RpcError) and refused.code() == EXHAUSTED
            assert error_info(refused)["field"] == "limits.max_in_flight"
            assert "while 2 of principal 'alice' are running or queued" in refused.details()
            error = from_rpc_error(refused)
            assert isinstance(error, ResourceExhausted) and error.field == "limits.max_in_flight"
            bobs = mvm(bob)
        finally:
            gate.open()
        admitted = [first, *(call for call in more if call is not ended), bobs]
        for call in admitted:
            assert list(call.result(timeout=30).currents.shape) == [1, COLS]
        assert served.refusals("max_in_flight") == 1


def test_without_auth_each_connection_has_its_own_places(monkeypatch: pytest.MonkeyPatch) -> None:
    """No [auth]: every caller is "local", yet two clients (connections) do not share one
    allowance: under max_in_flight = 1 the first holds the board, its second call is
    refused, and the other connection's call waits for its turn and is served."""
    own_connection = [("grpc.use_local_subchannel_pool", 1)]  # not shared between channels
    with (
        serving(LimitsSettings(max_in_flight=1)) as served,
        grpc.insecure_channel(served.address, options=own_connection) as first_channel,
        grpc.insecure_channel(served.address, options=own_connection) as other_channel,
    ):
        gate = BoardGate(served.board, monkeypatch)
        first = pb_grpc.BoardServiceStub(first_channel)
        other = pb_grpc.BoardServiceStub(other_channel)
        try:
            held = first.MVM.future(mvm_request(1), timeout=60)
            assert gate.on_board.wait(timeout=30)
            with pytest.raises(grpc.RpcError) as caught:
                first.MVM(mvm_request(1), timeout=30)
            assert caught.value.code() == EXHAUSTED
            assert "of principal 'local' on connection ipv4:127.0.0.1:" in caught.value.details()
            waiting = other.MVM.future(mvm_request(1), timeout=60)
        finally:
            gate.open()
        for call in (held, waiting):
            assert list(call.result(timeout=30).currents.shape) == [1, COLS]
        assert served.refusals("max_in_flight") == 1


def test_a_place_in_flight_is_given_back_whatever_the_call_ends_with() -> None:
    """Under max_in_flight = 1, calls refused for every reason (unparsable bytes, a bad
    tile, a batch or size limit) each give their place back: the next call is served."""
    limits = LimitsSettings(max_in_flight=1, max_batch=4, max_message_mb=1)
    with (
        serving(limits) as served,
        connect(served.address, max_batch=5) as board,  # told more than the server's 4
        grpc.insecure_channel(served.address) as channel,
    ):
        raw_mvm = channel.unary_unary(f"/{pb.DESCRIPTOR.package}.BoardService/MVM")
        failing = [
            lambda: raw_mvm(b"\x0a\xff", timeout=10),
            lambda: board.mvm(99, voltages(1)),
            lambda: board.mvm(0, voltages(5)),
            lambda: raw_mvm(b"\x00" * (2 * MIB), timeout=10),
        ]
        for _ in range(3):
            for call in failing:
                with pytest.raises((grpc.RpcError, SidraError)) as caught:
                    call()
                assert "max_in_flight" not in str(caught.value)
            assert board.mvm(0, voltages(1)).currents.shape == (1, COLS)
        assert served.refusals("max_in_flight") == 0


def test_principal_limits_hold_and_give_back_places() -> None:
    """The counting itself, under the default limit of 4: the 5th concurrent call is
    refused, another principal is not, an error inside a call frees its place, and a
    principal with nothing in flight leaves no entry behind."""
    refused: list[str] = []
    limits = PrincipalLimits(on_refusal=refused.append)
    held = [limits.admitted("alice", 10) for _ in range(4)]
    for place in held:
        place.__enter__()
    with pytest.raises(ResourceExhausted) as caught, limits.admitted("alice", 10):
        pass
    assert caught.value.allowed.startswith("at most 4 calls in flight per principal")
    with limits.admitted("bob", 10):
        assert limits.in_flight("bob") == 1
    held.pop().__exit__(None, None, None)
    with pytest.raises(RuntimeError), limits.admitted("alice", 10):
        assert limits.in_flight("alice") == 4
        raise RuntimeError("the board failed")
    assert limits.in_flight("alice") == 3
    for place in held:
        place.__exit__(None, None, None)
    assert limits.in_flight("alice") == 0 and limits._in_flight == {}
    assert refused == ["max_in_flight"]


def test_a_principal_limit_may_only_lower_the_server_wide_one() -> None:
    assert PrincipalLimits().max_request_bytes == DEFAULT_MAX_MESSAGE_BYTES
    lower = PrincipalLimits(LimitsSettings(max_message_mb=2), max_message_bytes=8 * MIB)
    assert lower.max_request_bytes == 2 * MIB
    unset = PrincipalLimits(LimitsSettings(), max_message_bytes=8 * MIB)
    assert unset.max_request_bytes == 8 * MIB


# -- configuration -----------------------------------------------------------------------------


def test_limits_of_the_configuration_reach_the_service(tmp_path: Path) -> None:
    config = tmp_path / "sidra.toml"
    config.write_text('listen = "127.0.0.1:0"\n[limits]\nmax_batch = 3\n', encoding="utf-8")
    settings = load_settings(config)
    with open_board(IDEAL_URL) as driver:
        server, port = create_configured_server(driver, settings)
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as board:
                board.mvm(0, voltages(4))  # as 3 and 1: the client learnt the limit
                assert board.max_batch == 3
            with connect(f"127.0.0.1:{port}", max_batch=4) as board:
                board.mvm(0, voltages(3))
                with pytest.raises(ResourceExhausted, match="at most 3 vectors"):
                    board.mvm(0, voltages(4))
        finally:
            server.stop(grace=None).wait()


def test_sidra_serve_enforces_the_limits_section_of_its_config(tmp_path: Path) -> None:
    config = tmp_path / "sidra.toml"
    config.write_text(
        f'board = "{IDEAL_URL}"\nlisten = "127.0.0.1:0"\n[limits]\nmax_batch = 2\n',
        encoding="utf-8",
    )
    with process("serve", "--config", str(config), first_line_from="stderr") as (first, proc):
        assert proc.stderr is not None
        line = first if first.startswith("serving") else serving_line(proc.stderr)
        port = line.rsplit("127.0.0.1:", 1)[1].split()[0]
        with connect(f"127.0.0.1:{port}", max_batch=1_000_000) as board:
            with pytest.raises(ResourceExhausted) as caught:
                board.mvm(0, voltages(3))
            assert caught.value.field == "limits.max_batch"
            assert board.mvm(0, voltages(2)).currents.shape == (2, COLS)
        with connect(f"127.0.0.1:{port}") as board:  # told nothing: it learns the limit
            assert board.mvm(0, voltages(3)).currents.shape == (3, COLS)
            assert board.max_batch == 2


def test_on_board_spsa_trains_under_a_max_batch_below_its_two_points() -> None:
    """An on-board SPSA step evaluates 2 points x 32 vectors in one PerturbedMVM: under
    max_batch 32 the client sends each step as one RunSequence of a PerturbedMVM per
    point, and the run is the one a server with the default limits gives (ideal board:
    the same losses and accuracies), with no refusal."""
    data = load_dataset("digits")
    options = SPSAOptions(steps=4, a=0.5, c=0.1, eval_every=1000, mode="board", batch_size=32)
    records = []
    for limits in (LimitsSettings(max_batch=32), LimitsSettings()):
        with serving(limits) as served, connect(served.address) as board:
            records.append(train_softmax_spsa(board, data, options))
            assert served.refusals("max_batch") == 0
    cut, whole = records
    assert cut.losses == whole.losses and len(cut.losses) == 4
    assert (cut.test_accuracy, cut.train_accuracy) == (whole.test_accuracy, whole.train_accuracy)


def test_the_sync_client_keeps_its_threads_calls_within_max_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under max_in_flight = 2, five threads of one sync client call MVM while the board
    holds every MVM: two calls reach the service (one on the board, one waiting for its
    turn) and the other three wait in the client, which learnt the limit, instead of
    being refused; once the board lets go all five are answered."""
    with serving(LimitsSettings(max_in_flight=2)) as served, connect(served.address) as board:
        board.mvm(0, voltages(1))  # learns the limits
        gate = BoardGate(served.board, monkeypatch)
        asked, answers = threading.Barrier(6), []

        def call() -> None:
            asked.wait(timeout=30)
            answers.append(board.mvm(0, voltages(1)).currents.shape)

        threads = [threading.Thread(target=call) for _ in range(5)]
        try:
            for thread in threads:
                thread.start()
            asked.wait(timeout=30)
            assert gate.on_board.wait(timeout=30)
            served.await_mvms_in_flight(2, "the second call never reached the service")
            time.sleep(0.3)  # a call past the limit would be refused at once
            assert served.mvms_in_flight() == 2
            assert served.refusals("max_in_flight") == 0
        finally:
            gate.open()
            for thread in threads:
                thread.join(timeout=30)
        assert answers == [(1, COLS)] * 5
        assert served.refusals("max_in_flight") == 0


def test_two_clients_of_one_program_each_have_a_connection_and_its_places(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No [auth], max_in_flight = 1: gRPC shares one connection among a program's
    channels to one address with the same options, and the server would count two
    clients' calls as one connection's. Each client has a connection of its own: the
    second client's call is admitted beside the first's, no refusal sent again."""
    with (
        serving(LimitsSettings(max_in_flight=1)) as served,
        connect(served.address) as first,
        connect(served.address) as other,
    ):
        assert first.caller().peer != other.caller().peer
        first.mvm(0, voltages(1))
        other.mvm(0, voltages(1))  # both learnt the limit
        gate = BoardGate(served.board, monkeypatch)
        answers: list[tuple[int, ...]] = []

        def call(board: Any) -> None:
            answers.append(board.mvm(0, voltages(1)).currents.shape)

        threads = [threading.Thread(target=call, args=(b,)) for b in (first, other)]
        try:
            for thread in threads:
                thread.start()
            assert gate.on_board.wait(timeout=30)
            served.await_mvms_in_flight(2, "the other client's call never arrived")
        finally:
            gate.open()
            for thread in threads:
                thread.join(timeout=30)
        assert answers == [(1, COLS)] * 2
        assert served.refusals("max_in_flight") == 0


@pytest.mark.parametrize("client", ["sync", "asyncio"])
def test_a_call_refused_for_places_this_client_cannot_see_waits_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """alice's two programs under max_in_flight = 1 (counted per principal): while one
    holds the board, the other's MVM is refused for max_in_flight (a place it cannot
    see), sent again until a place frees, and answered; one whose timeout passes first
    raises the refusal, not a timeout. Nothing refused reached the board."""
    tokens = tmp_path / "tokens.toml"
    alice = add_principal(tokens, "alice", Role.OPERATOR)
    with (
        serving(LimitsSettings(max_in_flight=1), tokens_file=tokens) as served,
        connect(served.address, token=alice) as holder,
    ):
        holder.mvm(0, voltages(1))
        gate = BoardGate(served.board, monkeypatch)
        held = threading.Thread(target=lambda: holder.mvm(0, voltages(1)))

        async def asyncio_calls() -> tuple[Any, BaseException | None]:
            async with (
                await aio_connect(served.address, token=alice) as waiting,
                await aio_connect(served.address, token=alice, timeout_s=0.3) as hasty,
            ):
                answer = asyncio.ensure_future(waiting.mvm(0, voltages(1)))
                try:
                    await hasty.mvm(0, voltages(1))
                    raised = None
                except SidraError as exc:
                    raised = exc
                gate.open()
                return (await answer).currents.shape, raised

        def sync_calls() -> tuple[Any, BaseException | None]:
            with (
                connect(served.address, token=alice) as waiting,
                connect(served.address, token=alice, timeout_s=0.3) as hasty,
            ):
                shapes: list[Any] = []
                answer = threading.Thread(
                    target=lambda: shapes.append(waiting.mvm(0, voltages(1)).currents.shape)
                )
                answer.start()
                try:
                    hasty.mvm(0, voltages(1))
                    raised = None
                except SidraError as exc:
                    raised = exc
                while served.refusals("max_in_flight") < 2:  # the waiting one was refused too
                    time.sleep(0.01)
                gate.open()
                answer.join(timeout=30)
                return shapes[0], raised

        try:
            held.start()
            assert gate.on_board.wait(timeout=30)
            shape, raised = asyncio.run(asyncio_calls()) if client == "asyncio" else sync_calls()
        finally:
            gate.open()
            held.join(timeout=30)
        assert shape == (1, COLS)
        assert isinstance(raised, ResourceExhausted) and raised.field == "limits.max_in_flight"
        assert served.refusals("max_in_flight") >= 3  # each sent again, then answered
        assert served.calls("MVM") == 3  # the holder's two, the waiting one's: once each
