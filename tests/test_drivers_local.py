"""The driver interface in process, without gRPC: URLs, local validation, reproducibility."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
import pytest

from sidra.drivers import (
    Board,
    BoardDriver,
    InvalidArgument,
    OutOfRange,
    Region,
    open_board,
    rademacher,
    schemes,
)
from sidra.emulator import PRESETS
from sidra.emulator.config import BoardProfile, ReadNoise
from sidra.emulator.driver import EmulatorDriver

ROWS = COLS = 256
F32 = npt.NDArray[np.float32]


def profile_url(path: Path, **extra: str) -> str:
    query = "&".join([f"profile={quote(str(path))}"] + [f"{k}={v}" for k, v in extra.items()])
    return f"emu://?{query}"


# -- open_board URLs -------------------------------------------------------------------------


def test_default_url_opens_default_preset() -> None:
    """emu:// opens the sidra-y1 emulator with seed 0; the driver satisfies the Board protocol."""
    with open_board("emu://") as board:
        assert isinstance(board, BoardDriver)
        assert isinstance(board, Board)
        assert board.info.emulator_preset == "sidra-y1"
        assert board.info.serial_number == "EMU-0"
        assert board.info.emulated is True


def test_url_with_preset_and_seed() -> None:
    """emu://?preset=ideal&seed=3 opens the ideal preset seeded with 3."""
    with open_board("emu://?preset=ideal&seed=3") as board:
        info = board.info
        assert info.emulator_preset == "ideal"
        assert info.serial_number == "EMU-3"
        assert (info.tile_count, info.rows, info.cols) == (4, ROWS, COLS)
        assert (info.g_min_us, info.g_max_us, info.read_voltage_max_v) == (1.0, 40.0, 0.2)


def test_largest_seed_accepted() -> None:
    """Any unsigned 64-bit seed is accepted, 2**64 - 1 included."""
    with open_board(f"emu://?preset=ideal&seed={2**64 - 1}") as board:
        assert board.info.serial_number == f"EMU-{2**64 - 1}"


@pytest.mark.parametrize("url", ["tcp://127.0.0.1:50051", "emulator://", "127.0.0.1:50051", ""])
def test_unknown_scheme_lists_known_schemes(url: str) -> None:
    """An unknown scheme names the URL and lists every scheme open_board knows."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(url)
    assert caught.value.field == "board url"
    assert caught.value.value == url
    assert "emu" in schemes()
    for scheme in schemes():
        assert f"{scheme}://" in caught.value.allowed


def test_unknown_option_lists_known_options() -> None:
    """A misspelt query option is refused, naming it and the options emu:// understands."""
    with pytest.raises(InvalidArgument) as caught:
        open_board("emu://?presets=ideal")
    assert caught.value.field == "board url option"
    assert caught.value.value == "presets"
    assert "preset, profile, seed" in caught.value.allowed


def test_repeated_option_refused() -> None:
    """Each option may appear once: seed=1&seed=2 is ambiguous and refused."""
    with pytest.raises(InvalidArgument) as caught:
        open_board("emu://?seed=1&seed=2")
    assert caught.value.value == "seed"
    assert "at most once" in caught.value.allowed


@pytest.mark.parametrize("seed", ["-1", "abc", "1.5", "0x10", "", str(2**64)])
def test_bad_seed_refused(seed: str) -> None:
    """Seeds that are not unsigned 64-bit decimal integers are refused, naming the value."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(f"emu://?preset=ideal&seed={seed}")
    assert caught.value.field == "url seed"
    assert caught.value.value == seed
    assert "unsigned 64-bit" in caught.value.allowed


def test_unknown_preset_lists_presets() -> None:
    """An unknown preset is refused and the message names every available preset."""
    with pytest.raises(InvalidArgument) as caught:
        open_board("emu://?preset=sidra-y2")
    assert caught.value.field == "url preset"
    assert caught.value.value == "sidra-y2"
    for name in PRESETS:
        assert name in str(caught.value)


def test_preset_and_profile_together_refused(tmp_path: Path) -> None:
    """preset= and profile= are alternatives."""
    path = tmp_path / "board.toml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(InvalidArgument, match="not both"):
        open_board(profile_url(path, preset="ideal"))


CUSTOM_TOML = """\
schema_version = 1
model = "SIDRA-LAB-A"

