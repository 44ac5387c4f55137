"""SIDRA HIL client: drive a board over gRPC with numpy arrays.

    from sidra.client import connect
    with connect("127.0.0.1:50051") as board:
        currents = board.mvm(0, voltages).currents

The exception tree is shared with the drivers (``sidra.drivers.errors``).
"""

from sidra.client.accounting import CostLedger
from sidra.client.board import DEFAULT_TIMEOUT_S, RemoteBoard, connect
from sidra.client.gradients import numerical_gradient, numerical_jacobian
from sidra.drivers.errors import (
    BoardFault,
    BoardReset,
    BoardUnavailable,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    SidraError,
)
from sidra.drivers.rademacher import rademacher
from sidra.drivers.types import Region

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "BoardFault",
    "BoardReset",
    "BoardUnavailable",
    "CostLedger",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "OutOfRange",
    "Region",
    "RemoteBoard",
    "SidraError",
    "connect",
    "numerical_gradient",
    "numerical_jacobian",
    "rademacher",
]
