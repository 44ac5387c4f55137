"""Standard gRPC health checking and server reflection on the served board."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from sidra.drivers import BoardDriver
from sidra.drivers.operations import OPERATIONS
from sidra.server import SERVICE_NAME

BOARD_SERVICE = "sidra.hil.v1.BoardService"
BOARD_METHODS = {op.rpc for op in OPERATIONS}


@pytest.fixture
def channel(served: tuple[BoardDriver, int]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as ch:
        yield ch


def test_service_name_constant() -> None:
    """The server's SERVICE_NAME is the fully qualified proto service name."""
    assert SERVICE_NAME == BOARD_SERVICE


@pytest.mark.parametrize("service", ["", BOARD_SERVICE])
def test_health_check_serving(channel: grpc.Channel, service: str) -> None:
    """Health Check reports SERVING for the server as a whole and for BoardService."""
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_unknown_service_not_found(channel: grpc.Channel) -> None:
    """Health Check of a service the server does not host fails with NOT_FOUND."""
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(health_pb2.HealthCheckRequest(service="sidra.hil.v1.NoSuchService"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def _reflect(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    assert len(replies) == 1
    return replies[0]


def test_reflection_lists_board_service(channel: grpc.Channel) -> None:
    """ListServices names BoardService, health and reflection itself (v1 and v1alpha)."""
    reply = _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in reply.list_services_response.service}
    assert BOARD_SERVICE in names
    assert "grpc.health.v1.Health" in names
    assert "grpc.reflection.v1alpha.ServerReflection" in names
    assert "grpc.reflection.v1.ServerReflection" in names


def test_reflection_serves_board_proto(channel: grpc.Channel) -> None:
    """file_containing_symbol returns board.proto's descriptor with every operation's RPC."""
    reply = _reflect(
        channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=BOARD_SERVICE)
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    board = next(f for f in files if f.package == "sidra.hil.v1")
    service = next(s for s in board.service if s.name == "BoardService")
    assert {m.name for m in service.method} == BOARD_METHODS


def test_call_board_through_reflection_only(channel: grpc.Channel) -> None:
    """A tool that knows nothing but reflection (like grpcurl) can build and send
    GetBoardInfo and decode the reply."""
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    method = pool.FindServiceByName(BOARD_SERVICE).FindMethodByName("GetBoardInfo")
    request_cls = message_factory.GetMessageClass(method.input_type)
    reply_cls = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        f"/{BOARD_SERVICE}/GetBoardInfo",
        request_serializer=request_cls.SerializeToString,
        response_deserializer=reply_cls.FromString,
    )
    reply = call(request_cls(), timeout=10)
    assert reply.info.tile_count == 4
    assert (reply.info.rows, reply.info.cols) == (256, 256)
    assert reply.info.emulator_preset == "ideal"


@pytest.mark.parametrize("board", ["127.0.0.1:0", "emu://", None])
def test_create_server_refuses_what_is_no_board(board: object) -> None:
    """The address first, as other servers take it, failed deep inside on 'str'.info."""
    from sidra.server import create_server

    with pytest.raises(TypeError, match=r"board: got \w+, expected a Board .*create_server\(board"):
        create_server(board, "127.0.0.1:0")  # type: ignore[arg-type]
