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
