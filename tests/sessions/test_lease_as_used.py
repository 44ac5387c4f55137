"""Sessions that lease tiles as they are used (``session(lease_as_used=True)``), and the
training commands that run in one over a server: the tiles a run uses are its own from
their first use to its end, on real servers on loopback."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from cli_support import SIDRA, served

from sidra.cli.job_board import HOLDING_TTL_S
from sidra.client import LeaseHeld, OutOfRange, RemoteBoard, connect
from sidra.client.aio import connect as aio_connect
from sidra.drivers import Region, open_board
from sidra.drivers.requests import MVMRequest, ProgramRequest, SequenceRequest
from sidra.server import create_server
from sidra.server.settings import LeaseSettings

G = np.full((4, 4), 20.0, np.float32)
V = np.full((1, 4), 0.1, np.float32)


def leased(board: RemoteBoard) -> dict[int, str]:
    """Each leased tile's session label."""
    return {lease.tile: lease.label for lease in board.leases()}


def test_each_tile_is_leased_at_its_first_use_and_kept_to_the_end() -> None:
    with served("emu://?preset=ideal&seed=4") as watcher, connect(watcher.address) as run:
        with run.session(label="study", lease_as_used=True) as session:
            assert leased(watcher) == {}  # nothing used yet, nothing held
            run.program(1, G)
            assert session.state.tiles == (1,) and leased(watcher) == {1: "study"}
            run.mvm(1, V, Region(0, 0, 4, 4))  # held already: no second lease
            run.read_conductance(np.int64(0), Region(0, 0, 2, 2))  # a tile from an array
            assert leased(watcher) == {0: "study", 1: "study"}
            run.run(SequenceRequest((ProgramRequest(2, G), MVMRequest(3, np.zeros((1, 256))))))
            assert leased(watcher) == {0: "study", 1: "study", 2: "study", 3: "study"}
            with pytest.raises(LeaseHeld, match="leased to local's session 'study'"):
                watcher.program(2, G)  # another client: refused while the run holds it
            with pytest.raises(OutOfRange, match="tile"):  # the call's own refusal
                run.program(9, G)
            assert 9 not in session.state.tiles
        assert leased(watcher) == {}  # the session's end ends its leases


def test_a_tile_another_session_holds_stops_the_call_naming_the_holder() -> None:
    with (
        served("emu://?preset=ideal&seed=4") as holder,
        holder.session(label="overnight", ttl_s=60) as held,
        held.lease([0]),
        connect(holder.address) as run,
        run.session(label="late", lease_as_used=True),
    ):
        before = holder.read_conductance(0, Region(0, 0, 4, 4)).conductances
        with pytest.raises(LeaseHeld, match="held by local's session 'overnight'"):
            run.program(0, np.full((4, 4), 33.0, np.float32))
        after = holder.read_conductance(0, Region(0, 0, 4, 4)).conductances
        assert np.array_equal(before, after)  # refused before anything was sent


def test_the_async_client_leases_as_used_too() -> None:
    with served("emu://?preset=ideal&seed=4") as watcher:

        async def run() -> dict[int, str]:
            async with (
                await aio_connect(watcher.address) as board,
                await board.session(label="async study", lease_as_used=True),
            ):
                await asyncio.gather(board.program(2, G), board.program(3, G))
                return leased(watcher)

        assert asyncio.run(run()) == {2: "async study", 3: "async study"}
        assert leased(watcher) == {}


def test_a_training_run_over_a_server_holds_its_tiles_until_it_ends(tmp_path: Path) -> None:
    with served("emu://?preset=ideal&seed=4") as watcher:
        run = subprocess.Popen(
            [*SIDRA, "train", "spsa", "--server", watcher.address, "--tile", "2",
             "--steps", "1000000", "--out", str(tmp_path / "run"), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while leased(watcher) != {2: "sidra train spsa"}:
                assert run.poll() is None and time.monotonic() < deadline, run.stderr
                time.sleep(0.1)
            with pytest.raises(LeaseHeld, match="'sidra train spsa'"):
                watcher.program(2, G)
            (lease,) = watcher.leases()
            held_for_s = lease.expires_in_s
            run.send_signal(signal.SIGINT)  # stops after the step under way, record kept
            out, err = run.communicate(timeout=60)
        finally:
            run.kill()
        assert run.returncode == 130, err
        assert json.loads(out)["placement"] == {"layer": [2]}
        assert 30 < held_for_s <= HOLDING_TTL_S  # longer than the default: stalls survive
        assert leased(watcher) == {}  # its session closed with the run
        watcher.program(2, G)  # and the tile is anyone's again


@contextmanager
def stoppable(url: str, **settings: Any) -> Iterator[tuple[str, grpc.Server]]:
    """A board served in this process with ``settings`` (create_server's): its address,
    and its server to stop mid-test."""
    with open_board(url) as local:
        server, port = create_server(local, "127.0.0.1:0", **settings)
        server.start()
        try:
            yield f"127.0.0.1:{port}", server
        finally:
            server.stop(grace=None).wait()


def test_leaving_a_session_on_an_error_keeps_that_error(tmp_path: Path) -> None:
    """The server gone mid-run: closing the session fails too, and must not hide the
    run's own error (for a training command: the steps kept and how to go on)."""
    with (
        stoppable("emu://?preset=ideal&seed=4") as (address, server),
        connect(address) as board,
        pytest.raises(ZeroDivisionError),
        board.session(label="doomed", lease_as_used=True) as session,
        session.lease([1]),
    ):
        board.program(1, G)
        server.stop(grace=None).wait()
        raise ZeroDivisionError  # the body's error, not the close's BoardUnavailable

    with stoppable("emu://?preset=ideal&seed=4") as (address, server), connect(address) as board:
        run = subprocess.Popen(
            [*SIDRA, "train", "spsa", "--server", address, "--steps", "1000000",
             "--out", str(tmp_path / "run")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not leased(board):
                assert run.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(1)
            server.stop(grace=None).wait()
            _, err = run.communicate(timeout=60)
        finally:
            run.kill()
    said = " ".join(err.split())
    assert run.returncode == 1, said
    assert f"the same command with --out {tmp_path / 'run'} --resume goes on" in said
    assert "the session holding the run's tiles was not closed" in said


def test_a_server_allowing_shorter_sessions_gives_the_run_its_default(tmp_path: Path) -> None:
    with stoppable("emu://?preset=ideal&seed=4", leases=LeaseSettings(max_ttl_s=60)) as (
        address, _,
    ):  # fmt: skip
        done = subprocess.run(
            [*SIDRA, "train", "spsa", "--server", address, "--steps", "3",
             "--out", str(tmp_path / "run"), "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == 3
