"""How long an attempt waits for its answer before it is sent again (docs/wire-protocol.md §4.5).

An attempt waits for the wire time both ways and the board's own time for the command,
plus a fixed part T_base for everything else: the host's and the board's latency, a
USB adapter's latency timer, a board slower than its model. The URL's ``timeout=`` is
the most T_base may be. A lost frame costs a whole T_base before it is sent again, so a
fixed 0.25 s makes a line that loses one frame in a hundred many times slower than a
clean one, although its board answers within a millisecond.

The link therefore learns T_base from the answers, as TCP learns its retransmission
timeout (RFC 6298), separately for each kind of request (a PROGRAM_COMMIT's unmodelled
time is not an MVM's):

- each exchange answered at its first attempt gives a sample ``r``: the time it took
  less its wire time and the board's modelled time (never below 0). An exchange that was
  sent again gives none (Karn's rule: which attempt was answered is unknown);
- the first sample sets ``SRTT = r``, ``RTTVAR = r/2``; later ones
  ``RTTVAR ← ¾·RTTVAR + ¼·|SRTT − r|``, ``SRTT ← ⅞·SRTT + ⅛·r``;
- ``T_base = SRTT + max(G, 4·RTTVAR)``, held within [:data:`FLOOR_S`, ``timeout=``],
  and doubled for every attempt that timed out since the last sample (the doubling
  stays for the next exchanges until one is answered at its first attempt).

A kind not timed yet starts from what the link learnt from all kinds, and a link that
has timed nothing waits the URL's ``timeout=``. A spurious retransmission costs a frame,
never a second execution (the board replays its cached answer, §4.3), and the doubling
brings a kind that became slower back to the ceiling within four attempts: from the
floor, an exchange's eight attempts wait 20 + 40 + 80 + 160 ms and then 4 × 250 ms,
1.3 s in all before it gives up, against 2 s with T_base fixed at 0.25 s.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FLOOR_S", "GRANULARITY_S", "RetransmitTimer"]

FLOOR_S = 0.02
"""Least T_base, s: scheduling hiccups of a loaded host (tens of ms) should cost a
spurious retransmission rarely; a lost frame then costs ~20 ms instead of 250."""

GRANULARITY_S = 0.001
"""G of RFC 6298, s: the least margin over SRTT, whatever the spread."""

_ALPHA, _BETA, _K = 1 / 8, 1 / 4, 4


@dataclass(slots=True)
class _Estimate:
    srtt_s: float | None = None  # None: no sample yet
    rttvar_s: float = 0.0
    doublings: int = 0

    def add(self, r: float) -> None:
        if self.srtt_s is None:
            self.srtt_s, self.rttvar_s = r, r / 2
        else:
            self.rttvar_s = (1 - _BETA) * self.rttvar_s + _BETA * abs(self.srtt_s - r)
            self.srtt_s = (1 - _ALPHA) * self.srtt_s + _ALPHA * r
        self.doublings = 0


class RetransmitTimer:
    """T_base per kind of request (any hashable key, the link's ``Msg``), learnt from answers.

    ``ceiling_s``: the URL's ``timeout=``, the most T_base may be, and T_base before any
    answer has been timed. A kind not timed yet uses what the link learnt from all kinds.
    """

    def __init__(self, ceiling_s: float) -> None:
        self.ceiling_s = ceiling_s
        self._floor_s = min(FLOOR_S, ceiling_s)
        self._link = _Estimate()
        self._kinds: dict[object, _Estimate] = {}

    def base_s(self, kind: object) -> float:
        """T_base for the next attempt of a request of ``kind``, s."""
        own = self._kinds.get(kind)
        learnt = own if own is not None and own.srtt_s is not None else self._link
        if learnt.srtt_s is None:
            return self.ceiling_s
        rto = max(self._floor_s, learnt.srtt_s + max(GRANULARITY_S, _K * learnt.rttvar_s))
        return min(self.ceiling_s, rto * 2.0 ** (own.doublings if own is not None else 0))

    def answered(self, kind: object, residual_s: float) -> None:
        """An exchange of ``kind`` answered at its first attempt, ``residual_s`` after it was
        sent beyond its wire and board time (clipped at 0): a sample."""
        r = max(0.0, residual_s)
        self._link.add(r)
        self._kinds.setdefault(kind, _Estimate()).add(r)

    def timed_out(self, kind: object) -> None:
        """An attempt of ``kind`` got no answer in time: the next one waits twice as long
        (up to the ceiling), and so do the next exchanges of ``kind`` until a sample."""
        if self.base_s(kind) < self.ceiling_s:
            self._kinds.setdefault(kind, _Estimate()).doublings += 1
