"""What the state store keeps of a board call: at once for a client, in batches behind a job.

A client's Program is stored in its turn, before it is answered (call a
:class:`Recording`): the answer promises it is stored. A job's calls are recorded
behind it (:mod:`sidra.server.jobs.recorder`), and one SPSA step programs the layer
once. Stored one by one there, every step would cost a transaction, an fsync and a
read-modify-write of the tile's golden map, and each sqlite call of the recorder
thread hands the GIL to the job's thread and back: measured on 2 cores, 15 context
switches per step and steps twice as long as without the store.
:func:`store_in_order` stores each run of Programs waiting behind a job in one
transaction (:meth:`StateStore.record_programs`) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sidra.drivers import BoardInfo, ProgramReport, SidraError, WriteCounts
from sidra.drivers.requests import ProgramRequest, ReadWriteCountsRequest, Request
from sidra.server.state import ProgramNotRecorded, ProgramWrite, StateStore

__all__ = ["Recording", "is_recorded", "store_in_order"]

log = logging.getLogger(__name__)


def is_recorded(request: Request) -> bool:
    """Whether the store keeps anything of ``request`` (Program, ReadWriteCounts)."""
    return isinstance(request, ProgramRequest | ReadWriteCountsRequest)


@dataclass(frozen=True, slots=True)
class Recording:
    """What one board call leaves in ``store``; calling it stores that alone.

    Made in the call's turn (nothing ran since), so ``boot_id`` is the board instance
    that ran it even when the recording runs later."""

    store: StateStore
    info: BoardInfo
    boot_id: str
    request: Request
    result: Any
    principal: str

    @property
    def is_program(self) -> bool:
        """Whether the call was a Program the board ran (what the history keeps)."""
        return isinstance(self.request, ProgramRequest) and isinstance(self.result, ProgramReport)

    def __call__(self) -> None:
        if self.is_program:
            _store_programs(self.store, [self])
        elif isinstance(self.request, ReadWriteCountsRequest) and isinstance(
            self.result, WriteCounts
        ):
            self._store_write_counts(self.request, self.result)

    def program_write(self) -> ProgramWrite:
        """The Program this call wrote, as the store takes it (:attr:`is_program`)."""
        request, report = self.request, self.result
        assert isinstance(request, ProgramRequest) and isinstance(report, ProgramReport)
        # The board took the request, so it is valid; the store checks the region against
        # the board's geometry and makes the targets the float32 the board was given.
        return ProgramWrite(
            self.info.serial_number, request.tile, request.row_offset, request.col_offset,
            request.conductances, report, self.principal, self.boot_id,
        )  # fmt: skip

    def _store_write_counts(self, request: ReadWriteCountsRequest, counts: WriteCounts) -> None:
        # Counts are a reading, not a write: a failure to keep them is logged and the
        # client still gets what the board answered.
        region = request.checked(self.info).region
        assert region is not None  # checked() resolves the region
        try:
            self.store.record_write_counts(
                self.info.serial_number, request.tile, region.row_offset, region.col_offset,
                counts.counts,
            )  # fmt: skip
        except SidraError as exc:
            log.warning("write counts of tile %d not stored: %s", request.tile, exc)


def store_in_order(recordings: Sequence[Callable[[], None]]) -> None:
    """Runs ``recordings`` in order, each run of consecutive Programs bound for one store
    in one transaction (all of the run or none); anything else is called as it is."""
    for store, run in groupby(recordings, key=_program_store):
        if store is None:
            for recording in run:
                recording()
        else:
            # A store is the key of Programs' Recordings only: the filter drops nothing.
            _store_programs(store, [r for r in run if isinstance(r, Recording)])


def _program_store(recording: Callable[[], None]) -> StateStore | None:
    """The store a Program's recording goes to; None for any other recording."""
    if isinstance(recording, Recording) and recording.is_program:
        return recording.store
    return None


def _store_programs(store: StateStore, programs: Sequence[Recording]) -> None:
    try:
        store.record_programs([program.program_write() for program in programs])
    except Exception as exc:
        raise _not_recorded(programs, exc) from exc


def _not_recorded(programs: Sequence[Recording], exc: Exception) -> ProgramNotRecorded:
    """The error of Programs the board ran but the store failed to keep."""
    # The board holds the new targets; saying only "failed" would invite a client to
    # believe the tile unchanged.
    request, report = programs[0].request, programs[0].result
    assert isinstance(request, ProgramRequest) and isinstance(report, ProgramReport)
    region = request.region
    what = (
        f"tile {request.tile} was programmed on the board ({region.cells_text()}, "
        f"rms error {report.rms_error_us:.4g} µS)"
    )
    if len(programs) == 1:
        return ProgramNotRecorded(
            f"{what} but its record was not stored, so the state store's golden targets "
            f"for this tile are stale and a restore would not bring it back: {exc}"
        )
    tiles = sorted({p.request.tile for p in programs if isinstance(p.request, ProgramRequest)})
    return ProgramNotRecorded(
        f"{len(programs)} Programs reached the board (tiles {', '.join(map(str, tiles))}; "
        f"the first: {what}) but their records were not stored, so the state store's "
        f"golden targets for these tiles are stale and a restore would not bring them "
        f"back: {exc}"
    )
