"""Hostile requests over every SessionService RPC: each refused with the code its defect
calls for (or served, when it is a legal request of the attacker's own), never a fault,
and none takes or ends another principal's lease.

Alice holds tile 0 in a session; mallory, another principal with the same role, sends
hypothesis-drawn requests as raw bytes: garbage, unknown fields, NaN/Inf/negative/huge
time to live and waits, labels too long or unprintable, tile lists out of range or
repeated, her own session id, alice's, and ids that never were. Derandomized.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidra.client import RemoteBoard, connect
from sidra.hil.v1 import session_pb2 as pb
from sidra.server.security import Role, add_principal
from sidra.server.sessions import SESSION_SERVICE_NAME
from tests.server.security_support import served

RPCS = [m.name for m in pb.DESCRIPTOR.services_by_name["SessionService"].methods]
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
SHARED_MEMORY_REFUSALS = {
    rpc: {grpc.StatusCode.PERMISSION_DENIED}
    for rpc in ("RegisterSharedMemory", "UnregisterSharedMemory")
}
"""This server does not enable shared memory: a well-formed registration in an open
session is refused as not offered."""
EXAMPLES = 60
BATCH = 25
"""Requests per example: 1,500 in all."""

floats = st.one_of(
    st.sampled_from([0.0, -1.0, 0.5, 1.0, 59.9, 60.0, 61.0, 3600.0, 1e300, -0.0]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(allow_nan=True, allow_infinity=True),
)
labels = st.one_of(st.text(max_size=120), st.sampled_from(["", "x" * 101, "tab\t", "bell\x07"]))
tiles = st.lists(st.one_of(st.integers(0, 5), st.sampled_from([2**32 - 1, 255])), max_size=6)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, str, str]]:
    tokens_file: Path = tmp_path_factory.mktemp("hostile-sessions") / "tokens.toml"
    alice = add_principal(tokens_file, "alice", Role.PROGRAMMER)
    mallory = add_principal(tokens_file, "mallory", Role.PROGRAMMER)
    with served(tokens_file=tokens_file) as port:
        yield port, alice, mallory, str(tokens_file)


def _request(rpc: str, draw: st.DrawFn, ids: list[str]) -> bytes:
    if draw(st.integers(0, 9)) == 0:  # garbage, or a valid message with stray bytes
        return draw(st.binary(max_size=64))
    session_id = draw(st.one_of(st.sampled_from(ids), st.text(max_size=40)))
    message = {
        "OpenSession": lambda: pb.OpenSessionRequest(ttl_s=draw(floats), label=draw(labels)),
        "Heartbeat": lambda: pb.HeartbeatRequest(session_id=session_id),
        "CloseSession": lambda: pb.CloseSessionRequest(session_id=session_id),
        "AcquireLease": lambda: pb.AcquireLeaseRequest(
            session_id=session_id,
            tiles=draw(tiles),
            whole_board=draw(st.booleans()),
            wait_s=draw(st.one_of(st.just(0.0), floats.filter(lambda x: not 0 < x <= 60))),
        ),
        "ReleaseLease": lambda: pb.ReleaseLeaseRequest(
            session_id=session_id, tiles=draw(tiles), all=draw(st.booleans())
        ),
        "ListLeases": lambda: pb.ListLeasesRequest(),
        "GetCaller": lambda: pb.GetCallerRequest(),
        "RegisterSharedMemory": lambda: pb.RegisterSharedMemoryRequest(
            session_id=session_id,
            name=draw(labels),
            key=draw(st.one_of(labels, st.sampled_from(["../etc/passwd", "/x", "a/b"]))),
            size_bytes=draw(st.sampled_from([0, 1, 4096, 2**64 - 1])),
        ),
        "UnregisterSharedMemory": lambda: pb.UnregisterSharedMemoryRequest(
            session_id=session_id, name=draw(labels)
        ),
    }[rpc]()
    return bytes(message.SerializeToString())


@st.composite
def batches(draw: st.DrawFn, ids: list[str]) -> list[tuple[str, bytes]]:
    return [
        (rpc, _request(rpc, draw, ids))
        for rpc in draw(st.lists(st.sampled_from(RPCS), min_size=BATCH, max_size=BATCH))
    ]


def test_hostile_session_requests_are_refused_and_take_no_lease(
    rig: tuple[int, str, str, str],
) -> None:
    port, alice_token, mallory_token, _ = rig
    with (
        connect(f"127.0.0.1:{port}", token=alice_token) as alice,
        connect(f"127.0.0.1:{port}", token=mallory_token) as mallory,
        alice.session(label="alice's run") as alice_session,
        alice_session.lease([0]),
        mallory.session(label="mallory") as mallory_session,
    ):
        g = np.full((alice.info.rows, alice.info.cols), alice.info.g_max_us, np.float32)
        alice.program(0, g)
        ids = [alice_session.id, mallory_session.id, "0" * 32, ""]
        channel = mallory.channel
        methods = {rpc: channel.unary_unary(f"/{SESSION_SERVICE_NAME}/{rpc}") for rpc in RPCS}
        codes: dict[str, int] = {}

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(batch=batches(ids))
        def send(batch: list[tuple[str, bytes]]) -> None:
            for rpc, data in batch:
                try:
                    methods[rpc](data, timeout=30)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                    allowed = REFUSALS | SHARED_MEMORY_REFUSALS.get(rpc, set())
                    assert code in allowed, (rpc, data, code, exc.details())
                codes[code.name] = codes.get(code.name, 0) + 1
                _still_alices(alice)

        send()
        assert sum(codes.values()) == EXAMPLES * BATCH
        assert {"OK", "INVALID_ARGUMENT", "OUT_OF_RANGE", "FAILED_PRECONDITION"} <= set(codes)
        np.testing.assert_array_equal(alice.read_conductance(0).conductances, g)
        assert alice_session.lost is None


def _still_alices(board: RemoteBoard) -> None:
    held = [lease for lease in board.leases() if lease.tile == 0]
    assert [(x.principal, x.label) for x in held] == [("alice", "alice's run")]
