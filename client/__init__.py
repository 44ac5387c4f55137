"""SIDRA HIL client: drive a board behind ``sidra serve`` over gRPC, numpy in and out.

    from sidra.client import connect
    with connect("127.0.0.1:50051") as board:
        currents = board.mvm(0, voltages).currents

``open_board("grpc://127.0.0.1:50051")`` returns the same :class:`RemoteBoard`. A
secured server takes ``connect(address, tls=TlsCredentials(root_ca=...), token=...)``
(the token defaults to ``SIDRA_TOKEN``) or ``grpcs://host:port?ca=PATH`` URLs.
The exception tree is shared with the drivers (``sidra.drivers.errors``), plus
:class:`BoardInstanceChanged`, the :class:`BoardReset` a client raises when the
server names another board instance than before; training
loops that run on any board live in ``sidra.training``. ``board.session()`` opens a
session whose :meth:`Session.lease` keeps tiles to this client (session.proto).
"""

from sidra.client.credentials import TlsCredentials
from sidra.client.deployments import (
    CheckHistory,
    DeployedRegion,
    Deployment,
    DeploymentCheck,
    Deployments,
)
from sidra.client.errors import BoardInstanceChanged
from sidra.client.job_datasets import DatasetInfo, DatasetRoom
from sidra.client.jobs import JobEvent, JobInfo, Jobs
from sidra.client.remote import DEFAULT_TIMEOUT_S, RemoteBoard, connect
from sidra.client.session import Caller, Lease, Session, SessionState, TileLease
from sidra.drivers.errors import (
    AlreadyExists,
    BoardFault,
    BoardReset,
    BoardUnavailable,
    DatasetNotKept,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LeaseHeld,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    SessionClosed,
    SidraError,
    Unauthenticated,
    Unsupported,
)
from sidra.drivers.rademacher import rademacher
from sidra.drivers.types import PerturbationPoint, Region

__all__ = [
    "AlreadyExists",
    "Caller",
    "CheckHistory",
    "DatasetInfo",
    "DatasetRoom",
    "DeployedRegion",
    "Deployment",
    "DeploymentCheck",
    "Deployments",
    "JobEvent",
    "JobInfo",
    "Jobs",
    "DEFAULT_TIMEOUT_S",
    "BoardFault",
    "BoardInstanceChanged",
    "BoardReset",
    "BoardUnavailable",
    "DatasetNotKept",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "Lease",
    "LeaseHeld",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "PerturbationPoint",
    "Region",
    "RemoteBoard",
    "ResourceExhausted",
    "Session",
    "SessionClosed",
    "SessionState",
    "SidraError",
    "Unauthenticated",
    "TileLease",
    "TlsCredentials",
    "Unsupported",
    "connect",
    "rademacher",
]
