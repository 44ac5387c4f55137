"""Memory given back after a large request (sidra.server.memory), and only then.

How much comes back is measured by scripts/soak_memory.py, not here: these tests
check that the service asks for it after each request of LARGE_REQUEST_BYTES or
more, once the call has ended, and never after a small one.
"""

from __future__ import annotations

import platform
import threading

import grpc
import numpy as np
import pytest

from sidra.drivers import open_board
from sidra.hil.v1 import board_pb2 as pb
from sidra.server import servicer
from sidra.server.app import create_server
from sidra.server.memory import LARGE_REQUEST_BYTES, give_back_memory, trim_available

IDEAL_URL = "emu://?preset=ideal&seed=1"


def test_giving_memory_back_runs_on_this_c_library() -> None:
    give_back_memory()  # glibc's malloc_trim, or nothing elsewhere: never an error
    assert trim_available() == (platform.libc_ver()[0] == "glibc")


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
