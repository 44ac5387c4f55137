"""Rows of the store's tables as records, and the column lists the queries share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sidra.drivers import Region
from sidra.server.state.records import BoardRecord, ProgramKind, ProgramRecord

__all__ = [
    "BOARD_COLUMNS",
    "PROGRAM_COLUMNS",
    "board_record",
    "history_filter",
    "place",
    "program_record",
]

BOARD_COLUMNS = (
    "serial_number, model, tile_count, rows, cols, g_min_us, g_max_us, first_seen_utc, "
    "last_seen_utc, last_boot_id"
)
PROGRAM_COLUMNS = (
    "id, board_serial, tile, row_offset, col_offset, rows, cols, principal, time_utc, "
    "boot_id, kind, cells_written, verify_iterations, pulses, rms_error_us, max_error_us, "
    "unconverged_cells, cells_over_budget, programs, first_utc"
)


def place(tile: int, region: Region) -> list[int]:
    """``[tile, row_offset, col_offset, rows, cols]``: how a region's JSON entry in the
    deployments' tables begins (what follows it is the table's own)."""
    return [tile, region.row_offset, region.col_offset, region.rows, region.cols]


def history_filter(board_serial: str | None, tile: int | None) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause and its arguments selecting one board's and/or one tile's records."""
    clauses: list[str] = []
    args: list[Any] = []
    if board_serial is not None:
        clauses.append("board_serial = ?")
        args.append(board_serial)
    if tile is not None:
        clauses.append("tile = ?")
        args.append(tile)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)


def board_record(row: Any) -> BoardRecord:
    """A ``boards`` row selected as BOARD_COLUMNS."""
    (serial, model, tiles, rows, cols, g_min, g_max, first, last, boot) = tuple(row)
    return BoardRecord(
        serial, model, tiles, rows, cols, g_min, g_max,
        datetime.fromisoformat(first), datetime.fromisoformat(last), boot,
    )  # fmt: skip


def program_record(row: Any) -> ProgramRecord:
    """A ``programs`` row selected as PROGRAM_COLUMNS."""
    (id_, serial, tile, r0, c0, rows, cols, principal, time, boot, kind, *figures) = tuple(row)
    written, iterations, pulses, rms, worst, unconverged, over_budget, programs, first = figures
    last = datetime.fromisoformat(time)
    return ProgramRecord(
        id_, serial, tile, Region(r0, c0, rows, cols), principal, last, boot,
        ProgramKind(kind), written, iterations, pulses, rms, worst, unconverged, over_budget,
        programs, last if first is None else datetime.fromisoformat(first),
    )  # fmt: skip
