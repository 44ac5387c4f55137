"""Errors of the state store, in the SIDRA HIL exception tree.

Both are :class:`~sidra.drivers.BoardFault` (gRPC INTERNAL): the caller cannot
fix them by changing the request, and a client must not retry a Program on
the strength of them as it might after UNAVAILABLE: the board may already hold it.
"""

from __future__ import annotations

from sidra.drivers import BoardFault

__all__ = ["ProgramNotRecorded", "StateStoreError"]


class StateStoreError(BoardFault):
    """The state store cannot be opened, read or written, or does not hold what was asked."""


class ProgramNotRecorded(StateStoreError):
    """A Program reached the board but its record could not be committed to the store."""
