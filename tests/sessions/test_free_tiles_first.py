"""A run given no tiles takes the tiles nobody else uses first: on a board shared by
several people, the second run goes to a free tile instead of being refused at tile 0,
which the first holds (``Board.tile_use``, ``TileUse.order``). Real servers on loopback,
the training commands as a user runs them, a job inside the server."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_support import SIDRA, served

from sidra.client import LeaseHeld, connect
from sidra.drivers import BoardInfo, Region, TileUse, open_board
from sidra.drivers.requests import ProgramRequest
from sidra.training import SPSAOptions, train_softmax_spsa
from sidra.training.datasets import load_dataset
from sidra.training.placement import (
    CLAIM_TRIES,
    LayerShape,
    PlacementError,
    claimed,
    place,
    resumed_order,
    tile_order,
)
from tests.jobs.jobs_support import serving

INFO = BoardInfo("m", "s", "f", 4, 256, 256, 1.0, 40.0, 0, 0, 0.2)
LAYER = Region(0, 0, 65, 10)


def test_free_tiles_come_first_then_deployed_ones_then_leased_ones() -> None:
    assert TileUse().order(4) == (0, 1, 2, 3)
    use = TileUse(leased=frozenset({0, 3}), deployed=frozenset({1, 3}))
    assert use.order(5) == (2, 4, 1, 0, 3)  # 3, leased and deployed, is leased first


def test_placement_takes_any_tile_in_the_order_given_and_named_tiles_as_named() -> None:
    layers = [LayerShape("features", 300, 256), LayerShape("head", 256, 10, digital_bias=True)]
    placed = place(INFO, layers, order=(2, 3, 0, 1))
    assert placed.summary() == {"features": [2, 3], "head": [0]}
    # Tiles named by the run are its choice: the order only ranks "any tile".
    assert place(INFO, layers, allowed=(1, 0, 3), order=(2, 3, 0, 1)).summary() == {
        "features": [1, 0],
        "head": [3],
    }
    with pytest.raises(PlacementError, match=r"order: got \[2, 2, 0, 1\], expected each of"):
        place(INFO, layers, order=(2, 2, 0, 1))


def test_a_board_this_process_alone_uses_is_taken_from_tile_0() -> None:
    with open_board("emu://?preset=ideal&seed=1") as board:
        assert board.tile_use() == TileUse() and tile_order(board) == (0, 1, 2, 3)


def test_a_served_board_says_which_tiles_others_lease_and_deployments_hold(
    tmp_path: Path,
) -> None:
    model = io.BytesIO()
    np.savez(model, layer0=np.zeros((65, 10)))
    with (
        serving(tmp_path / "state.sqlite3") as address,
        connect(address) as other,
        other.session(label="overnight", ttl_s=60) as held,
        held.lease([0]),
        connect(address) as run,
    ):
        run.run(ProgramRequest(2, np.full(LAYER.shape, 20.0, np.float32)))
        run.deployments.add("demo", model.getvalue(), [(2, LAYER)])
        assert run.tile_use() == TileUse(leased=frozenset({0}), deployed=frozenset({2}))
        assert tile_order(run) == (1, 3, 2, 0)
        with run.session(label="mine", lease_as_used=True) as mine:
            mine.lease([1])
            # Its own session's lease is its own: tile 1 stays first.
            assert tile_order(run) == (1, 3, 2, 0)
        # The deployment written over is no longer intact: its tile is free again.
        run.run(ProgramRequest(2, np.full(LAYER.shape, 30.0, np.float32)))
        assert tile_order(run) == (1, 2, 3, 0)


def test_a_second_training_run_goes_to_a_free_tile(tmp_path: Path) -> None:
    with (
        served("emu://?preset=ideal&seed=4") as holder,
        holder.session(label="first run", ttl_s=60) as held,
        held.lease([0, 1]),
    ):
        done = subprocess.run(
            [*SIDRA, "train", "spsa", "--server", holder.address, "--dataset", "iris",
             "--steps", "3", "--out", str(tmp_path / "run"), "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["placement"] == {"layer": [2]}
        # A tile named on the line is taken as named: refused, naming who holds it.
        named = subprocess.run(
            [*SIDRA, "train", "spsa", "--server", holder.address, "--dataset", "iris",
             "--steps", "3", "--tile", "0", "--out", str(tmp_path / "named")],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert named.returncode == 1
        assert "held by local's session 'first run'" in " ".join(named.stderr.split())


def test_a_tile_another_client_leases_after_the_run_asked_is_placed_around(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which tiles are in use is asked before the run leases any: another client may
    take one in between. The run then asks again and places its layers anew, up to
    CLAIM_TRIES times, and names the holder when no placement is left to try."""
    layer = [LayerShape("layer", 64, 10)]
    with (
        serving(tmp_path / "state.sqlite3") as address,
        connect(address) as other,
        other.session(label="racer", ttl_s=60) as racer,
        connect(address) as run,
        run.session(label="mine", lease_as_used=True) as mine,
    ):
        asked = run.tile_use
        calls: list[TileUse] = []
        races = [1]  # how many more answers the racer beats

        def then_taken() -> TileUse:
            """The real answer; then the racer leases the first tile it calls free."""
            use = asked()
            calls.append(use)
            if races[0] > 0:
                races[0] -= 1
                racer.lease([use.order(run.info.tile_count)[0]])
            return use

        monkeypatch.setattr(run, "tile_use", then_taken)
        placement = claimed(run, lambda order: place(run.info, layer, order=order))
        assert placement.used == (1,) and len(calls) == 2
        assert mine.state.tiles == (1,)  # leased before any call to it
        assert [lease.tile for lease in run.leases()] == [0, 1]

        # Named tiles are placed the same when asked again: the holder is named then.
        calls.clear()
        with pytest.raises(LeaseHeld, match="'racer'"):
            claimed(run, lambda order: place(run.info, layer, allowed=(0,), order=order))
        assert len(calls) == 2
        # A racer that beats every answer: the run gives up after CLAIM_TRIES, naming it.
        mine.release([1])
        calls.clear()
        races[0] = CLAIM_TRIES
        with pytest.raises(LeaseHeld, match="'racer'"):
            claimed(run, lambda order: place(run.info, layer, order=order))
        assert len(calls) == CLAIM_TRIES and mine.state.tiles == ()


