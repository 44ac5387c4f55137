"""Error hygiene at the gRPC boundary: echoed values are capped so an error never
outgrows its request, both directions of the status mapping come from one table,
and a client survives a rich-status trailer that disagrees with its call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidra.client.errors import exception_class, from_rpc_error
from sidra.drivers import errors
from sidra.drivers.errors import ECHO_LIMIT, GRPC_STATUS, InvalidArgument, OutOfRange
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server.status import code_for, to_status

DETAILS_KEY = "grpc-status-details-bin"


def trailer_bytes(err: grpc.RpcError) -> int:
    return sum(len(k) + len(v) for k, v in err.trailing_metadata())


def unpack(err: grpc.RpcError, cls: Any) -> Any:
    status = rpc_status.from_call(err)
    assert status is not None
    for detail in status.details:
        if detail.Is(cls.DESCRIPTOR):
            msg = cls()
            detail.Unpack(msg)
            return msg
    raise AssertionError(f"no {cls.__name__} in the trailer")


# -- capped echoes ---------------------------------------------------------------------------


def test_thousand_dimension_shape_gets_small_invalid_argument(
    stub: pb_grpc.BoardServiceStub,
) -> None:
    """An MVM whose Tensor declares 1,000 dimensions of 2^32 - 1 (a ~5 KB request) gets
    INVALID_ARGUMENT on a default client, with a trailer smaller than the request (it used
    to be ~12.6 KB, which a default client refuses as RESOURCE_EXHAUSTED)."""
    tensor = pb.Tensor(dtype=pb.DTYPE_FLOAT32, shape=[2**32 - 1] * 1000, data=b"")
    request = pb.MVMRequest(voltages=tensor)
    assert request.ByteSize() > 5000

    with pytest.raises(grpc.RpcError) as caught:
        stub.MVM(request, timeout=10)
    err = caught.value

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailer_bytes(err) < 2048 < request.ByteSize()
    assert err.details().startswith("voltages.shape: got '[4294967295, "), err.details()
    assert "(1000 dimensions)" in err.details()
    info = unpack(err, error_details_pb2.ErrorInfo)
    assert len(info.metadata["value"]) <= ECHO_LIMIT
    violation = unpack(err, error_details_pb2.BadRequest).field_violations[0]
    assert violation.field == "voltages.shape"
    assert violation.description == err.details()


def test_long_value_and_allowed_are_cut_with_a_marker() -> None:
    """A 100,000-character value and allowed text are cut to ECHO_LIMIT characters each,
    with a marker saying how much was cut."""
    exc = InvalidArgument("voltages", "x" * 100_000, "y" * 100_000)
    text = str(exc)
    assert len(text) < 3 * ECHO_LIMIT
    assert "(99802 more characters)" in text  # repr adds two quotes to the value
    assert f"({100_000 - ECHO_LIMIT} more characters)" in text
    assert exc.value == "x" * 100_000  # the exception keeps the full value for local code


def test_status_trailer_is_bounded_for_any_error() -> None:
    """Every part of the serialised status (message, ErrorInfo metadata, BadRequest
    description) stays small, for argument errors and for any other message."""
    huge = list(range(50_000))
    for exc in (
        OutOfRange("voltages", huge, f"not {huge}"),
        errors.BoardFault("internal error: " + "z" * 100_000),
    ):
        status = to_status(exc)
        size = sum(len(k) + len(v) for k, v in status.trailing_metadata)
        assert size < 4096, (type(exc).__name__, size)
        assert len(status.details) < 2048


# -- one table, both directions --------------------------------------------------------------


def _instance(cls: type[errors.SidraError]) -> errors.SidraError:
    if issubclass(cls, (InvalidArgument, errors.ResourceExhausted)):
        return cls("tile", 9, "0 .. 3")
    return cls("message")


@pytest.mark.parametrize(("cls", "name"), GRPC_STATUS, ids=[n for _, n in GRPC_STATUS])
def test_server_and_client_read_the_same_table(cls: type[errors.SidraError], name: str) -> None:
    """The server's code for each class is the table's, and the client maps it back to
    the same class."""
    code = code_for(_instance(cls))
    assert code.name == name
    assert exception_class(code) is cls


def test_codes_the_server_never_sends_become_sidra_error() -> None:
    assert exception_class(grpc.StatusCode.CANCELLED) is errors.SidraError
    assert exception_class(grpc.StatusCode.DATA_LOSS) is errors.SidraError


@contextmanager
def one_method_server(
    handler: Callable[[bytes, grpc.ServicerContext], bytes],
) -> Iterator[grpc.Channel]:
    """A real server on loopback whose one method, /t.T/M, is ``handler`` (bytes in and
    out), and a channel to it."""
    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    method = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", {"M": method}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        server.stop(grace=None)


def test_a_call_the_server_cancels_is_a_server_gone_not_a_bare_cancelled() -> None:
    """gRPC cancels a call that reaches a server as it stops (the window is narrow: a
    training run met it as "SidraError: CANCELLED: CANCELLED"). The client never cancels a
    call it waits for, so CANCELLED is the server going: BoardUnavailable, saying so."""

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.CANCELLED, request.decode())
        return b""

    errors_seen = []
    with one_method_server(handler) as channel:
        for details in (b"", b"Cancelling all calls"):
            with pytest.raises(grpc.RpcError) as caught:
                channel.unary_unary("/t.T/M")(details, timeout=10)
            assert caught.value.code() == grpc.StatusCode.CANCELLED
            errors_seen.append(from_rpc_error(caught.value))
    bare, said = errors_seen
    assert type(bare) is errors.BoardUnavailable and type(said) is errors.BoardUnavailable
    assert str(bare) == (
        "CANCELLED: the server ended the call unanswered: it is stopping or restarting "
        "(whether the call ran on the board is not known)"
    )
    assert str(said).endswith("not known) (Cancelling all calls)")


# -- a trailer that disagrees with its call ---------------------------------------------------


class _Abort(grpc.Status):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, trailer: status_pb2.Status) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = ((DETAILS_KEY, trailer.SerializeToString()),)


def _argument_trailer(message: str, code: int = code_pb2.OUT_OF_RANGE) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(
        reason="OUT_OF_RANGE",
        domain="sidra.hil",
        metadata={"field": "tile", "value": "9", "allowed": "0 .. 3"},
    )
    packed = status_pb2.Status(code=code, message=message)
    packed.details.add().Pack(info)
    return packed


@pytest.fixture
def lying_server() -> Iterator[grpc.Channel]:
    """A server whose one method fails with OUT_OF_RANGE "tile: got 9" and a trailer
    chosen by the request: "message" disagrees on the message, "code" on the code."""

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        if request == b"message":
            trailer = _argument_trailer("something else")
        else:
            trailer = _argument_trailer("tile: got 9", code_pb2.INTERNAL)
        context.abort_with_status(_Abort(grpc.StatusCode.OUT_OF_RANGE, "tile: got 9", trailer))
        return b""

    with one_method_server(handler) as channel:
        yield channel


@pytest.mark.parametrize("disagree", [b"message", b"code"])
def test_inconsistent_trailer_falls_back_to_code_and_message(
    lying_server: grpc.Channel, disagree: bytes
) -> None:
    """rpc_status.from_call raises ValueError on such a trailer; the client still gives
    the class of the call's code with the call's message."""
    call = lying_server.unary_unary("/t.T/M")
    with pytest.raises(grpc.RpcError) as caught:
        call(disagree, timeout=10)
    with pytest.raises(ValueError):
        rpc_status.from_call(caught.value)

    exc = from_rpc_error(caught.value)

    assert type(exc) is OutOfRange
    assert exc.field == "request"
    assert "tile: got 9" in str(exc.value)
