"""A board with a small microcontroller's buffers, and what HELLO tells the host.

docs/wire-protocol.md §3.1 and §11: a board advertises its maximum payload, its
response-cache depth and its timing model in HELLO; the host keeps within them.
A virtual board built with 256-byte frames, a 4-response cache and a stage of one
tile image still runs the whole operation set, bit-identical to emu://.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pytest
import serial
from board_data import dyadic_g, dyadic_v

from sidra.drivers import (
    BoardUnavailable,
    Cost,
    InvalidArgument,
    MVMResult,
    PerturbationPoint,
    Region,
    open_board,
)
from sidra.drivers.serial import SerialDriver
from sidra.drivers.serial.link import Link, LinkSettings, Port, check_hello
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.framing import MIN_PAYLOAD
from sidra.drivers.wire.messages import Msg
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.emulator.firmware import VirtualBoard, serve_virtual_board

GEOMETRY = Geometry(tiles=2, rows=32, cols=16)
PROFILE = preset("ideal").model_copy(update={"geometry": GEOMETRY})
STAGE = 4 * 32 * 16  # exactly one tile image, bytes


def test_small_board_runs_every_operation() -> None:
    """max_payload 256 B, cache depth 4, a 2 KiB stage: Program (9 chunks), reads and
    MVM batches larger than the stage (split), perturb, restore, counts, calibrate, clock
    and the profile all work and match the in-process emulator exactly."""
    reference = EmulatorDriver(PROFILE, 3)
    with (
        serve_virtual_board(
            PROFILE, 3, max_payload=256, cache_depth=4, stage_capacity=STAGE
        ) as server,
        open_board(server.url) as board,  # the host offers 65535; the board says 256
    ):
        assert isinstance(board, SerialDriver)
        hello = board._link.hello
        assert hello is not None
        assert (hello.max_payload, hello.board_max_payload, hello.cache_depth) == (256, 256, 4)
        assert hello.stage_capacity == STAGE
        assert board.info.profile == reference.info.profile  # GET_PROFILE, 256 B at a time
        rng = np.random.default_rng(0)
        g = rng.uniform(2.0, 38.0, (32, 16)).astype(np.float32)
        v = rng.uniform(-0.2, 0.2, (40, 32)).astype(np.float32)  # 5 KiB: 3 staged passes
        u = rng.uniform(-0.2, 0.2, (70, 16)).astype(np.float32)
        region = Region(3, 2, 8, 9)
        for driver in (board, reference):
            driver.program(0, g)
            driver.program(1, g[:8, :8], row_offset=4, col_offset=8)
        checks = [
            lambda d: d.read_conductance(0),
            lambda d: d.read_conductance(1, region),
            lambda d: in_passes(d, d.mvm, 0, v),
            lambda d: in_passes(d, d.transpose_mvm, 1, u),
            lambda d: d.perturb(0, seed=9, amplitude_us=0.75, sign=-1, region=region),
            lambda d: d.read_conductance(0, region),
            lambda d: d.restore(0, region),
            lambda d: d.read_write_counts(0),
            lambda d: d.calibrate(1),
            lambda d: d.advance_clock(3600.0),
            lambda d: dataclasses.replace(d.stats(), link=None),
        ]
        for check in checks:
            got, want = check(board), check(reference)
            assert _same(got, want), (got, want)
        assert len(server.board.cache) <= 4
        # Every frame fitted the board's 256 B: none damaged or refused. (A retry is
        # timing, not the protocol: a loaded machine stalls past the learned T_base of
        # 20 ms now and then, and the board answers it from its cache.)
        stats = board.link_stats()
        assert (stats.crc_errors, stats.naks, stats.resyncs) == (0, 0, 0), stats


def in_passes(
    driver: object, run: Callable[[int, np.ndarray], MVMResult], tile: int, x: np.ndarray
) -> MVMResult:
    """The serial board runs a batch larger than its stage as consecutive passes; the
    reference does the same, so float32 sums run in the same order."""
    if isinstance(driver, SerialDriver):
        return run(tile, x)
    per_call = STAGE // (4 * x.shape[1])
    parts = [run(tile, x[i : i + per_call]) for i in range(0, len(x), per_call)]
    return MVMResult(
        np.concatenate([p.currents for p in parts]),
        sum(p.saturated_outputs for p in parts),
        sum((p.cost for p in parts), Cost()),
    )


def _same(a: object, b: object) -> bool:
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        pairs = zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True)  # type: ignore[arg-type]
        return type(a) is type(b) and all(_same(x, y) for x, y in pairs)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def test_timing_model_comes_from_hello() -> None:
    """BoardInfo.timing over serial is what the board reports in HELLO (§3.1), equal to
    the emulator's own, and not read from the JSON profile."""
    profile = preset("sidra-y1").model_copy(update={"geometry": GEOMETRY})
    with serve_virtual_board(profile, 1) as server, open_board(server.url) as board:
        assert isinstance(board, SerialDriver)
        hello = board._link.hello
        assert hello is not None
        expected = EmulatorDriver(profile, 1).info.timing
        assert hello.timing == board.info.timing == expected
        assert expected.mvm_pass_ns > 0 and expected.board_power_w > 0


