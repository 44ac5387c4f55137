"""Which cells of each tile are left perturbed, from the calls the service ran.

A lease that ends must not hand its successor a tile still carrying its holder's
perturbation (session.proto, "End of a lease"). The board knows G_prog but does
not say which cells sit away from it, so the service keeps a mask per tile:
Perturb APPLY sets the region's cells, Perturb RESTORE, PerturbedMVM and Program
clear them (each leaves a cell at its programmed conductance).

A board that restarts loses its perturbation with the rest of its cells' state, so the
masks belong to the board instance (``Board.instance_id``) they were noted on: once the
board answers as another instance they are dropped, and nothing is left to restore.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from sidra.drivers import BoardInfo, Region
from sidra.drivers.requests import (
    PerturbedMVMRequest,
    PerturbMode,
    PerturbRequest,
    ProgramRequest,
    Request,
)

__all__ = ["PerturbedCells"]


class PerturbedCells:
    """Perturbed-cell masks of a board's tiles (made at a tile's first Perturb);
    ``instance()``: the board instance now (``board.instance_id``)."""

    def __init__(self, info: BoardInfo, instance: Callable[[], str]) -> None:
        self.info = info
        self.instance = instance
        self._masks: dict[int, np.ndarray] = {}
        self._masks_instance: str | None = None
        """The board instance the masks were noted on (None: no mask yet)."""
        self._lock = threading.Lock()

    def ran(self, request: Request) -> None:
        """Notes what a request that succeeded on the board did to its tile's cells."""
        if isinstance(request, PerturbRequest):
            region = request.region or Region()
            self._set(request.tile, region, request.mode is PerturbMode.APPLY)
        elif isinstance(request, PerturbedMVMRequest):  # it ends with the region restored
            self._set(request.tile, request.region or Region(), False)
        elif isinstance(request, ProgramRequest):
            rows, cols = np.shape(request.conductances)
            self._set(
                request.tile, Region(request.row_offset, request.col_offset, rows, cols), False
            )

    def region(self, tile: int) -> Region | None:
        """The smallest region holding every perturbed cell of ``tile``; None when none is
        (none was perturbed, or the board restarted since)."""
        with self._lock:
            self._drop_other_instance()
            mask = self._masks.get(tile)
            if mask is None or not mask.any():
                return None
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
        first_row, first_col = int(rows[0]), int(cols[0])
        return Region(
            first_row, first_col, int(rows[-1]) - first_row + 1, int(cols[-1]) - first_col + 1
        )

    def restored(self, tile: int, region: Region) -> None:
        """``region`` of ``tile`` is back at its programmed conductances."""
        self._set(tile, region, False)

    def _set(self, tile: int, region: Region, perturbed: bool) -> None:
        info = self.info
        resolved = region.resolve(info.rows, info.cols)
        with self._lock:
            self._drop_other_instance()
            mask = self._masks.get(tile)
            if mask is None:
                if not perturbed:
                    return
                mask = self._masks[tile] = np.zeros((info.rows, info.cols), dtype=bool)
            mask[resolved.slices] = perturbed

    def _drop_other_instance(self) -> None:
        """Drops the masks of an earlier board instance (lock held): the restart that
        ended it took their perturbation with the rest of the cells' state."""
        instance = self.instance()
        if instance != self._masks_instance:
            self._masks.clear()
            self._masks_instance = instance
