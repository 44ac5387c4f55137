"""AsyncRemoteBoard: the same methods and answers as the synchronous client, as
coroutines; calls in flight together; the same exceptions; tokens."""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidra.client import (
    FailedPrecondition,
    InvalidArgument,
    LeaseHeld,
    OutOfRange,
    Region,
    connect,
)
from sidra.client.aio import AsyncRemoteBoard
from sidra.client.aio import connect as aio_connect
from sidra.drivers import BoardDriver, BoardUnavailable, open_board
from sidra.drivers.operations import BoardMethods
from sidra.server import create_server
from sidra.server.security import Role, add_principal
from tests.server.security_support import served as served_with

# The tables of the conformance suite (not a package: its folder is put on the path).
sys.path.insert(0, str(Path(__file__).with_name("conformance")))
from bad_requests import TYPED  # noqa: E402


def test_every_board_method_is_a_coroutine_of_the_same_signature() -> None:
    public = [n for n in vars(BoardMethods) if not n.startswith("_") and n not in ("run", "info")]
    for name in public:
        method = getattr(AsyncRemoteBoard, name)
        if inspect.isgeneratorfunction(getattr(BoardMethods, name)):  # mvm_stream
            # An async iterator, with the same parameters and the client's stream depth.
            assert inspect.isasyncgenfunction(method), name
            theirs = list(inspect.signature(getattr(BoardMethods, name)).parameters)
            assert list(inspect.signature(method).parameters) == [*theirs, "depth"], name
            continue
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(getattr(BoardMethods, name)), name


_SYNC_ONLY = {
    "channel": "an attribute of each instance (grpc.aio.Channel)",
    "run_step": "the Board interface's step of a sequence the server runs",
}


def test_the_async_client_has_every_member_of_the_sync_one_with_its_parameters() -> None:
    """Beyond the board methods: sessions, shared memory, jobs, the instance id; each
    async where the sync one may call the server, with the same parameters."""
    from sidra.client import RemoteBoard
    from sidra.client.aio_jobs import AsyncJobs
    from sidra.client.jobs import Jobs

    pairs = ((RemoteBoard, AsyncRemoteBoard, _SYNC_ONLY), (Jobs, AsyncJobs, {}))
    for cls, async_cls, only in pairs:
        for name in [n for n in dir(cls) if not n.startswith("_") and n not in only]:
            assert hasattr(async_cls, name), f"{async_cls.__name__}.{name}"
            ours, theirs = getattr(async_cls, name), getattr(cls, name)
            if not callable(theirs) or isinstance(theirs, property):
                continue
            same = list(inspect.signature(theirs).parameters)
            assert list(inspect.signature(ours).parameters) == same, name


def test_an_mvm_stream_answers_as_the_synchronous_clients(
    served: tuple[BoardDriver, int],
) -> None:
    """Batches through the asyncio client's MVMStream, from a list and from an async
    iterator: each result equals the blocking client's unary pass, in order."""
    address = f"127.0.0.1:{served[1]}"
    rng = np.random.default_rng(6)

    async def run() -> None:
        with connect(address) as sync:
            info = sync.info
            g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols))
            sync.program(2, g.astype(np.float32))
            batches = [rng.uniform(-0.1, 0.1, (3, info.rows)).astype(np.float32) for _ in range(9)]
            expected = [sync.mvm(2, v).currents for v in batches]

            async def produced() -> Any:
                for v in batches:
                    yield v

            async with await aio_connect(address) as board:
                listed = [r.currents async for r in board.mvm_stream(2, batches, depth=2)]
                drawn = [r.currents async for r in board.mvm_stream(2, produced())]
        for got in (listed, drawn):
            assert len(got) == len(expected)
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_array_equal(a, b)

    asyncio.run(run())


