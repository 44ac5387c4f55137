"""Named trained networks on a served board's tiles, from the client side
(deployments.proto).

    with connect("lab-pc:50051") as board:
        board.deployments.add("digits-mlp", Path("model.npz").read_bytes(),
                              [(2, Region(0, 0, 65, 20))])
        for deployment in board.deployments.list():
            print(deployment.name, deployment.principal, deployment.intact)

The server keeps the model file and, per region, a digest of the targets it holds for
it; a deployment is intact while nobody has programmed other targets there since.
:class:`sidra.training.deployment.DeployedModel` programs a model and
``sidra model deploy --name`` registers it; ``sidra model eval --deployment`` runs it by
name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from sidra.client.channel_source import ChannelSource
from sidra.client.errors import from_rpc_error
from sidra.drivers import Cost, InvalidArgument, Region
from sidra.hil.convert import region_from_pb, region_to_pb
from sidra.hil.v1 import deployments_pb2 as pb

__all__ = [
    "DEPLOYMENT_SERVICE",
    "MAX_CHECK_READ_REPEATS",
    "AsyncDeployments",
    "CheckHistory",
    "DeployedRegion",
    "Deployment",
    "DeploymentCheck",
    "Deployments",
    "RegionCheck",
    "add_request",
]

DEPLOYMENT_SERVICE: str = pb.DESCRIPTOR.services_by_name["DeploymentService"].full_name


@dataclass(frozen=True)
class DeployedRegion:
    """A rectangle of a tile a deployment's model was programmed into."""

    tile: int
    region: Region
    intact: bool = True
    """Whether the server's targets of the region are still those registered."""
    rewritten_by: str = ""
    """For a region not intact: who programmed over it last, as the server's history
    says ("" when it names no one)."""
    rewritten_unix_s: float = 0.0


