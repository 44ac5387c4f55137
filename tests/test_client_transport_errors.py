"""What a client says when no server answered for it: a server gone, a deadline passed,
a client already closed. In the client's words, naming the call, the server and the
timeout; gRPC's own words follow in brackets. The same from the sync, asyncio and
in-process boards."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from sidra.client import BoardUnavailable, connect
from sidra.client.aio import connect as aio_connect
from sidra.drivers import DeadlineExceeded, open_board
from sidra.emulator import preset
from sidra.emulator.driver import EmulatorDriver
from sidra.server import create_server

VOLTS = np.zeros((1, 256), np.float32)


def test_a_server_gone_is_named_with_the_call_and_its_address() -> None:
    server, port = create_server(EmulatorDriver(preset("ideal")), "127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{port}"
    with connect(address) as board:
        board.mvm(0, VOLTS)
        server.stop(grace=None).wait()
        with pytest.raises(BoardUnavailable) as caught:
            board.mvm(0, VOLTS)
    said = str(caught.value)
    assert said.startswith(f"UNAVAILABLE: MVM to {address}: the server cannot be reached")
    assert "is sidra serve running there?" in said and "[gRPC: " in said


def test_a_deadline_passed_names_the_client_s_timeout() -> None:
    server, port = create_server(EmulatorDriver(preset("sidra-y1")), "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as board:
            board.mvm(0, VOLTS)  # (the sizes the service takes are learnt)
            board.timeout_s = 0.001
            with pytest.raises(DeadlineExceeded) as caught:
                board.mvm(0, np.zeros((4096, 256), np.float32))
    finally:
        server.stop(grace=None)
    said = str(caught.value)
    assert said.startswith(f"DEADLINE_EXCEEDED: MVM to 127.0.0.1:{port}: no answer within")
    assert "0.001 s (the client's timeout_s" in said


def test_a_closed_client_says_so_on_every_board() -> None:
    """It raised gRPC's ValueError (sync), UsageError (asyncio), or kept working (in
    process)."""
    server, port = create_server(EmulatorDriver(preset("ideal")), "127.0.0.1:0")
    server.start()
    try:
        board = connect(f"127.0.0.1:{port}")
        board.close()
        with pytest.raises(BoardUnavailable, match=r"the client of 127\.0\.0\.1:\d+ is closed"):
            board.mvm(0, VOLTS)
        with pytest.raises(BoardUnavailable, match="is closed"):
            board.health()
        for call in (
            board.session, board.leases, board.caller, board.tile_use,
            lambda: board.close_session("0" * 32), lambda: board.jobs.list(),
            lambda: board.deployments.list(),
        ):  # fmt: skip
            with pytest.raises(BoardUnavailable, match="is closed"):
                call()

        async def aio() -> None:
            remote = await aio_connect(f"127.0.0.1:{port}")
            await remote.close()
            with pytest.raises(BoardUnavailable, match="is closed"):
                await remote.mvm(0, VOLTS)
            for call in (
                remote.session, remote.leases, remote.caller, remote.tile_use,
                lambda: remote.close_session("0" * 32), lambda: remote.jobs.list(),
                lambda: remote.deployments.list(),
            ):  # fmt: skip
                with pytest.raises(BoardUnavailable, match="is closed"):
                    await call()

        asyncio.run(aio())
    finally:
        server.stop(grace=None)
    local = open_board("emu://?preset=ideal")
    local.close()
    with pytest.raises(BoardUnavailable, match="emulated board EMU-IDEAL-0 is closed"):
        local.mvm(0, VOLTS)


def test_jobs_and_deployments_kept_past_close_say_the_client_is_closed() -> None:
    """A ``board.jobs`` taken before ``close()`` held the channel itself: its next call
    raised gRPC's "Cannot invoke RPC on closed channel!" (ValueError; asyncio: UsageError)."""
    server, port = create_server(EmulatorDriver(preset("ideal")), "127.0.0.1:0")
    server.start()
    try:
        board = connect(f"127.0.0.1:{port}")
        jobs, deployments = board.jobs, board.deployments
        assert jobs.list() == []  # working before close (deployments need a state store)
        board.close()
        for call in (jobs.list, deployments.list, lambda: jobs.get("0" * 32)):
            with pytest.raises(BoardUnavailable, match=r"127\.0\.0\.1:\d+ is closed"):
                call()

        async def aio() -> None:
            remote = await aio_connect(f"127.0.0.1:{port}")
            jobs, deployments = remote.jobs, remote.deployments
            assert await jobs.list() == []
            await remote.close()
            for call in (jobs.list, deployments.list):
                with pytest.raises(BoardUnavailable, match="is closed"):
                    await call()

        asyncio.run(aio())
    finally:
        server.stop(grace=None)


def test_boolean_voltages_are_refused_alike_here_and_through_a_server() -> None:
    """In process a dtype refusal; through a server the client made them 1.0 V, and the
    server refused them as out of range."""
    from sidra.drivers import InvalidArgument

    bools = np.ones((2, 256), bool)
    server, port = create_server(EmulatorDriver(preset("ideal")), "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as remote, open_board("emu://?preset=ideal") as local:
            refusals = []
            for board in (local, remote):
                with pytest.raises(InvalidArgument) as caught:
                    board.mvm(0, bools)
                refusals.append((type(caught.value), caught.value.field))
    finally:
        server.stop(grace=None)
    assert refusals[0] == refusals[1] and refusals[0][1] == "voltages.dtype"


def test_calls_of_other_threads_when_the_client_closes_say_it_is_closed() -> None:
    """They said "the server ended the call unanswered: it is stopping or restarting"
    (CANCELLED), blaming a server that was fine: the client had closed itself."""
    import threading

    server, port = create_server(EmulatorDriver(preset("sidra-y1")), "127.0.0.1:0")
    server.start()
    try:
        board = connect(f"127.0.0.1:{port}", max_in_flight=2)
        v = np.full((1024, 256), 0.05, np.float32)
        board.mvm(0, v[:1])  # (the sizes the service takes are learnt)
        errors: list[BaseException] = []

        def calls() -> None:
            try:
                for _ in range(50):
                    board.mvm(0, v)
            except BaseException as exc:  # noqa: BLE001 - what each thread met, checked below
                errors.append(exc)

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.1)
        board.close()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        server.stop(grace=None)
    assert len(errors) == 4
    for error in errors:
        assert isinstance(error, BoardUnavailable), repr(error)
        assert "is closed (close() was called" in str(error), str(error)
