"""The server interceptor that times, counts and logs every call, and returns its request id.

:class:`CallObserver` goes outermost in the server's interceptor chain, so it
sees every call, refused ones too, from arrival to status::

    CallObserver -> AccessControl(on_refusal=observer.refused) -> observer.principal_tag -> handler

Authentication binds the principal only inside the call it admits, so
:attr:`CallObserver.principal_tag`, placed after it, copies the principal into
the call's record; a refused call's principal (when it named one) arrives
through :meth:`CallObserver.refused`, which also counts the auth failure.

Each finished call: ``x-request-id`` added to its trailing metadata (after any
trailers the handler set), its metrics recorded, its one log line written
(:func:`~sidra.server.observability.logs.log_rpc`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import grpc
from google.protobuf.message import Message

from sidra.drivers.operations import STEP_OPERATIONS
from sidra.hil.v1.stream_pb2 import MVMStreamResponse
from sidra.server.observability.calls import (
    REQUEST_ID,
    CallRecord,
    bind,
    bound_call,
    current_call,
    request_id_from,
    unbind,
)
from sidra.server.observability.logs import log_held_back, log_rpc
from sidra.server.observability.metrics import WRITING_RPCS, MethodSeries, ServiceMetrics
from sidra.server.observability.repeats import RepeatedRefusals
from sidra.server.security import Principal, current_principal
from sidra.server.servicer import SERVICE_NAME
from sidra.server.streams import STREAM_SERVICE_NAME
from sidra.server.wrapped import WrappedHandlers

__all__ = ["CallObserver", "PrincipalTag"]

Behavior = Callable[..., Any]
Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]


class CallObserver(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Times, counts and logs each call into ``metrics``; sends back its request id."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.principal_tag = PrincipalTag()
        # a retrying client's refusals: once a burst, and how many when it is over
        self.repeats = RepeatedRefusals(on_window_end=log_held_back)

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None  # gRPC answers UNIMPLEMENTED itself; nothing was served
        call = CallRecord(details.method, request_id_from(details.invocation_metadata))
        return _with_behavior(handler, lambda behavior: self._observed(behavior, call, handler))

    def refused(self, code: grpc.StatusCode, reason: str, principal: Principal | None) -> None:
        """``AccessControl``'s refusal listener: counts the failure, names the caller."""
        self.metrics.count_auth_failure(code, reason)
        call = current_call()
        if call is not None and principal is not None:
            call.principal = principal.name

    def _observed(self, behavior: Behavior, call: CallRecord, handler: Any) -> Behavior:
        if handler.response_streaming:
            return self._streaming(behavior, call, handler.request_streaming)
        # The method's series, looked up once for the call rather than at each count.
        series = self.metrics.series(call.method)
        request_streaming = handler.request_streaming

        def run(request: Any, context: grpc.ServicerContext) -> Any:
            if request_streaming:
                request = self._each_sized(request, call)
            else:
                size = _size(request)
                call.request_bytes += size
                series.request_bytes.observe(size)
            # The call is bound and counted in flight until its line is written.
            bound = bind(call)
            in_flight = series.in_flight
            in_flight.inc()
            try:
                try:
                    response = behavior(request, context)
                except BaseException:
                    call.code = _code(context, failed=True)
                    self._finish(call, context, series)
                    raise
                call.code = _code(context, failed=False)
                size = _size(response)
                call.response_bytes += size
                series.response_bytes.observe(size)
                self._finish(call, context, series, response)
                return response
            finally:
                in_flight.dec()
                unbind(bound)

        return run

    def _streaming(self, behavior: Behavior, call: CallRecord, request_streaming: bool) -> Behavior:
        # The response iterator runs one item per next(), after the behaviour returned:
        # the call stays bound around each step, and it ends when the iterator does.
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            request = self._sized_requests(request, call, request_streaming)
            in_flight = self.metrics.series(call.method).in_flight
            in_flight.inc()
            failed, without_status = True, grpc.StatusCode.UNKNOWN
            try:
                with bound_call(call):
                    responses = iter(behavior(request, context))
                while True:
                    with bound_call(call):
                        try:
                            item = next(responses)
                        except StopIteration:
                            failed = False
                            return
                    self._count_response(call, item)
                    if isinstance(item, MVMStreamResponse):  # each pass counts as its own call
                        self._count_stream_item(item)
                    yield item
            except GeneratorExit:  # the client went away mid-stream
                without_status = grpc.StatusCode.CANCELLED
                raise
            finally:
                in_flight.dec()
                call.code = _code(context, failed=failed, without_status=without_status)
                self._finish(call, context)

        return run

    def _sized_requests(self, request: Any, call: CallRecord, streaming: bool) -> Any:
        if not streaming:
            self._count_request(call, request)
            return request
        return self._each_sized(request, call)

    def _each_sized(self, requests: Iterator[Any], call: CallRecord) -> Iterator[Any]:
        for item in requests:
            self._count_request(call, item)
            yield item

    def _count_stream_item(self, item: MVMStreamResponse) -> None:
        member = item.WhichOneof("result")
        if member in _PASS_RPCS:
            self.metrics.count_operation(_PASS_RPCS[member], None)

    def _count_request(self, call: CallRecord, message: Any) -> None:
        size = _size(message)
        call.request_bytes += size
        self.metrics.series(call.method).request_bytes.observe(size)

    def _count_response(self, call: CallRecord, message: Any) -> None:
        size = _size(message)
        call.response_bytes += size
        self.metrics.series(call.method).response_bytes.observe(size)

    def _finish(
        self,
        call: CallRecord,
        context: grpc.ServicerContext,
        series: MethodSeries | None = None,
        response: Any = None,
    ) -> None:
        ours = (REQUEST_ID, call.request_id)
        trailers = context.trailing_metadata()
        context.set_trailing_metadata((*trailers, ours) if trailers else (ours,))
        series = series or self.metrics.series(call.method)
        series.finished(call.code, call.elapsed_s)
        service, rpc = series.labels
        if service == SERVICE_NAME and call.code == grpc.StatusCode.OK:
            written = getattr(response, "cells_written", None) if rpc in WRITING_RPCS else None
            self.metrics.count_operation(rpc, written)
            steps = response.results if rpc == "RunSequence" and response is not None else ()
            for step in steps:  # each step counts as the operation it is
                member = step.WhichOneof("result")
                step_rpc = _STEP_RPCS[member]
                result = getattr(step, member)
                written = result.cells_written if step_rpc in WRITING_RPCS else None
                self.metrics.count_operation(step_rpc, written)
        elif service == STREAM_SERVICE_NAME and call.code == grpc.StatusCode.OK:
            carried = _CARRIED_RPCS.get(rpc)  # a chunked transfer is one call of its RPC
            if carried is not None:
                written = getattr(response, "cells_written", None) if response else None
                self.metrics.count_operation(carried, written)
        log_rpc(call, self.repeats)


