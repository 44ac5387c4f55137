"""Checks of several reads (CheckDeploymentRequest.read_repeats): each cell's mean over
the reads is compared with its target, the read noise is said, both are kept with the
check; bad counts are refused naming the field; the server's own checks read as often as
``[metrics] deployment_check_read_repeats`` says; checks kept before the field read once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidra.client import connect
from sidra.drivers import (
    Cost,
    DeadlineExceeded,
    InvalidArgument,
    OutOfRange,
    ReadResult,
    Region,
    open_board,
)
from sidra.drivers.requests import ProgramRequest, ReadConductanceRequest
from sidra.hil.v1 import deployments_pb2 as pb
from sidra.server.deployment_checks import DeploymentChecks
from sidra.server.deployments import DeploymentServicer
from sidra.server.observability.logs import RPC_LOGGER
from sidra.server.settings import ConfigError, load_settings
from sidra.server.state import StateStore
from sidra.server.state.deployments import DeploymentRecords
from tests.jobs.jobs_support import serving
from tests.server.test_deployment_checks import TARGETS, _stored_deployment, deploy
from tests.server.test_deployments import run_sidra_env
from tests.state.state_support import TEST_BOARD, store_of_schema

ONE_READ = Cost(time_ns=40.0, energy_nj=120.0)


def test_the_check_compares_each_cells_mean_over_the_reads_and_says_the_read_noise(
    tmp_path: Path,
) -> None:
    """Reads that differ by known offsets: the figures are those of the exact mean, the
    noise the rms over the cells of each cell's sample deviation, the cost every read's."""
    with StateStore(tmp_path / "state.sqlite3") as store:
        records, found = _stored_deployment(store)
        golden = store.golden(found.board_serial, 0).targets_us
        region = found.regions[0].region
        offsets = np.random.default_rng(5).normal(0.3, 1.0, (5, *region.shape))
        served = iter(golden[region.slices] + offsets)

        def read(tile: int, asked: Region) -> ReadResult:
            assert (tile, asked) == (0, region)
            return ReadResult(next(served).astype(np.float32), ONE_READ)

        made = DeploymentChecks(records).check(
            found, read, lambda tile: golden, 2.0e9, "bob", read_repeats=5
        )
        assert next(served, None) is None  # five reads, no more
        reads = golden[region.slices].astype(np.float64) + offsets
        mean = reads.mean(axis=0) - golden[region.slices]
        assert made.read_repeats == 5
        assert made.mean_deviation_us == pytest.approx(mean.mean(), rel=1e-5)
        assert made.rms_deviation_us == pytest.approx(np.sqrt((mean**2).mean()), rel=1e-5)
        noise = np.sqrt(reads.var(axis=0, ddof=1).mean())
        assert made.read_noise_us == pytest.approx(noise, rel=1e-5) and 0.8 < noise < 1.2
        assert (made.cost.time_ns, made.cost.energy_nj) == (200.0, 600.0)
        assert made.regions[0].rms_deviation_us == pytest.approx(made.rms_deviation_us)
        assert made.regions[0].read_noise_us == pytest.approx(noise, rel=1e-5)  # one region
        (kept,), _ = records.checks(found.board_serial, "demo", 10)
        assert (kept.read_repeats, kept.read_noise_us) == (5, pytest.approx(noise, rel=1e-5))
        assert kept.regions[0].read_noise_us == pytest.approx(noise, rel=1e-5)


def test_one_read_says_no_read_noise_and_0_in_the_request_means_one(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.sqlite3") as store:
        _, found = _stored_deployment(store)
        golden = store.golden(found.board_serial, 0).targets_us
        reads: list[Region] = []

        def read_cells(principal: str, admin: bool, tile: int, region: Region) -> ReadResult:
            reads.append(region)
            return ReadResult(golden[region.slices] + np.float32(0.5), ONE_READ)

        servicer = DeploymentServicer(lambda: TEST_BOARD, store, read_cells=read_cells)
        made = servicer.CheckDeployment(pb.CheckDeploymentRequest(name="demo"), None)
        assert len(reads) == 1 and made.read_repeats == 1 and made.read_noise_us == 0.0
        assert made.mean_deviation_us == pytest.approx(0.5)
        assert made.rms_deviation_us == pytest.approx(0.5)


def test_a_served_check_of_16_reads_sees_the_cells_apart_from_the_read_noise(
    tmp_path: Path,
) -> None:
    """On sidra-y1: the mean of 16 reads deviates less from the targets than one read;
    the read noise the check says is the one the board's own reads show; the count and
    the noise are kept and outlive the server."""
    store = tmp_path / "state.sqlite3"
    with open_board("emu://?preset=sidra-y1&seed=4") as board:
        with serving(store, board) as address, connect(address) as client:
            deploy(client)
            one = client.deployments.check("demo")
            many = client.deployments.check("demo", read_repeats=16)
            reads = np.stack([
                np.asarray(client.read_conductance(0, Region(0, 0, *TARGETS.shape)).conductances,
                           np.float64)
                for _ in range(16)
            ])  # fmt: skip
        assert (one.read_repeats, one.read_noise_us) == (1, 0.0)
        assert one.regions[0].read_noise_us == 0.0
        assert many.read_repeats == 16
        assert many.regions[0].read_noise_us == pytest.approx(many.read_noise_us)
        assert many.rms_deviation_us < 0.9 * one.rms_deviation_us
        assert many.correlation > one.correlation
        own = float(np.sqrt(reads.var(axis=0, ddof=1).mean()))
        assert many.read_noise_us == pytest.approx(own, rel=0.15)
        assert many.cost.time_ns == pytest.approx(16 * one.cost.time_ns)
        with serving(store, board) as address, connect(address) as client:
            assert client.deployments.checks("demo").checks == (one, many)
            assert client.deployments.get("demo").last_check == many


@pytest.mark.parametrize("repeats", [0, -1, 2**32, True, 2.0])
def test_the_client_refuses_what_is_no_count_of_reads(tmp_path: Path, repeats: Any) -> None:
    with serving(tmp_path / "state.sqlite3") as address, connect(address) as client:
        deploy(client)
        with pytest.raises(InvalidArgument) as refused:
            client.deployments.check("demo", read_repeats=repeats)
        assert refused.value.field == "read_repeats"
        assert client.deployments.checks("demo").kept == 0


@pytest.mark.parametrize("repeats", [101, 2**32 - 1])
def test_the_server_refuses_more_reads_than_it_makes_and_keeps_nothing(
    tmp_path: Path, repeats: int
) -> None:
    with serving(tmp_path / "state.sqlite3") as address, connect(address) as client:
        deploy(client)
        with pytest.raises(OutOfRange) as refused:
            client.deployments.check("demo", read_repeats=repeats)
        assert (refused.value.field, refused.value.value) == ("read_repeats", repeats)
        assert "1 .. 100" in refused.value.allowed
        assert client.deployments.checks("demo").kept == 0
        assert client.deployments.check("demo", read_repeats=100).read_repeats == 100


def test_the_servers_own_checks_read_as_often_as_configured(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.sqlite3") as store:
        _, found = _stored_deployment(store)
        golden = store.golden(found.board_serial, 0).targets_us
        reads: list[str] = []

        def read_cells(principal: str, admin: bool, tile: int, region: Region) -> ReadResult:
            reads.append(principal)
            return ReadResult(golden[region.slices])

        servicer = DeploymentServicer(
            lambda: TEST_BOARD, store, read_cells=read_cells, check_every_s=3600.0,
            check_read_repeats=3,
        )  # fmt: skip
        servicer.latest_checks()  # starts the round (on a thread: it may end before this)
        assert servicer.checks is not None
        deadline = time.monotonic() + 30
        while not servicer.checks.latest(TEST_BOARD.serial_number):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        servicer.stop_checks(30)
        assert reads == ["(server)"] * 3
        (checked,) = servicer.latest_checks().values()
        assert (checked.checked_by, checked.read_repeats) == ("(server)", 3)
    assert load_settings().metrics.deployment_check_read_repeats == 1
    configured = load_settings(metrics={"deployment_check_read_repeats": 16})
    assert configured.metrics.deployment_check_read_repeats == 16
    for bad in (0, 101):
        with pytest.raises(ConfigError) as refused:
            load_settings(metrics={"deployment_check_read_repeats": bad})
        assert "metrics.deployment_check_read_repeats" in str(refused.value)


def test_checks_kept_before_the_count_was_read_once(tmp_path: Path) -> None:
    """A store of schema 11 (checks without read_repeats / read_noise_us) opens with its
    checks as of one read each."""
    path = tmp_path / "state.sqlite3"
    with StateStore(tmp_path / "now.sqlite3") as now:
        _, found = _stored_deployment(now)
    db = store_of_schema(path, 11)
    db.execute("ATTACH DATABASE ? AS now", (str(tmp_path / "now.sqlite3"),))
    tables = db.execute(
        "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT IN "
        "('schema_version', 'jobs', 'sqlite_sequence', 'deployment_checks')"
    ).fetchall()
    for (table,) in tables:  # those of schema 11 have kept their columns since
        db.execute(f"INSERT INTO main.{table} SELECT * FROM now.{table}")
    db.execute(
        "INSERT INTO deployment_checks (board_serial, name, checked_by, checked_unix_s, "
        "correlation, rms_deviation_us, mean_deviation_us, time_ns, energy_nj, regions_json) "
        "VALUES (?, 'demo', 'bob', 1.5e9, 0.97, 0.8, -0.1, 40.0, 120.0, "
        "'[[0, 0, 0, 8, 4, 0.97, 0.8, -0.1]]')",
        (found.board_serial,),
    )
    db.commit()
    db.close()
    with StateStore(path) as store:
        (kept,), count = DeploymentRecords(store).checks(found.board_serial, "demo", 10)
    assert count == 1 and (kept.read_repeats, kept.read_noise_us) == (1, 0.0)
    assert kept.regions[0].read_noise_us == 0.0 and kept.regions[0].rms_deviation_us == 0.8
    assert (kept.correlation, kept.checked_by) == (0.97, "bob")


def test_sidra_model_check_repeats_reads_and_the_history_says_how_many(
    tmp_path: Path,
) -> None:
    with (
        open_board("emu://?preset=sidra-y1&seed=2") as board,
        serving(tmp_path / "state.sqlite3", board) as address,
        connect(address) as client,
    ):
        deploy(client)
        plain = run_sidra_env({}, "model", "check", "demo", "--server", address)
        assert plain.returncode == 0, plain.stderr
        assert "read noise" not in plain.stdout and "reads)" not in plain.stdout
        shown = run_sidra_env({}, "model", "check", "demo", "--server", address, "--repeats", "4")
        assert shown.returncode == 0, shown.stderr
        text = " ".join(shown.stdout.split())
        assert "(mean of 4 reads)" in text and "µS a read (4 reads)" in text
        assert "rms dev mean dev read noise" in text  # each region's too
        every = run_sidra_env({}, "model", "check", "--server", address, "--repeats", "2", "--json")
        (report,) = json.loads(every.stdout)
        assert report["read_repeats"] == 2 and report["read_noise_us"] > 0.5
        history = run_sidra_env({}, "model", "checks", "demo", "--server", address)
        lines = " ".join(history.stdout.split())
        assert "reads noise" in lines and "(means of 1 and 2 reads)" in lines
        listed = run_sidra_env({}, "model", "list", "--server", address)
        assert "(mean of 2 reads)" in listed.stdout
        for bad in ("0", "101"):
            refused = run_sidra_env(
                {}, "model", "check", "demo", "--server", address, "--repeats", bad
            )
            assert refused.returncode == 2 and "--repeats" in refused.stderr, refused.stderr
        assert client.deployments.checks("demo").kept == 3


def test_a_check_ends_before_its_next_read_once_nobody_waits_for_it(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.sqlite3") as store:
        records, found = _stored_deployment(store)
        golden = store.golden(found.board_serial, 0).targets_us
        made: list[Region] = []

        def read(tile: int, region: Region) -> ReadResult:
            made.append(region)
            return ReadResult(golden[region.slices])

        with pytest.raises(DeadlineExceeded, match=r"ended after 3 of its 50 reads"):
            DeploymentChecks(records).check(
                found, read, lambda tile: golden, 2.0e9, "bob", read_repeats=50,
                wanted=lambda: len(made) < 3,
            )  # fmt: skip
        assert len(made) == 3 and records.checks(found.board_serial, "demo", 10)[1] == 0


def test_a_cancelled_check_stops_reading_the_board_and_keeps_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that gives up on a check of 100 reads (a serial board would take
    minutes): the server stops reading once it hears of it (each read here takes 5 ms
    from the third on, a slow link, so that 98 more would take half a second), keeps no
    check, and its call ends; the board serves the next check."""
    caplog.set_level("INFO", logger=RPC_LOGGER)
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        reads, second, release = [], threading.Event(), threading.Event()
        run = board.run

        def run_holding_the_second_read(request: Any) -> Any:
            if isinstance(request, ReadConductanceRequest):
                reads.append(request)
                if len(reads) == 2:
                    second.set()
                    assert release.wait(30)
                elif len(reads) > 2:
                    time.sleep(0.005)
            return run(request)

        board.run = run_holding_the_second_read  # type: ignore[method-assign]
        with serving(tmp_path / "state.sqlite3", board) as address, connect(address) as client:
            deploy(client)
            method = client.deployments.channel.unary_unary(
                "/sidra.hil.v1.DeploymentService/CheckDeployment",
                request_serializer=pb.CheckDeploymentRequest.SerializeToString,
                response_deserializer=pb.DeploymentCheck.FromString,
            )
            call = method.future(pb.CheckDeploymentRequest(name="demo", read_repeats=100))
            assert second.wait(30)
            call.cancel()
            release.set()
            deadline = time.monotonic() + 30
            while not any("DeploymentService/CheckDeployment" in m for m in caplog.messages):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            stopped = len(reads)
            assert 2 <= stopped < 100
            assert client.deployments.checks("demo").kept == 0
            assert client.deployments.check("demo", read_repeats=3).read_repeats == 3
            assert len(reads) == stopped + 3


