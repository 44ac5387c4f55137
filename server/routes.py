"""Unary RPCs of the service's small services (sessions, deployments), routed alike.

Each RPC's request arrives as raw bytes and is parsed here rather than by gRPC's
deserializer, which would answer INTERNAL for a malformed request; the caller is
admitted under its ``[limits]`` (request size, calls in flight) before the servicer's
method runs; every error leaves through ``sidra.server.status``. The servicer offers
``caller_of(context) -> (principal, is admin)``, ``limits`` and one method per RPC,
named as the RPC, taking the parsed request and the context.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message

from sidra.server.limits import PrincipalLimits, caller_key
from sidra.server.parsing import parse_request
from sidra.server.status import map_errors

__all__ = ["Servicer", "UnaryRoute", "unary_service_handler"]


class Servicer(Protocol):
    """What a routed servicer offers besides its RPC methods."""

    limits: PrincipalLimits

    def caller_of(self, context: grpc.ServicerContext) -> tuple[str, bool]: ...


class UnaryRoute:
    """One unary RPC of ``messages`` (a generated ``*_pb2`` module) to ``servicer``."""

    def __init__(self, servicer: Servicer, rpc: str, messages: ModuleType) -> None:
        self.servicer = servicer
        self.method = getattr(servicer, rpc)
        self.rpc = rpc
        self.message_type = getattr(messages, f"{rpc}Request")
        self.request_type = self.message_type.DESCRIPTOR  # for map_errors' BadRequest paths

    @map_errors
    def __call__(self, data: bytes, context: grpc.ServicerContext) -> Message:
        principal, _ = self.servicer.caller_of(context)
        with self.servicer.limits.admitted(caller_key(principal, context.peer()), len(data)):
            message: Message = self.method(parse_request(self.message_type, data), context)
        return message


def unary_service_handler(
    servicer: Servicer, messages: ModuleType, service: str
) -> grpc.GenericRpcHandler:
    """Every RPC of ``service`` (declared in ``messages``' file, each unary), routed to
    ``servicer`` (add_generic_rpc_handlers)."""
    methods = messages.DESCRIPTOR.services_by_name[service].methods
    handlers: dict[str, Any] = {
        method.name: grpc.unary_unary_rpc_method_handler(
            UnaryRoute(servicer, method.name, messages),
            request_deserializer=None,
            response_serializer=getattr(messages, method.output_type.name).SerializeToString,
        )
        for method in methods
    }
    full_name: str = messages.DESCRIPTOR.services_by_name[service].full_name
    return grpc.method_handlers_generic_handler(full_name, handlers)
