"""Building and running the gRPC server for one board."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from sidra.drivers import Board
from sidra.drivers.monitor import LinkMonitored
from sidra.server.address import bind_problem, insecure_exposure, is_loopback
from sidra.server.deployments import (
    DEPLOYMENT_SERVICE_NAME,
    DeploymentServicer,
    deployment_service_handler,
)
from sidra.server.instance import InstanceMetadata
from sidra.server.jobs import (
    JOB_SERVICE_NAME,
    DatasetFiles,
    JobManager,
    JobServicer,
    job_service_handler,
    load_runner,
)
from sidra.server.jobs.runner import RunnerLoader
from sidra.server.limits import MIB, PrincipalLimits
from sidra.server.link_watch import LinkWatcher
from sidra.server.observability import (
    CallObserver,
    ServiceMetrics,
    watch_board,
    watch_board_calls,
    watch_deployment_checks,
    watch_deployments,
    watch_jobs,
    watch_store,
)
from sidra.server.protections import Protections
from sidra.server.security import (
    RPC_ROLES,
    AccessControl,
    Role,
    TokensFile,
    principal_name,
    principal_of,
    server_credentials,
)
from sidra.server.security.roles import JOB_ROLES
from sidra.server.servicer import SERVICE_NAME, BoardServicer, board_service_handler
from sidra.server.sessions import (
    SESSION_SERVICE_NAME,
    LeaseKeeper,
    LeaseRegistry,
    SessionServicer,
    session_service_handler,
)
from sidra.server.settings import (
    DEFAULT_MAX_MESSAGE_BYTES,
    LeaseSettings,
    LimitsSettings,
    ServerSettings,
    SharedMemorySettings,
)
from sidra.server.shared_memory import SharedMemoryStore
from sidra.server.state import StateStore
from sidra.server.stopping import ServerStop
from sidra.server.streams import STREAM_SERVICE_NAME, StreamServicer, stream_service_handler
from sidra.server.turns import BoardTurns

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "HEALTH_NAMES",
    "REFLECTION_NAMES",
    "create_configured_server",
    "create_server",
    "is_loopback",
]

log = logging.getLogger(__name__)

HEALTH_NAMES = ("", SERVICE_NAME)
"""Service names grpc.health.v1.Health answers for: the server as a whole and BoardService."""

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_NAMES = (REFLECTION_V1, reflection.SERVICE_NAME)
"""Server reflection is served as v1 and v1alpha: current tools (grpcurl, Postman)
ask v1 first, older ones only know v1alpha."""


def create_server(
    board: Board,
    address: str = "127.0.0.1:0",
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_workers: int = 8,
    reflection_enabled: bool = True,
    health_servicer: health.HealthServicer | None = None,
    credentials: grpc.ServerCredentials | None = None,
    tokens: TokensFile | None = None,
    metrics: ServiceMetrics | None = None,
    store: StateStore | None = None,
    limits: LimitsSettings | None = None,
    leases: LeaseSettings | None = None,
    shared_memory: SharedMemorySettings | None = None,
    job_runner: RunnerLoader = load_runner,
    stopping: ServerStop | None = None,
    job_checkpoint_every_s: float = 60.0,
    job_retention_days: float | None = None,
    deployment_check_every_s: float = 0.0,
    deployment_check_read_repeats: int = 1,
    dataset_retention_days: float | None = None,
) -> tuple[grpc.Server, int]:
    """A ready-to-start server for ``board`` bound to ``address``, and its port.

    With ``store`` (:class:`~sidra.server.state.StateStore`) every successful
    Program is recorded in it before it is answered. ``limits`` (default: the
    :class:`~sidra.server.settings.LimitsSettings` defaults) bounds what each
    principal may ask at a time (:class:`~sidra.server.limits.PrincipalLimits`);
    a call over them is refused with RESOURCE_EXHAUSTED. Clients lease tiles through
    ``sidra.hil.v1.SessionService`` (:mod:`sidra.server.sessions`, configured by
    ``leases``, default: the :class:`~sidra.server.settings.LeaseSettings` defaults);
    a thread ends sessions that expire while any is open. Clients on this host may
    keep MVM tensors in registered shared memory when ``shared_memory`` enables it
    (:mod:`sidra.server.shared_memory`; off by default). Training jobs run in the
    server through ``sidra.hil.v1.JobService`` (:mod:`sidra.server.jobs`; their
    records go to ``store``, without which SubmitJob is refused); ``job_runner``
    loads the training code at the first SubmitJob, and a running job keeps its checkpoint
    in ``store`` every ``job_checkpoint_every_s``; jobs that ended more than
    ``job_retention_days`` ago are deleted from it (None: kept), as are data set files kept
    for jobs and unused for ``dataset_retention_days``; with ``stopping``,
    running jobs stop at their next boundary when it runs, keeping their record and checkpoint
    (:class:`~sidra.server.stopping.ServerStop`, run before the server is stopped).
    Trained networks programmed into the tiles are kept by name in ``store`` through
    ``sidra.hil.v1.DeploymentService`` (:mod:`sidra.server.deployments`; refused without
    a store); a metrics scrape first checks the cells of each one whose latest check is
    older than ``deployment_check_every_s`` (0: never), reading each cell
    ``deployment_check_read_repeats`` times.

    Bind ``127.0.0.1:0`` to get a free port (tests do). With ``credentials``
    (:func:`~sidra.server.security.server_credentials`) the port speaks TLS;
    with ``tokens`` every call needs a bearer token of the role its method
    needs (:class:`~sidra.server.security.AccessControl`); without them every
    call is the ``local`` principal's. The standard health service reports
    :data:`HEALTH_NAMES` (``""`` and ``sidra.hil.v1.BoardService``)
    as SERVING (for a board behind a link, NOT_SERVING while the link is down:
    ``LinkWatcher``); server reflection, v1 and v1alpha (:data:`REFLECTION_NAMES`),
    lets grpcurl and other tools discover the API without the proto.

    Every call is timed, counted and logged (one line, with a request id sent
    back as ``x-request-id`` in its trailing metadata) into ``metrics``: pass a
    :class:`~sidra.server.observability.ServiceMetrics` and serve its registry
    (:class:`~sidra.server.observability.MetricsEndpoint`) to scrape them; without
    one the server keeps its own, unserved.
    """
    if not isinstance(board, Board):  # create_server(address, board) failed deep inside
        raise TypeError(
            f"board: got {type(board).__name__}, expected a Board (open_board(url) gives "
            "one); create_server(board, address)"
        )
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # gRPC binds with SO_REUSEPORT by default: a second server on a port in use
        # would start and take every other connection (another board, another state).
        # A port in use must stop the start instead.
        ("grpc.so_reuseport", 0),
    ]
    metrics = metrics or ServiceMetrics()
    observer = CallObserver(metrics)
    # The observer goes first so it sees refused calls too; the principal tag goes
    # after authentication, inside which alone the principal is bound.
    access = AccessControl(tokens, on_refusal=observer.refused)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_workers),
        options=options,
        # Then every BoardService response names the board instance it ended on.
        interceptors=(observer, access, observer.principal_tag, InstanceMetadata(board)),
    )
    watch_board(metrics, board)
    per_principal = PrincipalLimits(
        limits,
        max_message_bytes=max_message_bytes,
        workers=max_workers,
        on_refusal=metrics.count_limit_refusal,
    )
    turns = BoardTurns(on_wait=metrics.observe_board_wait)
    watch_board_calls(metrics, turns.waiting)
    keeper = LeaseKeeper(
        board, turns, lease_registry(board, leases or LeaseSettings()),
        on_event=metrics.count_lease_event, on_wait=metrics.observe_lease_wait,
    )  # fmt: skip
    shm = shared_memory or SharedMemorySettings()
    shared = SharedMemoryStore(
        enabled=shm.enabled, session_open=keeper.registry.renew,
        max_per_session=shm.max_regions_per_session, max_bytes=shm.max_region_mb * 2**20,
    )  # fmt: skip
    keeper.session_ended.append(shared.session_ended)
    protections = Protections(board.info)
    health_servicer = health_servicer or health.HealthServicer()
    for name in HEALTH_NAMES:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    link: LinkWatcher | None = None
    if isinstance(board, LinkMonitored):  # a serial board: health follows its link
        link = LinkWatcher(board, health_servicer, HEALTH_NAMES).start()
    servicer = BoardServicer(
        board, store, principal_of=principal_name, limits=per_principal,
        turns=turns, leases=keeper, admin_of=_is_admin, refusal_of=_refusal_of,
        shared_memory=shared, protections=protections,
        link_down=link.link_down if link is not None else lambda: None,
    )  # fmt: skip
    sessions = SessionServicer(
        keeper, caller_of=_caller, limits=per_principal, shared_memory=shared,
        identify=access.identify,
    )  # fmt: skip
    job_limits = limits or LimitsSettings()
    jobs = JobManager(
        servicer, keeper, store, max_jobs=job_limits.max_jobs,
        max_queued_jobs=job_limits.max_queued_jobs,
        max_job_s=None if job_limits.max_job_hours is None else job_limits.max_job_hours * 3600,
        load_runner=job_runner,
        checkpoint_every_s=job_checkpoint_every_s,
        retention_s=None if job_retention_days is None else job_retention_days * 86_400.0,
        on_end=metrics.count_job_end, on_queue_wait=metrics.observe_queue_wait,
        # A tune job registers its deployment again: the servicer made just below.
        keep_deployment=lambda *job: deployments.register_again(*job),
        may_keep_deployment=lambda *job: deployments.may_register_again(*job),
        no_longer_allowed=_job_rights(tokens),
    )  # fmt: skip
    watch_jobs(metrics, jobs.running, jobs.queued)
    deployments = DeploymentServicer(
        lambda: board.info, store, caller_of=_caller, limits=per_principal,
        protections=protections, turns=turns, holders=keeper.registry.holders,
        read_cells=servicer.read_cells, check_every_s=deployment_check_every_s,
        check_read_repeats=deployment_check_read_repeats,
    )  # fmt: skip
    if store is not None:
        watch_store(metrics, store.disk_bytes)
        watch_deployments(metrics, deployments.counts)
        watch_deployment_checks(metrics, deployments.latest_checks)
    if stopping is not None:
        stopping.add(jobs.stop_all)
        stopping.add(deployments.stop_checks)
    server.add_generic_rpc_handlers(
        (
            board_service_handler(servicer),
            stream_service_handler(StreamServicer(servicer, max_message_bytes)),
            session_service_handler(sessions),
            job_service_handler(
                JobServicer(
                    jobs,
                    caller_of=_caller,
                    limits=per_principal,
                    datasets=DatasetFiles(
                        store,
                        jobs.runner,
                        job_limits.max_dataset_mb * MIB,
                        retention_s=None
                        if dataset_retention_days is None
                        else dataset_retention_days * 86_400.0,
                        on_refusal=metrics.count_limit_refusal,
                    ),
                )
            ),  # fmt: skip
            deployment_service_handler(deployments),
        )
    )

    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    if reflection_enabled:
        _enable_reflection(
            server,
            (
                SERVICE_NAME, STREAM_SERVICE_NAME, SESSION_SERVICE_NAME, JOB_SERVICE_NAME,
                DEPLOYMENT_SERVICE_NAME, health.SERVICE_NAME,
                *REFLECTION_NAMES,
            ),
        )  # fmt: skip

    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # gRPC says only that it failed; the system says why
        why = bind_problem(address) or str(exc)
        raise OSError(f"listen: cannot bind {address!r}: {why}") from exc
    # sidra serve gets past loopback without TLS or [auth] only with allow_insecure
    for exposed in insecure_exposure(address, credentials is not None, tokens is not None):
        log.warning("%s", exposed)
    return server, port


def _job_rights(tokens: TokensFile | None) -> Callable[[str], str | None]:
    """Why a principal may no longer submit jobs, as the tokens file says now (a queued
    job of one removed, expired or demoted since fails at its turn); without [auth],
    never."""
    if tokens is None:
        return lambda principal: None
    needed = JOB_ROLES["SubmitJob"]
    return lambda principal: tokens.no_longer_allowed(principal, needed, datetime.now(UTC))


def lease_registry(board: Board, settings: LeaseSettings) -> LeaseRegistry:
    """The sessions and leases of ``board``, as ``[leases]`` says."""
    return LeaseRegistry(
        board.info.tile_count,
        default_ttl_s=settings.default_ttl_s,
        max_ttl_s=settings.max_ttl_s,
        max_sessions=settings.max_sessions_per_principal,
        exclusive_reads=settings.reads == "exclusive",
    )


def _is_admin(context: grpc.ServicerContext) -> bool:
    return principal_of(context).role >= Role.ADMIN


def _refusal_of(context: grpc.ServicerContext, rpc: str) -> str | None:
    """Why the call's principal may not run ``rpc`` (a sequence step), None if it may."""
    principal, needed = principal_of(context), RPC_ROLES[rpc]
    if principal.role >= needed:
        return None
    return (
        f"{rpc} needs role {needed.label} or above; principal {principal.name!r} "
        f"has {principal.role.label}"
    )


