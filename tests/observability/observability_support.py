"""A board served with its metrics endpoint, scraped over real HTTP as Prometheus would.

Everything is real: a gRPC server on 127.0.0.1:0 built by ``create_server``, its
metrics served by ``MetricsEndpoint`` on another free port, read with urllib and
parsed by prometheus-client's own text parser.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from sidra.drivers import Board
from sidra.server import SERVICE_NAME, create_server
from sidra.server.observability import MetricsEndpoint, ServiceMetrics

IDEAL_URL = "emu://?preset=ideal&seed=1"

Sample = tuple[str, frozenset[tuple[str, str]]]
"""A sample's name (``sidra_rpc_requests_total``) and its labels."""


def scrape(port: int) -> dict[Sample, float]:
    """``GET /metrics`` on 127.0.0.1:``port``: every sample, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode("utf-8")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def board_rpc(method: str, code: str, service: str = SERVICE_NAME) -> Sample:
    """The ``sidra_rpc_requests_total`` sample of ``method`` ending with ``code``."""
    labels = {"service": service, "method": method, "code": code}
    return ("sidra_rpc_requests_total", frozenset(labels.items()))


def sample(name: str, **labels: str) -> Sample:
    return (name, frozenset(labels.items()))


def moved(before: dict[Sample, float], after: dict[Sample, float]) -> dict[Sample, float]:
    """The samples whose value changed between two scrapes, and by how much."""
    changes = {key: value - before.get(key, 0.0) for key, value in after.items()}
    return {key: change for key, change in changes.items() if change}


@dataclass(frozen=True)
class Served:
    port: int
    """The gRPC port."""
    metrics_port: int
    metrics: ServiceMetrics
    server: grpc.Server

    def scrape(self) -> dict[Sample, float]:
        return scrape(self.metrics_port)

    def wait_for(self, key: Sample, value: float, within_s: float = 10.0) -> None:
        """Scrapes until ``key`` reads ``value`` (a link state set from another thread)."""
        deadline = time.monotonic() + within_s
        seen = None
        while time.monotonic() < deadline:
            seen = self.scrape().get(key)
            if seen == value:
                return
            time.sleep(0.05)
        raise AssertionError(f"{key} is {seen}, not {value}, after {within_s} s")


@contextmanager
def served_with_metrics(
    board: Board, *, extra: tuple[grpc.GenericRpcHandler, ...] = (), **options: Any
) -> Iterator[Served]:
    """``board`` served on 127.0.0.1 with its metrics endpoint on another free port."""
    metrics = ServiceMetrics()
    server, port = create_server(board, "127.0.0.1:0", metrics=metrics, **options)
    server.add_generic_rpc_handlers(extra)
    server.start()
    try:
        with MetricsEndpoint.start(metrics.registry, "127.0.0.1:0") as endpoint:
            yield Served(port, endpoint.port, metrics, server)
    finally:
        server.stop(grace=None).wait()
