"""``sidra model``: a run's model file shown, evaluated on another board, run on new samples."""

from __future__ import annotations

import csv
import hashlib
import shlex
from pathlib import Path

import numpy as np
import pytest
from cli_support import run_sidra, sidra_json, unwrapped

from sidra.drivers import open_board
from sidra.training.model import TrainedModel

IDEAL = "emu://?preset=ideal&seed={}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """An SPSA run's record on an ideal board: its model file and its summary."""
    out = tmp_path_factory.mktemp("run") / "spsa"
    summary = sidra_json(
        "train", "spsa", "--steps", "60", "--board", IDEAL.format(1), "--out", str(out)
    )
    return out / "model.npz", summary


def test_eval_on_another_ideal_board_scores_what_the_run_measured(
    trained: tuple[Path, dict[str, object]],
) -> None:
    model, summary = trained
    report = sidra_json("model", "eval", str(model), "--board", IDEAL.format(5))
    assert report["accuracy"] == summary["test_accuracy"]
    assert report["trained_test_accuracy"] == summary["test_accuracy"]
    assert report["samples"] == 540 and report["split"] == "test"
    assert report["board"] == "SIDRA-IDEAL EMU-IDEAL-5 (ideal)"
    assert report["placement"] == {"layer0": [0]}
    [layer] = report["programming"]
    assert layer["cells"] == 65 * 10 and layer["unconverged_cells"] == 0
    assert sum(map(sum, report["confusion"])) == 540
    everything = sidra_json("model", "eval", str(model), "--board", IDEAL.format(5),
                            "--split", "all", "--tiles", "2")  # fmt: skip
    assert everything["samples"] == 1797 and everything["placement"] == {"layer0": [2]}


def test_eval_through_a_server(trained: tuple[Path, dict[str, object]]) -> None:
    from sidra.server import create_server

    model, summary = trained
    server, port = create_server(open_board(IDEAL.format(3)), "127.0.0.1:0")
    server.start()
    try:
        report = sidra_json("model", "eval", str(model), "--server", f"127.0.0.1:{port}",
                            "--read-repeats", "2")  # fmt: skip
    finally:
        server.stop(grace=None)
    assert report["accuracy"] == summary["test_accuracy"]
    assert report["read_repeats"] == 2


def test_show_lists_the_layers_and_where_the_model_was_trained(
    trained: tuple[Path, dict[str, object]],
) -> None:
    model, summary = trained
    meta = sidra_json("model", "show", str(model))
    assert meta["job"] == "spsa" and meta["dataset"]["name"] == "digits"
    assert meta["layers"][0]["shape"] == [65, 10]
    assert meta["trained"]["test_accuracy"] == summary["test_accuracy"]
    text = unwrapped(run_sidra("model", "show", str(model)).stdout)
    assert "64+1x10" in text and "labels:0,1,2,3,4,5,6,7,8,9" in text
    accuracy = 100 * float(str(summary["test_accuracy"]))
    assert f"trainedtest_accuracy:{accuracy:.2f}%" in text  # as the run's end said it
    # The record's folder, as sidra train prints it, names its model file.
    assert sidra_json("model", "show", str(model.parent)) == meta