@dataclass(frozen=True)
class Deployment:
    """A deployment as the server last reported it (times in seconds since the Unix
    epoch)."""

    name: str
    principal: str
    created_unix_s: float
    board_serial: str
    model_sha256: str
    """SHA-256 of the model file, hex."""
    model_bytes: int
    regions: tuple[DeployedRegion, ...]
    intact: bool
    """Every region's targets as registered (deployments.proto "Intact")."""
    description: str
    model: bytes | None = None
    """The model file, when asked for (:meth:`Deployments.get` ``include_model``)."""
    protected: bool = False
    """Its regions refuse other principals' writes (deployments.proto "Protected")."""
    last_check: DeploymentCheck | None = None
    """Its latest check (:meth:`Deployments.check`, or the server's own), when there was
    one and it is intact."""

    @property
    def tiles(self) -> tuple[int, ...]:
        """The tiles its regions are on, in the order first named."""
        return tuple(dict.fromkeys(r.tile for r in self.regions))

    @classmethod
    def from_pb(cls, message: pb.Deployment) -> Deployment:
        return cls(
            message.name, message.principal, message.created_unix_s, message.board_serial,
            message.model_sha256.hex(), message.model_bytes,
            tuple(
                DeployedRegion(
                    r.tile,
                    region_from_pb(r.region),
                    r.intact, r.rewritten_by, r.rewritten_unix_s,
                )
                for r in message.regions
            ),
            message.intact, message.description, message.model or None, message.protected,
            DeploymentCheck.from_pb(message.last_check) if message.HasField("last_check")
            else None,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The deployment as JSON values (the model file left out)."""
        return {
            "name": self.name,
            "principal": self.principal,
            "created_unix_s": self.created_unix_s,
            "board_serial": self.board_serial,
            "model_sha256": self.model_sha256,
            "model_bytes": self.model_bytes,
            "intact": self.intact,
            "protected": self.protected,
            "description": self.description,
            "regions": [
                {
                    **_place(r.tile, r.region),
                    "intact": r.intact,
                    "rewritten_by": r.rewritten_by,
                    "rewritten_unix_s": r.rewritten_unix_s,
                }
                for r in self.regions
            ],
            "last_check": None if self.last_check is None else self.last_check.as_dict(),
        }


@dataclass(frozen=True)
class RegionCheck:
    """What one region's cells conduct now against its registered targets."""

    tile: int
    region: Region
    correlation: float
    """Pearson correlation of the conductances read with the targets."""
    rms_deviation_us: float
    """Root mean square of read minus target, µS."""
    mean_deviation_us: float
    """Mean of read minus target, µS (drift's common decay)."""
    read_noise_us: float = 0.0
    """Each cell's standard deviation from read to read, rms over the region's cells, µS;
    0 from one read."""


@dataclass(frozen=True)
class DeploymentCheck:
    """A deployment's cells read by the server and compared with the targets it was
    registered with (deployments.proto "Checked"); the three figures over every cell."""

    name: str
    checked_unix_s: float
    regions: tuple[RegionCheck, ...]
    correlation: float
    rms_deviation_us: float
    mean_deviation_us: float
    cost: Cost
    """Modeled board time (ns) and energy (nJ) of the reads."""
    checked_by: str = ""
    """Who asked for it: a principal, or "(server)" for the server's own check."""
    read_repeats: int = 1
    """How many reads of each cell the figures are the mean of."""
    read_noise_us: float = 0.0
    """Each cell's standard deviation from one read to the next, rms over the cells, µS;
    0 from one read."""

    @classmethod
    def from_pb(cls, message: pb.DeploymentCheck) -> DeploymentCheck:
        return cls(
            message.name, message.checked_unix_s,
            tuple(
                RegionCheck(
                    r.tile,
                    region_from_pb(r.region),
                    r.correlation, r.rms_deviation_us, r.mean_deviation_us, r.read_noise_us,
                )
                for r in message.regions
            ),
            message.correlation, message.rms_deviation_us, message.mean_deviation_us,
            Cost(message.cost.time_ns, message.cost.energy_nj), message.checked_by,
            message.read_repeats or 1, message.read_noise_us,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON values."""
        return {
            "name": self.name,
            "checked_unix_s": self.checked_unix_s,
            "checked_by": self.checked_by,
            "correlation": self.correlation,
            "rms_deviation_us": self.rms_deviation_us,
            "mean_deviation_us": self.mean_deviation_us,
            "read_repeats": self.read_repeats,
            "read_noise_us": self.read_noise_us,
            "time_ns": self.cost.time_ns,
            "energy_nj": self.cost.energy_nj,
            "regions": [
                {
                    **_place(r.tile, r.region),
                    "correlation": r.correlation,
                    "rms_deviation_us": r.rms_deviation_us,
                    "mean_deviation_us": r.mean_deviation_us,
                    "read_noise_us": r.read_noise_us,
                }
                for r in self.regions
            ],
        }


@dataclass(frozen=True)
class CheckHistory:
    """Checks kept of a deployment (deployments.proto "Checks kept"), oldest first."""

    checks: tuple[DeploymentCheck, ...]
    kept: int
    """How many checks of the deployment the server keeps in all."""

    @classmethod
    def from_pb(cls, message: pb.ListDeploymentChecksResponse) -> CheckHistory:
        return cls(tuple(DeploymentCheck.from_pb(c) for c in message.checks), message.kept)


class Deployments:
    """DeploymentService of the server behind ``channel``; every call has ``timeout_s``."""

    def __init__(
        self, channel: grpc.Channel | Callable[[], grpc.Channel], timeout_s: float = 30.0
    ) -> None:
        self._channel = ChannelSource(channel)
        self.timeout_s = timeout_s

    @property
    def channel(self) -> grpc.Channel:
        """The channel of the next call (its client's closed error once it is closed)."""
        return self._channel.get()

    def add(
        self,
        name: str,
        model: bytes,
        regions: Sequence[tuple[int, Region]],
        *,
        description: str = "",
        replace: bool = False,
        validate_only: bool = False,
        protect: bool = False,
    ) -> Deployment:
        """Registers ``model`` (a model file's bytes), programmed into ``regions`` (tile,
        region with its sizes given) through this server, under ``name``.
        ``validate_only``: checks it all but the cells' programming, keeping nothing (a
        client checks so before it programs). ``protect``: other principals' writes to
        its regions are refused while it is registered."""
        request = add_request(name, model, regions, description, replace, validate_only, protect)
        return Deployment.from_pb(self._call("AddDeployment", request, pb.Deployment))

    def get(self, name: str, *, include_model: bool = False) -> Deployment:
        """The deployment ``name`` (NotFound when the board has none of that name)."""
        request = pb.GetDeploymentRequest(name=name, include_model=include_model)
        return Deployment.from_pb(self._call("GetDeployment", request, pb.Deployment))

    def list(self) -> list[Deployment]:
        """The board's deployments, by name (without their model files)."""
        reply = self._call(
            "ListDeployments", pb.ListDeploymentsRequest(), pb.ListDeploymentsResponse
        )
        return [Deployment.from_pb(d) for d in reply.deployments]

    def delete(self, name: str) -> Deployment:
        """Forgets the deployment ``name`` (the tiles keep what they hold); returns it."""
        request = pb.DeleteDeploymentRequest(name=name)
        return Deployment.from_pb(self._call("DeleteDeployment", request, pb.Deployment))

    def check(self, name: str, *, read_repeats: int = 1) -> DeploymentCheck:
        """Has the server read the cells of deployment ``name`` now, ``read_repeats``
        times (1 to 100), and compare each cell's mean with its registered target
        (FailedPrecondition when it is not intact). The call waits ``timeout_s`` for each
        read (a serial board's line takes seconds for a tile)."""
        request = pb.CheckDeploymentRequest(name=name, read_repeats=_read_repeats(read_repeats))
        reply = self._call(
            "CheckDeployment",
            request,
            pb.DeploymentCheck,
            _check_timeout_s(self.timeout_s, read_repeats),
        )
        return DeploymentCheck.from_pb(reply)

    def checks(self, name: str, *, limit: int = 100, before_unix_s: float = 0.0) -> CheckHistory:
        """The latest ``limit`` checks kept of deployment ``name`` (1 to 10000), made
        before ``before_unix_s`` (0: up to now), oldest first."""
        request = pb.ListDeploymentChecksRequest(
            name=name, limit=limit, before_unix_s=before_unix_s
        )
        reply = self._call("ListDeploymentChecks", request, pb.ListDeploymentChecksResponse)
        return CheckHistory.from_pb(reply)

    def _call(self, rpc: str, request: Any, response: Any, timeout_s: float | None = None) -> Any:
        method = self.channel.unary_unary(**_method(rpc, request, response))
        try:
            return method(request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, rpc, timeout_s or self.timeout_s) from exc


class AsyncDeployments:
    """DeploymentService of the server behind an asyncio ``channel``: the methods of
    :class:`Deployments` as coroutines."""

    def __init__(
        self, channel: grpc.aio.Channel | Callable[[], grpc.aio.Channel], timeout_s: float = 30.0
    ) -> None:
        self._channel = ChannelSource(channel)
        self.timeout_s = timeout_s

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel of the next call (its client's closed error once it is closed)."""
        return self._channel.get()

    async def add(
        self,
        name: str,
        model: bytes,
        regions: Sequence[tuple[int, Region]],
        *,
        description: str = "",
        replace: bool = False,
        validate_only: bool = False,
        protect: bool = False,
    ) -> Deployment:
        request = add_request(name, model, regions, description, replace, validate_only, protect)
        return Deployment.from_pb(await self._call("AddDeployment", request, pb.Deployment))

    async def get(self, name: str, *, include_model: bool = False) -> Deployment:
        request = pb.GetDeploymentRequest(name=name, include_model=include_model)
        return Deployment.from_pb(await self._call("GetDeployment", request, pb.Deployment))

    async def list(self) -> list[Deployment]:
        reply = await self._call(
            "ListDeployments", pb.ListDeploymentsRequest(), pb.ListDeploymentsResponse
        )
        return [Deployment.from_pb(d) for d in reply.deployments]

    async def delete(self, name: str) -> Deployment:
        request = pb.DeleteDeploymentRequest(name=name)
        return Deployment.from_pb(await self._call("DeleteDeployment", request, pb.Deployment))

    async def check(self, name: str, *, read_repeats: int = 1) -> DeploymentCheck:
        request = pb.CheckDeploymentRequest(name=name, read_repeats=_read_repeats(read_repeats))
        reply = await self._call(
            "CheckDeployment",
            request,
            pb.DeploymentCheck,
            _check_timeout_s(self.timeout_s, read_repeats),
        )
        return DeploymentCheck.from_pb(reply)

    async def checks(
        self, name: str, *, limit: int = 100, before_unix_s: float = 0.0
    ) -> CheckHistory:
        request = pb.ListDeploymentChecksRequest(
            name=name, limit=limit, before_unix_s=before_unix_s
        )
        reply = await self._call("ListDeploymentChecks", request, pb.ListDeploymentChecksResponse)
        return CheckHistory.from_pb(reply)

    async def _call(
        self, rpc: str, request: Any, response: Any, timeout_s: float | None = None
    ) -> Any:
        method = self.channel.unary_unary(**_method(rpc, request, response))
        try:
            return await method(request, timeout=timeout_s or self.timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, rpc, timeout_s or self.timeout_s) from exc


MAX_CHECK_READ_REPEATS = 100
"""Most reads of each cell a check makes (deployments.proto CheckDeploymentRequest)."""


def _check_timeout_s(timeout_s: float, read_repeats: int) -> float:
    """How long a check of ``read_repeats`` reads is waited for: ``timeout_s`` a read, up
    to the reads the server makes at most (it refuses more at once; gRPC takes a deadline
    past its range for one already passed)."""
    return timeout_s * min(read_repeats, MAX_CHECK_READ_REPEATS)


def _read_repeats(read_repeats: int) -> int:
    """``read_repeats`` for a CheckDeploymentRequest. What no uint32 carries, and 0 (the
    field's 0 would mean 1), is refused here; the server refuses more than it reads."""
    if (
        isinstance(read_repeats, bool)
        or not isinstance(read_repeats, int)
        or not 1 <= read_repeats < 2**32
    ):
        raise InvalidArgument(
            "read_repeats", read_repeats, f"an integer, 1 to {MAX_CHECK_READ_REPEATS} reads"
        )
    return read_repeats


def _place(tile: int, region: Region) -> dict[str, int]:
    """Where a region lies, as JSON values (each region entry of :meth:`Deployment.as_dict`
    and :meth:`DeploymentCheck.as_dict` begins so)."""
    return {"tile": tile, "row_offset": region.row_offset, "col_offset": region.col_offset,
            "rows": region.rows, "cols": region.cols}  # fmt: skip


def _method(rpc: str, request: Any, response: Any) -> dict[str, Any]:
    """The path and serializers of DeploymentService's ``rpc`` (``channel.unary_unary``)."""
    return {
        "method": f"/{DEPLOYMENT_SERVICE}/{rpc}",
        "request_serializer": type(request).SerializeToString,
        "response_deserializer": response.FromString,
    }


def add_request(
    name: str, model: bytes, regions: Sequence[tuple[int, Region]], description: str,
    replace: bool, validate_only: bool = False, protect: bool = False,
) -> pb.AddDeploymentRequest:  # fmt: skip
    """AddDeployment's request; a region that is not a Region refused naming it."""
    return pb.AddDeploymentRequest(
        name=name, model=model, description=description, replace=replace,
        validate_only=validate_only, protect=protect,
        regions=[_region_message(i, tile, region) for i, (tile, region) in enumerate(regions)],
    )  # fmt: skip


def _region_message(index: int, tile: int, region: Region) -> pb.DeployedRegion:
    if not isinstance(region, Region):
        raise InvalidArgument(
            f"regions[{index}].region", repr(region)[:80], "a Region(row_offset, col_offset, "
            "rows, cols)"
        )  # fmt: skip
    return pb.DeployedRegion(tile=tile, region=region_to_pb(region))
