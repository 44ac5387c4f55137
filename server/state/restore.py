"""Writing a board's golden targets back after a crash or a board reset.

``restore(board, store)`` looks the board up by serial number and, tile by
tile, programs the cells the store says were programmed, with the targets it
holds; cells never programmed are left alone. Each Program is recorded in the
history as a restore (kind ``restore``, by :data:`RESTORE_PRINCIPAL`: the server
itself, on no caller's behalf), so the record of writes to the board stays complete
and a restore is never taken for a caller's Program.

Call it before the board is served (``sidra serve --restore``), or with the
servicer's board lock held: it issues ordinary Programs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sidra.drivers import Board, BoardInfo, FailedPrecondition, ProgramReport
from sidra.server.state.errors import StateStoreError
from sidra.server.state.maps import rectangles
from sidra.server.state.records import SERVER_PRINCIPAL, BoardRecord, ProgramKind
from sidra.server.state.store import StateStore

__all__ = ["RESTORE_PRINCIPAL", "RestoreReport", "TileRestore", "restore"]

RESTORE_PRINCIPAL = SERVER_PRINCIPAL
"""Who a restore is attributed to unless the caller says: the server, writing back on
no caller's behalf (not ``local``, every caller's principal without [auth])."""


@dataclass(frozen=True, slots=True)
class TileRestore:
    """What restore wrote to one tile."""

    tile: int
    cells: int
    """Cells written back (the tile's programmed cells)."""
    programs: int
    """Program calls it took (one per rectangle of programmed cells)."""
    rms_error_us: float
    """RMS write-verify error over the restored cells, µS."""
    max_error_us: float
    unconverged_cells: int


@dataclass(frozen=True, slots=True)
class RestoreReport:
    """What restore did to one board."""

    board_serial: str
    known: bool
    """False when the store has never seen this board: nothing to restore."""
    boot_id: str = ""
    """The boot/instance id the restore's records carry."""
    tiles: tuple[TileRestore, ...] = ()
    """Tiles with golden targets, restored, in tile order."""
    untouched_tiles: tuple[int, ...] = ()
    """Tiles never programmed: left as they are."""

    @property
    def cells(self) -> int:
        return sum(t.cells for t in self.tiles)

    def describe(self) -> str:
        """One line per tile, for the log of ``sidra serve --restore``."""
        if not self.known:
            return f"restore {self.board_serial}: not in the state store, nothing restored"
        tiles = f"{len(self.tiles)} tile{'' if len(self.tiles) == 1 else 's'}"
        lines = [f"restore {self.board_serial}: {self.cells} cells on {tiles}"]
        lines += [
            f"  tile {t.tile}: {t.cells} cells in {t.programs} Program "
            f"call{'' if t.programs == 1 else 's'} (one per rectangle of programmed cells), "
            f"rms error {t.rms_error_us:.4g} µS, max {t.max_error_us:.4g} µS, "
            f"{t.unconverged_cells} unconverged"
            for t in self.tiles
        ]
        if self.untouched_tiles:
            untouched = ", ".join(map(str, self.untouched_tiles))
            noun = "tile" if len(self.untouched_tiles) == 1 else "tiles"
            lines.append(f"  never programmed, left as they are: {noun} {untouched}")
        return "\n".join(lines)


def restore(
    board: Board,
    store: StateStore,
    *,
    principal: str = RESTORE_PRINCIPAL,
    boot_id: str | None = None,
) -> RestoreReport:
    """Programs ``store``'s golden targets of every tile onto ``board``.

    ``boot_id`` is recorded with each Program; default: the board's instance
    (``board.instance_id``), the one the restored state now lives in.
    A board that is not the one the store recorded under its serial number (another
    model, geometry or conductance window: a lab may give a serial number again) raises
    FailedPrecondition before anything is written. A failing Program raises; the tiles
    before it are restored and recorded.
    """
    info = board.info
    boot_id = boot_id or board.instance_id
    try:
        record = store.board(info.serial_number)
    except StateStoreError:
        return RestoreReport(info.serial_number, known=False, boot_id=boot_id)
    _check_same_board(record, info)
    restored, untouched = [], []
    for tile in range(info.tile_count):
        targets, programmed = store.golden(info.serial_number, tile)
        if not programmed.any():
            untouched.append(tile)
            continue
        reports = []
        for region in rectangles(programmed):
            report = board.program(
                tile,
                targets[region.slices],
                row_offset=region.row_offset,
                col_offset=region.col_offset,
            )
            store.record_program(
                info.serial_number, tile, region.row_offset, region.col_offset,
                targets[region.slices], report, principal, boot_id, kind=ProgramKind.RESTORE,
            )  # fmt: skip
            reports.append((region.rows * region.cols, report))
        restored.append(_tile_restore(tile, reports))
    return RestoreReport(info.serial_number, True, boot_id, tuple(restored), tuple(untouched))


def _check_same_board(record: BoardRecord, info: BoardInfo) -> None:
    """FailedPrecondition naming the first of model, geometry and conductance window in
    which ``info`` differs from the board the store recorded under its serial number."""
    window, kept = (info.g_min_us, info.g_max_us), (record.g_min_us, record.g_max_us)
    # The window to float32's precision: a transport may carry it as float32 (HELLO),
    # another as float64, and one board must not be taken for another for that.
    same_window = all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(window, kept, strict=True))
    checks = [
        ("model", info.model, record.model),
        ("geometry (tiles, rows, cols)", (info.tile_count, info.rows, info.cols),
         (record.tile_count, record.rows, record.cols)),
        ("conductance window (g_min_us, g_max_us)", window, window if same_window else kept),
    ]  # fmt: skip
    for what, found, stored in checks:
        if found != stored:
            raise FailedPrecondition(
                f"board {record.serial_number}: {what}: got {found!r}, expected {stored!r} "
                "as the state store recorded it (another board with the same serial "
                "number?); nothing restored"
            )


def _tile_restore(tile: int, reports: list[tuple[int, ProgramReport]]) -> TileRestore:
    cells = sum(n for n, _ in reports)
    # Combine per-region RMS errors weighted by cell count: the RMS over all cells.
    mean_square = sum(n * r.rms_error_us**2 for n, r in reports) / cells
    return TileRestore(
        tile,
        cells,
        len(reports),
        math.sqrt(mean_square),
        max(r.max_error_us for _, r in reports),
        sum(r.unconverged_cells for _, r in reports),
    )
