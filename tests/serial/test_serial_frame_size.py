"""Frames sized for the line (docs/wire-protocol.md §4.6): the estimate, the rule, and a
whole-tile workload through a virtual board whose line flips one bit in 10⁵.

The board is the ideal preset on full 256 × 256 tiles, so its frames are as long as the
protocol allows and a pass run again (a read the line damaged goes again as a new
request) gives the same numbers: every result is compared with the same board in process.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidra.drivers import BoardDriver, DeadlineExceeded, Region, open_board
from sidra.drivers.requests import PerturbationPoint, PerturbedMVMRequest
from sidra.drivers.serial import SerialDriver
from sidra.drivers.serial.frame_size import (
    CLEAN_TO_GROW,
    DAMAGE_PER_ATTEMPT,
    EXCHANGE_OVERHEAD_BYTES,
    FrameSizer,
    best_payload,
    damage_rate,
)
from sidra.emulator import preset
from sidra.emulator.driver import EmulatorDriver
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig

PROFILE = preset("ideal")
SEED = 4
NOISY = FaultConfig(ber=1e-5, seed=3)
CEILING = 65_535


def intact(rate: float, wire_bytes: float) -> float:
    return math.exp(-rate * wire_bytes)


# -- the estimate and the rule -------------------------------------------------------------


@pytest.mark.parametrize("rate", [2e-6, 8e-5, 8e-4])
def test_the_damage_rate_is_found_from_attempts_of_mixed_sizes(rate: float) -> None:
    rng = np.random.default_rng(7)
    sizes = rng.choice([60, 300, 700, 1500, 4000], 4000)
    attempts = [(int(b), bool(rng.random() > intact(rate, b))) for b in sizes]
    assert damage_rate(attempts) == pytest.approx(rate, rel=0.15)


def test_no_damage_means_no_rate_and_all_damage_a_floor() -> None:
    assert damage_rate([(1000, False)] * 10) == 0.0
    floor = damage_rate([(1000, True), (4000, True)])
    assert 1 - intact(floor, 1000) == pytest.approx(0.9)  # the smallest, nine times in ten


@pytest.mark.parametrize("rate", [1e-7, 1e-6, 1e-5, 8e-5, 8e-4, 1e-2])
def test_the_payload_is_the_largest_that_is_reliable_and_worth_it(rate: float) -> None:
    h = EXCHANGE_OVERHEAD_BYTES
    every = np.arange(1, CEILING + 1)  # the payload moving the most per byte sent
    worth_it = every[(every / (every + h) * np.exp(-rate * (every + h))).argmax()]
    grid = np.arange(256, CEILING + 1, 256)
    reliable = 1 - np.exp(-rate * (grid + h)) <= DAMAGE_PER_ATTEMPT
    allowed = grid[reliable & (grid <= worth_it)]
    want = int(allowed.max()) if allowed.size else 256
    assert best_payload(rate, CEILING) == want
    assert best_payload(0.0, CEILING) == CEILING
    assert best_payload(rate, 1024) <= 1024


def test_one_damaged_attempt_moves_nothing_two_bring_the_frames_down() -> None:
    sizer = FrameSizer(CEILING)
    for _ in range(20):
        sizer.record(300, damaged=False)
    sizer.record(CEILING + 40, damaged=True)
    assert (sizer.limit, sizer.changes) == (CEILING, 0)  # what retransmission is for
    sizer.record(CEILING + 40, damaged=True)
    assert sizer.limit < CEILING and sizer.changes == 1


@pytest.mark.parametrize("rate", [8e-6, 8e-5, 8e-4])
def test_a_steady_line_settles_on_its_payload(rate: float) -> None:
    """20,000 attempts on a line of one damage rate, a third of them small commands: the
    limit spends most of the time where the rule puts it and seldom moves."""
    rng = np.random.default_rng(1)
    sizer, limits = FrameSizer(CEILING), []
    for i in range(20_000):
        size = sizer.limit + EXCHANGE_OVERHEAD_BYTES if i % 3 else 80
        sizer.record(size, damaged=bool(rng.random() > intact(rate, size)))
        limits.append(sizer.limit)
    aim = best_payload(rate, CEILING)
    settled = np.asarray(limits[1000:])
    assert np.mean((settled >= aim / 2) & (settled <= 2 * aim)) > 0.9
    damage = np.mean(1 - np.exp(-rate * (settled + EXCHANGE_OVERHEAD_BYTES)))
    at_the_floor = 1 - intact(rate, 256 + EXCHANGE_OVERHEAD_BYTES)  # the line allows no better
    assert damage < max(2 * DAMAGE_PER_ATTEMPT, at_the_floor * 1.01)
    assert sizer.changes < 60


def test_the_frames_grow_back_when_the_line_is_clean_again() -> None:
    sizer = FrameSizer(CEILING)
    for _ in range(4):
        sizer.record(CEILING, damaged=True)
    low = sizer.limit
    assert low < CEILING
    attempts = 0
    while sizer.limit < CEILING:
        sizer.record(80, damaged=False)  # a PING: says nothing of long frames
        sizer.record(sizer.limit + EXCHANGE_OVERHEAD_BYTES, damaged=False)
        attempts += 1
        assert attempts < 2000
    assert attempts % CLEAN_TO_GROW == 0  # it looks every 64 intact attempts in a row
    assert sizer.changes == 1 + math.ceil(math.log2(CEILING / low))  # doubling each time


def test_the_board_bounds_the_limit() -> None:
    sizer = FrameSizer(CEILING)
    sizer.fit(4096, 4096)
    assert (sizer.ceiling, sizer.limit) == (4096, 4096)
    sizer.fit(CEILING, 4096)  # a board with larger buffers (new firmware): back up by growing
    assert (sizer.ceiling, sizer.limit) == (CEILING, 4096)
    sizer.fit(CEILING, 1024)  # a board that settled on less than was offered
    assert sizer.limit == 1024


# -- through a noisy line ------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    return bool(a == b)


def workload(board: BoardDriver, seed: int) -> list[Any]:
    """Every kind of long frame: a whole tile staged and read back, batches of 64
    staged in and answered in pieces, and writes among them."""
    rng = np.random.default_rng(seed)
    g = rng.uniform(2.0, 38.0, (256, 256)).astype(np.float32)
    v = rng.uniform(-0.2, 0.2, (64, 256)).astype(np.float32)
    return [
        board.program(0, g),
        board.read_conductance(0),
        board.mvm(0, v),
        board.transpose_mvm(0, v),
        board.perturb(0, seed=5, amplitude_us=0.5, sign=1),
        board.mvm(0, v[:8]),
        board.restore(0),
        board.read_write_counts(0),
    ]


@pytest.mark.timeout(120)
def test_a_line_that_damages_long_frames_gets_shorter_ones_and_exact_results() -> None:
    """With the frames as negotiated (65,535 bytes) a whole tile never crosses this line;
    the link lowers them and every result is the in-process board's, no write twice."""
    reference = EmulatorDriver(PROFILE, SEED)
    with (
        serve_virtual_board(PROFILE, SEED, faults=NOISY) as server,
        open_board(server.url) as board,
    ):
        assert isinstance(board, SerialDriver)
        got = workload(board, 0)
        link = board.link_stats()
    want = workload(reference, 0)
    assert all(same(x, y) for x, y in zip(got, want, strict=True))
    assert link.naks + link.crc_errors > 0  # the line did damage frames
    assert link.payload_changes >= 1 and 256 <= link.payload_limit <= 2048


