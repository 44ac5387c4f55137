"""The frame payload a noisy line carries best (docs/wire-protocol.md §4.6).

A frame arrives intact only if every one of its bits does, so on a line that flips one
bit in 10⁵ a 64 KiB frame almost never gets through, however often it is sent, while
512-byte frames pass 19 times in 20. The link therefore keeps its latest attempts (how
many bytes each put on the wire both ways, and whether the frame or its answer came
back damaged), estimates from them the line's damage rate λ per byte (an attempt of
b bytes arrives intact with probability exp(−λ·b)), and negotiates in HELLO the
largest payload that is both

- *reliable*: an attempt damaged at most one time in 20 (:data:`DAMAGE_PER_ATTEMPT`),
  so that the eight attempts of an exchange all fail about once in 10¹⁰ exchanges, and
- *worth it*: no longer than the payload that moves the most per byte sent,
  ``P / (P + h) · exp(−λ·(P + h))``, whose maximum lies at
  ``P + h = h/2 + sqrt(h²/4 + h/λ)``, h the bytes an exchange costs besides its payload.

A lost frame (a timeout) says nothing of size and is left out. A single damaged frame
is what retransmission is for; the size comes down once two of the latest attempts were
damaged and the estimate says the present size is damaged twice as often as aimed at
(a margin, so that an estimate near the line between two sizes does not move them back
and forth). Once frames of about the present size have come through clean for a while
(short ones, a PING, say little of long ones) the link offers more again, at most twice
as much at a time, up to what the URL allows: a burst of noise does not keep the line
slow for good.
"""

from __future__ import annotations

import math
from collections import Counter, deque

from sidra.drivers.wire.framing import MIN_PAYLOAD

__all__ = [
    "DAMAGE_PER_ATTEMPT",
    "EXCHANGE_OVERHEAD_BYTES",
    "FrameSizer",
    "best_payload",
    "damage_rate",
]

EXCHANGE_OVERHEAD_BYTES = 128
"""What one exchange costs besides its payload, in bytes on the wire: two headers, CRCs
and delimiters (about 36 B), the answer of a bulk request, and the turnaround (about
1 ms, 92 byte times at 921,600 Bd)."""

DAMAGE_PER_ATTEMPT = 0.05
"""Highest chance that an attempt is damaged at the chosen payload."""

WINDOW = 256
"""Attempts the damage rate is estimated from (the latest)."""

DAMAGED_TO_ACT = 2
"""Damaged attempts in the window before the frame size comes down."""

CLEAN_TO_GROW = 64
"""Clean attempts in a row, each at least half the present payload long, after which the
link sees whether it may offer more."""


def damage_rate(attempts: list[tuple[int, bool]]) -> float:
    """The damage rate per byte λ that makes ``attempts`` (wire bytes, damaged) likeliest,
    an attempt of b bytes arriving intact with probability exp(−λ·b).

    With no clean attempt the likelihood grows without bound; the rate is then the one
    that damages the smallest attempt nine times in ten (a floor: the line is at least
    that bad)."""
    clean = sum(size for size, damaged in attempts if not damaged)
    damaged = Counter(size for size, hit in attempts if hit)  # sizes repeat: sum each once
    if not damaged:
        return 0.0
    if clean == 0:
        return math.log(10) / min(damaged)

    def score(rate: float) -> float:  # d(log-likelihood)/dλ, falling in λ
        return (
            sum(n * size / math.expm1(min(rate * size, 700.0)) for size, n in damaged.items())
            - clean
        )

    low, high = 1e-15, 1.0  # per byte: from no damage to every byte damaged
    while high / low > 1.01:  # bisection in log space: the root's scale is unknown
        middle = math.sqrt(low * high)
        if score(middle) > 0:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)


def best_payload(rate: float, ceiling: int, overhead: int = EXCHANGE_OVERHEAD_BYTES) -> int:
    """The largest payload (bytes, a multiple of 256 in MIN_PAYLOAD .. ``ceiling``) that
    is reliable and worth it at damage rate ``rate`` per byte (the module's two rules)."""
    if rate <= 0.0:
        return ceiling
    reliable = -math.log1p(-DAMAGE_PER_ATTEMPT) / rate - overhead
    worth_it = math.sqrt(overhead * overhead / 4 + overhead / rate) - overhead / 2
    payload = int(min(reliable, worth_it)) // MIN_PAYLOAD * MIN_PAYLOAD
    return max(MIN_PAYLOAD, min(ceiling, payload))


class FrameSizer:
    """The payload limit a link should negotiate, from what its attempts met.

    ``ceiling`` is the most the host offers (the URL's ``max_payload``, and after
    :meth:`fit` no more than the board takes); ``limit`` starts there and moves as
    :meth:`record` is told of each attempt. ``changes`` counts the moves.
    """

    def __init__(self, ceiling: int) -> None:
        self.offered = ceiling
        self.ceiling = ceiling
        self.limit = ceiling
        self.changes = 0
        self._recent: deque[tuple[int, bool]] = deque(maxlen=WINDOW)
        self._clean_run = 0
        self._damaged = 0  # in the window

    def fit(self, board_max_payload: int, negotiated: int) -> None:
        """Bounds the limit by what the board can ever take and by what its HELLO
        settled on (``board_max_payload``, ``max_payload``)."""
        self.ceiling = max(MIN_PAYLOAD, min(self.offered, board_max_payload))
        self.limit = min(self.limit, self.ceiling, negotiated)

    def record(self, wire_bytes: int, damaged: bool) -> None:
        """One attempt: ``wire_bytes`` on the wire both ways, and whether the request was
        NAKed or its answer came back damaged."""
        if len(self._recent) == WINDOW and self._recent[0][1]:
            self._damaged -= 1
        self._recent.append((wire_bytes, damaged))
        if not damaged:
            if wire_bytes < self.limit // 2:
                return  # a short frame (a PING, a small command) says little of long ones
            self._clean_run += 1
            if self._clean_run % CLEAN_TO_GROW == 0 and self.limit < self.ceiling:
                more = min(2 * self.limit, self.ceiling)
                if self._best() >= more:
                    self._move_to(more)
            return
        self._damaged += 1
        self._clean_run = 0
        if self._damaged < DAMAGED_TO_ACT:
            return
        rate = damage_rate(list(self._recent))
        # Twice the damage aimed at before coming down, so that an estimate near the
        # line between two sizes does not move the frames back and forth.
        if -math.expm1(-rate * (self.limit + EXCHANGE_OVERHEAD_BYTES)) > 2 * DAMAGE_PER_ATTEMPT:
            best = best_payload(rate, self.ceiling)
            if best < self.limit:
                self._move_to(best)

    def _best(self) -> int:
        rate = damage_rate(list(self._recent)) if self._damaged else 0.0
        return best_payload(rate, self.ceiling)

    def _move_to(self, limit: int) -> None:
        self.limit = limit
        self.changes += 1
