"""The service with a state store: a Program is stored before its RPC returns; restore."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc
import numpy as np
import pytest
from state_support import IDEAL_URL, served_with_store, targets

from sidra.client import BoardFault, connect
from sidra.drivers import FailedPrecondition, Region, open_board
from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import board_pb2_grpc as pb_grpc
from sidra.server.state import ProgramKind, StateStore, restore


def test_a_program_through_grpc_is_in_the_store_when_the_rpc_returns(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    g = targets(np.random.default_rng(1), (30, 40))
    with (
        open_board(IDEAL_URL) as board,
        StateStore(path) as store,
        served_with_store(board, store, principal_of=lambda context: "alice") as port,
        connect(f"127.0.0.1:{port}") as client,
    ):
        report = client.program(2, g, row_offset=100, col_offset=7)
        # Read from another connection while the server still runs: committed, not cached.
        with StateStore(path, read_only=True) as reader:
            golden, programmed = reader.golden(board.info.serial_number, 2)
            (record,) = reader.history()
    assert np.array_equal(golden[100:130, 7:47], g) and int(programmed.sum()) == g.size
    assert (record.tile, record.region) == (2, Region(100, 7, 30, 40))
    assert (record.principal, record.kind) == ("alice", ProgramKind.PROGRAM)
    assert (record.rms_error_us, record.pulses) == (report.rms_error_us, report.pulses)


def test_records_carry_the_board_instance_and_a_new_instance_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.sqlite3"
    with (
        open_board(IDEAL_URL) as board,
        StateStore(path) as store,
        served_with_store(board, store) as port,
        connect(f"127.0.0.1:{port}") as client,
    ):
        client.program(0, targets(np.random.default_rng(5), (2, 2)))
        (record,) = store.history()
        first = board.instance_id
        assert store.board(board.info.serial_number).last_boot_id == first
    assert record.boot_id == first and first.startswith("EMU-IDEAL-1/run-")
    assert "is instance" not in caplog.text  # a board new to the store: nothing lost

    # The same serial number, a new instance (a restarted emulator): the store says
    # what it last saw, so the operator learns that a restore is due.
    with open_board(IDEAL_URL) as again, StateStore(path) as store, served_with_store(again, store):
        assert store.board(again.info.serial_number).last_boot_id == again.instance_id != first
    assert f"last recorded as {first}" in caplog.text and "sidra serve --restore" in caplog.text


def test_a_new_instance_is_not_warned_of_when_nothing_was_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.sqlite3"
    with open_board(IDEAL_URL) as board, StateStore(path) as store, served_with_store(board, store):
        pass  # served, nothing written
    with open_board(IDEAL_URL) as again, StateStore(path) as store, served_with_store(again, store):
        pass
    assert "is instance" not in caplog.text  # nothing was programmed: nothing to restore

    with (
        open_board(IDEAL_URL) as board,
        StateStore(path) as store,
        served_with_store(board, store) as port,
        connect(f"127.0.0.1:{port}") as client,
    ):
        client.program(1, targets(np.random.default_rng(6), (3, 3)))
    with open_board(IDEAL_URL) as again, StateStore(path) as store:
        restore(again, store)  # as `sidra serve --restore` does before it serves
        with served_with_store(again, store):
            pass
    assert "is instance" not in caplog.text  # restored into the instance it serves


def test_write_counts_read_through_the_service_are_kept(tmp_path: Path) -> None:
    with (
        open_board(IDEAL_URL) as board,
        StateStore(tmp_path / "state.sqlite3") as store,
        served_with_store(board, store) as port,
        connect(f"127.0.0.1:{port}") as client,
    ):
        client.program(0, targets(np.random.default_rng(2), (4, 4)), row_offset=1, col_offset=1)
        read = client.read_write_counts(0, Region(0, 0, 6, 6)).counts
        counts, was_read = store.write_counts(board.info.serial_number, 0)
    assert np.array_equal(counts[:6, :6], read) and int(read.sum()) == 16
    assert int(was_read.sum()) == 36


def test_a_program_whose_record_fails_is_an_error_that_says_the_board_was_programmed(
    tmp_path: Path,
) -> None:
    g = targets(np.random.default_rng(3), (8, 8))
    with (
        open_board(IDEAL_URL) as board,
        StateStore(tmp_path / "state.sqlite3") as store,
        served_with_store(board, store) as port,
        connect(f"127.0.0.1:{port}") as client,
    ):
        store.close()  # the store can no longer be written: a real sqlite3 failure
        with pytest.raises(BoardFault) as caught:
            client.program(1, g, row_offset=2, col_offset=3)
        on_board = client.read_conductance(1, Region(2, 3, 8, 8)).conductances
    message = str(caught.value)
    assert "tile 1 was programmed on the board" in message
    assert "record was not stored" in message and "rows 2..9 cols 3..10" in message
    assert np.array_equal(on_board, g)  # what the message says is what happened


def test_the_failure_is_internal_status_with_the_exception_named(tmp_path: Path) -> None:
    with (
        open_board(IDEAL_URL) as board,
        StateStore(tmp_path / "state.sqlite3") as store,
        served_with_store(board, store) as port,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        store.close()
        g = np.full((1, 1), 5.0, np.float32)
        request = pb.ProgramRequest(
            tile=0, conductances=pb.Tensor(data=g.tobytes(), dtype=pb.DTYPE_FLOAT32, shape=[1, 1])
        )
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.BoardServiceStub(channel).Program(request)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "ProgramNotRecorded" in str(caught.value.trailing_metadata())


def test_restore_brings_every_tile_back_bit_for_bit_on_a_fresh_board(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    writes = [
        (0, 0, 0, targets(rng, (256, 256))),
        (0, 10, 10, targets(rng, (20, 30))),  # over the first
        (2, 50, 60, targets(rng, (40, 17))),
        (2, 70, 70, targets(rng, (5, 100))),  # partly over the one before
    ]
    path = tmp_path / "state.sqlite3"
    with (
        open_board(IDEAL_URL) as board,
        StateStore(path) as store,
        served_with_store(board, store) as port,
        connect(f"127.0.0.1:{port}") as client,
    ):
        for tile, r0, c0, g in writes:
            client.program(tile, g, row_offset=r0, col_offset=c0)
        before = [board.read_conductance(t).conductances for t in range(4)]

    # The server is gone; a fresh board with the same serial number is at power-up.
    with open_board(IDEAL_URL) as fresh, StateStore(path) as store:
        at_power_up = fresh.read_conductance(1).conductances
        report = restore(fresh, store)
        after = [fresh.read_conductance(t).conductances for t in range(4)]
        golden = [store.golden(fresh.info.serial_number, t) for t in range(4)]
        restores = [r for r in store.history() if r.kind is ProgramKind.RESTORE]

    for tile in range(4):
        assert after[tile].tobytes() == before[tile].tobytes(), f"tile {tile}"
        targets_us, programmed = golden[tile]
        assert np.array_equal(after[tile][programmed], targets_us[programmed])
    assert np.array_equal(after[1], at_power_up)  # never programmed: left alone
    assert [t.tile for t in report.tiles] == [0, 2] and report.untouched_tiles == (1, 3)
    assert report.cells == 256 * 256 + int(golden[2].programmed.sum())
    assert {r.boot_id for r in restores} == {fresh.instance_id} == {report.boot_id}
    assert len(restores) == sum(t.programs for t in report.tiles)
    assert "tile 2:" in report.describe()


def test_restore_of_a_board_the_store_never_saw_writes_nothing(tmp_path: Path) -> None:
    with open_board(IDEAL_URL) as board, StateStore(tmp_path / "state.sqlite3") as store:
        report = restore(board, store)
        assert board.stats().cell_writes == 0
    assert not report.known and report.cells == 0
    assert "not in the state store" in report.describe()


@pytest.mark.parametrize(
    ("recorded", "says"),
    [
        ({"rows": 128}, r"geometry \(tiles, rows, cols\): got \(4, 256, 256\), expected \(4, 128"),
        # Emulated boards of every preset answered EMU-<seed>: a store that kept an ideal
        # board's targets must not write them to a sidra-y1 board served in its place.
        ({"model": "SIDRA-Y1"}, r"model: got 'SIDRA-IDEAL', expected 'SIDRA-Y1'"),
        ({"g_max_us": 25.0}, r"conductance window \(g_min_us, g_max_us\): got \(1\.0, 40\.0\)"),
    ],
)
def test_restore_refuses_a_board_that_is_not_the_one_recorded(
    tmp_path: Path, recorded: dict[str, object], says: str
) -> None:
    with open_board(IDEAL_URL) as board, StateStore(tmp_path / "state.sqlite3") as store:
        store.note_board(dataclasses.replace(board.info, **recorded), "boot-a")
        store.record_program(
            board.info.serial_number, 0, 0, 0, np.full((2, 2), 5.0, np.float32),
            board.program(0, np.full((2, 2), 5.0, np.float32)), "local", "boot-a",
        )  # fmt: skip
        writes = board.stats().cell_writes
        with pytest.raises(FailedPrecondition, match=says):
            restore(board, store)
        assert board.stats().cell_writes == writes


def test_restore_takes_a_window_recorded_at_float32_precision(tmp_path: Path) -> None:
    """A serial board's HELLO carries its window as float32, a PCIe board's registers as
    float64: the same board reached both ways is restored."""
    with open_board(IDEAL_URL) as board, StateStore(tmp_path / "state.sqlite3") as store:
        g_max = board.info.g_max_us + 1e-6  # 40.000001 µS: float32 holds it as 40.0
        assert float(np.float32(g_max)) == board.info.g_max_us
        store.note_board(dataclasses.replace(board.info, g_max_us=g_max), "boot-a")
        assert restore(board, store).known
