"""The board interface every transport implements.

:class:`Board` is the public contract (the gRPC client's ``RemoteBoard`` is
one too, so training code runs unchanged on a local driver or a remote
server). :class:`BoardDriver` is the base of local transports: its public
methods (from :class:`~sidra.drivers.operations.BoardMethods`) build a request,
validate it once, then pass it to the one method a transport implements,
``_handle(request)``.

Every board names its **instance** (:attr:`Board.instance_id`): one power-up of a
physical board, one run of an emulator. The id changes exactly when the board's
state (conductances, write counts, clock, totals) is lost, so whoever compares it
between calls knows whether what it left on the board is still there.

Drivers are not thread-safe; the server serialises calls per board.
"""

from __future__ import annotations

import threading
import uuid
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from sidra.drivers import codes
from sidra.drivers.operations import BoardMethods, operation_of
from sidra.drivers.requests import (
    CalibrateRequest,
    MVMRequest,
    ProgramRequest,
    Request,
    SequenceRequest,
    TransposeMVMRequest,
)
from sidra.drivers.types import (
    BoardDescription,
    CalibrationReport,
    MVMResult,
    SequenceResult,
    TileUse,
)

__all__ = [
    "INSTANCE_ID_LIMIT",
    "Board",
    "BoardDriver",
    "boot_instance_id",
    "printable_ascii",
    "run_instance_id",
]

INSTANCE_ID_LIMIT = 200
"""Most characters of an instance id (it travels in gRPC metadata with every response)."""
_SERIAL_PART_LIMIT = 160  # leaves room for "/boot-4294967295" or "/run-<32 hex digits>"

_FIRST_READ = threading.Lock()  # one id per board, even when two threads ask first at once


def printable_ascii(text: str, limit: int = INSTANCE_ID_LIMIT) -> str:
    """``text`` as printable ASCII, at most ``limit`` characters: gRPC metadata values
    must be ASCII 0x20-0x7E, and a serial number is UTF-8 of the board's choosing.
    Spaces, ``%`` and anything else outside 0x21-0x7E become ``%XX`` (its UTF-8 bytes),
    so distinct texts stay distinct."""
    out = "".join(
        ch if "!" <= ch <= "~" and ch != "%" else "".join(f"%{b:02X}" for b in ch.encode())
        for ch in text
    )
    return out[:limit]


def boot_instance_id(serial_number: str, boot_count: int) -> str:
    """The instance id of a board that counts its boots: ``<serial>/boot-<count>``."""
    return f"{printable_ascii(serial_number, _SERIAL_PART_LIMIT)}/boot-{boot_count}"


def run_instance_id(serial_number: str) -> str:
    """A fresh instance id for a board without a boot count (an emulator, a fake):
    ``<serial>/run-<32 random hex digits>``. Random, never derived from a seed: two
    emulators built alike are still two boards, each with its own state."""
    return f"{printable_ascii(serial_number, _SERIAL_PART_LIMIT)}/run-{uuid.uuid4().hex}"


