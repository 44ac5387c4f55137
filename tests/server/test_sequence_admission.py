"""RunSequence through a real server: every step's role and lease are checked before the
first step runs, and the service counts and records each step as its own call."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from sidra.client import connect
from sidra.drivers.errors import LeaseHeld, PermissionDenied
from sidra.drivers.requests import MVMRequest, ProgramRequest, ReadConductanceRequest
from sidra.drivers.types import Region
from sidra.server.security import Role
from tests.server.security_support import served, tokens_for_every_role

REGION = Region(0, 0, 4, 4)


def _g(value: float = 20.0) -> np.ndarray:
    return np.full(REGION.shape, value, np.float32)


def test_a_step_above_the_callers_role_refuses_the_whole_sequence(tmp_path: Path) -> None:
    """An operator may read and pass (RunSequence is an operator's RPC) but not Program:
    PERMISSION_DENIED naming the step and the role, and the read before it did not run."""
    tokens = tokens_for_every_role(tmp_path / "tokens.toml")
    with served(tokens_file=tmp_path / "tokens.toml") as port:
        with connect(f"127.0.0.1:{port}", token=tokens[Role.OPERATOR]) as operator:
            before = operator.stats().mvm_passes
            steps = [ReadConductanceRequest(0, REGION), ProgramRequest(0, _g())]
            with pytest.raises(PermissionDenied) as caught:  # as every refusal by role
                operator.run_sequence(steps)
            assert caught.value.refusal == "insufficient_role"
            text = str(caught.value)
            assert text.startswith("PERMISSION_DENIED: steps[1] (program): Program needs role")
            assert "no step ran" in text
            assert operator.stats().mvm_passes == before  # the read did not run
            reads = operator.run_sequence([ReadConductanceRequest(0, REGION)] * 2)
            assert len(reads.results) == 2
        with connect(f"127.0.0.1:{port}", token=tokens[Role.PROGRAMMER]) as programmer:
            done = programmer.run_sequence(steps)
            np.testing.assert_array_equal(done.results[0].conductances.shape, REGION.shape)


def test_a_step_on_a_tile_leased_elsewhere_refuses_the_whole_sequence() -> None:
    """Bob's sequence programs tile 1 (free), then tile 0 (Alice's lease): LeaseHeld, and
    tile 1 keeps what it held: no step ran."""
    with served() as port, connect(f"127.0.0.1:{port}") as alice:
        bob = connect(f"127.0.0.1:{port}")
        alice.program(1, _g(10.0))
        with alice.session(label="held") as session, session.lease([0]):
            with pytest.raises(LeaseHeld, match="session 'held'"):
                bob.run_sequence([ProgramRequest(1, _g(30.0)), ProgramRequest(0, _g())])
            np.testing.assert_array_equal(bob.read_conductance(1, REGION).conductances, _g(10.0))
            v = np.full((1, 4), 0.1, np.float32)
            ran = bob.run_sequence([ProgramRequest(1, _g(30.0)), MVMRequest(1, v, REGION)])
            np.testing.assert_allclose(ran.results[1].currents, [[12.0] * 4], rtol=1e-6)
        bob.close()


def test_the_server_validates_each_step_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """RunSequence validates the whole sequence before the first step runs; the board then
    runs each step as validated (Board.run_step), without checking it again."""
    checks: list[str] = []
    for request_type in (ProgramRequest, MVMRequest):
        original = request_type.checked

        def counted(self: object, info: object, _original: object = original) -> object:
            if threading.current_thread() is not threading.main_thread():  # the server's
                checks.append(type(self).__name__)
            return _original(self, info)  # type: ignore[operator]

        monkeypatch.setattr(request_type, "checked", counted)
    with served() as port, connect(f"127.0.0.1:{port}") as board:
        v = np.full((1, 4), 0.1, np.float32)
        ran = board.run_sequence([ProgramRequest(1, _g(30.0)), MVMRequest(1, v, REGION)])
    np.testing.assert_allclose(ran.results[1].currents, [[12.0] * 4], rtol=1e-6)
    assert sorted(checks) == ["MVMRequest", "ProgramRequest"]
