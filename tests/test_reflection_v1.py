"""Server reflection v1 (grpc.reflection.v1.ServerReflection), spoken by a real client.

grpcio-reflection ships only v1alpha messages; v1 is the same protocol field for
field, so the client builds v1alpha messages and calls the v1 method path, as a
tool speaking v1 (grpcurl, Postman) puts the same bytes on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from sidra.drivers import BoardDriver
from sidra.drivers.operations import OPERATIONS
from sidra.server.app import HEALTH_NAMES, REFLECTION_NAMES, create_server

BOARD_SERVICE = "sidra.hil.v1.BoardService"
V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
Request = reflection_pb2.ServerReflectionRequest
Response = reflection_pb2.ServerReflectionResponse


@pytest.fixture
def channel(served: tuple[BoardDriver, int]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as ch:
        yield ch


def reflect_v1(channel: grpc.Channel, *requests: Request) -> list[Response]:
    """One v1 ServerReflectionInfo stream carrying ``requests``; its replies in order."""
    call = channel.stream_stream(
        V1_METHOD,
        request_serializer=Request.SerializeToString,
        response_deserializer=Response.FromString,
    )
    return list(call(iter(requests), timeout=10))


def test_v1_lists_services_including_both_reflection_versions(channel: grpc.Channel) -> None:
    """ListServices over v1 names BoardService, StreamService, SessionService, JobService,
    DeploymentService, health, and reflection v1 and v1alpha."""
    [reply] = reflect_v1(channel, Request(list_services=""))
    assert reply.WhichOneof("message_response") == "list_services_response"
    names = {s.name for s in reply.list_services_response.service}
    assert names == {
        BOARD_SERVICE,
        "sidra.hil.v1.StreamService",
        "sidra.hil.v1.SessionService",
        "sidra.hil.v1.JobService",
        "sidra.hil.v1.DeploymentService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_v1_file_containing_board_service(channel: grpc.Channel) -> None:
    """file_containing_symbol over v1 returns board.proto with every BoardService RPC and
    echoes the original request, on the same stream as a second question."""
    replies = reflect_v1(
        channel,
        Request(list_services=""),
        Request(file_containing_symbol=BOARD_SERVICE),
    )
    assert len(replies) == 2
    reply = replies[1]
    assert reply.original_request.file_containing_symbol == BOARD_SERVICE
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    board = next(f for f in files if f.package == "sidra.hil.v1")
    service = next(s for s in board.service if s.name == "BoardService")
    assert {m.name for m in service.method} >= {"GetBoardInfo", "Program", "MVM", "AdvanceClock"}
    assert len(service.method) == len(OPERATIONS)  # one RPC per operation


def test_v1_unknown_symbol_is_a_not_found_error_response(channel: grpc.Channel) -> None:
    """An unknown symbol is answered in-stream with error_response NOT_FOUND (the stream
    itself succeeds), as the reflection protocol specifies."""
    [reply] = reflect_v1(channel, Request(file_containing_symbol="sidra.hil.v1.NoSuchThing"))
    assert reply.WhichOneof("message_response") == "error_response"
    assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_reflection_off_serves_neither_version(ideal_driver: BoardDriver) -> None:
    """reflection_enabled=False answers UNIMPLEMENTED on v1 as on v1alpha."""
    server, port = create_server(ideal_driver, "127.0.0.1:0", reflection_enabled=False)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.RpcError) as caught:
                reflect_v1(ch, Request(list_services=""))
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(grace=None)


def test_documented_names() -> None:
    """The names board.proto documents are the ones the server registers."""
    assert HEALTH_NAMES == ("", BOARD_SERVICE)
    assert REFLECTION_NAMES == (
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    )
