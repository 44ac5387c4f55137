"""``sidra.hil.v1.SessionService``: sessions and tile leases over gRPC (session.proto).

Thin methods (routed by :mod:`sidra.server.routes`, which parses the request bytes and
admits the caller): ask the :class:`~sidra.server.sessions.keeper.LeaseKeeper`, answer
with the session's state. Errors leave through ``sidra.server.status`` like
BoardService's.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from google.protobuf.message import Message

from sidra.hil.v1 import session_pb2 as pb
from sidra.server.limits import PrincipalLimits
from sidra.server.routes import unary_service_handler
from sidra.server.security.access import CallerIdentity, local_identity
from sidra.server.sessions.keeper import LeaseEnd, LeaseKeeper
from sidra.server.sessions.registry import SessionView
from sidra.server.shared_memory import SharedMemoryStore, is_local_peer

__all__ = ["SESSION_SERVICE_NAME", "SessionServicer", "session_service_handler"]

SESSION_SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["SessionService"].full_name

CallerOf = Callable[[grpc.ServicerContext], tuple[str, bool]]
"""``(principal name, is admin)`` of a call, from its context."""


def local_caller(context: grpc.ServicerContext) -> tuple[str, bool]:
    """Every caller is "local" and may do everything: the service without [auth]."""
    return "local", True


class SessionServicer:
    """Serves SessionService for the board ``keeper`` guards."""

    def __init__(
        self,
        keeper: LeaseKeeper,
        caller_of: CallerOf = local_caller,
        limits: PrincipalLimits | None = None,
        shared_memory: SharedMemoryStore | None = None,
        identify: Callable[[grpc.ServicerContext], CallerIdentity] = local_identity,
    ) -> None:
        self.keeper = keeper
        self.identify = identify
        """Who a call is taken for, with its token (GetCaller)."""
        self.shared_memory = shared_memory
        """Shared-memory registrations (None: the server offers none)."""
        self.caller_of = caller_of
        self.limits = limits or PrincipalLimits()
        """Counted with the principal's BoardService calls: AcquireLease may wait
        (wait_s), and a client must not hold every worker thread with waits."""

    def OpenSession(self, request: pb.OpenSessionRequest, context: grpc.ServicerContext) -> Message:
        principal, _ = self.caller_of(context)
        return _state(self.keeper.open(principal, request.ttl_s, request.label))

    def Heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> Message:
        principal, _ = self.caller_of(context)
        return _state(self.keeper.renew(principal, request.session_id))

    def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.ServicerContext
    ) -> Message:
        principal, admin = self.caller_of(context)
        end = self.keeper.close(principal, request.session_id, admin=admin)
        return _release(end, with_session=False)

    def AcquireLease(
        self, request: pb.AcquireLeaseRequest, context: grpc.ServicerContext
    ) -> Message:
        principal, _ = self.caller_of(context)
        view = self.keeper.acquire(
            principal, request.session_id, request.tiles, request.whole_board, request.wait_s,
            wanted=context.is_active,  # a caller past its deadline is granted nothing
        )  # fmt: skip
        return _state(view)

    def ReleaseLease(
        self, request: pb.ReleaseLeaseRequest, context: grpc.ServicerContext
    ) -> Message:
        principal, _ = self.caller_of(context)
        end = self.keeper.release(principal, request.session_id, request.tiles, request.all)
        return _release(end, with_session=True)

    def ListLeases(self, request: pb.ListLeasesRequest, context: grpc.ServicerContext) -> Message:
        principal, admin = self.caller_of(context)
        registry = self.keeper.registry
        leases = [
            pb.TileLease(
                tile=held.tile,
                principal=held.principal,
                label=held.label,
                whole_board=held.whole_board,
                expires_in_s=held.expires_in_s,
                # Only to who may close the session: its principal, or an admin.
                session_id=held.session_id if admin or held.principal == principal else "",
            )
            for held in registry.holders()
        ]
        return pb.ListLeasesResponse(leases=leases, open_sessions=registry.open_sessions())

    def RegisterSharedMemory(
        self, request: pb.RegisterSharedMemoryRequest, context: grpc.ServicerContext
    ) -> Message:
        principal, _ = self.caller_of(context)
        store = self._store(context)
        mapping = store.register(
            principal, request.session_id, context.peer(), request.name, request.key,
            request.size_bytes,
        )  # fmt: skip
        return pb.SharedMemoryRegistration(
            name=mapping.name, key=request.key, size_bytes=mapping.size_bytes,
            session_registrations=store.session_registrations(request.session_id),
        )  # fmt: skip

    def UnregisterSharedMemory(
        self, request: pb.UnregisterSharedMemoryRequest, context: grpc.ServicerContext
    ) -> Message:
        principal, _ = self.caller_of(context)
        store = self._store(context)
        store.unregister(principal, request.session_id, context.peer(), request.name)
        return pb.SharedMemoryRegistration(
            name=request.name, session_registrations=store.session_registrations(request.session_id)
        )

    def GetCaller(self, request: pb.GetCallerRequest, context: grpc.ServicerContext) -> Message:
        caller = self.identify(context)
        token = caller.token
        created = None if token is None else token.created_utc
        expires = None if token is None else token.expires_utc
        peer = context.peer()
        offered = self.shared_memory is not None and self.shared_memory.enabled
        registry = self.keeper.registry
        return pb.Caller(
            principal=caller.principal.name, role=caller.principal.role.label,
            authenticated=caller.authenticated,
            token_created_unix_s=0.0 if created is None else created.timestamp(),
            token_expires_unix_s=0.0 if expires is None else expires.timestamp(),
            peer=peer, shared_memory_offered=offered and is_local_peer(peer),
            open_sessions=registry.sessions_of(caller.principal.name),
            max_sessions=registry.max_sessions,
        )  # fmt: skip

    def _store(self, context: grpc.ServicerContext) -> SharedMemoryStore:
        if self.shared_memory is None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "this server offers no shared memory")
        assert self.shared_memory is not None
        return self.shared_memory


def _state(view: SessionView) -> pb.SessionState:
    return pb.SessionState(
        session_id=view.id,
        principal=view.principal,
        label=view.label,
        ttl_s=view.ttl_s,
        expires_in_s=view.expires_in_s,
        tiles=view.tiles,
        whole_board=view.whole_board,
    )


def _release(end: LeaseEnd, *, with_session: bool) -> pb.LeaseRelease:
    reply = pb.LeaseRelease(released_tiles=end.ended.tiles, restored_tiles=end.restored)
    if with_session:
        reply.session.CopyFrom(_state(end.ended.session))
    return reply


def session_service_handler(servicer: SessionServicer) -> grpc.GenericRpcHandler:
    """Every SessionService RPC, routed to ``servicer`` (add_generic_rpc_handlers)."""
    return unary_service_handler(servicer, pb, "SessionService")
