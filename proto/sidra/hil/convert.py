"""Driver value types <-> ``sidra.hil.v1`` messages, both directions in one place."""

from __future__ import annotations

import dataclasses
import json

from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    BoardTiming,
    CalibrationReport,
    Cost,
    LinkStats,
    MVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
    WriteCounts,
)
from sidra.hil import tensors
from sidra.hil.v1 import board_pb2 as pb

__all__ = [
    "calibration_from_pb",
    "calibration_to_pb",
    "cost_from_pb",
    "cost_to_pb",
    "info_from_pb",
    "info_to_pb",
    "mvm_from_pb",
    "perturb_from_pb",
    "perturb_to_pb",
    "program_from_pb",
    "program_to_pb",
    "read_from_pb",
    "region_from_pb",
    "region_to_pb",
    "stats_from_pb",
    "stats_to_pb",
    "write_counts_from_pb",
    "write_counts_to_pb",
]


def cost_to_pb(cost: Cost) -> pb.OperationCost:
    return pb.OperationCost(time_ns=cost.time_ns, energy_nj=cost.energy_nj)


def cost_from_pb(msg: pb.OperationCost) -> Cost:
    return Cost(msg.time_ns, msg.energy_nj)


def region_to_pb(region: Region | None) -> pb.Region | None:
    if region is None:
        return None
    return pb.Region(
        row_offset=region.row_offset,
        col_offset=region.col_offset,
        rows=region.rows,
        cols=region.cols,
    )


def region_from_pb(msg: pb.Region) -> Region:
    return Region(msg.row_offset, msg.col_offset, msg.rows, msg.cols)


def info_to_pb(info: BoardInfo) -> pb.BoardInfo:
    return pb.BoardInfo(
        model=info.model,
        serial_number=info.serial_number,
        firmware_version=info.firmware_version,
        tile_count=info.tile_count,
        rows=info.rows,
        cols=info.cols,
        g_min_us=info.g_min_us,
        g_max_us=info.g_max_us,
        dac_bits=info.dac_bits,
        adc_bits=info.adc_bits,
        read_voltage_max_v=info.read_voltage_max_v,
        emulated=info.emulated,
        emulator_preset=info.emulator_preset,
        profile_json=json.dumps(info.profile, sort_keys=True) if info.profile else "",
        timing=pb.BoardTiming(**dataclasses.asdict(info.timing)),
    )


def info_from_pb(msg: pb.BoardInfo) -> BoardInfo:
    return BoardInfo(
        model=msg.model,
        serial_number=msg.serial_number,
        firmware_version=msg.firmware_version,
        tile_count=msg.tile_count,
        rows=msg.rows,
        cols=msg.cols,
        g_min_us=msg.g_min_us,
        g_max_us=msg.g_max_us,
        dac_bits=msg.dac_bits,
        adc_bits=msg.adc_bits,
        read_voltage_max_v=msg.read_voltage_max_v,
        emulated=msg.emulated,
        emulator_preset=msg.emulator_preset,
        profile=json.loads(msg.profile_json) if msg.profile_json else {},
        timing=BoardTiming(
            **{f.name: getattr(msg.timing, f.name) for f in dataclasses.fields(BoardTiming)}
        ),
    )


def stats_to_pb(stats: BoardStats) -> pb.BoardStats:
    link = None if stats.link is None else pb.LinkStats(**dataclasses.asdict(stats.link))
    return pb.BoardStats(
        total_cost=cost_to_pb(stats.total_cost),
        mvm_passes=stats.mvm_passes,
        cell_writes=stats.cell_writes,
        clock_s=stats.clock_s,
        max_cell_writes=stats.max_cell_writes,
        link=link,
    )


def stats_from_pb(msg: pb.BoardStats) -> BoardStats:
    link = None
    if msg.HasField("link"):
        link = LinkStats(
            **{f.name: getattr(msg.link, f.name) for f in dataclasses.fields(LinkStats)}
        )
    return BoardStats(
        total_cost=cost_from_pb(msg.total_cost),
        mvm_passes=msg.mvm_passes,
        cell_writes=msg.cell_writes,
        clock_s=msg.clock_s,
        max_cell_writes=msg.max_cell_writes,
        link=link,
    )


def program_to_pb(report: ProgramReport) -> pb.ProgramResponse:
    return pb.ProgramResponse(
        cells_written=report.cells_written,
        verify_iterations=report.verify_iterations,
        pulses=report.pulses,
        rms_error_us=report.rms_error_us,
        max_error_us=report.max_error_us,
        unconverged_cells=report.unconverged_cells,
        cells_over_budget=report.cells_over_budget,
        cost=cost_to_pb(report.cost),
    )


def program_from_pb(msg: pb.ProgramResponse) -> ProgramReport:
    return ProgramReport(
        cells_written=msg.cells_written,
        verify_iterations=msg.verify_iterations,
        pulses=msg.pulses,
        rms_error_us=msg.rms_error_us,
        max_error_us=msg.max_error_us,
        unconverged_cells=msg.unconverged_cells,
        cells_over_budget=msg.cells_over_budget,
        cost=cost_from_pb(msg.cost),
    )


def read_from_pb(msg: pb.ReadConductanceResponse) -> ReadResult:
    return ReadResult(
        tensors.decode(msg.conductances, "conductances").copy(), cost_from_pb(msg.cost)
    )


def mvm_from_pb(msg: pb.MVMResponse | pb.TransposeMVMResponse) -> MVMResult:
    return MVMResult(
        tensors.decode(msg.currents, "currents").copy(),
        msg.saturated_outputs,
        cost_from_pb(msg.cost),
    )


def perturb_to_pb(report: PerturbReport) -> pb.PerturbResponse:
    return pb.PerturbResponse(
        cells_written=report.cells_written,
        clipped_cells=report.clipped_cells,
        cells_over_budget=report.cells_over_budget,
        cost=cost_to_pb(report.cost),
    )


def perturb_from_pb(msg: pb.PerturbResponse) -> PerturbReport:
    return PerturbReport(
        cells_written=msg.cells_written,
        clipped_cells=msg.clipped_cells,
        cells_over_budget=msg.cells_over_budget,
        cost=cost_from_pb(msg.cost),
    )


def write_counts_to_pb(counts: WriteCounts) -> pb.ReadWriteCountsResponse:
    return pb.ReadWriteCountsResponse(
        counts=tensors.encode(counts.counts, pb.DTYPE_UINT32), write_budget=counts.write_budget
    )


def write_counts_from_pb(msg: pb.ReadWriteCountsResponse) -> WriteCounts:
    counts = tensors.decode(msg.counts, "counts", dtype=pb.DTYPE_UINT32).copy()
    return WriteCounts(counts, msg.write_budget)


def calibration_to_pb(report: CalibrationReport) -> pb.CalibrateResponse:
    return pb.CalibrateResponse(gain=report.gain, cost=cost_to_pb(report.cost))


def calibration_from_pb(msg: pb.CalibrateResponse) -> CalibrationReport:
    return CalibrationReport(msg.gain, cost_from_pb(msg.cost))