[geometry]
tiles = 2
rows = 32
cols = 24

[conductance]
g_min_us = 0.5
g_max_us = 25.0
"""


def test_profile_toml_with_custom_geometry(tmp_path: Path) -> None:
    """profile= loads a TOML file: custom geometry and conductance range, exact physics by
    default, and MVM / TransposeMVM follow the new shape."""
    path = tmp_path / "lab a board.toml"  # a space, percent-encoded in the URL
    path.write_text(CUSTOM_TOML, encoding="utf-8")
    with open_board(profile_url(path, seed="5")) as board:
        info = board.info
        assert (info.tile_count, info.rows, info.cols) == (2, 32, 24)
        assert (info.g_min_us, info.g_max_us) == (0.5, 25.0)
        assert info.model == "SIDRA-LAB-A"
        assert info.emulator_preset == "custom"
        assert info.serial_number == "EMU-5"
        assert info.profile["geometry"] == {"tiles": 2, "rows": 32, "cols": 24}

        rng = np.random.default_rng(55)
        g = rng.uniform(0.5, 25.0, (32, 24)).astype(np.float32)
        board.program(1, g)
        assert np.array_equal(board.read_conductance(1).conductances, g)
        v = rng.uniform(-0.2, 0.2, (3, 32)).astype(np.float32)
        u = rng.uniform(-0.2, 0.2, (3, 24)).astype(np.float32)
        np.testing.assert_allclose(
            board.mvm(1, v).currents, v.astype(np.float64) @ g, rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            board.transpose_mvm(1, u).currents, u.astype(np.float64) @ g.T, rtol=1e-5, atol=1e-5
        )
        with pytest.raises(OutOfRange) as caught:
            board.program(0, np.full((1, 1), 30.0))
        assert "[0.5, 25] µS" in str(caught.value)
        with pytest.raises(OutOfRange, match=r"0 \.\. 1"):
            board.mvm(2, v)


def test_profile_json(tmp_path: Path) -> None:
    """profile= also reads JSON."""
    path = tmp_path / "board.json"
    path.write_text('{"geometry": {"tiles": 1, "rows": 4, "cols": 3}}', encoding="utf-8")
    with open_board(profile_url(path)) as board:
        assert (board.info.tile_count, board.info.rows, board.info.cols) == (1, 4, 3)


@pytest.mark.parametrize(
    ("filename", "text", "reason"),
    [
        ("future.toml", "schema_version = 99\n", "schema_version 99"),
        ("typo.toml", "[geometry]\ntile = 2\n", "tile"),
        ("inverted.toml", "[conductance]\ng_min_us = 30.0\ng_max_us = 20.0\n", "must exceed"),
        ("broken.toml", "[geometry\n", "readable"),
        ("board.yaml", "geometry: {}\n", ".toml or .json"),
    ],
)
def test_bad_profile_refused(tmp_path: Path, filename: str, text: str, reason: str) -> None:
    """Profiles from a newer schema, with unknown keys, inconsistent ranges, bad syntax or an
    unknown file type are refused with InvalidArgument naming the file and the reason."""
    path = tmp_path / filename
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidArgument) as caught:
        open_board(profile_url(path))
    assert caught.value.field == "url profile"
    assert caught.value.value == str(path)
    assert reason in str(caught.value)


def test_missing_profile_file_refused(tmp_path: Path) -> None:
    """A profile path that does not exist is an InvalidArgument, not a raw OSError."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(profile_url(tmp_path / "absent.toml"))
    assert caught.value.field == "url profile"


