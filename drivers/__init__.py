"""Board drivers: one interface, transports chosen by URL.

``open_board("emu://?preset=ideal")`` returns a driver for the in-process
emulator; serial (``serial://``) and PCIe (``pcie://``) transports implement
the same :class:`Board` interface.
"""

from sidra.drivers.base import Board, BoardDriver
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
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    Cost,
    MVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
)
from sidra.drivers.url import open_board, register_scheme, schemes

__all__ = [
    "Board",
    "BoardDriver",
    "BoardFault",
    "BoardInfo",
    "BoardReset",
    "BoardStats",
    "BoardUnavailable",
    "Cost",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "MVMResult",
    "OutOfRange",
    "PerturbReport",
    "ProgramReport",
    "ReadResult",
    "Region",
    "SidraError",
    "open_board",
    "rademacher",
    "register_scheme",
    "schemes",
]
