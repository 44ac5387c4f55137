"""Boards behind a link that can go down (serial, later PCIe) report it through this.

The server watches any board that satisfies :class:`LinkMonitored` and turns
its link state into gRPC health (NOT_SERVING while the link is down).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["LinkMonitored", "take_reset_notice"]


@runtime_checkable
class LinkMonitored(Protocol):
    """A board whose link to the host can be lost and come back."""

    @property
    def link_up(self) -> bool:
        """True while the board answers."""
        ...

    @property
    def closed(self) -> bool:
        """True once the driver was closed (watchers stop)."""
        ...

    def add_link_listener(self, listener: Callable[[bool], None]) -> None:
        """``listener(up)`` runs on every change of :attr:`link_up`."""
        ...

    def probe_link(self) -> bool:
        """Reconnects a lost link or pings an idle one; returns :attr:`link_up`."""
        ...


def take_reset_notice(board: object) -> str | None:
    """A restart of the board its driver noticed and has not reported yet, taken: the
    next call that uses the array no longer raises it as BoardReset. None when there is
    none, and for boards whose state cannot be lost under them (no link: the in-process
    emulator). For a caller that programs whatever it uses next (a job starting), which
    the restart cost nothing; GetBoardInfo (the totals) never takes it."""
    take = getattr(board, "take_reset_notice", None)
    notice = take() if callable(take) else None
    return notice if isinstance(notice, str) else None