def test_hello_without_the_limits_block_gets_spec_defaults() -> None:
    """A HELLO response that ends after the strings (a board built to the earlier
    layout) reads as: buffers = negotiated max_payload, cache depth 16, no timing."""
    from sidra.drivers.wire.device_times import CommandTimes

    with serve_virtual_board(PROFILE, 1, slow=CommandTimes(5, 6, 7, 8)) as server:
        full = server.board.hello()
    assert full.command_times == CommandTimes(5, 6, 7, 8)
    payload = m.pack_hello(full)
    assert len(payload) <= MIN_PAYLOAD  # fits before anything is negotiated
    short = m.unpack_hello(payload[: -m.HELLO_LIMITS.size - m.HELLO_COMMAND_TIMES.size])
    assert (short.board_max_payload, short.cache_depth) == (full.max_payload, 16)
    assert short.timing == type(full.timing)()
    assert m.unpack_hello(payload) == full
    # One that ends after the timing block (the revision before command times) declares
    # none: the host's own figures apply.
    without = m.unpack_hello(payload[: -m.HELLO_COMMAND_TIMES.size])
    assert without == dataclasses.replace(full, command_times=type(full.command_times)())


def test_host_refuses_a_hello_it_cannot_keep_to() -> None:
    with serve_virtual_board(PROFILE, 1, max_payload=512) as server:
        hello = server.board.hello()
    check_hello(hello, 65535, "board")  # max_payload 256 before HELLO: fine
    for bad, words in [
        (dataclasses.replace(hello, cache_depth=0), "cache_depth 0"),
        (
            dataclasses.replace(hello, max_payload=1024),
            "max_payload 1024 bytes, expected 256 .. 512",
        ),
        (dataclasses.replace(hello, max_payload=100), "max_payload 100"),
    ]:
        with pytest.raises(BoardUnavailable, match=words):
            check_hello(bad, 65535, "board")
    with pytest.raises(ValueError, match="cache_depth"):
        VirtualBoard(PROFILE, 1, cache_depth=0)


def test_a_stage_smaller_than_one_tile_image_is_refused_when_opened() -> None:
    """A Program image is staged whole (wire-protocol.md §11.1): a board whose stage
    cannot hold one is refused naming stage_capacity, not failed at every Program."""
    with (
        serve_virtual_board(PROFILE, 1, stage_capacity=STAGE - 4) as server,
        pytest.raises(BoardUnavailable) as caught,
    ):
        open_board(server.url)
    message = str(caught.value)
    assert f"stage_capacity: got {STAGE - 4} B, expected at least one tile's Program" in message
    assert f"4 x 32 x 16 = {STAGE} B" in message


def test_host_keeps_to_the_negotiated_payload() -> None:
    """A payload over the negotiated max_payload is refused before it is sent."""
    with (
        serve_virtual_board(PROFILE, 1, max_payload=256) as server,
        open_board(server.url) as board,
    ):
        assert isinstance(board, SerialDriver)
        sent = board.link_stats().frames_sent
        with pytest.raises(InvalidArgument, match="at most 256 bytes"):
            board._link.exchange(Msg.STAGE_DATA, bytes(257))
        assert board.link_stats().frames_sent == sent


