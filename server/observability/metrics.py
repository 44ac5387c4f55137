"""The service's Prometheus metrics: one :class:`ServiceMetrics` per server.

Each server owns a :class:`~prometheus_client.CollectorRegistry` of its own
rather than the library's global one, so several servers in one process (the
tests start many) never register the same name twice or read each other's
counts. Names start with ``sidra_`` and carry their unit (``_seconds``,
``_bytes``, ``_total``). Labels are kept to bounded sets (services, methods,
status codes, declared operations): never a principal, a request id or a tile,
which would make a new time series per caller or per request.

docs/operations.md ("Metrics and alerts") lists every metric with its labels;
``tests/observability`` checks that list against this registry.

Calls waiting for the board: ``sidra_board_calls_waiting`` (now, read at each scrape:
:func:`~sidra.server.observability.service_metrics.watch_board_calls`) and
``sidra_board_wait_seconds`` (each queued call's wait for its turn, in the buckets of
``sidra_rpc_duration_seconds`` so the two read side by side).

Lease events (``sidra_lease_events_total{event}``, the events of
:data:`~sidra.server.sessions.keeper.LEASE_EVENTS`) and job ends
(``sidra_jobs_ended_total{state}``) are pre-set to 0 per event or state like the
operations below.
"""

from __future__ import annotations

from dataclasses import fields

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from sidra.drivers import BoardInfo
from sidra.drivers.operations import OPERATIONS
from sidra.server.limits import LIMIT_NAMES
from sidra.server.security.access import REFUSAL_REASONS
from sidra.server.sessions.keeper import LEASE_EVENTS
from sidra.server.state.jobs import FINAL_STATES, JOB_STATES

__all__ = [
    "DURATION_BUCKETS_S",
    "QUEUE_WAIT_BUCKETS_S",
    "JOB_END_STATES",
    "LEASE_WAIT_BUCKETS_S",
    "LEASE_WAIT_OUTCOMES",
    "MethodSeries",
    "SIZE_BUCKETS_BYTES",
    "WRITING_RPCS",
    "ServiceMetrics",
    "split_method",
]

