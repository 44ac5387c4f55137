"""gRPC metadata keys of the contract (board.proto), shared by the service and its clients."""

from __future__ import annotations

__all__ = ["INSTANCE_ID_KEY", "SESSION_ID_KEY"]

INSTANCE_ID_KEY = "sidra-instance-id"
"""Trailing metadata of every BoardService response: the board instance the call ended
on (board.proto, "Board instance"). gRPC metadata keys are lowercase ASCII."""

SESSION_ID_KEY = "sidra-session-id"
"""Request metadata of a BoardService call made in a session (session.proto): the
session id OpenSession returned."""
