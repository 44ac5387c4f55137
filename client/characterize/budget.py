"""What a measurement costs the board: operations, cell writes, modeled and wall time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sidra.drivers import Board, BoardInfo, BoardStats
from sidra.drivers.operations import operation_of

__all__ = ["Budget", "MeteredBoard"]


@dataclass(frozen=True, slots=True)
class Budget:
    """Spent by one measurement (or summed over several)."""

    operations: dict[str, int] = field(default_factory=dict)
    """Board operations called, by RPC name (Program, MVM, ...)."""
    cell_writes: int = 0
    """Cell writes the board counted (programming pulses and perturbation writes)."""
    mvm_passes: int = 0
    """Analog passes the board counted (MVMs, transposed, read rows, probes)."""
    modeled_time_ns: float = 0.0
    """The board's modeled hardware time, ns."""
    clock_advanced_s: float = 0.0
    """Virtual clock the measurement advanced (drift waits), s."""
    wall_s: float = 0.0
    """Wall-clock time on this host, s."""

    def __add__(self, other: Budget) -> Budget:
        return Budget(
            dict(Counter(self.operations) + Counter(other.operations)),
            self.cell_writes + other.cell_writes,
            self.mvm_passes + other.mvm_passes,
            self.modeled_time_ns + other.modeled_time_ns,
            self.clock_advanced_s + other.clock_advanced_s,
            self.wall_s + other.wall_s,
        )

    @property
    def calls(self) -> int:
        return sum(self.operations.values())


class MeteredBoard(Board):
    """A board that counts the operations run through it (it does not own ``board``:
    closing it leaves ``board`` open). :meth:`spend` measures a block's budget."""

    def __init__(self, board: Board) -> None:
        self._board = board
        self.operations: Counter[str] = Counter()

    @property
    def info(self) -> BoardInfo:
        return self._board.info

    @property
    def instance_id(self) -> str:
        return self._board.instance_id

    def run(self, request: Any) -> Any:
        self.operations[operation_of(request).rpc] += 1
        return self._board.run(request)

    def close(self) -> None:
        """Leaves the wrapped board open: whoever opened it closes it."""

    def totals(self) -> BoardStats:
        """The board's running totals (GetBoardInfo, not counted as spent)."""
        return self._board.stats()

    @contextmanager
    def spend(self) -> Iterator[list[Budget]]:
        """``with board.spend() as spent:`` ... ``spent[0]`` is the block's budget."""
        before_ops, before, start = Counter(self.operations), self.totals(), time.perf_counter()
        spent: list[Budget] = []
        try:
            yield spent
        finally:
            after = self.totals()
            spent.append(
                Budget(
                    dict(self.operations - before_ops),
                    after.cell_writes - before.cell_writes,
                    after.mvm_passes - before.mvm_passes,
                    after.total_cost.time_ns - before.total_cost.time_ns,
                    after.clock_s - before.clock_s,
                    time.perf_counter() - start,
                )
            )
