"""emu:// URLs and profiles, and the emulator's reproducibility, in process (the board
contract itself is checked on every board URL by tests/conformance/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import numpy.typing as npt
import pytest

from sidra.drivers import (
    Board,
    BoardDriver,
    BoardUnavailable,
    InvalidArgument,
    OutOfRange,
    Region,
    open_board,
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
        assert board.info.serial_number == "EMU-Y1-0"
        assert board.info.emulated is True


def test_url_with_preset_and_seed() -> None:
    """emu://?preset=ideal&seed=3 opens the ideal preset seeded with 3."""
    with open_board("emu://?preset=ideal&seed=3") as board:
        info = board.info
        assert info.emulator_preset == "ideal"
        assert info.serial_number == "EMU-IDEAL-3"
        assert (info.tile_count, info.rows, info.cols) == (4, ROWS, COLS)
        assert (info.g_min_us, info.g_max_us, info.read_voltage_max_v) == (1.0, 40.0, 0.2)


def test_largest_seed_accepted() -> None:
    """Any unsigned 64-bit seed is accepted, 2**64 - 1 included."""
    with open_board(f"emu://?preset=ideal&seed={2**64 - 1}") as board:
        assert board.info.serial_number == f"EMU-IDEAL-{2**64 - 1}"


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


@pytest.mark.parametrize(
    "url", ["socket://host", "socket://:7000", "socket://host:99999", "socket://host:abc"]
)
def test_a_socket_url_needs_a_host_and_a_port(url: str) -> None:
    """Refused with the form it needs, not with pyserial's own words from deeper down."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(url)
    assert (caught.value.field, caught.value.value) == ("url", url)
    assert "socket://HOST:PORT" in caught.value.allowed


@pytest.mark.parametrize(
    "address",
    # No port (gRPC would try HOST:443 for the whole wait), a port outside 1 .. 65535, and
    # a URL that connect_server or open_board takes: refused at once, not after 10 s.
    ["", "   ", "host :50051", None, "127.0.0.1", "127.0.0.1:99999", "host:0", "host:",
     "grpc://127.0.0.1:50051", "grpcs://127.0.0.1:50051?ca=ca.pem"],
)  # fmt: skip
def test_connect_refuses_an_address_no_channel_can_reach(address: Any) -> None:
    from sidra.client import connect

    with pytest.raises(InvalidArgument) as caught:
        connect(address)
    assert caught.value.field == "address" and "HOST:PORT" in caught.value.allowed


@pytest.mark.parametrize("address", ["[::1]:1", "localhost:1", "dns:///localhost:1", "unix:/x"])
def test_connect_takes_hosts_ipv6_and_grpc_targets(address: str) -> None:
    """Taken as addresses: nothing listens there, so the refusal is the connection's."""
    from sidra.client import connect

    with pytest.raises(BoardUnavailable):
        connect(address, wait_ready_s=0.3)


@pytest.mark.parametrize("option", ["baud", "retries", "max_payload"])
def test_serial_url_numbers_are_decimal_digits(option: str) -> None:
    """'²' passes str.isdigit but not int(): refused naming the option, not a ValueError."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(f"serial:///dev/null?{option}=%C2%B2")
    assert (caught.value.field, caught.value.value) == (f"url {option}", "\u00b2")


@pytest.mark.parametrize("url", ["emu://sidra-y1", "emu://ideal?seed=3", "emu:///ideal"])
def test_an_emu_url_with_a_host_or_path_is_refused(url: str) -> None:
    """emu://sidra-y1 is not taken as the default preset without a word: the form is shown."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(url)
    assert caught.value.field == "url"
    assert "emu://?preset=sidra-y1" in caught.value.allowed


@pytest.mark.parametrize("url", ["emu://?seed=3#1", "emu://#", "pcie+file:///tmp/board#2"])
def test_a_board_url_with_a_fragment_is_refused(url: str) -> None:
    """No transport reads a fragment; a '#' in a path would have cut it there unseen."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(url)
    assert (caught.value.field, caught.value.value) == ("board url", url)
    assert "fragment" in caught.value.allowed


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


@pytest.mark.parametrize("seed", ["-1", "abc", "1.5", "0x10", "", str(2**64), "%C2%B2", " 3"])
def test_bad_seed_refused(seed: str) -> None:
    """Seeds that are not unsigned 64-bit decimal integers are refused, naming the value."""
    with pytest.raises(InvalidArgument) as caught:
        open_board(f"emu://?preset=ideal&seed={seed}")
    assert caught.value.field == "url seed"
    assert caught.value.value == unquote(seed)  # '²' is a digit to str.isdigit, not to int()
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
        assert info.serial_number == "EMU-LAB-A-5"
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


# Validation and ideal arithmetic run on every board URL: tests/conformance/.


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
        assert a.stats() == b.stats()
    assert_same_session(first, second)


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


def test_a_board_url_is_checked_by_its_driver_without_opening_anything(tmp_path: Any) -> None:
    """What ``sidra serve --check`` asks: the options and shape a driver reads at start."""
    from sidra.drivers import check_board_url

    assert check_board_url("emu://?preset=ideal&seed=3")
    assert check_board_url(f"serial://{tmp_path}/nowhere?baud=115200")  # no such device: fine
    assert check_board_url(f"pcie+file://{tmp_path}/bar?timeout=2")
    assert not check_board_url("grpc://127.0.0.1:1")  # the scheme only
    refused = [("emu://?seed=-1", "url seed"), ("serial:///dev/x?retries=99", "url retries"),
               ("pcie://0000:01:00", "url"), ("tape://x", "board url")]  # fmt: skip
    for url, field in refused:
        with pytest.raises(InvalidArgument) as caught:
            check_board_url(url)
        assert caught.value.field == field
