"""The board lock takes turns between principals: round robin, FIFO within one."""

from __future__ import annotations

import threading
import time

from sidra.server.turns import BoardTurns


def _queue_up(turns: BoardTurns, calls: list[str], order: list[str]) -> list[threading.Thread]:
    """Starts one thread per call ("A1" is principal A's first), each waiting for its
    turn; returns once every one of them is queued, in the order given."""
    threads = []
    for call in calls:

        def run(call: str = call) -> None:
            with turns.turn(call[0]):
                order.append(call)

        thread = threading.Thread(target=run)
        queued = turns.waiting()
        thread.start()
        deadline = time.monotonic() + 10
        while turns.waiting() == queued:  # queued before the next one starts
            assert time.monotonic() < deadline, f"{call} never queued"
            time.sleep(0.001)
        threads.append(thread)
    return threads


def test_waiting_principals_take_turns_in_the_order_they_came() -> None:
    """A floods with three calls, then B asks once: B goes second, not fourth (a FIFO
    queue would serve A1 A2 A3 B1; a plain lock, any order)."""
    turns, order = BoardTurns(), []
    with turns.turn("holder"):
        threads = _queue_up(turns, ["A1", "A2", "A3", "B1", "C1", "B2"], order)
    for thread in threads:
        thread.join(timeout=10)
    assert order == ["A1", "B1", "C1", "A2", "B2", "A3"]
    assert turns.waiting() == 0


def test_a_principal_alone_is_served_in_order_without_waiting() -> None:
    turns, order = BoardTurns(), []
    for i in range(5):
        with turns.turn("A"):
            order.append(i)
    assert order == [0, 1, 2, 3, 4]
    with turns.turn("holder"):
        threads = _queue_up(turns, ["A1", "A2", "A3"], order)
    for thread in threads:
        thread.join(timeout=10)
    assert order[5:] == ["A1", "A2", "A3"]


def test_an_error_inside_a_turn_gives_the_board_back() -> None:
    turns = BoardTurns()
    try:
        with turns.turn("A"):
            raise ValueError("a failed call")
    except ValueError:
        pass
    done = threading.Event()

    def next_call() -> None:
        with turns.turn("B"):
            done.set()

    thread = threading.Thread(target=next_call)
    thread.start()
    assert done.wait(timeout=10), "the board stayed locked after a failed call"
    thread.join(timeout=10)


def test_only_calls_that_queued_are_told_how_long_they_waited() -> None:
    """``on_wait`` (the metrics' histogram) hears each call that found the board busy,
    once it has its turn; a call that found it free is not timed. A listener that fails
    leaves the board to the next call, not held by a call that never ran."""
    waits: list[float] = []
    turns, order = BoardTurns(on_wait=waits.append), []
    with turns.turn("A"):  # free: not timed
        pass
    assert waits == []
    with turns.turn("holder"):
        threads = _queue_up(turns, ["A1", "B1"], order)
    for thread in threads:
        thread.join(timeout=10)
    assert order == ["A1", "B1"] and len(waits) == 2 and min(waits) > 0

    def failing(seconds: float) -> None:
        raise RuntimeError("a listener's fault")

    turns.on_wait = failing
    failed: list[BaseException] = []

    def queued_call() -> None:
        try:
            with turns.turn("C"):
                order.append("C1")
        except RuntimeError as exc:
            failed.append(exc)

    with turns.turn("holder"):
        thread = threading.Thread(target=queued_call)
        thread.start()
        deadline = time.monotonic() + 10
        while turns.waiting() == 0:  # queued behind the holder
            assert time.monotonic() < deadline, "C1 never queued"
            time.sleep(0.001)
    thread.join(timeout=10)
    assert len(failed) == 1 and order[-1] == "B1"  # the call did not run
    with turns.turn("D"):  # and the board is free
        order.append("D1")
    assert order[-1] == "D1"
