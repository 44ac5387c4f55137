"""Handlers wrapped once per method rather than once per call.

gRPC asks every server interceptor for a handler on each call, and the handler
an interceptor is given for a method is the same object call after call (the
service's own, or the one the next interceptor made once). An interceptor whose
wrapping depends on nothing of the call (not its metadata, not its arrival
time) keeps what it made in a :class:`WrappedHandlers` and hands it out again:
closures and a handler tuple built per call cost a few µs of every RPC.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import grpc

__all__ = ["WrappedHandlers"]

Wrap = Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]


class WrappedHandlers:
    """``wrap(handler)`` made once per (handler, ``key``) and kept.

    Keyed by the handler's identity: a handler tuple's own hash would hash every
    field on each call. Each kept entry holds its handler, so an id is never
    reused while kept; past ``most`` entries (handlers made per call by someone
    else) the memo starts over.
    """

    def __init__(self, most: int = 256) -> None:
        self.most = most
        self._kept: dict[tuple[int, Hashable], tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]]
        self._kept = {}

    def get(
        self, handler: grpc.RpcMethodHandler, wrap: Wrap, key: Hashable = None
    ) -> grpc.RpcMethodHandler:
        """``wrap(handler)``, made at the first call with this handler and ``key``."""
        slot = (id(handler), key)
        known = self._kept.get(slot)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = wrap(handler)
        if len(self._kept) >= self.most:
            self._kept.clear()
        self._kept[slot] = (handler, wrapped)
        return wrapped
