"""``sidra leases URL``: the leases of a served board, as a table or JSON."""

from __future__ import annotations

import json

import pytest
from cli_support import run_sidra, served, sidra_json


def test_sidra_leases_lists_who_holds_what() -> None:
    with served("emu://?preset=ideal&seed=3") as board:
        url = f"grpc://{board.address}"
        assert sidra_json("leases", url) == []
        with board.session(label="drift study", ttl_s=60) as session, session.lease([1, 2]):
            listed = sidra_json("leases", url)
            assert [(x["tile"], x["principal"], x["label"]) for x in listed] == [
                (1, "local", "drift study"),
                (2, "local", "drift study"),
            ]
            assert all(0 < x["expires_in_s"] <= 60 for x in listed)
            table = run_sidra("leases", url, columns=80).stdout
            # A line per session with its tiles, its id whole for --close, on 80 columns.
            [line] = [line for line in table.splitlines() if "drift study" in line]
            assert line.split()[:2] == ["1,", "2"] and "local" in line
            assert session.id in line.split() and max(map(len, table.splitlines())) <= 80
            assert {x["session_id"] for x in listed} == {session.id}  # "local" is admin
            by_address = sidra_json("leases", board.address)  # HOST:PORT, as --server takes it
            assert [(x["tile"], x["session_id"]) for x in by_address] == [
                (x["tile"], x["session_id"]) for x in listed
            ]
            # Too short a start is no id: refused saying how long a start must be (it
            # went to the server, whose refusal told the admin they needed the admin role).
            short = run_sidra("leases", url, "--close", session.id[:3])
            said = " ".join(short.stderr.replace("│", " ").split())
            assert short.returncode == 2 and "first 4 characters or more" in said, said
            assert "admin role" not in said and len(sidra_json("leases", url)) == 2
            unknown = run_sidra("leases", url, "--close", "f" * 32)  # "local" is an admin
            said = " ".join(unknown.stderr.replace("│", " ").split())
            assert unknown.returncode == 1 and "admin role" not in said, said
            # The start of one listed id closes that session, named whole.
            closed = run_sidra("leases", url, "--close", session.id[:6], "--json")
            assert closed.returncode == 0, closed.stderr
            assert json.loads(closed.stdout) == []
            assert f"closed session {session.id}" in closed.stderr
        with board.session(label="ageing") as whole, whole.lease(whole_board=True):
            table = run_sidra("leases", url, columns=80).stdout
            [line] = [line for line in table.splitlines() if "ageing" in line]
            assert line.split()[:2] == ["all", "local"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("emu://", "emu:// is a board, not a server: give the address sidra serve"),
        # Refused before it is opened: it used to say HELLO to a port no board was on
        # (2 s) and report the link down.
        ("socket://127.0.0.1:1", "socket://127.0.0.1:1 is a board, not a server"),
        ("http://127.0.0.1:1", "http://127.0.0.1:1 is no server address: give HOST:PORT"),
    ],
)
def test_sidra_leases_of_a_board_is_refused_clearly(url: str, says: str) -> None:
    result = run_sidra("leases", url)
    assert result.returncode == 2
    said = " ".join(result.stderr.replace("│", " ").split())  # rich wraps it in a box
    assert says in said


def test_a_training_run_refused_by_a_lease_says_so_and_exits_1() -> None:
    """A lease someone else holds is no usage error: the command line was right, the
    board was taken. The run names LeaseHeld and its holder, and exits 1 (not 2)."""
    with served("emu://?preset=ideal&seed=3") as board:
        url = f"grpc://{board.address}"
        with (
            board.session(label="overnight run", ttl_s=60) as session,
            session.lease(whole_board=True),
        ):
            result = run_sidra("train", "spsa", "--board", url, "--steps", "2", timeout=120)
    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert "sidra train: LeaseHeld:" in said and "overnight run" in said
    assert "Invalid value" not in said and "Traceback" not in said


def test_a_remote_job_refused_by_a_lease_says_so_and_exits_1() -> None:
    """As the run from here above: not a usage error ("Invalid value", exit 2)."""
    with (
        served("emu://?preset=ideal&seed=3") as board,
        board.session(label="overnight run", ttl_s=60) as session,
        session.lease(whole_board=True),
    ):
        result = run_sidra(
            "train", "spsa", "--server", board.address, "--remote-job", "--steps", "2",
            timeout=120,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    said = " ".join(result.stderr.split())
    assert "sidra train spsa: LeaseHeld:" in said and "overnight run" in said
    assert "Invalid value" not in said and "Traceback" not in said
