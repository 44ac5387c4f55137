"""Bad input against the emulator itself (the board-only bad-request tests run on every board:
tests/conformance/test_bad_requests.py, ``pytest -m conformance --board-url URL``).

What stays here needs the emulator: a narrow non-square tile built from a custom geometry
(rows and columns cannot be confused), and the errors of the ideal board served over gRPC
(in process, and the virtual board on a pty) compared with those of a separate in-process
emulator, the reference implementation of the validation.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sidra.client import InvalidArgument, OutOfRange, RemoteBoard, connect
from sidra.drivers import BoardDriver, open_board
from sidra.emulator.config import BoardProfile, Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.server import create_server

# The tables of the conformance suite (not a package: its folder is put on the path).
sys.path.insert(0, str(Path(__file__).with_name("conformance")))
from bad_requests import (  # noqa: E402
    TYPED,
    Baseline,
    Typed,
    assert_same_typed_error,
    establish,
)

IDEAL_URL = "emu://?preset=ideal&seed=1"


# -- typed exceptions on the client, identical to the reference emulator ----------------------


@pytest.fixture
def baseline(remote: RemoteBoard) -> Baseline:
    return establish(remote)


@pytest.fixture
def local_board() -> Iterator[BoardDriver]:
    """A separate in-process emulator (ideal, seed 1): the reference."""
    with open_board(IDEAL_URL) as board:
        assert isinstance(board, EmulatorDriver)
        yield board


@pytest.mark.parametrize("case", list(TYPED.values()), ids=list(TYPED))
def test_remote_raises_same_typed_error_as_reference_emulator(
    case: Typed, remote: RemoteBoard, local_board: BoardDriver, baseline: Baseline
) -> None:
    """RemoteBoard over the ideal board (in process, or the virtual board on a pty) raises the
    SIDRA exception class of the status code, with .field, .value and .allowed from the server,
    and a separate in-process emulator raises the same class for the same field."""
    assert_same_typed_error(case, remote, local_board)


# -- wrong shape on a non-square board: rows and columns cannot be confused ------------------


@pytest.fixture
def narrow_remote() -> Iterator[RemoteBoard]:
    """An exact (ideal-physics) board of 2 tiles x 16 rows x 8 columns, served over gRPC."""
    profile = BoardProfile(preset="narrow-test", geometry=Geometry(tiles=2, rows=16, cols=8))
    driver = EmulatorDriver(profile, seed=0)
    server, port = create_server(driver, "127.0.0.1:0")
    server.start()
    try:
        with connect(f"127.0.0.1:{port}") as board:
            yield board
    finally:
        server.stop(grace=None)


def test_mvm_and_transpose_widths_on_non_square_tile(narrow_remote: RemoteBoard) -> None:
    """MVM takes [batch, rows] and TransposeMVM [batch, cols]; swapping them is INVALID_ARGUMENT
    naming the expected width; the correct widths compute V·G and V·Gᵀ."""
    board = narrow_remote
    g = np.random.default_rng(31).uniform(1.0, 40.0, (16, 8)).astype(np.float32)
    board.program(1, g)

    with pytest.raises(InvalidArgument) as caught:
        board.mvm(1, np.zeros((2, 8), np.float32))  # column width into MVM
    assert type(caught.value) is InvalidArgument
    assert caught.value.field == "voltages.shape"
    assert "[2, 8]" in str(caught.value)
    assert "[batch >= 1, 16] (tile rows)" in str(caught.value)

    with pytest.raises(InvalidArgument) as caught:
        board.transpose_mvm(1, np.zeros((1, 16), np.float32))  # row width into TransposeMVM
    assert type(caught.value) is InvalidArgument
    assert caught.value.field == "voltages.shape"
    assert "[1, 16]" in str(caught.value)
    assert "[batch >= 1, 8] (tile columns)" in str(caught.value)

    with pytest.raises(OutOfRange) as out:
        board.mvm(2, np.zeros((1, 16), np.float32))
    assert out.value.field == "tile"
    assert "0 .. 1" in str(out.value)

    assert np.array_equal(board.read_conductance(1).conductances, g)
    rng = np.random.default_rng(32)
    v = rng.uniform(-0.2, 0.2, (3, 16)).astype(np.float32)
    u = rng.uniform(-0.2, 0.2, (3, 8)).astype(np.float32)
    np.testing.assert_allclose(
        board.mvm(1, v).currents, v.astype(np.float64) @ g, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        board.transpose_mvm(1, u).currents, u.astype(np.float64) @ g.T, rtol=1e-5, atol=1e-5
    )