def test_a_job_given_no_tiles_claims_free_ones(tmp_path: Path) -> None:
    with (
        serving(tmp_path / "state.sqlite3") as address,
        connect(address) as client,
        client.session(label="bench work", ttl_s=60) as held,
        held.lease([0]),
    ):
        job = client.jobs.submit("spsa", {"steps": 3, "eval_every": 3}, dataset="iris")
        assert job.tiles == (1,)
        ended = client.jobs.wait(job.job_id)
        assert ended.state == "succeeded", ended.message
        assert ended.summary is not None and ended.summary["placement"] == {"layer": [1]}
        # Named tiles are still the job's to name: tile 0 is held, so it is refused.
        with pytest.raises(LeaseHeld, match="'bench work'"):
            client.jobs.submit("spsa", {"steps": 3, "tiles": [0]}, dataset="iris")


def test_a_run_going_on_from_a_checkpoint_takes_the_tiles_it_ran_on(tmp_path: Path) -> None:
    """Its weights were trained on those devices: going on elsewhere would lose that, so
    it goes back to them even when lower tiles are free by then."""
    assert resumed_order({"placement": {"features": [2, 3], "head": [0]}}, 4) == (2, 3, 0, 1)
    assert resumed_order({"placement": {"layer": [7]}}, 4) == ()  # another board's
    assert resumed_order({}, 4) == () and resumed_order(None, 4) == ()

    data = load_dataset("iris")
    options = SPSAOptions(steps=6, eval_every=3)
    checkpoint = tmp_path / "checkpoint.json"
    with served("emu://?preset=ideal&seed=4") as holder, connect(holder.address) as run:
        with holder.session(label="first run", ttl_s=60) as held, held.lease([0, 1]):
            first = train_softmax_spsa(
                run, data, options, checkpoint=checkpoint, checkpoint_every=3
            )
        assert first.settings["placement"] == {"layer": [2]}
        assert holder.leases() == []  # every tile free again
        again = train_softmax_spsa(run, data, options, checkpoint=checkpoint, resume=True)
        assert again.settings["placement"] == {"layer": [2]}


