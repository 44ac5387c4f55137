"""``sidra``: serve a board, run the demo, benchmark, manage access tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sidra.cli.commands import LazyCommands
from sidra.cli.completion import board_urls

app = typer.Typer(
    cls=LazyCommands,
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
    from sidra.cli.serving import serve_until_stopped  # the server's modules: only here

    serve_until_stopped(
        config,
        restore_state,
        check,
        board=board,
        listen=listen,
        max_message_mb=max_message_mb,
        workers=workers,
    )


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


def main() -> None:
    # One name however it is started (`python -m sidra.cli` too): the usage lines say
    # `sidra`, and shell completion answers to _SIDRA_COMPLETE.
    app(prog_name="sidra")
