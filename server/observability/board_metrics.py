"""Metrics of the board itself: what it is, whether its link is up, what the link lost.

- ``sidra_board_info{model, serial, firmware, emulator_preset}``: set once at start;
- ``sidra_board_link_up``: 1 while a board behind a link (serial, PCIe) answers, 0
  while it is down; absent for an in-process board, which has no link. It follows
  the driver's link listener, the same event that turns health NOT_SERVING
  (:class:`~sidra.server.link_watch.LinkWatcher`);
- ``sidra_board_link_downs_total``: times that link went down;
- ``sidra_board_link_errors_total{kind}`` and ``sidra_board_resets_total``: the
  serial driver's own link counters (CRC and framing errors, timeouts, NAKs; board
  restarts detected by boot epoch), read at each scrape rather than copied on every
  change, so the driver needs no knowledge of metrics;
- ``sidra_board_link_payload_bytes``: the frame payload the serial link uses now (it
  comes down on a line that damages long frames, docs/wire-protocol.md §4.6: a
  cable or a connector going bad shows here before calls fail).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from sidra.drivers import Board
from sidra.drivers.monitor import LinkMonitored
from sidra.drivers.types import LinkStats
from sidra.server.observability.metrics import ServiceMetrics

__all__ = ["LINK_ERROR_KINDS", "LinkCounted", "watch_board"]

LINK_ERROR_KINDS = {
    "crc": "crc_errors",
    "framing": "framing_errors",
    "timeout": "timeouts",
    "nak": "naks",
}
"""``kind`` label -> :class:`~sidra.drivers.types.LinkStats` field counted as a link error."""


@runtime_checkable
class LinkCounted(Protocol):
    """A board whose host side counts its link's traffic and faults (the serial driver)."""

    def link_stats(self) -> LinkStats: ...


def watch_board(metrics: ServiceMetrics, board: Board) -> None:
    """Describes ``board`` in ``metrics`` and, for a board behind a link, follows the link."""
    metrics.describe_board(board.info)
    if isinstance(board, LinkMonitored):
        _follow_link(metrics, board)
    if isinstance(board, LinkCounted):
        metrics.registry.register(LinkCounters(board))


def _follow_link(metrics: ServiceMetrics, board: LinkMonitored) -> None:
    registry = metrics.registry
    up = Gauge(
        "sidra_board_link_up", "1 while the board's link answers, else 0.", registry=registry
    )
    downs = Counter(
        "sidra_board_link_downs", "Times the board's link went down.", registry=registry
    )

    def publish(is_up: bool) -> None:
        up.set(1 if is_up else 0)
        if not is_up:
            downs.inc()

    board.add_link_listener(publish)
    up.set(1 if board.link_up else 0)  # the listener hears only changes from now on


class LinkCounters(Collector):
    """The serial driver's link counters as Prometheus counters, read at scrape time."""

    def __init__(self, board: LinkCounted) -> None:
        self.board = board

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.board.link_stats()
        errors = CounterMetricFamily(
            "sidra_board_link_errors",
            "Faults on the board's link seen by the host, by kind (each may cost a retry).",
            labels=("kind",),
        )
        for kind, field in LINK_ERROR_KINDS.items():
            errors.add_metric((kind,), getattr(stats, field))
        yield errors
        yield CounterMetricFamily(
            "sidra_board_resets",
            "Board restarts the host detected (the board's state was lost each time).",
            value=stats.resets,
        )
        yield GaugeMetricFamily(
            "sidra_board_link_payload_bytes",
            "Largest frame payload the serial link uses now, bytes (lowered on a noisy line).",
            value=stats.payload_limit,
        )
        yield GaugeMetricFamily(
            "sidra_board_link_timeout_base_seconds",
            "What the serial link's latest attempt waited besides wire and board time, s "
            "(learnt from the answers: about what a lost frame costs).",
            value=stats.timeout_base_s,
        )
