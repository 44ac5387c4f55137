"""RPC and board metrics, scraped over HTTP: they move by exactly the calls made.

A real server (``create_server`` on 127.0.0.1:0) on the ideal emulator, a real
client, and the metrics endpoint read by urllib as Prometheus would read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from observability_support import (
    IDEAL_URL,
    Sample,
    Served,
    board_rpc,
    moved,
    sample,
    served_with_metrics,
)

from sidra.client import OutOfRange, Region, RemoteBoard, connect
from sidra.drivers import open_board
from sidra.drivers.operations import OPERATIONS
from sidra.drivers.requests import MVMRequest
from sidra.hil import convert
from sidra.server import SERVICE_NAME
from sidra.server.security import Role, TokensFile, add_principal

MVM = next(op for op in OPERATIONS if op.rpc == "MVM")


@pytest.fixture
def rig() -> Iterator[tuple[Served, RemoteBoard]]:
    with (
        open_board(IDEAL_URL) as board,
        served_with_metrics(board) as served,
        connect(f"127.0.0.1:{served.port}") as remote,
    ):
        yield served, remote


def only(changes: dict[Sample, float], name: str) -> dict[Sample, float]:
    return {key: value for key, value in changes.items() if key[0] == name}


def rpc_labels(method: str, code: str) -> dict[str, str]:
    return {"service": SERVICE_NAME, "method": method, "code": code}


def test_counts_and_latencies_move_by_exactly_the_calls_made(
    rig: tuple[Served, RemoteBoard],
) -> None:
    served, remote = rig
    rows, cols = remote.info.rows, remote.info.cols
    v = np.random.default_rng(2).uniform(-0.1, 0.1, (4, rows)).astype(np.float32)
    before = served.scrape()
    for _ in range(5):
        remote.mvm(0, v)
    for _ in range(2):
        remote.transpose_mvm(0, v[:, :cols])
    with pytest.raises(OutOfRange):  # 5 V: the caller's bad input
        remote.mvm(0, np.full((1, rows), 5.0, np.float32))
    with pytest.raises(OutOfRange):  # no tile 99
        remote.mvm(99, v)
    changes = moved(before, served.scrape())

    assert only(changes, "sidra_rpc_requests_total") == {
        board_rpc("MVM", "OK"): 5,
        board_rpc("TransposeMVM", "OK"): 2,
        board_rpc("MVM", "OUT_OF_RANGE"): 2,
    }
    for method, code, n in (
        ("MVM", "OK", 5),
        ("TransposeMVM", "OK", 2),
        ("MVM", "OUT_OF_RANGE", 2),
    ):
        labels = rpc_labels(method, code)
        assert changes[sample("sidra_rpc_duration_seconds_count", **labels)] == n
        assert changes[sample("sidra_rpc_duration_seconds_bucket", **labels, le="+Inf")] == n
        assert changes[sample("sidra_rpc_duration_seconds_sum", **labels)] > 0
    # Only what reached the board and was answered OK counts as a board operation.
    assert only(changes, "sidra_board_operations_total") == {
        sample("sidra_board_operations_total", operation="MVM"): 5,
        sample("sidra_board_operations_total", operation="TransposeMVM"): 2,
    }
    mvm = {"service": SERVICE_NAME, "method": "MVM"}
    assert changes[sample("sidra_rpc_request_size_bytes_count", **mvm)] == 7
    assert changes[sample("sidra_rpc_response_size_bytes_count", **mvm)] == 5  # 2 refused
    one_request = convert.request_to_pb(MVMRequest(0, v), MVM).ByteSize()
    request_bytes = changes[sample("sidra_rpc_request_size_bytes_sum", **mvm)]
    assert request_bytes > 5 * one_request >= 5 * v.nbytes
    assert changes[sample("sidra_rpc_response_size_bytes_sum", **mvm)] >= 5 * 4 * cols * 4
    in_flight = served.scrape()[sample("sidra_rpc_in_flight", **mvm)]
    assert in_flight == 0


def test_cell_writes_equal_the_reports(rig: tuple[Served, RemoteBoard]) -> None:
    served, remote = rig
    info = remote.info
    g = np.random.default_rng(5).uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols))
    g = g.astype(np.float32)
    before, stats_before = served.scrape(), remote.stats().cell_writes
    programs = [remote.program(0, g), remote.program(1, g[:9, :7], row_offset=4, col_offset=2)]
    perturbs = [
        remote.perturb(0, seed=3, amplitude_us=0.5, sign=1, region=Region(2, 3, 20, 30)),
        remote.restore(0),
    ]
    changes = moved(before, served.scrape())
    programmed = sum(report.cells_written for report in programs)
    perturbed = sum(report.cells_written for report in perturbs)
    assert programmed > 0 and perturbed > 0
    assert only(changes, "sidra_board_cell_writes_total") == {
        sample("sidra_board_cell_writes_total", operation="Program"): programmed,
        sample("sidra_board_cell_writes_total", operation="Perturb"): perturbed,
    }
    assert programmed + perturbed == remote.stats().cell_writes - stats_before  # the board's own
    assert changes[sample("sidra_board_operations_total", operation="Program")] == 2
    assert changes[sample("sidra_board_operations_total", operation="Perturb")] == 2


def test_every_operation_and_the_board_are_there_before_any_call() -> None:
    with open_board(IDEAL_URL) as board, served_with_metrics(board) as served:
        first = served.scrape()
        info = board.info
    for op in OPERATIONS:  # 0, not absent: rate() and alerts see the series at once
        assert first[sample("sidra_board_operations_total", operation=op.rpc)] == 0
    described = {
        "model": info.model,
        "serial": info.serial_number,
        "firmware": info.firmware_version,
        "emulator_preset": "ideal",
    }
    assert first[sample("sidra_board_info", **described)] == 1
    # An in-process board has no link: no link series at all rather than a fake 1.
    assert not [key for key in first if key[0].startswith("sidra_board_link")]
    assert not [key for key in first if key[0] == "sidra_rpc_requests_total"]


def test_servers_in_one_process_keep_their_own_counts() -> None:
    with (
        open_board(IDEAL_URL) as board_a,
        open_board("emu://?preset=ideal&seed=2") as board_b,
        served_with_metrics(board_a) as a,
        served_with_metrics(board_b) as b,
        connect(f"127.0.0.1:{a.port}") as remote_a,
    ):
        b_before = b.scrape()
        remote_a.advance_clock(1.0)
        remote_a.advance_clock(1.0)
        assert moved(b_before, b.scrape()) == {}
        assert a.scrape()[board_rpc("AdvanceClock", "OK")] == 2


def code_of(channel: grpc.Channel, rpc: str, token: str | None) -> grpc.StatusCode:
    """The status of ``rpc`` called with an empty request and ``token``."""
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    try:
        channel.unary_unary(f"/{SERVICE_NAME}/{rpc}")(b"", timeout=10, metadata=metadata)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.OK


def test_auth_failures_by_reason_and_refused_calls_by_code(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    viewer = add_principal(tokens_file, "vera", Role.VIEWER)
    operator = add_principal(tokens_file, "otto", Role.OPERATOR)
    lapsed = add_principal(tokens_file, "lars", Role.ADMIN, valid_for=timedelta(days=1),
                           now=datetime.now(UTC) - timedelta(days=2))  # fmt: skip
    with (
        open_board(IDEAL_URL) as board,
        served_with_metrics(board, tokens=TokensFile(tokens_file)) as served,
        grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel,
    ):
        before = served.scrape()
        codes = [
            code_of(channel, "Program", token) for token in (None, None, "not-a-token", lapsed)
        ]
        codes += [code_of(channel, "Program", token) for token in (viewer, operator)]
        codes.append(code_of(channel, "GetBoardInfo", viewer))
        changes = moved(before, served.scrape())
    unauthenticated, denied = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED
    assert codes == [unauthenticated] * 4 + [denied] * 2 + [grpc.StatusCode.OK]
    failures = "sidra_auth_failures_total"
    assert only(changes, failures) == {
        sample(failures, code="UNAUTHENTICATED", reason="missing_token"): 2,
        sample(failures, code="UNAUTHENTICATED", reason="unknown_token"): 1,
        sample(failures, code="UNAUTHENTICATED", reason="expired_token"): 1,
        sample(failures, code="PERMISSION_DENIED", reason="insufficient_role"): 2,
    }
    assert only(changes, "sidra_rpc_requests_total") == {
        board_rpc("Program", "UNAUTHENTICATED"): 4,
        board_rpc("Program", "PERMISSION_DENIED"): 2,
        board_rpc("GetBoardInfo", "OK"): 1,
    }


def test_streaming_calls_are_counted_per_message(rig: tuple[Served, RemoteBoard]) -> None:
    served, _ = rig
    service = "grpc.reflection.v1alpha.ServerReflection"
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        asks = [reflection_pb2.ServerReflectionRequest(list_services="")] * 3
        before = served.scrape()
        answers = list(stub.ServerReflectionInfo(iter(asks), timeout=10))
        changes = moved(before, served.scrape())
    assert len(answers) == 3
    method = {"service": service, "method": "ServerReflectionInfo"}
    assert changes[sample("sidra_rpc_requests_total", **method, code="OK")] == 1
    assert changes[sample("sidra_rpc_request_size_bytes_count", **method)] == 3
    assert changes[sample("sidra_rpc_response_size_bytes_count", **method)] == 3
    assert changes[sample("sidra_rpc_response_size_bytes_sum", **method)] == sum(
        answer.ByteSize() for answer in answers
    )
    assert served.scrape()[sample("sidra_rpc_in_flight", **method)] == 0


def test_each_step_of_a_sequence_counts_as_the_operation_it_is(
    rig: tuple[Served, RemoteBoard],
) -> None:
    """A RunSequence counts once as itself and once per step as that step's operation;
    its Program steps' cell writes go to Program, exactly as the reports say."""
    from sidra.drivers.requests import ProgramRequest, Request, TransposeMVMRequest

    served, remote = rig
    info = remote.info
    rng = np.random.default_rng(8)
    g = rng.uniform(info.g_min_us, info.g_max_us, (6, 5)).astype(np.float32)
    v = rng.uniform(-0.1, 0.1, (3, 6)).astype(np.float32)
    region = Region(0, 0, 6, 5)
    steps: list[Request] = [
        ProgramRequest(2, g),
        MVMRequest(2, v, region),
        MVMRequest(2, v, region),
        TransposeMVMRequest(2, v[:, :5], region),
        ProgramRequest(2, g[:2, :2], 1, 1),
    ]
    before = served.scrape()
    result = remote.run_sequence(steps)
    changes = moved(before, served.scrape())
    written = result.results[0].cells_written + result.results[4].cells_written
    assert written > 0
    operations = only(changes, "sidra_board_operations_total")
    assert operations == {
        sample("sidra_board_operations_total", operation="RunSequence"): 1,
        sample("sidra_board_operations_total", operation="Program"): 2,
        sample("sidra_board_operations_total", operation="MVM"): 2,
        sample("sidra_board_operations_total", operation="TransposeMVM"): 1,
    }
    assert only(changes, "sidra_board_cell_writes_total") == {
        sample("sidra_board_cell_writes_total", operation="Program"): written
    }


