"""Metrics of what the service runs and keeps: calls queued for the board, its training
jobs and its state store.

- ``sidra_board_calls_waiting``: calls queued behind the board now (every call takes a
  turn on it, sidra.server.turns: clients' RPCs, jobs' calls, deployment checks), read
  at each scrape; how long each waited is ``sidra_board_wait_seconds``
  (:meth:`ServiceMetrics.observe_board_wait`);
- ``sidra_jobs_running`` and ``sidra_jobs_queued``: training jobs running in the server
  now, and waiting in its queue, read at each scrape from the jobs' manager;
- ``sidra_jobs_ended_total{state}``: jobs that ended, by final state (succeeded, failed,
  cancelled, interrupted), counted as they end (:meth:`ServiceMetrics.count_job_end`);
- ``sidra_state_store_size_bytes``: the state store's files on disk (the SQLite file
  and its write-ahead log), read at each scrape: what a disk alert watches;
- ``sidra_deployments`` and ``sidra_deployments_rewritten``: trained models kept on the
  served board by name, and those of them whose tiles were programmed with other targets
  since (deployments.proto "Intact"), read at each scrape: a lab's demonstration model
  written over raises an alert rather than a surprise;
- ``sidra_deployment_correlation{deployment}``,
  ``sidra_deployment_rms_deviation_microsiemens{deployment}``,
  ``sidra_deployment_read_noise_microsiemens{deployment}`` (a check of several reads) and
  ``sidra_deployment_checked_timestamp_seconds{deployment}``: the latest CheckDeployment
  of each deployment since the server started (deployments.proto "Checked"): what its
  cells read against its targets, and when.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sidra.server.observability.metrics import ServiceMetrics

__all__ = ["CheckFigures", "watch_board_calls", "watch_deployment_checks", "watch_deployments",
           "watch_jobs", "watch_store"]  # fmt: skip


def watch_board_calls(metrics: ServiceMetrics, waiting: Callable[[], int]) -> None:
    """``sidra_board_calls_waiting`` from ``waiting()`` (BoardTurns.waiting)."""
    metrics.registry.register(
        _Gauge("sidra_board_calls_waiting", "Calls queued for their turn on the board now.",
               waiting)
    )  # fmt: skip


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


class CheckFigures(Protocol):
    """What the metrics take of a deployment's check (a DeploymentCheck message)."""

    @property
    def correlation(self) -> float: ...
    @property
    def rms_deviation_us(self) -> float: ...
    @property
    def checked_unix_s(self) -> float: ...
    @property
    def read_repeats(self) -> int: ...
    @property
    def read_noise_us(self) -> float: ...


def watch_deployment_checks(
    metrics: ServiceMetrics, latest: Callable[[], Mapping[str, CheckFigures]]
) -> None:
    """The ``sidra_deployment_*{deployment}`` gauges of the latest checks, from
    ``latest()`` (by deployment name) at each scrape."""
    metrics.registry.register(_Checks(latest))


class _Checks(Collector):
    """One gauge family a figure, one sample a deployment checked."""

    def __init__(self, latest: Callable[[], Mapping[str, CheckFigures]]) -> None:
        self.latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        checks = self.latest()
        families = (
            ("sidra_deployment_correlation", "Correlation of a deployment's cells, as its "
             "latest check read them, with its targets.", "correlation"),
            ("sidra_deployment_rms_deviation_microsiemens", "RMS of read minus target "
             "conductance over a deployment's cells at its latest check, µS.",
             "rms_deviation_us"),
            ("sidra_deployment_checked_timestamp_seconds", "When a deployment's cells were "
             "last checked, seconds since the Unix epoch.", "checked_unix_s"),
        )  # fmt: skip
        for name, documentation, field in families:
            family = GaugeMetricFamily(name, documentation, labels=["deployment"])
            for deployment, check in sorted(checks.items()):
                family.add_metric([deployment], float(getattr(check, field)))
            yield family
        # Only a check of several reads measured the read noise: one of a single read
        # says nothing of it (0 would read as a noiseless board).
        noise = GaugeMetricFamily(
            "sidra_deployment_read_noise_microsiemens",
            "Read noise of a deployment's cells at its latest check of several reads: each "
            "cell's standard deviation from read to read, RMS over the cells, µS.",
            labels=["deployment"],
        )
        for deployment, check in sorted(checks.items()):
            if check.read_repeats > 1:
                noise.add_metric([deployment], float(check.read_noise_us))
        yield noise


class _Gauge(Collector):
    """A gauge whose value is read when scraped."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self.name, self.documentation, self.read = name, documentation, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.name, self.documentation, value=self.read())