class Board(BoardMethods):
    """A SIDRA board: conductances in µS, voltages in V, currents in µA.

    The public contract of every board, local or remote: the operation methods
    (from :class:`~sidra.drivers.operations.BoardMethods`, written once), ``run``,
    ``info``, ``close`` and use as a context manager. Training code takes a
    ``Board`` and runs unchanged on a local driver or a server's board.
    """

    _instance_id: str | None = None

    @property
    def instance_id(self) -> str:
        """The board instance: changes whenever the board's state is lost, never otherwise.

        Opaque printable ASCII of at most :data:`INSTANCE_ID_LIMIT` characters (compare
        it whole). Cheap to read: the server reads it after every call. A board with a
        boot count says ``<serial>/boot-<count>`` (:func:`boot_instance_id`) and changes
        it when it detects a restart; this default, for boards with state in this
        process, is a random id made at the first read (:func:`run_instance_id`).
        """
        if self._instance_id is None:
            with _FIRST_READ:
                if self._instance_id is None:
                    self._instance_id = run_instance_id(self.info.serial_number)
        return self._instance_id

    def tile_use(self) -> TileUse:
        """Which tiles others use now: another session's leases and deployed models on a
        shared (served) board. A run given no tiles places its layers by it
        (:meth:`TileUse.order`), so it does not take a tile someone else holds while
        others are free. This default, a board this process alone uses: none."""
        return TileUse()

    def claim_tiles(self, tiles: Sequence[int]) -> None:
        """Takes ``tiles`` for this process before a run's first call to them: a served
        board whose session leases tiles as used leases them now, all or none (a tile
        another session took since :meth:`tile_use` was asked raises
        :class:`~sidra.drivers.errors.LeaseHeld` naming its holder, and the run places
        its layers again). This default, a board this process alone uses: nothing."""

    def run_step(self, step: Request) -> Any:
        """Runs one step of a sequence already validated against :attr:`info` (a step of
        ``SequenceRequest.checked(info)``), as a server runs the steps it admitted one
        by one. A board that validates in :meth:`run` does not validate it again; this
        default is :meth:`run`."""
        return self.run(step)

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

    _gains: dict[int, tuple[str, float]] | None = None

    def run(self, request: Request) -> Any:
        """Validates ``request`` (raising before the board is touched), then executes it.
        GetBoardInfo's answer names the instance its totals belong to (read after the
        call: a reset the call met is already counted)."""
        try:
            checked = request.checked(self.info)
        except AttributeError:
            if hasattr(request, "checked"):
                raise
            operation_of(request)  # no board request: InvalidArgument naming its type
            raise
        if isinstance(checked, SequenceRequest):  # every step valid: run them in order
            return SequenceResult(tuple(self.run_step(step) for step in checked.steps))
        return self._run_checked(checked)

    def run_step(self, step: Request) -> Any:
        return self._run_checked(step)

    def _run_checked(self, checked: Any) -> Any:
        """Executes one validated request (a call, or a step of a sequence)."""
        if isinstance(checked, MVMRequest | TransposeMVMRequest) and checked.uses_codes:
            return self._run_codes(checked)
        result = self._handle(checked)
        if isinstance(result, BoardDescription):
            return replace(result, instance_id=self.instance_id)
        if isinstance(result, CalibrationReport) and isinstance(checked, CalibrateRequest):
            self._gain_table()[checked.tile] = (self.instance_id, result.gain)
        elif isinstance(checked, ProgramRequest):  # the board set the tile's gain back to 1
            self._gain_table().pop(checked.tile, None)
        return result

    def _run_codes(self, request: MVMRequest | TransposeMVMRequest) -> MVMResult:
        """A pass given or answering converter codes (sidra.drivers.codes), run as the pass
        of the voltages the codes drive; the currents are the ADC's codes times its step
        and the tile's calibration gain, so the codes come back exactly."""
        info = self.info
        step_v = codes.dac_step_v(info) if request.input_codes is not None else 0.0
        if request.input_codes is not None:
            voltages = codes.voltages_of(request.input_codes, step_v)
            request = replace(request, voltages=voltages, input_codes=None)
        plain = replace(request, output_codes=False)
        result: MVMResult = self._handle(plain)
        if info.dac_bits and not step_v:
            step_v = codes.dac_step_v(info)
        step_ua = 0.0
        if info.adc_bits and info.adc_full_scale_ua > 0.0:
            step_ua = codes.adc_step_ua(info, self._gain(request.tile))
        output = None
        if request.output_codes:
            output = codes.currents_to_codes(result.currents, step_ua, info.adc_bits)
        return replace(result, output_codes=output, dac_step_v=step_v, adc_step_ua=step_ua)

    def _gain(self, tile: int) -> float:
        """The calibration gain ``tile`` applies now: the last Calibrate's on this board
        instance, 1 before any and after a Program into the tile (a reset board starts
        uncalibrated)."""
        instance, gain = self._gain_table().get(tile, ("", 1.0))
        return gain if instance == self.instance_id else 1.0

    def _gain_table(self) -> dict[int, tuple[str, float]]:
        """Tile -> (instance id, gain) of each tile's last Calibrate (made on first use:
        transports need not call an initialiser of this base)."""
        table = self._gains
        if table is None:
            table = {}
            self._gains = table
        return table

    @abstractmethod
    def _handle(self, request: Request) -> Any:
        """Executes a validated request; returns its operation's result type
        (``operation_of(request).result``). Raise :class:`Unsupported` for an
        operation the board does not offer (AdvanceClock on hardware)."""
