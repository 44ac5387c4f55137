"""``sidra board read|program|mvm``: a board's cells from the shell, as a bench engineer
drives a board under test. The commands run as a user runs them (a child process)
against a real server on loopback (``grpc://``), whose board keeps its cells between
commands; the arrays they write are checked against the board's own answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sidra.client import RemoteBoard, connect
from sidra.drivers import Region
from tests.cli_support import run_sidra, sidra_json, unwrapped
from tests.jobs.jobs_support import serving


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, RemoteBoard]]:
    """A noiseless board behind a server: its ``grpc://`` URL, and a client of it."""
    with serving(tmp_path / "s.sqlite3") as address, connect(address) as client:
        yield f"grpc://{address}", client


def test_a_pattern_programmed_from_a_file_reads_back_and_drives_the_currents_it_should(
    served: tuple[str, RemoteBoard], tmp_path: Path
) -> None:
    url, board = served
    targets = np.random.default_rng(0).uniform(5.0, 35.0, (4, 6)).astype(np.float32)
    np.save(tmp_path / "t.npy", targets)
    report = sidra_json("board", "program", url, "--tile", "2", "--targets",
                        str(tmp_path / "t.npy"), "--region", "3,5")  # fmt: skip
    assert report["region"] == {"row_offset": 3, "col_offset": 5, "rows": 4, "cols": 6}
    assert report["cells_written"] == 24 and report["unconverged_cells"] == 0
    assert report["time_ns"] > 0 and report["energy_nj"] > 0

    read = sidra_json("board", "read", url, "--tile", "2", "--region", "3,5,4,6",
                      "--out", str(tmp_path / "g.npy"))  # fmt: skip
    g = np.load(tmp_path / "g.npy")
    np.testing.assert_array_equal(g, board.read_conductance(2, Region(3, 5, 4, 6)).conductances)
    np.testing.assert_allclose(g, targets, atol=report["max_error_us"] + 1e-4)
    assert read["cells"] == 24 and read["min_us"] == pytest.approx(float(g.min()))
    assert read["near_g_min_cells"] == 0 and read["out"] == str(tmp_path / "g.npy")

    # Rows driven (MVM): one input per row of the region; columns (TransposeMVM): per column.
    for transpose, inputs in ((False, (2, 4)), (True, (2, 6))):
        volts = np.linspace(-0.1, 0.1, inputs[0] * inputs[1], dtype=np.float32).reshape(inputs)
        np.save(tmp_path / "v.npy", volts)
        out = tmp_path / f"i-{transpose}.npy"
        done = sidra_json("board", "mvm", url, "--tile", "2", "--region", "3,5,4,6", "--inputs",
                          str(tmp_path / "v.npy"), "--out", str(out),
                          *(["--transpose"] if transpose else []))  # fmt: skip
        expected = volts @ (g.T if transpose else g)  # µA = V · µS
        np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-4)
        assert done["operation"] == ("TransposeMVM" if transpose else "MVM")
        assert (done["batch"], done["outputs"]) == (2, 4 if transpose else 6)
        (tmp_path / "v.npy").unlink()


def test_one_value_fills_a_region_and_the_text_report_says_what_write_verify_reached(
    served: tuple[str, RemoteBoard],
) -> None:
    url, board = served
    done = run_sidra("board", "program", url, "--fill-us", "25", "--region", "250,250")
    assert done.returncode == 0, done.stderr
    text = unwrapped(done.stdout)
    assert "tile0rows250..255cols250..255programmed" in text
    assert "36cellswritten" in text and "0unconverged" in text
    held = board.read_conductance(0, Region(250, 250, 6, 6)).conductances
    np.testing.assert_allclose(held, 25.0, atol=0.5)
    # Through a pipe, no COLUMNS: the report's lines whole, not folded at 80 columns.
    piped = run_sidra("board", "program", url, "--fill-us", "20", "--region", "0,0,2,2",
                      env={"COLUMNS": None})  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    written = piped.stdout.splitlines()[1]
    assert written.startswith("4 cells written in ") and written.endswith(" 0 unconverged")


