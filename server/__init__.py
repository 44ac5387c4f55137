"""The SIDRA HIL gRPC service: one board behind ``sidra.hil.v1.BoardService``."""

from sidra.server.app import DEFAULT_MAX_MESSAGE_BYTES, create_server
from sidra.server.servicer import SERVICE_NAME, BoardServicer

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "SERVICE_NAME", "BoardServicer", "create_server"]
