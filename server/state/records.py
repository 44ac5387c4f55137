"""What the state store takes and hands back: typed, immutable records (units in field names)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from sidra.drivers import ProgramReport, Region

__all__ = [
    "SERVER_PRINCIPAL",
    "BoardRecord",
    "BoardSummary",
    "GoldenMap",
    "ProgramKind",
    "ProgramRecord",
    "ProgramWrite",
    "StoreUsage",
    "TileSummary",
    "WriteCountMap",
]


SERVER_PRINCIPAL = "(server)"
"""The principal of what the server does of its own accord, on no caller's behalf: the
Programs of ``sidra serve --restore`` (kind ``restore``) and its own checks of
deployments. No token can be named so (parentheses), and it is not ``local``, every
caller's principal on a server without [auth]: a restore is never taken for a user's
Program. Whose targets a restore wrote back is what the records of the Programs that
set them say."""


class ProgramKind(StrEnum):
    """Why a Program was written to the board."""

    PROGRAM = "program"
    """A client's Program RPC (or a direct ``record_program`` call), by its principal."""
    RESTORE = "restore"
    """The golden targets written back by ``restore`` after a crash or a board reset, by
    :data:`SERVER_PRINCIPAL` (stores written before it was: ``local``)."""


@dataclass(frozen=True, slots=True)
class BoardRecord:
    """A board the store has seen, keyed by its serial number (``BoardInfo.serial_number``)."""

    serial_number: str
    model: str
    tile_count: int
    rows: int
    cols: int
    g_min_us: float
    g_max_us: float
    first_seen_utc: datetime
    last_seen_utc: datetime
    last_boot_id: str
    """The boot/instance id seen last: another value now means the board's state was lost."""


class GoldenMap(NamedTuple):
    """A tile's golden programmed targets: what restore writes back.

    Unpacks as ``targets, programmed = store.golden(serial, tile)``.
    """

    targets_us: npt.NDArray[np.float32]
    """Programmed conductance targets, µS, [rows, cols]; 0 where ``programmed`` is False."""
    programmed: npt.NDArray[np.bool_]
    """True for cells some Program has set; False for cells never programmed."""


class WriteCountMap(NamedTuple):
    """A tile's per-cell write counts as last read from the board."""

    counts: npt.NDArray[np.uint32]
    """Write counts, [rows, cols]; 0 where ``read`` is False."""
    read: npt.NDArray[np.bool_]
    """True for cells whose count has been read at least once."""


@dataclass(frozen=True, slots=True)
class ProgramWrite:
    """One Program that reached the board, as it is handed to the store."""

    board_serial: str
    tile: int
    row_offset: int
    col_offset: int
    targets_us: npt.NDArray[np.float32]
    """The targets written, µS, [rows, cols] (float32, as the board was given them)."""
    report: ProgramReport
    """What write-verify achieved."""
    principal: str
    boot_id: str
    """The board's boot/instance id when it was written."""
    kind: ProgramKind = ProgramKind.PROGRAM


@dataclass(frozen=True, slots=True)
class ProgramRecord:
    """Programs that reached the board, as the history keeps them: one Program, or a run
    of Programs of one region by one principal counted together (sidra.server.state.history;
    the sums of their cells, pulses and cells over budget, the worst of the rest)."""

    id: int
    """Position in the history: larger is later (by the last Program counted)."""
    board_serial: str
    tile: int
    region: Region
    """The cells written (offsets and size of the targets)."""
    principal: str
    """Who asked for it: the authenticated principal, "local" without authentication,
    :data:`SERVER_PRINCIPAL` for the server's own restore (kind ``restore``)."""
    time_utc: datetime
    """When the (last) Program was stored."""
    boot_id: str
    """The board's boot/instance id when it was written."""
    kind: ProgramKind
    cells_written: int
    verify_iterations: int
    pulses: int
    rms_error_us: float
    max_error_us: float
    unconverged_cells: int
    cells_over_budget: int
    programs: int = 1
    """How many Programs the record counts."""
    first_utc: datetime | None = None
    """When the first of them was stored (the record's time_utc for one Program)."""


@dataclass(frozen=True, slots=True)
class TileSummary:
    """What the store holds for one tile."""

    tile: int
    cells: int
    programmed_cells: int
    """Cells with a golden target."""
    programs: int
    """Programs of this tile the history counts (restores included)."""
    last_program_utc: datetime | None
    """Time of the latest record, None when the tile was never programmed."""


@dataclass(frozen=True, slots=True)
class BoardSummary:
    """A board and what the store holds for each of its tiles."""

    board: BoardRecord
    tiles: tuple[TileSummary, ...]


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """What the store holds, and what it takes on disk."""

    disk_bytes: int
    """The store's files on disk: the SQLite file and its write-ahead log, bytes."""
    free_bytes: int
    """Pages of the file that hold nothing (what deleted jobs left), bytes: SQLite
    reuses them for what it writes next."""
    returns_free_space: bool
    """Whether the store gives the pages deleted jobs leave back to the file system as
    it goes (a store made by this version); if not, its file does not shrink until
    ``sidra state compact``."""
    boards: int
    history_records: int
    """Records of the program history (a run of Programs of one region is one)."""
    programs: int
    """Programs those records count."""
    jobs: int
    job_events: int
    job_file_bytes: int
    """Bytes of the jobs' record files (and the checkpoints of running jobs)."""
    deployments: int
    """Models kept by name on the boards' tiles (deployments.proto)."""
    deployment_checks: int
    """Checks of their cells kept (the latest 10000 of each)."""
    dataset_files: int = 0
    """Data set files kept for jobs: principals' files, and files queued jobs wait on."""
    dataset_file_bytes: int = 0
    """Their bytes (each file once, whoever holds it)."""
