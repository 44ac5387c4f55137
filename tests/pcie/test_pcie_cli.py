"""The command line end to end: ``sidra board serve --pcie-file`` + ``sidra serve --board
pcie+file://``: three processes (board, server, this client) and a real mapped file.

The same gRPC session against ``sidra serve --board emu://`` with the same preset and
seed gives bit-identical answers (sidra-y1 is noisy: no command ran twice or was lost).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_support import process, run_sidra, served, session

from sidra.drivers import OutOfRange
from sidra.emulator.config import BoardProfile, Geometry
from sidra.emulator.pcie.device import PcieDevice
from sidra.emulator.pcie.serve import memory_dir


def test_sidra_serve_on_a_virtual_pcie_board_matches_emu() -> None:
    with tempfile.TemporaryDirectory(dir=memory_dir()) as folder:
        path = os.path.join(folder, "bar0")
        # --serial: named as emu:// names the board of that seed, so GetBoardInfo compares too.
        board_args = ("--pcie-file", path, "--preset", "sidra-y1", "--seed", "6",
                      "--serial", "EMU-Y1-6")  # fmt: skip
        with process("board", "serve", *board_args) as (url, _):
            assert url == f"pcie+file://{path}"
            with served(url) as board:
                over_pcie = session(board, 1024)
        assert not os.path.exists(path), "a stopped board removes its BAR file"
    with served("emu://?preset=sidra-y1&seed=6") as board:
        in_process = session(board, 1024)
    for got, want in zip(over_pcie, in_process, strict=True):
        if isinstance(got, np.ndarray):
            assert np.array_equal(got, want)
        else:
            assert got == want


def test_a_bar_file_in_a_missing_folder_is_refused_naming_the_folder(tmp_path: Path) -> None:
    bar = tmp_path / "no-such-folder" / "bar0"
    result = run_sidra("board", "serve", "--pcie-file", str(bar), timeout=60)
    message = " ".join(result.stderr.replace("│", " ").split())  # the box unwrapped
    assert result.returncode == 2
    assert "--pcie-file" in message and "does not exist" in message
    assert "Traceback" not in result.stderr


def test_a_board_too_large_for_memory_is_refused_before_its_bar_file_is_made(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "huge.toml"
    profile.write_text("[geometry]\ntiles = 1024\nrows = 4096\ncols = 4096\n", encoding="utf-8")
    bar = tmp_path / "bar0"
    result = run_sidra("board", "serve", "--pcie-file", str(bar), "--profile", str(profile))
    message = " ".join(result.stderr.replace("│", " ").split())
    assert result.returncode == 2
    assert "geometry: got '1024 tiles of 4096 x 4096 cells'" in message
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["huge.toml"]


def test_a_device_that_cannot_make_its_board_leaves_no_file(tmp_path: Path) -> None:
    """The BAR file is made before the board: when the board is refused, the file goes."""
    huge = BoardProfile(geometry=Geometry(tiles=1024, rows=4096, cols=4096))
    with pytest.raises(OutOfRange, match="geometry"):
        PcieDevice(str(tmp_path / "bar0"), huge)
    assert os.listdir(tmp_path) == []


def test_board_serve_refusals_name_the_option_and_leave_files_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("precious\n", encoding="utf-8")
    bar = str(tmp_path / "bar0")
    for args, says in [
        (("--pcie-file", str(notes)), "'--pcie-file'"),
        (("--pcie-file", bar, "--faults", "hang=2,error=2"), "'--faults'"),
        (("--pcie-file", bar, "--max-payload", "1024"), "'--max-payload'"),
        (("--pcie-file", bar, "--stage-capacity", "4096"), "'--stage-capacity'"),
        (("--pcie-file", bar, "--cache-depth", "4"), "'--cache-depth'"),
    ]:
        result = run_sidra("board", "serve", *args, timeout=60)
        message = " ".join(result.stderr.replace("│", " ").split())  # the box unwrapped
        assert result.returncode == 2 and says in message, message
        assert "Traceback" not in result.stderr and "[Errno" not in message
    faults = run_sidra("board", "serve", "--pcie-file", bar, "--faults", "hang=2,error=2")
    assert "faults hang and error: both got command 2" in " ".join(
        faults.stderr.replace("│", " ").split()
    )
    assert notes.read_text(encoding="utf-8") == "precious\n"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_a_board_whose_file_is_removed_stops_saying_why() -> None:
    """``rm`` of a running board's BAR file left its process serving a file nobody could
    reach, while a second board could start at the same path: it stops, saying why."""
    import subprocess

    from cli_support import SIDRA

    with tempfile.TemporaryDirectory(dir=memory_dir()) as folder:
        path = os.path.join(folder, "bar0")
        board = subprocess.Popen(
            [*SIDRA, "board", "serve", "--pcie-file", path, "--preset", "ideal"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert board.stdout is not None
            assert board.stdout.readline().strip() == f"pcie+file://{path}"
            os.unlink(path)
            _, stderr = board.communicate(timeout=30)
        finally:
            board.kill()
            board.communicate()
        assert board.returncode == 1
        assert f"virtual board stopped: {path} was removed" in " ".join(stderr.split())


def test_a_surprise_removal_names_the_commands_answered() -> None:
    """``--faults remove_after=2``: the host's GET_PROFILE and one MVM answered, the next
    command finds the board gone. The board said "after 3 commands", counting the one it
    never answered."""
    import subprocess

    from cli_support import SIDRA

    from sidra.drivers import BoardUnavailable, open_board

    with tempfile.TemporaryDirectory(dir=memory_dir()) as folder:
        path = os.path.join(folder, "bar0")
        board = subprocess.Popen(
            [*SIDRA, "board", "serve", "--pcie-file", path, "--preset", "ideal",
             "--faults", "remove_after=2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert board.stdout is not None
            url = board.stdout.readline().strip()
            with open_board(url + "?timeout=2") as driver:  # command 1: GET_PROFILE
                driver.mvm(0, np.zeros((1, 256), np.float32))  # command 2
                with pytest.raises(BoardUnavailable):
                    driver.mvm(0, np.zeros((1, 256), np.float32))
            _, stderr = board.communicate(timeout=30)
        finally:
            board.kill()
            board.communicate()
        said = " ".join(stderr.split())
        assert "virtual board removed after 2 commands (--faults remove_after)" in said, said
