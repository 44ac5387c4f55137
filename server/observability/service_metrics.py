"""Metrics of what the service runs and keeps: its training jobs and its state store.

- ``sidra_jobs_running`` and ``sidra_jobs_queued``: training jobs running in the server
  now, and waiting in its queue, read at each scrape from the jobs' manager;
- ``sidra_jobs_ended_total{state}``: jobs that ended, by final state (succeeded, failed,
  cancelled, interrupted), counted as they end (:meth:`ServiceMetrics.count_job_end`);
- ``sidra_state_store_size_bytes``: the state store's files on disk (the SQLite file
  and its write-ahead log), read at each scrape: what a disk alert watches;
- ``sidra_deployments`` and ``sidra_deployments_rewritten``: trained models kept on the
  served board by name, and those of them whose tiles were programmed with other targets
  since (deployments.proto "Intact"), read at each scrape: a lab's demonstration model
  written over raises an alert rather than a surprise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sidra.server.observability.metrics import ServiceMetrics

__all__ = ["watch_deployments", "watch_jobs", "watch_store"]


def watch_jobs(
    metrics: ServiceMetrics,
    running: Callable[[], list[str]],
    queued: Callable[[], list[str]] = list,
) -> None:
    """``sidra_jobs_running`` from ``running()`` (the ids of the jobs running now) and
    ``sidra_jobs_queued`` from ``queued()`` (those waiting in the queue)."""
    metrics.registry.register(_Gauge("sidra_jobs_running", "Training jobs running now.",
                                     lambda: len(running())))  # fmt: skip
    metrics.registry.register(
        _Gauge("sidra_jobs_queued", "Training jobs waiting in the queue now.",
               lambda: len(queued()))
    )  # fmt: skip


def watch_store(metrics: ServiceMetrics, disk_bytes: Callable[[], int]) -> None:
    """``sidra_state_store_size_bytes`` from ``disk_bytes()`` (StateStore.disk_bytes)."""
    metrics.registry.register(
        _Gauge("sidra_state_store_size_bytes", "The state store's files on disk, bytes.",
               disk_bytes)
    )  # fmt: skip


def watch_deployments(metrics: ServiceMetrics, counts: Callable[[], tuple[int, int]]) -> None:
    """``sidra_deployments`` and ``sidra_deployments_rewritten`` from ``counts()``: the
    served board's deployments, and how many of them are no longer intact."""
    metrics.registry.register(_Deployments(counts))


class _Deployments(Collector):
    """Both deployment gauges from one reading of the store per scrape."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        kept, rewritten = self.counts()
        yield GaugeMetricFamily(
            "sidra_deployments", "Trained models deployed on the served board by name.", kept
        )
        yield GaugeMetricFamily(
            "sidra_deployments_rewritten",
            "Deployed models whose tiles were programmed with other targets since.",
            rewritten,
        )


class _Gauge(Collector):
    """A gauge whose value is read when scraped."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, value=self.read())
