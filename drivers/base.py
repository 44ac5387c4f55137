"""The board interface every transport implements.

:class:`Board` is the public contract (the gRPC client's ``RemoteBoard`` is
one too, so training code runs unchanged on a local driver or a remote
server). :class:`BoardDriver` is the base of local transports: its public
methods (from :class:`~sidra.drivers.operations.BoardMethods`) build a request,
validate it once, then pass it to the one method a transport implements,
``_handle(request)``.

Drivers are not thread-safe; the server serialises calls per board.
"""

from __future__ import annotations

from abc import abstractmethod
from types import TracebackType
from typing import Any, Self

from sidra.drivers.operations import BoardMethods
from sidra.drivers.requests import Request

__all__ = ["Board", "BoardDriver"]


class Board(BoardMethods):
    """A SIDRA board: conductances in µS, voltages in V, currents in µA.

    The public contract of every board, local or remote: the operation methods
    (from :class:`~sidra.drivers.operations.BoardMethods`, written once), ``run``,
    ``info``, ``close`` and use as a context manager. Training code takes a
    ``Board`` and runs unchanged on a local driver or a server's board.
    """

    @abstractmethod
    def close(self) -> None:
        """Releases the board (port, channel); the object is unusable after."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BoardDriver(Board):
    """Validating front of a local transport (emulator, serial link, PCIe).

    The public methods come from :class:`BoardMethods`; each builds a request and
    calls :meth:`run`, which validates it once against :attr:`info` and hands the
    canonical request to the transport's one seam, :meth:`_handle`. A transport
    implements ``info``, ``_handle`` and ``close``; a fake board fits in a page.
    """

    def run(self, request: Request) -> Any:
        """Validates ``request`` (raising before the board is touched), then executes it."""
        return self._handle(request.checked(self.info))

    @abstractmethod
    def _handle(self, request: Request) -> Any:
        """Executes a validated request; returns its operation's result type
        (``operation_of(request).result``). Raise :class:`Unsupported` for an
        operation the board does not offer (AdvanceClock on hardware)."""