def test_a_program_and_read_larger_than_one_message_go_as_row_bands() -> None:
    """Through a server of 96 KiB messages the asyncio client programs a whole tile (256
    KiB) and reads it back, both as row bands, exactly (ideal board)."""
    small = 96 * 2**10
    with open_board("emu://?preset=ideal&seed=1") as driver:
        server, port = create_server(driver, "127.0.0.1:0", max_message_bytes=small)
        server.start()
        try:

            async def run() -> np.ndarray:
                address = f"127.0.0.1:{port}"
                async with await aio_connect(address, server_max_message_bytes=small) as board:
                    info = await board.info()
                    rng = np.random.default_rng(7)
                    g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols))
                    g = g.astype(np.float32)
                    report = await board.program(1, g)
                    assert report.cells_written == info.rows * info.cols
                    read = await board.read_conductance(1)
                    np.testing.assert_array_equal(read.conductances, g)
                    return g

            g = asyncio.run(run())
            np.testing.assert_array_equal(driver.read_conductance(1).conductances, g)
        finally:
            server.stop(grace=None)


def test_answers_equal_the_synchronous_clients(served: tuple[BoardDriver, int]) -> None:
    address = f"127.0.0.1:{served[1]}"
    rng = np.random.default_rng(5)

    async def run() -> None:
        with connect(address) as sync:
            info = sync.info
            g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols))
            v = rng.uniform(-0.1, 0.1, (16, info.rows)).astype(np.float32)
            async with await aio_connect(address) as board:
                assert await board.instance_id() == sync.instance_id  # asked before any call
                assert await board.info() == info
                report = await board.program(1, g.astype(np.float32))
                assert report.rms_error_us == sync.program(1, g.astype(np.float32)).rms_error_us
                np.testing.assert_array_equal(
                    (await board.read_conductance(1)).conductances,
                    sync.read_conductance(1).conductances,
                )
                np.testing.assert_array_equal(
                    (await board.mvm(1, v)).currents, sync.mvm(1, v).currents
                )
                back = v[:, : info.cols]
                np.testing.assert_array_equal(
                    (await board.transpose_mvm(1, back)).currents,
                    sync.transpose_mvm(1, back).currents,
                )
                region = Region(2, 3, 4, 5)
                scoped = (await board.mvm(1, v[:, :4], region)).currents
                assert scoped.shape == (16, 5)
                np.testing.assert_array_equal(scoped, sync.mvm(1, v[:, :4], region).currents)
                scoped_t = (await board.transpose_mvm(1, v[:, :5], region)).currents
                assert scoped_t.shape == (16, 4)
                await board.perturb(1, seed=9, amplitude_us=1.0, region=region)
                perturbed = sync.read_conductance(1, region).conductances
                await board.restore(1, region)
                restored = (await board.read_conductance(1, region)).conductances
                assert not np.array_equal(perturbed, restored)
                counts = await board.read_write_counts(1, region)
                np.testing.assert_array_equal(
                    counts.counts, sync.read_write_counts(1, region).counts
                )
                await board.calibrate(1)
                clock = sync.stats().clock_s
                assert await board.advance_clock(2.0) == pytest.approx(clock + 2.0)
                assert (await board.stats()).clock_s == sync.stats().clock_s

    asyncio.run(run())


def test_calls_in_flight_together_each_get_their_own_answer(
    served: tuple[BoardDriver, int],
) -> None:
    address = f"127.0.0.1:{served[1]}"

    async def run() -> None:
        async with await aio_connect(address) as board:
            info = await board.info()
            # More than the server's default max_in_flight (4): the rest wait in the client.
            batches = [np.full((1 + k, info.rows), 0.01 * k, np.float32) for k in range(8)]
            results = await asyncio.gather(*(board.mvm(0, v) for v in batches))
            for v, result in zip(batches, results, strict=True):
                assert result.currents.shape == (len(v), info.cols)
                with connect(address) as sync:
                    np.testing.assert_array_equal(result.currents, sync.mvm(0, v).currents)

    asyncio.run(run())


def test_errors_are_the_same_exceptions(served: tuple[BoardDriver, int]) -> None:
    address = f"127.0.0.1:{served[1]}"

    async def run() -> None:
        async with await aio_connect(address) as board:
            info = await board.info()
            with pytest.raises(OutOfRange) as caught:
                await board.mvm(info.tile_count, np.zeros((1, info.rows), np.float32))
            assert caught.value.field == "tile"
            with pytest.raises(InvalidArgument, match="voltages"):
                await board.mvm(0, np.zeros((1, info.rows + 1), np.float32))

    asyncio.run(run())


