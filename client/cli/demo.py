"""``sidra demo``: the main job on the embedded emulator, end to end over real gRPC.

1. Serve an emulated board on a free loopback port; connect a client.
2. Program a random matrix; check MVM and TransposeMVM against numpy and the
   board-applied perturbation against the client-regenerated Δ.
3. Train a 64→10 softmax layer on scikit-learn's digits with SPSA: weights
   held on the host and programmed as absolute targets, ±cΔ applied on the
   board by Perturb, loss computed on the host; report test accuracy.
4. Deploy the trained layer (the run's model) on another tile and run it for
   inference there: its test accuracy and modeled cost per sample.
"""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sidra.client import RemoteBoard, connect, rademacher
from sidra.drivers import Region, open_board
from sidra.server import create_server
from sidra.training import (
    SPSAOptions,
    SPSAStep,
    TrainedModel,
    load_dataset,
    train_softmax_spsa,
)

__all__ = ["run_demo"]

CHECK_TILE = 1
TRAIN_TILE = 0
DEPLOY_TILE = 2
MVM_TOLERANCE = 0.10
"""Largest relative RMS deviation from numpy accepted by the MVM check: the
default preset's read noise alone is about 5 % of a typical output."""


def run_demo(board_url: str, steps: int, seed: int, console: Console | None = None) -> int:
    """Runs the demo; returns the process exit code (0 when every check passed)."""
    console = console or Console()
    driver = open_board(board_url)
    server, port = create_server(driver, "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as board:
            console.print(f"[bold]SIDRA HIL demo[/]: {board_url} served on 127.0.0.1:{port}")
            _show_info(console, board)
            checks_ok = _check_mvm(console, board, seed)
            model = _train(console, board, steps, seed)
            _deploy(console, board, model)
    finally:
        server.stop(grace=1.0).wait()
        driver.close()
    return 0 if checks_ok else 1


def _show_info(console: Console, board: RemoteBoard) -> None:
    info = board.info
    table = Table(title="Board", show_header=False)
    table.add_row("model / serial", f"{info.model} / {info.serial_number}")
    table.add_row("firmware", info.firmware_version)
    table.add_row("tiles", f"{info.tile_count} × {info.rows}×{info.cols}")
    table.add_row("conductance", f"{info.g_min_us:g} … {info.g_max_us:g} µS")
    table.add_row("read voltage", f"±{info.read_voltage_max_v:g} V")
    table.add_row("emulator preset", info.emulator_preset or "-")
    console.print(table)


def _relative_rms(measured: np.ndarray, expected: np.ndarray) -> float:
    return float(np.sqrt(np.mean((measured - expected) ** 2) / np.mean(expected**2)))


def _check_mvm(console: Console, board: RemoteBoard, seed: int) -> bool:
    info = board.info
    rng = np.random.default_rng(seed)
    g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)).astype(np.float32)
    report = board.program(CHECK_TILE, g)
    console.print(
        f"Program {report.cells_written:,} cells: {report.verify_iterations} verify iterations, "
        f"rms error {report.rms_error_us:.3f} µS, max {report.max_error_us:.3f} µS, "
        f"{report.unconverged_cells} unconverged"
    )
    v_max = info.read_voltage_max_v
    ok = True
    for name, call, matrix, width in (
        ("MVM", board.mvm, g, info.rows),
        ("TransposeMVM", board.transpose_mvm, g.T, info.cols),
    ):
        v = rng.uniform(-v_max, v_max, (64, width)).astype(np.float32)
        error = _relative_rms(call(CHECK_TILE, v).currents, v @ matrix)
        passed = error <= MVM_TOLERANCE
        ok &= passed
        console.print(
            f"{name} vs numpy V·G{'ᵀ' if name.startswith('T') else ''}: relative rms deviation "
            f"{100 * error:.2f} % [{'green' if passed else 'red'}]"
            f"{'ok' if passed else 'FAIL'}[/] (limit {100 * MVM_TOLERANCE:g} %)"
        )
    # A region programmed away from the window edges, so no perturbed cell clips.
    region = Region(0, 0, 32, 32)
    amplitude = 0.15 * (info.g_max_us - info.g_min_us)
    mid = rng.uniform(info.g_min_us + 2 * amplitude, info.g_max_us - 2 * amplitude, region.shape)
    board.program(CHECK_TILE, mid.astype(np.float32))
    before = board.read_conductance(CHECK_TILE, region).conductances
    perturb_seed = int(rng.integers(2**63))
    board.perturb(CHECK_TILE, perturb_seed, amplitude, +1, region)
    after = board.read_conductance(CHECK_TILE, region).conductances
    board.restore(CHECK_TILE, region)
    agree = float(np.mean(np.sign(after - before) == rademacher(perturb_seed, region.shape)))
    passed = agree >= 0.99
    ok &= passed
    console.print(
        f"Perturb ±{amplitude:g} µS: board-applied signs match the client-regenerated Δ in "
        f"{100 * agree:.2f} % of cells [{'green' if passed else 'red'}]"
        f"{'ok' if passed else 'FAIL'}[/]"
    )
    return ok


