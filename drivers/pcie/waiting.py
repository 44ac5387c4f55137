"""How a host waits for a completion: spin, poll, sleep, and sleep through long commands.

A polled PCIe driver trades a core for latency. On the machines the virtual board
runs on (CI has two cores, the board process needs one, its BLAS threads both
during a batch MVM) the trade has to adapt to the command:

* **Short commands** (one MVM, tens of µs) are answered sooner than any sleep can
  wake up (Linux timer slack makes ``sleep(0)`` a ~60 µs nap): the host spins.
* **Long commands** (a batch MVM, milliseconds) are slept through, as the Linux
  block layer's hybrid polling does for NVMe: sleep until shortly before the
  command's expected completion, then poll. The board keeps both cores meanwhile.
* Nothing ever calls ``sched_yield``: on a busy machine a yield can hand the core
  to another process for a whole scheduler tick (4 ms).

The expected completion time of each kind of command is learned from the
completions themselves (:class:`ServiceTimes`), and unlearned quickly when a
sleep turns out to have been too long, so that one slow outlier (a preempted
board process) cannot make the host oversleep for long.
"""

from __future__ import annotations

import select
import time

__all__ = [
    "HYBRID_MARGIN_S",
    "HYBRID_MIN_S",
    "POLL_S",
    "SPIN_S",
    "Backoff",
    "ServiceTimes",
    "SpinGate",
]

SPIN_S = 200e-6
"""Busy-poll this long first: longer than a short command takes, with room for a board
that has to be woken first (a futex wake-up on a virtual machine costs ~10-20 µs), so
that host and board do not fall into taking turns to sleep; short enough that a host
sharing its core with the board (a busy machine) soon lets the board run."""
POLL_S = 1e-3
"""Then poll with a zero-timeout select up to this long (each lets other threads have
the GIL, without giving the core away), then sleep 50 µs / 1 ms between polls."""
HYBRID_MIN_S = 300e-6
"""Commands expected to take longer than this are slept through."""
HYBRID_MARGIN_S = 150e-6
"""A sleeping host wakes up this long before the expected completion (more than a
sleep's timer slack, ~60 µs, so that it wakes before the board answers)."""
_WARMUP = 4
"""Completions of a kind seen before the host sleeps through one: their minimum is
the first estimate (the first command of a kind may pay page faults or a cold cache)."""
_EWMA = 0.25
"""Weight of the newest completion time in the running estimate of its kind."""
_MAX_STEP = 2.0
"""A completion folds in as at most this many times the estimate: one preempted
outlier raises it by a quarter, a kind that really got slower doubles it in a few."""
_SHRINK = 0.75
"""Factor on the estimate when a completion was already waiting after a sleep."""


class Backoff:
    """Spin, then poll, then short sleeps (the waits after a hybrid sleep)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def wait(self) -> None:
        elapsed = self.elapsed()
        if elapsed < SPIN_S:
            return
        if elapsed < POLL_S:
            select.select([], [], [], 0)  # drops the GIL for ~1 µs; sleep(0) naps ~60 µs
        else:
            time.sleep(50e-6 if elapsed < 20e-3 else 1e-3)


_MISSES = 2
"""Spins in a row that ran out before the answer came: the board is not running."""
_SKIPPED = 32
"""Waits that then sleep at once, before spinning is tried again."""


class SpinGate:
    """Whether a spin is worth it: only while the board runs on another core.

    On a busy machine the board process may share the host's core; a spinning
    host then keeps the board from running until the scheduler preempts it, and
    every round trip costs the whole spin and more. When spins keep running out,
    the host sleeps on the interrupt at once for a while (two wake-ups per round
    trip, tens of µs), then tries spinning again. Only spins for commands known to
    be short count (:meth:`ServiceTimes.known_short`): the first long commands of a
    kind, not learned yet, run a spin out too."""

    def __init__(self) -> None:
        self._misses = 0
        self._skipped = 0

    def should_spin(self) -> bool:
        if self._skipped:
            self._skipped -= 1
            return False
        return True

    def spun(self, answered: bool) -> None:
        """Records a spin that got its answer (``answered``) or ran out."""
        if answered:
            self._misses = 0
            return
        self._misses += 1
        if self._misses >= _MISSES:
            self._misses, self._skipped = 0, _SKIPPED


class ServiceTimes:
    """Expected completion time of each kind of command, s, learned as they complete.

    A kind is whatever the caller groups by (the queues use opcode and payload size
    class). The first completions of a kind give their minimum; after that each one
    folds into a running mean, clamped so that one outlier moves it a little; a
    completion that was already waiting when a hybrid sleep ended says only that
    the estimate was too long, and shrinks it."""

    def __init__(self) -> None:
        self._estimate_s: dict[object, float] = {}
        self._seen: dict[object, int] = {}

    def expected_s(self, kind: object) -> float:
        """The expected completion time of ``kind``, s (0: not learned yet)."""
        if self._seen.get(kind, 0) < _WARMUP:
            return 0.0
        return self._estimate_s[kind]

    def known_short(self, kind: object) -> bool:
        """Whether ``kind`` has been learned and is not slept through (HYBRID_MIN_S): a
        spin that then runs out says the board did not run, not that the command was long."""
        return 0.0 < self.expected_s(kind) <= HYBRID_MIN_S

    def sleep_s(self, kind: object, elapsed_s: float) -> float:
        """How long a host that waited ``elapsed_s`` already should sleep (0: don't)."""
        left = self.expected_s(kind) - elapsed_s
        return left - HYBRID_MARGIN_S if left > HYBRID_MIN_S else 0.0

    def learn(self, kind: object, took_s: float, overslept: bool) -> None:
        """Folds in one completion that took ``took_s`` from its doorbell; ``overslept``
        when it was already there the first time the host looked after sleeping."""
        seen = self._seen.get(kind, 0)
        self._seen[kind] = seen + 1
        estimate = self._estimate_s.get(kind, took_s)
        if seen < _WARMUP:
            estimate = min(estimate, took_s)
        elif overslept:
            estimate = _SHRINK * min(estimate, took_s)
        else:
            estimate += _EWMA * (min(took_s, _MAX_STEP * estimate) - estimate)
        self._estimate_s[kind] = estimate