def test_tokens_and_leases_hold_for_the_async_client(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    alice = add_principal(tokens, "alice", Role.PROGRAMMER)
    bob = add_principal(tokens, "bob", Role.PROGRAMMER)
    with served_with(tokens_file=tokens) as port:
        address = f"127.0.0.1:{port}"
        with (
            connect(address, token=alice) as holder,
            holder.session(label="alice's run") as session,
            session.lease([0]),
        ):

            async def run() -> None:
                async with await aio_connect(address, token=bob) as board:
                    assert await board.health() == "SERVING"  # as the sync client's
                    assert holder.health() == "SERVING"
                    info = await board.info()
                    g = np.full((info.rows, info.cols), info.g_min_us, np.float32)
                    with pytest.raises(LeaseHeld, match="alice's session"):
                        await board.program(0, g)
                    await board.program(1, g)

            asyncio.run(run())


def test_no_server_is_unavailable() -> None:
    async def run() -> None:
        with pytest.raises(BoardUnavailable, match="no SIDRA server answered"):
            await aio_connect("127.0.0.1:1", wait_ready_s=0.5)
        with pytest.raises(InvalidArgument) as caught:  # no address at all: refused at once
            await aio_connect("")
        assert caught.value.field == "address"

    asyncio.run(run())


def test_async_sessions_lease_tiles_and_restore_them(served: tuple[BoardDriver, int]) -> None:
    address = f"127.0.0.1:{served[1]}"

    async def run() -> None:
        with connect(address) as other:
            info = other.info
            g = np.full((info.rows, info.cols), info.g_max_us / 2, np.float32)
            async with await aio_connect(address) as board:
                async with await board.session(label="es population") as session:
                    async with await session.lease([2]) as lease:
                        await board.program(2, g)
                        await board.perturb(2, seed=4, amplitude_us=1.0)
                        with pytest.raises(LeaseHeld, match="'es population'"):
                            other.program(2, g)
                        assert [x.tile for x in await board.leases()] == [2]
                    assert lease.restored == (2,)
                    np.testing.assert_array_equal(other.read_conductance(2).conductances, g)
                    assert session.lost is None
                assert await board.leases() == []
                other.program(2, g)  # free again

    asyncio.run(run())


def test_a_sequence_and_a_perturbed_mvm_as_coroutines(served: tuple[BoardDriver, int]) -> None:
    """The newer operations answer through the asyncio client as through the blocking one."""
    from sidra.drivers import PerturbationPoint
    from sidra.drivers.requests import MVMRequest, ProgramRequest

    address = f"127.0.0.1:{served[1]}"
    region = Region(0, 0, 3, 2)
    g = np.full(region.shape, 20.0, np.float32)
    v = np.full((2, 3), 0.1, np.float32)

    async def run() -> None:
        async with await aio_connect(address) as board:
            done = await board.run_sequence([ProgramRequest(1, g), MVMRequest(1, v, region)])
            np.testing.assert_allclose(done.results[1].currents, np.full((2, 2), 6.0), rtol=1e-6)
            point = PerturbationPoint(seed=5, amplitude_us=1.0, sign=1)
            fused = await board.perturbed_mvm(1, v, [point], region)
            assert fused.currents.shape == (1, 2, 2)

    asyncio.run(run())


class _Recorder:
    """Stands in for a board in a bad-request case: keeps the one call the case makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


@pytest.mark.parametrize("name", list(TYPED))
def test_a_bad_call_raises_what_the_local_driver_raises(
    name: str, served: tuple[BoardDriver, int]
) -> None:
    """Every typed bad call of the conformance suite, values the wire cannot carry and
    values of the wrong kind included: the same class, field and value as the board's
    own driver, never a bare ValueError or AttributeError."""
    driver, port = served
    case = TYPED[name]
    recorder = _Recorder()
    case.call(recorder, driver.info)  # type: ignore[arg-type]
    [(method, args, kwargs)] = recorder.calls
    with pytest.raises(case.cls) as local:
        getattr(driver, method)(*args, **kwargs)

    async def run() -> None:
        async with await aio_connect(f"127.0.0.1:{port}") as board:
            with pytest.raises(case.cls) as caught:
                await getattr(board, method)(*args, **kwargs)
            assert type(caught.value) is case.cls
            assert caught.value.field == local.value.field
            assert str(caught.value.value) == str(local.value.value)  # the wire carries text

    asyncio.run(run())


def test_a_stream_batch_the_wire_cannot_carry_raises_the_drivers_error(
    served: tuple[BoardDriver, int],
) -> None:
    """In an MVM stream, sync and async: the batches before it are answered, then the error."""
    address = f"127.0.0.1:{served[1]}"
    rows = served[0].info.rows
    good, ragged = np.zeros((1, rows), np.float32), [[0.0] * rows, [0.0]]
    with connect(address) as board:
        answers = board.mvm_stream(0, [good, ragged])
        assert next(answers).currents.shape == (1, served[0].info.cols)
        with pytest.raises(InvalidArgument) as caught:
            next(answers)
        assert caught.value.field == "voltages.shape"
        with pytest.raises(InvalidArgument) as caught:
            list(board.mvm_stream(0, [good[:, :2]], region=(0, 0, 2, 2)))  # type: ignore[arg-type]
        assert caught.value.field == "region"

    async def run() -> None:
        async with await aio_connect(address) as board:
            with pytest.raises(InvalidArgument) as caught:
                async for _ in board.mvm_stream(-1, [good]):
                    pass
            assert caught.value.field == "tile"

    asyncio.run(run())


def test_no_stream_item_is_sent_after_a_refused_one(served: tuple[BoardDriver, int]) -> None:
    """One item in flight, the third refused by the server (a voltage out of range): the
    first two are answered, the third raises, and the fourth never reaches the board,
    sync and async."""
    board_driver, port = served
    info = board_driver.info
    good = np.full((2, info.rows), info.read_voltage_max_v / 4, np.float32)
    bad = np.full((2, info.rows), 2 * info.read_voltage_max_v, np.float32)
    items = [good, good, bad, good]
    with connect(f"127.0.0.1:{port}") as board:
        before = board_driver.stats().mvm_passes
        answered = []
        with pytest.raises(OutOfRange):
            for result in board.mvm_stream(0, items, depth=1):
                answered.append(result)
        assert len(answered) == 2
        time.sleep(0.2)  # a fourth item sent anyway would have run by now
        assert board_driver.stats().mvm_passes == before + 2 * len(good)

    async def run() -> None:
        async with await aio_connect(f"127.0.0.1:{port}") as board:
            before = board_driver.stats().mvm_passes
            answered = []
            with pytest.raises(OutOfRange):
                async for result in board.mvm_stream(0, items, depth=1):
                    answered.append(result)
            assert len(answered) == 2
            await asyncio.sleep(0.2)  # a fourth item sent anyway would have run by now
            assert board_driver.stats().mvm_passes == before + 2 * len(good)

    asyncio.run(run())


def test_shared_memory_passes_and_streams_as_the_synchronous_client() -> None:
    """The async client registers shared memory in its session and runs passes and a
    stream of passes through it, with the sync client's answers (ideal board: bit for
    bit); without a session it is refused."""
    from sidra.server.settings import SharedMemorySettings

    board_driver = open_board("emu://?preset=ideal&seed=12")
    server, port = create_server(
        board_driver, "127.0.0.1:0", shared_memory=SharedMemorySettings(enabled=True)
    )
    server.start()
    info = board_driver.info
    board_driver.program(0, np.full((info.rows, info.cols), 20.0, np.float32))
    rng = np.random.default_rng(3)
    batches = [rng.uniform(0, 0.05, (8, info.rows)).astype(np.float32) for _ in range(5)]
    with connect(f"127.0.0.1:{port}") as sync_board:
        expected = [sync_board.mvm(0, v).currents for v in batches]
    slot = 8 * 4 * (info.rows + info.cols)

    async def run() -> None:
        async with await aio_connect(f"127.0.0.1:{port}") as board:
            with pytest.raises(FailedPrecondition, match="open one first"):
                await board.shared_memory(slot)
            async with await board.session(), await board.shared_memory(3 * slot) as shm:
                pairs = [
                    (shm.array((8, info.rows), offset_bytes=k * slot),
                     shm.array((8, info.cols), offset_bytes=k * slot + 8 * 4 * info.rows))
                    for k in range(3)
                ]  # fmt: skip
                pairs[0][0].array[:] = batches[0]
                one = await board.mvm_shared(0, *pairs[0])
                assert one.currents is pairs[0][1].array
                np.testing.assert_array_equal(one.currents, expected[0])

                async def fill() -> Any:
                    for k, v in enumerate(batches):
                        inputs, outputs = pairs[k % 3]
                        inputs.array[:] = v
                        yield inputs, outputs

                k = 0
                async for result in board.mvm_shared_stream(0, fill(), depth=2):
                    assert result.currents is pairs[k % 3][1].array
                    np.testing.assert_array_equal(result.currents, expected[k])
                    k += 1
                assert k == len(batches)
                pairs.clear()

    try:
        asyncio.run(run())
    finally:
        server.stop(None)


def test_calls_under_way_when_the_client_closes_say_it_is_closed(
    served: tuple[BoardDriver, int],
) -> None:
    """close() with calls in flight in other tasks: those sent raised a bare
    CancelledError (a TaskGroup then took them for cancelled), those waiting for a place
    and a stream gRPC's UsageError ("Channel is closed.")."""
    address = f"127.0.0.1:{served[1]}"

    async def run() -> list[BaseException | Any]:
        board = await aio_connect(address, max_in_flight=2)
        v = np.full((256, 256), 0.05, np.float32)
        await board.mvm(0, v)  # (the sizes the service takes are learnt)

        async def stream() -> int:
            return len([r async for r in board.mvm_stream(0, (v[:8] for _ in range(10_000)))])

        tasks = [asyncio.create_task(board.mvm(0, v)) for _ in range(8)]
        tasks.append(asyncio.create_task(stream()))
        await asyncio.sleep(0.02)
        await board.close()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(run())
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert failed, "every call ended before the close: nothing was checked"
    for outcome in failed:
        assert isinstance(outcome, BoardUnavailable), repr(outcome)
        assert "is closed (close() was called" in str(outcome)