def _train(console: Console, board: RemoteBoard, steps: int, seed: int) -> TrainedModel:
    """Trains the layer on TRAIN_TILE; returns the trained model (its record's)."""
    data = load_dataset("digits")
    console.print(
        f"SPSA on digits: {data.features}→{data.classes} softmax layer "
        f"({len(data.x_train)} train / {len(data.x_test)} test), {steps} steps"
    )
    before = board.stats()
    started = time.perf_counter()
    smoothed: list[float] = []
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("training", total=steps, loss=float("nan"))

        def on_step(step: SPSAStep) -> None:
            loss = step.loss
            smoothed.append(loss if not smoothed else 0.98 * smoothed[-1] + 0.02 * loss)
            if step.step % 20 == 0 or step.step == steps:
                progress.update(task, completed=step.step, loss=smoothed[-1])

        options = SPSAOptions(steps=steps, seed=seed, tiles=(TRAIN_TILE,), a=0.5, c=0.2)
        result = train_softmax_spsa(board, data, options, on_step=on_step)
    elapsed = time.perf_counter() - started
    after = board.stats()
    table = Table(title="SPSA training", show_header=False)
    table.add_row("test accuracy", f"[bold]{100 * result.test_accuracy:.2f} %[/]")
    table.add_row("train accuracy", f"{100 * result.train_accuracy:.2f} %")
    table.add_row("loss evaluations", f"{result.loss_evaluations:,}")
    table.add_row(
        "MVM calls (passes)", f"{result.mvm_calls:,} ({after.mvm_passes - before.mvm_passes:,})"
    )
    table.add_row("cell writes", f"{after.cell_writes - before.cell_writes:,}")
    table.add_row("modeled hardware time", f"{result.modeled_time_ns:,.0f} ns")
    table.add_row("modeled hardware energy", f"{result.modeled_energy_nj:,.0f} nJ")
    table.add_row("wall time", f"{elapsed:.1f} s ({1e3 * elapsed / steps:.2f} ms/step over gRPC)")
    console.print(table)
    console.print(f"test accuracy: {100 * result.test_accuracy:.2f} %")
    assert result.model is not None  # an SPSA run keeps its layer
    return result.model


def _deploy(console: Console, board: RemoteBoard, model: TrainedModel) -> None:
    """The trained model programmed on DEPLOY_TILE and run there on the test samples."""
    data = load_dataset("digits")
    deployed = model.deploy(board, tiles=[DEPLOY_TILE])
    result = deployed.evaluate(data.x_test, data.y_test)
    [written] = deployed.programming
    console.print(
        f"Deployed the trained model on tile {DEPLOY_TILE} (write-verify rms error "
        f"{written.rms_error_us:.3f} µS) and ran it: test accuracy "
        f"{100 * result.accuracy:.2f} %, {result.time_per_sample_ns:.0f} ns and "
        f"{result.energy_per_sample_nj:.0f} nJ modeled per sample (sidra model eval does "
        "this for any run's model.npz)"
    )