def test_a_client_waits_for_a_check_its_timeout_once_for_each_read(tmp_path: Path) -> None:
    """20 reads of 20 ms each (a slow link) take longer than the client's 0.2 s
    timeout of one call, not than 20 of them."""
    with open_board("emu://?preset=sidra-y1&seed=1") as board:
        run = board.run

        def run_slowly(request: Any) -> Any:
            if isinstance(request, ReadConductanceRequest):
                time.sleep(0.02)
            return run(request)

        board.run = run_slowly  # type: ignore[method-assign]
        with (
            serving(tmp_path / "state.sqlite3", board) as address,
            connect(address) as client,
            connect(address, timeout_s=0.2) as hurried,
        ):
            deploy(client)
            assert hurried.deployments.check("demo", read_repeats=20).read_repeats == 20


def test_a_drifted_deployment_is_named_as_such_and_one_written_over_is_not_never_checked(
    tmp_path: Path,
) -> None:
    """A year of drift left the correlation at 0.90 (held) while the outputs shrank: the
    check said nothing. It names the drift and what to do (exit 0: still held). And a
    deployment written over after its checks was listed as "never checked"."""
    from tests.cli_support import unwrapped

    with (
        open_board("emu://?preset=sidra-y1&seed=2") as board,
        serving(tmp_path / "state.sqlite3", board) as address,
        connect(address) as client,
    ):
        deploy(client)
        fresh = run_sidra_env({}, "model", "check", "demo", "--server", address, "--json")
        assert fresh.returncode == 0 and fresh.stderr == "", fresh.stderr
        assert json.loads(fresh.stdout)["drifted"] is False
        board.advance_clock(365 * 86_400.0)
        aged = run_sidra_env({}, "model", "check", "demo", "--server", address, "--json")
        assert aged.returncode == 0, aged.stderr
        report = json.loads(aged.stdout)
        assert report["held"] is True and report["drifted"] is True
        said = unwrapped(aged.stderr)
        assert "deployment'demo'reads" in said and "belowitstargetsonaverage" in said
        assert "--calibrate" in said
        every = run_sidra_env({}, "model", "check", "--server", address, "--json")
        assert json.loads(every.stdout)[0]["drifted"] is True and "drift" in every.stderr
        client.run(ProgramRequest(0, TARGETS[::-1].copy()))  # written over, unregistered
        listed = run_sidra_env({}, "model", "list", "--server", address)
        assert "cells read: not checked: written over" in listed.stdout, listed.stdout
        status = run_sidra_env({}, "status", address)
        assert "NOT INTACT (written over); not checked since" in " ".join(status.stdout.split())


