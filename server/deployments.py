"""``sidra.hil.v1.DeploymentService``: trained networks on the served board's tiles, by name
(deployments.proto).

Thin methods (routed by :mod:`sidra.server.routes`, which parses the request bytes and
admits the caller): check every field (a refused call changes nothing), ask the store
(:class:`~sidra.server.state.deployments.DeploymentRecords`), answer. Errors leave through
``sidra.server.status``. The server keeps a model file as
given: it checks that it is a zip archive (an .npz) of a bounded size and nothing more,
since the format is the client's (docs/models.md) and only the client reads it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import Message

from sidra.drivers import (
    BoardInfo,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    PermissionDenied,
    ReadResult,
    Region,
    SidraError,
)
from sidra.drivers.validation import check_region
from sidra.hil.convert import region_from_pb, region_to_pb
from sidra.hil.v1 import deployments_pb2 as pb
from sidra.server.deployment_checks import DeploymentChecks
from sidra.server.limits import PrincipalLimits
from sidra.server.protections import Protections, check_unleased
from sidra.server.routes import unary_service_handler
from sidra.server.sessions.registry import TileHolder
from sidra.server.state import SERVER_PRINCIPAL, StateStore
from sidra.server.state.deployments import DeployedRegionRow, DeploymentRecords, DeploymentRow
from sidra.server.turns import BoardTurns

__all__ = [
    "DEPLOYMENT_SERVICE_NAME",
    "MAX_CHECK_READ_REPEATS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_MODEL_BYTES",
    "MAX_REGIONS",
    "NAME_RULE",
    "DeploymentServicer",
    "deployment_service_handler",
]

log = logging.getLogger(__name__)

DEPLOYMENT_SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["DeploymentService"].full_name

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = (
    "1 to 64 characters: ASCII letters, digits, '.', '_' and '-', starting with a letter or digit"
)
MAX_MODEL_BYTES = 16 * 2**20
"""Largest model file a deployment keeps, bytes (deployments.proto)."""
MAX_REGIONS = 4096
"""Most regions one deployment names."""
MAX_DESCRIPTION_CHARS = 1024
MAX_CHECK_READ_REPEATS = 100
"""Most reads of each cell one check makes (CheckDeploymentRequest.read_repeats)."""
MAX_CHECKS_LISTED = 10_000
"""Most checks one ListDeploymentChecks answers."""
DEFAULT_CHECKS_LISTED = 100
ZIP_MAGIC = b"PK\x03\x04"
"""How a zip archive with at least one member (an .npz) begins."""

CallerOf = Callable[[grpc.ServicerContext], tuple[str, bool]]
"""``(principal name, is admin)`` of a call, from its context."""


def _local_caller(context: grpc.ServicerContext) -> tuple[str, bool]:
    return "local", True


def checked_name(name: str, field: str = "name") -> str:
    """``name`` if it follows deployments.proto "Names"; InvalidArgument otherwise."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidArgument(field, name, NAME_RULE)
    return name


