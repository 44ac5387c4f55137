"""Small helpers every measurement shares: programming a block, averaging reads."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sidra.drivers import Board, ProgramReport, Region

__all__ = ["block_of", "program_block", "read_repeated", "write_counts"]

F64 = npt.NDArray[np.float64]


def block_of(board: Board, rows: int = 32, cols: int = 32) -> Region:
    """The top-left block of at most ``rows`` × ``cols`` cells the statistics run on."""
    info = board.info
    return Region(0, 0, min(rows, info.rows), min(cols, info.cols))


def program_block(board: Board, tile: int, block: Region, targets: npt.ArrayLike) -> ProgramReport:
    """Write-verify ``targets`` (µS, broadcast to the block's shape) into ``block``."""
    g = np.broadcast_to(np.asarray(targets, np.float32), block.shape).copy()
    return board.program(tile, g, row_offset=block.row_offset, col_offset=block.col_offset)


def read_repeated(board: Board, tile: int, block: Region, reads: int) -> F64:
    """``reads`` ReadConductance of ``block``, stacked [reads, rows, cols] (µS)."""
    return np.stack(
        [board.read_conductance(tile, block).conductances.astype(np.float64) for _ in range(reads)]
    )


def write_counts(board: Board, tile: int, block: Region) -> npt.NDArray[np.int64]:
    """Per-cell write counters of ``block`` (programming pulses and perturbation writes)."""
    return board.read_write_counts(tile, block).counts.astype(np.int64)
