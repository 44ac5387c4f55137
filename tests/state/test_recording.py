"""What the store keeps of board calls recorded behind a job: runs of Programs stored
together, in order, all or nothing, on a real SQLite file."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from state_support import REPORT, TEST_BOARD, targets

from sidra.drivers import Region, WriteCounts
from sidra.drivers.requests import ProgramRequest, ReadWriteCountsRequest
from sidra.server.jobs.recorder import BehindRecorder
from sidra.server.recording import Recording, store_in_order
from sidra.server.state import ProgramNotRecorded, ProgramWrite, StateStore

SERIAL = TEST_BOARD.serial_number


class CountingStore(StateStore):
    """A real store that notes the size of every record_programs call (a transaction)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.transactions: list[int] = []

    def record_programs(self, writes: Sequence[ProgramWrite]) -> None:
        self.transactions.append(len(writes))
        super().record_programs(writes)


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    store = CountingStore(tmp_path / "state.sqlite3")
    store.note_board(TEST_BOARD, "boot-a")
    return store


def _program(store: StateStore, tile: int, g: np.ndarray, at: tuple[int, int]) -> Recording:
    request = ProgramRequest(tile, g, *at)
    return Recording(store, TEST_BOARD, "boot-a", request, REPORT, "job")


def test_runs_of_programs_are_stored_in_one_transaction_each_in_order(
    store: CountingStore,
) -> None:
    rng = np.random.default_rng(1)
    first = [_program(store, 0, targets(rng, (4, 4)), (0, 0)) for _ in range(3)]
    counts = WriteCounts(np.full((2, 2), 7, np.uint32), 1000)
    reading = Recording(
        store, TEST_BOARD, "boot-a", ReadWriteCountsRequest(1, Region(0, 0, 2, 2)), counts, "job"
    )
    then = [_program(store, 1, targets(rng, (2, 3)), (5, 6)) for _ in range(2)]
    done: list[str] = []
    store_in_order([*first, reading, lambda: done.append("other"), *then])

    assert store.transactions == [3, 2]  # the write counts and the other call split the runs
    assert done == ["other"]
    history = store.history()
    # One record per run of Programs of one region (sidra.server.state.history).
    assert [(r.tile, r.programs) for r in history] == [(0, 3), (1, 2)]
    assert {r.principal for r in history} == {"job"}
    last = then[-1].request
    assert isinstance(last, ProgramRequest)
    golden = store.golden(SERIAL, 1).targets_us[5:7, 6:9]
    assert golden.tobytes() == last.conductances.tobytes()  # the later write wins
    assert store.write_counts(SERIAL, 1).counts[:2, :2].tolist() == [[7, 7], [7, 7]]


def test_a_run_the_store_refuses_names_every_program_and_stores_none(
    store: CountingStore,
) -> None:
    rng = np.random.default_rng(2)
    run = [
        _program(store, 0, targets(rng, (3, 3)), (0, 0)),
        _program(store, 2, targets(rng, (1, 1)), (9, 9)),
    ]
    store.close()  # the file can no longer be written: a real sqlite3 failure
    with pytest.raises(ProgramNotRecorded) as caught:
        store_in_order(run)
    message = str(caught.value)
    assert "2 Programs reached the board (tiles 0, 2; the first: tile 0" in message
    assert "rows 0..2 cols 0..2" in message and "records were not stored" in message


def test_a_recording_alone_is_stored_at_once(store: CountingStore) -> None:
    g = targets(np.random.default_rng(3), (2, 2))
    _program(store, 2, g, (1, 1))()
    assert store.transactions == [1]
    assert store.golden(SERIAL, 2).targets_us[1:3, 1:3].tobytes() == g.tobytes()


def test_a_job_recorder_hands_what_was_queued_meanwhile_to_one_run(store: CountingStore) -> None:
    rng = np.random.default_rng(4)
    recordings = [_program(store, 0, targets(rng, (4, 4)), (k, k)) for k in range(40)]
    # A long gathering time: drain ends it, so the batch is every recording.
    recorder = BehindRecorder("test-recorder", run=store_in_order, gather_s=30.0)
    for recording in recordings:
        recorder.record(recording)
    recorder.drain()
    assert recorder.batches == 1 and store.transactions == [40]
    assert [r.region.row_offset for r in store.history()] == list(range(40))


def test_recordings_queued_apart_run_apart(store: CountingStore) -> None:
    rng = np.random.default_rng(5)
    recorder = BehindRecorder("test-recorder", run=store_in_order, gather_s=0.0)
    for k in range(3):
        recorder.record(_program(store, 0, targets(rng, (2, 2)), (k, 0)))
        deadline = time.monotonic() + 10
        while len(store.transactions) == k and time.monotonic() < deadline:
            time.sleep(0.001)  # stored before the next is queued
    recorder.drain()
    assert store.transactions == [1, 1, 1] and recorder.batches == 3


def test_the_board_instance_stored_is_the_one_the_call_ran_on(store: CountingStore) -> None:
    g = targets(np.random.default_rng(6), (2, 2))
    recording = dataclasses.replace(_program(store, 0, g, (0, 0)), boot_id="boot-b")
    store_in_order([recording])
    assert store.history()[0].boot_id == "boot-b"
    assert store.board(SERIAL).last_boot_id == "boot-b"
