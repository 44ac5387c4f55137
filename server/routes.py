"""Unary RPCs of the service's small services (sessions, jobs, deployments), routed alike.

Each RPC's request arrives as raw bytes and is parsed here rather than by gRPC's
deserializer, which would answer INTERNAL for a malformed request; the caller is
admitted under its ``[limits]`` (request size, calls in flight) before the servicer's
method runs; every error leaves through ``sidra.server.status``. The servicer offers
``caller_of(context) -> (principal, is admin)``, ``limits`` and one method per RPC,
named as the RPC, taking the parsed request and the context.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from types import ModuleType
from typing import Protocol

import grpc
from google.protobuf.message import Message

from sidra.server.limits import PrincipalLimits, caller_key
from sidra.server.parsing import parse_request
from sidra.server.status import map_errors

__all__ = ["AbortFor", "Servicer", "UnaryRoute", "unary_handlers", "unary_service_handler"]


class Servicer(Protocol):
    """What a routed servicer offers besides its RPC methods."""

    limits: PrincipalLimits

    def caller_of(self, context: grpc.ServicerContext) -> tuple[str, bool]: ...


AbortFor = Callable[[Exception, grpc.ServicerContext], None]
"""A service's own refusals (exceptions outside the SIDRA tree, as a job service's
NotJobOwner) turned into a status with ``context.abort``; it returns for any other."""


class UnaryRoute:
    """One unary RPC of ``messages`` (a generated ``*_pb2`` module) to ``servicer``;
    ``abort_for`` sees an exception of the method before ``map_errors`` does."""

    def __init__(
        self, servicer: Servicer, rpc: str, messages: ModuleType, abort_for: AbortFor | None = None
    ) -> None:
        self.servicer = servicer
        self.method = getattr(servicer, rpc)
        self.rpc = rpc
        self.message_type = getattr(messages, f"{rpc}Request")
        self.request_type = self.message_type.DESCRIPTOR  # for map_errors' BadRequest paths
        self.abort_for = abort_for

    @map_errors
    def __call__(self, data: bytes, context: grpc.ServicerContext) -> Message:
        principal, _ = self.servicer.caller_of(context)
        with self.servicer.limits.admitted(caller_key(principal, context.peer()), len(data)):
            try:
                message: Message = self.method(parse_request(self.message_type, data), context)
            except Exception as exc:
                if self.abort_for is not None:
                    self.abort_for(exc, context)
                raise
        return message


def unary_handlers(
    servicer: Servicer,
    messages: ModuleType,
    service: str,
    *,
    abort_for: AbortFor | None = None,
    leave_out: Collection[str] = (),
) -> dict[str, grpc.RpcMethodHandler]:
    """A handler for each RPC of ``service`` (declared in ``messages``' file) but those
    named in ``leave_out`` (a stream the service routes itself), each unary."""
    methods = messages.DESCRIPTOR.services_by_name[service].methods
    return {
        method.name: grpc.unary_unary_rpc_method_handler(
            UnaryRoute(servicer, method.name, messages, abort_for),
            request_deserializer=None,
            response_serializer=getattr(messages, method.output_type.name).SerializeToString,
        )
        for method in methods
        if method.name not in leave_out
    }


def unary_service_handler(
    servicer: Servicer, messages: ModuleType, service: str
) -> grpc.GenericRpcHandler:
    """Every RPC of ``service`` (each unary), routed to ``servicer``
    (add_generic_rpc_handlers)."""
    full_name: str = messages.DESCRIPTOR.services_by_name[service].full_name
    return grpc.method_handlers_generic_handler(
        full_name, unary_handlers(servicer, messages, service)
    )
