"""``sidra bench service``: the gRPC service against the same board in process, in one run.

The board is served by ``sidra serve`` in a process of its own, as in the lab; the
in-process side is the same emulator preset opened with ``open_board``. Every figure
comes from this one run, each beside its reference, and the keys issue 13's
acceptance names are printed as ratios:

- ``batch{1,64,1024}_float32_ratio``: MVM vectors per second over gRPC divided by in
  process (float32 tensors); the batch-1024 paths (in process, float32, codes, shared
  memory) are timed in turn within each repeat, each as a burst of back-to-back calls
  from rest (sidra.cli.bench_timing), so load that comes and goes falls on each alike
  and neither process's spinning BLAS threads slow the other's burst;
- ``batch1024_codes_ratio``: the same over gRPC with the inputs as DAC codes (int8) and
  the outputs as ADC codes (int16; ``input_codes``, ``output_codes``), divided by in
  process (float32): the acceptance asks for at least 2.5 x ``batch1024_float32_ratio``;
- ``batch1024_shm_ratio``: the same over gRPC with the voltages and currents in shared
  memory registered with the server (``board.mvm_shared``; the server enables it for
  this run), divided by in process: the acceptance asks for at least 0.8;
  ``batch1024_shm_stream_ratio`` the same with the burst's batches pipelined over one
  MVMStream (``board.mvm_shared_stream``, the client's default depth in flight);
- ``mvm1_over_empty``: a 1-vector MVM round trip over an empty RPC (a health check)
  on the same server, p50 over p50, the two timed in turns;
- ``spsa_board_step_ratio`` / ``spsa_host_step_ratio``: an SPSA step on the digits
  softmax layer over gRPC divided by in process, with on-board perturbation and
  with host-held weights. A step's time is the difference between a run of
  ``2n`` and one of ``n`` steps, over ``n``: setup and the final evaluation cancel
  (measured with one read pass per input, which leaves the training path alone, so
  that its jitter weighs less). Host-held steps, several times shorter, run
  :data:`HOST_STEPS_FACTOR` times as many for the same reason.
  The two sides alternate over ``rounds`` rounds and each side's median is taken: a
  machine busy with other work slows both alike, and one slow run cannot make a
  difference of two runs meaningless (or negative).
- ``spsa_job_step_ratio_wan``: the same on-board SPSA run as a job inside the server
  (jobs.proto), submitted and followed by a client that reaches the server through a
  proxy adding :data:`WAN_DELAY_S` each way, over the in-process step. A job's time is
  the client's, from SubmitJob to the end of its WatchJob stream; ``2n`` minus ``n``
  steps again, so the round trips of submitting and watching cancel; rounds and
  medians as above.

Every key issue 13 names is measured.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import grpc
import numpy as np
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidra.cli.bench_machine import load_1min, machine
from sidra.cli.bench_timing import BURST, SETTLE_S, burst_s, times_s
from sidra.cli.delay_proxy import DelayProxy
from sidra.cli.options import AsJson
from sidra.cli.presets import Preset
from sidra.client import RemoteBoard, connect
from sidra.client.streams import DEFAULT_STREAM_DEPTH
from sidra.drivers import Board, open_board
from sidra.server.jobs import TRAINING_EXTRA
from sidra.training.board_spsa import train_softmax_spsa
from sidra.training.datasets import load_dataset
from sidra.training.options import PerturbationMode, SPSAOptions

__all__ = ["service_benchmark", "service_command"]

WAN_DELAY_S = 0.020
"""Delay the proxy adds each way between the client and the server for the job figure, s."""
HOST_STEPS_FACTOR = 5
"""Host-held SPSA runs this many times the steps of on-board SPSA."""


def _spsa_options(n: int, mode: PerturbationMode) -> SPSAOptions:
    """The benchmark's SPSA runs: ``n`` steps, no accuracy measured before the end, and
    that one with one read pass per input."""
    return SPSAOptions(steps=n, mode=mode, eval_every=10 * n, eval_read_repeats=1, seed=0)


@contextmanager
def _served(board_url: str) -> Iterator[str]:
    """``sidra serve --board URL`` on a free loopback port; yields ``host:port``."""
    command = [sys.executable, "-m", "sidra.cli", "serve", "--board", board_url]
    # A state store of its own: the benchmark's thousands of Programs stay out of the
    # user's store (and every run starts from the same empty file).
    with tempfile.TemporaryDirectory(prefix="sidra-bench-") as folder:
        # A server of the defaults, not of the user's settings (a lab's config logging
        # JSON, limits, TLS): the figures are the service's, and its start line is read.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")} | {
            "SIDRA_SHARED_MEMORY__ENABLED": "true",  # for batch1024_shm_ratio
            "SIDRA_STATE__PATH": str(Path(folder) / "state.sqlite3"),
        }
        if "SIDRA_CACHE_DIR" in os.environ:  # the data sets a job reads, downloaded once
            env["SIDRA_CACHE_DIR"] = os.environ["SIDRA_CACHE_DIR"]
        proc = subprocess.Popen(
            [*command, "--listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        # A server that never says it serves is stopped, and the loop below ends.
        timer = threading.Timer(START_TIMEOUT_S, proc.terminate)
        timer.start()
        try:
            stderr = proc.stderr
            assert stderr is not None
            seen = []
            for line in stderr:
                seen.append(line)
                match = re.search(r"^serving .* on (127\.0\.0\.1:\d+)", line)
                if match:
                    timer.cancel()
                    # It logs the calls it answers: keep reading, or a full pipe would
                    # stall it.
                    threading.Thread(target=stderr.read, daemon=True).start()
                    yield match.group(1)
                    return
            raise RuntimeError(
                f"sidra serve did not start serving within {START_TIMEOUT_S:g} s: "
                + "".join(seen[-5:])
            )
        finally:
            timer.cancel()
            proc.terminate()
            proc.wait(timeout=30)


START_TIMEOUT_S = 60.0
"""How long the benchmark's server may take to say it serves, s."""


