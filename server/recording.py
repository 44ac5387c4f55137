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

    def __call__(self) -> None:
        write = self.program_write()
        if write is not None:
            try:
                self.store.record_programs([write])
            except Exception as exc:
                raise _not_recorded([write], exc) from exc
        elif isinstance(self.request, ReadWriteCountsRequest) and isinstance(
            self.result, WriteCounts
        ):
            self._store_write_counts(self.request, self.result)

    def program_write(self) -> ProgramWrite | None:
        """The Program this call wrote, as the store takes it; None for other calls."""
        if not isinstance(self.request, ProgramRequest) or not isinstance(
            self.result, ProgramReport
        ):
            return None
        # The request in the canonical form the board was given (float32 targets).
        done = self.request.checked(self.info)
        return ProgramWrite(
            self.info.serial_number, done.tile, done.row_offset, done.col_offset,
            done.conductances, self.result, self.principal, self.boot_id,
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
    run: list[ProgramWrite] = []
    store: StateStore | None = None
    for recording in recordings:
        write = recording.program_write() if isinstance(recording, Recording) else None
        if write is not None and isinstance(recording, Recording):
            if store is not None and recording.store is not store:
                _store_run(store, run)
                run = []
            store = recording.store
            run.append(write)
            continue
        if store is not None:
            _store_run(store, run)
            run, store = [], None
        recording()
    if store is not None:
        _store_run(store, run)


def _store_run(store: StateStore, writes: list[ProgramWrite]) -> None:
    try:
        store.record_programs(writes)
    except Exception as exc:
        raise _not_recorded(writes, exc) from exc


def _not_recorded(writes: Sequence[ProgramWrite], exc: Exception) -> ProgramNotRecorded:
    """The error of Programs the board holds but the store failed to keep."""
    # The board holds the new targets; saying only "failed" would invite a client to
    # believe the tile unchanged.
    first = writes[0]
    rows, cols = first.targets_us.shape
    what = (
        f"tile {first.tile} was programmed on the board (rows {first.row_offset}.."
        f"{first.row_offset + rows - 1}, cols {first.col_offset}.."
        f"{first.col_offset + cols - 1}, rms error {first.report.rms_error_us:.4g} µS)"
    )
    if len(writes) > 1:
        tiles = sorted({write.tile for write in writes})
        what = (
            f"{len(writes)} Programs reached the board (tiles {', '.join(map(str, tiles))}; "
            f"the first: {what})"
        )
    return ProgramNotRecorded(
        f"{what} but {'their records were' if len(writes) > 1 else 'its record was'} not "
        f"stored, so the state store's golden targets for "
        f"{'these tiles' if len(writes) > 1 else 'this tile'} are stale and a restore "
        f"would not bring {'them' if len(writes) > 1 else 'it'} back: {exc}"
    )
