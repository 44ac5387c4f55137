"""A board's running totals as JSON values, as ``sidra board`` and ``sidra status`` print
them (a module of its own: status reads them without the board commands' imports)."""

from __future__ import annotations

from typing import Any

from sidra.drivers import BoardStats, Cost

__all__ = ["cost_values", "totals"]


def totals(stats: BoardStats) -> dict[str, Any]:
    """A board's running totals as JSON values (clock s, counts, modeled ns and nJ)."""
    return {
        "clock_s": stats.clock_s,
        "mvm_passes": stats.mvm_passes,
        "cell_writes": stats.cell_writes,
        "max_cell_writes": stats.max_cell_writes,
        **cost_values(stats.total_cost),
    }


def cost_values(cost: Cost) -> dict[str, float]:
    """A modeled cost as JSON values (time ns, energy nJ)."""
    return {"time_ns": cost.time_ns, "energy_nj": cost.energy_nj}