def test_predict_classifies_raw_samples_as_the_model_does_in_process(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    from sklearn.datasets import load_digits

    model, _ = trained
    raw = load_digits().data[:50]
    np.save(tmp_path / "x.npy", raw)
    out = tmp_path / "y.npz"
    done = run_sidra("model", "predict", str(model), "--inputs", str(tmp_path / "x.npy"),
                     "--out", str(out), "--board", IDEAL.format(4))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # the data set's own samples: within range
    loaded = TrainedModel.load(model)
    with open_board(IDEAL.format(4)) as board:
        expected = loaded.deploy(board).classify(loaded.standardize(raw))
    with np.load(out) as held:
        assert held["classes"].tolist() == expected.tolist()
        assert held["labels"].tolist() == [str(k) for k in expected]
        assert held["logits"].shape == (50, 10)
    again = run_sidra("model", "predict", str(model), "--inputs", str(tmp_path / "x.npy"),
                      "--out", str(out))  # fmt: skip
    assert again.returncode == 2 and "whichexists;nameanewfile" in unwrapped(again.stderr)
    # Samples past the model's input range are clipped by the DACs: said, not hidden.
    far = raw[:3].copy()
    far[1, 5] = 1e30
    np.save(tmp_path / "far.npy", far)
    clipped = run_sidra("model", "predict", str(model), "--inputs", str(tmp_path / "far.npy"),
                        "--board", IDEAL.format(4))  # fmt: skip
    assert clipped.returncode == 0, clipped.stderr
    said = unwrapped(clipped.stderr)
    assert "warning:1sampleof3withfeaturesfarpastthemodel'sinputrange" in said
    assert "first:sample1,feature5=" in said


def test_predict_reads_and_writes_csv_as_a_spreadsheet_exports_and_reads_it(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """A header line, one sample per line in, a line per sample out in the same order:
    the same classes and scores as the .npz answer of the same samples."""
    import csv

    from sklearn.datasets import load_digits

    model, _ = trained
    raw = load_digits().data[:20]
    np.save(tmp_path / "x.npy", raw)
    lines = [",".join(f"pixel{i}" for i in range(64))]
    lines += [",".join(f"{v:g}" for v in row) for row in raw]
    (tmp_path / "x.csv").write_text("\ufeff" + "\r\n".join(lines) + "\r\n\r\n")
    # As a spreadsheet in a locale with a decimal comma writes it: ';' between fields.
    semicolons = [";".join(f"{v:.1f}".replace(".", ",") for v in row) for row in raw]
    (tmp_path / "x_semicolon.csv").write_text("\n".join(semicolons))
    for inputs, out in (("x.npy", "y.npz"), ("x.csv", "y.csv"), ("x_semicolon.csv", "z.csv")):
        done = run_sidra("model", "predict", str(model), "--inputs", str(tmp_path / inputs),
                         "--out", str(tmp_path / out), "--board", IDEAL.format(4))  # fmt: skip
        assert done.returncode == 0, done.stderr
    with (tmp_path / "y.csv").open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    # Without --out, the same lines on standard output, the count on stderr.
    printed = run_sidra("model", "predict", str(model), "--inputs", str(tmp_path / "x.npy"),
                        "--board", IDEAL.format(4))  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (tmp_path / "y.csv").read_text()
    assert printed.stderr.strip() == "20 samples classified"
    assert header[:2] == ["label", "class"] and header[2:] == [f"logits_{k}" for k in range(10)]
    assert (tmp_path / "z.csv").read_text() == (tmp_path / "y.csv").read_text()
    with np.load(tmp_path / "y.npz") as held:
        assert [int(r[1]) for r in rows] == held["classes"].tolist()
        assert [r[0] for r in rows] == held["labels"].tolist()
        # Each score in its shortest text that reads back as the same float32.
        np.testing.assert_array_equal(np.array([r[2:] for r in rows], np.float32), held["logits"])
        assert max(len(v.lstrip("-").replace(".", "").strip("0")) for r in rows for v in r[2:]) <= 9

    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    cases = {
        ("--inputs", "bad.csv", "--out", "p.csv"): "bad.csvline3,column2(b):got'x',expectedanumber",
        ("--inputs", "ragged.csv", "--out", "p.csv"): "line2:got2values,expected3",
        ("--inputs", "x.csv", "--out", "p.txt"): "'--out':got",
    }
    for (a, inputs, b, out), message in cases.items():
        refused = run_sidra("model", "predict", str(model), a, str(tmp_path / inputs), b,
                            str(tmp_path / out), "--board", IDEAL.format(4))  # fmt: skip
        assert refused.returncode == 2 and message in unwrapped(refused.stderr), refused.stderr
        assert not (tmp_path / out).exists()
    assert "expectedafileending.npzor.csv" in unwrapped(refused.stderr)


def test_bad_files_and_samples_are_refused_naming_them(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    model, _ = trained
    np.save(tmp_path / "narrow.npy", np.zeros((3, 63)))
    narrow = run_sidra("model", "predict", str(model), "--inputs", str(tmp_path / "narrow.npy"),
                       "--out", str(tmp_path / "y.npz"))  # fmt: skip
    assert narrow.returncode == 2
    assert "inputs.shape:got[3,63],expected[samples>=1,64]" in unwrapped(narrow.stderr)
    assert not (tmp_path / "y.npz").exists()
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    junk = run_sidra("model", "eval", str(tmp_path / "junk.npz"))
    assert junk.returncode == 2 and "notamodelfile" in unwrapped(junk.stderr)
    folder = run_sidra("model", "eval", str(tmp_path))
    assert folder.returncode == 2
    assert unwrapped(f"{tmp_path} is a folder without a model file (model.npz)") in unwrapped(
        folder.stderr
    )
    wrong = run_sidra("model", "eval", str(model), "--dataset", "iris")
    assert wrong.returncode == 2
    assert "datasetiris:got4features,themodeltakes64" in unwrapped(wrong.stderr)


def test_deployed_to_a_server_then_run_as_held_after_a_year(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """``deploy`` to a served board, then ``eval --held`` with the same tiles runs what the
    tiles hold (no write); a year later it has drifted, and ``--calibrate`` says by how
    much; tiles that hold another thing are refused naming --held."""
    from sidra.client import connect
    from sidra.server import create_server

    model, summary = trained
    server, port = create_server(open_board("emu://?preset=sidra-y1&seed=3"), "127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{port}"
    try:
        deployed = sidra_json("model", "deploy", str(model), "--server", address, "--tile", "3")
        assert deployed["placement"] == {"layer0": [3]}
        with connect(address) as board:
            writes = board.stats().cell_writes
        log = tmp_path / "drift.csv"
        held = sidra_json("model", "eval", str(model), "--server", address, "--held",
                          "--tile", "3", "--log", str(log))  # fmt: skip
        elsewhere = run_sidra("model", "eval", str(model), "--server", address, "--held")
        with connect(address) as board:
            assert board.stats().cell_writes == writes
            board.advance_clock(365 * 86_400.0)
        aged = sidra_json("model", "eval", str(model), "--server", address, "--held",
                          "--tile", "3", "--calibrate", "--log", str(log))  # fmt: skip
        with connect(address) as board:
            assert board.stats().cell_writes == writes
    finally:
        server.stop(grace=None)
    assert held["programming"] == [] and held["held"][0]["correlation"] > 0.9
    assert held["held"][0]["read_time_ns"] > 0 and held["held"][0]["read_energy_nj"] > 0
    assert held["accuracy"] > 0.3
    assert elsewhere.returncode == 2
    assert unwrapped("'--held': layer0 on tile 0: what they hold correlates") in unwrapped(
        elsewhere.stderr
    )
    assert aged["held"][0]["mean_deviation_us"] < held["held"][0]["mean_deviation_us"]
    assert aged["calibration_gains"]["3"] > 1.0
    with log.open(newline="") as kept:
        rows = list(csv.DictReader(kept))
    assert [float(row["accuracy"]) for row in rows] == pytest.approx(
        [held["accuracy"], aged["accuracy"]], abs=1e-6
    )
    assert [(row["held"], row["calibrated"]) for row in rows] == [("1", "0"), ("1", "1")]
    assert float(rows[1]["mean_deviation_us"]) < float(rows[0]["mean_deviation_us"])
    assert rows[0]["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    assert rows[0]["board"] == "SIDRA-Y1 EMU-Y1-3 (sidra-y1)"


def test_deploy_prints_the_held_command_whole_and_it_runs_as_printed(
    trained: tuple[Path, dict[str, object]],
) -> None:
    """The hint after an unnamed deploy ended "(and the same board)": the server it was
    deployed through, which the command needs, was left for the reader to add."""
    from sidra.server import create_server

    model, _ = trained
    server, port = create_server(open_board("emu://?preset=ideal&seed=2"), "127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{port}"
    try:
        deployed = run_sidra("model", "deploy", str(model), "--server", address, "--tile", "2",
                             columns=400)  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        [hint] = [line for line in deployed.stdout.splitlines() if "run it as held:" in line]
        command = shlex.split(hint.split("run it as held:", 1)[1])
        assert command[:2] == ["sidra", "model"] and command[-2:] == ["--server", address]
        ran = sidra_json(*command[1:])
    finally:
        server.stop(grace=None)
    assert ran["programming"] == [] and ran["held"][0]["tiles"] == [2]


def test_a_log_of_another_layout_is_refused_before_the_board_is_touched(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    model, _ = trained
    other = tmp_path / "notes.csv"
    other.write_text("date,note\n2026-12-01,board 3 swapped\n")
    refused = run_sidra("model", "eval", str(model), "--log", str(other))
    assert refused.returncode == 2
    assert "whosefirstlineis'date,note'" in unwrapped(refused.stderr)
    assert other.read_text() == "date,note\n2026-12-01,board 3 swapped\n"


def test_deploy_refuses_an_in_process_emulator(trained: tuple[Path, dict[str, object]]) -> None:
    model, _ = trained
    refused = run_sidra("model", "deploy", str(model))
    assert refused.returncode == 2
    assert "anin-processemulatorforgetswhatitholds" in unwrapped(refused.stderr)
    assert "SIDRA_SERVER" not in refused.stderr
    # The lab's server named by SIDRA_SERVER, which deploy does not read: its option said.
    lab = {"SIDRA_SERVER": "lab-pc:50051"}
    for args in ((), ("--name", "digits")):
        named = run_sidra("model", "deploy", str(model), *args, env=lab)
        assert named.returncode == 2
        assert "give--server(SIDRA_SERVERisnotreadhere:--serverlab-pc:50051)" in unwrapped(
            named.stderr
        )


def test_deployed_by_name_then_run_pulled_and_forgotten_by_anyone_using_the_server(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """``deploy --name`` keeps the model on the server; ``eval``/``predict --deployment``
    run it as its tiles hold it without the file; once another Program writes over it
    the deployment is refused, saying who and when; ``pull`` gives the file back and
    ``undeploy`` forgets it."""
    from sidra.client import connect
    from tests.jobs.jobs_support import serving

    model, summary = trained
    with serving(tmp_path / "state.sqlite3", "emu://?preset=sidra-y1&seed=3") as address:
        taken = run_sidra("model", "deploy", str(model), "--name", "digits")  # no --server
        kept = sidra_json("model", "deploy", str(model), "--server", address, "--tile", "1",
                          "--name", "digits")  # fmt: skip
        with connect(address) as board:
            writes = board.stats().cell_writes
        again = run_sidra("model", "deploy", str(model), "--server", address, "--name", "digits")
        listed = sidra_json("model", "list", "--server", address)
        with connect(address) as board:
            assert board.stats().cell_writes == writes  # refused before anything was written
        by_name = sidra_json("model", "eval", "--deployment", "digits", "--server", address)
        with_file = sidra_json("model", "eval", str(model), "--deployment", "digits",
                               "--server", address)  # fmt: skip
        with_tiles = run_sidra("model", "eval", "--deployment", "digits", "--server", address,
                               "--tile", "1")  # fmt: skip
        samples = tmp_path / "raw.npy"
        np.save(samples, np.zeros((3, 64)))
        predicted = run_sidra("model", "predict", "--deployment", "digits", "--server",
                              address, "--inputs", str(samples), "--out",
                              str(tmp_path / "p.npz"))  # fmt: skip
        with connect(address) as board:
            assert board.stats().cell_writes == writes  # run as held: nothing written
        sidra_json("model", "deploy", str(model), "--server", address, "--tile", "1")  # same
        intact = sidra_json("model", "list", "--server", address)[0]["intact"]
        # A model run on a deployment's tile writes over it as asked, and says so now
        # (it surfaced only at the deployment's next use).
        over = run_sidra("model", "eval", str(model), "--server", address, "--tile", "1")
        assert over.returncode == 0, over.stderr
        assert unwrapped("note: tile 1 holds a deployed model") in unwrapped(over.stderr)
        other = tmp_path / "other.npz"
        loaded = TrainedModel.load(model)
        loaded.layers[0].weights[0, 0] = -loaded.layers[0].weights[0, 0] or 0.5
        loaded.save(other)
        sidra_json("model", "deploy", str(other), "--server", address, "--tile", "1")
        overwritten = run_sidra("model", "eval", "--deployment", "digits", "--server", address)
        shown = run_sidra("model", "list", "--server", address).stdout
        [listed_after] = sidra_json("model", "list", "--server", address)
        pulled = tmp_path / "pulled.npz"
        run_sidra("model", "pull", "digits", "--server", address, "--out", str(pulled))
        forgotten = run_sidra("model", "undeploy", "digits", "--server", address)
        after = sidra_json("model", "list", "--server", address)
    assert taken.returncode == 2
    assert "'--name':adeploymentiskeptbyaserver:give--server" in unwrapped(taken.stderr)
    assert kept["deployment"]["name"] == "digits" and kept["deployment"]["intact"]
    assert kept["deployment"]["regions"][0]["tile"] == 1
    assert again.returncode == 1  # refused for who was first, not for the command line
    assert "AlreadyExists:ALREADY_EXISTS:name:deployment'digits'exists" in unwrapped(again.stderr)
    [entry] = listed
    assert entry["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert entry["description"].startswith(f"spsa on digits, {100 * summary['test_accuracy']:.2f}")
    assert by_name["model"] == "deployment digits" and by_name["placement"] == {"layer0": [1]}
    assert by_name["programming"] == [] and by_name["held"][0]["correlation"] > 0.9
    assert with_file["held"][0]["tiles"] == [1]
    assert with_tiles.returncode == 2 and "'--tiles'" in with_tiles.stderr
    assert predicted.returncode == 0, predicted.stderr
    assert intact  # the same targets programmed again
    assert overwritten.returncode == 1
    assert "tile1rows0..64cols0..9programmedbylocalat" in unwrapped(overwritten.stderr)
    assert shown.startswith("digits: by local, ") and "\n  intact: no: tile 1 rewritten" in shown
    assert "cells read: not checked: written over" in shown
    assert not listed_after["intact"] and listed_after["regions"][0]["rewritten_by"] == "local"
    assert pulled.read_bytes() == model.read_bytes()
    assert forgotten.returncode == 0 and after == []


def test_eval_plots_the_confusion_matrix_into_a_new_file(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    model, _ = trained
    figure = tmp_path / "confusion.png"
    sidra_json("model", "eval", str(model), "--board", IDEAL.format(5), "--plot", str(figure))
    assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    written = figure.stat().st_mtime_ns
    again = run_sidra("model", "eval", str(model), "--plot", str(figure))
    assert again.returncode == 2 and "'--plot'" in again.stderr
    assert figure.stat().st_mtime_ns == written  # refused before anything ran


def test_eval_on_several_boards_reports_each_and_the_spread(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    model, summary = trained
    y1 = "emu://?preset=sidra-y1&seed={}"
    log = tmp_path / "boards.csv"
    boards = [y1.format(seed) for seed in (3, 4, 5)] + [IDEAL.format(6)]
    report = sidra_json("model", "eval", str(model), *(a for b in boards for a in ("--board", b)),
                        "--log", str(log))  # fmt: skip
    alone = sidra_json("model", "eval", str(model), "--board", y1.format(4))
    accuracies = [r["accuracy"] for r in report["boards"]]
    assert [r["board"] for r in report["boards"]] == [
        "SIDRA-Y1 EMU-Y1-3 (sidra-y1)", "SIDRA-Y1 EMU-Y1-4 (sidra-y1)",
        "SIDRA-Y1 EMU-Y1-5 (sidra-y1)", "SIDRA-IDEAL EMU-IDEAL-6 (ideal)",
    ]  # fmt: skip
    assert accuracies[1] == alone["accuracy"]  # each board as if it were alone
    assert accuracies[3] == summary["test_accuracy"]  # the ideal board scores the run's figure
    spread = report["accuracy"]
    assert spread["boards"] == 4 and spread["mean"] == pytest.approx(np.mean(accuracies))
    assert spread["std"] == pytest.approx(np.std(accuracies, ddof=1)) and spread["std"] > 0
    assert (spread["min"], spread["max"]) == (min(accuracies), max(accuracies))
    with log.open(newline="") as kept:
        assert [row["board"] for row in csv.DictReader(kept)] == [
            r["board"] for r in report["boards"]
        ]
    text = unwrapped(run_sidra("model", "eval", str(model), "--board", IDEAL.format(1),
                               "--board", IDEAL.format(2)).stdout)  # fmt: skip
    assert f"accuracy{100 * summary['test_accuracy']:.2f}±0.00%" in text
    for refused, hint in (
        (("--server", "127.0.0.1:1"), "'--board'"),
        (("--plot", str(tmp_path / "cm.png")), "'--plot'"),
    ):
        result = run_sidra("model", "eval", str(model), "--board", IDEAL.format(1), "--board",
                           IDEAL.format(2), *refused)  # fmt: skip
        assert result.returncode == 2 and hint in result.stderr


def test_deploy_protect_is_kept_with_the_name(
    trained: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    from tests.jobs.jobs_support import serving

    model, _ = trained
    with serving(tmp_path / "state.sqlite3") as address:
        nameless = run_sidra("model", "deploy", str(model), "--server", address, "--protect")
        sidra_json("model", "deploy", str(model), "--server", address, "--tile", "2",
                   "--name", "demo", "--protect")  # fmt: skip
        [listed] = sidra_json("model", "list", "--server", address)
        text = run_sidra("model", "list", "--server", address).stdout
    assert nameless.returncode == 2 and "--protectisforadeploymentkeptbyname" in unwrapped(
        nameless.stderr
    )
    assert listed["protected"] and listed["intact"]
    assert "\n  intact: yes, protected\n" in text


def test_eval_takes_the_file_its_record_names_even_under_a_bundled_sets_name(
    tmp_path: Path,
) -> None:
    """A model trained on iris.csv (iris's samples, its labels as names) was evaluated on
    the bundled iris, which bears its name: refused for labels 0, 1, 2. The file its
    record names goes first."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    lines = [",".join([*(repr(float(v)) for v in row), str(iris.target_names[t])])
             for row, t in zip(iris.data, iris.target, strict=True)]  # fmt: skip
    data = tmp_path / "iris.csv"
    data.write_text("\n".join(lines) + "\n")
    run, board = str(tmp_path / "run"), IDEAL.format(0)
    sidra_json("train", "spsa", "--dataset", str(data), "--steps", "3", "--eval-every", "3",
               "--out", run, "--board", board)  # fmt: skip
    by_record = sidra_json("model", "eval", run, "--board", board)
    assert by_record["samples"] == 45


def test_eval_takes_the_data_set_file_its_record_names_and_refuses_it_edited(
    tmp_path: Path,
) -> None:
    """A model trained on a file is evaluated on that file by default (its record's
    settings.json names it and its SHA-256); the file edited since is refused, unless
    named with --dataset; gone, the refusal names it."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    lines = [",".join([*(repr(float(v)) for v in row), str(t)])
             for row, t in zip(iris.data, iris.target, strict=True)]  # fmt: skip
    data = tmp_path / "lab.csv"
    data.write_text("\n".join(lines) + "\n")
    run, board = str(tmp_path / "run"), IDEAL.format(0)
    sidra_json("train", "spsa", "--dataset", str(data), "--steps", "3", "--eval-every", "3",
               "--out", run, "--board", board)  # fmt: skip
    by_record = sidra_json("model", "eval", run, "--board", board)
    assert by_record["samples"] == 45  # iris's test split

    data.write_text(data.read_text().replace("5.1,3.5", "5.2,3.5", 1))
    edited = run_sidra("model", "eval", run, "--board", board)
    assert edited.returncode == 2
    assert unwrapped(f"{data}, the data set file its record names, has changed since the run") in (
        unwrapped(edited.stderr)
    )
    named = sidra_json("model", "eval", run, "--board", board, "--dataset", str(data))
    assert named["samples"] == 45

    data.unlink()
    gone = run_sidra("model", "eval", run, "--board", board)
    assert gone.returncode == 2
    assert unwrapped(f"the model was trained on lab ({data}, its record says), not a bundled") in (
        unwrapped(gone.stderr)
    )
