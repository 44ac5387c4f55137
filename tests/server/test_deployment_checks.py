"""Checks of a deployment's cells kept in the state store (deployments.proto "Checks
kept"): they outlive the server, page back oldest first, go with the deployment they were
of, are thinned past their bounds, and a check whose deployment changed while its cells
were read is kept nowhere. Against a real server on loopback and a real SQLite file."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ReadResult,
    Region,
    open_board,
)
from sidra.drivers.requests import ProgramRequest
from sidra.server.deployment_checks import DeploymentChecks
from sidra.server.state import StateStore
from sidra.server.state import checks as kept_checks
from sidra.server.state.deployments import DeployedRegionRow, DeploymentRecords, DeploymentRow
from tests.jobs.jobs_support import serving
from tests.server.test_deployments import LAYER, model_file, run_sidra_env
from tests.state.state_support import REPORT, TEST_BOARD, store_of_schema

TARGETS = np.random.default_rng(7).uniform(5.0, 35.0, LAYER.shape).astype(np.float32)


def deploy(client: RemoteBoard, name: str = "demo", tile: int = 0, replace: bool = False) -> None:
    client.run(ProgramRequest(tile, TARGETS))
    client.deployments.add(name, model_file(), [(tile, LAYER)], replace=replace)


def test_checks_are_kept_oldest_first_and_outlive_the_server(tmp_path: Path) -> None:
    store = tmp_path / "state.sqlite3"
    with serving(store) as address, connect(address) as client:
        deploy(client)
        assert client.deployments.checks("demo").checks == ()
        first, second = client.deployments.check("demo"), client.deployments.check("demo")
        history = client.deployments.checks("demo")
        assert history.checks == (first, second) and history.kept == 2
        assert first.checked_by == "local" and first.correlation == pytest.approx(
            1.0
        )  # ideal board
        assert [r.tile for r in second.regions] == [0]
    with serving(store) as address, connect(address) as client:
        assert client.deployments.get("demo").last_check == second
        assert client.deployments.list()[0].last_check == second
        assert client.deployments.checks("demo").checks == (first, second)


def test_the_history_pages_back_and_refuses_bad_bounds(tmp_path: Path) -> None:
    with serving(tmp_path / "state.sqlite3") as address, connect(address) as client:
        deploy(client)
        made = [client.deployments.check("demo") for _ in range(5)]
        latest = client.deployments.checks("demo", limit=2)
        assert latest.checks == tuple(made[3:]) and latest.kept == 5
        back = client.deployments.checks("demo", limit=2, before_unix_s=made[3].checked_unix_s)
        assert back.checks == tuple(made[1:3])
        assert client.deployments.checks("demo", limit=10_000).checks == tuple(made)
        for limit in (10_001, 2**32 - 1):
            with pytest.raises(OutOfRange) as refused:
                client.deployments.checks("demo", limit=limit)
            assert refused.value.field == "limit" and refused.value.value == limit  # typed
        for before in (-1.0, math.nan, math.inf):
            with pytest.raises(InvalidArgument) as bad:
                client.deployments.checks("demo", before_unix_s=before)
            assert bad.value.field == "before_unix_s"
        with pytest.raises(NotFound, match="'demo'"):
            client.deployments.checks("nope")
        with pytest.raises(InvalidArgument) as named:
            client.deployments.checks("no name")
        assert named.value.field == "name"
        assert client.deployments.checks("demo").kept == 5  # refusals kept nothing


def test_registering_again_or_deleting_drops_the_checks_and_writing_over_keeps_them(
    tmp_path: Path,
) -> None:
    with serving(tmp_path / "state.sqlite3") as address, connect(address) as client:
        deploy(client)
        client.deployments.check("demo")
        deploy(client, replace=True)  # another registration: not its checks
        assert client.deployments.checks("demo").kept == 0
        kept = client.deployments.check("demo")
        client.run(ProgramRequest(0, np.full((1, 1), 20.0, np.float32)))  # written over
        assert client.deployments.checks("demo").checks == (kept,)  # what it held, kept
        assert client.deployments.get("demo").last_check is None  # not its cells now
        client.deployments.delete("demo")
        with pytest.raises(NotFound):
            client.deployments.checks("demo")
        deploy(client)
        assert client.deployments.checks("demo").kept == 0


def test_sidra_model_checks_prints_tables_json_and_a_plot_and_exits_1_when_not_held(
    tmp_path: Path,
) -> None:
    with (
        open_board("emu://?preset=sidra-y1&seed=2") as board,
        serving(tmp_path / "state.sqlite3", board) as address,
        connect(address) as client,
    ):
        deploy(client)
        never = run_sidra_env({}, "model", "checks", "demo", "--server", address)
        assert never.returncode == 0, never.stderr
        assert "never checked" in never.stdout
        made = [client.deployments.check("demo") for _ in range(3)]
        plot = tmp_path / "checks.png"
        shown = run_sidra_env(
            {}, "model", "checks", "demo", "--server", address, "--plot", str(plot)
        )
        assert shown.returncode == 0, shown.stderr
        assert "3 checks kept; from" in " ".join(shown.stdout.split())
        assert shown.stdout.count(" local ") == 3
        page = run_sidra_env({}, "model", "checks", "demo", "--server", address, "--limit", "2")
        assert "the latest 2 of the 3 checks kept; from" in " ".join(page.stdout.split())
        assert plot.read_bytes().startswith(b"\x89PNG")
        listed = run_sidra_env(
            {}, "model", "checks", "demo", "--server", address, "--json", "--limit", "2"
        )
        report = json.loads(listed.stdout)
        assert report["kept"] == 3
        assert [c["checked_unix_s"] for c in report["checks"]] == [
            c.checked_unix_s for c in made[1:]
        ]
        assert all(c["held"] and c["checked_by"] == "local" for c in report["checks"])
        for bad in (["--limit", "0"], ["--limit", "10001"], ["--plot", str(tmp_path / "x.txt")]):
            refused = run_sidra_env({}, "model", "checks", "demo", "--server", address, *bad)
            assert refused.returncode == 2 and bad[0] in refused.stderr, refused.stderr
        assert client.deployments.checks("demo").kept == 3

        scrambled = np.random.default_rng(3).permutation(TARGETS.ravel()).reshape(LAYER.shape)
        board.program(0, np.ascontiguousarray(scrambled))  # around the server
        client.deployments.check("demo")
        done = run_sidra_env({}, "model", "checks", "demo", "--server", address)
        assert done.returncode == 1, done.stdout
        assert "NOT HELD" in done.stdout
        assert "its tiles no longer hold the model" in " ".join(done.stderr.split())


def _stored_deployment(store: StateStore) -> tuple[DeploymentRecords, DeploymentRow]:
    store.note_board(TEST_BOARD, "boot-1")
    region = Region(0, 0, 8, 4)
    rng = np.random.default_rng(0)
    store.record_program(
        TEST_BOARD.serial_number, 0, 0, 0, rng.uniform(5, 35, region.shape), REPORT, "alice",
        "boot-1",
    )  # fmt: skip
    records = DeploymentRecords(store)
    row = DeploymentRow(TEST_BOARD.serial_number, "demo", "alice", 1.0e9, "", b"", 0,
                        (DeployedRegionRow(0, region, ""),))  # fmt: skip
    return records, records.add(row, model_file())


def _check(
    store: StateStore,
    records: DeploymentRecords,
    found: DeploymentRow,
    meanwhile: Callable[[], None],
) -> None:
    checks = DeploymentChecks(records)

    def read(tile: int, region: Region) -> ReadResult:
        meanwhile()
        return ReadResult(store.golden(found.board_serial, tile).targets_us[region.slices])

    checks.check(
        found, read, lambda tile: store.golden(found.board_serial, tile).targets_us, 2.0e9, "bob"
    )


@pytest.mark.parametrize(
    ("meanwhile", "error", "refused", "kept_after"),
    [  # kept after: the earlier check's row (written over keeps it; the others drop it)
        ("written over", FailedPrecondition, "'demo' was written over while its cells", 1),
        ("registered again", FailedPrecondition, "'demo' was registered again while", 0),
        ("deleted", NotFound, "name: got 'demo'", None),
    ],
)
def test_a_check_whose_deployment_changed_while_its_cells_were_read_is_not_kept(
    tmp_path: Path, meanwhile: str, error: type[Exception], refused: str, kept_after: int | None
) -> None:
    with StateStore(tmp_path / "state.sqlite3") as store:
        records, found = _stored_deployment(store)
        _check(store, records, found, lambda: None)  # nothing in between: kept
        assert records.checks(found.board_serial, "demo", 10)[1] == 1

        def change() -> None:
            if meanwhile == "written over":
                store.record_program(
                    found.board_serial, 0, 0, 0, np.full((1, 1), 3.0), REPORT, "mallory",
                    "boot-1",
                )  # fmt: skip
            elif meanwhile == "registered again":
                again = DeploymentRow(
                    found.board_serial, "demo", "alice", 1.5e9, "", b"", 0, found.regions
                )
                records.add(again, model_file(), replace_existing=True)
            else:
                records.delete(found.board_serial, "demo", "alice", admin=False)

        with pytest.raises(error, match=refused):
            _check(store, records, found, change)
        if kept_after is None:
            with pytest.raises(NotFound):
                records.checks(found.board_serial, "demo", 10)
        else:
            assert records.checks(found.board_serial, "demo", 10)[1] == kept_after


def test_old_checks_are_thinned_to_the_latest_with_regions_and_the_most_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kept_checks, "CHECKS_KEPT", 7)
    monkeypatch.setattr(kept_checks, "REGIONS_KEPT", 3)
    with StateStore(tmp_path / "state.sqlite3") as store:
        records, found = _stored_deployment(store)
        checks = DeploymentChecks(records)
        golden = store.golden(found.board_serial, 0).targets_us
        for k in range(10):
            checks.check(found, lambda t, r: ReadResult(golden[r.slices]), lambda t: golden,
                         1.0e9 + k, "bob")  # fmt: skip
        history, kept = records.checks(found.board_serial, "demo", 100)
        assert kept == 7 and [c.checked_unix_s - 1.0e9 for c in history] == list(range(3, 10))
        assert [len(c.regions) for c in history] == [0, 0, 0, 0, 1, 1, 1]
        assert records.latest_checks(found.board_serial)["demo"] == history[-1]


def test_a_store_of_the_schema_before_checks_opens_with_its_deployments_and_no_checks(
    tmp_path: Path,
) -> None:
    now = tmp_path / "now.sqlite3"
    with StateStore(now) as store:
        records, found = _stored_deployment(store)
    path = tmp_path / "state.sqlite3"
    db = store_of_schema(path, 8)  # the same rows in a store as schema 8 made it
    db.execute("ATTACH DATABASE ? AS now", (str(now),))
    tables = db.execute(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT IN "
        "('schema_version', 'jobs', 'sqlite_sequence')"
    ).fetchall()
    for (table,) in tables:  # those of schema 8 have kept their columns since
        db.execute(f"INSERT INTO main.{table} SELECT * FROM now.{table}")
    db.commit()
    db.close()
    with StateStore(path) as store:
        records = DeploymentRecords(store)
        assert [d.name for d in records.of_board(found.board_serial)] == ["demo"]
        assert records.checks(found.board_serial, "demo", 10) == ([], 0)
        _check(store, records, records.get(found.board_serial, "demo"), lambda: None)
        assert records.checks(found.board_serial, "demo", 10)[1] == 1


def test_a_scrape_never_waits_on_the_board_and_a_stop_ends_the_round(tmp_path: Path) -> None:
    """The metrics' latest_checks starts due checks on a thread of its own and answers at
    once, with what the store holds; one round at a time; the next answer shows the
    round's figures; the server's stop waits for the round's read to end."""
    from sidra.server.deployments import DeploymentServicer

    with StateStore(tmp_path / "state.sqlite3") as store:
        records, found = _stored_deployment(store)
        golden = store.golden(found.board_serial, 0).targets_us
        reading, release, reads = threading.Event(), threading.Event(), []

        def read_cells(principal: str, admin: bool, tile: int, region: Region) -> ReadResult:
            reads.append(principal)
            reading.set()
            assert release.wait(30)
            return ReadResult(golden[region.slices])

        servicer = DeploymentServicer(
            lambda: TEST_BOARD, store, read_cells=read_cells, check_every_s=3600.0
        )
        assert servicer.latest_checks() == {}  # answered while the read is held
        assert reading.wait(30)
        assert servicer.latest_checks() == {}  # a round under way: no second one
        release.set()
        servicer.stop_checks(30)
        assert reads == ["(server)"]
        (checked,) = servicer.latest_checks().values()
        assert checked.checked_by == "(server)" and checked.correlation == pytest.approx(1.0)
        assert reads == ["(server)"]  # not due again for an hour