def test_read_draws_a_map_and_a_plain_emulator_is_named_as_forgetful(tmp_path: Path) -> None:
    done = run_sidra("board", "read", "emu://?preset=sidra-y1&seed=2", "--tile", "1",
                     "--region", "0,0,16,8", "--plot", str(tmp_path / "g.png"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "128 cells" in done.stdout and "at g_min" in done.stdout
    forgetful = run_sidra("board", "program", "emu://", "--fill-us", "20", "--region", "0,0,2,2")
    assert forgetful.returncode == 0, forgetful.stderr
    assert "forgets these cells when the command ends" in " ".join(forgetful.stderr.split())


def test_refusals_name_the_option_or_field_and_leave_the_board_unwritten(
    served: tuple[str, RemoteBoard], tmp_path: Path
) -> None:
    url, board = served
    writes = board.stats().cell_writes
    np.save(tmp_path / "t.npy", np.full((2, 2), 90.0, np.float32))  # beyond the window
    np.save(tmp_path / "bad.npy", np.array(["a", "b"]))
    np.savez(tmp_path / "z.npz", X=np.zeros(3))
    np.save(tmp_path / "v64.npy", np.full((4, 64), 0.1, np.float32))
    (tmp_path / "taken.npy").write_bytes(b"")
    (tmp_path / "text.npy").write_text("0.1 0.2\n")  # np.load took it for a pickle
    cases = {
        ("board", "mvm", url, "--inputs", str(tmp_path / "text.npy")):
            "not a NumPy file: it does not begin as an .npy or an .npz does",
        ("board", "program", url): "give one of --targets FILE and --fill-us VALUE",
        ("board", "program", url, "--fill-us", "20", "--targets", str(tmp_path / "t.npy")):
            "give one of --targets FILE and --fill-us VALUE",
        ("board", "program", url, "--fill-us", "20", "--region", "1,2,3"):
            "'--region': got '1,2,3', expected ROW,COL or ROW,COL,ROWS,COLS",
        ("board", "program", url, "--targets", str(tmp_path / "t.npy")):
            "conductances",  # the board's field: outside g_min .. g_max
        ("board", "program", url, "--targets", str(tmp_path / "t.npy"), "--region", "0,0,3,3"):
            "holds [2, 2] targets, --region names 3 x 3 cells",
        ("board", "program", url, "--fill-us", "20", "--region", "250,250,10,10"):
            "region",  # past the tile's edge
        ("board", "mvm", url, "--inputs", str(tmp_path / "bad.npy")):
            "got dtype <U1, expected real numbers",
        ("board", "mvm", url, "--inputs", str(tmp_path / "z.npz")):
            "got an .npz archive, expected an .npy",
        ("board", "mvm", url, "--inputs", str(tmp_path / "v64.npy"), "--region", "8,0"):
            "holds 64 inputs per vector; rows 8..255 cols 0..255 takes 248, one per row it "
            "drives (--region 8,0,64,256 drives 64 rows)",
        ("board", "mvm", url, "--inputs", str(tmp_path / "v64.npy"), "--transpose"):
            "takes 256, one per column it drives (--region 0,0,256,64 drives 64 columns)",
        ("board", "read", url, "--out", str(tmp_path / "taken.npy")): "which exists",
        # A folder that is a file, or does not exist: refused before the board is read
        # (a traceback after the board work, before).
        ("board", "read", url, "--out", str(tmp_path / "taken.npy" / "g.npy")):
            "is not a folder this user can write",
        ("board", "mvm", url, "--inputs", str(tmp_path / "v64.npy"), "--region", "0,0,64,256",
         "--out", str(tmp_path / "none" / "i.npy")): "is not a folder this user can write",
        ("board", "read", url, "--plot", str(tmp_path / "none" / "g.png")):
            "is not a folder this user can write",
        ("train", "spsa", "--board", "emu://", "--steps", "5", "--out", "/proc/nope/run"):
            "/proc/nope/run: cannot be made a record folder",
        ("board", "read", url, "--plot", str(tmp_path / "g.gif")): "expected a file ending",
        # A refusal names the command's option, not only the request's field.
        ("board", "read", url, "--tile", "99"): "Invalid value for '--tile': tile: got 99",
        ("board", "program", url, "--fill-us", "nan"):
            "Invalid value for '--fill-us': conductances: got",
        ("board", "program", url, "--fill-us", "20", "--region", "0,0,300,4"):
            "Invalid value for '--region': conductances.shape: got [300, 4]",
    }  # fmt: skip
    for args, message in cases.items():
        done = run_sidra(*args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert message in " ".join(done.stderr.split()).replace("│ ", ""), (args, done.stderr)
    assert board.stats().cell_writes == writes
    gone = run_sidra("board", "read", "grpc://127.0.0.1:1")
    assert gone.returncode == 1 and "BoardUnavailable" in gone.stderr
    whole = sidra_json("board", "read", url, "--tile", "3")  # nothing programmed there
    assert whole["cells"] == 256 * 256 and whole["near_g_min_cells"] == 256 * 256
    assert whole["reads"] == 1 and whole["read_noise_us"] is None


def test_repeated_reads_average_the_cells_and_measure_the_read_noise(
    served: tuple[str, RemoteBoard], tmp_path: Path
) -> None:
    """--repeats N: each cell's mean of N reads, and the read noise (its spread from read
    to read, rms over the cells): none on a noiseless board, that of its preset on a
    noisy one, and the means spread less than one read does."""
    url, _ = served
    quiet = sidra_json("board", "read", url, "--tile", "0", "--region", "0,0,8,8",
                       "--repeats", "3")  # fmt: skip
    assert quiet["reads"] == 3 and quiet["read_noise_us"] == 0.0
    noisy = "emu://?preset=sidra-y1&seed=3"
    one = sidra_json("board", "read", noisy, "--region", "0,0,32,32")
    many = sidra_json("board", "read", noisy, "--region", "0,0,32,32", "--repeats", "40",
                      "--out", str(tmp_path / "g.npy"))  # fmt: skip
    assert 0.0 < many["read_noise_us"] < 2.0
    assert many["std_us"] < one["std_us"]  # forty reads' means: the noise averaged out
    assert many["time_ns"] == pytest.approx(40 * one["time_ns"])  # forty reads' cost
    assert np.load(tmp_path / "g.npy").mean() == pytest.approx(many["mean_us"], rel=1e-6)
    refused = run_sidra("board", "read", noisy, "--repeats", "0")
    assert refused.returncode == 2 and "--repeats" in refused.stderr


def test_wear_counts_the_writes_calibrate_sets_a_gain_and_clock_ages_a_served_board(
    served: tuple[str, RemoteBoard], tmp_path: Path
) -> None:
    url, board = served
    sidra_json("board", "program", url, "--tile", "1", "--fill-us", "25", "--region", "0,0,2,3")
    wear = sidra_json("board", "wear", url, "--tile", "1", "--region", "0,0,4,4",
                      "--out", str(tmp_path / "w.npy"))  # fmt: skip
    counts = np.load(tmp_path / "w.npy")
    np.testing.assert_array_equal(counts, board.read_write_counts(1, Region(0, 0, 4, 4)).counts)
    assert counts[:2, :3].min() >= 1 and counts[2:].max() == 0 and counts[:, 3:].max() == 0
    assert (wear["cells"], wear["never_written_cells"]) == (16, 10)
    assert wear["max_writes"] == int(counts.max())
    assert wear["over_budget_cells"] == 0

    calibrated = sidra_json("board", "calibrate", url, "--tile", "1")
    assert 0.5 < calibrated["gain"] < 2.0 and calibrated["time_ns"] > 0

    before = board.stats().clock_s
    aged = sidra_json("board", "clock", url, "--advance-s", "86400")
    assert aged["clock_s"] == pytest.approx(before + 86_400.0)
    assert aged["cell_writes"] == board.stats().cell_writes >= 6
    shown = run_sidra("board", "clock", url)
    assert shown.returncode == 0 and "(1.00 days)" in shown.stdout
    # A bench names its board once; a URL on the line still wins.
    bench = run_sidra("board", "clock", env={"SIDRA_BOARD": url})
    assert bench.returncode == 0 and "(1.00 days)" in bench.stdout, bench.stderr
    elsewhere = run_sidra("board", "clock", "emu://?preset=ideal", env={"SIDRA_BOARD": url})
    assert elsewhere.returncode == 0 and "(1.00 days)" not in elsewhere.stdout
    missing = run_sidra("board", "read", env={"SIDRA_BOARD": ""})
    assert missing.returncode == 2
    assert "Missingargument'url'.Nameit,orsetSIDRA_BOARD." in unwrapped(missing.stderr)


def test_a_programmer_advances_a_served_board_s_clock_under_a_whole_board_lease(
    tmp_path: Path,
) -> None:
    """AdvanceClock acts on every tile: a programmer needs a whole-board lease, which no
    command took, so board clock --advance-s was refused with no way to do it from the
    command line. The command leases the whole board for the call; while another session
    holds a tile it is refused naming that session."""
    from sidra.server.security import Role, TokensFile
    from tests.server.security_support import principals

    tokens = principals(tmp_path / "tokens.toml", alice=Role.PROGRAMMER, bob=Role.PROGRAMMER)
    with serving(tmp_path / "s.sqlite3", tokens=TokensFile(tmp_path / "tokens.toml")) as address:
        url = f"grpc://{address}"
        aged = run_sidra("board", "clock", url, "--advance-s", "3600", "--json",
                         env={"SIDRA_TOKEN": tokens["alice"]})  # fmt: skip
        assert aged.returncode == 0, aged.stderr
        assert json.loads(aged.stdout)["clock_s"] == pytest.approx(3600.0)
        with (
            connect(address, token=tokens["bob"]) as bob,
            bob.session(label="bench") as session,
            session.lease([1]),
        ):
            refused = run_sidra("board", "clock", url, "--advance-s", "60",
                                env={"SIDRA_TOKEN": tokens["alice"]})  # fmt: skip
        assert refused.returncode == 1
        assert "bob's session 'bench'" in " ".join(refused.stderr.split())
