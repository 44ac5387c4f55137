"""What the service tells about itself: Prometheus metrics and one log line per RPC.

- :mod:`~sidra.server.observability.metrics`: every metric of one server, in its own
  registry (:class:`ServiceMetrics`);
- :mod:`~sidra.server.observability.board_metrics`: the board's identity and link;
- :mod:`~sidra.server.observability.service_metrics`: calls queued for the board, running
  jobs, the store's size;
- :mod:`~sidra.server.observability.interceptor`: the interceptor that times, counts and
  logs each call and returns its request id;
- :mod:`~sidra.server.observability.calls`: the record of the call being served;
- :mod:`~sidra.server.observability.logs`: the RPC log line, text and JSON formats;
- :mod:`~sidra.server.observability.endpoint`: the HTTP endpoint Prometheus scrapes.
"""

from sidra.server.observability.board_metrics import watch_board
from sidra.server.observability.calls import REQUEST_ID, current_request_id
from sidra.server.observability.endpoint import MetricsEndpoint
from sidra.server.observability.interceptor import CallObserver
from sidra.server.observability.logs import RPC_LOGGER, configure_logging
from sidra.server.observability.metrics import ServiceMetrics
from sidra.server.observability.service_metrics import (
    watch_board_calls,
    watch_deployment_checks,
    watch_deployments,
    watch_jobs,
    watch_store,
)

__all__ = [
    "REQUEST_ID",
    "RPC_LOGGER",
    "CallObserver",
    "MetricsEndpoint",
    "ServiceMetrics",
    "configure_logging",
    "current_request_id",
    "watch_board",
    "watch_board_calls",
    "watch_deployment_checks",
    "watch_deployments",
    "watch_jobs",
    "watch_store",
]
