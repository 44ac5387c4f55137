"""The program history counts a run of Programs of one region in one record
(sidra.server.state.history): a training loop that programs its layer at every step
leaves one record per run, not one per step, while every Program stays counted and the
golden maps exact."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from state_support import REPORT, TEST_BOARD, store_of_schema

from sidra.drivers import ProgramReport
from sidra.server.state import ProgramKind, StateStore
from sidra.server.state.history import COALESCE_WINDOW, COALESCE_WITHIN_S
from sidra.server.state.records import ProgramWrite
from tests.cli_support import run_sidra

SERIAL = TEST_BOARD.serial_number
START = datetime(2026, 12, 4, 9, 0, 0, tzinfo=UTC)


class Clock:
    """The store's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite3", clock=clock) as opened:
        opened.note_board(TEST_BOARD, "boot-a")
        yield opened


def _program(
    store: StateStore,
    at: tuple[int, int] = (0, 0),
    shape: tuple[int, int] = (4, 3),
    *,
    tile: int = 0,
    principal: str = "alice",
    boot_id: str = "boot-a",
    report: ProgramReport = REPORT,
    value: float = 10.0,
) -> None:
    targets = np.full(shape, value, np.float32)
    store.record_program(SERIAL, tile, *at, targets, report, principal, boot_id)


def _records(store: StateStore) -> list[tuple[int, int, int, int]]:
    """(tile, row_offset, col_offset, programs) of each record, oldest first."""
    return [(r.tile, r.region.row_offset, r.region.col_offset, r.programs) for r in store.history()]


def test_a_run_of_programs_of_one_region_is_one_record(store: StateStore, clock: Clock) -> None:
    worse = REPORT.__class__(
        cells_written=5, verify_iterations=9, pulses=7, rms_error_us=0.5, max_error_us=2.0,
        unconverged_cells=4, cells_over_budget=2,
    )  # fmt: skip
    for step in range(100):
        clock.now = START + timedelta(seconds=step * 0.5)
        _program(store, report=worse if step == 40 else REPORT, value=10.0 + step)
    (record,) = store.history()
    assert record.programs == 100
    assert (record.first_utc, record.time_utc) == (START, START + timedelta(seconds=49.5))
    # Sums of the work, the worst of the errors.
    assert record.cells_written == 99 * REPORT.cells_written + 5
    assert record.pulses == 99 * REPORT.pulses + 7
    assert record.cells_over_budget == 99 * REPORT.cells_over_budget + 2
    assert (record.verify_iterations, record.rms_error_us, record.max_error_us) == (9, 0.5, 2.0)
    assert record.unconverged_cells == 4
    assert store.golden(SERIAL, 0).targets_us[0, 0] == 109.0  # every Program's targets
    (board,) = store.summary()
    assert board.tiles[0].programs == 100  # Programs counted, not records


def test_two_layers_on_one_tile_keep_a_record_each(store: StateStore) -> None:
    """An mlp's two layers programmed in turn: regions apart, so neither splits the other's run."""
    for _ in range(50):
        _program(store, (0, 0), (8, 4))
        _program(store, (8, 4), (4, 2))
    assert _records(store) == [(0, 0, 0, 50), (0, 8, 4, 50)]


def test_a_write_over_part_of_the_region_splits_the_run(store: StateStore) -> None:
    """The history stays true to which write came last in each cell."""
    _program(store)
    _program(store)
    _program(store, (2, 1), (1, 1), principal="bob")  # one cell of alice's region
    _program(store)
    assert _records(store) == [(0, 0, 0, 2), (0, 2, 1, 1), (0, 0, 0, 1)]


@pytest.mark.parametrize(
    "other",
    [
        {"principal": "bob"},
        {"boot_id": "boot-b"},  # the board restarted between them
        {"shape": (4, 4)},  # another region
        {"tile": 1},
    ],
)
def test_programs_that_differ_in_who_boot_or_region_are_apart(
    store: StateStore, other: dict[str, object]
) -> None:
    _program(store)
    _program(store, **other)  # type: ignore[arg-type]
    _program(store)
    # Another tile's record does not split a run: the run's record moves past it.
    expected = [1, 2] if "tile" in other else [1, 1, 1]
    assert [r.programs for r in store.history()] == expected


