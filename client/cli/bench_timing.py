"""How the benchmarks time calls: repeated, or in bursts that start from rest.

Two processes on one machine (a client and its server, a host and its virtual board)
each keep BLAS worker threads that spin for a while after every matrix product. A
batch timed right after the other side's batch shares the CPUs with those spinning
threads (on a 2-vCPU machine an in-process batch-1024 MVM took 7-9 ms that way
against 1.6-2.2 ms in a loop of its own), so a throughput is timed as a burst of
back-to-back calls of one path after a pause in which every such thread has gone to
sleep: each path is measured at its own sustained rate, and each pays the same
wake-ups at the start of its burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["BURST", "SETTLE_S", "burst_s", "times_s"]

BURST = 5
"""Calls timed back to back in a burst, as a job streaming batches issues them."""
SETTLE_S = 0.3
"""Pause before each burst, s: long enough for the BLAS worker threads of every process
involved, which spin for about 0.1 s after each product, to have gone to sleep."""


def times_s(call: Callable[[], Any], repeats: int) -> list[float]:
    """The wall time of each of ``repeats`` calls of ``call``, s."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def burst_s(call: Callable[[], Any], burst: int = BURST, settle_s: float = SETTLE_S) -> float:
    """Time per call of a burst of ``burst`` back-to-back calls after ``settle_s`` of
    rest, s."""
    time.sleep(settle_s)
    return sum(times_s(call, burst)) / burst
