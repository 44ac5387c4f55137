"""One log line per RPC, the request id round trip, and tracebacks only for the service's faults.

A real server on the ideal emulator; the log is what the server's threads
logged, captured at DEBUG. The internal fault comes from a service registered
beside BoardService whose handler has a bug (a division by zero), wrapped by
the same ``map_errors`` as every board route.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from observability_support import IDEAL_URL, served_with_metrics

from sidra.drivers import open_board
from sidra.drivers.operations import OPERATIONS
from sidra.drivers.requests import MVMRequest
from sidra.hil import convert
from sidra.server import SERVICE_NAME
from sidra.server.observability import REQUEST_ID, RPC_LOGGER
from sidra.server.observability.logs import (
    CallContextFilter,
    JsonFormatter,
    TextFormatter,
    level_of,
)
from sidra.server.status import map_errors

BUGGY = "sidra.test.Buggy"
MVM = next(op for op in OPERATIONS if op.rpc == "MVM")


class Buggy:
    """Handlers with a bug and with a refusal of their own, under map_errors."""

    @map_errors
    def divide(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return str(1 // len(request)).encode()  # an empty request divides by zero

    @map_errors
    def refuse(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "tile 0 is not leased to you")
        raise AssertionError("abort returned")


def buggy_service() -> grpc.GenericRpcHandler:
    buggy = Buggy()
    handlers = {
        "Divide": grpc.unary_unary_rpc_method_handler(buggy.divide),
        "Refuse": grpc.unary_unary_rpc_method_handler(buggy.refuse),
    }
    return grpc.method_handlers_generic_handler(BUGGY, handlers)


@pytest.fixture
def channel() -> Iterator[grpc.Channel]:
    with (
        open_board(IDEAL_URL) as board,
        served_with_metrics(board, extra=(buggy_service(),)) as served,
        grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel,
    ):
        yield channel


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """What the service logs at DEBUG, as ``sidra serve`` formats it (text)."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(TextFormatter())
    handler.addFilter(CallContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield text
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def call(
    channel: grpc.Channel, method: str, request: bytes, request_id: str | None = None
) -> tuple[grpc.StatusCode, dict[str, Any]]:
    """Calls ``method``; its status code and trailing metadata."""
    metadata = () if request_id is None else ((REQUEST_ID, request_id),)
    try:
        _, outcome = channel.unary_unary(method).with_call(request, timeout=10, metadata=metadata)
    except grpc.RpcError as exc:
        return exc.code(), dict(exc.trailing_metadata() or ())
    return grpc.StatusCode.OK, dict(outcome.trailing_metadata() or ())


def rpc_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == RPC_LOGGER]


def mvm(tile: int) -> bytes:
    """An MVM request of one zero vector on ``tile``, as a client sends it."""
    request = MVMRequest(tile, np.zeros((1, 256), np.float32))
    return bytes(convert.request_to_pb(request, MVM).SerializeToString())


def bad_mvm() -> bytes:
    """An MVM request for tile 99, which the ideal board does not have."""
    return mvm(99)