def test_lease_waits_are_counted_by_how_they_ended(rig: tuple[Served, RemoteBoard]) -> None:
    """A lab alerting on runs that wait for tiles (or give up on them) had no series of
    it: sidra_lease_events_total counts a refusal, not a wait, and nothing counted the
    AcquireLease that waited for a tile another session held and got it."""
    import threading

    from sidra.client import LeaseHeld

    served, holder = rig
    address = f"127.0.0.1:{served.port}"
    before = served.scrape()
    with (
        connect(address) as impatient,
        connect(address) as patient,
        holder.session(label="holder") as held,
    ):
        lease = held.lease([0])
        with impatient.session() as session, pytest.raises(LeaseHeld):
            session.lease([0])  # refused at once: wait_s 0
        with impatient.session() as session, pytest.raises(OutOfRange):
            session.lease([99])  # a bad request: waited for no one
        granted: list[object] = []
        with patient.session() as session:
            waiter = threading.Thread(target=lambda: granted.append(session.lease([0], wait_s=30)))
            waiter.start()
            lease.release()  # the waiter gets the tile, now or once it asks
            waiter.join(timeout=35)
            assert len(granted) == 1
    changes = moved(before, served.scrape())
    counts = {
        dict(labels)["outcome"]: value
        for (name, labels), value in changes.items()
        if name == "sidra_lease_wait_seconds_count"
    }
    assert counts == {"granted": 2.0, "refused": 1.0}  # the holder's own lease, the waiter's
    every = sample("sidra_lease_wait_seconds_bucket", outcome="granted", le="60.0")
    assert changes[every] == 2.0  # under the longest wait a call may ask for
