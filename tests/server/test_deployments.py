"""DeploymentService (deployments.proto): a model kept by name with the regions it was
programmed into, intact until someone programs other targets there; every refusal names
its field and stores nothing; deployments outlive the server process.

A real server on loopback with its state in a real SQLite file; the model bytes are a
real .npz (the service keeps them as given)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidra.cli.model_deployments import leased
from sidra.client import RemoteBoard, connect
from sidra.client.aio import connect as connect_aio
from sidra.drivers import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LeaseHeld,
    NotFound,
    OutOfRange,
    PermissionDenied,
    Region,
    open_board,
)
from sidra.drivers.requests import ProgramRequest, SequenceRequest
from sidra.hil.v1 import board_pb2
from sidra.hil.v1 import deployments_pb2 as pb
from sidra.server.app import create_server
from sidra.server.deployments import checked_regions
from sidra.server.security import Role, TokensFile
from tests.cli_support import run_sidra
from tests.jobs.jobs_support import serving
from tests.server.security_support import principals

IDEAL_INFO = open_board("emu://?preset=ideal&seed=0").info
LAYER = Region(0, 0, 65, 10)
"""Where a 64->10 layer with its bias row sits on a tile."""


def run_sidra_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``sidra ARGS`` with ``env`` added to this process's environment."""
    return run_sidra(*args, env=dict(env))


def model_file(seed: int = 0) -> bytes:
    """An .npz's bytes (the service checks no more than that)."""
    arrays = io.BytesIO()
    np.savez(arrays, layer0=np.random.default_rng(seed).normal(size=(65, 10)))
    return arrays.getvalue()


def program(board: RemoteBoard, tile: int, region: Region, value_us: float) -> None:
    targets = np.full(region.shape, value_us, np.float32)
    board.run(ProgramRequest(tile, targets, region.row_offset, region.col_offset))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def board(store: Path) -> Iterator[RemoteBoard]:
    with serving(store) as address, connect(address) as client:
        yield client


def test_a_deployment_is_kept_with_its_model_and_intact_until_written_over(
    board: RemoteBoard,
) -> None:
    program(board, 2, LAYER, 30.0)
    program(board, 3, Region(0, 0, 65, 4), 25.0)
    model = model_file()
    before = time.time()
    added = board.deployments.add(
        "digits-mlp", model, [(2, LAYER), (3, Region(0, 0, 65, 4))], description="mlp"
    )
    assert added.name == "digits-mlp" and added.principal == "local" and added.intact
    assert added.model_sha256 == hashlib.sha256(model).hexdigest()
    assert added.model_bytes == len(model) and added.model is None
    assert added.board_serial == board.info.serial_number and added.description == "mlp"
    with pytest.raises(InvalidArgument, match="description: got .*expected printable characters"):
        board.deployments.add(  # an escape sequence would reach every terminal listing it
            "painted", model, [(2, LAYER)], description="\x1b[31mred"
        )
    assert before <= added.created_unix_s <= time.time()
    assert added.tiles == (2, 3)
    assert [(r.tile, r.region, r.intact) for r in added.regions] == [
        (2, LAYER, True),
        (3, Region(0, 0, 65, 4), True),
    ]
    fetched = board.deployments.get("digits-mlp", include_model=True)
    assert fetched.model == model and fetched.intact
    assert board.deployments.get("digits-mlp").model is None
    assert [d.name for d in board.deployments.list()] == ["digits-mlp"]

    program(board, 2, LAYER, 30.0)  # the same targets again: still what it holds
    program(board, 2, Region(65, 0, 10, 10), 20.0)  # cells next to it
    program(board, 3, Region(0, 4, 65, 4), 20.0)
    assert board.deployments.get("digits-mlp").intact

    program(board, 3, Region(64, 3, 1, 1), 12.0)  # one cell of it
    found = board.deployments.get("digits-mlp")
    assert not found.intact
    assert [(r.tile, r.intact) for r in found.regions] == [(2, True), (3, False)]
    assert found.regions[1].rewritten_by == "local"
    assert found.regions[1].rewritten_unix_s >= found.created_unix_s
    assert found.regions[0].rewritten_by == "" and found.regions[0].rewritten_unix_s == 0.0
    assert not board.deployments.list()[0].intact

    gone = board.deployments.delete("digits-mlp")
    assert gone.name == "digits-mlp" and board.deployments.list() == []
    with pytest.raises(NotFound, match="expected a deployment of board"):
        board.deployments.get("digits-mlp")
    with pytest.raises(NotFound):
        board.deployments.delete("digits-mlp")