class DeploymentServicer:
    """Serves DeploymentService for the board ``info`` describes, from ``store``."""

    def __init__(
        self,
        info: Callable[[], BoardInfo],
        store: StateStore | None,
        caller_of: CallerOf = _local_caller,
        limits: PrincipalLimits | None = None,
        clock: Callable[[], float] = time.time,
        protections: Protections | None = None,
        turns: BoardTurns | None = None,
        holders: Callable[[], Sequence[TileHolder]] = tuple,
        read_cells: Callable[[str, bool, int, Region], ReadResult] | None = None,
        check_every_s: float = 0.0,
        check_read_repeats: int = 1,
    ) -> None:
        """``protections``: where protected deployments' regions are kept for the board's
        calls to be checked against (:mod:`sidra.server.protections`), filled here with
        those the store holds. ``turns``: the board's lock, held while a protection is
        stored and kept, so that no write runs between the two. ``holders``: the tiles
        leased now (a protection is not put on another principal's leased tile).
        ``read_cells(principal, admin, tile, region)``: a ReadConductance in the board's
        turn with that caller's rights (CheckDeployment; None: checks refused).
        ``check_every_s``: :meth:`latest_checks` has each intact deployment whose latest
        check is older checked again, on a thread of its own (0: never), each cell read
        ``check_read_repeats`` times."""
        self.info = info
        self.records = None if store is None else DeploymentRecords(store)
        self.caller_of = caller_of
        self.limits = limits or PrincipalLimits()
        self.clock = clock
        self.protections = protections
        self.turns = turns
        self.holders = holders
        self.read_cells = read_cells
        self.checks = None if self.records is None else DeploymentChecks(self.records)
        """Each deployment's checks, kept in the store."""
        self.check_every_s = check_every_s
        self.check_read_repeats = check_read_repeats
        self._checking = threading.Lock()  # guards _round: one round of due checks at a time
        self._round: threading.Thread | None = None
        self._stopping = threading.Event()
        if protections is not None and self.records is not None:
            for kept in self.records.of_board(info().serial_number):
                if kept.protected:
                    protections.keep(kept.name, kept.principal, _regions(kept))

    def _records(self) -> DeploymentRecords:
        if self.records is None:
            raise FailedPrecondition(
                "this server keeps no state store: deployments are kept there "
                "(sidra serve keeps one, [state] path)"
            )
        return self.records

    def counts(self) -> tuple[int, int]:
        """How many deployments the served board has, and how many are not intact (the
        metrics' gauges); (0, 0) without a store."""
        if self.records is None:
            return 0, 0
        found = self.records.of_board(self.info().serial_number)
        return len(found), sum(not d.intact for d in found)

    def AddDeployment(self, request: pb.AddDeploymentRequest, context: Any) -> Message:
        principal, admin = self.caller_of(context)
        return self._add(request, principal, admin)

    def may_register_again(self, principal: str, name: str) -> None:
        """Returns if ``principal``'s job could register deployment ``name`` again in place
        of itself (:meth:`register_again`: it is ``principal``'s own; a job's calls carry
        no admin rights); NotFound or PermissionDenied naming ``options.deployment``
        otherwise, before a tune job of another principal writes its tiles."""
        found = self._records().get(self.info().serial_number, checked_name(name))
        if found.principal != principal:
            raise PermissionDenied(
                f"options.deployment: deployment {name!r} is {found.principal!r}'s: a job "
                "tunes only its own principal's by name (its tiles would be rewritten and "
                "the tuned model could not be kept under the name); tune a copy on tiles "
                "of your own (its model: GetDeployment include_model)"
            )

    def register_again(
        self, principal: str, name: str, model: bytes, description: str
    ) -> dict[str, Any]:
        """Deployment ``name`` registered again in place of itself with ``model``, its
        regions and protection as they were, as ``principal`` (no admin's rights): what a
        tune job does once its tiles hold the tuned model (sidra.server.jobs' reporter).
        The deployment as JSON values; NotFound, PermissionDenied (another principal's)
        and the rest of AddDeployment's refusals otherwise."""
        found = self._records().get(self.info().serial_number, checked_name(name))
        request = pb.AddDeploymentRequest(
            name=found.name, model=model, description=description[:MAX_DESCRIPTION_CHARS],
            replace=True, protect=found.protected,
            regions=[pb.DeployedRegion(tile=r.tile, region=region_to_pb(r.region))
                     for r in found.regions],
        )  # fmt: skip
        stored = self._add(request, principal, admin=False)
        return {
            "name": stored.name, "principal": stored.principal,
            "tiles": sorted({r.tile for r in stored.regions}),
            "model_sha256": stored.model_sha256.hex(), "intact": stored.intact,
            "protected": stored.protected,
        }  # fmt: skip

    def _add(self, request: pb.AddDeploymentRequest, principal: str, admin: bool) -> pb.Deployment:
        """AddDeployment of ``principal`` (an admin when ``admin``)."""
        info = self.info()
        name = checked_name(request.name)
        _check_model(request.model)
        if len(request.description) > MAX_DESCRIPTION_CHARS:
            raise InvalidArgument(
                "description", f"{len(request.description)} characters",
                f"at most {MAX_DESCRIPTION_CHARS} characters",
            )  # fmt: skip
        shown = request.description.replace("\n", "").replace("\t", "")
        if not shown.isprintable():  # a NUL or an escape sequence reaches every terminal
            bad = next(ch for ch in shown if not ch.isprintable())
            raise InvalidArgument(
                "description", f"a character {bad!r}",
                "printable characters, new lines and tabs",
            )  # fmt: skip
        regions = checked_regions(info, request.regions)
        row = DeploymentRow(
            info.serial_number, name, principal, self.clock(), request.description, b"", 0,
            regions, protected=request.protect,
        )  # fmt: skip
        records = self._records()
        # In the board's turn, a protection is checked against the leases, stored, and kept
        # before any other call's write can reach its cells.
        turns = self.turns if request.protect and not request.validate_only else None
        with contextlib.nullcontext() if turns is None else turns.turn(principal):
            if request.protect:
                check_unleased([r.tile for r in regions], principal, self.holders())
            stored = records.add(
                row, request.model, replace_existing=request.replace, admin=admin,
                validate_only=request.validate_only,
            )  # fmt: skip
            if not request.validate_only and self.checks is not None:
                self.checks.forget(stored.name)  # of what the name held before, if anything
                if self.protections is not None and stored.protected:
                    self.protections.keep(stored.name, stored.principal, _regions(stored))
                elif self.protections is not None:
                    self.protections.drop(stored.name)
        return deployment_message(stored)  # registered just now: never checked

    def GetDeployment(self, request: pb.GetDeploymentRequest, context: Any) -> Message:
        serial = self.info().serial_number
        found = self._records().get(
            serial, checked_name(request.name), with_model=request.include_model
        )
        return deployment_message(found, self._checks().latest(serial).get(found.name))

    def ListDeployments(self, request: pb.ListDeploymentsRequest, context: Any) -> Message:
        serial = self.info().serial_number
        found = self._records().of_board(serial)
        latest = self._checks().latest(serial)
        return pb.ListDeploymentsResponse(
            deployments=[deployment_message(d, latest.get(d.name)) for d in found]
        )

    def DeleteDeployment(self, request: pb.DeleteDeploymentRequest, context: Any) -> Message:
        principal, admin = self.caller_of(context)
        found = self._records().delete(
            self.info().serial_number, checked_name(request.name), principal, admin
        )
        if self.protections is not None:
            self.protections.drop(found.name)
        self._checks().forget(found.name)
        return deployment_message(found)

    def CheckDeployment(self, request: pb.CheckDeploymentRequest, context: Any) -> Message:
        principal, admin = self.caller_of(context)
        if request.read_repeats > MAX_CHECK_READ_REPEATS:
            raise OutOfRange(
                "read_repeats", request.read_repeats, f"0 (1) or 1 .. {MAX_CHECK_READ_REPEATS}"
            )
        found = self._records().get(self.info().serial_number, checked_name(request.name))
        return self._check(
            found, principal, admin, self.clock(), request.read_repeats or 1,
            wanted=lambda: context is None or context.is_active(),
        )  # fmt: skip

    def ListDeploymentChecks(
        self, request: pb.ListDeploymentChecksRequest, context: Any
    ) -> Message:
        name = checked_name(request.name)
        if request.limit > MAX_CHECKS_LISTED:
            raise OutOfRange("limit", request.limit, f"0 (100) or 1 .. {MAX_CHECKS_LISTED}")
        if not (np.isfinite(request.before_unix_s) and request.before_unix_s >= 0):
            raise InvalidArgument(
                "before_unix_s", request.before_unix_s,
                "0 (up to now) or a time in seconds since the Unix epoch",
            )  # fmt: skip
        return self._checks().history(
            self.info().serial_number, name, request.limit or DEFAULT_CHECKS_LISTED,
            request.before_unix_s,
        )  # fmt: skip

    def latest_checks(self) -> Mapping[str, pb.DeploymentCheck]:
        """The latest check of each intact deployment (the metrics read them at each
        scrape; one written over is left out: its cells hold another's targets). With
        ``check_every_s``, it also starts a round of checks, as :data:`SERVER_PRINCIPAL`,
        of each deployment neither checked nor refused a check within that long, on a
        thread of its own: a scrape never waits on the board (reading a whole tile over a
        serial link takes seconds), and the next scrape shows the round's figures. A
        deployment whose check is refused (its tile leased with exclusive reads, the
        board gone) keeps its previous figures."""
        if self.records is None or self.checks is None:
            return {}
        if self.check_every_s > 0 and self.read_cells is not None:
            self._start_due_checks()
        serial = self.info().serial_number
        latest = self.checks.latest(serial)
        return {d.name: latest[d.name] for d in self.records.of_board(serial)
                if d.intact and d.name in latest}  # fmt: skip

    def _start_due_checks(self) -> None:
        """Starts a round of due checks unless one is under way."""
        with self._checking:
            if self._stopping.is_set() or (self._round is not None and self._round.is_alive()):
                return
            self._round = threading.Thread(
                target=self._check_due, name="sidra-deployment-checks", daemon=True
            )
            self._round.start()

    def _check_due(self) -> None:
        """Checks each intact deployment whose latest check is older than
        ``check_every_s`` (and was not refused within it)."""
        assert self.records is not None and self.checks is not None  # as latest_checks saw
        serial = self.info().serial_number
        latest, now = self.checks.latest(serial), self.clock()
        for deployment in self.records.of_board(serial):
            if self._stopping.is_set():
                return
            last = latest.get(deployment.name)
            if not deployment.intact or not self.checks.due(
                deployment.name, last, now, self.check_every_s
            ):
                continue
            try:
                self._check(
                    deployment, SERVER_PRINCIPAL, False, now, self.check_read_repeats,
                    wanted=lambda: not self._stopping.is_set(),
                )  # fmt: skip
            except SidraError as exc:
                self.checks.refused(deployment.name, now)
                log.info("deployment %s not checked: %s", deployment.name, exc)
            except Exception:  # a thread of its own: nobody else would hear of it
                self.checks.refused(deployment.name, now)
                log.exception("deployment %s not checked", deployment.name)

    def stop_checks(self, wait_s: float) -> None:
        """Lets a round of checks under way end after its current read (ServerStop)."""
        self._stopping.set()
        with self._checking:
            round_ = self._round
        if round_ is not None:
            round_.join(wait_s)

    def _check(
        self,
        found: DeploymentRow,
        principal: str,
        admin: bool,
        now_unix_s: float,
        read_repeats: int,
        wanted: Callable[[], bool],
    ) -> pb.DeploymentCheck:
        """``found``'s cells read ``read_repeats`` times with ``principal``'s rights and
        their means compared with its targets, while ``wanted`` says the check is still
        waited for (sidra.server.deployment_checks)."""
        read_cells, records = self.read_cells, self._records()
        if read_cells is None:
            raise FailedPrecondition("this server does not read its board for checks")
        serial = found.board_serial
        return self._checks().check(
            found,
            lambda tile, region: read_cells(principal, admin, tile, region),
            lambda tile: records.store.golden(serial, tile).targets_us,
            now_unix_s,
            principal,
            read_repeats,
            wanted,
        )

    def _checks(self) -> DeploymentChecks:
        self._records()
        assert self.checks is not None  # made with the records
        return self.checks


