"""SessionService.GetCaller and ``sidra whoami``: who a server takes a client for, its
token's dates, its connection and sessions, on real servers on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from security_support import served

from sidra.client import Unauthenticated, connect
from sidra.client.aio import connect as aio_connect
from sidra.drivers import open_board
from sidra.server import create_server
from sidra.server.security import Role, add_principal, read_tokens
from sidra.server.security.tokens import write_tokens
from sidra.server.settings import SharedMemorySettings
from tests.cli_support import SIDRA, run_sidra, unwrapped

IDEAL_URL = "emu://?preset=ideal"


def whoami(address: str, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    """``sidra whoami ADDRESS ARGS`` with ``token`` as SIDRA_TOKEN (none when empty)."""
    return run_sidra("whoami", address, *args, env={"SIDRA_TOKEN": token or None})


def test_a_token_names_its_principal_role_dates_and_sessions(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    made = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    expiring = add_principal(
        tokens_file, "alice", Role.OPERATOR, valid_for=timedelta(days=400), now=made
    )
    viewer = add_principal(tokens_file, "vera", Role.VIEWER)
    with served(tokens_file=tokens_file) as port:
        with connect(f"127.0.0.1:{port}", token=expiring) as board:
            caller = board.caller()
            assert (caller.principal, caller.role, caller.authenticated) == (
                "alice", "operator", True,
            )  # fmt: skip
            assert caller.token_created_unix_s == made.timestamp()
            assert caller.token_expires_unix_s == (made + timedelta(days=400)).timestamp()
            assert caller.peer.startswith("ipv4:127.0.0.1:")
            assert not caller.shared_memory_offered  # the server offers none by default
            assert (caller.open_sessions, caller.max_sessions) == (0, 8)
            with (
                board.session(label="count me"),
                connect(f"127.0.0.1:{port}", token=expiring) as other,
                other.session(),
            ):
                # Every client of the principal counts, this one's and the other's.
                assert board.caller().open_sessions == 2
            assert board.caller().open_sessions == 0

        with connect(f"127.0.0.1:{port}", token=viewer) as board:
            caller = board.caller()  # a viewer may ask: it reads nothing of the board
            assert (caller.principal, caller.role) == ("vera", "viewer")
            assert caller.token_expires_unix_s is None  # never

        async def asked() -> tuple[str, float | None]:
            async with await aio_connect(f"127.0.0.1:{port}", token=expiring) as board:
                got = await board.caller()
                return got.principal, got.token_expires_unix_s

        assert asyncio.run(asked()) == ("alice", (made + timedelta(days=400)).timestamp())


def test_a_file_without_dates_and_a_server_without_auth(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    token = add_principal(tokens_file, "old", Role.PROGRAMMER)
    entries = read_tokens(tokens_file)  # as a file written before the dates were kept
    entries["old"] = replace(entries["old"], created_utc=None)
    write_tokens(tokens_file, entries)
    with served(tokens_file=tokens_file) as port, connect(f"127.0.0.1:{port}", token=token) as b:
        caller = b.caller()
        assert (caller.principal, caller.token_created_unix_s) == ("old", None)
        assert caller.token_expires_unix_s is None
    with served() as port, connect(f"127.0.0.1:{port}") as b:
        caller = b.caller()
        assert (caller.principal, caller.role, caller.authenticated) == ("local", "admin", False)
        assert caller.token_created_unix_s is None and caller.token_expires_unix_s is None


def test_shared_memory_is_offered_to_a_caller_on_the_servers_host() -> None:
    with open_board(IDEAL_URL) as board:
        server, port = create_server(
            board, "127.0.0.1:0", shared_memory=SharedMemorySettings(enabled=True)
        )
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as client:
                assert client.caller().shared_memory_offered
        finally:
            server.stop(grace=None).wait()


def test_whoami_prints_the_caller_and_warns_of_a_token_about_to_expire(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    soon = add_principal(tokens_file, "carol", Role.PROGRAMMER, valid_for=timedelta(days=5))
    lasting = add_principal(tokens_file, "dan", Role.ADMIN, valid_for=timedelta(days=60))
    gone = add_principal(tokens_file, "erin", Role.VIEWER, valid_for=timedelta(days=1))
    entries = read_tokens(tokens_file)
    entries["erin"] = replace(entries["erin"], expires_utc=datetime(2026, 1, 2, tzinfo=UTC))
    write_tokens(tokens_file, entries)
    with served(tokens_file=tokens_file) as port:
        address = f"127.0.0.1:{port}"
        warned = whoami(address, token=soon)
        quiet = whoami(address, token=lasting)
        as_json = whoami(address, "--json", token=lasting)
        expired = whoami(address, token=gone)
        anonymous = whoami(address)
    assert warned.returncode == 0, warned.stderr
    first = warned.stdout.splitlines()[0]
    expires = read_tokens(tokens_file)["carol"].expires_utc
    assert expires is not None
    assert first == f"carol (programmer), token expires {expires:%Y-%m-%d %H:%M} UTC (in 5.0 days)"
    assert "sessions: 0 open of at most 8" in warned.stdout
    assert unwrapped("ask the server's admin for a new one (sidra token add carol --replace)") in (
        unwrapped(warned.stderr)
    )
    assert quiet.returncode == 0 and quiet.stderr == ""  # 60 days: nothing to warn of
    assert "dan (admin), token expires" in quiet.stdout
    report = json.loads(as_json.stdout)
    assert (report["principal"], report["role"]) == ("dan", "admin")
    assert abs(report["token_expires_unix_s"] - (time.time() + 60 * 86_400)) < 120
    assert expired.returncode == 1
    assert unwrapped(
        "the bearer token of principal 'erin' expired at 2026-01-02 00:00 UTC"
    ) in unwrapped(expired.stderr)
    assert anonymous.returncode == 1
    local = whoami("emu://?preset=ideal")
    assert local.returncode == 2
    assert unwrapped("is a board, not a server") in unwrapped(local.stderr)
    assert unwrapped("GetCaller needs a bearer token") in unwrapped(anonymous.stderr)
    # Where a command line's token goes, said when none was set (not for a token refused).
    hint = unwrapped("(SIDRA_TOKEN is not set: export SIDRA_TOKEN=TOKEN, as sidra token add")
    assert hint in unwrapped(anonymous.stderr) and hint not in unwrapped(expired.stderr)


def test_an_expired_token_is_refused_by_get_caller_too(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    token = add_principal(tokens_file, "late", Role.VIEWER, valid_for=timedelta(days=1))
    entries = read_tokens(tokens_file)
    entries["late"] = replace(entries["late"], expires_utc=datetime(2026, 1, 2, tzinfo=UTC))
    write_tokens(tokens_file, entries)
    with (
        served(tokens_file=tokens_file) as port,
        connect(f"127.0.0.1:{port}", token=token, wait_ready_s=None) as board,
        pytest.raises(Unauthenticated, match="GetCaller: the bearer token of principal 'late'"),
    ):
        board.caller()


def test_a_run_over_a_server_says_first_that_its_token_expires_soon(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    soon = add_principal(tokens_file, "carol", Role.PROGRAMMER, valid_for=timedelta(days=2))
    env = {k: v for k, v in os.environ.items() if k != "SIDRA_TOKEN"}
    with served(tokens_file=tokens_file) as port:
        done = subprocess.run(
            [*SIDRA, "train", "spsa", "--server", f"127.0.0.1:{port}", "--steps", "3",
             "--out", str(tmp_path / "run"), "--json"],
            capture_output=True, text=True, timeout=120, check=False,
            env={**env, "SIDRA_TOKEN": soon},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == 3
    assert unwrapped(
        "sidra train: the token of 'carol' expires in 2.0 days: ask the server's admin for a "
        "new one (sidra token add carol --replace) before it does"
    ) in unwrapped(done.stderr)