# -- local validation ------------------------------------------------------------------------


@pytest.fixture
def programmed(ideal_driver: BoardDriver) -> Iterator[tuple[BoardDriver, F32]]:
    """The ideal driver with tile 0 programmed to random G (and tile 2 partly perturbed)."""
    g = np.random.default_rng(3).uniform(1.0, 40.0, (ROWS, COLS)).astype(np.float32)
    ideal_driver.program(0, g)
    ideal_driver.perturb(2, seed=4, amplitude_us=1.0, region=Region(0, 0, 8, 8))
    yield ideal_driver, g


def vmat(value: float, width: int = ROWS) -> F32:
    v = np.zeros((2, width), np.float32)
    v[1, 3] = value
    return v


BAD_LOCAL: dict[str, tuple[Callable[[BoardDriver], Any], type[InvalidArgument], str, Any, str]] = {
    "tile-4": (lambda b: b.mvm(4, vmat(0.0)), OutOfRange, "tile", 4, "0 .. 3 (tile_count)"),
    "tile-negative": (lambda b: b.read_conductance(-1), OutOfRange, "tile", -1, "0 .. 3"),
    "tile-float": (
        lambda b: b.restore(1.0),  # type: ignore[arg-type]
        InvalidArgument,
        "tile",
        1.0,
        "an integer",
    ),
    "tile-bool": (
        lambda b: b.restore(True),
        InvalidArgument,
        "tile",
        True,
        "an integer",
    ),
    "sign-bool": (
        lambda b: b.perturb(0, seed=1, amplitude_us=1.0, sign=True),
        InvalidArgument,
        "sign",
        True,
        "+1 or -1",
    ),
    "amplitude-text": (
        lambda b: b.perturb(0, seed=1, amplitude_us="1.0"),  # type: ignore[arg-type]
        InvalidArgument,
        "amplitude_us",
        "1.0",
        "finite",
    ),
    "mvm-width": (
        lambda b: b.mvm(0, np.zeros((2, 255))),
        InvalidArgument,
        "voltages.shape",
        [2, 255],
        "[batch >= 1, 256] (tile rows)",
    ),
    "mvm-1d": (lambda b: b.mvm(0, np.zeros(256)), InvalidArgument, "voltages.shape", [256], "2-D"),
    "mvm-empty": (
        lambda b: b.mvm(0, np.zeros((0, 256))),
        InvalidArgument,
        "voltages.shape",
        [0, 256],
        "batch >= 1",
    ),
    "mvm-strings": (
        lambda b: b.mvm(0, np.array([["0.1"] * 256])),
        InvalidArgument,
        "voltages.dtype",
        np.dtype("<U3"),
        "real numeric",
    ),
    "mvm-complex": (
        lambda b: b.mvm(0, np.zeros((1, 256), complex)),
        InvalidArgument,
        "voltages.dtype",
        np.dtype(complex),
        "real numeric",
    ),
    "mvm-nan": (
        lambda b: b.mvm(0, vmat(np.nan)),
        InvalidArgument,
        "voltages",
        "1 NaN/Inf values (first nan at [1, 3])",
        "finite numbers",
    ),
    "mvm-over": (
        lambda b: b.mvm(0, vmat(0.25)),
        OutOfRange,
        "voltages",
        "0.25 V at [1, 3]",
        "[-0.2, +0.2] V (read_voltage_max_v)",
    ),
    "tmvm-width": (
        lambda b: b.transpose_mvm(0, np.zeros((1, 300))),
        InvalidArgument,
        "voltages.shape",
        [1, 300],
        "(tile columns)",
    ),
    "tmvm-inf": (
        lambda b: b.transpose_mvm(0, vmat(-np.inf)),
        InvalidArgument,
        "voltages",
        "1 NaN/Inf values (first -inf at [1, 3])",
        "finite numbers",
    ),
    "program-above": (
        lambda b: b.program(1, np.full((2, 2), 41.0)),
        OutOfRange,
        "conductances",
        "41 µS at [0, 0] (4 cells outside)",
        "[1, 40] µS",
    ),
    "program-below": (
        lambda b: b.program(1, np.full((2, 2), 0.75)),
        OutOfRange,
        "conductances",
        "0.75 µS at [0, 0] (4 cells outside)",
        "[1, 40] µS",
    ),
    "program-empty": (
        lambda b: b.program(1, np.zeros((0, 2))),
        InvalidArgument,
        "conductances.shape",
        [0, 2],
        "rows >= 1",
    ),
    "program-offset": (
        lambda b: b.program(1, np.full((4, 4), 5.0), col_offset=253),
        OutOfRange,
        "conductances.cols",
        4,
        "1 .. 3",
    ),
    "read-region": (
        lambda b: b.read_conductance(0, Region(10, 0, 250, 0)),
        OutOfRange,
        "region.rows",
        250,
        "1 .. 246",
    ),
    "perturb-seed-negative": (
        lambda b: b.perturb(0, seed=-1, amplitude_us=1.0),
        InvalidArgument,
        "seed",
        -1,
        "unsigned 64-bit",
    ),
    "perturb-seed-2**64": (
        lambda b: b.perturb(0, seed=2**64, amplitude_us=1.0),
        InvalidArgument,
        "seed",
        2**64,
        "unsigned 64-bit",
    ),
    "perturb-sign": (
        lambda b: b.perturb(0, seed=1, amplitude_us=1.0, sign=0),
        InvalidArgument,
        "sign",
        0,
        "+1 or -1",
    ),
    "perturb-amplitude-zero": (
        lambda b: b.perturb(0, seed=1, amplitude_us=0.0),
        OutOfRange,
        "amplitude_us",
        0.0,
        "(0, 39] µS",
    ),
    "perturb-amplitude-nan": (
        lambda b: b.perturb(0, seed=1, amplitude_us=float("nan")),
        InvalidArgument,
        "amplitude_us",
        None,
        "finite",
    ),
    "restore-region": (
        lambda b: b.restore(2, Region(0, 256)),
        OutOfRange,
        "region.col_offset",
        256,
        "0 .. 255",
    ),
}