@pytest.mark.timeout(120)
def test_a_read_whose_long_answer_the_line_kept_damaging_runs_again() -> None:
    """A whole tile read first thing: its 65,535-byte answer arrives damaged every time
    (3 bit errors in 10⁵: intact about once in 10⁷), so once the frames came down it runs
    again as a new request in shorter ones, without spending the rest of its eight
    attempts on the long answer; the board counts both reads."""
    reference = EmulatorDriver(PROFILE, SEED)
    want = reference.read_conductance(0)
    with (
        serve_virtual_board(PROFILE, SEED, faults=FaultConfig(ber=3e-5, seed=3)) as server,
        open_board(server.url) as board,
    ):
        got = board.read_conductance(0)
        reads = board.stats().total_cost.time_ns / want.cost.time_ns
        received = board.link_stats().bytes_received
    assert same(got, want)
    assert reads >= 2 and reads == int(reads)
    # Once the frames came down the long answer's other attempts were not spent: the tile
    # and its shorter frames' framing, and the long answer at most three times.
    assert received < 256 * 256 * 4 + 3 * CEILING + 80_000


@pytest.mark.timeout(120)
def test_a_write_s_data_go_staged_until_the_line_has_carried_such_frames() -> None:
    """On-board SPSA's first steps on a fresh link: perturbed passes of 64 samples (16.7 KB
    of inputs) on the noisy sidra-y1 board, over a line flipping 5 bits in 10⁵. Inline,
    the first would stake a write on a frame that line all but never carries; staged, the
    chunks go again in shorter frames and every result is the in-process board's to the
    bit (nothing ran twice)."""
    profile, seed = preset("sidra-y1"), 5
    region = Region(0, 0, 65, 10)
    rng = np.random.default_rng(2)
    g = rng.uniform(5.0, 35.0, (65, 10)).astype(np.float32)
    batches = [rng.uniform(-0.2, 0.2, (64, 65)).astype(np.float32) for _ in range(5)]

    def steps(board: BoardDriver) -> list[Any]:
        board.program(0, g)
        return [
            board.run(
                PerturbedMVMRequest(
                    0,
                    v,
                    (
                        PerturbationPoint(seed=k, amplitude_us=0.5, sign=1),
                        PerturbationPoint(seed=k, amplitude_us=0.5, sign=-1),
                    ),
                    region,
                )
            )  # fmt: skip
            for k, v in enumerate(batches)
        ]

    want = steps(EmulatorDriver(profile, seed))
    with (
        serve_virtual_board(profile, seed, faults=FaultConfig(ber=5e-5, seed=3)) as server,
        open_board(server.url) as board,
    ):
        got = steps(board)
        link = board.link_stats()
    assert all(same(x, y) for x, y in zip(got, want, strict=True))
    assert link.naks + link.crc_errors > 0