def test_eval_of_a_deployment_the_board_no_longer_holds_says_why_not_held(
    tmp_path: Path,
) -> None:
    """Cells written around the server (or a board restarted without --restore): model
    eval --deployment was refused naming --held, an option the user never gave."""
    from tests.cli_support import unwrapped

    trained = run_sidra_env({}, "train", "spsa", "--dataset", "iris", "--steps", "5",
                            "--board", "emu://?preset=ideal&seed=1", "--out",
                            str(tmp_path / "run"))  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    model = tmp_path / "run"
    with (
        open_board("emu://?preset=ideal&seed=2") as board,
        serving(tmp_path / "state.sqlite3", board) as address,
    ):
        deployed = run_sidra_env({}, "model", "deploy", str(model), "--server", address,
                                 "--name", "iris", "--tile", "1")  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        board.program(1, np.full((board.info.rows, board.info.cols), 1.0, np.float32))
        refused = run_sidra_env({}, "model", "eval", "--deployment", "iris", "--server", address)
        assert refused.returncode == 2
        said = unwrapped(refused.stderr)
        assert "'--deployment'" in refused.stderr and "'--held'" not in refused.stderr
        assert "deployment'iris'isnotontheboardnow" in said and "--restore" in said


def test_serve_restore_checks_the_deployments_it_programmed_back(tmp_path: Path) -> None:
    """A check made while the board had lost its cells (NOT HELD) stayed each deployment's
    latest after ``sidra serve --restore`` had programmed them back: ``model list`` and
    ``sidra status`` said NOT HELD until someone checked again. The restore checks them."""
    from tests.server.test_server_config import _serving_process, read_until_serving

    env = {**os.environ, "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3")}
    args = ("--board", "emu://?preset=ideal&seed=3", "--listen", "127.0.0.1:0")
    with _serving_process(args, env) as proc:
        _, port = read_until_serving(proc)
        with connect(f"127.0.0.1:{port}") as client:
            deploy(client)
    with _serving_process(args, env) as proc:  # a fresh board: its cells are lost
        _, port = read_until_serving(proc)
        with connect(f"127.0.0.1:{port}") as client:
            assert client.deployments.check("demo").correlation < 0.5
    with _serving_process((*args, "--restore"), env) as proc:
        lines, port = read_until_serving(proc)
        said = "".join(lines)
        assert "deployment 'demo' checked after the restore: correlation 1.000" in said, said
        listed = run_sidra_env({}, "model", "list", "--server", f"127.0.0.1:{port}")
        with connect(f"127.0.0.1:{port}") as client:
            latest = client.deployments.get("demo").last_check
    assert listed.returncode == 0 and "NOT HELD" not in listed.stdout, listed.stdout
    assert latest is not None and latest.checked_by == "(server)"
    assert latest.correlation == pytest.approx(1.0)
