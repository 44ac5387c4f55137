"""``sidra``: serve a board, run the demo, benchmark."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer
from grpc_health.v1 import health
from pydantic import ValidationError

from sidra.cli.bench import bench_app
from sidra.cli.bench_serial import serial_command
from sidra.cli.board import board_app
from sidra.cli.train import train_app
from sidra.drivers import SidraError, open_board
from sidra.server.app import create_server
from sidra.server.settings import ServerSettings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="SIDRA HIL: analog board control."
)


@app.command()
def serve(
    board: Annotated[
        str | None, typer.Option(help="Board URL (emu://?preset=..., serial://..., pcie://...).")
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="host:port to listen on; port 0 picks a free one.")
    ] = None,
    max_message_mb: Annotated[int | None, typer.Option(help="Largest gRPC message, MiB.")] = None,
    workers: Annotated[int | None, typer.Option(help="Server worker threads.")] = None,
) -> None:
    """Serve one board over gRPC until interrupted (SIGINT/SIGTERM drain and stop).

    Options not given come from SIDRA_BOARD, SIDRA_LISTEN, SIDRA_MAX_MESSAGE_MB,
    SIDRA_WORKERS, SIDRA_REFLECTION, then the defaults.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    given: dict[str, Any] = {
        "board": board,
        "listen": listen,
        "max_message_mb": max_message_mb,
        "workers": workers,
    }
    try:
        settings = ServerSettings(**{k: v for k, v in given.items() if v is not None})
        driver = open_board(settings.board)
    except (ValidationError, SidraError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    health_servicer = health.HealthServicer()
    try:
        server, port = create_server(
            driver,
            settings.listen,
            max_message_bytes=settings.max_message_mb * 2**20,
            max_workers=settings.workers,
            reflection_enabled=settings.reflection,
            health_servicer=health_servicer,
        )
    except OSError as exc:
        driver.close()
        raise typer.BadParameter(str(exc)) from exc
    server.start()
    host = settings.listen.rsplit(":", 1)[0]
    info = driver.info
    typer.echo(
        f"serving {info.model} ({info.serial_number}, {settings.board}) on {host}:{port}", err=True
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(timeout=0.5):  # wake up regularly: signals are handled promptly
        pass
    # Tell health watchers first, then let in-flight calls finish.
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=2.0).wait()
    driver.close()


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=1, help="SPSA steps.")] = 4000,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of board, data order and perturbations.")
    ] = 0,
    board: Annotated[
        str, typer.Option(help="Board URL served in-process.")
    ] = "emu://?preset=sidra-y1",
) -> None:
    """Main job on the emulator: serve, check MVM/TransposeMVM, train digits with SPSA."""
    from sidra.cli.demo import run_demo

    raise typer.Exit(run_demo(board_url=board, steps=steps, seed=seed))


bench_app.command("serial")(serial_command)
app.add_typer(bench_app, name="bench")
app.add_typer(board_app, name="board")
app.add_typer(train_app, name="train")


def main() -> None:
    app()