_STEP_RPCS = {member: op.rpc for member, op in STEP_OPERATIONS.items()}
"""A RunSequence step result's field (``perturbed_mvm``) -> its operation (PerturbedMVM)."""

_PASS_RPCS = {"mvm": "MVM", "transpose_mvm": "TransposeMVM"}
"""An MVMStream answer's result field -> the operation its item ran."""

_CARRIED_RPCS = {"ProgramChunked": "Program", "ReadConductanceChunked": "ReadConductance"}
"""A chunked StreamService RPC -> the one operation it runs."""


class PrincipalTag(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Copies the principal authentication bound into the call's record (goes after it)."""

    def __init__(self) -> None:
        self._wrapped = WrappedHandlers()

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        return None if handler is None else self._wrapped.get(handler, _naming)


def _naming(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    return _with_behavior(handler, _naming_principal)


def _naming_principal(behavior: Behavior) -> Behavior:
    def run(request: Any, context: grpc.ServicerContext) -> Any:
        call = current_call()
        if call is not None:
            with suppress(LookupError):  # a chain without authentication names nobody
                call.principal = current_principal().name
        return behavior(request, context)

    return run


def _with_behavior(
    handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior], Behavior]
) -> grpc.RpcMethodHandler:
    """``handler`` with its one behaviour (whichever of the four kinds) wrapped by ``wrap``."""
    for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        behavior = getattr(handler, kind)
        if behavior is not None:
            return handler._replace(**{kind: wrap(behavior)})
    return handler


def _code(
    context: grpc.ServicerContext,
    *,
    failed: bool,
    without_status: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
) -> grpc.StatusCode:
    """The status a call ended with: the one set or aborted with; else OK, or, when it
    failed without one, ``without_status`` (gRPC answers an uncaught exception UNKNOWN)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return without_status if failed else grpc.StatusCode.OK


def _size(message: Any) -> int:
    """Bytes of a message on the wire: raw request bytes (BoardService parses its own)
    or a protobuf message's encoded size."""
    if isinstance(message, bytes | bytearray | memoryview):
        return len(message)
    return message.ByteSize() if isinstance(message, Message) else 0