def test_programs_further_apart_than_the_window_are_apart(store: StateStore, clock: Clock) -> None:
    _program(store)
    clock.now = START + timedelta(seconds=COALESCE_WITHIN_S - 1)
    _program(store)  # counted
    clock.now += timedelta(seconds=COALESCE_WITHIN_S)
    _program(store)  # a minute after the last: a record of its own
    assert [r.programs for r in store.history()] == [2, 1]


def test_only_the_tile_s_latest_records_are_looked_among(store: StateStore) -> None:
    _program(store, (0, 0), (1, 1))
    for k in range(COALESCE_WINDOW):  # other regions, none overlapping the first
        _program(store, (1 + k, 0), (1, 1))
    _program(store, (0, 0), (1, 1))
    assert [r.programs for r in store.history()] == [1] * (COALESCE_WINDOW + 2)


def test_a_batch_of_a_job_s_recorder_is_counted_the_same(store: StateStore) -> None:
    writes = [
        ProgramWrite(SERIAL, 0, 0, 0, np.full((4, 3), v, np.float32), REPORT, "job", "boot-a")
        for v in range(10)
    ]
    store.record_programs(writes[:4])
    store.record_programs(writes[4:])
    (record,) = store.history()
    assert (record.principal, record.programs) == ("job", 10)
    restores = [
        ProgramWrite(
            SERIAL, 0, 0, 0, np.ones((4, 3), np.float32), REPORT, "sidra", "boot-a",
            ProgramKind.RESTORE,
        )
        for _ in range(2)
    ]  # fmt: skip
    store.record_programs(restores)
    assert [(r.kind, r.programs) for r in store.history()] == [
        (ProgramKind.PROGRAM, 10),
        (ProgramKind.RESTORE, 2),
    ]


def test_two_runs_of_one_region_alike_in_every_field_stay_two_records(store: StateStore) -> None:
    """Within one batch (one time), a run of two, a write over part of it, and a second
    run of two have equal fields: each is moved and written as itself."""

    def region(at: int) -> ProgramWrite:
        return ProgramWrite(
            SERIAL, 0, at, at, np.ones((2, 2), np.float32), REPORT, "job", "boot-a"
        )  # fmt: skip

    store.record_programs([region(0), region(0), region(1), region(0), region(0)])
    assert _records(store) == [(0, 0, 0, 2), (0, 1, 1, 1), (0, 0, 0, 2)]


def test_a_long_run_leaves_one_row(store: StateStore, tmp_path: Path) -> None:
    """What the history costs a training loop: 3000 Programs, one row (before: 3000)."""
    for _ in range(3000):
        _program(store, (0, 0), (2, 2))
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    try:
        assert db.execute("SELECT count(*), sum(programs) FROM programs").fetchone() == (1, 3000)
    finally:
        db.close()


def test_records_of_a_store_before_counting_read_as_one_program_each(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = store_of_schema(path, 4)
    db.execute(
        "INSERT INTO boards VALUES ('TEST-1', 'SIDRA-TEST', 3, 64, 48, 1.0, 40.0, ?, ?, 'boot-a')",
        (START.isoformat(), START.isoformat()),
    )
    db.execute(
        "INSERT INTO programs (board_serial, tile, row_offset, col_offset, rows, cols, "
        "principal, time_utc, boot_id, kind, cells_written, verify_iterations, pulses, "
        "rms_error_us, max_error_us, unconverged_cells, cells_over_budget) VALUES "
        "('TEST-1', 0, 0, 0, 4, 3, 'alice', ?, 'boot-a', 'program', 12, 3, 40, 0.1, 0.5, 0, 0)",
        (START.isoformat(),),
    )
    db.commit()
    db.close()
    clock = Clock()
    clock.now = START + timedelta(seconds=1)
    with StateStore(path, clock=clock) as store:
        (old,) = store.history()
        assert (old.programs, old.first_utc, old.time_utc) == (1, START, START)
        _program(store)  # counted into the old record: the same run
        (record,) = store.history()
        assert (record.programs, record.first_utc) == (2, START)


def test_sidra_state_history_shows_the_count(store: StateStore, clock: Clock) -> None:
    for step in range(3):
        clock.now = START + timedelta(seconds=step)
        _program(store)
    done = run_sidra("state", "history", "--store", str(store.path), "--json")
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(done.stdout)
    assert (record["programs"], record["first_utc"]) == (3, START.isoformat())
    assert record["time_utc"] == (START + timedelta(seconds=2)).isoformat()
    table = run_sidra("state", "history", "--store", str(store.path))
    assert table.returncode == 0
    assert "(1 record of 3 Programs)" in table.stdout
