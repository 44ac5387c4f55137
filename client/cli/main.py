"""``sidra``: serve a board, run the demo, benchmark, manage access tokens."""

from __future__ import annotations

import contextlib
import faulthandler
import signal
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from grpc_health.v1 import health

from sidra.cli.bench import bench_app
from sidra.cli.bench_serial import serial_command
from sidra.cli.board import board_app
from sidra.cli.completion import board_urls
from sidra.cli.job_datasets import datasets_app
from sidra.cli.jobs import jobs_app
from sidra.cli.leases import leases
from sidra.cli.model import model_app
from sidra.cli.options import ValueNamingGroup
from sidra.cli.runs import runs_app
from sidra.cli.serve_check import checked_settings
from sidra.cli.state import state_app
from sidra.cli.status import status
from sidra.cli.token import token_app
from sidra.cli.train import train_app
from sidra.cli.whoami import whoami
from sidra.drivers import SidraError, open_board
from sidra.server.app import create_configured_server
from sidra.server.memory import configure_malloc
from sidra.server.observability import MetricsEndpoint, ServiceMetrics, configure_logging
from sidra.server.settings import ConfigError, ServerSettings, load_settings
from sidra.server.state import StateStore, StateStoreError, restore
from sidra.server.state.serving import serving_store
from sidra.server.stopping import ServerStop

app = typer.Typer(
    cls=ValueNamingGroup,
    no_args_is_help=True,
    help="SIDRA HIL: analog board control.",
)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option(help="TOML settings file (docs/operations.md); options given here win."),
    ] = None,
    board: Annotated[
        str | None,
        typer.Option(
            help="Board URL (emu://?preset=..., serial://..., pcie://...).",
            autocompletion=board_urls,
        ),
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="host:port to listen on; port 0 picks a free one.")
    ] = None,
    max_message_mb: Annotated[int | None, typer.Option(help="Largest gRPC message, MiB.")] = None,
    workers: Annotated[int | None, typer.Option(help="Server worker threads.")] = None,
    restore_state: Annotated[
        bool,
        typer.Option(
            "--restore",
            help="Before serving, program the golden targets the state store holds for this "
            "board (after a crash or a board reset) and report what was restored.",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Check the settings as a start would (TLS files, tokens, the state store "
            "read only) and say what a start would do, without starting: exit 2 if it "
            "would not start.",
        ),
    ] = False,
) -> None:
    r"""Serve one board over gRPC until interrupted (SIGINT/SIGTERM drain and stop).

    Told to stop, it first lets running jobs reach their next step or epoch (up to
    job_stop_wait_s, 30 s by default): they end interrupted, keeping their record and
    checkpoint to go on from.

    Settings not given as options come from SIDRA_* variables (SIDRA_LISTEN,
    SIDRA_TLS__CERT, ...), then the --config file (or SIDRA_CONFIG), then the defaults.
    With \[metrics] listen set, Prometheus metrics are served there (docs/operations.md).
    SIGUSR1 prints every thread's stack to stderr (a server that seems stuck).
    """
    if hasattr(signal, "SIGUSR1"):  # a server that seems stuck: `kill -USR1 PID` shows
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # where each thread is
    settings = _settings_or_exit(
        config, board=board, listen=listen, max_message_mb=max_message_mb, workers=workers
    )
    if check:
        _check_only(settings)
    configure_logging(settings.logging.format, settings.logging.level)
    configure_malloc()  # the service: large buffers go back when freed, threads share arenas
    # The store before the board: a second server must not open (and so maybe reset) the
    # board behind the first one's store.
    with contextlib.ExitStack() as held:
        try:
            who = f"{settings.board} on {settings.listen}"
            held.enter_context(serving_store(settings.state.path, who))
        except StateStoreError as exc:
            raise typer.BadParameter(str(exc), param_hint="state.path") from exc
        _serve(settings, restore_state)


def _serve(settings: ServerSettings, restore_state: bool) -> None:
    """Opens the board and the store, serves until SIGINT or SIGTERM, then stops."""
    try:
        driver = open_board(settings.board)
    except SidraError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        store = StateStore(settings.state.path)
    except StateStoreError as exc:
        driver.close()
        raise typer.BadParameter(str(exc), param_hint="state.path") from exc
    if restore_state:
        try:
            typer.echo(restore(driver, store).describe(), err=True)
        except SidraError as exc:
            driver.close()
            store.close()
            typer.echo(f"sidra serve --restore: {exc}", err=True)
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
        server.stop(grace=None)
        driver.close()
        store.close()
        raise typer.BadParameter(str(exc)) from exc
    server.start()
    host = settings.listen.rsplit(":", 1)[0]
    info = driver.info
    typer.echo(
        f"serving {info.model} ({info.serial_number}, {settings.board}) on {host}:{port}"
        f" [{_protection(settings)}]{_metrics_note(settings, endpoint)}",
        err=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(timeout=0.5):  # wake up regularly: signals are handled promptly
        pass
    # Tell health watchers first, then let running jobs reach a boundary (they keep their
    # record and checkpoint), then let in-flight calls finish.
    health_servicer.enter_graceful_shutdown()
    stopping.run(settings.job_stop_wait_s)
    server.stop(grace=2.0).wait()
    if endpoint is not None:
        endpoint.close()
    driver.close()
    store.close()


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
    typer.echo("sidra serve --check: these settings would start", err=True)
    raise typer.Exit(0)


def _protection(settings: ServerSettings) -> str:
    """How the service is protected, for its first line: TLS mode and authentication."""
    tls = settings.tls
    transport = "plaintext" if tls is None else "mutual TLS" if tls.client_ca else "TLS"
    auth = "no auth" if settings.auth is None else f"tokens {settings.auth.tokens_file}"
    return f"{transport}, {auth}"


def _metrics_endpoint(metrics: ServiceMetrics, settings: ServerSettings) -> MetricsEndpoint | None:
    """The metrics endpoint ``[metrics] listen`` asks for, serving ``metrics``; None if unset."""
    if settings.metrics.listen is None:
        return None
    return MetricsEndpoint.start(metrics.registry, settings.metrics.listen)


def _metrics_note(settings: ServerSettings, endpoint: MetricsEndpoint | None) -> str:
    """Where the metrics are, for the first line: the URL a scrape config names."""
    if endpoint is None or settings.metrics.listen is None:
        return ""
    host = settings.metrics.listen.rsplit(":", 1)[0]
    return f", metrics on http://{host}:{endpoint.port}/metrics"


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=1, help="SPSA steps.")] = 4000,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of board, data order and perturbations.")
    ] = 0,
    board: Annotated[
        str, typer.Option(help="Board URL served in-process.", autocompletion=board_urls)
    ] = "emu://?preset=sidra-y1",
) -> None:
    """Main job on the emulator: serve, check MVM/TransposeMVM, train digits with SPSA."""
    from sidra.cli.demo import run_demo

    raise typer.Exit(run_demo(board_url=board, steps=steps, seed=seed))


bench_app.command("serial")(serial_command)
app.command("leases")(leases)
app.command("status")(status)
app.command("whoami")(whoami)
app.add_typer(bench_app, name="bench")
app.add_typer(board_app, name="board")
jobs_app.add_typer(datasets_app, name="datasets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(model_app, name="model")
app.add_typer(runs_app, name="runs")
app.add_typer(state_app, name="state")
app.add_typer(token_app, name="token")
app.add_typer(train_app, name="train")


def main() -> None:
    # One name however it is started (`python -m sidra.cli` too): the usage lines say
    # `sidra`, and shell completion answers to _SIDRA_COMPLETE.
    app(prog_name="sidra")
