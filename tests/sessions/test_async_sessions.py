"""The asyncio client's sessions through a real server on loopback, as the sync client's
are in test_leases_served.py: a heartbeat task that keeps a session past its time to
live, a session left to expire (its lease freed, a beat after it SessionClosed, its
close not an error), a heartbeat task that learns the server ended its session, and a
release that reports the tiles it restored.

The board is the ideal emulator, so "restored" is checked bit for bit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from sidra.client import connect
from sidra.client.aio import AsyncRemoteBoard
from sidra.client.aio import connect as aio_connect
from sidra.drivers.errors import SessionClosed
from tests.server.security_support import served


@pytest.fixture
def address() -> Iterator[str]:
    with served() as port:
        yield f"127.0.0.1:{port}"


async def _targets(board: AsyncRemoteBoard, seed: int) -> np.ndarray:
    info = await board.info()
    rng = np.random.default_rng(seed)
    return rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)).astype(np.float32)


async def _until_free(board: AsyncRemoteBoard, timeout_s: float = 15.0) -> None:
    """Until no tile is leased (a session expiring on the server)."""
    end = time.monotonic() + timeout_s
    while await board.leases():
        assert time.monotonic() < end, "the lease never expired"
        await asyncio.sleep(0.05)


def test_a_heartbeating_async_session_outlives_its_ttl(address: str) -> None:
    async def run() -> None:
        async with await aio_connect(address) as alice, await aio_connect(address) as bob:
            async with await alice.session(ttl_s=1.0, label="es") as session:
                await session.lease([3])
                await asyncio.sleep(2.5)  # 2.5 times the time to live; beats every 0.33 s
                assert [(x.tile, x.label) for x in await bob.leases()] == [(3, "es")]
                assert session.lost is None
                state = await session.heartbeat()  # by hand too: the server's answer
                assert state.tiles == (3,) and state.ttl_s == 1.0
                assert 0.0 < state.expires_in_s <= 1.0
            assert await bob.leases() == []  # closed with the session

    asyncio.run(run())


def test_an_async_session_left_to_expire_frees_its_tile(address: str) -> None:
    async def run() -> None:
        async with await aio_connect(address) as alice, await aio_connect(address) as bob:
            g = await _targets(alice, 2)
            session = await alice.session(ttl_s=1.0, heartbeat=False)  # a client that stalls
            await session.lease([0])
            await alice.program(0, g)
            await alice.perturb(0, seed=7, amplitude_us=2.0)
            await _until_free(bob)
            read = await bob.read_conductance(0)
            np.testing.assert_array_equal(read.conductances, g)  # restored when it expired
            with pytest.raises(SessionClosed):
                await session.heartbeat()
            assert await session.close() == ()  # ended on the server already: no error
            await alice.program(0, g)  # no session now

    asyncio.run(run())


def test_the_heartbeat_task_learns_the_server_ended_the_session(address: str) -> None:
    async def run() -> None:
        async with await aio_connect(address) as alice:
            session = await alice.session(ttl_s=1.0)
            await session.lease([1])
            with connect(address) as admin:  # without [auth] every caller may close it
                assert admin.close_session(session.id) == ()
            end = time.monotonic() + 10.0
            while session.lost is None:
                assert time.monotonic() < end, "the heartbeat never noticed"
                await asyncio.sleep(0.05)
            assert isinstance(session.lost, SessionClosed)
            assert await session.close() == ()

    asyncio.run(run())


def test_an_async_release_reports_what_it_restored(address: str) -> None:
    async def run() -> None:
        async with await aio_connect(address) as alice:
            g = await _targets(alice, 3)
            async with await alice.session() as session:
                async with await session.lease([0, 1]) as lease:
                    await alice.program(0, g)
                    await alice.program(1, g)
                    await alice.perturb(1, seed=5, amplitude_us=1.5)
                assert lease.restored == (1,)
                read = await alice.read_conductance(1)
                np.testing.assert_array_equal(read.conductances, g)
                assert session.state.tiles == ()

    asyncio.run(run())