def test_a_lease_whose_caller_gave_up_is_released_once_granted(
    served: tuple[BoardDriver, int],
) -> None:
    """asyncio.wait_for(session.lease(...)) timed out after the server had granted it:
    the caller had no AsyncLease to release, and the tile stayed leased."""
    address = f"127.0.0.1:{served[1]}"

    async def run() -> tuple[int, list[int]]:
        async with await aio_connect(address) as board:
            session = await board.session(label="impatient", ttl_s=30)
            gave_up = 0
            for _ in range(20):
                try:
                    await asyncio.wait_for(session.lease([3]), 0.0005)
                except TimeoutError:
                    gave_up += 1
                else:
                    await session.release(all_tiles=True)
            held = await session.lease([2])  # taken after: not undone with the rest
            for _ in range(300):  # the answers of those given up, then their releases
                left = [t.tile for t in await board.leases()]
                if left == [2]:
                    break
                await asyncio.sleep(0.01)
            await held.release()
            await session.close()
            return gave_up, left

    gave_up, left = asyncio.run(run())
    assert gave_up > 0 and left == [2]


def test_a_session_close_cancelled_stays_cancelled(served: tuple[BoardDriver, int]) -> None:
    """close() waits for its heartbeat task; a cancellation of the caller meanwhile was
    swallowed with the heartbeat's own, and close() returned () as if done."""
    address = f"127.0.0.1:{served[1]}"

    async def run() -> bool:
        async with await aio_connect(address) as board:
            session = await board.session(ttl_s=30)
            closing = asyncio.create_task(session.close())
            await asyncio.sleep(0)  # in close(), waiting for the heartbeat task
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            return closing.cancelled()

    assert asyncio.run(run())
