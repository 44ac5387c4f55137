"""One log line per RPC, and the service's log formats (text or JSON).

Each finished call logs one line on the ``sidra.server.rpc`` logger::

    rpc method=/sidra.hil.v1.BoardService/Program code=OK duration_ms=12.408 \
principal=alice request_id=5f0c... request_bytes=4106 response_bytes=31

Levels: INFO for a call answered OK or refused for the caller's own fault
(bad arguments, no token, too little role, ...: never with a traceback, the
client was told); WARNING when the board was unavailable, restarted or too
slow; ERROR for the service's own faults (INTERNAL, UNKNOWN, DATA_LOSS), whose
traceback :func:`sidra.server.status.map_errors` logs once beside this line.
A refusal of the caller's own fault repeated within 10 s (same method, code and
principal: a client retrying past its limits) is logged once, the next line of it
saying how many it stood for, or, when the burst ends first, a line of its own at the
window's end (:mod:`sidra.server.observability.repeats`).
The board's hot-loop calls answered OK (:data:`ROUTINE_METHODS`: MVM,
TransposeMVM, Perturb, PerturbedMVM, health checks) log at DEBUG: an SPSA run makes tens of
thousands of them, which at INFO would bury everything else; their counts and
latencies are in the metrics, and any of them that fails logs at INFO or above.

:func:`configure_logging` sets up the root logger as ``[logging]`` says: lines of
text (the default) or one JSON object per line, each under an RPC carrying its
request id.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any, Literal, cast

import grpc

from sidra.server.observability.calls import CallRecord, current_request_id
from sidra.server.observability.repeats import WINDOW_S, RepeatedRefusals
from sidra.server.status import CALLER_CODES, SERVICE_FAULT_CODES

__all__ = [
    "RPC_LOGGER",
    "ROUTINE_METHODS",
    "CallContextFilter",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "level_of",
    "log_held_back",
    "log_rpc",
]

RPC_LOGGER = "sidra.server.rpc"
"""The logger of the per-RPC lines: set it to DEBUG to see routine calls too."""

ROUTINE_METHODS = frozenset(
    {
        "/sidra.hil.v1.BoardService/MVM",
        "/sidra.hil.v1.BoardService/TransposeMVM",
        "/sidra.hil.v1.BoardService/Perturb",
        "/sidra.hil.v1.BoardService/PerturbedMVM",
        "/grpc.health.v1.Health/Check",
    }
)
"""Calls made once or more per training step or watchdog tick: DEBUG when answered OK."""

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(RPC_LOGGER)


def level_of(method: str, code: grpc.StatusCode) -> int:
    """The level of the line of a ``method`` call that ended with ``code``."""
    if code == grpc.StatusCode.OK:
        return logging.DEBUG if method in ROUTINE_METHODS else logging.INFO
    if code in CALLER_CODES:
        return logging.INFO
    if code in SERVICE_FAULT_CODES:
        return logging.ERROR
    return logging.WARNING  # the board or the network: UNAVAILABLE, ABORTED, DEADLINE...


def log_rpc(call: CallRecord, repeats: RepeatedRefusals | None = None) -> None:
    """The one line of a finished call (no traceback: the status says what happened).
    With ``repeats``, a refusal of the caller's own fault repeated within its window is
    held back, and the next line of its kind says how many it stands for (``held_back``)."""
    level = level_of(call.method, call.code)
    if not log.isEnabledFor(level):
        return
    held = 0
    if repeats is not None and call.code in CALLER_CODES:
        kind = repeats.to_log((call.method, call.code, call.principal))
        if kind is None:
            return
        held = kind
    fields: dict[str, object] = {
        "method": call.method,
        "code": call.code.name,
        "duration_ms": round(call.elapsed_s * 1e3, 3),
        "principal": call.principal,
        "request_id": call.request_id,
        "request_bytes": call.request_bytes,
        "response_bytes": call.response_bytes,
    }
    if held:
        fields["held_back"] = held  # the same refusals since the last line of it
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    log.log(level, "rpc %s", text, extra={"rpc": fields, "request_id": call.request_id})


def log_held_back(kind: Hashable, held: int, window_s: float = WINDOW_S) -> None:
    """The line of refusals held back in a window no later line of theirs closed (a burst
    that ended): ``rpc method=... code=... principal=... held_back=N window_s=10.0``.
    ``kind`` is the (method, code, principal) :func:`log_rpc` counts them by."""
    method, code, principal = cast(tuple[str, grpc.StatusCode, str], kind)
    level = level_of(method, code)
    if not log.isEnabledFor(level):
        return
    fields: dict[str, object] = {
        "method": method,
        "code": code.name,
        "principal": principal,
        "held_back": held,
        "window_s": window_s,
    }
    text = " ".join(f"{key}={value}" for key, value in fields.items())
    log.log(level, "rpc %s", text, extra={"rpc": fields})


class CallContextFilter(logging.Filter):
    """Gives every record logged under an RPC that call's ``request_id`` (None outside)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``; a line under an RPC (not the RPC's own) ends with
    its ``request_id=``, so a traceback can be matched to the call that raised it."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None and not hasattr(record, "rpc"):
            line += f" request_id={request_id}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``request_id`` under an RPC, an RPC line's fields (or a record's
    ``details``, as ``sidra serve``'s start line has) at the top level and ``exception``
    (the traceback, as text) when one was logged."""

    def format(self, record: logging.LogRecord) -> str:
        rpc: dict[str, Any] | None = getattr(record, "rpc", None)
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": "rpc" if rpc is not None else record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        if rpc is not None:
            line.update(rpc)
        details: dict[str, Any] | None = getattr(record, "details", None)
        if details:
            line.update(details)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(
    log_format: LogFormat = "text", level: int | str = logging.INFO
) -> logging.Handler:
    """Routes the root logger to stderr in ``log_format`` at ``level``; returns the handler.

    Replaces handlers a previous call installed, so calling it twice does not
    print every line twice.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(CallContextFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "sidra_handler", False)]:
        root.removeHandler(old)
    handler.sidra_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler
