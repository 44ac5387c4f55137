"""The state store on real SQLite files: golden maps, history, write counts, schema, export."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from state_support import REPORT, TEST_BOARD, store_of_schema, targets

from sidra.drivers import InvalidArgument, Region
from sidra.server.state import (
    SCHEMA_VERSION,
    ProgramKind,
    ProgramWrite,
    StateStore,
    StateStoreError,
)
from sidra.server.state.maps import rectangles
from tests.cli_support import run_sidra

SERIAL = TEST_BOARD.serial_number
SHAPE = (TEST_BOARD.rows, TEST_BOARD.cols)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state.sqlite3")
    store.note_board(TEST_BOARD, "boot-a")
    return store


def test_a_new_store_is_wal_with_full_sync_foreign_keys_and_the_current_schema(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deeper" / "state.sqlite3"  # the folder is created too
    with StateStore(path) as store:
        db = store._db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert store.integrity_check() == "ok"
    with sqlite3.connect(path) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_golden_targets_round_trip_bit_for_bit_through_the_file(
    store: StateStore, tmp_path: Path
) -> None:
    g = targets(np.random.default_rng(1), SHAPE)
    # Values float32 holds exactly but decimal text would not: the blob keeps every bit.
    g[0, :4] = [np.nextafter(np.float32(1), np.float32(2)), 39.999996, 1.0, 40.0]
    store.record_program(SERIAL, 1, 0, 0, g, REPORT, "alice", "boot-a")
    store.close()
    with StateStore(tmp_path / "state.sqlite3", read_only=True) as again:
        golden, programmed = again.golden(SERIAL, 1)
    assert golden.dtype == np.float32 and golden.shape == SHAPE
    assert golden.tobytes() == g.tobytes()
    assert programmed.all()


def test_never_programmed_cells_are_marked_and_a_region_updates_only_itself(
    store: StateStore,
) -> None:
    rng = np.random.default_rng(2)
    first, second = targets(rng, (10, 20)), targets(rng, (8, 8))
    store.record_program(SERIAL, 2, 5, 10, first, REPORT, "alice", "boot-a")
    store.record_program(SERIAL, 2, 12, 25, second, REPORT, "bob", "boot-a")  # overlaps first

    golden, programmed = store.golden(SERIAL, 2)
    expected = np.zeros(SHAPE, np.float32)
    expected[5:15, 10:30] = first
    expected[12:20, 25:33] = second
    assert np.array_equal(golden, expected)
    mask = np.zeros(SHAPE, bool)
    mask[5:15, 10:30] = mask[12:20, 25:33] = True
    assert np.array_equal(programmed, mask)
    # Other tiles are untouched and wholly unprogrammed.
    untouched, none_programmed = store.golden(SERIAL, 0)
    assert not none_programmed.any() and not untouched.any()


def _map_as_documented(path: Path, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """A tile's golden map read with sqlite3 alone, as the schema's docstring says: the
    golden row (or zeros) with the patches written over it in id order."""
    targets, mask = np.zeros(SHAPE, "<f4"), np.zeros(SHAPE, bool)
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT targets_us, programmed FROM golden WHERE board_serial = ? AND tile = ?",
            (SERIAL, tile),
        ).fetchone()
        if row is not None:
            targets = np.frombuffer(row[0], "<f4").reshape(SHAPE).copy()
            mask = np.frombuffer(row[1], np.uint8).reshape(SHAPE).astype(bool)
        for r0, c0, rows, cols, blob in db.execute(
            "SELECT row_offset, col_offset, rows, cols, targets_us FROM golden_patches "
            "WHERE board_serial = ? AND tile = ? ORDER BY id",
            (SERIAL, tile),
        ):
            targets[r0 : r0 + rows, c0 : c0 + cols] = np.frombuffer(blob, "<f4").reshape(rows, cols)
            mask[r0 : r0 + rows, c0 : c0 + cols] = True
    return targets, mask


def test_programs_are_patches_folded_into_the_map_now_and_then(tmp_path: Path) -> None:
    """Each Program stores its region as a patch; the 64th patch of a tile folds them all
    into the tile's golden row, and so does a Program that covers the tile. At every
    step the store's map, the summary's count and the map read with sqlite3 alone agree
    with a model."""
    from sidra.server.state.store import FOLD_PATCHES

    path = tmp_path / "state.sqlite3"
    store = StateStore(path)
    store.note_board(TEST_BOARD, "boot-a")
    rng = np.random.default_rng(5)
    model, programmed = np.zeros(SHAPE, np.float32), np.zeros(SHAPE, bool)

    def patches() -> int:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT count(*) FROM golden_patches").fetchone()[0])

    for k in range(FOLD_PATCHES + 10):
        if k == FOLD_PATCHES + 5:
            r0, c0, g = 0, 0, targets(rng, SHAPE)  # the whole tile
        else:
            r0, c0 = int(rng.integers(0, SHAPE[0] - 8)), int(rng.integers(0, SHAPE[1] - 4))
            g = targets(rng, (8, 4))
        store.record_program(SERIAL, 1, r0, c0, g, REPORT, "alice", "boot-a")
        model[r0 : r0 + len(g), c0 : c0 + g.shape[1]] = g
        programmed[r0 : r0 + len(g), c0 : c0 + g.shape[1]] = True
        since_fold = (k + 1) % FOLD_PATCHES if k < FOLD_PATCHES + 5 else k - FOLD_PATCHES - 5
        assert patches() == since_fold
        golden, mask = store.golden(SERIAL, 1)
        assert golden.tobytes() == model.tobytes() and np.array_equal(mask, programmed)
        documented, documented_mask = _map_as_documented(path, 1)
        assert documented.tobytes() == model.tobytes()
        assert np.array_equal(documented_mask, programmed)
        (board,) = store.summary()
        assert board.tiles[1].programmed_cells == int(programmed.sum())
    store.close()


def test_history_keeps_order_and_every_figure(tmp_path: Path) -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ticks = iter(start + timedelta(seconds=s) for s in range(100))
    store = StateStore(tmp_path / "state.sqlite3", clock=lambda: next(ticks))
    store.note_board(TEST_BOARD, "boot-a")
    rng = np.random.default_rng(3)
    calls = [
        (0, 0, 0, (4, 4), "alice", "boot-a", REPORT),
        (1, 10, 20, (3, 5), "bob", "boot-a", dataclasses.replace(REPORT, rms_error_us=0.25)),
        (0, 60, 40, (4, 8), "alice", "boot-b", dataclasses.replace(REPORT, pulses=7)),
    ]
    for tile, r0, c0, shape, who, boot, report in calls:
        store.record_program(SERIAL, tile, r0, c0, targets(rng, shape), report, who, boot)

    records = store.history()
    assert [r.id for r in records] == sorted(r.id for r in records)
    for record, (tile, r0, c0, shape, who, boot, report) in zip(records, calls, strict=True):
        assert (record.board_serial, record.tile) == (SERIAL, tile)
        assert record.region == Region(r0, c0, *shape)
        assert (record.principal, record.boot_id, record.kind) == (who, boot, ProgramKind.PROGRAM)
        assert (record.rms_error_us, record.max_error_us) == (report.rms_error_us, 0.5)
        assert (record.pulses, record.verify_iterations) == (report.pulses, 3)
        assert (record.cells_written, record.unconverged_cells) == (12, 1)
    assert [r.time_utc for r in records] == [start + timedelta(seconds=s) for s in (1, 2, 3)]
    assert [r.principal for r in store.history(tile=0)] == ["alice", "alice"]
    assert [r.tile for r in store.history(limit=2)] == [1, 0]  # the latest two, oldest first
    assert store.history(board_serial="OTHER") == []
    assert store.board(SERIAL).last_boot_id == "boot-b"


def _writes(rng: np.random.Generator) -> list[ProgramWrite]:
    """Overlapping Programs on two tiles, from two boots: later ones must win."""
    report = dataclasses.replace(REPORT, pulses=7)
    return [
        ProgramWrite(SERIAL, 0, 0, 0, targets(rng, (8, 8)), REPORT, "alice", "boot-a"),
        ProgramWrite(SERIAL, 1, 10, 20, targets(rng, (3, 5)), report, "bob", "boot-a"),
        ProgramWrite(SERIAL, 0, 4, 4, targets(rng, (8, 8)), REPORT, "alice", "boot-a"),
        ProgramWrite(SERIAL, 0, 6, 2, targets(rng, (2, 9)), REPORT, "job", "boot-b"),
    ]


def test_programs_stored_together_are_what_the_same_programs_stored_one_by_one_are(
    tmp_path: Path,
) -> None:
    writes = _writes(np.random.default_rng(4))
    one_by_one = StateStore(tmp_path / "one.sqlite3")
    together = StateStore(tmp_path / "together.sqlite3")
    for store in (one_by_one, together):
        store.note_board(TEST_BOARD, "boot-a")
    for w in writes:
        one_by_one.record_program(
            w.board_serial, w.tile, w.row_offset, w.col_offset, w.targets_us, w.report,
            w.principal, w.boot_id,
        )  # fmt: skip
    together.record_programs(writes)

    for tile in (0, 1, 2):
        expected, got = one_by_one.golden(SERIAL, tile), together.golden(SERIAL, tile)
        assert got.targets_us.tobytes() == expected.targets_us.tobytes()
        assert np.array_equal(got.programmed, expected.programmed)

    def history(store: StateStore) -> list[tuple[object, ...]]:
        fields = ("tile", "region", "principal", "boot_id", "kind", "pulses", "rms_error_us")
        return [tuple(getattr(r, f) for f in fields) for r in store.history()]

    assert history(together) == history(one_by_one) and len(history(together)) == 4
    assert together.board(SERIAL).last_boot_id == "boot-b"  # the last write's boot
    assert [t.programmed_cells for t in together.summary()[0].tiles[:2]] == [112, 15]


def test_many_programs_stored_together_keep_their_order(store: StateStore) -> None:
    rng = np.random.default_rng(6)
    writes = [
        ProgramWrite(SERIAL, k % 3, k % 60, 0, targets(rng, (2, 3)), REPORT, f"p{k}", "boot-a")
        for k in range(130)  # three INSERT statements' worth of history rows
    ]
    store.record_programs(writes)
    history = store.history()
    assert [r.principal for r in history] == [f"p{k}" for k in range(130)]
    assert [r.id for r in history] == sorted(r.id for r in history)
    last = writes[-1]  # k = 129: tile 0, rows 9..10, the latest write there
    golden = store.golden(SERIAL, 0).targets_us[9:11, :3]
    assert golden.tobytes() == last.targets_us.tobytes()


def test_programs_stored_together_are_all_or_nothing(store: StateStore) -> None:
    writes = _writes(np.random.default_rng(5))
    off_the_tile = dataclasses.replace(writes[2], row_offset=60)  # rows 60..67 of 64
    with pytest.raises(InvalidArgument, match="row"):
        store.record_programs([*writes[:2], off_the_tile, writes[3]])
    bad = writes[1].targets_us.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidArgument, match=r"writes\[1\]\.targets_us"):
        store.record_programs([writes[0], dataclasses.replace(writes[1], targets_us=bad)])
    assert store.history() == []  # neither call stored anything
    assert not store.golden(SERIAL, 0).programmed.any()
    store.record_programs([])  # nothing to store: no transaction, no error


def test_note_board_returns_what_was_known_before(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite3")
    assert store.note_board(TEST_BOARD, "boot-a") is None
    before = store.note_board(TEST_BOARD, "boot-b")
    assert before is not None and before.last_boot_id == "boot-a"
    assert store.board(SERIAL).last_boot_id == "boot-b"
    assert [b.serial_number for b in store.boards()] == [SERIAL]


def test_write_counts_as_last_read_by_region(store: StateStore) -> None:
    store.record_write_counts(SERIAL, 0, 2, 3, np.full((2, 2), 7, np.uint32))
    store.record_write_counts(SERIAL, 0, 3, 3, np.array([[9, 1]], np.uint32))
    counts, read = store.write_counts(SERIAL, 0)
    assert counts[2:4, 3:5].tolist() == [[7, 7], [9, 1]]
    assert int(read.sum()) == 4 and counts.dtype == np.uint32
    with pytest.raises(InvalidArgument, match="counts"):
        store.record_write_counts(SERIAL, 0, 0, 0, np.array([[-1]]))


def test_bad_records_name_the_field_and_store_nothing(store: StateStore) -> None:
    g = np.ones((4, 4), np.float32)
    with pytest.raises(StateStoreError, match="board_serial: got 'NOPE'.*'TEST-1'"):
        store.record_program("NOPE", 0, 0, 0, g, REPORT, "alice", "boot-a")
    with pytest.raises(InvalidArgument, match=r"tile: got 3, expected a tile index in \[0, 2\]"):
        store.record_program(SERIAL, 3, 0, 0, g, REPORT, "alice", "boot-a")
    outside = r"col_offset: got 46, expected an offset in \[0, 44\] \(4 cols of 48\)"
    with pytest.raises(InvalidArgument, match=outside):
        store.record_program(SERIAL, 0, 0, 46, g, REPORT, "alice", "boot-a")
    with pytest.raises(InvalidArgument, match="targets"):
        store.record_program(SERIAL, 0, 0, 0, np.full((2, 2), np.nan), REPORT, "a", "b")
    assert store.history() == []
    assert not store.golden(SERIAL, 0).programmed.any()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    StateStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    with pytest.raises(StateStoreError, match=f"schema_version: got {SCHEMA_VERSION + 1}"):
        StateStore(path)


def test_a_store_of_a_schema_this_version_cannot_read_says_what_to_do(tmp_path: Path) -> None:
    """An admin who rolled SIDRA HIL back over a store the newer one migrated was told
    `(a store written by a newer SIDRA HIL, or no store)` by `sidra state`, and nothing
    of what to do; a server, `state check` and `state restore` each worded it otherwise."""
    from sidra.server.state.upkeep import check_store

    newer = tmp_path / "state.sqlite3"
    StateStore(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    said = (
        f"schema_version: got {SCHEMA_VERSION + 1}, expected 1 .. {SCHEMA_VERSION}: the store "
        "was written by a newer SIDRA HIL, which this one cannot read; run that version "
        "again, or `sidra state restore` a backup of it taken before that version migrated it"
    )
    for read_only in (False, True):  # a server opening it, and `sidra state show`
        with pytest.raises(StateStoreError) as refused:
            StateStore(newer, read_only=read_only)
        assert str(refused.value).endswith(said)
    assert check_store(newer).problems == (said,)
    empty = tmp_path / "other.sqlite3"
    with sqlite3.connect(empty) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StateStoreError) as refused:
        StateStore(empty, read_only=True)
    assert "newer" not in str(refused.value)
    assert str(refused.value).endswith(
        f"schema_version: got 0, expected 1 .. {SCHEMA_VERSION}: no SIDRA HIL state store "
        "there (no schema_version rows: an empty file?)"
    )


def test_a_reader_reads_an_older_store_through_a_migrated_copy_and_leaves_it(
    tmp_path: Path,
) -> None:
    """``sidra state`` after an upgrade, before any server opened the store: it reads,
    and the file stays of its own schema (a server migrates it when it opens it)."""
    path = tmp_path / "old.sqlite3"
    db = store_of_schema(path, 3)
    when = "2026-12-01T09:00:00+00:00"
    db.execute(
        "INSERT INTO boards VALUES ('TEST-1', 'SIDRA-TEST', 3, 64, 48, 1.0, 40.0, ?, ?, 'b')",
        (when, when),
    )
    db.execute(
        "INSERT INTO programs (board_serial, tile, row_offset, col_offset, rows, cols, "
        "principal, time_utc, boot_id, kind, cells_written, verify_iterations, pulses, "
        "rms_error_us, max_error_us, unconverged_cells, cells_over_budget) VALUES "
        "('TEST-1', 0, 0, 0, 4, 3, 'alice', ?, 'b', 'program', 12, 3, 40, 0.1, 0.5, 0, 0)",
        (when,),
    )
    db.commit()
    db.close()
    before = path.read_bytes()
    with StateStore(path, read_only=True) as reader:
        (record,) = reader.history()
        assert (record.principal, record.programs) == ("alice", 1)
        assert record.first_utc == record.time_utc == datetime.fromisoformat(when)
        (board,) = reader.summary()
        assert board.tiles[0].programs == 1
        assert (reader.usage().history_records, reader.usage().jobs) == (1, 0)
    assert path.read_bytes() == before
    shown = run_sidra("state", "history", "--store", str(path), "--json")
    assert shown.returncode == 0, shown.stderr
    assert [r["principal"] for r in json.loads(shown.stdout)] == ["alice"]


def test_a_store_of_schema_5_keeps_its_jobs_through_the_rebuild_of_their_table(
    tmp_path: Path,
) -> None:
    """Schema 6 rebuilds the jobs table (a job may be queued), which events and record
    files refer to: every row comes through, and the references are enforced after."""
    from sidra.server.state.jobs import JobRecords

    path = tmp_path / "v5.sqlite3"
    db = store_of_schema(path, 5)
    db.execute(
        "INSERT INTO jobs VALUES ('a1', 'spsa', 'alice', 'iris', '{}', 'succeeded', 1.0, 2.0, "
        "3.0, 12, 12, '', '', '[0]', 0, '{\"final_accuracy\": 0.9}')"
    )
    db.execute("INSERT INTO job_events VALUES ('a1', 0, 2.0, 'state', 0, 0, '', 'running')")
    db.execute("INSERT INTO job_files (job_id, name, content) VALUES ('a1', 'steps.csv', x'31')")
    db.commit()
    db.close()
    with StateStore(path) as store:
        records = JobRecords(store)
        job = records.get("a1", with_files=True)
        assert job is not None
        assert (job.state, job.tiles, job.events, job.files) == (
            "succeeded",
            (0,),
            1,
            {"steps.csv": b"1"},
        )
        assert records.queued() == []
        assert job.priority == 0  # schema 7: jobs stored before have the default
        assert store.integrity_check() == "ok"
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.execute("INSERT INTO job_events VALUES ('zz', 0, 1.0, 'log', 0, 0, '', '')")
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()


def test_schema_14_renames_emulated_boards_by_their_model_with_every_row_naming_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Emulated boards of every preset answered EMU-<seed>: a store of schema 13 keeps
    an ideal board's EMU-7 and a sidra-y1 board's EMU-8, renamed EMU-IDEAL-7 and
    EMU-Y1-8 (what those boards answer now) with their golden maps, history, write
    counts, deployments and checks; a lab's own serials, even EMU-like ones, are kept."""
    from sidra.server.state.deployments import DeploymentRecords

    path = tmp_path / "v13.sqlite3"
    db = store_of_schema(path, 13)
    when = "2026-12-01T09:00:00+00:00"
    boards = [("EMU-7", "SIDRA-IDEAL"), ("EMU-8", "SIDRA-Y1"), ("EMU-X1", "SIDRA-Y1"),
              ("LAB-0042", "SIDRA-Y1"), ("EMU-9", "LAB-BOARD")]  # fmt: skip
    for serial, model in boards:
        db.execute(
            "INSERT INTO boards VALUES (?, ?, 1, 2, 3, 1.0, 40.0, ?, ?, ?)",
            (serial, model, when, when, f"{serial}/run-1"),
        )
        targets_us = np.full((2, 3), 5.0, np.float32).tobytes()
        db.execute(
            "INSERT INTO golden VALUES (?, 0, 2, 3, ?, ?, 6, ?)",
            (serial, targets_us, b"\x01" * 6, when),
        )
        db.execute(
            "INSERT INTO programs (board_serial, tile, row_offset, col_offset, rows, cols, "
            "principal, time_utc, boot_id, kind, cells_written, verify_iterations, pulses, "
            "rms_error_us, max_error_us, unconverged_cells, cells_over_budget) VALUES "
            "(?, 0, 0, 0, 2, 3, 'alice', ?, 'b', 'program', 6, 3, 40, 0.1, 0.5, 0, 0)",
            (serial, when),
        )
        db.execute(
            "INSERT INTO write_counts VALUES (?, 0, 2, 3, ?, ?, ?)",
            (serial, np.ones((2, 3), np.uint32).tobytes(), b"\x01" * 6, when),
        )
        db.execute(
            "INSERT INTO deployments VALUES (?, 'net', 'alice', 1.0, '', x'00', ?, '[]', 0)",
            (serial, bytes(32)),
        )
        db.execute(
            "INSERT INTO deployment_checks (board_serial, name, checked_by, checked_unix_s, "
            "correlation, rms_deviation_us, mean_deviation_us, time_ns, energy_nj) VALUES "
            "(?, 'net', 'alice', 2.0, 1.0, 0.0, 0.0, 1.0, 1.0)",
            (serial,),
        )
    db.commit()
    db.close()
    renamed = {"EMU-7": "EMU-IDEAL-7", "EMU-8": "EMU-Y1-8", "EMU-9": "EMU-LAB-BOARD-9"}
    with StateStore(path) as store:
        assert sorted(b.serial_number for b in store.boards()) == sorted(
            renamed.get(serial, serial) for serial, _ in boards
        )
        for serial, model in boards:
            now = renamed.get(serial, serial)
            assert store.board(now).model == model
            assert store.golden(now, 0).targets_us.tolist() == [[5.0] * 3] * 2
            assert store.write_counts(now, 0).counts.sum() == 6
            assert [r.programs for r in store.history() if r.board_serial == now] == [1]
            (deployment,) = DeploymentRecords(store).of_board(now)
            assert len(DeploymentRecords(store).latest_checks(now)) == 1
            assert deployment.name == "net"
        with pytest.raises(StateStoreError):
            store.board("EMU-7")
        assert store.integrity_check() == "ok"
    assert f"state store {path} migrated from schema 13 to {SCHEMA_VERSION}" in caplog.text
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()


@pytest.mark.parametrize("read_only", [False, True])
def test_a_folder_is_refused_as_no_store_file(tmp_path: Path, read_only: bool) -> None:
    """sqlite says only "unable to open database file" of a folder."""
    with pytest.raises(StateStoreError, match="a folder, not a store file"):
        StateStore(tmp_path, read_only=read_only)


def test_read_only_opening_creates_nothing_and_refuses_writes(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(StateStoreError, match="no such file"):
        StateStore(missing, read_only=True)
    assert not missing.exists()
    StateStore(tmp_path / "state.sqlite3").close()
    with (
        StateStore(tmp_path / "state.sqlite3", read_only=True) as store,
        pytest.raises(StateStoreError, match="read-only"),
    ):
        store.note_board(TEST_BOARD, "boot-a")


def test_export_npz_holds_every_tile_with_its_masks(store: StateStore, tmp_path: Path) -> None:
    g = targets(np.random.default_rng(4), (5, 6))
    store.record_program(SERIAL, 1, 7, 8, g, REPORT, "alice", "boot-a")
    store.record_write_counts(SERIAL, 2, 0, 0, np.full((1, 3), 4, np.uint32))
    with np.load(store.export_npz(SERIAL, tmp_path / "golden.npz")) as saved:
        assert str(saved["board_serial"]) == SERIAL
        assert saved["targets_us"].shape == (3, *SHAPE)
        assert saved["targets_us"].dtype == np.float32
        assert np.array_equal(saved["targets_us"][1, 7:12, 8:14], g)
        assert int(saved["programmed"].sum()) == g.size
        assert saved["write_counts"][2, 0, :3].tolist() == [4, 4, 4]
        assert int(saved["counts_read"].sum()) == 3
    before = (tmp_path / "golden.npz").read_bytes()
    with pytest.raises(FileExistsError):  # a kept export is not written over
        store.export_npz(SERIAL, tmp_path / "golden.npz")
    assert (tmp_path / "golden.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_rectangles_cover_exactly_the_programmed_cells() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        mask = np.zeros((20, 30), bool)
        for _ in range(rng.integers(0, 5)):
            r, c = rng.integers(0, 20), rng.integers(0, 30)
            mask[r : r + rng.integers(1, 8), c : c + rng.integers(1, 12)] = True
        covered = np.zeros(mask.shape, int)
        for region in rectangles(mask):
            covered[region.slices] += 1
        assert np.array_equal(covered, mask.astype(int))  # every cell once, none outside
    whole = np.ones((20, 30), bool)
    assert rectangles(whole) == [Region(0, 0, 20, 30)]
