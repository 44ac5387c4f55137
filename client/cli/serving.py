"""``sidra serve``'s work: the settings read and checked, the board and its state store
opened, the service run until SIGINT or SIGTERM, then drained and stopped (the command's
options are sidra.cli.main's; the server's modules are imported only by this command)."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from grpc_health.v1 import health

from sidra.cli.serve_check import checked_settings
from sidra.drivers import InvalidArgument, SidraError, open_board
from sidra.drivers.host_machine import code_version
from sidra.server.address import bind_problem, metrics_exposure
from sidra.server.app import create_configured_server
from sidra.server.deployment_checks import check_restored
from sidra.server.memory import configure_malloc
from sidra.server.observability import MetricsEndpoint, ServiceMetrics, configure_logging
from sidra.server.settings import (
    ConfigError,
    ServerSettings,
    load_settings,
    unread_variables,
)
from sidra.server.state import SERVER_PRINCIPAL, StateStore, StateStoreError, restore
from sidra.server.state.deployments import DeploymentRecords
from sidra.server.state.serving import serving_store
from sidra.server.stopping import ServerStop

__all__ = ["serve_until_stopped"]

log = logging.getLogger("sidra.server")

STOP_WAIT_S = 5.0
"""How long a start that fails lets the service's threads end (a deployment check ends
after its current read), s."""


def serve_until_stopped(
    config: Path | None, restore_state: bool, check: bool, **options: Any
) -> None:
    """``sidra serve``: the settings of ``config`` and ``options`` (the command's), checked
    only (``check``) or served until a signal."""
    if hasattr(signal, "SIGUSR1"):  # a server that seems stuck: `kill -USR1 PID` shows
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # where each thread is
    settings = _settings_or_exit(config, **options)
    if check:
        _check_only(settings)
    handler = configure_logging(settings.logging.format, settings.logging.level)
    for unread in unread_variables():
        log.warning("%s", unread)
    warnings = [] if settings.tls is None else settings.tls.warnings(datetime.now(UTC))
    for warning in warnings + ([] if settings.auth is None else settings.auth.warnings()):
        log.warning("%s", warning)
    configure_malloc()  # the service: large buffers go back when freed, threads share arenas
    _refuse_ports_in_use(settings)
    # The store before the board: a second server must not open (and so maybe reset) the
    # board behind the first one's store.
    with contextlib.ExitStack() as held:
        try:
            who = f"{settings.board} on {settings.listen}"
            held.enter_context(serving_store(settings.state.path, who))
        except StateStoreError as exc:
            raise typer.BadParameter(str(exc), param_hint="state.path") from exc
        _serve(settings, restore_state, handler)


def _serve(settings: ServerSettings, restore_state: bool, handler: logging.Handler) -> None:
    """Opens the board and the store, serves until SIGINT or SIGTERM, then stops."""
    try:
        driver = open_board(settings.board)
    except InvalidArgument as exc:  # the URL itself: a usage error
        raise typer.BadParameter(str(exc), param_hint="board") from exc
    except SidraError as exc:  # the board is not there or not answering: as probe says it
        typer.echo(f"sidra serve: board {settings.board}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        store = StateStore(settings.state.path)
    except StateStoreError as exc:
        driver.close()
        raise typer.BadParameter(str(exc), param_hint="state.path") from exc
    if restore_state:
        try:
            restored = restore(driver, store)
            lines = [restored.describe()]
            lines += check_restored(
                driver, DeploymentRecords(store), [t.tile for t in restored.tiles],
                time.time(), SERVER_PRINCIPAL,
            )  # fmt: skip
            _announce(handler, settings, "\n".join(lines))
        except SidraError as exc:
            driver.close()
            store.close()
            _announce(handler, settings, f"sidra serve --restore: {exc}", logging.ERROR)
            raise typer.Exit(1) from None
    health_servicer = health.HealthServicer()
    metrics = ServiceMetrics()
    stopping = ServerStop()
    try:
        server, port = create_configured_server(
            driver, settings, health_servicer=health_servicer, metrics=metrics, store=store,
            stopping=stopping,
        )  # fmt: skip
    except (OSError, SidraError) as exc:
        driver.close()
        store.close()
        raise typer.BadParameter(str(exc)) from exc
    try:
        endpoint = _metrics_endpoint(metrics, settings)
    except OSError as exc:
        # The service's own threads first (a round of deployment checks that registering
        # the metrics began reads the store): then the store may close under nobody.
        stopping.run(STOP_WAIT_S)
        server.stop(grace=None)
        driver.close()
        store.close()
        raise typer.BadParameter(str(exc)) from exc
    server.start()
    host = settings.listen.rsplit(":", 1)[0]
    info = driver.info
    metrics_url = _metrics_url(settings, endpoint)
    running = _running_code()
    if settings.logging.format != "json":  # the start line has no time of its own there
        commit = f" (commit {running['commit']})" if running["commit"] else ""
        code = f"SIDRA HIL {running['sidra_hil']}{commit}"
        _logged(handler, f"sidra serve started: pid {running['pid']}, {code}")
    _announce(
        handler,
        settings,
        # The store named: deployments, jobs and what --restore writes back are kept there
        # (by default in the user's data folder, which a first serve never said).
        f"serving {info.model} ({info.serial_number}, {settings.board}) on {host}:{port}"
        f" [{_protection(settings)}], state store {settings.state.path}"
        f"{f', metrics on {metrics_url}' if metrics_url else ''}",
        listen=f"{host}:{port}",
        state_path=str(settings.state.path),
        port=port,
        board=settings.board,
        model=info.model,
        serial_number=info.serial_number,
        protection=_protection(settings),
        metrics_url=metrics_url,
        pid=running["pid"],
        sidra_hil=running["sidra_hil"],
        commit=running["commit"],
    )
    stop = threading.Event()
    received: list[str] = []

    def stop_on(number: int, _frame: object) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_on)
    while not stop.wait(timeout=0.5):  # wake up regularly: signals are handled promptly
        pass
    log.warning("stopping: %s received", received[0] if received else "asked to stop")
    # Tell health watchers first, then let running jobs reach a boundary (they keep their
    # record and checkpoint), then let in-flight calls finish.
    health_servicer.enter_graceful_shutdown()
    stopping.run(settings.job_stop_wait_s)
    server.stop(grace=2.0).wait()
    if endpoint is not None:
        endpoint.close()
    driver.close()
    store.close()
    log.warning("stopped")


def _settings_or_exit(config: Path | None, **options: Any) -> ServerSettings:
    """The settings, or exit 2 after one line per key at fault (a traceback would bury them)."""
    try:
        return load_settings(config, **options)
    except ConfigError as exc:
        typer.echo("sidra serve: invalid configuration", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(2) from None


def _check_only(settings: ServerSettings) -> NoReturn:
    """``--check``: what a start would do, a line each; exit 2 with what would stop it."""
    notes, problems = checked_settings(settings)
    for note in notes:
        typer.echo(note)
    for problem in problems:
        typer.echo(f"sidra serve --check: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    held = [n for n in notes if "cannot be bound now" in n or "in use now by" in n]
    if held:  # noted, not problems: the server being replaced holds them until it stops
        typer.echo(
            "sidra serve --check: these settings would start once what holds their port or "
            "store now (above) stops",
            err=True,
        )
        raise typer.Exit(0)
    typer.echo("sidra serve --check: these settings would start", err=True)
    raise typer.Exit(0)


def _protection(settings: ServerSettings) -> str:
    """How the service is protected, for its first line: TLS mode and authentication."""
    tls = settings.tls
    transport = "plaintext" if tls is None else "mutual TLS" if tls.client_ca else "TLS"
    auth = "no auth" if settings.auth is None else f"tokens {settings.auth.tokens_file}"
    return f"{transport}, {auth}"


def _refuse_ports_in_use(settings: ServerSettings) -> None:
    """Refuses a port another process listens on, the service's or the metrics', before
    the store is opened (its lock and serving files made) or the board: a start that fails
    leaves neither touched. gRPC's and the endpoint's own binds come later."""
    for field, address in (
        ("listen", settings.listen),
        ("metrics.listen", settings.metrics.listen),
    ):
        in_use = None if address is None else bind_problem(address)
        if in_use is not None:
            raise typer.BadParameter(f"{field}: cannot bind {address!r}: {in_use}")


def _metrics_endpoint(metrics: ServiceMetrics, settings: ServerSettings) -> MetricsEndpoint | None:
    """The metrics endpoint ``[metrics] listen`` asks for, serving ``metrics``; None if unset."""
    if settings.metrics.listen is None:
        return None
    exposed = metrics_exposure(settings.metrics.listen)
    if exposed:
        log.warning("%s", exposed)
    return MetricsEndpoint.start(metrics.registry, settings.metrics.listen)


def _metrics_url(settings: ServerSettings, endpoint: MetricsEndpoint | None) -> str | None:
    """Where the metrics are, for the first line: the URL a scrape config names."""
    if endpoint is None or settings.metrics.listen is None:
        return None
    host = settings.metrics.listen.rsplit(":", 1)[0]
    return f"http://{host}:{endpoint.port}/metrics"


def _running_code() -> dict[str, object]:
    """This process and the code it runs, as the start line names them: after an upgrade
    or a restart an admin reads from the log which version served when."""
    return {"pid": os.getpid(), **code_version()}


def _logged(handler: logging.Handler, text: str) -> None:
    """``text`` as an INFO line of the text log, its time first, whatever ``[logging]
    level`` says (as :func:`_announce`)."""
    handler.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, text, (), None))


def _announce(
    handler: logging.Handler,
    settings: ServerSettings,
    text: str,
    level: int = logging.INFO,
    **details: object,
) -> None:
    """A line ``sidra serve`` always writes, whatever ``[logging] level`` says (the start
    line names the port a ``listen = "...:0"`` got): as it is in text logs, one object
    with ``details`` beside its message in JSON logs, so a collector reads every line."""
    if settings.logging.format != "json":
        typer.echo(text, err=True)
        return
    record = log.makeRecord(log.name, level, __file__, 0, text, (), None)
    record.details = details
    handler.handle(record)  # the handler, not the logger: the level must not hide it
