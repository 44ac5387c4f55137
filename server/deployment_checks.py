"""CheckDeployment and ListDeploymentChecks (deployments.proto "Checked", "Checks kept"):
what a deployment's cells conduct now against the targets it was registered with, each
check kept in the state store beside its deployment.

Intact compares the store's targets with the digests taken at registration: it says what
was programmed through this server. A check reads the cells themselves (ReadConductance
of each region, in the board's turn, with the caller's rights), so it also sees what the
store cannot: a board replaced under the server, cells written around it (a serial board
driven directly), drift and stuck cells. Kept, the checks of months show a deployment
ageing, and the metrics' figures outlive a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from sidra.drivers import (
    Board,
    Cost,
    DeadlineExceeded,
    FailedPrecondition,
    ReadResult,
    Region,
    SidraError,
)
from sidra.drivers.matching import ConductanceMatch, match_conductances
from sidra.hil.convert import region_to_pb
from sidra.hil.v1 import board_pb2
from sidra.hil.v1 import deployments_pb2 as pb
from sidra.server.state.checks import CheckRow, RegionCheckRow
from sidra.server.state.deployments import DeploymentRecords, DeploymentRow, rewritten_text

__all__ = [
    "DeploymentChecks",
    "ReadCells",
    "TargetsOf",
    "check_message",
    "check_restored",
]

ReadCells = Callable[[int, Region], ReadResult]
"""Reads ``region`` of ``tile`` in the board's turn, with the caller's rights."""

TargetsOf = Callable[[int], npt.NDArray[np.float32]]
"""The golden targets (µS) of a tile of the served board, as the store keeps them."""


class DeploymentChecks:
    """Runs checks and keeps them in ``records``' store; remembers in memory when a check
    the server made itself was refused (a board gone is not asked again at every
    scrape)."""

    def __init__(self, records: DeploymentRecords) -> None:
        self.records = records
        self._lock = threading.Lock()
        self._refused: dict[str, float] = {}  # when a check was last refused, Unix s

    def check(
        self,
        found: DeploymentRow,
        read: ReadCells,
        targets_of: TargetsOf,
        now_unix_s: float,
        checked_by: str,
        read_repeats: int = 1,
        wanted: Callable[[], bool] = lambda: True,
    ) -> pb.DeploymentCheck:
        """Reads every region of ``found`` ``read_repeats`` times, compares each cell's
        mean with its target and keeps the check; FailedPrecondition when it is not intact
        (its registered targets are no longer in the store), before the reads or after
        them. ``wanted`` is asked before each read but the first: once it says no (the
        caller gone, past its deadline; the server stopping) the check ends there,
        DeadlineExceeded, kept nowhere; a hundred reads of a tile over a serial link
        take minutes nobody would wait for."""
        if not found.intact:
            raise FailedPrecondition(
                f"deployment {found.name!r} is not intact: {rewritten_text(found)} since it "
                "was registered, so the store holds no targets of it to check its cells "
                "against; deploy it again"
            )
        goldens: dict[int, npt.NDArray[np.float32]] = {}
        regions, means, targets, variances, cost = [], [], [], [], Cost()
        made, reads = 0, read_repeats * len(found.regions)
        for r in found.regions:
            cells = []
            for _ in range(read_repeats):
                if made and not wanted():
                    raise DeadlineExceeded(
                        f"the check of deployment {found.name!r} ended after {made} of its "
                        f"{reads} reads: its caller no longer waits for it; nothing is kept"
                    )
                made += 1
                result = read(r.tile, r.region)
                cells.append(np.asarray(result.conductances, np.float64).ravel())
                cost += result.cost
            if r.tile not in goldens:
                goldens[r.tile] = targets_of(r.tile)
            target = goldens[r.tile][r.region.slices].ravel()
            mean = np.mean(cells, axis=0)
            spread = np.var(cells, axis=0, ddof=1) if read_repeats > 1 else None
            noise_us = 0.0 if spread is None else float(np.sqrt(spread.mean()))
            match = match_conductances(mean, target)
            regions.append(_region_row(r.tile, r.region, match, noise_us))
            means.append(mean)
            targets.append(target)
            if spread is not None:
                variances.append(spread)
        overall = match_conductances(np.concatenate(means), np.concatenate(targets))
        # Read to read: each cell's sample variance, its mean over the cells as an rms.
        noise = float(np.sqrt(np.concatenate(variances).mean())) if variances else 0.0
        row = CheckRow(
            found.name, checked_by, now_unix_s, overall.correlation, overall.rms_deviation_us,
            overall.mean_deviation_us, cost, tuple(regions), read_repeats, noise,
        )  # fmt: skip
        self.records.add_check(found, row)
        return check_message(row)

    def refused(self, name: str, now_unix_s: float) -> None:
        """Notes that a check of ``name`` the server made itself was refused then."""
        with self._lock:
            self._refused[name] = now_unix_s

    def due(
        self, name: str, last: pb.DeploymentCheck | None, now_unix_s: float, every_s: float
    ) -> bool:
        """Whether ``name``, whose latest check is ``last``, was neither checked nor refused
        a check within ``every_s``."""
        with self._lock:
            refused = self._refused.get(name, 0.0)
        tried = max(0.0 if last is None else last.checked_unix_s, refused)
        return not tried or now_unix_s - tried >= every_s

    def forget(self, name: str) -> None:
        """Drops the refusals noted of ``name`` (deleted, or registered again)."""
        with self._lock:
            self._refused.pop(name, None)

    def latest(self, board_serial: str) -> dict[str, pb.DeploymentCheck]:
        """The latest check kept of each of the board's deployments, by name."""
        return {
            name: check_message(row)
            for name, row in self.records.latest_checks(board_serial).items()
        }

    def history(
        self, board_serial: str, name: str, limit: int, before_unix_s: float
    ) -> pb.ListDeploymentChecksResponse:
        """ListDeploymentChecks' answer: the latest ``limit`` checks of ``name`` before
        ``before_unix_s`` (0: all), oldest first."""
        rows, kept = self.records.checks(board_serial, name, limit, before_unix_s)
        return pb.ListDeploymentChecksResponse(
            checks=[check_message(row) for row in rows], kept=kept
        )


