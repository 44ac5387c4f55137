"""Memory given back after a large request (sidra.server.memory), and only then;
kept for the next call while calls come.

How much comes back is measured by scripts/soak_memory.py, not here: these tests
check that the service asks for it after each request of LARGE_REQUEST_BYTES or
more, once the call has ended, and never after a small one, and that a burst of
batch MVMs does not give its buffers back and fault them in again on every call.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
from cli_support import served_process

from sidra.drivers import open_board
from sidra.hil.v1 import board_pb2 as pb
from sidra.server import servicer
from sidra.server.app import create_server
from sidra.server.memory import (
    LARGE_REQUEST_BYTES,
    MALLOC_ARENAS,
    IdleTrim,
    give_back_memory,
    trim_available,
)

IDEAL_URL = "emu://?preset=ideal&seed=1"


def test_giving_memory_back_runs_on_this_c_library() -> None:
    give_back_memory()  # glibc's malloc_trim, or nothing elsewhere: never an error
    assert trim_available() == (platform.libc_ver()[0] == "glibc")


def test_the_mmap_threshold_can_be_fixed_on_this_c_library() -> None:
    # In a process of its own: the setting is the whole process's, and sidra serve's.
    code = "from sidra.server.memory import configure_malloc; print(configure_malloc())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(platform.libc_ver()[0] == "glibc")


ARENAS_AFTER_THREADS = """
import ctypes, sys, threading
from sidra.server.memory import configure_malloc
if sys.argv[1] == "configured":
    configure_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
threads = 8
held = threading.Barrier(threads + 1)
def allocate():  # a thread's first malloc takes an arena: a new one while glibc may
    block = libc.malloc(4096)
    held.wait()  # every thread holds its block while the heaps are counted
    held.wait()
    libc.free(block)
workers = [threading.Thread(target=allocate) for _ in range(threads)]
for worker in workers:
    worker.start()
held.wait()
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, out)  # XML, one <heap nr="..."> per arena
libc.fclose(out)
held.wait()
for worker in workers:
    worker.join()
"""


@pytest.mark.skipif(not trim_available(), reason="glibc's arenas")
@pytest.mark.parametrize(("setting", "most"), [("configured", MALLOC_ARENAS), ("default", None)])
def test_threads_share_the_configured_arenas(
    setting: str, most: int | None, tmp_path: Path
) -> None:
    """Eight threads allocating at once: ``sidra serve``'s setting keeps them in
    MALLOC_ARENAS heaps (malloc_info counts them); glibc's default gives each its own."""
    report = tmp_path / "malloc_info.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_ARENA")}
    command = [sys.executable, "-c", ARENAS_AFTER_THREADS, setting, str(report)]
    subprocess.run(command, check=True, env=env)
    heaps = report.read_text().count("<heap nr=")
    if most is None:
        assert heaps > MALLOC_ARENAS, "glibc's default should give the threads more arenas"
    else:
        assert 1 <= heaps <= most, heaps


def _minor_faults(pid: int) -> int:
    """Page faults served without I/O so far (/proc/PID/stat field 10), e.g. a freed
    page touched again after the heap gave it back."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


@pytest.mark.skipif(
    not trim_available() or not Path("/proc/self/stat").exists(), reason="glibc's heap, /proc"
)
def test_a_served_batch_reuses_the_buffers_the_last_one_freed() -> None:
    """While calls keep coming, ``sidra serve`` keeps a batch-1024 MVM's freed buffers
    for the next one: with glibc's 128 KiB trim threshold each call gave back and
    faulted in again some 4 MiB, about 1,000 pages, on every call."""
    v = np.full((1024, 256), 0.01, np.float32)
    faults = []
    with served_process(IDEAL_URL) as (board, proc):
        for _ in range(5):  # the first calls size the heaps
            board.mvm(0, v)
        for _ in range(15):
            before = _minor_faults(proc.pid)
            board.mvm(0, v)
            faults.append(_minor_faults(proc.pid) - before)
    # The median: a pause of IDLE_TRIM_S on a loaded machine lets the idle trim give
    # everything back, and the call after it faults its buffers in once.
    assert statistics.median(faults) < 64, faults


def test_memory_is_given_back_after_a_large_request_only(monkeypatch: pytest.MonkeyPatch) -> None:
    given = threading.Semaphore(0)
    monkeypatch.setattr(servicer, "give_back_memory", given.release)
    small = pb.MVMRequest(
        voltages=pb.Tensor(
            dtype=pb.DTYPE_FLOAT32, shape=[1, 256], data=np.zeros(256, np.float32).tobytes()
        )
    ).SerializeToString()
    large = b"\xff" * LARGE_REQUEST_BYTES  # refused as unparsable: its buffers count all the same
    with open_board(IDEAL_URL) as board:
        server, port = create_server(board, "127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                mvm = channel.unary_unary("/sidra.hil.v1.BoardService/MVM")
                for _ in range(5):
                    mvm(small, timeout=10)
                with pytest.raises(grpc.RpcError) as caught:
                    mvm(large, timeout=30)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert given.acquire(timeout=30), "memory not given back after a large request"
                mvm(small, timeout=10)
        finally:
            server.stop(grace=None).wait()
    assert not given.acquire(blocking=False), "memory given back after a small request"


def test_a_burst_of_mib_sized_requests_is_trimmed_once_it_is_over() -> None:
    """The idle trim waits for a pause after the last noted request, then trims once."""
    done = threading.Semaphore(0)
    trim = IdleTrim(idle_s=0.2, trim=done.release)
    for _ in range(20):
        trim.note()  # a burst: no trim while it lasts
    assert done.acquire(timeout=30), "no trim after the burst"
    assert trim.trims == 1
    assert not done.acquire(timeout=0.5)  # one trim per burst, none while idle
    trim.note()
    assert done.acquire(timeout=30)
    assert trim.trims == 2


def test_sigusr1_prints_every_thread_s_stack_and_the_server_serves_on() -> None:
    """For a server that seems stuck (docs/operations.md, Logs); the test helper sends it
    when a served process does not stop on SIGTERM, and shows the stacks."""
    import signal
    import time

    with served_process(IDEAL_URL) as (board, proc):
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            said = "".join(proc.stderr_tail)
            if "Thread 0x" in said and "in _serve" in said:
                break
            time.sleep(0.1)
        assert "Thread 0x" in said and "in _serve" in said, said[-2000:]
        answer = board.mvm(0, np.zeros((1, board.info.rows), np.float32))
        assert answer.currents.shape == (1, board.info.cols)