def test_request_id_round_trip(channel: grpc.Channel, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    info = f"/{SERVICE_NAME}/GetBoardInfo"
    code, trailers = call(channel, info, b"", request_id="lab-7/run-42.step-3")
    assert code == grpc.StatusCode.OK and trailers[REQUEST_ID] == "lab-7/run-42.step-3"
    code, trailers = call(channel, info, b"")  # none sent: one is made
    assert code == grpc.StatusCode.OK and re.fullmatch(r"[0-9a-f]{32}", trailers[REQUEST_ID])
    made = trailers[REQUEST_ID]
    code, trailers = call(channel, f"/{SERVICE_NAME}/MVM", bad_mvm(), request_id="bad-1")
    assert code == grpc.StatusCode.OUT_OF_RANGE and trailers[REQUEST_ID] == "bad-1"
    assert "grpc-status-details-bin" in trailers  # the error details are still there
    code, trailers = call(channel, info, b"", request_id="has space")  # unfit for a log line
    assert re.fullmatch(r"[0-9a-f]{32}", trailers[REQUEST_ID])
    logged = [record.rpc["request_id"] for record in rpc_records(caplog)]  # type: ignore[attr-defined]
    assert logged == ["lab-7/run-42.step-3", made, "bad-1", trailers[REQUEST_ID]]


def test_one_line_per_rpc_with_principal_method_code_and_duration(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call(channel, f"/{SERVICE_NAME}/GetBoardInfo", b"")
    call(channel, f"/{SERVICE_NAME}/MVM", mvm(0))
    call(channel, f"/{SERVICE_NAME}/MVM", bad_mvm())
    records = rpc_records(caplog)
    fields = [record.rpc for record in records]  # type: ignore[attr-defined]
    assert [(f["method"].rsplit("/", 1)[1], f["code"]) for f in fields] == [
        ("GetBoardInfo", "OK"),
        ("MVM", "OK"),
        ("MVM", "OUT_OF_RANGE"),
    ]
    assert all(f["principal"] == "local" and f["duration_ms"] > 0 for f in fields)
    # A routine MVM answered OK is DEBUG; one that failed is INFO, like any other call.
    assert [record.levelno for record in records] == [logging.INFO, logging.DEBUG, logging.INFO]
    # On-board SPSA makes one PerturbedMVM per step: routine too.
    assert level_of(f"/{SERVICE_NAME}/PerturbedMVM", grpc.StatusCode.OK) == logging.DEBUG
    line = records[0].getMessage()
    assert re.fullmatch(
        rf"rpc method=/{SERVICE_NAME}/GetBoardInfo code=OK duration_ms=[\d.]+ principal=local "
        r"request_id=[0-9a-f]{32} request_bytes=0 response_bytes=\d+",
        line,
    ), line


def test_a_bad_request_logs_no_traceback(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture, log_text: io.StringIO
) -> None:
    caplog.set_level(logging.DEBUG)
    garbage = b"\xff\xff\xff"  # not a request message at all
    for request in (bad_mvm(), garbage):
        code, _ = call(channel, f"/{SERVICE_NAME}/MVM", request)
        assert code in (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.INVALID_ARGUMENT)
    code, _ = call(channel, f"/{BUGGY}/Refuse", b"")  # a handler's own refusal
    assert code == grpc.StatusCode.FAILED_PRECONDITION  # not turned into INTERNAL
    assert [r.rpc["code"] for r in rpc_records(caplog)] == [  # type: ignore[attr-defined]
        "OUT_OF_RANGE",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
    ]
    assert not [record for record in caplog.records if record.exc_info]
    assert "Traceback" not in caplog.text and "Traceback" not in log_text.getvalue()


def test_an_internal_error_logs_one_traceback_naming_the_request(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture, log_text: io.StringIO
) -> None:
    caplog.set_level(logging.DEBUG)
    code, trailers = call(channel, f"/{BUGGY}/Divide", b"", request_id="req-div-0")
    assert code == grpc.StatusCode.INTERNAL and trailers[REQUEST_ID] == "req-div-0"
    with_traceback = [record for record in caplog.records if record.exc_info]
    assert len(with_traceback) == 1
    assert with_traceback[0].exc_info is not None
    assert with_traceback[0].exc_info[0] is ZeroDivisionError
    (line,) = rpc_records(caplog)
    assert line.levelno == logging.ERROR and not line.exc_info
    assert line.rpc["code"] == "INTERNAL"  # type: ignore[attr-defined]
    text = log_text.getvalue()
    assert text.count("Traceback") == 1
    assert re.search(r"ERROR sidra\.server\.status: divide failed request_id=req-div-0\n", text)


def test_json_lines() -> None:
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CallContextFilter())
    rpc_log = logging.getLogger(RPC_LOGGER)
    rpc_log.addHandler(handler)
    level = rpc_log.level
    rpc_log.setLevel(logging.DEBUG)
    try:
        with (
            open_board(IDEAL_URL) as board,
            served_with_metrics(board, extra=(buggy_service(),)) as served,
            grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel,
        ):
            call(channel, f"/{SERVICE_NAME}/GetBoardInfo", b"", request_id="json-1")
            call(channel, f"/{SERVICE_NAME}/MVM", np.zeros(3, np.uint8).tobytes())
    finally:
        rpc_log.removeHandler(handler)
        rpc_log.setLevel(level)
    lines = [json.loads(line) for line in text.getvalue().splitlines()]
    assert [(line["message"], line["code"]) for line in lines] == [
        ("rpc", "OK"),
        ("rpc", "INVALID_ARGUMENT"),
    ]
    first = lines[0]
    assert first["request_id"] == "json-1" and first["principal"] == "local"
    assert first["method"] == f"/{SERVICE_NAME}/GetBoardInfo" and first["level"] == "INFO"
    assert isinstance(first["duration_ms"], float) and first["time"].endswith("+00:00")


def test_a_retried_refusal_logs_once_a_burst(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    """A client retrying past its limits made one INFO line a retry (304 in seconds):
    the same refusal within the window is logged once; another code is its own."""
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        call(channel, f"/{SERVICE_NAME}/MVM", bad_mvm())
    call(channel, f"/{SERVICE_NAME}/MVM", b"\xff\xff\xff")
    mvms = [r.rpc for r in rpc_records(caplog) if r.rpc["method"].endswith("/MVM")]  # type: ignore[attr-defined]
    assert [fields["code"] for fields in mvms] == ["OUT_OF_RANGE", "INVALID_ARGUMENT"]


def test_the_next_line_of_a_refusal_says_how_many_it_stands_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sidra.server.observability.calls import CallRecord
    from sidra.server.observability.logs import log_rpc
    from sidra.server.observability.repeats import RepeatedRefusals

    now = [100.0]
    repeats = RepeatedRefusals(window_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.DEBUG)

    def refused(principal: str = "alice") -> None:
        record = CallRecord(f"/{SERVICE_NAME}/MVM", "0" * 32, principal=principal)
        record.code = grpc.StatusCode.RESOURCE_EXHAUSTED
        log_rpc(record, repeats)

    for second in (0.0, 1.0, 2.0, 9.9):
        now[0] = 100.0 + second
        refused()
    refused("bob")  # another principal's: its own line
    now[0] = 110.0  # the window of the first line is over
    refused()
    lines = [(r.rpc["principal"], r.rpc.get("held_back")) for r in rpc_records(caplog)]  # type: ignore[attr-defined]
    assert lines == [("alice", None), ("bob", None), ("alice", 3)]
    assert rpc_records(caplog)[-1].getMessage().endswith(" held_back=3")
    ok = CallRecord(f"/{SERVICE_NAME}/Program", "1" * 32)
    for _ in range(3):  # answered calls are never held back
        log_rpc(ok, repeats)
    assert len(rpc_records(caplog)) == 6


def test_a_burst_of_refusals_that_ends_inside_its_window_is_still_counted_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """16 threads against max_in_flight made 331 refusals in a second, then the client
    stopped: the log showed one line, and the 330 held back were never said (only a
    later refusal of the same kind would have carried held_back=)."""
    from sidra.server.observability.calls import CallRecord
    from sidra.server.observability.logs import log_held_back, log_rpc
    from sidra.server.observability.repeats import RepeatedRefusals

    repeats = RepeatedRefusals(window_s=0.5, on_window_end=log_held_back)
    caplog.set_level(logging.DEBUG)
    for _ in range(6):
        record = CallRecord(f"/{SERVICE_NAME}/MVM", "0" * 32, principal="alice")
        record.code = grpc.StatusCode.RESOURCE_EXHAUSTED
        log_rpc(record, repeats)
    deadline = time.monotonic() + 10
    while len(rpc_records(caplog)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    lines = [r.rpc for r in rpc_records(caplog)]  # type: ignore[attr-defined]
    assert len(lines) >= 2
    assert 1 + sum(int(fields.get("held_back", 0)) for fields in lines) == 6  # every one
    last = rpc_records(caplog)[-1]
    assert last.levelname == "INFO"
    assert last.getMessage() == (
        f"rpc method=/{SERVICE_NAME}/MVM code=RESOURCE_EXHAUSTED principal=alice "
        f"held_back={last.rpc['held_back']} window_s=0.5"  # type: ignore[attr-defined]
    )