@pytest.mark.parametrize(
    ("call", "cls", "field", "value", "allowed"), list(BAD_LOCAL.values()), ids=list(BAD_LOCAL)
)
def test_local_validation_errors(
    programmed: tuple[BoardDriver, F32],
    call: Callable[[BoardDriver], Any],
    cls: type[InvalidArgument],
    field: str,
    value: Any,
    allowed: str,
) -> None:
    """Bad requests raise the exact class with .field, .value and .allowed, a message of the
    form "field: got value, expected allowed", and leave the board and its stats unchanged."""
    board, _ = programmed
    before = [board.read_conductance(t).conductances for t in range(4)]
    stats = board.stats()

    with pytest.raises(cls) as caught:
        call(board)
    exc = caught.value
    assert type(exc) is cls
    assert exc.field == field
    if value is not None:
        assert exc.value == value
    assert allowed in exc.allowed
    assert str(exc).startswith(f"{field}: got ")
    assert str(exc).endswith(f"expected {exc.allowed}")

    assert board.stats() == stats
    for tile in range(4):
        assert np.array_equal(board.read_conductance(tile).conductances, before[tile])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.program(1, np.full((2, 3), 33.0), row_offset=-256), "conductances.row_offset"),
        (lambda b: b.program(1, np.full((2, 3), 33.0), col_offset=-1), "conductances.col_offset"),
        (lambda b: b.read_conductance(0, Region(0, 0, -1, 2)), "region.rows"),
        (
            lambda b: b.perturb(0, seed=1, amplitude_us=1.0, region=Region(0, 0, 0, -300)),
            "region.cols",
        ),
        (lambda b: b.restore(2, Region(-3, 0, 2, 2)), "region.row_offset"),
    ],
    ids=[
        "program-row-offset",
        "program-col-offset",
        "read-rows",
        "perturb-cols",
        "restore-row-offset",
    ],
)
def test_negative_offsets_and_sizes_refused(
    programmed: tuple[BoardDriver, F32], call: Callable[[BoardDriver], Any], field: str
) -> None:
    """Negative region offsets or sizes (possible in Python, impossible on the uint32 wire)
    are rejected with an error naming the field, and nothing is written."""
    board, _ = programmed
    before = [board.read_conductance(t).conductances for t in range(4)]
    stats = board.stats()
    with pytest.raises(InvalidArgument) as caught:
        call(board)
    assert caught.value.field == field
    assert board.stats() == stats
    for tile in range(4):
        assert np.array_equal(board.read_conductance(tile).conductances, before[tile])


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.mvm(0, np.full((1, ROWS), 1e39)), "voltages"),
        (lambda b: b.program(1, np.full((2, 2), -1e300)), "conductances"),
    ],
    ids=["voltage-1e39", "conductance-minus-1e300"],
)
def test_finite_float64_beyond_float32_is_out_of_range(
    programmed: tuple[BoardDriver, F32], call: Callable[[BoardDriver], Any], field: str
) -> None:
    """A finite float64 value too large for float32 is outside the board's limits: OutOfRange
    naming the field (not "NaN/Inf", and no numpy overflow warning escaping)."""
    board, _ = programmed
    with pytest.raises(OutOfRange) as caught:
        call(board)
    assert caught.value.field == field


