"""Sessions and leases through a real server on loopback (session.proto).

The board is the ideal emulator, so "restored" is checked bit for bit: the
conductances read back equal the programmed targets exactly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import FailedPrecondition
from sidra.drivers.errors import LeaseHeld, SessionClosed
from sidra.server.security import Role
from tests.server.security_support import served, tokens_for_every_role


@pytest.fixture
def port() -> Iterator[int]:
    with served() as port:
        yield port


def _board(port: int, token: str | None = None) -> RemoteBoard:
    return connect(f"127.0.0.1:{port}", token=token or "")


def _targets(board: RemoteBoard, seed: int) -> np.ndarray:
    info = board.info
    rng = np.random.default_rng(seed)
    return rng.uniform(info.g_min_us, info.g_max_us, (info.rows, info.cols)).astype(np.float32)


def _wait_until_free(board: RemoteBoard, timeout_s: float = 15.0) -> None:
    """Polls ListLeases until no tile is leased (a session expiring on the server)."""
    end = time.monotonic() + timeout_s
    while board.leases():
        assert time.monotonic() < end, "the lease never expired"
        time.sleep(0.05)


def test_a_leased_tile_refuses_another_clients_writes(port: int) -> None:
    with _board(port) as alice, _board(port) as bob:
        g = _targets(alice, 1)
        with alice.session(label="spsa run") as session, session.lease([0]):
            alice.program(0, g)
            for write in (
                lambda: bob.program(0, g),
                lambda: bob.perturb(0, seed=3, amplitude_us=1.0),
                lambda: bob.calibrate(0),
            ):
                with pytest.raises(LeaseHeld, match="leased to local's session 'spsa run'"):
                    write()
            bob.program(1, g)  # another tile is free
            np.testing.assert_array_equal(bob.read_conductance(0).conductances, g)  # shared reads
            assert [(x.tile, x.label) for x in bob.leases()] == [(0, "spsa run")]
        assert bob.leases() == []
        bob.program(0, g)  # released with the session


def test_a_lease_left_to_expire_restores_its_perturbed_tile(port: int) -> None:
    with _board(port) as alice, _board(port) as bob:
        g = _targets(alice, 2)
        session = alice.session(ttl_s=1.0, heartbeat=False)  # a client that stalls
        session.lease([0])
        alice.program(0, g)
        alice.perturb(0, seed=7, amplitude_us=2.0)
        # Read in the session (a call renews it), so the lease cannot end before.
        assert not np.array_equal(alice.read_conductance(0).conductances, g)
        _wait_until_free(bob)
        np.testing.assert_array_equal(bob.read_conductance(0).conductances, g)
        bob.program(0, g)
        with pytest.raises(SessionClosed, match="not an open session"):
            alice.mvm(0, np.zeros((1, alice.info.rows), np.float32))
        session.close()  # already ended on the server: not an error
        alice.mvm(0, np.zeros((1, alice.info.rows), np.float32))  # no session now


def test_releasing_a_lease_restores_only_what_was_left_perturbed(port: int) -> None:
    with _board(port) as alice:
        g = _targets(alice, 3)
        with alice.session() as session:
            with session.lease([0, 1]) as lease:
                alice.program(0, g)
                alice.program(1, g)
                alice.perturb(1, seed=5, amplitude_us=1.5)
            assert lease.restored == (1,)
            np.testing.assert_array_equal(alice.read_conductance(1).conductances, g)
            with session.lease([2]):
                alice.perturb(2, seed=5, amplitude_us=1.5)
                alice.restore(2)
            assert session.state.tiles == ()


def test_a_heartbeating_session_outlives_its_ttl(port: int) -> None:
    with (
        _board(port) as alice,
        _board(port) as bob,
        alice.session(ttl_s=2.0) as session,
        session.lease([3]),
    ):
        time.sleep(5.0)  # 2.5 times the time to live; heartbeats every 0.67 s
        assert [x.tile for x in bob.leases()] == [3]
        assert session.lost is None


def test_leases_name_principals_and_guard_board_wide_calls(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    tokens = tokens_for_every_role(tokens_file)
    with (
        served(tokens_file=tokens_file) as port,
        _board(port, tokens[Role.PROGRAMMER]) as programmer,
        _board(port, tokens[Role.ADMIN]) as admin,
    ):
        with pytest.raises(FailedPrecondition, match="whole board .* or the admin role"):
            programmer.advance_clock(1.0)
        admin.advance_clock(1.0)  # nobody holds a lease
        with programmer.session(label="drift study") as session:
            with session.lease([2]):
                with pytest.raises(LeaseHeld, match="programmer's session 'drift study'"):
                    admin.advance_clock(1.0)
                with pytest.raises(LeaseHeld):
                    admin.perturb(2, seed=1, amplitude_us=1.0)
            with session.lease(whole_board=True):
                programmer.advance_clock(1.0)


def test_an_admin_may_close_anyones_session(tmp_path: Path) -> None:
    """The leases list a session's id to its principal and to admins, no one else; an
    admin closes it with that id, and another principal cannot."""
    tokens_file = tmp_path / "tokens.toml"
    tokens = tokens_for_every_role(tokens_file)
    with (
        served(tokens_file=tokens_file) as port,
        _board(port, tokens[Role.PROGRAMMER]) as programmer,
        _board(port, tokens[Role.OPERATOR]) as operator,
        _board(port, tokens[Role.ADMIN]) as admin,
    ):
        session = programmer.session(heartbeat=False)
        session.lease([0])
        assert [x.session_id for x in programmer.leases()] == [session.id]
        assert [x.session_id for x in operator.leases()] == [""]
        (listed,) = admin.leases()
        assert listed.session_id == session.id
        with pytest.raises(SessionClosed, match="another principal's session needs the admin"):
            operator.close_session(session.id)  # not the operator's session
        assert admin.close_session(listed.session_id) == ()
        assert admin.leases() == []
        with pytest.raises(SessionClosed, match=r"of 'programmer' was closed by admin 'admin'"):
            programmer.program(0, _targets(programmer, 4))  # who ended it, not "expired"