@pytest.mark.parametrize(
    ("name", "model", "regions", "error", "field"),
    [
        ("", None, [(2, LAYER)], InvalidArgument, "name"),
        ("-lead", None, [(2, LAYER)], InvalidArgument, "name"),
        ("has space", None, [(2, LAYER)], InvalidArgument, "name"),
        ("x" * 65, None, [(2, LAYER)], InvalidArgument, "name"),
        ("m", b"", [(2, LAYER)], InvalidArgument, "model"),
        ("m", b"\x93NUMPY", [(2, LAYER)], InvalidArgument, "model"),
        ("m", None, [], InvalidArgument, "regions"),
        ("m", None, [(4, LAYER)], OutOfRange, "regions[0].tile"),
        ("m", None, [(2, LAYER), (2, Region(0, 0, 0, 10))], OutOfRange, "regions[1].region.rows"),
        ("m", None, [(2, Region(0, 250, 65, 10))], OutOfRange, "regions[0].region.cols"),
        ("m", None, [(2, Region(256, 0, 1, 1))], OutOfRange, "regions[0].region.row_offset"),
        ("m", None, [(2, LAYER), (2, Region(64, 9, 2, 2))], InvalidArgument, "regions[1]"),
    ],
)
def test_a_refused_registration_names_its_field_and_stores_nothing(
    board: RemoteBoard,
    name: str,
    model: bytes | None,
    regions: list[tuple[int, Region]],
    error: type[InvalidArgument],
    field: str,
) -> None:
    program(board, 2, Region(0, 0, 256, 256), 30.0)
    with pytest.raises(error) as refused:
        board.deployments.add(name, model_file() if model is None else model, regions)
    assert type(refused.value) is error and refused.value.field == field
    assert board.deployments.list() == []


def test_cells_never_programmed_through_the_server_are_refused(board: RemoteBoard) -> None:
    with pytest.raises(FailedPrecondition, match=r"650 of the 650 cells of tile 2"):
        board.deployments.add("m", model_file(), [(2, LAYER)])  # nothing programmed yet
    program(board, 2, Region(0, 0, 64, 10), 30.0)  # the bias row left out
    with pytest.raises(FailedPrecondition, match=r"regions\[0\]: 10 of the 650 cells"):
        board.deployments.add("m", model_file(), [(2, LAYER)])
    assert board.deployments.list() == []


def test_a_name_is_taken_until_its_owner_or_an_admin_replaces_or_deletes_it(
    tmp_path: Path,
) -> None:
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(
        tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER, root=Role.ADMIN,
        eve=Role.VIEWER,
    )  # fmt: skip
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        clients = {name: connect(address, token=token) for name, token in tokens.items()}
        try:
            alice, bob, root, eve = (clients[n] for n in ("alice", "bob", "root", "eve"))
            program(alice, 1, LAYER, 30.0)
            first = alice.deployments.add("shared", model_file(1), [(1, LAYER)])
            assert first.principal == "alice"
            with pytest.raises(AlreadyExists, match="registered by 'alice'") as taken:
                bob.deployments.add("shared", model_file(2), [(1, LAYER)])
            # Not offered a --replace he would be refused.
            assert "replace=True" not in str(taken.value)
            assert "only 'alice' or an admin may replace it" in str(taken.value)
            with pytest.raises(AlreadyExists, match="or replace it"):  # to its owner, yes
                alice.deployments.add("shared", model_file(2), [(1, LAYER)])
            with pytest.raises(
                PermissionDenied, match="registered by 'alice'; only they or an admin"
            ):
                bob.deployments.add("shared", model_file(2), [(1, LAYER)], replace=True)
            with pytest.raises(PermissionDenied):
                bob.deployments.delete("shared")
            with pytest.raises(PermissionDenied, match="only they or an admin"):
                bob.deployments.add("shared", model_file(2), [(1, LAYER)], replace=True,
                                    validate_only=True)  # fmt: skip
            with pytest.raises(PermissionDenied, match="programmer"):  # a viewer's role
                eve.deployments.add("mine", model_file(), [(1, LAYER)])
            assert [d.principal for d in eve.deployments.list()] == ["alice"]  # may read
            assert alice.deployments.get("shared").model_sha256 == first.model_sha256

            program(bob, 1, LAYER, 35.0)
            [written] = eve.deployments.get("shared").regions
            assert not written.intact and written.rewritten_by == "bob"
            again = alice.deployments.add("shared", model_file(3), [(1, LAYER)], replace=True)
            assert again.intact and again.model_sha256 != first.model_sha256
            replaced = root.deployments.add("shared", model_file(4), [(1, LAYER)], replace=True)
            assert replaced.principal == "root"
            assert root.deployments.delete("shared").principal == "root"
        finally:
            for client in clients.values():
                client.close()