def test_boot_notice_is_not_taken_for_the_hello_reply() -> None:
    """The host's first request id is 0 and a BOOT notice (req_id 0) is waiting when it
    says HELLO: it takes the real reply (the negotiated 300, not the notice's 256) and
    counts no duplicate."""
    with serve_virtual_board(PROFILE, 1, max_payload=1024) as server:

        def opener() -> Port:
            port: Port = serial.serial_for_url(server.url.removeprefix("serial://"), timeout=0)
            server.reset_board()  # the notice arrives after open() flushed the input
            time.sleep(0.1)
            return port

        link = Link(opener, "pty", LinkSettings(max_payload=300))
        link._req_id = 0xFFFF  # the next id, HELLO's, is 0
        try:
            hello = link.connect()
            assert hello.max_payload == 300 and link.stats().duplicates == 0
            assert link.exchange(Msg.PING).status == 0
        finally:
            link.close()


def test_a_perturbed_pass_larger_than_the_stage_goes_as_commands_by_its_points() -> None:
    """5 points x 40 vectors: a body of 5,240 bytes for a 2 KiB stage and 12,800 bytes of
    currents for a result buffer of one tile image. The host sends commands of whole
    points and, since one point's 40 vectors do not fit either, slices of its batch; the
    joined currents are the in-process emulator's, bit for bit."""
    reference = EmulatorDriver(PROFILE, 3)
    rng = np.random.default_rng(4)
    g = dyadic_g(rng, (32, 16), 2.0, 38.0)  # dyadic: exact sums whatever the split
    v = dyadic_v(rng, (40, 32))
    points = [PerturbationPoint(k, 1.0, 1 if k % 2 else -1) for k in range(5)]
    with (
        serve_virtual_board(PROFILE, 3, max_payload=256, stage_capacity=STAGE) as server,
        open_board(server.url) as board,
    ):
        for driver in (board, reference):
            driver.program(0, g)
        got, whole = (d.perturbed_mvm(0, v, points) for d in (board, reference))
        np.testing.assert_array_equal(got.currents, whole.currents)
        assert got.currents.shape == (5, 40, 16)
        assert got.cells_written > whole.cells_written  # each command restores once more
        small = board.perturbed_mvm(0, v[:4], points[:2])  # fits: one command
        assert small.cells_written == whole.cells_written * 3 // 6


def test_a_slow_firmware_declares_its_times_and_is_waited_for() -> None:
    """A firmware that takes 0.3 ms over each cell it programs (1.2 s for a 64 × 64
    Program, 15 times the host's own figure) says so in HELLO: the host waits for it,
    sending nothing twice. Undeclared, the host took it for lost frames and sent the
    command again while the board was still at work (and, slower still, gave up)."""
    from sidra.drivers import DeadlineExceeded
    from sidra.drivers.wire.device_times import CommandTimes

    slow = CommandTimes(program_cell_ns=300_000, command_us=2_000)
    g = np.random.default_rng(2).uniform(2.0, 38.0, (64, 64)).astype(np.float32)
    ideal = preset("ideal")
    with serve_virtual_board(ideal, 1, slow=slow) as server, open_board(server.url) as board:
        assert isinstance(board, SerialDriver) and board._link.hello is not None
        assert board._link.hello.command_times == slow
        start = time.monotonic()
        assert board.program(0, g).cells_written == g.size
        assert time.monotonic() - start >= 1.2  # the board did take that long
        assert np.array_equal(board.read_conductance(0, Region(0, 0, 64, 64)).conductances, g)
        assert board.link_stats().retries == 0
    with (
        serve_virtual_board(ideal, 1, slow=slow, declare_times=False) as server,
        open_board(server.url) as board,
    ):
        assert board._link.hello is not None
        assert board._link.hello.command_times == CommandTimes()
        # Given up before the board answered, maybe: what declaring avoids.
        with contextlib.suppress(BoardUnavailable, DeadlineExceeded):
            board.program(0, g)
        assert board.link_stats().retries > 0