@pytest.mark.timeout(120)
def test_a_clean_line_keeps_its_frames() -> None:
    with serve_virtual_board(PROFILE, SEED) as server, open_board(server.url) as board:
        assert isinstance(board, SerialDriver)
        workload(board, 0)
        link = board.link_stats()
    assert (link.payload_limit, link.payload_changes) == (CEILING, 0)


@pytest.mark.timeout(120)
def test_after_a_noisy_spell_the_frames_grow_back() -> None:
    with (
        serve_virtual_board(PROFILE, SEED, faults=NOISY) as server,
        open_board(server.url) as board,
    ):
        assert isinstance(board, SerialDriver)
        workload(board, 0)
        low = board.link_stats().payload_limit
        assert low < CEILING
        assert server.shim is not None
        server.shim.set_damage(FaultConfig())
        v = np.zeros((64, 256), np.float32)  # staged, answered in pieces: long frames
        while board.link_stats().payload_limit < CEILING:
            board.mvm(0, v)
            assert board.link_stats().exchanges < 5000
        got = workload(board, 1)  # frames as negotiated again: as exact as before
    reference = EmulatorDriver(PROFILE, SEED)
    workload(reference, 0)
    want = workload(reference, 1)
    assert all(same(x, y) for x, y in zip(got, want, strict=True))


@pytest.mark.timeout(120)
def test_a_write_the_line_kept_damaging_is_not_sent_again() -> None:
    """A line that damages nearly every frame: a PERTURB or RESTORE fails with the damage
    named, and the board applied it at most once (the cells' write counts say so)."""
    reference = EmulatorDriver(PROFILE, SEED)
    g = np.full((256, 256), 20.0, np.float32)
    # Frames at the floor already: the damage cannot be helped by shorter ones.
    with (
        serve_virtual_board(PROFILE, SEED, faults=FaultConfig(seed=2)) as server,
        open_board(f"{server.url}?max_payload=256") as board,
    ):
        assert server.shim is not None
        board.program(0, g)
        reference.program(0, g)
        server.shim.set_damage(FaultConfig(ber=3e-3, seed=2))
        writes = [
            lambda b: b.perturb(0, seed=9, amplitude_us=0.5, sign=1),
            lambda b: b.restore(0),
        ]
        failed = None
        for step in range(200):
            write = writes[step % 2]
            try:
                write(board)
            except DeadlineExceeded as exc:
                assert "damaged on the line" in str(exc)
                failed = write
                break
            write(reference)
        assert failed is not None
        server.shim.set_damage(FaultConfig())
        counts = board.read_write_counts(0).counts
    before = reference.read_write_counts(0).counts
    failed(reference)
    after = reference.read_write_counts(0).counts
    assert np.array_equal(counts, before) or np.array_equal(counts, after)


@settings(max_examples=300, deadline=None)
@given(
    ceiling=st.integers(256, CEILING),
    attempts=st.lists(st.tuples(st.integers(1, 200_000), st.booleans()), max_size=600),
)
def test_the_limit_stays_a_payload_the_protocol_allows(
    ceiling: int, attempts: list[tuple[int, bool]]
) -> None:
    """Whatever the attempts met, the limit is one a HELLO may offer: 256 .. the ceiling,
    a multiple of 256 unless it is the ceiling; the estimate a finite rate per byte."""
    sizer = FrameSizer(ceiling)
    for size, damaged in attempts:
        sizer.record(size, damaged)
        assert 256 <= sizer.limit <= ceiling
        assert sizer.limit == ceiling or sizer.limit % 256 == 0
    rate = damage_rate(attempts)
    assert rate >= 0.0 and math.isfinite(rate)  # a hazard per byte, not a probability