def test_validate_only_checks_all_but_the_cells_and_keeps_nothing(board: RemoteBoard) -> None:
    """What a client asks before it programs: the same refusals as AddDeployment's, bar
    the cells' programming, and nothing kept."""
    checked = board.deployments.add("m", model_file(), [(2, LAYER)], validate_only=True)
    assert checked.name == "m" and checked.model_sha256 == hashlib.sha256(model_file()).hexdigest()
    assert board.deployments.list() == []  # nothing programmed on tile 2, nothing kept
    program(board, 2, LAYER, 30.0)
    board.deployments.add("m", model_file(), [(2, LAYER)])
    with pytest.raises(AlreadyExists):
        board.deployments.add("m", model_file(), [(3, LAYER)], validate_only=True)
    with pytest.raises(OutOfRange) as refused:
        board.deployments.add("n", model_file(), [(2, Region(0, 0, 257, 1))], validate_only=True)
    assert refused.value.field == "regions[0].region.rows"
    again = board.deployments.add("m", model_file(1), [(3, LAYER)], replace=True,
                                  validate_only=True)  # fmt: skip
    assert again.tiles == (3,)
    [kept] = board.deployments.list()
    assert kept.tiles == (2,) and kept.model_sha256 == hashlib.sha256(model_file()).hexdigest()