@pytest.fixture(scope="module")
def iris_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The record of a short SPSA run on iris (a one-layer model), made once."""
    out = tmp_path_factory.mktemp("spsa") / "run"
    trained = subprocess.run(
        [*SIDRA, "train", "spsa", "--dataset", "iris", "--steps", "20",
         "--board", "emu://?preset=ideal&seed=1", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    return out


def test_a_model_programmed_over_a_server_takes_free_tiles_and_held_ones_are_named(
    iris_record: Path,
) -> None:
    out = iris_record
    with (
        served("emu://?preset=ideal&seed=4") as holder,
        holder.session(label="overnight", ttl_s=60) as held,
        held.lease([0]),
    ):

        def sidra_model(*args: str) -> dict[str, object]:
            done = subprocess.run(
                [*SIDRA, "model", *args, str(out), "--server", holder.address, "--json"],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            report: dict[str, object] = json.loads(done.stdout)
            return report

        assert sidra_model("deploy")["placement"] == {"layer0": [1]}
        assert sidra_model("eval")["placement"] == {"layer0": [1]}
        # Found held where deploy put it: named, as deploy's report says to.
        found = sidra_model("eval", "--held", "--tile", "1")
        assert found["placement"] == {"layer0": [1]} and found["held"]


def test_a_run_or_a_model_given_no_tiles_does_not_write_over_a_deployment(
    iris_record: Path, tmp_path: Path
) -> None:
    """Free tiles too few, a run or a model given no tiles took tiles holding a deployed
    model, a colleague's, which was no longer intact without a word. It is refused, naming
    the tiles; named with --tile they are written over as asked, and --replace takes the
    tiles of the deployment it replaces."""
    from tests.cli_support import unwrapped

    out = iris_record
    model = io.BytesIO()
    np.savez(model, layer0=np.zeros((65, 10)))
    with (
        served("emu://?preset=ideal&seed=4") as holder,
        holder.session(label="overnight", ttl_s=60) as held,
        held.lease([0, 1]),
    ):
        for tile, name in ((2, "alice"), (3, "bob")):
            holder.run(ProgramRequest(tile, np.full(LAYER.shape, 20.0, np.float32)))
            holder.deployments.add(name, model.getvalue(), [(tile, LAYER)])

        def sidra(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*SIDRA, *args, "--server", holder.address], capture_output=True, text=True,
                timeout=120, check=False,
            )  # fmt: skip

        for command in (
            ("model", "eval", str(out)),
            ("model", "deploy", str(out)),
            ("train", "spsa", "--dataset", "iris", "--steps", "3", "--out", str(tmp_path / "r")),
        ):
            refused = sidra(*command)
            assert refused.returncode == 2, (command, refused.stderr)
            said = unwrapped(refused.stderr)
            assert "tile2holdsadeployedmodel" in said and "with--tile" in said, said
        assert {d.name: d.intact for d in holder.deployments.list()} == {
            "alice": True, "bob": True,
        }  # fmt: skip
        replaced = sidra("model", "deploy", str(out), "--name", "alice", "--replace", "--json")
        assert replaced.returncode == 0, replaced.stderr
        assert json.loads(replaced.stdout)["placement"] == {"layer0": [2]}
        named = sidra("model", "eval", str(out), "--tile", "3", "--json")
        assert named.returncode == 0, named.stderr
        assert json.loads(named.stdout)["placement"] == {"layer0": [3]}
        assert {d.name: d.intact for d in holder.deployments.list()} == {
            "alice": True, "bob": False,
        }  # fmt: skip


def test_a_deploy_leases_every_tile_before_it_writes_one(tmp_path: Path) -> None:
    """A two-layer model deployed unnamed onto tiles 0 and 1, tile 1 held by another
    session: tile 0 was programmed, then the deploy failed on tile 1, leaving a model
    half on the board. Every tile is leased first: refused naming the holder, tile 0
    untouched."""
    out = tmp_path / "mlp"
    trained = subprocess.run(
        [*SIDRA, "train", "mlp", "--dataset", "iris", "--epochs", "1", "--hidden", "8",
         "--board", "emu://?preset=ideal&seed=1", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    with (
        served("emu://?preset=ideal&seed=4") as holder,
        holder.session(label="overnight", ttl_s=60) as held,
        held.lease([1]),
    ):
        before = holder.read_conductance(0).conductances
        refused = subprocess.run(
            [*SIDRA, "model", "deploy", str(out), "--server", holder.address, "--tile", "0",
             "--tile", "1"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert "held by local's session 'overnight'" in " ".join(refused.stderr.split())
        assert np.array_equal(holder.read_conductance(0).conductances, before)