def _caller(context: grpc.ServicerContext) -> tuple[str, bool]:
    principal = principal_of(context)
    return principal.name, principal.role >= Role.ADMIN


def create_configured_server(
    board: Board,
    settings: ServerSettings,
    *,
    health_servicer: health.HealthServicer | None = None,
    metrics: ServiceMetrics | None = None,
    store: StateStore | None = None,
    stopping: ServerStop | None = None,
) -> tuple[grpc.Server, int]:
    """:func:`create_server` as ``settings`` say: address, limits, reflection, TLS, tokens.

    The metrics endpoint (``settings.metrics.listen``) is the caller's to start, on
    ``metrics.registry``: its lifetime is the process's, not the gRPC server's.
    """
    tls = settings.tls
    return create_server(
        board,
        settings.listen,
        max_message_bytes=settings.max_message_mb * 2**20,
        max_workers=settings.workers,
        reflection_enabled=settings.reflection,
        health_servicer=health_servicer,
        credentials=server_credentials(tls.cert, tls.key, tls.client_ca) if tls else None,
        tokens=TokensFile(settings.auth.tokens_file) if settings.auth else None,
        metrics=metrics,
        store=store,
        limits=settings.limits,
        leases=settings.leases,
        shared_memory=settings.shared_memory,
        stopping=stopping,
        job_checkpoint_every_s=settings.state.job_checkpoint_every_s,
        job_retention_days=settings.state.job_retention_days,
        dataset_retention_days=settings.state.dataset_retention_days,
        deployment_check_every_s=settings.metrics.deployment_check_every_s,
        deployment_check_read_repeats=settings.metrics.deployment_check_read_repeats,
    )


def _enable_reflection(server: grpc.Server, names: tuple[str, ...]) -> None:
    """Serves reflection as v1alpha and as v1 from one servicer.

    grpcio-reflection 1.85 ships only v1alpha. The v1 protocol is the same
    messages, field for field, under the package grpc.reflection.v1, and a
    message's bytes do not carry its package name, so the v1 method is routed
    to the v1alpha servicer with the v1alpha (de)serializers.
    """
    servicer = reflection.ReflectionServicer(names)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1_info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    v1 = grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": v1_info})
    server.add_generic_rpc_handlers((v1,))
