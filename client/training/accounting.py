"""Modeled hardware cost of a job, and the one meter every training job counts with.

Every board response carries its modeled cost; host-side work the board does
not see (computing a loss from the outputs) is charged at the board's
``timing.host_loss_ns`` and its power, so a training loop can report the
time and energy the same job would take on the hardware. :class:`JobMeter`
turns the layers' ledgers and the board's write counter into a job's
:class:`JobCounts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sidra.drivers import Board, Cost

__all__ = ["CostLedger", "JobCounts", "JobMeter", "Metered"]


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
    """Host loss computations charged."""

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


@dataclass(frozen=True, slots=True)
class JobCounts:
    """What a job spent: the figures every run record and report carries."""

    loss_evaluations: int = 0
    """Host loss computations (each charged at ``timing.host_loss_ns``)."""
    mvm_calls: int = 0
    """MVM and TransposeMVM calls the job's layers issued."""
    device_writes: int = 0
    """Cell writes on the board: programming pulses and perturbation writes."""
    modeled_time_ns: float = 0.0
    """Modeled hardware time of the board operations and host losses, ns."""
    modeled_energy_nj: float = 0.0
    """Modeled hardware energy of the same, nJ."""

    @classmethod
    def from_json(cls, saved: Any) -> JobCounts:
        """The counts a saved run holds as JSON (TypeError for an unknown or missing
        name, ValueError for a value that is not a count)."""
        counts = cls(**saved)
        return cls(
            int(counts.loss_evaluations), int(counts.mvm_calls), int(counts.device_writes),
            float(counts.modeled_time_ns), float(counts.modeled_energy_nj),
        )  # fmt: skip


class Metered(Protocol):
    """What a meter reads of a layer: its MVM call count and its cost ledger."""

    mvm_calls: int
    ledger: CostLedger


class JobMeter:
    """Counts of one job from the moment the meter starts, shared by every training job.

    It snapshots ``board.stats()`` (cell writes) and each layer's MVM calls,
    loss evaluations and modeled cost when built; :meth:`read` returns what
    was spent since, plus ``carried`` (the counts of a run resumed from a
    checkpoint). Host losses are charged with :meth:`charge_losses` or by
    the evaluators on the layers' ledgers; either way they are counted once.
    """

    def __init__(
        self, board: Board, layers: Sequence[Metered], carried: JobCounts | None = None
    ) -> None:
        if not layers:
            raise ValueError("layers: got none, expected the job's layers")
        self.board = board
        self.layers = list(layers)
        self.carried = carried or JobCounts()
        self._writes = board.stats().cell_writes
        self._last_writes = self._writes
        self._calls = [layer.mvm_calls for layer in self.layers]
        self._losses = [layer.ledger.loss_evaluations for layer in self.layers]
        self._cost = [layer.ledger.total for layer in self.layers]

    def charge_losses(self, count: int) -> None:
        """Charges ``count`` host loss computations (to the first layer's ledger)."""
        self.layers[0].ledger.charge_host_loss(count)

    @property
    def device_writes(self) -> int:
        """Cell writes since the start (carried writes included): one stats call."""
        self._last_writes = self.board.stats().cell_writes
        return self.carried.device_writes + self._last_writes - self._writes

    def read(self, *, fresh_writes: bool = True) -> JobCounts:
        """Everything spent since the start, plus the carried counts. ``fresh_writes``
        False: the device writes as last read, without the stats call that reads them (a
        round trip over a link; an SPSA job's per-step boundary takes the rest alone)."""
        spent = Cost()
        for layer, start in zip(self.layers, self._cost, strict=True):
            total = layer.ledger.total
            spent = spent + Cost(total.time_ns - start.time_ns, total.energy_nj - start.energy_nj)
        carried = self.carried
        return JobCounts(
            loss_evaluations=carried.loss_evaluations
            + sum(layer.ledger.loss_evaluations for layer in self.layers)
            - sum(self._losses),
            mvm_calls=carried.mvm_calls
            + sum(layer.mvm_calls for layer in self.layers)
            - sum(self._calls),
            device_writes=self.device_writes
            if fresh_writes
            else self.carried.device_writes + self._last_writes - self._writes,
            modeled_time_ns=carried.modeled_time_ns + spent.time_ns,
            modeled_energy_nj=carried.modeled_energy_nj + spent.energy_nj,
        )
