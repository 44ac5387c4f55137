"""What a caller gives the client library itself is checked before anything is sent, and
refused naming the option, the value and what is allowed (sidra.client.options):
connect's options in both clients, the call sizes set later, tiles to lease and a
shared-memory size. Before, a max_in_flight of 0 made the asyncio client wait for ever,
a max_batch of 0 failed inside the batch cutter, a negative tile was protobuf's
ValueError."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sidra.client import RemoteBoard, connect
from sidra.client.aio import connect as aio_connect
from sidra.client.options import MIN_MESSAGE_BYTES
from sidra.drivers import InvalidArgument, open_board
from sidra.server import create_server
from sidra.server.settings import SharedMemorySettings


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    with open_board("emu://?preset=ideal") as local:
        server, port = create_server(
            local, "127.0.0.1:0", shared_memory=SharedMemorySettings(enabled=True)
        )
        server.start()
        try:
            yield f"127.0.0.1:{port}"
        finally:
            server.stop(grace=None)


BAD_CONNECT_OPTIONS = [
    ("max_in_flight", 0),
    ("max_in_flight", -1),
    ("max_in_flight", 2.5),
    ("max_batch", 0),
    ("max_batch", -5),
    ("max_batch", True),
    ("server_max_message_bytes", 0),
    ("server_max_message_bytes", MIN_MESSAGE_BYTES - 1),
    ("max_message_bytes", 0),
    ("timeout_s", -1),
    ("timeout_s", 0),
    ("timeout_s", math.inf),
    ("timeout_s", "10"),
    ("wait_ready_s", -1),
    ("wait_ready_s", math.nan),
]


@pytest.mark.parametrize(("option", "value"), BAD_CONNECT_OPTIONS)
def test_connect_refuses_an_option_naming_it(address: str, option: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as refused:
        connect(address, **{option: value})
    assert (refused.value.field, refused.value.value) == (option, value)

    async def run() -> None:
        with pytest.raises(InvalidArgument) as refused:
            await aio_connect(address, **{option: value})
        assert refused.value.field == option

    asyncio.run(run())


def test_the_smallest_sizes_are_taken(address: str) -> None:
    with connect(
        address, max_batch=1, max_in_flight=1, server_max_message_bytes=MIN_MESSAGE_BYTES
    ) as board:
        assert (board.max_batch, board.max_in_flight) == (1, 1)
        assert board.message_limit_bytes == MIN_MESSAGE_BYTES


@pytest.mark.parametrize(
    ("size", "value"),
    [
        ("max_batch", 0),
        ("max_batch", -1),
        ("chunk_bytes", 0),
        ("chunk_bytes", -1),
        ("message_limit_bytes", MIN_MESSAGE_BYTES - 1),
        ("message_limit_bytes", "big"),
    ],
)
def test_a_size_set_later_is_checked_and_the_old_one_kept(
    address: str, size: str, value: Any
) -> None:
    with connect(address) as board:
        before = getattr(board, size)
        with pytest.raises(InvalidArgument) as refused:
            setattr(board, size, value)
        assert (refused.value.field, refused.value.value) == (size, value)
        assert getattr(board, size) == before


@pytest.mark.parametrize("tiles", [[-1], ["a"], [0, 1.5], 7])
def test_tiles_to_lease_are_tile_indices(address: str, tiles: Any) -> None:
    with connect(address) as board, board.session() as session:
        with pytest.raises(InvalidArgument) as refused:
            session.lease(tiles)
        assert refused.value.field == "tiles"
        assert board.leases() == []  # nothing reached the server


@pytest.mark.parametrize("wait_s", [math.inf, math.nan, -1.0, "5"])
def test_a_lease_wait_is_a_finite_number_of_seconds(address: str, wait_s: Any) -> None:
    """An infinite wait made the call's deadline infinite: gRPC refused it at once as
    DEADLINE_EXCEEDED, which named nothing."""
    with connect(address) as board, board.session() as session:
        with pytest.raises(InvalidArgument) as refused:
            session.lease([0], wait_s=wait_s)
        assert (refused.value.field, refused.value.allowed) == (
            "wait_s", "a finite number of seconds >= 0",
        )  # fmt: skip
        assert board.leases() == []

    async def run() -> None:
        async with await aio_connect(address) as board, await board.session() as session:
            with pytest.raises(InvalidArgument) as refused:
                await session.lease([0], wait_s=wait_s)
            assert refused.value.field == "wait_s"

    asyncio.run(run())


JOB_CALLS = [
    ("lease_wait_s", math.inf, lambda jobs: jobs.submit("spsa", {}, lease_wait_s=math.inf)),
    ("lease_wait_s", math.nan, lambda jobs: jobs.submit("spsa", {}, lease_wait_s=math.nan)),
    ("kind", None, lambda jobs: jobs.submit(None, {})),
    ("dataset", None, lambda jobs: jobs.submit("spsa", {}, dataset=None)),
    ("job_id", None, lambda jobs: jobs.get(None)),
    ("job_id", 7, lambda jobs: jobs.cancel(7)),
    ("job_id", "", lambda jobs: jobs.get("")),  # asked of the server: NotFound "no job ''"
]


@pytest.mark.parametrize(("field", "value", "call"), JOB_CALLS)
def test_job_calls_refuse_what_protobuf_would_send_otherwise(
    address: str, field: str, value: Any, call: Any
) -> None:
    """An infinite lease wait made an infinite deadline (DEADLINE_EXCEEDED at once); None
    for a text field went out as "" and came back as "no job ''"."""
    with connect(address) as board, pytest.raises(InvalidArgument) as refused:
        call(board.jobs)
    assert refused.value.field == field
    assert refused.value.value is value

    async def run() -> None:
        async with await aio_connect(address) as board:
            with pytest.raises(InvalidArgument) as refused:
                await call(board.jobs)
            assert refused.value.field == field

    asyncio.run(run())


@pytest.mark.parametrize("size_bytes", [0, -1, 1.5])
def test_a_shared_memory_size_is_a_positive_number_of_bytes(address: str, size_bytes: Any) -> None:
    board: RemoteBoard
    with connect(address) as board, board.session():
        with pytest.raises(InvalidArgument) as refused:
            board.shared_memory(size_bytes)
        assert (refused.value.field, refused.value.value) == ("size_bytes", size_bytes)


def test_a_shared_pass_needs_arrays_placed_in_a_region(address: str) -> None:
    with connect(address) as board, board.session(), board.shared_memory(8192) as shm:
        placed = shm.array((2, 256))
        plain = np.zeros((2, 256), np.float32)
        for inputs, outputs, field in ((plain, placed, "inputs"), (placed, None, "outputs")):
            with pytest.raises(InvalidArgument) as refused:
                board.mvm_shared(0, inputs, outputs)  # type: ignore[arg-type]
            assert refused.value.field == field


def test_a_job_watched_from_a_negative_index_is_refused(address: str) -> None:
    with connect(address) as board:
        with pytest.raises(InvalidArgument) as refused:
            next(iter(board.jobs.watch("0" * 16, from_index=-1)))
        assert (refused.value.field, refused.value.value) == ("from_index", -1)

    async def run() -> None:
        async with await aio_connect(address) as board:
            with pytest.raises(InvalidArgument):
                async for _ in board.jobs.watch("0" * 16, from_index=-1):
                    pass

    asyncio.run(run())


@pytest.mark.parametrize("depth", [0, -3, 1.5])
def test_a_stream_depth_is_at_least_one_item(address: str, depth: Any) -> None:
    """It was taken as 1 whatever it was."""
    v = np.zeros((1, 256), np.float32)
    with connect(address) as board:
        with pytest.raises(InvalidArgument) as refused:
            list(board.mvm_stream(0, [v], depth=depth))
        assert (refused.value.field, refused.value.value) == ("depth", depth)

    async def run() -> None:
        async with await aio_connect(address) as board:
            with pytest.raises(InvalidArgument):
                async for _ in board.mvm_stream(0, [v], depth=depth):
                    pass

    asyncio.run(run())