def test_a_protected_deployment_keeps_other_principals_writes_off_its_cells(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Alice protects her model on tile 1: Bob's writes that touch its cells are refused
    naming it (Program, Perturb, Calibrate, a sequence's step, a job), and change
    nothing; his reads, his writes beside it, Alice's own and an admin's go through, the
    admin's first logged as a warning; the protection outlives the server and ends with
    the deployment."""
    caplog.set_level(logging.WARNING, logger="sidra.server.protections")
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER, root=Role.ADMIN)
    store = tmp_path / "s.sqlite3"
    beside = Region(0, 10, 65, 5)
    with serving(store, tokens=TokensFile(tokens_file)) as address:
        alice, bob, root = (connect(address, token=tokens[n]) for n in ("alice", "bob", "root"))
        try:
            program(alice, 1, LAYER, 30.0)
            kept = alice.deployments.add("demo", model_file(), [(1, LAYER)], protect=True)
            assert kept.protected and bob.deployments.get("demo").protected
            writes = bob.stats().cell_writes
            refused = [
                lambda: program(bob, 1, Region(64, 9, 2, 2), 20.0),
                lambda: bob.perturb(1, 7, 1.0),  # the whole tile
                lambda: bob.perturb(1, 7, 1.0, region=Region(0, 0, 1, 1)),
                lambda: bob.calibrate(1),
                lambda: bob.run(
                    SequenceRequest(
                        (
                            ProgramRequest(1, np.full((1, 1), 20.0, np.float32), 100, 100),
                            ProgramRequest(1, np.full((1, 1), 20.0, np.float32), 0, 0),
                        )
                    )
                ),  # fmt: skip
                lambda: bob.jobs.submit("spsa", {"steps": 4, "tiles": [1]}, dataset="iris"),
            ]
            for write in refused:
                with pytest.raises(FailedPrecondition, match="deployment 'demo' of 'alice', prot"):
                    write()
            assert bob.stats().cell_writes == writes  # not even the sequence's first step
            assert bob.deployments.get("demo").intact
            bob.mvm(1, np.zeros((1, 256), np.float32))  # reads go on
            program(bob, 1, beside, 20.0)  # cells beside it
            program(bob, 2, LAYER, 20.0)  # another tile
            program(alice, 1, LAYER, 30.0)  # its owner's
            assert "admin" not in caplog.text
            program(root, 1, LAYER, 30.0)  # an admin's, logged once
            root.perturb(1, 3, 1.0)
            root.restore(1)
            (warning,) = [r for r in caplog.records if r.name == "sidra.server.protections"]
            assert warning.getMessage().startswith(
                "admin 'root' wrote deployment 'demo' of 'alice', protected (Program on tile 1"
            )
            # An admin's job too: its board calls would carry no admin rights.
            with pytest.raises(FailedPrecondition, match="protected: a job there"):
                root.jobs.submit("spsa", {"steps": 4, "tiles": [1]}, dataset="iris")
        finally:
            for client in (alice, bob, root):
                client.close()
    with serving(store, tokens=TokensFile(tokens_file)) as address:
        with connect(address, token=tokens["bob"]) as bob, pytest.raises(FailedPrecondition):
            program(bob, 1, LAYER, 20.0)
        with connect(address, token=tokens["alice"]) as alice:
            alice.deployments.add("demo", model_file(), [(1, LAYER)], replace=True)  # unprotected
        with connect(address, token=tokens["bob"]) as bob:
            program(bob, 1, LAYER, 20.0)
            assert (
                not bob.deployments.get("demo").intact and not bob.deployments.list()[0].protected
            )


def test_a_malformed_write_to_a_protected_tile_is_refused_for_its_shape(tmp_path: Path) -> None:
    """A Program whose targets are not a 2-D array, or a Perturb past the tile's edge, on a
    protected tile is refused for what is wrong with it, as on any other tile (the server
    leaves a tensor's shape to the request's checks): from the deployment's owner and from
    another principal, never an internal error or a protection refusal; nothing written."""
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        alice, bob = (connect(address, token=tokens[n]) for n in ("alice", "bob"))
        try:
            program(alice, 1, LAYER, 30.0)
            alice.deployments.add("demo", model_file(), [(1, LAYER)], protect=True)
            writes = alice.stats().cell_writes
            for client in (alice, bob):
                for targets, shape in ((np.full(4, 20.0), "[4]"),
                                       (np.full((2, 2, 2), 20.0), "[2, 2, 2]")):  # fmt: skip
                    with pytest.raises(InvalidArgument) as caught:
                        client.program(1, targets)
                    assert type(caught.value) is InvalidArgument
                    assert str(caught.value) == (
                        f"conductances.shape: got {shape}, expected a 2-D array"
                    )
                with pytest.raises(InvalidArgument) as caught:
                    client.program(1, np.zeros((0, 3), np.float32))
                assert caught.value.field == "conductances.shape"
                with pytest.raises(OutOfRange) as out:
                    client.perturb(1, 7, 1.0, region=Region(0, 0, IDEAL_INFO.rows + 1, 1))
                assert out.value.field == "region.rows"
            assert alice.stats().cell_writes == writes
            assert alice.deployments.get("demo").intact
        finally:
            for client in (alice, bob):
                client.close()


def test_only_cells_the_caller_programmed_last_may_be_protected(tmp_path: Path) -> None:
    """Protecting cells another principal programmed would lock that one out of them:
    Bob may register Alice's programmed region, not protect it; once he programs it whole
    himself he may, until Alice writes one of its cells again; an admin may protect any."""
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER, root=Role.ADMIN)
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        alice, bob, root = (connect(address, token=tokens[n]) for n in ("alice", "bob", "root"))
        try:
            program(alice, 1, LAYER, 30.0)
            with pytest.raises(
                PermissionDenied,
                match=r"regions\[0\]: tile 1 rows 0..64 cols "
                r"0..9 never programmed whole by it: 'bob' may protect only",
            ):
                bob.deployments.add("mine", model_file(), [(1, LAYER)], protect=True)
            assert not bob.deployments.add("mine", model_file(), [(1, LAYER)]).protected
            program(bob, 1, LAYER, 25.0)
            assert bob.deployments.add("mine", model_file(), [(1, LAYER)], replace=True,
                                       protect=True).protected  # fmt: skip
            bob.deployments.delete("mine")
            program(alice, 1, Region(64, 9, 1, 1), 20.0)  # one of its cells, after Bob's
            with pytest.raises(PermissionDenied, match="last written by 'alice'"):
                bob.deployments.add("mine", model_file(), [(1, LAYER)], protect=True)
            assert root.deployments.add("admin", model_file(), [(1, LAYER)], protect=True).protected
            assert [d.name for d in bob.deployments.list()] == ["admin"]
        finally:
            for client in (alice, bob, root):
                client.close()


def test_characterizing_a_board_with_another_principals_protected_deployment_is_refused_first(
    tmp_path: Path,
) -> None:
    """Alice protects her model on tile 1; Bob's characterization (which programs every
    tile) is refused naming it before it writes anything. Alice's own goes ahead."""
    from sidra.cli.twin import holding_every_tile

    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        with connect(address, token=tokens["alice"]) as alice:
            program(alice, 1, LAYER, 30.0)
            alice.deployments.add("demo", model_file(), [(1, LAYER)], protect=True)
            with holding_every_tile(alice, "characterize"):
                assert alice.current_session is not None
                assert alice.current_session.state.whole_board
            assert alice.current_session is None  # the session it opened is closed
        with connect(address, token=tokens["bob"]) as bob:
            writes = bob.stats().cell_writes
            with (
                pytest.raises(
                    FailedPrecondition, match=r"tiles 1 hold deployment 'demo' of 'alice'"
                ),
                holding_every_tile(bob, "characterize"),
            ):
                pytest.fail("not refused")
            assert bob.stats().cell_writes == writes and bob.leases() == []


def test_a_protection_is_not_put_on_another_principals_leased_tile_and_a_job_queued_there_fails(
    tmp_path: Path,
) -> None:
    """Bob's lease of tile 2 keeps Alice from protecting her cells there (LeaseHeld naming
    regions[0].tile and the lease, nothing stored); under her own lease of tile 1 she may.
    Bob's job queued for tile 1 meanwhile ends failed, before any write, once her lease
    ends and it would start: its calls would all be refused."""
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address:
        alice, bob = (connect(address, token=tokens[n]) for n in ("alice", "bob"))
        try:
            program(alice, 2, LAYER, 30.0)
            with bob.session(label="bench") as session, session.lease([2]):
                for validate_only in (True, False):
                    with pytest.raises(
                        LeaseHeld,
                        match=r"regions\[0\]\.tile: tile 2 is leased to session \S+ of 'bob' "
                        r"\(bench\), whose writes a protection would refuse",
                    ):
                        alice.deployments.add(
                            "demo", model_file(), [(2, LAYER)], protect=True,
                            validate_only=validate_only,
                        )  # fmt: skip
                assert alice.deployments.list() == []
                assert not alice.deployments.add("plain", model_file(), [(2, LAYER)]).protected
            with alice.session(label="deploy") as session, session.lease([1]):
                program(alice, 1, LAYER, 30.0)
                queued = bob.jobs.submit(
                    "spsa", {"steps": 4, "tiles": [1]}, dataset="iris", queue=True
                )
                assert queued.state == "queued"
                alice.deployments.add("demo", model_file(), [(1, LAYER)], protect=True)
                writes = bob.stats().cell_writes
            ended = bob.jobs.wait(queued.job_id)
            assert ended.state == "failed" and ended.started_unix_s == 0.0
            assert ended.error.startswith(
                "not started: its tiles came to be protected while it was queued: tile 1 "
            )
            assert "deployment 'demo' of 'alice', protected" in ended.error
            assert bob.stats().cell_writes == writes and bob.deployments.get("demo").intact
        finally:
            for client in (alice, bob):
                client.close()


def test_deploy_by_name_holds_its_tiles_from_the_first_program_to_the_registration(
    tmp_path: Path,
) -> None:
    """What `sidra model deploy --name` wraps its Programs and AddDeployment in: another
    principal's write to those tiles is refused meanwhile, and goes through after."""
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    with (
        serving(tmp_path / "s.sqlite3", tokens=TokensFile(tokens_file)) as address,
        connect(address, token=tokens["alice"]) as alice,
        connect(address, token=tokens["bob"]) as bob,
    ):
        with leased(alice, "demo", [(1, LAYER), (3, LAYER)]):
            program(alice, 1, LAYER, 30.0)
            for tile in (1, 3):
                with pytest.raises(LeaseHeld, match=f"writes tile {tile}, which is leased to "):
                    program(bob, tile, Region(100, 100, 1, 1), 20.0)
            holders = {(t.tile, t.principal, t.label) for t in bob.leases()}
            assert holders == {(t, "alice", "sidra model deploy demo") for t in (1, 3)}
            alice.deployments.add("demo", model_file(), [(1, LAYER)])
        assert bob.leases() == []
        program(bob, 1, Region(100, 100, 1, 1), 20.0)


def test_a_check_reads_the_cells_and_sees_writes_the_store_never_saw(tmp_path: Path) -> None:
    """Right after programming the cells correlate with the targets (noisy board); written
    around the server (the board driven directly, as a serial board can be) the store
    still calls the deployment intact, a check does not; `sidra model check` exits 1
    then. Not intact: nothing to compare with. A viewer may not read cells."""
    tokens_file = tmp_path / "tokens.toml"
    tokens = principals(tokens_file, alice=Role.PROGRAMMER, eve=Role.VIEWER)
    rng = np.random.default_rng(4)
    targets = rng.uniform(5.0, 35.0, LAYER.shape).astype(np.float32)
    with (
        open_board("emu://?preset=sidra-y1&seed=1") as board,
        serving(tmp_path / "s.sqlite3", board, tokens=TokensFile(tokens_file)) as address,
        connect(address, token=tokens["alice"]) as alice,
        connect(address, token=tokens["eve"]) as eve,
    ):
        alice.run(ProgramRequest(1, targets))
        assert alice.deployments.add("demo", model_file(), [(1, LAYER)]).last_check is None
        checked = alice.deployments.check("demo")
        assert alice.deployments.get("demo").last_check == checked  # kept, and listed
        assert eve.deployments.list()[0].last_check == checked
        assert checked.name == "demo" and [r.tile for r in checked.regions] == [1]
        assert checked.correlation > 0.9 and checked.regions[0].correlation == checked.correlation
        assert 0.0 < checked.rms_deviation_us < 2.0 and checked.cost.time_ns > 0
        assert checked.checked_unix_s == pytest.approx(time.time(), abs=60)
        env = {"SIDRA_TOKEN": tokens["alice"]}
        done = run_sidra_env(env, "model", "check", "demo", "--server", address, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["held"] is True
        with pytest.raises(PermissionDenied):
            eve.deployments.check("demo")

        board.program(1, rng.uniform(5.0, 35.0, LAYER.shape).astype(np.float32))  # around it
        assert alice.deployments.get("demo").intact  # the store cannot know
        assert abs(alice.deployments.check("demo").correlation) < 0.3
        done = run_sidra_env(env, "model", "check", "demo", "--server", address)
        assert done.returncode == 1
        assert "its tiles no longer hold the model" in " ".join(done.stderr.split())
        assert "rows 0..64 cols 0..9" in done.stdout

        listed = run_sidra_env(env, "model", "list", "--server", address)
        assert "NOT HELD" in listed.stdout, listed.stdout
        # Every deployment, a line each: one held, one not, one not intact.
        alice.run(ProgramRequest(3, targets))
        alice.deployments.add("held", model_file(), [(3, LAYER)])
        program(alice, 0, LAYER, 20.0)
        alice.deployments.add("gone", model_file(), [(0, LAYER)])
        program(alice, 0, LAYER, 25.0)
        every = run_sidra_env(env, "model", "check", "--server", address)
        assert every.returncode == 1, every.stderr
        lines = every.stdout.splitlines()
        assert [line.split(":")[0] for line in lines] == ["demo", "gone", "held"]
        assert "NOT HELD" in lines[0] and "not checked (FailedPrecondition)" in lines[1]
        assert "NOT HELD" not in lines[2] and "correlation 0.9" in lines[2]
        errors = " ".join(every.stderr.split())
        assert "'demo' correlates" in errors and "'gone' not checked" in errors
        assert "'held'" not in errors
        reports = json.loads(run_sidra_env(env, "model", "check", "--server", address,
                                           "--json").stdout)  # fmt: skip
        assert [r.get("held") for r in reports] == [False, None, True]
        alice.deployments.delete("held")
        alice.deployments.delete("gone")

        program(alice, 1, Region(0, 0, 1, 1), 20.0)  # through it: no longer intact
        with pytest.raises(FailedPrecondition, match="'demo' is not intact: tile 1 rows 0..64"):
            alice.deployments.check("demo")
        assert alice.deployments.get("demo").last_check is None


def test_deployments_outlive_the_server(store: Path) -> None:
    with serving(store) as address, connect(address) as client:
        program(client, 0, LAYER, 30.0)
        kept = client.deployments.add("kept", model_file(), [(0, LAYER)])
    with serving(store) as address, connect(address) as client:
        assert client.deployments.get("kept", include_model=True).model == model_file()
        assert client.deployments.list()[0].created_unix_s == kept.created_unix_s
        assert client.deployments.list()[0].intact


def test_a_server_without_a_state_store_refuses_deployments() -> None:
    with open_board("emu://?preset=ideal&seed=0") as emulated:
        server, port = create_server(emulated, "127.0.0.1:0")
        server.start()
        try:
            with (
                connect(f"127.0.0.1:{port}") as client,
                pytest.raises(FailedPrecondition, match="keeps no state store"),
            ):
                client.deployments.list()
        finally:
            server.stop(grace=None).wait()


def test_unparsable_request_bytes_are_an_argument_error(board: RemoteBoard) -> None:
    channel = board._channel
    method = channel.unary_unary(
        "/sidra.hil.v1.DeploymentService/AddDeployment",
        request_serializer=lambda raw: raw,
        response_deserializer=pb.Deployment.FromString,
    )
    with pytest.raises(grpc.RpcError) as refused:
        method(b"\xff\xff\xff", timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


EDGES = st.sampled_from([0, 1, 2, 3, 5, 250, 252, 253, 255, 256])
SIZES = st.sampled_from([0, 1, 2, 3, 4, 6])


@st.composite
def regions_near_each_other(draw: st.DrawFn) -> list[pb.DeployedRegion]:
    """Up to six regions on two tiles, near a corner or an edge: inside the tile or not,
    apart or sharing cells."""
    return [
        pb.DeployedRegion(
            tile=draw(st.integers(0, 1)),
            region={
                "row_offset": draw(EDGES),
                "col_offset": draw(EDGES),
                "rows": draw(SIZES),
                "cols": draw(SIZES),
            },
        )  # fmt: skip
        for _ in range(draw(st.integers(1, 6)))
    ]


@settings(max_examples=300, deadline=None)
@given(regions_near_each_other())
def test_regions_are_taken_exactly_when_inside_their_tile_and_apart(
    regions: list[pb.DeployedRegion],
) -> None:
    info = IDEAL_INFO
    cells = np.zeros((2, info.rows, info.cols), int)
    inside = True
    for r in regions:
        g = r.region
        inside = inside and g.rows >= 1 and g.cols >= 1
        inside = inside and g.row_offset + g.rows <= info.rows
        inside = inside and g.col_offset + g.cols <= info.cols
        if not inside:
            break
        rows = slice(g.row_offset, g.row_offset + g.rows)
        cells[r.tile, rows, g.col_offset : g.col_offset + g.cols] += 1
    expected = inside and int(cells.max()) <= 1
    try:
        taken = checked_regions(info, regions)
    except InvalidArgument as exc:
        assert not expected, exc
        assert exc.field.startswith("regions[")
    else:
        assert expected
        assert [(t.tile, t.region.shape) for t in taken] == [
            (r.tile, (r.region.rows, r.region.cols)) for r in regions
        ]


def test_the_asyncio_client_keeps_and_reads_deployments_as_the_synchronous_one(
    store: Path,
) -> None:
    with serving(store) as address, connect(address) as client:
        program(client, 0, LAYER, 30.0)

        async def through_asyncio() -> tuple[list[str], bytes | None, float, str]:
            async with await connect_aio(address) as board:
                await board.deployments.add("async", model_file(), [(0, LAYER)])
                with pytest.raises(AlreadyExists):
                    await board.deployments.add("async", model_file(), [(0, LAYER)])
                names = [d.name for d in await board.deployments.list()]
                fetched = (await board.deployments.get("async", include_model=True)).model
                made = await board.deployments.check("async")
                kept = await board.deployments.checks("async", limit=1)
                assert kept.checks == (made,) and kept.kept == 1
                repeated = await board.deployments.check("async", read_repeats=3)
                assert (repeated.read_repeats, repeated.read_noise_us) == (3, 0.0)  # ideal
                with pytest.raises(InvalidArgument, match="read_repeats"):
                    await board.deployments.check("async", read_repeats=0)
                checked = made.rms_deviation_us
                return names, fetched, checked, (await board.deployments.delete("async")).name

        # Every cell at one value: no order to correlate, none moved on the ideal board.
        assert asyncio.run(through_asyncio()) == (["async"], model_file(), 0.0, "async")
        assert client.deployments.list() == []


UINT32 = st.integers(0, 2**32 - 1)
HOSTILE_REQUESTS = st.builds(
    pb.AddDeploymentRequest,
    name=st.one_of(st.text(max_size=80), st.sampled_from(["ok", "a.b-c_d", "x" * 64])),
    model=st.one_of(st.binary(max_size=64), st.just(b"PK\x03\x04")),
    regions=st.lists(
        st.builds(
            pb.DeployedRegion,
            tile=st.one_of(st.integers(0, 4), UINT32),
            region=st.builds(
                board_pb2.Region,
                row_offset=st.one_of(st.integers(0, 260), UINT32),
                col_offset=st.one_of(st.integers(0, 260), UINT32),
                rows=st.one_of(st.integers(0, 260), UINT32),
                cols=st.one_of(st.integers(0, 260), UINT32),
            ),
        ),
        max_size=4,
    ),
    description=st.text(max_size=1100),
    replace=st.booleans(),
)
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
}


def test_hostile_registrations_are_refused_cleanly_or_kept_whole(tmp_path: Path) -> None:
    """Any AddDeploymentRequest at all: answered, or refused with an argument or state
    code naming what was wrong; never INTERNAL, and a refused one stores nothing."""
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        program(client, 0, Region(0, 0, 256, 256), 30.0)
        call = client._channel.unary_unary(
            "/sidra.hil.v1.DeploymentService/AddDeployment",
            request_serializer=pb.AddDeploymentRequest.SerializeToString,
            response_deserializer=pb.Deployment.FromString,
        )

        @settings(max_examples=150, deadline=None)
        @given(HOSTILE_REQUESTS)
        def answered_or_refused(request: pb.AddDeploymentRequest) -> None:
            before = client.deployments.list()
            try:
                kept = call(request, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() in REFUSALS, (exc.code(), exc.details())
                assert exc.details()
                assert client.deployments.list() == before
            else:
                assert kept.name == request.name and kept.intact
                client.deployments.delete(kept.name)

        answered_or_refused()
