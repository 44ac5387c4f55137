"""Where a service's client part (jobs, deployments) finds its channel.

:class:`~sidra.client.RemoteBoard` hands its parts a function rather than the channel
itself, so that a ``board.jobs`` kept past ``board.close()`` raises the client's own
:class:`~sidra.drivers.BoardUnavailable` ("the client ... is closed: connect again")
instead of gRPC's ``ValueError: Cannot invoke RPC on closed channel!``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ChannelSource"]

C = TypeVar("C")


class ChannelSource(Generic[C]):
    """A channel given as itself or as a function returning it (called before each RPC:
    it raises when its client is closed)."""

    def __init__(self, channel: C | Callable[[], C]) -> None:
        self._given = channel

    def get(self) -> C:
        """The channel now (the function's answer, or its error)."""
        given = self._given
        # A gRPC channel is not callable, so a callable is the client's function.
        return given() if callable(given) else given
