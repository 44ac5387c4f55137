"""The board interface every transport implements.

:class:`Board` is the public contract (a Protocol, so the gRPC client's
``RemoteBoard`` satisfies it too and training code runs unchanged on a local
driver or a remote server). :class:`BoardDriver` is the base of local
transports: its public methods validate each request once, then call the few
primitives a transport implements (``_program``, ``_mvm``, ...).

Drivers are not thread-safe; the server serialises calls per board.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from sidra.drivers import validation as check
from sidra.drivers.errors import Unsupported
from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    CalibrationReport,
    FloatArray,
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


class BoardDriver(ABC):
    """Validating front of a local transport (emulator, serial link, PCIe)."""

    @property
    @abstractmethod
    def info(self) -> BoardInfo: ...

    @abstractmethod
    def stats(self) -> BoardStats: ...

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

    def program(
        self, tile: int, conductances: Any, *, row_offset: int = 0, col_offset: int = 0
    ) -> ProgramReport:
        """Write-verify ``conductances`` (µS, [rows, cols]) at (row_offset, col_offset)."""
        check.check_tile(self.info, tile)
        g = check.float32_matrix("conductances", conductances)
        check.check_conductances(self.info, g)
        region = Region(row_offset, col_offset, *g.shape)
        check.check_region(self.info, region, field="conductances")
        return self._program(tile, region, g)

    def read_conductance(self, tile: int, region: Region | None = None) -> ReadResult:
        """Measured conductances (µS) of ``region`` (default: the whole tile)."""
        check.check_tile(self.info, tile)
        resolved = check.check_region(self.info, region or Region())
        return self._read_conductance(tile, resolved)

    def mvm(self, tile: int, voltages: Any) -> MVMResult:
        """Row voltages [batch, rows] (V) -> column currents [batch, cols] (µA)."""
        check.check_tile(self.info, tile)
        v = check.float32_matrix("voltages", voltages)
        check.check_voltages(self.info, v, self.info.rows, "tile rows")
        return self._mvm(tile, v)

    def transpose_mvm(self, tile: int, voltages: Any) -> MVMResult:
        """Column voltages [batch, cols] (V) -> row currents [batch, rows] (µA)."""
        check.check_tile(self.info, tile)
        v = check.float32_matrix("voltages", voltages)
        check.check_voltages(self.info, v, self.info.cols, "tile columns")
        return self._transpose_mvm(tile, v)

    def perturb(
        self,
        tile: int,
        seed: int,
        amplitude_us: float,
        sign: int = 1,
        region: Region | None = None,
    ) -> PerturbReport:
        """Set ``region`` to G_prog + sign·amplitude_us·Δ(seed) (see board.proto)."""
        check.check_tile(self.info, tile)
        check.check_seed(seed)
        check.check_sign(sign)
        check.check_amplitude(self.info, amplitude_us)
        resolved = check.check_region(self.info, region or Region())
        return self._perturb(tile, resolved, int(seed), float(amplitude_us), int(sign))

    def restore(self, tile: int, region: Region | None = None) -> PerturbReport:
        """Return ``region`` (default: the whole tile) to its programmed state."""
        check.check_tile(self.info, tile)
        resolved = check.check_region(self.info, region or Region())
        return self._restore(tile, resolved)

    def read_write_counts(self, tile: int, region: Region | None = None) -> WriteCounts:
        """Per-cell write counters (endurance) of ``region`` (default: the whole tile)."""
        check.check_tile(self.info, tile)
        resolved = check.check_region(self.info, region or Region())
        return self._read_write_counts(tile, resolved)

    def calibrate(self, tile: int) -> CalibrationReport:
        """Global drift compensation of ``tile``: measure a probe, rescale outputs."""
        check.check_tile(self.info, tile)
        return self._calibrate(tile)

    def advance_clock(self, seconds: float) -> float:
        """Advance an emulated board's virtual clock (drift ages); returns the new time, s."""
        check.check_seconds(seconds)
        return self._advance_clock(float(seconds))

    # -- what a transport implements; arguments are already validated --------

    @abstractmethod
    def _program(self, tile: int, region: Region, targets: FloatArray) -> ProgramReport: ...

    @abstractmethod
    def _read_conductance(self, tile: int, region: Region) -> ReadResult: ...

    @abstractmethod
    def _mvm(self, tile: int, voltages: FloatArray) -> MVMResult: ...

    @abstractmethod
    def _transpose_mvm(self, tile: int, voltages: FloatArray) -> MVMResult: ...

    @abstractmethod
    def _perturb(
        self, tile: int, region: Region, seed: int, amplitude_us: float, sign: int
    ) -> PerturbReport: ...

    @abstractmethod
    def _restore(self, tile: int, region: Region) -> PerturbReport: ...

    @abstractmethod
    def _read_write_counts(self, tile: int, region: Region) -> WriteCounts: ...

    @abstractmethod
    def _calibrate(self, tile: int) -> CalibrationReport: ...

    def _advance_clock(self, seconds: float) -> float:
        raise Unsupported("advance_clock: only an emulated board has a virtual clock")