DURATION_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Latency buckets, s: a one-vector MVM answers in about 0.5 ms, a Program of a large
tile or a 64 MiB batch takes seconds."""

QUEUE_WAIT_BUCKETS_S = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0,
                        86_400.0, 3 * 86_400.0)  # fmt: skip
"""Buckets of a job's wait in the queue, s: a second (the queue's pass) to three days."""

LEASE_WAIT_BUCKETS_S = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
"""Buckets of an AcquireLease's wait for tiles others hold, s: at once (under 1 ms) to
the 60 s a call may wait at most."""

LEASE_WAIT_OUTCOMES = ("granted", "refused")
"""How an AcquireLease's wait ended: the tiles were leased, or the call was refused (the
tiles still held when its wait_s ran out, or at once with wait_s 0)."""

SIZE_BUCKETS_BYTES = tuple(float(4**power) for power in range(3, 15))
"""Message size buckets, bytes: 64 B (an empty reply) to 256 MiB by factors of 4
(one float32 vector of 256 is 1 KiB, a 1024-vector batch 1 MiB)."""

JOB_END_STATES = tuple(state for state in JOB_STATES if state in FINAL_STATES)
"""A training job's final states (jobs.proto JobState), each a ``sidra_jobs_ended_total``
series from the start."""

WRITING_RPCS = frozenset(
    op.rpc for op in OPERATIONS if "cells_written" in {f.name for f in fields(op.result)}
)
"""BoardService RPCs whose result reports ``cells_written`` (Program, Perturb,
PerturbedMVM): the declared operations whose responses count device cell writes."""


class ServiceMetrics:
    """Every metric of one server, in its own registry; :attr:`registry` is what to serve."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        rpc = ("service", "method")
        self.rpcs = Counter(
            "sidra_rpc_requests", "RPCs finished, by method and gRPC status code.",
            (*rpc, "code"), registry=registry,
        )  # fmt: skip
        self.rpc_seconds = Histogram(
            "sidra_rpc_duration_seconds",
            "Time from a call's arrival at the service to its status, s, by method and code.",
            (*rpc, "code"), buckets=DURATION_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "sidra_rpc_in_flight", "RPCs being served now (running or waiting for the board).",
            rpc, registry=registry,
        )  # fmt: skip
        self.request_bytes = Histogram(
            "sidra_rpc_request_size_bytes", "Size of each request message received, bytes.",
            rpc, buckets=SIZE_BUCKETS_BYTES, registry=registry,
        )  # fmt: skip
        self.response_bytes = Histogram(
            "sidra_rpc_response_size_bytes", "Size of each response message sent, bytes.",
            rpc, buckets=SIZE_BUCKETS_BYTES, registry=registry,
        )  # fmt: skip
        self.operations = Counter(
            "sidra_board_operations",
            "Board operations completed (BoardService calls answered OK), by declared operation.",
            ("operation",), registry=registry,
        )  # fmt: skip
        self.cell_writes = Counter(
            "sidra_board_cell_writes",
            "Device cell writes reported by completed operations (endurance), by operation.",
            ("operation",), registry=registry,
        )  # fmt: skip
        self.auth_failures = Counter(
            "sidra_auth_failures",
            "Calls refused by authentication or authorisation, by status code and reason.",
            ("code", "reason"), registry=registry,
        )  # fmt: skip
        self.limit_refusals = Counter(
            "sidra_limit_refusals",
            "Calls refused with RESOURCE_EXHAUSTED by a per-principal limit, by [limits] key.",
            ("limit",), registry=registry,
        )  # fmt: skip
        self.lease_events = Counter(
            "sidra_lease_events",
            "Session and lease events (opened, granted, refused, expired, restored, ...).",
            ("event",), registry=registry,
        )  # fmt: skip
        self.jobs_ended = Counter(
            "sidra_jobs_ended", "Training jobs that ended, by final state.", ("state",),
            registry=registry,
        )  # fmt: skip
        self.job_queue_wait = Histogram(
            "sidra_job_queue_wait_seconds",
            "How long training jobs waited in the queue before they started, s.",
            buckets=QUEUE_WAIT_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.board_wait = Histogram(
            "sidra_board_wait_seconds",
            "How long each call that found the board busy waited for its turn on it, s.",
            buckets=DURATION_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.lease_wait = Histogram(
            "sidra_lease_wait_seconds",
            "How long each AcquireLease waited for tiles other sessions held before it was "
            "granted or refused, s.",
            ("outcome",), buckets=LEASE_WAIT_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self.board = Info("sidra_board", "The board this server serves.", registry=registry)
        # Every operation's series exists from the start, so rate() and absent-series
        # alerts see 0 rather than nothing before the first call.
        self._operations = {op.rpc: self.operations.labels(op.rpc) for op in OPERATIONS}
        self._cell_writes = {rpc: self.cell_writes.labels(rpc) for rpc in WRITING_RPCS}
        for reason, code in REFUSAL_REASONS.items():
            self.auth_failures.labels(code.name, reason)
        self._limit_refusals = {name: self.limit_refusals.labels(name) for name in LIMIT_NAMES}
        self._lease_events = {event: self.lease_events.labels(event) for event in LEASE_EVENTS}
        self._jobs_ended = {state: self.jobs_ended.labels(state) for state in JOB_END_STATES}
        self._lease_wait = {end: self.lease_wait.labels(end) for end in LEASE_WAIT_OUTCOMES}
        self._series: dict[str, MethodSeries] = {}

    def series(self, method: str) -> MethodSeries:
        """The series of ``method`` (``/package.Service/Method``), made at its first call."""
        found = self._series.get(method)
        if found is None:
            # Two threads may both make it: labels() returns the same children to both.
            found = self._series[method] = MethodSeries(self, method)
        return found

    def count_operation(self, rpc: str, cells_written: int | None) -> None:
        """A declared operation completed on the board; ``cells_written`` from its report."""
        self._operations[rpc].inc()
        if cells_written:
            self._cell_writes[rpc].inc(cells_written)

    def count_auth_failure(self, code: grpc.StatusCode, reason: str) -> None:
        self.auth_failures.labels(code.name, reason).inc()

    def count_limit_refusal(self, limit: str) -> None:
        """A call was refused by ``limit`` (a ``[limits]`` key: sidra.server.limits)."""
        self._limit_refusals[limit].inc()

    def count_lease_event(self, event: str) -> None:
        """A session or lease event (:data:`~sidra.server.sessions.keeper.LEASE_EVENTS`)."""
        self._lease_events[event].inc()

    def observe_lease_wait(self, outcome: str, seconds: float) -> None:
        """An AcquireLease ended ``outcome`` (:data:`LEASE_WAIT_OUTCOMES`) after waiting
        ``seconds`` for its tiles."""
        self._lease_wait[outcome].observe(seconds)

    def observe_board_wait(self, seconds: float) -> None:
        """A call that found the board busy had its turn after waiting ``seconds``
        (sidra.server.turns; a call that found it free is not observed)."""
        self.board_wait.observe(seconds)

    def observe_queue_wait(self, seconds: float) -> None:
        """A queued training job started after waiting ``seconds`` in the queue."""
        self.job_queue_wait.observe(seconds)

    def count_job_end(self, state: str) -> None:
        """A training job ended in ``state`` (one of :data:`JOB_END_STATES`)."""
        self._jobs_ended[state].inc()

    def describe_board(self, info: BoardInfo) -> None:
        """``sidra_board_info{model, serial, firmware}``: joins other series to a board."""
        self.board.info(
            {
                "model": info.model,
                "serial": info.serial_number,
                "firmware": info.firmware_version,
                "emulator_preset": info.emulator_preset if info.emulated else "",
            }
        )


class MethodSeries:
    """The series of one method, looked up once rather than per call: ``labels()``
    takes a lock and builds its key each time, a few µs apiece on a ~0.5 ms MVM."""

    def __init__(self, metrics: ServiceMetrics, method: str) -> None:
        self.metrics = metrics
        self.labels = split_method(method)
        self.in_flight = metrics.in_flight.labels(*self.labels)
        self.request_bytes = metrics.request_bytes.labels(*self.labels)
        self.response_bytes = metrics.response_bytes.labels(*self.labels)
        self._by_code: dict[grpc.StatusCode, tuple[Counter, Histogram]] = {}

    def finished(self, code: grpc.StatusCode, seconds: float) -> None:
        """One call of this method ended with ``code`` after ``seconds``."""
        series = self._by_code.get(code)
        if series is None:
            metrics = self.metrics
            series = self._by_code[code] = (
                metrics.rpcs.labels(*self.labels, code.name),
                metrics.rpc_seconds.labels(*self.labels, code.name),
            )
        series[0].inc()
        series[1].observe(seconds)


def split_method(method: str) -> tuple[str, str]:
    """``("sidra.hil.v1.BoardService", "MVM")`` of ``/sidra.hil.v1.BoardService/MVM``."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name