def _regions(row: DeploymentRow) -> list[tuple[int, Region]]:
    return [(r.tile, r.region) for r in row.regions]


def _check_model(model: bytes) -> None:
    if not model.startswith(ZIP_MAGIC):
        raise InvalidArgument(
            "model", f"{len(model)} bytes beginning {model[:4]!r}",
            "a model file: a zip archive (.npz) as sidra.training.TrainedModel.save writes",
        )  # fmt: skip
    if len(model) > MAX_MODEL_BYTES:
        raise OutOfRange("model", f"{len(model)} bytes", f"at most {MAX_MODEL_BYTES} bytes")


def checked_regions(
    info: BoardInfo, regions: Sequence[pb.DeployedRegion]
) -> tuple[DeployedRegionRow, ...]:
    """The regions of an AddDeploymentRequest, each inside a tile and none sharing a cell
    with another; InvalidArgument / OutOfRange naming ``regions[i]...`` otherwise."""
    if not 1 <= len(regions) <= MAX_REGIONS:
        raise InvalidArgument("regions", f"{len(regions)} regions", f"1 to {MAX_REGIONS} regions")
    taken: dict[int, np.ndarray[Any, np.dtype[np.int32]]] = {}
    checked = []
    for i, given in enumerate(regions):
        field = f"regions[{i}]"
        if given.tile >= info.tile_count:
            raise OutOfRange(f"{field}.tile", given.tile, f"0 .. {info.tile_count - 1}")
        if not given.HasField("region"):
            raise InvalidArgument(f"{field}.region", "unset", "a Region with rows and cols given")
        region = region_from_pb(given.region)
        for name in ("rows", "cols"):  # given: 0, "to the tile's edge" elsewhere, is refused
            if not getattr(region, name):
                raise OutOfRange(f"{field}.region.{name}", 0, "1 or more: the region's size")
        region = check_region(info, region, f"{field}.region")
        owner = taken.setdefault(given.tile, np.full((info.rows, info.cols), -1, np.int32))
        cells = owner[region.slices]
        other = int(cells.max())
        if other >= 0:
            raise InvalidArgument(
                field, f"tile {given.tile} {region.cells_text()}",
                f"a region sharing no cell with another (regions[{other}] covers some of them)",
            )  # fmt: skip
        cells[...] = i
        checked.append(DeployedRegionRow(given.tile, region, ""))
    return tuple(checked)


def deployment_message(
    row: DeploymentRow, last_check: pb.DeploymentCheck | None = None
) -> pb.Deployment:
    """A stored deployment as its DeploymentService message, with its ``last_check``
    (left out when it is not intact: the check was of targets no longer there)."""
    return pb.Deployment(
        last_check=last_check if row.intact else None,
        name=row.name, principal=row.principal, created_unix_s=row.created_unix_s,
        board_serial=row.board_serial, model_sha256=row.model_sha256,
        model_bytes=row.model_bytes, intact=row.intact, description=row.description,
        model=row.model or b"", protected=row.protected,
        regions=[
            pb.DeployedRegion(
                tile=r.tile, intact=r.intact, rewritten_by=r.rewritten_by,
                rewritten_unix_s=r.rewritten_unix_s, region=region_to_pb(r.region),
            )
            for r in row.regions
        ],
    )  # fmt: skip


def deployment_service_handler(servicer: DeploymentServicer) -> grpc.GenericRpcHandler:
    """Every DeploymentService RPC, routed to ``servicer`` (add_generic_rpc_handlers)."""
    return unary_service_handler(servicer, pb, "DeploymentService")