def test_local_driver_accepts_any_real_numeric_input(ideal_driver: BoardDriver) -> None:
    """Nested lists, ints and float64 are converted to float32, as the remote client does."""
    ideal_driver.program(3, [[1, 2], [3, 40]], row_offset=4, col_offset=5)
    got = ideal_driver.read_conductance(3, Region(4, 5, 2, 2)).conductances
    assert got.dtype == np.float32
    assert np.array_equal(got, np.array([[1, 2], [3, 40]], np.float32))
    v = np.zeros((1, ROWS))
    v[0, 4], v[0, 5] = 0.125, -0.0625
    currents = ideal_driver.mvm(3, v).currents
    assert currents.dtype == np.float32
    assert currents[0, 5] == np.float32(0.125 * 1 - 0.0625 * 3)
    assert currents[0, 6] == np.float32(0.125 * 2 - 0.0625 * 40)


def test_local_ideal_arithmetic(ideal_driver: BoardDriver) -> None:
    """In process, the ideal board computes V·G, V·Gᵀ and G + cΔ(seed) like the remote one."""
    rng = np.random.default_rng(9)
    g = (rng.integers(32, 39 * 16, (ROWS, COLS)) / 16).astype(np.float32)
    v = rng.uniform(-0.2, 0.2, (5, ROWS)).astype(np.float32)
    ideal_driver.program(1, g)
    np.testing.assert_allclose(
        ideal_driver.mvm(1, v).currents, v.astype(np.float64) @ g, rtol=1e-5, atol=1e-3
    )
    np.testing.assert_allclose(
        ideal_driver.transpose_mvm(1, v).currents, v.astype(np.float64) @ g.T, rtol=1e-5, atol=1e-3
    )
    report = ideal_driver.perturb(1, seed=12, amplitude_us=0.5, sign=-1)
    assert (report.cells_written, report.clipped_cells) == (ROWS * COLS, 0)
    expected = g - np.float32(0.5) * rademacher(12, (ROWS, COLS))
    assert np.array_equal(ideal_driver.read_conductance(1).conductances, expected)
    ideal_driver.restore(1)
    assert np.array_equal(ideal_driver.read_conductance(1).conductances, g)


# -- reproducibility and random streams ------------------------------------------------------


