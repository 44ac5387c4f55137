"""The command line end to end: ``sidra board serve --pcie-file`` + ``sidra serve --board
pcie+file://``: three processes (board, server, this client) and a real mapped file.

The same gRPC session against ``sidra serve --board emu://`` with the same preset and
seed gives bit-identical answers (sidra-y1 is noisy: no command ran twice or was lost).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
from cli_support import process, served

from sidra.client import Region, RemoteBoard
from sidra.emulator.pcie.serve import memory_dir


def session(board: RemoteBoard) -> list[Any]:
    rng = np.random.default_rng(8)
    g = rng.uniform(2.0, 38.0, (256, 256)).astype(np.float32)
    v = rng.uniform(-0.2, 0.2, (3, 256)).astype(np.float32)
    out: list[Any] = [board.info, board.program(0, g), board.program(2, g[:9, :7], row_offset=4)]
    out += [board.mvm(0, v).currents, board.transpose_mvm(0, v).currents]
    out.append(board.mvm(0, rng.uniform(-0.2, 0.2, (1024, 256)).astype(np.float32)).currents)
    out.append(board.perturb(0, seed=9, amplitude_us=0.5, sign=-1, region=Region(3, 4, 20, 30)))
    out += [board.read_conductance(0).conductances, board.restore(0), board.advance_clock(60.0)]
    out += [board.calibrate(0), board.read_write_counts(0).counts, board.stats()]
    return out


def test_sidra_serve_on_a_virtual_pcie_board_matches_emu() -> None:
    with tempfile.TemporaryDirectory(dir=memory_dir()) as folder:
        path = os.path.join(folder, "bar0")
        board_args = ("--pcie-file", path, "--preset", "sidra-y1", "--seed", "6")
        with process("board", "serve", *board_args) as (url, _):
            assert url == f"pcie+file://{path}"
            with served(url) as board:
                over_pcie = session(board)
        assert not os.path.exists(path), "a stopped board removes its BAR file"
    with served("emu://?preset=sidra-y1&seed=6") as board:
        in_process = session(board)
    for got, want in zip(over_pcie, in_process, strict=True):
        if isinstance(got, np.ndarray):
            assert np.array_equal(got, want)
        else:
            assert got == want
