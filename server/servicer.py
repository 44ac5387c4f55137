"""``sidra.hil.v1.BoardService`` over any :class:`~sidra.drivers.Board`.

Servicers only decode, call the driver under the board lock, and encode; the
driver validates, ``sidra.server.status`` maps errors.
"""

from __future__ import annotations

import threading

import grpc

from sidra.drivers import Board, InvalidArgument, Region
from sidra.hil import convert, tensors
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server.status import map_errors

__all__ = ["SERVICE_NAME", "BoardServicer"]

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["BoardService"].full_name


def _region(
    msg: pb.ReadConductanceRequest | pb.PerturbRequest | pb.ReadWriteCountsRequest,
) -> Region | None:
    return convert.region_from_pb(msg.region) if msg.HasField("region") else None


class BoardServicer(pb_grpc.BoardServiceServicer):
    """Serves one board; one lock per board so calls never interleave on it."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self.lock = threading.Lock()

    @map_errors
    def GetBoardInfo(
        self, request: pb.GetBoardInfoRequest, context: grpc.ServicerContext
    ) -> pb.GetBoardInfoResponse:
        with self.lock:
            info, stats = self.board.info, self.board.stats()
        return pb.GetBoardInfoResponse(
            info=convert.info_to_pb(info), stats=convert.stats_to_pb(stats)
        )

    @map_errors
    def Program(
        self, request: pb.ProgramRequest, context: grpc.ServicerContext
    ) -> pb.ProgramResponse:
        targets = tensors.decode(request.conductances, "conductances")
        with self.lock:
            report = self.board.program(
                request.tile, targets, row_offset=request.row_offset, col_offset=request.col_offset
            )
        return convert.program_to_pb(report)

    @map_errors
    def ReadConductance(
        self, request: pb.ReadConductanceRequest, context: grpc.ServicerContext
    ) -> pb.ReadConductanceResponse:
        with self.lock:
            result = self.board.read_conductance(request.tile, _region(request))
        return pb.ReadConductanceResponse(
            conductances=tensors.encode(result.conductances), cost=convert.cost_to_pb(result.cost)
        )

    @map_errors
    def MVM(self, request: pb.MVMRequest, context: grpc.ServicerContext) -> pb.MVMResponse:
        voltages = tensors.decode(request.voltages, "voltages")
        with self.lock:
            result = self.board.mvm(request.tile, voltages)
        return pb.MVMResponse(
            currents=tensors.encode(result.currents),
            saturated_outputs=result.saturated_outputs,
            cost=convert.cost_to_pb(result.cost),
        )

    @map_errors
    def TransposeMVM(
        self, request: pb.TransposeMVMRequest, context: grpc.ServicerContext
    ) -> pb.TransposeMVMResponse:
        voltages = tensors.decode(request.voltages, "voltages")
        with self.lock:
            result = self.board.transpose_mvm(request.tile, voltages)
        return pb.TransposeMVMResponse(
            currents=tensors.encode(result.currents),
            saturated_outputs=result.saturated_outputs,
            cost=convert.cost_to_pb(result.cost),
        )

    @map_errors
    def Perturb(
        self, request: pb.PerturbRequest, context: grpc.ServicerContext
    ) -> pb.PerturbResponse:
        region = _region(request)
        if request.mode == pb.PERTURB_MODE_APPLY:
            with self.lock:
                report = self.board.perturb(
                    request.tile, request.seed, request.amplitude_us, request.sign, region
                )
        elif request.mode == pb.PERTURB_MODE_RESTORE:
            with self.lock:
                report = self.board.restore(request.tile, region)
        else:
            raise InvalidArgument(
                "mode", _enum_name(request.mode), "PERTURB_MODE_APPLY or PERTURB_MODE_RESTORE"
            )
        return convert.perturb_to_pb(report)

    @map_errors
    def ReadWriteCounts(
        self, request: pb.ReadWriteCountsRequest, context: grpc.ServicerContext
    ) -> pb.ReadWriteCountsResponse:
        with self.lock:
            counts = self.board.read_write_counts(request.tile, _region(request))
        return convert.write_counts_to_pb(counts)

    @map_errors
    def Calibrate(
        self, request: pb.CalibrateRequest, context: grpc.ServicerContext
    ) -> pb.CalibrateResponse:
        with self.lock:
            report = self.board.calibrate(request.tile)
        return convert.calibration_to_pb(report)

    @map_errors
    def AdvanceClock(
        self, request: pb.AdvanceClockRequest, context: grpc.ServicerContext
    ) -> pb.AdvanceClockResponse:
        with self.lock:
            clock = self.board.advance_clock(request.seconds)
        return pb.AdvanceClockResponse(clock_s=clock)


def _enum_name(value: int) -> str | int:
    return pb.PerturbMode.Name(value) if value in pb.PerturbMode.values() else value
