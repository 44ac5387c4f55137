"""Roles, and the role each RPC needs: one table, checked against the operation set.

Roles are ordered; each includes the ones below it:

- ``viewer``: what the board is (GetBoardInfo) and server reflection;
- ``operator``: reads that leave the array as it is (MVM, TransposeMVM,
  ReadConductance, ReadWriteCounts);
- ``programmer``: writes to the array and its calibration (Program, Perturb, Calibrate),
  and board-wide actions (AdvanceClock) while it leases the whole board;
- ``admin``: board-wide actions without a lease (while nobody else holds one), closing
  anyone's session, and any method not listed here.

Sessions (``sidra.hil.v1.SessionService``): listing leases is a viewer's; opening a
session and leasing tiles an operator's (a lease also guards reads when the server
makes them exclusive). Leases themselves are checked by ``sidra.server.sessions``.

Jobs (``sidra.hil.v1.JobService``): listing, reading and watching them is a viewer's;
submitting, cancelling and reordering a programmer's; so is keeping and deleting the data
set files jobs train on (listing one's own files: a viewer's).

Deployments (``sidra.hil.v1.DeploymentService``): listing and reading them is a viewer's;
adding and deleting one a programmer's (deleting another principal's, an admin's).

Health checks are open: a load balancer or a watchdog asks them without a token.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from sidra.hil.v1 import board_pb2 as pb
from sidra.hil.v1 import deployments_pb2, jobs_pb2, session_pb2, stream_pb2

__all__ = [
    "DEPLOYMENT_ROLES",
    "JOB_ROLES",
    "OPEN_SERVICES",
    "RPC_ROLES",
    "SESSION_ROLES",
    "STREAM_ROLES",
    "Role",
    "required_role",
]

BOARD_SERVICE: str = pb.DESCRIPTOR.services_by_name["BoardService"].full_name


class Role(enum.IntEnum):
    """What a principal may do; a higher role includes every lower one."""

    VIEWER = 1
    OPERATOR = 2
    PROGRAMMER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        """The role as written in tokens files and messages: ``programmer``."""
        return self.name.lower()

    @classmethod
    def from_label(cls, text: str) -> Role:
        """The role named ``text``; ValueError listing the allowed names otherwise."""
        try:
            return cls[text.upper()]
        except KeyError:
            allowed = ", ".join(role.label for role in cls)
            raise ValueError(f"role {text!r} is not one of {allowed}") from None


RPC_ROLES: Mapping[str, Role] = MappingProxyType(
    {
        "GetBoardInfo": Role.VIEWER,
        "MVM": Role.OPERATOR,
        "TransposeMVM": Role.OPERATOR,
        "ReadConductance": Role.OPERATOR,
        "ReadWriteCounts": Role.OPERATOR,
        "Program": Role.PROGRAMMER,
        "Perturb": Role.PROGRAMMER,
        "Calibrate": Role.PROGRAMMER,
        "AdvanceClock": Role.PROGRAMMER,
        "PerturbedMVM": Role.PROGRAMMER,
        # The least any step needs; the service checks each step's own role before
        # the first runs (sidra.server.servicer).
        "RunSequence": Role.OPERATOR,
    }
)
"""The role each BoardService RPC needs, keyed by the RPC names of
``sidra.drivers.operations.OPERATIONS`` (tests/server checks that every RPC has one)."""

STREAM_SERVICE: str = stream_pb2.DESCRIPTOR.services_by_name["StreamService"].full_name

STREAM_ROLES: Mapping[str, Role] = MappingProxyType(
    {
        "MVMStream": RPC_ROLES["MVM"],  # = TransposeMVM's, the other pass an item may be
        "ProgramChunked": RPC_ROLES["Program"],
        "ReadConductanceChunked": RPC_ROLES["ReadConductance"],
    }
)
"""The role each StreamService RPC needs: that of the BoardService RPC it carries
(tests/server checks that every RPC has one)."""

SESSION_SERVICE: str = session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name

SESSION_ROLES: Mapping[str, Role] = MappingProxyType(
    {
        "ListLeases": Role.VIEWER,
        "GetCaller": Role.VIEWER,
        "OpenSession": Role.OPERATOR,
        "Heartbeat": Role.OPERATOR,
        "CloseSession": Role.OPERATOR,
        "RegisterSharedMemory": Role.OPERATOR,
        "UnregisterSharedMemory": Role.OPERATOR,
        "AcquireLease": Role.OPERATOR,
        "ReleaseLease": Role.OPERATOR,
    }
)
"""The role each SessionService RPC needs (tests/server checks that every RPC has one)."""

JOB_SERVICE: str = jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name

JOB_ROLES: Mapping[str, Role] = MappingProxyType(
    {
        "ListJobs": Role.VIEWER,
        "GetJob": Role.VIEWER,
        "WatchJob": Role.VIEWER,
        "ReadJobFile": Role.VIEWER,
        "SubmitJob": Role.PROGRAMMER,
        "CancelJob": Role.PROGRAMMER,
        "DeleteJob": Role.PROGRAMMER,
        "SetJobPriority": Role.PROGRAMMER,
        "ListDatasets": Role.VIEWER,
        "ReadDataset": Role.VIEWER,
        "UploadDataset": Role.PROGRAMMER,  # what SubmitJob takes, kept for it
        "DeleteDataset": Role.PROGRAMMER,
    }
)
"""The role each JobService RPC needs: a job writes the array as a programmer's calls
would; following one reads no tile. Whose job may be cancelled or deleted is the job
service's check (its principal's own, an admin anyone's)."""

DEPLOYMENT_SERVICE: str = deployments_pb2.DESCRIPTOR.services_by_name["DeploymentService"].full_name

DEPLOYMENT_ROLES: Mapping[str, Role] = MappingProxyType(
    {
        "ListDeployments": Role.VIEWER,
        "GetDeployment": Role.VIEWER,
        "ListDeploymentChecks": Role.VIEWER,
        "CheckDeployment": Role.OPERATOR,
        "AddDeployment": Role.PROGRAMMER,
        "DeleteDeployment": Role.PROGRAMMER,
    }
)
"""The role each DeploymentService RPC needs: a deployment says what the tiles hold, as a
programmer's Programs made them; knowing it, or the checks kept of it, reads no tile;
checking it reads them as ReadConductance does (an operator's). Whose deployment may be
replaced or deleted is the deployment service's check (its principal's own, an admin
anyone's)."""

OPEN_SERVICES = frozenset({health.SERVICE_NAME})
"""Services every caller reaches without a token: health checking."""

VIEWER_SERVICES = frozenset({reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"})
"""Services a viewer may use: reflection describes the API, nothing of the board."""


def required_role(method: str) -> Role | None:
    """The role a call of ``method`` (``/package.Service/Method``) needs; None when open.

    A method this table does not know needs admin: a service added later stays
    closed until someone decides who may call it.
    """
    service, _, name = method.lstrip("/").rpartition("/")
    if service in OPEN_SERVICES:
        return None
    if service in VIEWER_SERVICES:
        return Role.VIEWER
    if service == BOARD_SERVICE:
        return RPC_ROLES.get(name, Role.ADMIN)
    if service == STREAM_SERVICE:
        return STREAM_ROLES.get(name, Role.ADMIN)
    if service == SESSION_SERVICE:
        return SESSION_ROLES.get(name, Role.ADMIN)
    if service == JOB_SERVICE:
        return JOB_ROLES.get(name, Role.ADMIN)
    if service == DEPLOYMENT_SERVICE:
        return DEPLOYMENT_ROLES.get(name, Role.ADMIN)
    return Role.ADMIN
