"""T_base learnt from the board's answers (docs/wire-protocol.md §4.5): the estimator's
arithmetic (RFC 6298), its bounds and doubling, and a line that loses frames on a pty.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidra.drivers import open_board
from sidra.drivers.serial.retransmit import FLOOR_S, GRANULARITY_S, RetransmitTimer
from sidra.drivers.wire.messages import Msg
from sidra.emulator import preset
from sidra.emulator.driver import EmulatorDriver
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig

CEILING_S = 0.25


def test_nothing_timed_waits_the_url_s_timeout() -> None:
    assert RetransmitTimer(CEILING_S).base_s(Msg.MVM) == CEILING_S


def test_samples_follow_rfc_6298() -> None:
    timer = RetransmitTimer(10.0)
    timer.answered(Msg.MVM, 0.1)  # SRTT 0.1, RTTVAR 0.05
    assert timer.base_s(Msg.MVM) == pytest.approx(0.1 + 4 * 0.05)
    timer.answered(Msg.MVM, 0.3)  # RTTVAR first, from the old SRTT; then SRTT
    rttvar = 0.75 * 0.05 + 0.25 * abs(0.1 - 0.3)
    srtt = 0.875 * 0.1 + 0.125 * 0.3
    assert timer.base_s(Msg.MVM) == pytest.approx(srtt + 4 * rttvar)


def test_a_fast_board_is_waited_for_the_floor_and_a_steady_one_by_its_latency() -> None:
    timer = RetransmitTimer(CEILING_S)
    timer.answered(Msg.MVM, 0.0)
    assert timer.base_s(Msg.MVM) == FLOOR_S
    for _ in range(200):  # a steady 50 ms: the spread decays to G
        timer.answered(Msg.PROGRAM_COMMIT, 0.05)
    assert timer.base_s(Msg.PROGRAM_COMMIT) == pytest.approx(0.05 + GRANULARITY_S, abs=1e-4)
    # Residuals below zero (a pty's wire time is overestimated) count as zero.
    timer.answered(Msg.READ_CONDUCTANCE, -0.01)
    assert timer.base_s(Msg.READ_CONDUCTANCE) == FLOOR_S
    assert RetransmitTimer(0.005).base_s(Msg.MVM) == 0.005  # a ceiling under the floor wins


def test_each_timeout_doubles_until_the_ceiling_and_a_sample_ends_it() -> None:
    timer = RetransmitTimer(CEILING_S)
    timer.answered(Msg.MVM, 0.0)
    waits = []
    for _ in range(6):
        waits.append(timer.base_s(Msg.MVM))
        timer.timed_out(Msg.MVM)
    assert waits == [FLOOR_S, 2 * FLOOR_S, 4 * FLOOR_S, 8 * FLOOR_S, CEILING_S, CEILING_S]
    timer.timed_out(Msg.PROGRAM_COMMIT)  # another kind's doubling is its own
    assert timer.base_s(Msg.PROGRAM_COMMIT) == 2 * FLOOR_S
    timer.answered(Msg.MVM, 0.0)  # answered at a first attempt: the estimate again
    assert timer.base_s(Msg.MVM) == FLOOR_S


def test_a_kind_not_timed_yet_starts_from_the_link_s_estimate_then_learns_its_own() -> None:
    timer = RetransmitTimer(CEILING_S)
    for _ in range(50):
        timer.answered(Msg.MVM, 0.001)
    assert timer.base_s(Msg.GET_STATS) == FLOOR_S
    for _ in range(50):  # a board whose Programs take 0.1 s more than their model
        timer.answered(Msg.PROGRAM_COMMIT, 0.1)
    assert timer.base_s(Msg.PROGRAM_COMMIT) > 0.1
    assert timer.base_s(Msg.MVM) == FLOOR_S  # the MVMs' own estimate is not moved


@settings(max_examples=300, deadline=None)
@given(
    ceiling=st.floats(0.001, 5.0),
    events=st.lists(
        st.tuples(st.sampled_from([Msg.MVM, Msg.PROGRAM_COMMIT]), st.none() | st.floats(-1, 10)),
        max_size=60,
    ),
)
def test_t_base_stays_within_its_bounds_and_a_timeout_never_shortens_it(
    ceiling: float, events: list[tuple[Msg, float | None]]
) -> None:
    timer = RetransmitTimer(ceiling)
    for kind, sample in events:
        before = timer.base_s(kind)
        if sample is None:
            timer.timed_out(kind)
            assert timer.base_s(kind) >= before
        else:
            timer.answered(kind, sample)
        for k in (Msg.MVM, Msg.PROGRAM_COMMIT):
            assert min(FLOOR_S, ceiling) <= timer.base_s(k) <= ceiling


def test_lost_frames_are_sent_again_after_the_learnt_wait_not_the_url_s() -> None:
    """A line losing 3 % of frames each way, ``timeout=5`` in the URL: every MVM exact
    (the board in process beside it), frames were lost, and what the attempts waited
    besides the wire came down from the URL's 5 s (at 5 s a lost frame each, this
    test would run for minutes)."""
    profile, seed = preset("ideal"), 4
    inputs = np.random.default_rng(1).uniform(-0.2, 0.2, (300, 1, 256)).astype(np.float32)
    with (
        serve_virtual_board(profile, seed, faults=FaultConfig(drop=0.03, seed=5)) as server,
        open_board(f"{server.url}?timeout=5") as board,
        EmulatorDriver(profile, seed) as here,
    ):
        targets = np.random.default_rng(2).uniform(2.0, 38.0, (256, 256)).astype(np.float32)
        for driver in (board, here):
            driver.program(0, targets)
        for x in inputs:
            np.testing.assert_array_equal(board.mvm(0, x).currents, here.mvm(0, x).currents)
        link = board.link_stats()
    assert link.timeouts >= 3
    assert FLOOR_S <= link.timeout_base_s < 0.5
