"""``sidra``: serve a board, run the demo, benchmark."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from sidra.drivers import SidraError, open_board
from sidra.server.app import DEFAULT_MAX_MESSAGE_BYTES, create_server

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="SIDRA HIL: analog board control."
)


@app.command()
def serve(
    board: Annotated[
        str, typer.Option(help="Board URL: emu://?preset=..., serial://..., pcie://...")
    ] = "emu://",
    listen: Annotated[
        str, typer.Option(help="host:port to listen on (port 0 picks a free one).")
    ] = "127.0.0.1:50051",
    max_message_mb: Annotated[
        int, typer.Option(min=1, help="Largest gRPC message, MiB.")
    ] = DEFAULT_MAX_MESSAGE_BYTES // 2**20,
    workers: Annotated[int, typer.Option(min=1, help="Server worker threads.")] = 8,
) -> None:
    """Serve one board over gRPC until interrupted."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        driver = open_board(board)
        server, port = create_server(
            driver, listen, max_message_bytes=max_message_mb * 2**20, max_workers=workers
        )
    except (SidraError, OSError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    server.start()
    host = listen.rsplit(":", 1)[0]
    info = driver.info
    typer.echo(f"serving {info.model} ({info.serial_number}, {board}) on {host}:{port}", err=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
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
    from sidra.server.cli.demo import run_demo

    raise typer.Exit(run_demo(board_url=board, steps=steps, seed=seed))


def main() -> None:
    app()
