"""Modeled hardware cost of a job: board operations plus host computation.

Every board response carries its modeled cost; host-side work the board does
not see (computing a loss from the outputs) is charged at the board profile's
``timing.host_loss_ns`` and its power, so a training loop can report the
time and energy the same job would take on the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidra.drivers import Board, Cost

__all__ = ["CostLedger"]


@dataclass
class CostLedger:
    """Running totals of modeled time (ns) and energy (nJ)."""

    host_loss_ns: float = 0.0
    """Modeled time of one host loss computation, ns."""
    power_w: float = 0.0
    """Power charged for host computation, W (the board's, per the SIDRA figures)."""
    board: Cost = Cost()
    """Sum of the costs the board reported."""
    host: Cost = Cost()
    """Sum of the host computation charged."""
    loss_evaluations: int = 0

    @classmethod
    def for_board(cls, board: Board) -> CostLedger:
        """A ledger using the board's reported timing (zero host cost if it reports none)."""
        timing = board.info.timing
        return cls(host_loss_ns=timing.host_loss_ns, power_w=timing.board_power_w)

    def add(self, cost: Cost) -> None:
        """Adds what a board operation reported."""
        self.board = self.board + cost

    def charge_host_loss(self, count: int = 1) -> None:
        """Charges ``count`` host loss computations."""
        time_ns = count * self.host_loss_ns
        self.host = self.host + Cost(time_ns, time_ns * self.power_w)
        self.loss_evaluations += count

    @property
    def total(self) -> Cost:
        return self.board + self.host
