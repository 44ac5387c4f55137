"""CheckDeployment (deployments.proto "Checked"): what a deployment's cells conduct now
against the targets it was registered with, and the latest such check of each
deployment for the metrics.

Intact compares the store's targets with the digests taken at registration: it says what
was programmed through this server. A check reads the cells themselves (ReadConductance
of each region, in the board's turn, with the caller's rights), so it also sees what the
store cannot: a board replaced under the server, cells written around it (a serial board
driven directly), drift and stuck cells.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from sidra.drivers import Cost, FailedPrecondition, ReadResult, Region
from sidra.drivers.matching import ConductanceMatch, match_conductances
from sidra.hil.convert import region_to_pb
from sidra.hil.v1 import board_pb2
from sidra.hil.v1 import deployments_pb2 as pb
from sidra.server.state.deployments import DeployedRegionRow, DeploymentRow

__all__ = ["DeploymentChecks", "ReadCells", "TargetsOf"]

ReadCells = Callable[[int, Region], ReadResult]
"""Reads ``region`` of ``tile`` in the board's turn, with the caller's rights."""

TargetsOf = Callable[[int], npt.NDArray[np.float32]]
"""The golden targets (µS) of a tile of the served board, as the store keeps them."""


class DeploymentChecks:
    """Runs checks, and keeps the latest of each deployment (in memory, for the metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, pb.DeploymentCheck] = {}
        self._refused: dict[str, float] = {}  # when a check was last refused, Unix s

    def check(
        self, found: DeploymentRow, read: ReadCells, targets_of: TargetsOf, now_unix_s: float
    ) -> pb.DeploymentCheck:
        """Reads every region of ``found`` and compares it with its targets; FailedPrecondition
        when it is not intact (its registered targets are no longer in the store)."""
        if not found.intact:
            self.forget(found.name)  # its cells hold another's targets: no figure holds
            changed = "; ".join(_rewritten(r) for r in found.regions if not r.intact)
            raise FailedPrecondition(
                f"deployment {found.name!r} is not intact: {changed} since it was registered, "
                "so the store holds no targets of it to check its cells against; deploy it "
                "again"
            )
        goldens: dict[int, npt.NDArray[np.float32]] = {}
        regions, reads, targets, cost = [], [], [], Cost()
        for r in found.regions:
            result = read(r.tile, r.region)
            if r.tile not in goldens:
                goldens[r.tile] = targets_of(r.tile)
            target = goldens[r.tile][r.region.slices]
            regions.append(_region_check(r, match_conductances(result.conductances, target)))
            reads.append(np.asarray(result.conductances).ravel())
            targets.append(target.ravel())
            cost += result.cost
        overall = match_conductances(np.concatenate(reads), np.concatenate(targets))
        checked = pb.DeploymentCheck(
            name=found.name, checked_unix_s=now_unix_s, regions=regions,
            correlation=overall.correlation, rms_deviation_us=overall.rms_deviation_us,
            mean_deviation_us=overall.mean_deviation_us,
            cost=board_pb2.OperationCost(time_ns=cost.time_ns, energy_nj=cost.energy_nj),
        )  # fmt: skip
        with self._lock:
            self._latest[found.name] = checked
        return checked

    def refused(self, name: str, now_unix_s: float) -> None:
        """Notes that a check of ``name`` the server made itself was refused then."""
        with self._lock:
            self._refused[name] = now_unix_s

    def due(self, name: str, now_unix_s: float, every_s: float) -> bool:
        """Whether ``name`` was neither checked nor refused a check within ``every_s``
        (a board gone is not asked again at every scrape)."""
        with self._lock:
            last = self._latest.get(name)
            tried = max(0.0 if last is None else last.checked_unix_s,
                        self._refused.get(name, 0.0))  # fmt: skip
        return not tried or now_unix_s - tried >= every_s

    def forget(self, name: str) -> None:
        """Drops what is known of ``name``'s checks (the deployment deleted, registered
        again, or written over)."""
        with self._lock:
            self._latest.pop(name, None)
            self._refused.pop(name, None)

    def latest(self) -> Mapping[str, pb.DeploymentCheck]:
        """The latest check of each deployment checked since the server started."""
        with self._lock:
            return MappingProxyType(dict(self._latest))


def _region_check(r: DeployedRegionRow, match: ConductanceMatch) -> pb.RegionCheck:
    return pb.RegionCheck(
        tile=r.tile, region=region_to_pb(r.region), correlation=match.correlation,
        rms_deviation_us=match.rms_deviation_us, mean_deviation_us=match.mean_deviation_us,
    )  # fmt: skip


def _rewritten(r: DeployedRegionRow) -> str:
    who = f" by {r.rewritten_by}" if r.rewritten_by else ""
    return f"tile {r.tile} {r.region.cells_text()} programmed with other targets{who}"
