"""``RemoteBoard``: a SIDRA board behind a gRPC server, numpy in and out.

It satisfies the same :class:`sidra.drivers.Board` interface as a local
driver, so training code runs unchanged against ``open_board("emu://")`` or
``connect("host:50051")``. Every call has a deadline; failures raise the
SIDRA exception tree (``sidra.drivers.errors``), never a raw ``grpc.RpcError``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import SplitResult

import grpc
import numpy as np

from sidra.client.errors import from_rpc_error
from sidra.drivers import (
    BoardInfo,
    BoardStats,
    BoardUnavailable,
    CalibrationReport,
    InvalidArgument,
    MVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    WriteCounts,
)
from sidra.drivers.validation import to_float32
from sidra.hil import convert, tensors
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_TIMEOUT_S", "RemoteBoard", "connect", "from_url"]

DEFAULT_TIMEOUT_S = 30.0
"""Deadline of each call, seconds (a full-tile write-verify fits well inside)."""

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

R = TypeVar("R")


class RemoteBoard:
    """A board reached through ``sidra serve``; use as a context manager."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        owns_channel: bool = False,
    ) -> None:
        self._channel = channel
        self._owns_channel = owns_channel
        self._stub = pb_grpc.BoardServiceStub(channel)
        self.timeout_s = timeout_s
        self._info: BoardInfo | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def _call(self, rpc: Callable[..., R], request: Any) -> R:
        try:
            return rpc(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc

    @property
    def info(self) -> BoardInfo:
        """Board description (fetched once, then cached: it does not change)."""
        if self._info is None:
            self._info = convert.info_from_pb(
                self._call(self._stub.GetBoardInfo, pb.GetBoardInfoRequest()).info
            )
        return self._info

    def stats(self) -> BoardStats:
        """Running totals: modeled time and energy, MVM passes, cell writes."""
        reply = self._call(self._stub.GetBoardInfo, pb.GetBoardInfoRequest())
        return convert.stats_from_pb(reply.stats)

    def program(
        self, tile: int, conductances: Any, *, row_offset: int = 0, col_offset: int = 0
    ) -> ProgramReport:
        """Write-verify ``conductances`` (µS, [rows, cols]) at (row_offset, col_offset)."""
        request = pb.ProgramRequest(
            tile=tile,
            row_offset=row_offset,
            col_offset=col_offset,
            conductances=tensors.encode(_float32("conductances", conductances)),
        )
        return convert.program_from_pb(self._call(self._stub.Program, request))

    def read_conductance(self, tile: int, region: Region | None = None) -> ReadResult:
        """Measured conductances (µS) of ``region`` (default: the whole tile)."""
        request = pb.ReadConductanceRequest(tile=tile, region=convert.region_to_pb(region))
        return convert.read_from_pb(self._call(self._stub.ReadConductance, request))

    def mvm(self, tile: int, voltages: Any) -> MVMResult:
        """Row voltages [batch, rows] (V) -> column currents [batch, cols] (µA)."""
        request = pb.MVMRequest(tile=tile, voltages=tensors.encode(_float32("voltages", voltages)))
        return convert.mvm_from_pb(self._call(self._stub.MVM, request))

    def transpose_mvm(self, tile: int, voltages: Any) -> MVMResult:
        """Column voltages [batch, cols] (V) -> row currents [batch, rows] (µA)."""
        request = pb.TransposeMVMRequest(
            tile=tile, voltages=tensors.encode(_float32("voltages", voltages))
        )
        return convert.mvm_from_pb(self._call(self._stub.TransposeMVM, request))

    def perturb(
        self,
        tile: int,
        seed: int,
        amplitude_us: float,
        sign: int = 1,
        region: Region | None = None,
    ) -> PerturbReport:
        """Set ``region`` to G_prog + sign·amplitude_us·Δ(seed); Δ from ``rademacher``."""
        request = pb.PerturbRequest(
            tile=tile,
            mode=pb.PERTURB_MODE_APPLY,
            seed=seed,
            amplitude_us=amplitude_us,
            sign=sign,
            region=convert.region_to_pb(region),
        )
        return convert.perturb_from_pb(self._call(self._stub.Perturb, request))

    def restore(self, tile: int, region: Region | None = None) -> PerturbReport:
        """Return ``region`` (default: the whole tile) to its programmed state."""
        request = pb.PerturbRequest(
            tile=tile, mode=pb.PERTURB_MODE_RESTORE, region=convert.region_to_pb(region)
        )
        return convert.perturb_from_pb(self._call(self._stub.Perturb, request))

    def read_write_counts(self, tile: int, region: Region | None = None) -> WriteCounts:
        """Per-cell write counters (endurance) of ``region`` (default: the whole tile)."""
        request = pb.ReadWriteCountsRequest(tile=tile, region=convert.region_to_pb(region))
        return convert.write_counts_from_pb(self._call(self._stub.ReadWriteCounts, request))

    def calibrate(self, tile: int) -> CalibrationReport:
        """Global drift compensation of ``tile``; returns the output gain now applied."""
        request = pb.CalibrateRequest(tile=tile)
        return convert.calibration_from_pb(self._call(self._stub.Calibrate, request))

    def advance_clock(self, seconds: float) -> float:
        """Advance an emulated board's virtual clock; returns the new time, s."""
        request = pb.AdvanceClockRequest(seconds=seconds)
        clock: float = self._call(self._stub.AdvanceClock, request).clock_s
        return clock


def from_url(url: SplitResult) -> RemoteBoard:
    """``grpc://host:port``: the board behind a ``sidra serve`` (the ``sidra.boards`` entry)."""
    if not url.netloc or url.path not in ("", "/") or url.query:
        raise InvalidArgument("board url", url.geturl(), "grpc://host:port")
    return connect(url.netloc)


def _float32(field: str, array: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    # The wire carries float32: refuse here only what it cannot represent.
    # NaN, shape and range are the server's to judge.
    return to_float32(field, array)


def connect(
    address: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    wait_ready_s: float | None = 10.0,
) -> RemoteBoard:
    """Opens a channel to ``address`` (``host:port``) and returns the board behind it.

    Waits up to ``wait_ready_s`` seconds for the server (``None``: don't wait) and
    raises :class:`~sidra.drivers.BoardUnavailable` if it does not answer.
    """
    channel = grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    if wait_ready_s is not None:
        try:
            grpc.channel_ready_future(channel).result(timeout=wait_ready_s)
        except grpc.FutureTimeoutError as exc:
            channel.close()
            raise BoardUnavailable(
                f"no SIDRA server answered at {address} within {wait_ready_s:g} s"
            ) from exc
    return RemoteBoard(channel, timeout_s=timeout_s, owns_channel=True)
