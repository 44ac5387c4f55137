"""Board drivers: one interface, transports chosen by URL.

``open_board("emu://?preset=ideal")`` returns a driver for the in-process
emulator; serial (``serial://``) and PCIe (``pcie://``) transports implement
the same :class:`Board` interface.
"""

from sidra.drivers.base import Board, BoardDriver
from sidra.drivers.errors import (
    AlreadyExists,
    BoardFault,
    BoardReset,
    BoardUnavailable,
    DatasetNotKept,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LeaseHeld,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    SessionClosed,
    SidraError,
    Unauthenticated,
    Unsupported,
)
from sidra.drivers.rademacher import rademacher
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    BoardTiming,
    CalibrationReport,
    Cost,
    LinkStats,
    MVMResult,
    PerturbationPoint,
    PerturbedMVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    SequenceResult,
    TileUse,
    WriteCounts,
)
from sidra.drivers.url import open_board, register_scheme, schemes

__all__ = [
    "AlreadyExists",
    "Board",
    "BoardDriver",
    "BoardFault",
    "BoardInfo",
    "BoardReset",
    "BoardStats",
    "BoardTiming",
    "BoardUnavailable",
    "CalibrationReport",
    "DatasetNotKept",
    "Cost",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "LeaseHeld",
    "LinkStats",
    "MVMResult",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "PerturbReport",
    "PerturbationPoint",
    "PerturbedMVMResult",
    "ProgramReport",
    "ReadResult",
    "Region",
    "SequenceResult",
    "ResourceExhausted",
    "SessionClosed",
    "SidraError",
    "TileUse",
    "Unauthenticated",
    "Unsupported",
    "WriteCounts",
    "open_board",
    "rademacher",
    "register_scheme",
    "schemes",
]
