"""CPU the service's own code spends on one small call, each end apart from gRPC's transport.

``sidra bench service`` times whole round trips, which on the shared 2-vCPU machine
swing with everyone else's load. This times, in thread CPU (``time.thread_time``,
the minimum over rounds: the load adds to a round, never takes away), the code a
1-vector MVM (256 float32 inputs) and a health check run on each end, called
directly rather than through a socket:

* ``board_run_us``: the emulator's MVM (``Board.run``, validation included);
* ``servicer_us``: ``BoardServicer.call``, request bytes in, response message out;
* ``mvm_chain_us`` / ``health_chain_us``: the whole server handler of each as gRPC
  calls it, the interceptors ``create_server`` installs (observer, access control,
  principal tag, instance id) around the route, response serialized;
* ``client_run_us``: ``RemoteBoard.run`` of the MVM with the channel answering at
  once from canned bytes (request built, converted and serialized; response parsed,
  converted, instance checked).

``--instant-board`` swaps the emulator's MVM for a canned result, so the figures
are the service's code alone. ``mvm_specific_us`` is the MVM handler over the health
check's, less the board: what the MVM's own path costs on the server.

    .venv/bin/python scripts/call_overhead.py
    .venv/bin/python scripts/call_overhead.py --instant-board --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sidra.client.remote import RemoteBoard
from sidra.drivers import open_board
from sidra.drivers.operations import OPERATIONS
from sidra.drivers.requests import MVMRequest
from sidra.drivers.types import Cost, MVMResult
from sidra.hil import convert
from sidra.hil.metadata import INSTANCE_ID_KEY
from sidra.server.app import lease_registry
from sidra.server.instance import InstanceMetadata
from sidra.server.limits import PrincipalLimits
from sidra.server.observability import CallObserver, ServiceMetrics
from sidra.server.security import AccessControl, principal_name
from sidra.server.security.tokens import LOCAL
from sidra.server.servicer import BoardServicer, board_service_handler
from sidra.server.sessions import LeaseKeeper
from sidra.server.settings import LeaseSettings
from sidra.server.state import StateStore
from sidra.server.turns import BoardTurns

MVM = next(op for op in OPERATIONS if op.rpc == "MVM")


class Details(NamedTuple):
    """What gRPC hands an interceptor."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class Context:
    """The parts of a ServicerContext the handlers use."""

    def __init__(self) -> None:
        self._trailers: tuple[tuple[str, str], ...] = ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "grpc-python"),)

    def add_callback(self, callback: Callable[[], None]) -> None:
        pass

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailers

    def set_trailing_metadata(self, trailers: tuple[tuple[str, str], ...]) -> None:
        self._trailers = trailers

    def code(self) -> None:
        return None


class Collected:
    """Takes the health servicer's handlers as a server would."""

    handlers: dict[str, Any]

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
        self.handlers = handlers


class Answer:
    """A finished call's trailers, as the client reads them."""

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", "0" * 32), (INSTANCE_ID_KEY, "sidra-emu-0"))


class CannedChannel:
    """A channel whose every unary call answers at once with ``reply``'s bytes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def unary_unary(self, method: str, request_serializer: Any, response_deserializer: Any) -> Any:
        reply = self.reply

        class Call:
            def with_call(self, request: Any, timeout: Any = None, metadata: Any = None) -> Any:
                request_serializer(request)
                return response_deserializer(reply), Answer()

        return Call()

    def stream_stream(self, method: str, **serializers: Any) -> None:
        """The client's streams are made at construction; none is used here."""

    stream_unary = unary_stream = stream_stream

    def close(self) -> None:
        pass


def cpu_us(call: Callable[[], Any], rounds: int, number: int) -> float:
    """Thread CPU per call, µs: the least of ``rounds`` rounds of ``number`` calls."""
    for _ in range(number):
        call()
    timer = timeit.Timer(call, timer=time.thread_time)
    return min(timer.repeat(repeat=rounds, number=number)) / number * 1e6


def measure(instant_board: bool, rounds: int, number: int) -> dict[str, float]:
    board = open_board("emu://?preset=sidra-y1&seed=0")
    info = board.info
    rng = np.random.default_rng(0)
    board.program(0, rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)))
    v1 = np.zeros((1, info.rows), np.float32)
    request = MVMRequest(0, v1)
    canned = MVMResult(np.zeros((1, info.cols), np.float32), 0, Cost(1.0, 1.0))
    if instant_board:
        board.run = lambda request: canned  # type: ignore[method-assign]

    metrics = ServiceMetrics()
    observer = CallObserver(metrics)
    chain = (observer, AccessControl(None, observer.refused), observer.principal_tag)
    chain += (InstanceMetadata(board),)
    turns = BoardTurns()
    keeper = LeaseKeeper(board, turns, lease_registry(board, LeaseSettings()))
    with tempfile.TemporaryDirectory() as folder:
        store = StateStore(Path(folder) / "state.sqlite3")
        servicer = BoardServicer(
            board, store, principal_name, PrincipalLimits(), turns=turns, leases=keeper
        )
        routes = board_service_handler(servicer)
        checks = Collected()
        servicer_of_health = health.HealthServicer()
        servicer_of_health.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer_of_health, checks)

        def handled(method: str, find: Callable[[Any], Any], message: Any) -> Callable[[], Any]:
            details = Details(method, (("user-agent", "grpc-python"),))

            def continuation(at: int) -> Callable[[Any], Any]:
                if at == len(chain):
                    return find
                return lambda d: chain[at].intercept_service(continuation(at + 1), d)

            def call() -> Any:
                handler = continuation(0)(details)  # gRPC asks the chain on every call
                return handler.response_serializer(handler.unary_unary(message, Context()))

            return call

        data = convert.request_to_pb(request, MVM).SerializeToString()
        mvm_chain = handled("/sidra.hil.v1.BoardService/MVM", routes.service, data)
        health_chain = handled(
            "/grpc.health.v1.Health/Check",
            lambda details: checks.handlers["Check"],
            health_pb2.HealthCheckRequest(),
        )
        reply = convert.result_to_pb(canned, MVM).SerializeToString()
        # Sizes told: a canned channel has no limits to announce (sidra.client.call_sizes).
        client = RemoteBoard(
            CannedChannel(reply),  # type: ignore[arg-type]
            max_batch=4096,
            message_limit_bytes=8 * 2**20,
            max_in_flight=4,
        )

        from sidra.server.security.access import _PRINCIPAL  # noqa: PLC0415 - a bound call

        bound = _PRINCIPAL.set(LOCAL)  # BoardServicer.call alone runs inside a bound call
        result = {
            "board_run_us": cpu_us(lambda: board.run(request), rounds, number),
            "servicer_us": cpu_us(lambda: servicer.call(MVM, data, Context()), rounds, number),
            "mvm_chain_us": cpu_us(mvm_chain, rounds, number),
            "health_chain_us": cpu_us(health_chain, rounds, number),
            "client_run_us": cpu_us(lambda: client.run(request), rounds, number),
        }
        _PRINCIPAL.reset(bound)
        store.close()
    result["mvm_specific_us"] = (
        result["mvm_chain_us"] - result["health_chain_us"] - result["board_run_us"]
    )
    return {key: round(value, 1) for key, value in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instant-board", action="store_true", help="canned board answers")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per figure (least kept)")
    parser.add_argument("--number", type=int, default=300, help="calls per round")
    parser.add_argument("--json", action="store_true", help="one JSON object")
    args = parser.parse_args()
    result = measure(args.instant_board, args.rounds, args.number)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:18} {value:8.1f}")


if __name__ == "__main__":
    main()
