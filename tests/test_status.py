"""``sidra status SERVER`` as a user runs it, against a real server on loopback with a real
state store: the board, its totals, a lease, a running and a queued job, deployments
with and without a check; a part refused names why; a board not serving exits 1."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from grpc_health.v1 import health, health_pb2

from sidra.client import connect
from sidra.drivers import BoardUnavailable, Region
from sidra.drivers.requests import ProgramRequest
from sidra.drivers.serial.retransmit import FLOOR_S
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig
from sidra.server.security import Role, TokensFile, add_principal
from tests.cli_support import SIDRA, run_sidra, unwrapped
from tests.jobs.jobs_support import first_progress, serving
from tests.server.security_support import principals
from tests.server.test_deployments import model_file

ENDLESS = {"steps": 1_000_000, "eval_every": 1_000_000, "batch_size": 16, "tiles": [0]}
"""A job that runs until cancelled, on tile 0 (a second one queues for it)."""
LAYER = Region(0, 0, 8, 4)


def sidra_status(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    """``sidra status ARGS`` with ``token`` as SIDRA_TOKEN (none when empty)."""
    return run_sidra("status", *args, env={"SIDRA_TOKEN": token or None})


def test_status_shows_the_board_leases_jobs_and_deployments(tmp_path: Path) -> None:
    with serving(tmp_path / "state.sqlite3") as address, connect(address) as client:
        client.run(ProgramRequest(2, np.random.default_rng(0).uniform(5, 35, (8, 4))))
        client.deployments.add("checked", model_file(), [(2, LAYER)])
        client.deployments.check("checked")
        client.run(ProgramRequest(3, np.full((8, 4), 20.0)))
        client.deployments.add("unchecked", model_file(), [(3, LAYER)], protect=True)
        running = client.jobs.submit("spsa", ENDLESS, dataset="iris")
        first_progress(client, running.job_id)
        queued = client.jobs.submit("spsa", ENDLESS, dataset="iris", queue=True, priority=-2)
        with connect(address) as bench, bench.session(label="bench") as session:
            session.lease([1])
            done = sidra_status(address)
            report = json.loads(sidra_status(address, "--json").stdout)
        client.jobs.cancel(queued.job_id)
        client.jobs.cancel(running.job_id)
        client.jobs.wait(running.job_id)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line[:1] != " "}
    assert lines["server"].endswith(": SERVING")
    assert lines["you"].endswith("local (admin): the server checks no tokens")
    assert "SIDRA-IDEAL" in lines["board"] and "4 tiles x 256 x 256, 1-40 µS" in lines["board"]
    assert re.search(r"[\d,]+ MVM passes, [\d,]+ cell writes", lines["totals"]), lines["totals"]
    text = done.stdout
    assert "tile 1: local (bench)" in text and "tiles 2, 3 free" in text
    assert f"running {running.job_id[:8]} spsa on iris by local" in text
    assert f"queued  {queued.job_id[:8]} spsa on iris by local, priority -2" in text
    assert "checked by local on tile 2: intact; correlation 1.00" in text
    assert "unchecked by local on tile 3: intact, protected; never checked" in text

    assert report["health"] == "SERVING" and report["board"]["info"]["tile_count"] == 4
    assert report["board"]["stats"]["cell_writes"] >= 64  # the deployments', the job's
    assert [j["job_id"] for j in report["jobs"]["running"]] == [running.job_id]
    assert [j["job_id"] for j in report["jobs"]["queued"]] == [queued.job_id]
    leased = {lease["tile"]: lease["label"] for lease in report["leases"]["leases"]}
    assert leased[1] == "bench"
    by_name = {d["name"]: d for d in report["deployments"]["deployments"]}
    assert by_name["checked"]["held"] is True and by_name["unchecked"]["held"] is None


def test_a_serial_board_s_link_shows_what_the_line_damaged_and_its_frames(
    tmp_path: Path,
) -> None:
    """Behind a line that flips one bit in 10⁵ a whole tile programmed through the server
    lands, and status says what the line damaged and the frames the link came down to;
    an in-process board has no link line."""
    g = np.random.default_rng(0).uniform(2.0, 38.0, (256, 256))
    noisy = FaultConfig(ber=1e-5, seed=1)
    with (
        serve_virtual_board(preset("ideal"), 1, faults=noisy) as board_server,
        serving(tmp_path / "state.sqlite3", board_server.url) as address,
        connect(address) as client,
    ):
        client.run(ProgramRequest(0, g))
        done = sidra_status(address)
        report = json.loads(sidra_status(address, "--json").stdout)
    assert done.returncode == 0, done.stderr
    link = report["board"]["link"]
    assert link["up"] and 256 <= link["payload_limit"] <= 2048 and link["payload_changes"] >= 1
    damaged = link["crc_errors"] + link["framing_errors"] + link["naks"]
    assert damaged > 0
    line = next(line for line in done.stdout.splitlines() if line.startswith("link"))
    # Each status asks the board (GET_STATS): the counts move from one to the next.
    assert re.search(
        r"link +up; [\d,]+ exchanges, [1-9][\d,]* attempts damaged, \d+ lost "
        r"\(resent after [1-9][\d,]* ms\); ",
        line,
    )
    # Learnt from the answers (§4.5): below the URL's 0.25 s, at least the floor.
    assert FLOOR_S <= link["timeout_base_s"] < 0.25
    assert f"frames up to {link['payload_limit']:,} B (moved " in line
    with serving(tmp_path / "other.sqlite3") as address:
        local = sidra_status(address)
    assert not any(line.startswith("link") for line in local.stdout.splitlines())


def test_a_board_whose_link_is_down_shows_since_when_why_and_what_the_server_retries(
    tmp_path: Path,
) -> None:
    """A served serial board unplugged: the board is out of reach, so its totals are not
    shown, but the link is, as the server's log says it: DOWN since when, why, and what
    the server retries (a lab engineer looking at a server whose board is gone)."""
    with (
        serve_virtual_board(preset("ideal"), 1, faults=FaultConfig()) as board_server,
        serving(tmp_path / "state.sqlite3", f"{board_server.url}?timeout=0.05&retries=2")
        as address,
        connect(address) as client,
    ):  # fmt: skip
        assert board_server.shim is not None
        client.stats()
        unplugged_unix_s = time.time()
        board_server.shim.unplug(float("inf"))
        with pytest.raises(BoardUnavailable):
            client.stats()
        asked_unix_s = time.time()
        done = sidra_status(address)
        report = json.loads(sidra_status(address, "--json").stdout)
    device = board_server.url.removeprefix("serial://")
    assert done.returncode == 1 and "the board is NOT_SERVING" in done.stderr
    down = report["board"]["link_down"]
    assert report["board"]["error"].startswith("BoardUnavailable: UNAVAILABLE")
    assert unplugged_unix_s <= down["since_unix_s"] <= asked_unix_s
    assert "no valid response" in down["reason"]
    assert down["recovery"] == f"retrying {device} every 0.5 s"
    assert not down["link"]["up"] and down["link"]["timeouts"] > 0
    lines = done.stdout.splitlines()
    at = next(k for k, line in enumerate(lines) if line.startswith("link"))
    assert re.fullmatch(r"link +DOWN since \S+ \S+ \(\d+ s ago\): GET_STATS to .*"
                        r"no valid response .*", lines[at]), lines[at]  # fmt: skip
    assert lines[at + 1].split() == f"the server is retrying {device} every 0.5 s".split()
    assert re.search(r"^ +[\d,]+ exchanges, \d+ attempts damaged, [1-9][\d,]* lost ",
                     lines[at + 2]), lines[at + 2]  # fmt: skip


def test_a_part_the_server_refuses_says_why_and_the_rest_is_shown(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, eve=Role.VIEWER)
    soon = add_principal(tokens_file, "bob", Role.OPERATOR, valid_for=timedelta(days=3))
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        shown = sidra_status(address, token=tokens["eve"])
        expiring = sidra_status(address, token=soon)
        anonymous = sidra_status(address, "--json")
        told = sidra_status(address)
        unknown = sidra_status(address, token="not-a-token")
    assert shown.returncode == 0, shown.stderr
    assert "jobs         none running or queued" in shown.stdout
    assert "you          eve (viewer), token does not expire" in shown.stdout
    # A token about to expire: when, and what to do, before a call is refused for it.
    assert re.search(r"you +bob \(operator\), token expires \S+ \S+ UTC \(in [23]\.\d days\)",
                     expiring.stdout), expiring.stdout  # fmt: skip
    assert "ask the server's admin for a new one (sidra token add bob --replace)" in (
        expiring.stdout
    )
    assert anonymous.returncode == 1  # the board is not described to a caller without a token
    report = json.loads(anonymous.stdout)
    assert report["health"] == "SERVING"  # health is open
    for part in ("caller", "board", "leases", "jobs", "deployments"):
        assert report[part]["error"].startswith("Unauthenticated"), report[part]
    assert "Unauthenticated" in anonymous.stderr
    # Told once, with where a command takes its token from; the other parts refer to it.
    lines = told.stdout.splitlines()
    hint = "(SIDRA_TOKEN is not set: export SIDRA_TOKEN=TOKEN, as sidra token add printed it)"
    assert lines[1].startswith("you          not shown: Unauthenticated: ") and hint in lines[1]
    assert lines[2:] == [f"{part:<11}  not shown: refused as above"
                         for part in ("board", "leases", "jobs", "deployments")]  # fmt: skip
    assert told.returncode == 1 and hint in told.stderr
    # A token that is set but refused: no hint about setting one.
    assert "unknown bearer token" in unknown.stdout and "SIDRA_TOKEN" not in unknown.stdout


def test_a_board_not_serving_exits_1_and_an_address_that_is_a_board_is_refused(
    tmp_path: Path,
) -> None:
    watched = health.HealthServicer()
    with serving(tmp_path / "s.sqlite3", health_servicer=watched) as address:
        watched.set("sidra.hil.v1.BoardService", health_pb2.HealthCheckResponse.NOT_SERVING)
        down = sidra_status(address)
    assert down.returncode == 1
    assert f"{address}: NOT_SERVING" in down.stdout
    assert "the board is NOT_SERVING" in down.stderr
    nobody = sidra_status("127.0.0.1:1")
    assert nobody.returncode == 1 and "no SIDRA server answered" in nobody.stdout
    assert nobody.stderr.strip() == "sidra status 127.0.0.1:1: not reached (above)"
    local = sidra_status("emu://?preset=ideal")
    assert local.returncode == 2 and "is a board, not a server" in " ".join(local.stderr.split())


def test_several_servers_a_block_each_and_one_unreachable_exits_1(tmp_path: Path) -> None:
    with (
        serving(tmp_path / "a.sqlite3", "emu://?preset=ideal&seed=1") as first,
        serving(tmp_path / "b.sqlite3", "emu://?preset=sidra-y1&seed=2") as second,
    ):
        both = sidra_status(first, second)
        lines = sidra_status(first, "127.0.0.1:1", second, "--json")
    assert both.returncode == 0, both.stderr
    blocks = both.stdout.split("\n\n")
    assert [block.splitlines()[0] for block in blocks] == [
        f"server       {first}: SERVING",
        f"server       {second}: SERVING",
    ]
    assert "EMU-IDEAL-1" in blocks[0] and "Y1" in blocks[1].upper()
    assert lines.returncode == 1
    reports = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [r["server"] for r in reports] == [first, "127.0.0.1:1", second]
    assert reports[1]["error"].startswith("BoardUnavailable: no SIDRA server answered")
    assert reports[2]["health"] == "SERVING"
    assert lines.stderr.strip().startswith("sidra status 127.0.0.1:1: BoardUnavailable")


def test_the_commands_that_only_talk_to_a_server_take_it_from_sidra_server(
    tmp_path: Path,
) -> None:
    """`export SIDRA_SERVER=lab-pc:50051` once; a server named on the line still wins,
    and a training run keeps its own board (emu:// unless named)."""
    from tests.cli_support import run_sidra

    with serving(tmp_path / "state.sqlite3") as address:
        env = {"SIDRA_SERVER": address}
        for words in (["status"], ["whoami"], ["leases"], ["jobs", "list"],
                      ["model", "list"]):  # fmt: skip
            done = run_sidra(*words, "--json", env=env)
            assert done.returncode == 0, (words, done.stderr)
        [shown] = [json.loads(line) for line in run_sidra("status", "--json", env=env).stdout
                   .splitlines()]  # fmt: skip
        assert shown["server"] == address
        elsewhere = run_sidra("whoami", "127.0.0.1:1", env=env)  # named: it wins
        assert elsewhere.returncode == 1 and "127.0.0.1:1" in elsewhere.stderr
        trained = run_sidra("train", "spsa", "--steps", "2", "--eval-every", "2",
                            "--out", str(tmp_path / "run"), "--json", env=env)  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        where = json.loads((tmp_path / "run" / "run.json").read_text())
        assert where["board_url"].startswith("emu://") and not where.get("server")
        # ... and says so, on stderr (--json's stdout stays one document), naming --server.
        assert unwrapped(
            f"sidra train: runs on emu://?preset=sidra-y1 in this process; SIDRA_SERVER is "
            f"not read here (--server {address} runs it on that server's board)"
        ) in unwrapped(trained.stderr)
        there = run_sidra("train", "spsa", "--steps", "2", "--eval-every", "2", "--server",
                          address, "--out", str(tmp_path / "there"), env=env)  # fmt: skip
        assert there.returncode == 0 and "SIDRA_SERVER" not in there.stderr, there.stderr
    # None named: the refusal says where a server may be named.
    for command in ("whoami", "status", "leases"):
        missing = run_sidra(command, env={"SIDRA_SERVER": ""})  # set empty: none named
        assert missing.returncode == 2, command
        assert "Missingargument'url" in unwrapped(missing.stderr), command
        assert "Nameit,orsetSIDRA_SERVER." in unwrapped(missing.stderr), command


def test_watch_asks_again_every_period_until_its_rounds_are_done(tmp_path: Path) -> None:
    """Off a terminal each round follows the last (a log of a lab's board); --json gives a
    line per server and round, saying when it was asked."""
    from tests.cli_support import run_sidra

    with (
        serving(tmp_path / "state.sqlite3") as address,
        connect(address) as client,
        client.session(label="bench") as session,
        session.lease([0, 2]),
    ):
        lines = run_sidra("status", address, "--watch", "0.2", "--rounds", "3", "--json")
        text = run_sidra("status", address, "--watch", "0.1", "--rounds", "2")
        screen = _on_a_terminal(address, "--watch", "0.1", "--rounds", "2")
    assert lines.returncode == 0, lines.stderr
    rounds = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [r["health"] for r in rounds] == ["SERVING"] * 3
    asked = [r["asked_unix_s"] for r in rounds]
    assert all(b - a >= 0.15 for a, b in zip(asked, asked[1:], strict=False)), asked
    assert text.returncode == 0, text.stderr
    assert len(re.findall(r"^--- \d\d:\d\d:\d\d$", text.stdout, re.MULTILINE)) == 2
    assert text.stdout.count(f"server       {address}: SERVING") == 2
    assert text.stdout.count("tiles 0, 2: local (bench)") == 2  # a line per session
    # On a terminal each round clears the screen and says how often it is redrawn.
    assert screen.count("\x1b[2J") == 2 and screen.count("every 0.1 s (Ctrl-C stops)") == 2
    gone = run_sidra("status", address, "--watch", "0.1", "--rounds", "2")  # server stopped
    assert gone.returncode == 1 and gone.stdout.count("not reached") == 2
    # Why is in each round's block; the exit's line points at it rather than repeat it.
    assert gone.stderr.strip() == f"sidra status {address}: not reached (above)"


def _on_a_terminal(*args: str) -> str:
    """What ``sidra status ARGS`` writes to a real pseudo-terminal."""
    import pty
    import select
    import signal
    import time

    leader, follower = pty.openpty()
    # A process that hangs is aborted with every thread's stack on its stderr.
    proc = subprocess.Popen(
        [*SIDRA, "status", *args], stdout=follower, stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONFAULTHANDLER": "1"},
    )  # fmt: skip
    os.close(follower)
    out = bytearray()
    deadline = time.monotonic() + 60.0
    try:
        while True:
            # Read until the process has ended and its output is drained: once, under load,
            # the terminal's end never closed after the process exited 0 (another process
            # of the test's held it) and a read with no timeout waited out the test's.
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    proc.send_signal(signal.SIGABRT)
                    _, errors = proc.communicate(timeout=30)
                    raise AssertionError(
                        f"sidra status {' '.join(args)} hung; its stderr:\n{errors.decode()}"
                    )
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the last writer closed its end
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
    _, errors = proc.communicate(timeout=60)
    assert proc.returncode == 0, errors
    return out.decode()
