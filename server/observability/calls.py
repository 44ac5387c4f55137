"""What the service knows about the call being served: its request id, principal, timing.

A :class:`CallRecord` is made when a call arrives and bound, for the code that
serves the call, to the thread running it (:func:`current_call`), so anything
logged under an RPC can name its request id (:func:`current_request_id`).
"""

from __future__ import annotations

import contextvars
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

__all__ = [
    "REQUEST_ID",
    "CallRecord",
    "bind",
    "bound_call",
    "current_call",
    "current_request_id",
    "request_id_from",
    "unbind",
]

REQUEST_ID = "x-request-id"
"""Metadata key of the request id: read from the call if the client sent one, else made
here; sent back in the trailing metadata of every response."""

_USABLE_ID = re.compile(r"[A-Za-z0-9._:/=+-]{1,128}")
"""A client's request id is echoed into logs and trailers: printable, bounded, no spaces."""

_CALL: contextvars.ContextVar[CallRecord] = contextvars.ContextVar("sidra_call")


@dataclass
class CallRecord:
    """One call, from its arrival until its status is known."""

    method: str
    """``/package.Service/Method``."""
    request_id: str
    started_s: float = field(default_factory=time.perf_counter)
    principal: str = "-"
    """Who made the call, once authentication told; ``-`` when nobody could be named."""
    request_bytes: int = 0
    response_bytes: int = 0
    code: grpc.StatusCode = grpc.StatusCode.OK

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started_s


def request_id_from(metadata: Any) -> str:
    """The client's ``x-request-id`` if usable, else a new random one (32 hex digits).

    A client id that is too long or holds characters unfit for a log line is
    replaced, not trimmed: a half id would match nothing on the client side.
    """
    for key, value in metadata or ():
        if key == REQUEST_ID and isinstance(value, str) and _USABLE_ID.fullmatch(value):
            return value
    return os.urandom(16).hex()  # uuid4's randomness without building a UUID


def current_call() -> CallRecord | None:
    """The record of the call being served on this thread; None outside a call."""
    return _CALL.get(None)


def current_request_id() -> str | None:
    """The request id of the call being served on this thread; None outside a call."""
    call = _CALL.get(None)
    return call.request_id if call is not None else None


def bind(call: CallRecord) -> contextvars.Token[CallRecord]:
    """Binds ``call`` for :func:`current_call` until :func:`unbind` is given the token
    (:func:`bound_call` without a generator, for the path every call takes)."""
    return _CALL.set(call)


def unbind(token: contextvars.Token[CallRecord]) -> None:
    """Ends the binding :func:`bind` made."""
    _CALL.reset(token)


@contextmanager
def bound_call(call: CallRecord) -> Iterator[CallRecord]:
    """Binds ``call`` for :func:`current_call` while the block runs."""
    token = _CALL.set(call)
    try:
        yield call
    finally:
        _CALL.reset(token)
