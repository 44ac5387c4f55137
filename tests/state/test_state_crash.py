"""Crash safety: writers killed with SIGKILL at random points never corrupt the store or
lose an acknowledged record."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from crash_writer import BOARD, Replay

from sidra.server.state import StateStore

WRITER = Path(__file__).with_name("crash_writer.py")
KILLS = 20


def _acks(writer: subprocess.Popen[str], wanted: int) -> list[int]:
    """Reads ``wanted`` ack lines (the writer's numbers of committed records)."""
    assert writer.stdout is not None and writer.stderr is not None
    acks = []
    while len(acks) < wanted:
        line = writer.stdout.readline()
        if not line:
            raise AssertionError(f"the writer stopped by itself: {writer.stderr.read()}")
        acks.append(int(line.split()[1]))
    return acks


def _integrity(path: Path) -> str:
    # A plain sqlite3 connection, as any tool would open the file after the crash.
    with sqlite3.connect(path) as db:
        return "\n".join(row[0] for row in db.execute("PRAGMA integrity_check"))


def test_killed_writers_never_corrupt_the_store_or_lose_an_acknowledged_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.sqlite3"
    rng = np.random.default_rng(7)
    replay = Replay()
    unacknowledged_commits = 0
    for kill in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            acks = _acks(writer, wanted=int(rng.integers(1, 6)))
            time.sleep(rng.uniform(0.0, 0.02))  # a random point in the loop
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=60)
        # The rest through the same text stream _acks read from: its buffer may already
        # hold ack lines past those returned (communicate() reads the pipe underneath it,
        # and would miss them).
        assert writer.stdout is not None and writer.stderr is not None
        rest = writer.stdout.read()
        writer.stdout.close()
        writer.stderr.close()
        assert writer.returncode == -signal.SIGKILL
        acks += [int(line.split()[1]) for line in rest.splitlines()]
        last_acknowledged = acks[-1]

        with StateStore(path, read_only=True) as reader:  # `sidra state` before any restart
            read_only_history = reader.history()
        assert _integrity(path) == "ok", f"kill {kill}"
        with StateStore(path) as store:  # reopened as a restarted server would
            history = store.history()
            golden = [store.golden(BOARD.serial_number, t) for t in range(BOARD.tile_count)]
        # Every acknowledged record is there; at most one more, committed but killed
        # before its ack line was written.
        committed = len(history)
        # A reader that may not write (no WAL recovery) can miss the one commit a kill
        # interrupted before COMMIT returned, never an acknowledged one.
        assert read_only_history == history[: len(read_only_history)], f"kill {kill}"
        assert len(read_only_history) - 1 >= last_acknowledged, f"kill {kill}"
        assert committed - 1 in (last_acknowledged, last_acknowledged + 1), f"kill {kill}"
        unacknowledged_commits += committed - 1 - last_acknowledged
        assert [r.boot_id for r in history] == [f"run-{k}" for k in range(committed)]
        expected = replay.after(committed)
        for tile, (targets_us, programmed) in enumerate(golden):
            assert targets_us.tobytes() == expected.targets_us[tile].tobytes(), f"kill {kill}"
            assert np.array_equal(programmed, expected.programmed[tile]), f"kill {kill}"
    print(f"{KILLS} kills, {replay.applied} records, {unacknowledged_commits} committed unacked")
