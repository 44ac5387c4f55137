"""The board interface every transport implements.

:class:`Board` is the public contract (a Protocol, so the gRPC client's
``RemoteBoard`` satisfies it too and training code runs unchanged on a local
driver or a remote server). :class:`BoardDriver` is the base of local
transports: its public methods (from :class:`~sidra.drivers.operations.BoardMethods`)
build a request, validate it once, then pass it to the one method a transport
implements, ``_handle(request)``.

Drivers are not thread-safe; the server serialises calls per board.
"""

from __future__ import annotations

from abc import abstractmethod
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from sidra.drivers.operations import BoardMethods
from sidra.drivers.requests import Request
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    CalibrationReport,
    MVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    WriteCounts,
)

__all__ = ["Board", "BoardDriver"]


@runtime_checkable
class Board(Protocol):
    """A SIDRA board: conductances in µS, voltages in V, currents in µA."""

    @property
    def info(self) -> BoardInfo: ...

    def run(self, request: Request) -> Any:
        """Executes one request of the operation set (sidra.drivers.operations)."""
        ...

    def stats(self) -> BoardStats: ...

    def program(
        self, tile: int, conductances: Any, *, row_offset: int = 0, col_offset: int = 0
    ) -> ProgramReport: ...

    def read_conductance(self, tile: int, region: Region | None = None) -> ReadResult: ...

    def mvm(self, tile: int, voltages: Any) -> MVMResult: ...

    def transpose_mvm(self, tile: int, voltages: Any) -> MVMResult: ...

    def perturb(
        self,
        tile: int,
        seed: int,
        amplitude_us: float,
        sign: int = 1,
        region: Region | None = None,
    ) -> PerturbReport: ...

    def restore(self, tile: int, region: Region | None = None) -> PerturbReport: ...

    def read_write_counts(self, tile: int, region: Region | None = None) -> WriteCounts: ...

    def calibrate(self, tile: int) -> CalibrationReport: ...

    def advance_clock(self, seconds: float) -> float: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BoardDriver(BoardMethods):
    """Validating front of a local transport (emulator, serial link, PCIe).

    The public methods come from :class:`BoardMethods`; each builds a request and
    calls :meth:`run`, which validates it once against :attr:`info` and hands the
    canonical request to the transport's one seam, :meth:`_handle`. A transport
    implements ``info``, ``_handle`` and ``close``; a fake board fits in a page.
    """

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, request: Request) -> Any:
        """Validates ``request`` (raising before the board is touched), then executes it."""
        return self._handle(request.checked(self.info))

    @abstractmethod
    def _handle(self, request: Request) -> Any:
        """Executes a validated request; returns its operation's result type
        (``operation_of(request).result``). Raise :class:`Unsupported` for an
        operation the board does not offer (AdvanceClock on hardware)."""