def _alternating_times_s(
    calls: tuple[Callable[[], Any], ...], repeats: int
) -> tuple[list[float], ...]:
    """Each of ``calls`` timed ``repeats`` times, in turns (a, b, a, b, ...) after a
    warm-up of each: on a shared machine the load drifts within seconds, and calls timed
    in turns meet the same drift, so their ratio does not depend on which went first."""
    for call in calls:
        for _ in range(10):
            call()
    times: tuple[list[float], ...] = tuple([] for _ in calls)
    for _ in range(repeats):
        for call, taken in zip(calls, times, strict=True):
            start = time.perf_counter()
            call()
            taken.append(time.perf_counter() - start)
    return times


def _vectors_per_s(board: Board, batch: int, repeats: int, rng: np.random.Generator) -> float:
    info = board.info
    v = rng.uniform(-0.05, 0.05, (batch, info.rows)).astype(np.float32)
    time.sleep(SETTLE_S)  # the other side's BLAS threads asleep (sidra.cli.bench_timing)
    for _ in range(2):  # warm-up: connections, BLAS threads, page faults
        board.mvm(0, v)
    return batch / statistics.median(times_s(lambda: board.mvm(0, v), repeats))


def _batch1024_vectors_per_s(
    local: Board, remote: RemoteBoard, repeats: int, rng: np.random.Generator
) -> dict[str, float]:
    """MVM vectors per second of a batch of 1024 by each path (in process; over gRPC
    with float32 tensors, with converter codes, with the tensors in shared memory): in
    each repeat a burst of each path in turn, each from rest (sidra.cli.bench_timing),
    so load that comes and goes during the run falls on every path alike and no path
    runs next to the BLAS threads the other process left spinning. Codes are left out
    on a board without converters."""
    batch, info = 1024, local.info
    v = rng.uniform(-0.05, 0.05, (batch, info.rows)).astype(np.float32)
    calls: dict[str, Callable[[], Any]] = {
        "inprocess": lambda: local.mvm(0, v),
        "grpc": lambda: remote.mvm(0, v),
    }
    if info.dac_bits and info.adc_bits:
        top = (1 << (info.dac_bits - 1)) - 1
        k = rng.integers(-top // 4, top // 4 + 1, (batch, info.rows)).astype(np.int8)
        calls["grpc_codes"] = lambda: remote.mvm(0, input_codes=k, output_codes=True)
    inputs_bytes, outputs_bytes = batch * info.rows * 4, batch * info.cols * 4
    # The stream's outputs: one array per item in flight and one more (mvm_shared_stream).
    outputs = DEFAULT_STREAM_DEPTH + 1
    with (
        remote.session(),
        remote.shared_memory(inputs_bytes + outputs * outputs_bytes) as shm,
    ):
        shared_v = shm.array((batch, info.rows))
        shared_out = [
            shm.array((batch, info.cols), offset_bytes=inputs_bytes + k * outputs_bytes)
            for k in range(outputs)
        ]
        shared_v.array[:] = v
        calls["grpc_shm"] = lambda: remote.mvm_shared(0, shared_v, shared_out[0])
        # BURST batches over one MVMStream (its inputs unchanged, so one array for all).
        pairs = [(shared_v, shared_out[k % outputs]) for k in range(BURST)]
        streamed: dict[str, Callable[[], Any]] = {
            "grpc_shm_stream": lambda: list(
                remote.mvm_shared_stream(0, pairs, depth=DEFAULT_STREAM_DEPTH)
            )
        }
        for call in [*calls.values(), *streamed.values()]:  # warm-up: connections, BLAS
            call()  # threads, page faults
            call()
        times: dict[str, list[float]] = {name: [] for name in (*calls, *streamed)}
        for _ in range(repeats):
            for name, call in calls.items():
                times[name].append(burst_s(call))
            for name, call in streamed.items():  # a burst is one stream of BURST batches
                times[name].append(burst_s(call, burst=1) / BURST)
        shared_out.clear()
    return {name: batch / statistics.median(taken) for name, taken in times.items()}


def _spsa_runs(board: Board, mode: PerturbationMode) -> Callable[[int], float]:
    """A function that trains the digits softmax layer for n steps on ``board``; its time, s."""
    data = load_dataset("digits")

    def run(n: int) -> float:
        options = _spsa_options(n, mode)
        start = time.perf_counter()
        train_softmax_spsa(board, data, options)
        return time.perf_counter() - start

    return run


def _paired_step_s(
    first: Callable[[int], float], second: Callable[[int], float], steps: int, rounds: int
) -> tuple[float, float]:
    """Per-step times of two ways of running the same n-step SPSA training: in each of
    ``rounds`` rounds each runs ``2n`` and ``n`` steps (setup and the final evaluation
    cancel in the difference), the two taking turns as to which goes first, so a
    machine busy with something else slows both alike; the median of each."""
    first(steps)  # warm-up: connections, caches, the server's first job loads its code
    second(steps)
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(rounds):
        pair = ((0, first), (1, second)) if r % 2 == 0 else ((1, second), (0, first))
        for side, run in pair:
            times[side].append((run(2 * steps) - run(steps)) / steps)
    return statistics.median(times[0]), statistics.median(times[1])


@contextmanager
def _job_runs(address: str, mode: PerturbationMode) -> Iterator[Callable[[int], float]]:
    """Like :func:`_spsa_runs`, as a job inside the server at ``address``, timed as its
    client sees it: from SubmitJob to the end of the job's WatchJob stream."""

    with connect(address) as board:

        def job(n: int) -> float:
            options = _spsa_options(n, mode)
            start = time.perf_counter()
            submitted = board.jobs.submit("spsa", options.settings())
            for _ in board.jobs.watch(submitted.job_id):
                pass
            elapsed = time.perf_counter() - start
            done = board.jobs.get(submitted.job_id)
            if done.state != "succeeded":
                raise RuntimeError(f"benchmark job {done.job_id} {done.state}: {done.error}")
            return elapsed

        yield job


def service_benchmark(
    preset_name: str = "sidra-y1",
    repeats: int = 21,
    spsa_steps: int = 100,
    seed: int = 0,
    rounds: int = 5,
    job_steps: int = 200,
) -> dict[str, Any]:
    """Every figure of the service against in process, measured in one run."""
    url = f"emu://?preset={preset_name}&seed={seed}"
    result: dict[str, Any] = {"preset": preset_name, "repeats": repeats}
    with _served(url) as address, open_board(url) as local, connect(address) as remote:
        rng = np.random.default_rng(seed)
        info = local.info
        g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)).astype(np.float32)
        local.program(0, g)
        remote.program(0, g)
        for batch in (1, 64):
            here = _vectors_per_s(local, batch, repeats, rng)
            there = _vectors_per_s(remote, batch, repeats, rng)
            result[f"batch{batch}_inprocess_vectors_per_s"] = round(here)
            result[f"batch{batch}_grpc_vectors_per_s"] = round(there)
            result[f"batch{batch}_float32_ratio"] = round(there / here, 3)
        rates = _batch1024_vectors_per_s(local, remote, repeats, rng)
        here = rates.pop("inprocess")
        result["batch1024_inprocess_vectors_per_s"] = round(here)
        paths = (("grpc", "float32"), ("grpc_codes", "codes"), ("grpc_shm", "shm"),
                 ("grpc_shm_stream", "shm_stream"))  # fmt: skip
        for path, key in paths:
            if path in rates:  # no codes on a board with ideal converters: null
                result[f"batch1024_{path}_vectors_per_s"] = round(rates[path])
                result[f"batch1024_{key}_ratio"] = round(rates[path] / here, 3)

        v1 = np.zeros((1, info.rows), np.float32)
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest()
            empty, mvm1 = _alternating_times_s(
                (lambda: health.Check(check, timeout=10), lambda: remote.mvm(0, v1)),
                10 * repeats,
            )
        result["empty_rpc_p50_us"] = round(1e6 * statistics.median(empty), 1)
        result["mvm1_p50_us"] = round(1e6 * statistics.median(mvm1), 1)
        result["mvm1_over_empty"] = round(statistics.median(mvm1) / statistics.median(empty), 3)

        for mode, key, steps in (
            (PerturbationMode.BOARD, "board", spsa_steps),
            (PerturbationMode.HOST, "host", HOST_STEPS_FACTOR * spsa_steps),
        ):
            here, there = _paired_step_s(
                _spsa_runs(local, mode), _spsa_runs(remote, mode), steps, rounds
            )
            result[f"spsa_{key}_step_inprocess_ms"] = round(1e3 * here, 3)
            result[f"spsa_{key}_step_grpc_ms"] = round(1e3 * there, 3)
            result[f"spsa_{key}_step_ratio"] = _step_ratio(there, here)

        with (
            DelayProxy(address, WAN_DELAY_S) as wan,
            _job_runs(wan.address, PerturbationMode.BOARD) as job,
        ):
            job_s, here_s = _paired_step_s(
                job, _spsa_runs(local, PerturbationMode.BOARD), job_steps, rounds
            )
        result["wan_delay_ms_each_way"] = round(1e3 * WAN_DELAY_S, 1)
        result["spsa_job_step_wan_ms"] = round(1e3 * job_s, 3)
        result["spsa_job_step_inprocess_ms"] = round(1e3 * here_s, 3)
        result["spsa_job_step_ratio_wan"] = _step_ratio(job_s, here_s)
    result.setdefault("batch1024_codes_ratio", None)
    return result