def check_message(row: CheckRow) -> pb.DeploymentCheck:
    """A kept check as its DeploymentService message."""
    return pb.DeploymentCheck(
        name=row.name, checked_unix_s=row.checked_unix_s, checked_by=row.checked_by,
        correlation=row.correlation, rms_deviation_us=row.rms_deviation_us,
        mean_deviation_us=row.mean_deviation_us, read_repeats=row.read_repeats,
        read_noise_us=row.read_noise_us,
        cost=board_pb2.OperationCost(time_ns=row.cost.time_ns, energy_nj=row.cost.energy_nj),
        regions=[
            pb.RegionCheck(
                tile=r.tile, region=region_to_pb(r.region), correlation=r.correlation,
                rms_deviation_us=r.rms_deviation_us, mean_deviation_us=r.mean_deviation_us,
                read_noise_us=r.read_noise_us,
            )
            for r in row.regions
        ],
    )  # fmt: skip


def _region_row(
    tile: int, region: Region, match: ConductanceMatch, read_noise_us: float
) -> RegionCheckRow:
    return RegionCheckRow(
        tile, region, match.correlation, match.rms_deviation_us, match.mean_deviation_us,
        read_noise_us,
    )  # fmt: skip


def check_restored(
    board: Board,
    records: DeploymentRecords,
    tiles: Sequence[int],
    now_unix_s: float,
    checked_by: str,
) -> list[str]:
    """Checks each intact deployment of ``board`` on any of ``tiles`` (those ``sidra
    serve --restore`` programmed back) and keeps the checks; one line each for the log.

    A deployment's latest check was otherwise the one before the restart, often made of a
    board that had lost its cells ("NOT HELD"), and ``model list`` and ``sidra status``
    showed it until someone checked again. The board is read directly: the server does
    not serve yet, so no lease or turn stands in the way."""
    serial = board.info.serial_number
    checks, lines = DeploymentChecks(records), []
    for found in records.of_board(serial):
        if not found.intact or not {r.tile for r in found.regions} & set(tiles):
            continue
        try:
            made = checks.check(
                found,
                lambda tile, region: board.read_conductance(tile, region),
                lambda tile: records.store.golden(serial, tile).targets_us,
                now_unix_s,
                checked_by,
            )
        except SidraError as exc:  # the restore stands; the listing keeps its older check
            lines.append(f"  deployment {found.name!r} not checked after the restore: {exc}")
            continue
        lines.append(
            f"  deployment {found.name!r} checked after the restore: correlation "
            f"{made.correlation:.3f}, rms deviation {made.rms_deviation_us:.3g} µS"
        )
    return lines
