"""Sessions and tile leases: who may write which tile, for how long (session.proto).

- :mod:`~sidra.server.sessions.registry`: sessions, leases and the admission rule;
- :mod:`~sidra.server.sessions.perturbed`: which cells each tile has left perturbed;
- :mod:`~sidra.server.sessions.keeper`: the two joined to the board and its turns,
  expiry, and the restore of a lease's perturbed cells when it ends;
- :mod:`~sidra.server.sessions.service`: ``sidra.hil.v1.SessionService`` over gRPC.
"""

from sidra.server.sessions.keeper import LEASE_EVENTS, LeaseEnd, LeaseKeeper
from sidra.server.sessions.registry import LEASE_ACCESS, Access, LeaseRegistry, SessionView
from sidra.server.sessions.service import (
    SESSION_SERVICE_NAME,
    SessionServicer,
    session_service_handler,
)

__all__ = [
    "LEASE_ACCESS",
    "LEASE_EVENTS",
    "SESSION_SERVICE_NAME",
    "Access",
    "LeaseEnd",
    "LeaseKeeper",
    "LeaseRegistry",
    "SessionServicer",
    "SessionView",
    "session_service_handler",
]
