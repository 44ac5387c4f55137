"""``sidra bench serial``: the serial path over a real pty, measured in one run.

The virtual board runs in its own process (``sidra board serve --pty``), as a
board is a separate machine: the numbers include the pty, both codecs and
both Python ends, not GIL hand-offs inside one process.

With ``--faults SPEC`` the board's line damages frames as ``sidra board serve
--faults`` does, and the same Programs run on a clean line in the same run: the
slowdown is what that line costs, with the frames the link came down to
(docs/wire-protocol.md §4.6).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import tty
from typing import Annotated, Any

import numpy as np
import serial
import typer

from sidra.cli.options import AsJson
from sidra.cli.presets import Preset
from sidra.drivers import open_board
from sidra.drivers.serial import SerialDriver
from sidra.emulator.firmware.faults import FaultConfig

__all__ = ["serial_benchmark", "serial_command"]

TILE_BYTES = 256 * 256 * 4


def _virtual_board(preset_name: str, faults: str = "") -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "sidra.cli", "board", "serve", "--pty"]
    command += ["--preset", preset_name, *(["--faults", faults] if faults else [])]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("serial://"):
        proc.kill()
        raise RuntimeError(f"sidra board serve printed {url!r}, not a serial:// URL")
    return proc, url


def raw_pty_mb_s(total: int = 16 << 20, chunk: int = 1 << 16) -> float:
    """Bytes/s through a raw pty: pyserial writes the slave, a thread drains the master."""
    master, slave = os.openpty()
    tty.setraw(slave)
    done = threading.Event()

    def drain() -> None:
        left = total
        while left > 0:
            left -= len(os.read(master, 1 << 16))
        done.set()

    reader = threading.Thread(target=drain, daemon=True)
    port = serial.Serial(os.ttyname(slave), timeout=1, write_timeout=10)
    block = os.urandom(chunk)
    reader.start()
    start = time.perf_counter()
    for _ in range(total // chunk):
        port.write(block)
    done.wait(30)
    elapsed = time.perf_counter() - start
    port.close()
    for fd in (master, slave):
        os.close(fd)
    return total / elapsed / 1e6


def _timed_programs(
    board: SerialDriver, programs: int, seed: int
) -> tuple[list[float], list[float]]:
    """The time (s) and wire efficiency of ``programs`` full-tile Programs."""
    rng = np.random.default_rng(seed)
    info = board.info
    times, efficiencies = [], []
    for _ in range(programs):
        g = rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols))
        before = board.link_stats()
        start = time.perf_counter()
        board.program(0, g.astype(np.float32))
        times.append(time.perf_counter() - start)
        after = board.link_stats()
        wire = (after.bytes_sent - before.bytes_sent) + (
            after.bytes_received - before.bytes_received
        )
        efficiencies.append(info.rows * info.cols * 4 / wire)
    return times, efficiencies


def _clean_program_s(preset_name: str, programs: int, seed: int) -> float:
    """The median full-tile Program on a clean line, s (the reference of a noisy one)."""
    proc, url = _virtual_board(preset_name)
    try:
        with open_board(url) as board:
            assert isinstance(board, SerialDriver)
            return statistics.median(_timed_programs(board, programs, seed)[0])
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()


def serial_benchmark(
    preset_name: str = "ideal",
    programs: int = 5,
    mvms: int = 2000,
    seed: int = 0,
    faults: str = "",
) -> dict[str, Any]:
    """Full-tile Program and single-vector MVM over the pty, and raw pty throughput; with
    ``faults``, over a line that damages frames, and the Programs on a clean one too."""
    proc, url = _virtual_board(preset_name, faults)
    try:
        with open_board(url) as board:
            assert isinstance(board, SerialDriver)
            info = board.info
            times, efficiencies = _timed_programs(board, programs, seed)
            rng = np.random.default_rng(seed + 1)
            v = rng.uniform(-0.1, 0.1, (1, info.rows)).astype(np.float32)
            for _ in range(50):  # warm-up
                board.mvm(0, v)
            round_trips = []
            for _ in range(mvms):
                start = time.perf_counter()
                board.mvm(0, v)
                round_trips.append(time.perf_counter() - start)
            link = board.link_stats()
    finally:
        _stop(proc)
    program_s = statistics.median(times)
    payload = info.rows * info.cols * 4
    noisy: dict[str, Any] = {}
    if faults:
        clean_s = _clean_program_s(preset_name, programs, seed)
        noisy = {
            "faults": faults,
            "clean_program_s": round(clean_s, 6),
            "program_slowdown": round(program_s / clean_s, 2),
            "payload_limit": link.payload_limit,
            "payload_changes": link.payload_changes,
            "damaged_attempts": link.crc_errors + link.framing_errors + link.naks,
            "lost_attempts": link.timeouts,
            "exchanges": link.exchanges,
        }
    return {
        "program_s": round(program_s, 6),
        "payload_mb_s": round(payload / program_s / 1e6, 2),
        "raw_pty_mb_s": round(raw_pty_mb_s(), 2),
        "wire_efficiency": round(min(efficiencies), 5),
        "mvm_p50_us": round(1e6 * float(np.percentile(round_trips, 50)), 1),
        "mvm_p99_us": round(1e6 * float(np.percentile(round_trips, 99)), 1),
        "max_payload": board.max_payload,
        "tile": [info.rows, info.cols],
        "programs": programs,
        "mvms": mvms,
        "frames_sent": link.frames_sent,
        "preset": preset_name,
        **noisy,
    }


def serial_command(
    as_json: AsJson = False,
    preset_name: Preset = "ideal",
    programs: Annotated[int, typer.Option(min=1, help="Full-tile Programs timed.")] = 5,
    mvms: Annotated[int, typer.Option(min=10, help="Single-vector MVMs timed.")] = 2000,
    faults: Annotated[
        str,
        typer.Option(
            metavar="SPEC",
            help="Damage the line as sidra board serve --faults does (e.g. 'ber=1e-5'), and "
            "time the same Programs on a clean line too: the slowdown, and the frames the "
            "link came down to.",
        ),
    ] = "",
) -> None:
    """Full-tile Program (time, payload MB/s, wire efficiency), raw pty MB/s, MVM p50/p99."""
    if faults:
        try:
            FaultConfig.parse(faults)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--faults") from None
    r = serial_benchmark(preset_name, programs, mvms, faults=faults)
    if as_json:
        typer.echo(json.dumps(r))
        return
    rows, cols = r["tile"]
    typer.echo(
        f"serial link over a pty, virtual board ({r['preset']}) in its own process\n"
        f"Program {rows}x{cols} float32 ({rows * cols * 4} B): {1e3 * r['program_s']:.2f} ms "
        f"median, {r['payload_mb_s']:.1f} MB/s payload, wire efficiency "
        f"{r['wire_efficiency']:.4f} (payload / bytes on the wire, both ways)\n"
        f"raw pty throughput: {r['raw_pty_mb_s']:.1f} MB/s\n"
        f"MVM 1x{rows} round trip: p50 {r['mvm_p50_us']:.0f} us, p99 {r['mvm_p99_us']:.0f} us"
    )
    if faults:
        typer.echo(
            f"line damaged by {faults}: Program {r['program_slowdown']:.2f} x its time on a "
            f"clean line ({1e3 * r['clean_program_s']:.2f} ms); frames came down to "
            f"{r['payload_limit']:,} B ({r['payload_changes']} moves), {r['damaged_attempts']:,} "
            f"attempts damaged and {r['lost_attempts']:,} lost in {r['exchanges']:,} exchanges"
        )
