"""The host's waiting policy: what it learns from completions and when it sleeps."""

from __future__ import annotations

import pytest

from sidra.drivers.pcie.waiting import HYBRID_MARGIN_S, HYBRID_MIN_S, ServiceTimes, SpinGate

MVM1, BATCH = ("MVM", 11), ("MVM", 21)


def _learned(times: ServiceTimes, kind: object, *took_s: float) -> None:
    for took in took_s:
        times.learn(kind, took, overslept=False)


def test_nothing_is_slept_through_before_four_completions_of_a_kind() -> None:
    times = ServiceTimes()
    _learned(times, BATCH, 5e-3, 1.4e-3, 1.3e-3)
    assert times.sleep_s(BATCH, 0.0) == 0.0
    _learned(times, BATCH, 1.5e-3)
    # The minimum of the first four: a cold first command does not set the pace.
    assert times.expected_s(BATCH) == pytest.approx(1.3e-3)
    assert times.sleep_s(BATCH, 0.0) == pytest.approx(1.3e-3 - HYBRID_MARGIN_S)
    assert times.sleep_s(MVM1, 0.0) == 0.0  # kinds are learned apart


def test_short_commands_are_never_slept_through() -> None:
    times = ServiceTimes()
    _learned(times, MVM1, *[60e-6] * 10)
    assert times.expected_s(MVM1) == pytest.approx(60e-6)
    assert times.sleep_s(MVM1, 0.0) == 0.0
    # Nor what is left of a long one once less than HYBRID_MIN_S remains.
    _learned(times, BATCH, *[1.3e-3] * 4)
    assert times.sleep_s(BATCH, 1.3e-3 - HYBRID_MIN_S) == 0.0


def test_one_outlier_moves_the_estimate_by_a_quarter_at_most() -> None:
    times = ServiceTimes()
    _learned(times, BATCH, *[1e-3] * 4)
    times.learn(BATCH, 0.5, overslept=False)  # the board process was preempted
    assert times.expected_s(BATCH) == pytest.approx(1.25e-3)


def test_a_sleep_that_ended_after_the_completion_shrinks_the_estimate() -> None:
    times = ServiceTimes()
    _learned(times, BATCH, *[2e-3] * 4)
    times.learn(BATCH, 1.9e-3, overslept=True)
    assert times.expected_s(BATCH) == pytest.approx(0.75 * 1.9e-3)
    for _ in range(10):  # a kind that got much faster is unlearned in a few commands
        times.learn(BATCH, times.expected_s(BATCH), overslept=True)
    assert times.expected_s(BATCH) < HYBRID_MIN_S


def test_a_kind_that_got_slower_is_followed() -> None:
    times = ServiceTimes()
    _learned(times, BATCH, *[1e-3] * 4)
    _learned(times, BATCH, *[4e-3] * 12)
    assert times.expected_s(BATCH) == pytest.approx(4e-3, rel=0.05)


def test_spinning_stops_for_a_while_when_spins_keep_running_out() -> None:
    gate = SpinGate()
    gate.spun(answered=False)
    assert gate.should_spin()  # one miss: the board may just have been slow
    gate.spun(answered=False)
    skipped = 0
    while not gate.should_spin():
        skipped += 1
    assert skipped == 32  # then it tries again
    gate.spun(answered=False)
    gate.spun(answered=True)  # an answered spin forgets the misses
    gate.spun(answered=False)
    assert gate.should_spin()


def test_only_a_kind_learned_short_is_known_short() -> None:
    """A spin that runs out counts against spinning only for commands known to be short:
    not before four completions of their kind, never for a long kind."""
    times = ServiceTimes()
    assert not times.known_short("mvm")  # not learned: a first long command runs out too
    for _ in range(4):
        times.learn("mvm", 40e-6, overslept=False)
        times.learn("batch", 2e-3, overslept=False)
    assert times.known_short("mvm")
    assert not times.known_short("batch")