def noisy_session(board: BoardDriver) -> list[Any]:
    """A fixed call sequence on a noisy board; returns every array and report it produced."""
    rng = np.random.default_rng(1234)  # inputs identical for every board
    g = rng.uniform(2.0, 38.0, (ROWS, COLS)).astype(np.float32)
    v = rng.uniform(-0.2, 0.2, (4, ROWS)).astype(np.float32)
    out: list[Any] = [board.program(0, g), board.program(1, g[:16, :16], row_offset=3)]
    out.append(board.mvm(0, v).currents)
    out.append(board.perturb(0, seed=77, amplitude_us=0.5, sign=1))
    out.append(board.transpose_mvm(0, v).currents)
    out.append(board.read_conductance(0).conductances)
    out.append(board.restore(0))
    out.append(board.mvm(1, v).currents)
    out.append(board.read_conductance(1, Region(0, 0, 20, 20)).conductances)
    return out


def assert_same_session(a: list[Any], b: list[Any]) -> None:
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y)
        else:
            assert x == y


def test_same_seed_is_bit_identical() -> None:
    """Two sidra-y1 boards with one seed and one call sequence agree bit for bit."""
    with (
        open_board("emu://?preset=sidra-y1&seed=42") as a,
        open_board("emu://?preset=sidra-y1&seed=42") as b,
    ):
        first, second = noisy_session(a), noisy_session(b)
    assert_same_session(first, second)
    assert a.stats() == b.stats()


def test_sidra_y1_is_noisy() -> None:
    """sidra-y1 results differ from the exact V·G (so reproducibility is not trivial)."""
    with open_board("emu://?preset=sidra-y1&seed=42") as board:
        session = noisy_session(board)
    rng = np.random.default_rng(1234)
    g = rng.uniform(2.0, 38.0, (ROWS, COLS)).astype(np.float32)
    v = rng.uniform(-0.2, 0.2, (4, ROWS)).astype(np.float32)
    exact = v.astype(np.float64) @ g
    assert np.abs(session[2] - exact).max() > 1e-2
    assert session[0].rms_error_us > 0.0


def test_different_seeds_differ() -> None:
    """Different seeds give different noise on every noisy output."""
    with (
        open_board("emu://?preset=sidra-y1&seed=42") as a,
        open_board("emu://?preset=sidra-y1&seed=43") as b,
    ):
        first, second = noisy_session(a), noisy_session(b)
    for index in (2, 4, 5, 7, 8):
        assert not np.array_equal(first[index], second[index]), index
    assert first[0].rms_error_us != second[0].rms_error_us


def read_noise_only() -> EmulatorDriver:
    """Exact programming, 1 % read noise: identical G on every tile, noise from reads only."""
    return EmulatorDriver(BoardProfile(read_noise=ReadNoise(sigma_g_fraction=0.01)), seed=8)


def test_tiles_do_not_share_a_random_stream() -> None:
    """Same G and V on tile 0 and tile 1 give different noise; and using tile 1 does not
    shift tile 0's stream (tile 0's results are the same with or without tile-1 traffic)."""
    rng = np.random.default_rng(10)
    g = rng.uniform(1.0, 40.0, (ROWS, COLS)).astype(np.float32)
    v = rng.uniform(-0.2, 0.2, (8, ROWS)).astype(np.float32)

    with read_noise_only() as alone, read_noise_only() as busy:
        for board in (alone, busy):
            board.program(0, g)
            board.program(1, g)
        first_tile0 = alone.mvm(0, v).currents
        first_tile1 = busy.mvm(1, v).currents  # first draw of tile 1's stream
        assert not np.array_equal(first_tile0, first_tile1)
        exact = v.astype(np.float64) @ g
        for got in (first_tile0, first_tile1):
            assert np.abs(got - exact).max() > 1e-3  # noise is present

        busy.transpose_mvm(1, v)
        busy.read_conductance(1)
        assert np.array_equal(busy.mvm(0, v).currents, first_tile0)
        assert np.array_equal(busy.mvm(0, v).currents, alone.mvm(0, v).currents)
