"""Running the ``sidra`` command as a user does: a child process, its exit code and output."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from sidra.client import Region, RemoteBoard, connect
from tests.forked_commands import run_forked

SIDRA = [sys.executable, "-m", "sidra.cli"]


def run_sidra(
    *args: str,
    timeout: float = 120.0,
    columns: int | None = None,
    env: dict[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``sidra ARGS...`` to completion, on a terminal ``columns`` wide when given, with
    ``env`` added to the environment (a variable given None taken out of it); the caller
    checks the exit code. The process is forked from one that has imported what commands
    import (:mod:`tests.forked_commands`)."""
    changes = (env or {}) | ({} if columns is None else {"COLUMNS": str(columns)})
    whole = {k: v for k, v in (os.environ | changes).items() if v is not None}
    return run_forked(SIDRA, list(args), whole, timeout)


def unwrapped(text: str) -> str:
    """``text`` without whitespace and box lines: what a console prints, whatever its width
    (rich wraps at 80 columns off a terminal, mid-word in a long path, and a usage error
    comes in a box), so a test can look for a phrase in it."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in "│╭╮╰╯─")


def sidra_json(*args: str, timeout: float = 120.0) -> Any:
    """``sidra ARGS... --json``: must succeed; returns the JSON it printed."""
    result = run_sidra(*args, "--json", timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_model_runs_as_trained(
    run: Path, summary: dict[str, Any], readout: str, scores: str, tmp_path: Path
) -> npt.NDArray[Any]:
    """``run``'s model.npz, on another noiseless board, scores what the run measured
    (``summary``: its test accuracy); ``sidra model show`` names its ``readout`` (a phrase
    of the line "readout: ..."); ``sidra model predict`` on 7 digits test samples writes
    ``scores`` [7, 10] whose argmax are the classes it writes. Returns those scores."""
    from sidra.training import load_dataset  # the data set, as the run loaded it

    model = str(run / "model.npz")
    evaluated = run_sidra("model", "eval", model, "--board", "emu://?preset=ideal&seed=5",
                          "--json")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == summary["test_accuracy"]
    shown = " ".join(run_sidra("model", "show", model).stdout.split())
    assert f"readout: {readout}" in shown, shown
    np.save(tmp_path / "x.npy", load_dataset("digits").x_test[:7])
    predicted = run_sidra("model", "predict", model, "--inputs", str(tmp_path / "x.npy"),
                          "--standardized", "--out", str(tmp_path / "p.npz"))  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    with np.load(tmp_path / "p.npz") as out:
        assert set(out.files) == {"labels", "classes", scores}
        written: npt.NDArray[Any] = out[scores]
        assert written.shape == (7, 10)
        assert np.array_equal(out["classes"], written.argmax(axis=1))
    return written


def interrupted(
    *args: str,
    under_way: Callable[[subprocess.Popen[str]], None],
    timeout: float = 120.0,
    sent: signal.Signals = signal.SIGINT,
) -> tuple[int, str, str]:
    """``sidra ARGS`` given one Ctrl-C (SIGINT; or ``sent``) once ``under_way(process)``
    returns (it waits until the run is under way); its exit status, stdout and stderr."""
    proc = subprocess.Popen(
        [*SIDRA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        under_way(proc)
        proc.send_signal(sent)
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
        proc.communicate()
    return proc.returncode, stdout, stderr


def file_written(path: Path, timeout: float = 120.0) -> Callable[[subprocess.Popen[str]], None]:
    """For :func:`interrupted`: waits until ``path`` exists (the run has saved something)."""

    def wait(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert proc.poll() is None, f"sidra ended before {path} was written"
            assert time.monotonic() < deadline, f"{path} not written in {timeout:g} s"
            time.sleep(0.01)

    return wait


@contextmanager
def process(
    *args: str, first_line_from: str = "stdout"
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Runs ``sidra ARGS``; yields its first line on stdout/stderr and the process;
    SIGTERM must then stop it cleanly."""
    proc = subprocess.Popen(
        [*SIDRA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stream = proc.stdout if first_line_from == "stdout" else proc.stderr
        assert stream is not None
        yield stream.readline().strip(), proc
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)  # generous: CI machines can be loaded
        except subprocess.TimeoutExpired:
            raise AssertionError(_stuck(proc, args)) from None
        assert code == 0
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()


def _stuck(proc: subprocess.Popen[str], args: tuple[str, ...]) -> str:
    """What a process that did not stop on SIGTERM was doing: ``sidra serve`` prints every
    thread's stack on SIGUSR1, to the stderr its drain keeps the tail of."""
    proc.send_signal(signal.SIGUSR1)
    time.sleep(2.0)
    tail = "".join(getattr(proc, "stderr_tail", ()))
    return f"sidra {' '.join(args)} did not stop within 60 s of SIGTERM; its stderr ends:\n{tail}"


@contextmanager
def served(board_url: str) -> Iterator[RemoteBoard]:
    """``sidra serve --board URL`` on a free loopback port, and a client connected to it."""
    with served_process(board_url) as (board, _):
        yield board


@contextmanager
def served_process(board_url: str) -> Iterator[tuple[RemoteBoard, subprocess.Popen[str]]]:
    """:func:`served`, with the server's process (its pid, its stderr)."""
    with process("serve", "--board", board_url, "--listen", "127.0.0.1:0",
                 first_line_from="stderr") as (first, proc):  # fmt: skip
        assert proc.stderr is not None
        line = first if first.startswith("serving") else serving_line(proc.stderr)
        match = re.search(r"on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        # It logs a line for every call but the routine ones (a Program, a refusal, ...):
        # a pipe no one reads fills up (64 KiB, a few hundred lines) and stalls the
        # server in its next log line.
        tail: collections.deque[str] = collections.deque(maxlen=400)
        proc.stderr_tail = tail  # type: ignore[attr-defined]  # read by _stuck
        threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True).start()
        with connect(f"127.0.0.1:{match.group(1)}") as board:
            yield board, proc


def _drain(stream: IO[str], tail: collections.deque[str]) -> None:
    """Reads ``stream`` to its end (or until it is closed under the reader), keeping
    its last lines in ``tail``."""
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            tail.append(line)


def serving_line(stream: IO[str]) -> str:
    """Reads ``sidra serve``'s stderr up to its "serving ... on HOST:PORT" line and
    returns it (in JSON logs, the start object's message); warnings may come first (a
    state store that last saw another instance of the board says so before the server
    starts)."""
    seen = []
    for line in stream:
        seen.append(line)
        if line.startswith("{"):
            line = json.loads(line)["message"]
        if re.match(r"serving .* on \S+:\d+", line):
            return line.strip()
        if len(seen) > 50:
            break
    raise AssertionError("sidra serve printed no 'serving' line:\n" + "".join(seen))


def session(board: RemoteBoard, batch: int) -> list[Any]:
    """Every board operation once, through ``board``: what the CLI end-to-end tests
    compare between a transport and the in-process emulator (``batch``: vectors of
    the one batch MVM)."""
    rng = np.random.default_rng(8)
    g = rng.uniform(2.0, 38.0, (256, 256)).astype(np.float32)
    v = rng.uniform(-0.2, 0.2, (3, 256)).astype(np.float32)
    out: list[Any] = [board.info, board.program(0, g), board.program(2, g[:9, :7], row_offset=4)]
    out += [board.mvm(0, v).currents, board.transpose_mvm(0, v).currents]
    out.append(board.mvm(0, rng.uniform(-0.2, 0.2, (batch, 256)).astype(np.float32)).currents)
    out.append(board.perturb(0, seed=9, amplitude_us=0.5, sign=-1, region=Region(3, 4, 20, 30)))
    out += [board.read_conductance(0).conductances, board.restore(0), board.advance_clock(60.0)]
    out += [board.calibrate(0), board.read_write_counts(0).counts, board.stats()]
    return out


@contextmanager
def board_console(*args: str, stops_itself: bool = False) -> Iterator[tuple[str, list[str]]]:
    """``sidra board serve ARGS``: its URL (its first stdout line) and its console's
    lines, read as they come (a busy console never fills its pipe) and complete once the
    block has left and the board has stopped: on SIGTERM, or by itself when the block
    made it stop (``stops_itself``: a removal fault; a SIGTERM then could meet a process
    already past its handler)."""
    proc = subprocess.Popen(
        [*SIDRA, "board", "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        yield proc.stdout.readline().strip(), lines
        if not stops_itself:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        reader.join(timeout=10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def fault_lines(lines: list[str]) -> list[str]:
    """The lines of a virtual board's console that say a fault fired."""
    return [line.rstrip("\n") for line in lines if " sidra.emulator.faults: " in line]
