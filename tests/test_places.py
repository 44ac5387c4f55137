"""The sync client's places for calls in flight (sidra.client.places): never more holders
than places, a waiting thread goes on as soon as one is given back, acquire/release as
well as ``with``."""

from __future__ import annotations

import threading
import time

import pytest

from sidra.client.places import Places


def test_never_more_holders_than_places() -> None:
    places, lock = Places(2), threading.Lock()
    holding, most = 0, 0

    def call() -> None:
        nonlocal holding, most
        with places:
            with lock:
                holding += 1
                most = max(most, holding)
            time.sleep(0.01)
            with lock:
                holding -= 1

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert most == 2
    assert holding == 0


def test_a_waiter_goes_on_once_a_place_is_given_back() -> None:
    places = Places(1)
    places.acquire()
    entered = threading.Event()

    def waiter() -> None:
        with places:
            entered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not entered.wait(0.05)  # no place free
    places.release()
    assert entered.wait(5)
    thread.join(timeout=5)


def test_at_least_one_place() -> None:
    with pytest.raises(ValueError, match="count: got 0"):
        Places(0)
