"""How a client keeps track of the board instance, call by call.

The sequences a real server produces (tests/identity/test_remote_instance.py
runs them over gRPC) plus the ones it produces only by timing: an answer from
the old instance that a slow thread handles after the reset was reported.
"""

from __future__ import annotations

import pytest

from sidra.client.errors import BoardInstanceChanged
from sidra.client.instance import InstanceTracker
from sidra.drivers.errors import BoardReset, OutOfRange

OLD, NEW, NEWER = "EMU-1/boot-7", "EMU-1/boot-8", "EMU-1/boot-9"


def test_the_first_id_is_adopted_and_a_change_is_reported_once() -> None:
    tracker = InstanceTracker()
    tracker.succeeded(OLD, "MVM")
    tracker.succeeded(OLD, "MVM")
    with pytest.raises(BoardInstanceChanged) as changed:
        tracker.succeeded(NEW, "Program")
    assert (changed.value.previous_id, changed.value.instance_id) == (OLD, NEW)
    assert "Program" in str(changed.value)
    tracker.succeeded(NEW, "MVM")
    assert tracker.current == NEW


def test_an_answer_from_a_replaced_instance_is_neither_adopted_nor_reported() -> None:
    """Instances never come back: a late answer from the old one changes nothing."""
    tracker = InstanceTracker()
    tracker.succeeded(OLD, "MVM")
    with pytest.raises(BoardInstanceChanged):
        tracker.succeeded(NEW, "MVM")
    tracker.succeeded(OLD, "MVM")  # another thread's call that ended before the reset
    assert tracker.current == NEW
    tracker.succeeded(NEW, "MVM")


def test_a_reset_the_server_reported_is_not_reported_again() -> None:
    """ABORTED carrying the new id: adopted quietly. ABORTED carrying the old id (the
    driver did not know the new boot yet): the next new id is adopted quietly."""
    tracker = InstanceTracker()
    tracker.succeeded(OLD, "MVM")
    error = BoardReset("ABORTED: board restarted")
    assert tracker.failed(NEW, error, "MVM") is error
    tracker.succeeded(NEW, "MVM")

    assert tracker.failed(NEW, error, "MVM") is error
    tracker.succeeded(NEWER, "MVM")
    assert tracker.current == NEWER
    with pytest.raises(BoardInstanceChanged):  # a later reset is news again
        tracker.succeeded("EMU-1/boot-10", "MVM")


def test_a_failed_call_that_shows_a_new_instance_reports_the_reset() -> None:
    """The reset matters more than the argument error: the client must re-program."""
    tracker = InstanceTracker()
    tracker.succeeded(OLD, "MVM")
    error = OutOfRange("tile", 9, "0 .. 3")
    reported = tracker.failed(NEW, error, "Calibrate")
    assert isinstance(reported, BoardInstanceChanged) and reported.instance_id == NEW
    assert "tile" in str(reported)
    assert tracker.failed(NEW, error, "Calibrate") is error


def test_a_server_that_names_no_instance_changes_nothing() -> None:
    tracker = InstanceTracker()
    tracker.succeeded(None, "MVM")
    assert tracker.current is None
    tracker.succeeded(OLD, "MVM")
    tracker.succeeded(None, "MVM")
    assert tracker.current == OLD
