"""``sidra bench``: speed ratios measured in one run (never asserted by tests)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
import typer

from sidra.cli.bench_machine import machine
from sidra.cli.bench_pcie import pcie_command
from sidra.cli.bench_service import service_command
from sidra.cli.options import AsJson
from sidra.cli.presets import Preset
from sidra.drivers import Region
from sidra.emulator import EmulatedBoard, preset

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; ratios are measured in one run.")
bench_app.command("pcie")(pcie_command)
bench_app.command("service")(service_command)


def _median_ms(call: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def emulator_benchmark(
    preset_name: str = "sidra-y1", batch: int = 1024, repeats: int = 21, seed: int = 0
) -> dict[str, Any]:
    """Median emulator MVM vs plain float32 numpy matmul of the same shape."""
    profile = preset(preset_name)
    board = EmulatedBoard(profile, seed)
    rows, cols = profile.geometry.rows, profile.geometry.cols
    rng = np.random.default_rng(seed)
    lo, hi = profile.conductance.g_min_us, profile.conductance.g_max_us
    g = rng.uniform(lo, hi, (rows, cols)).astype(np.float32)
    board.program(0, Region(0, 0, rows, cols), g)
    board.advance_clock(3600.0)  # an hour of drift, so drift is in play
    v_max = profile.read_voltage_max_v
    v = rng.uniform(-v_max / 4, v_max / 4, (batch, rows)).astype(np.float32)
    for _ in range(3):  # warm-up: kernel cache, BLAS threads, page faults
        board.mvm(0, v)
        _ = v @ g
    # Interleave the two so machine load affects both alike.
    emulator, plain = [], []
    for _ in range(repeats):
        emulator.append(_median_ms(lambda: board.mvm(0, v), 1))
        plain.append(_median_ms(lambda: v @ g, 1))
    emulator_ms, numpy_ms = statistics.median(emulator), statistics.median(plain)
    return {
        "emulator_ms": round(emulator_ms, 4),
        "numpy_ms": round(numpy_ms, 4),
        "ratio": round(emulator_ms / numpy_ms, 3),
        "preset": preset_name,
        "shape": [batch, rows, cols],
        "repeats": repeats,
        "machine": machine(),
    }


@bench_app.command("emulator")
def emulator_command(
    as_json: AsJson = False,
    preset_name: Preset = "sidra-y1",
    batch: Annotated[
        int, typer.Option(min=1, max=65536, help="Input vectors per MVM (64 MiB at most).")
    ] = 1024,
    repeats: Annotated[int, typer.Option(min=3, help="Timed repetitions.")] = 21,
) -> None:
    """Emulator MVM with every effect of the preset on vs a plain float32 matmul."""
    result = emulator_benchmark(preset_name, batch, repeats)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{result['machine']}, numpy {np.__version__}\n"
        f"emulator MVM ({preset_name}, {batch}x{result['shape'][1]} @ "
        f"{result['shape'][1]}x{result['shape'][2]}): {result['emulator_ms']:.3f} ms median\n"
        f"plain float32 numpy matmul:            {result['numpy_ms']:.3f} ms median\n"
        f"ratio: {result['ratio']:.2f}"
    )
