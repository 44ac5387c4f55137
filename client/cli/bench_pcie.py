"""``sidra bench pcie``: the PCIe path against the in-process emulator, in one run.

The virtual PCIe board runs in its own process (``serve_virtual_pcie_board``, the
board ``sidra board serve --pcie-file`` runs), as a board is a separate device: a
round trip includes both ends' ring handling and the wait for the other process
to notice a doorbell, not a call inside one interpreter. The in-process emulator (``emu://``) with
the same preset and seed is the reference: the ratio says what the transport
costs, on the same machine, under the same load.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Annotated, Any

import numpy as np
import typer

from sidra.cli.bench_machine import machine
from sidra.cli.bench_pcie_calls import call_counts
from sidra.cli.bench_timing import BURST, SETTLE_S, burst_s, times_s
from sidra.cli.options import AsJson
from sidra.cli.presets import Preset
from sidra.drivers import Board, open_board
from sidra.emulator import preset
from sidra.emulator.pcie import serve_virtual_pcie_board

__all__ = ["pcie_benchmark", "pcie_command"]

BATCH = 1024
"""Vectors per batch MVM: a full slot window of 256-input float32 vectors."""


def _program_same(boards: list[Board], seed: int) -> None:
    info = boards[0].info
    rng = np.random.default_rng(seed)
    g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)).astype(np.float32)
    for board in boards:
        board.program(0, g)


def pcie_benchmark(
    preset_name: str = "ideal", mvms: int = 2000, batches: int = 21, seed: int = 0
) -> dict[str, Any]:
    """Single-vector MVM round trip (p50/p99) and batch-1024 throughput, PCIe vs in process."""
    with (
        serve_virtual_pcie_board(preset(preset_name), seed) as board,
        open_board(board.url) as pcie,
        open_board(f"emu://?preset={preset_name}&seed={seed}") as local,
    ):
        _program_same([pcie, local], seed)
        rows = pcie.info.rows
        rng = np.random.default_rng(seed + 1)
        v_max = pcie.info.read_voltage_max_v
        one = rng.uniform(-v_max / 4, v_max / 4, (1, rows)).astype(np.float32)
        batch = rng.uniform(-v_max / 4, v_max / 4, (BATCH, rows)).astype(np.float32)
        load_start = os.getloadavg()[0]
        for _ in range(50):  # warm-up: page faults in the windows, kernel caches, BLAS threads
            pcie.mvm(0, one)
            local.mvm(0, one)
        for _ in range(3):
            pcie.mvm(0, batch)
            local.mvm(0, batch)
        # After the warm-up's batches both processes' BLAS worker threads spin for a while
        # (~0.1 s): single MVMs timed next to them would share the two cores with them.
        time.sleep(SETTLE_S)
        pcie_one = times_s(lambda: pcie.mvm(0, one), mvms)
        time.sleep(SETTLE_S)
        local_one = times_s(lambda: local.mvm(0, one), mvms)
        # Interleave bursts of batches so machine load affects both alike, each burst
        # started from rest (SETTLE_S, sidra.cli.bench_timing; the board process has
        # parked too): both pay the same wake-ups.
        pcie_batch, local_batch = [], []
        for _ in range(batches):
            pcie_batch.append(burst_s(lambda: pcie.mvm(0, batch)))
            local_batch.append(burst_s(lambda: local.mvm(0, batch)))
        depth = getattr(pcie, "queue_depth", 0)
    pcie_batch_s = statistics.median(pcie_batch)
    local_batch_s = statistics.median(local_batch)
    return {
        "mvm1_p50_us": round(1e6 * float(np.percentile(pcie_one, 50)), 1),
        "mvm1_p99_us": round(1e6 * float(np.percentile(pcie_one, 99)), 1),
        "inproc_mvm1_us": round(1e6 * statistics.median(local_one), 1),
        "batch1024_ratio": round(local_batch_s / pcie_batch_s, 3),  # = PCIe vec/s / local vec/s
        "batch1024_pcie_vps": round(BATCH / pcie_batch_s),
        "batch1024_inproc_vps": round(BATCH / local_batch_s),
        "queue_depth": depth,
        "shape": [BATCH, rows, pcie.info.cols],
        "mvms": mvms,
        "batches": batches,
        "preset": preset_name,
        "machine": machine(),
        # Other work on the machine moves every figure: runs are comparable only at a
        # like load (the 1-minute load average when the timing began and ended).
        "load_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }


def pcie_command(
    ctx: typer.Context,
    as_json: AsJson = False,
    preset_name: Preset = "ideal",
    mvms: Annotated[int, typer.Option(min=10, help="Single-vector MVMs timed.")] = 2000,
    batches: Annotated[
        int, typer.Option(min=3, help=f"Bursts of {BURST} batch-{BATCH} MVMs timed.")
    ] = 21,
    calls: Annotated[
        bool,
        typer.Option(
            "--calls",
            help="Instead: Python calls per single-vector MVM on each end (deterministic; "
            "the board stepped in this process by each doorbell).",
        ),
    ] = False,
) -> None:
    """Single-vector MVM round trip and batch-1024 throughput: virtual PCIe board vs emu://."""
    if calls:
        for name in ("mvms", "batches"):  # counted once, not timed: taken by the timings only
            source = ctx.get_parameter_source(name)
            if source is not None and source.name == "COMMANDLINE":
                raise typer.BadParameter(
                    f"--{name} sets the timings; --calls counts 20 MVMs, deterministic",
                    param_hint=f"--{name}",
                )
        counts = call_counts(preset_name)
        if as_json:
            typer.echo(json.dumps(counts))
            return
        typer.echo(
            f"calls per 1-vector MVM: host {counts['host_calls']:.0f} (before the doorbell "
            f"{counts['host_before_doorbell_calls']:.0f}, while the board works "
            f"{counts['host_while_board_calls']:.0f}, after the answer "
            f"{counts['host_after_answer_calls']:.0f}), board {counts['board_calls']:.0f}; "
            f"round trip {counts['round_trip_calls']:.0f}, on its path "
            f"{counts['critical_path_calls']:.0f}; in process {counts['inproc_calls']:.0f}\n"
            f"fastest lockstep round trip (both ends' work, no waiting) "
            f"{counts['lockstep_min_us']:.1f} us; in process {counts['inproc_min_us']:.1f} us"
        )
        for side, names in counts["top_calls"].items():
            typer.echo(f"{side}: " + ", ".join(f"{n:g} {name}" for name, n in names.items()))
        return
    res = pcie_benchmark(preset_name, mvms, batches)
    if as_json:
        typer.echo(json.dumps(res))
        return
    batch, rows, cols = res["shape"]
    typer.echo(
        f"{res['machine']}\n"
        f"virtual PCIe board ({res['preset']}) in its own process, queue depth "
        f"{res['queue_depth']}, vs the in-process emulator\n"
        f"MVM 1x{rows} @ {rows}x{cols} round trip: PCIe p50 {res['mvm1_p50_us']:.1f} us, "
        f"p99 {res['mvm1_p99_us']:.1f} us; in process {res['inproc_mvm1_us']:.1f} us median\n"
        f"MVM {batch}x{rows} throughput: PCIe {res['batch1024_pcie_vps']} vectors/s, in process "
        f"{res['batch1024_inproc_vps']} vectors/s, ratio {res['batch1024_ratio']:.3f}\n"
        f"machine load (1-minute average) {res['load_1min'][0]:.2f} at the start, "
        f"{res['load_1min'][1]:.2f} at the end, on {os.cpu_count()} CPUs"
    )
