"""A board served with a state store on loopback, and waiting for a job's progress, for
the job tests (nothing collected here)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sidra.client import RemoteBoard
from sidra.drivers import Board, open_board
from sidra.server.app import create_server
from sidra.server.state import StateStore
from sidra.server.state.jobs import JobRecords, JobRow

IDEAL_URL = "emu://?preset=ideal&seed=0"


@contextmanager
def serving(store: Path, board: Board | str = IDEAL_URL, **server: Any) -> Iterator[str]:
    """``board`` (a board, or the URL of one opened here) served on loopback with its
    state in ``store`` (``create_server`` keyword arguments); yields ``host:port``."""
    if isinstance(board, str):
        with open_board(board) as opened, serving(store, opened, **server) as address:
            yield address
        return
    with StateStore(store) as state:
        grpc_server, port = create_server(board, store=state, **server)
        grpc_server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            grpc_server.stop(grace=None).wait()


def first_progress(client: RemoteBoard, job_id: str) -> int:
    """Waits for the job's first progress event; returns its index."""
    for event in client.jobs.watch(job_id):
        if event.kind == "progress":
            return event.index
        assert event.state != "failed", event.message
    raise AssertionError("the job ended before any progress")


def add_ended_job(
    records: JobRecords, job_id: str, ended_unix_s: float, summary: bytes = b"{}"
) -> None:
    """A job row that ran a minute and succeeded at ``ended_unix_s``, with its summary.json
    as a record file, as a server would have stored it."""
    row = JobRow(job_id, "spsa", "local", "iris", "{}", "running", ended_unix_s - 60.0)
    records.add(row)
    row.state, row.ended_unix_s = "succeeded", ended_unix_s
    records.update(row, [], {"summary.json": summary})