def _step_ratio(there_s: float, here_s: float) -> float | None:
    """Step time over gRPC over in process; None (named under "unmeasured") when either
    is at or below zero: a difference of two runs that noise swamped is no figure, and
    their quotient (negative, or huge) would read as one."""
    return round(there_s / here_s, 3) if there_s > 0 and here_s > 0 else None


def service_command(
    as_json: AsJson = False,
    preset_name: Preset = "sidra-y1",
    repeats: Annotated[
        int,
        typer.Option(
            min=3,
            help="Timed repetitions per batch size (batch 1024: bursts of calls); 10x as many "
            "empty-RPC / 1-vector MVM pairs.",
        ),
    ] = 21,
    spsa_steps: Annotated[
        int,
        typer.Option(
            min=5, help="SPSA steps n of the per-step figures' n / 2n runs (host-held: 5 n)."
        ),
    ] = 100,
    rounds: Annotated[
        int,
        typer.Option(min=1, help="Rounds of the SPSA figures, the two sides alternating (median)."),
    ] = 5,
    job_steps: Annotated[
        int, typer.Option(min=5, help="SPSA steps n of the job figure's n / 2n runs.")
    ] = 200,
) -> None:
    """The gRPC service against the same board in process; ratios from one run.

    MVM throughput, a round trip over an empty RPC, SPSA step time, and an SPSA job through
    a proxy that adds 20 ms each way. It starts a `sidra serve` of its own (the defaults,
    a state store in a temporary folder) and needs the training extra (the SPSA figures
    train on the digits data set); about 2.5 minutes at the defaults on 2 CPUs. A step
    time is the difference of an n-step and a 2n-step run: at small --spsa-steps or
    --job-steps the machine's noise can exceed it (named under "unmeasured")."""
    if importlib.util.find_spec("sklearn") is None:  # before two minutes of measuring
        raise typer.BadParameter(
            f"the SPSA figures train on scikit-learn's digits: {TRAINING_EXTRA}"
        )
    load_start = load_1min()
    result = service_benchmark(preset_name, repeats, spsa_steps, rounds=rounds, job_steps=job_steps)
    result |= {
        "spsa_steps": spsa_steps, "rounds": rounds, "job_steps": job_steps,
        "machine": machine(), "load_1min": [load_start, load_1min()],
        "unmeasured": _unmeasured(result),
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result))
        return
    unmeasured = result["unmeasured"]
    for key, value in result.items():
        if value is None:
            value = (
                "unmeasured: noise over too few steps"
                if key in unmeasured
                else ("not offered by this preset")
            )
        typer.echo(f"{key:38} {value}")


def _unmeasured(result: dict[str, Any]) -> list[str]:
    """The step times at or below zero, and the ratios left out for them."""
    times = [k for k, v in result.items() if k.endswith("_ms") and v <= 0]
    ratios = [k for k, v in result.items() if "step_ratio" in k and v is None]
    return times + ratios
