"""Board profiles from files: ``emu://?profile=path`` with TOML and JSON, and refusals."""

from __future__ import annotations

import base64
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from emu_support import serve

from sidra.characterize.toml import dumps
from sidra.drivers import InvalidArgument, OutOfRange, open_board
from sidra.emulator import SCHEMA_VERSION, BoardProfile, load_profile
from sidra.emulator import board as emulator_board
from sidra.emulator.board import EMULATOR_VERSION
from sidra.emulator.config import GainMap, Geometry, Variation
from sidra.emulator.driver import EmulatorDriver
from sidra.hil.v1 import board_pb2 as pb

LAB_TOML = """\
schema_version = 1
preset = "lab-a"
model = "SIDRA-LAB-A"
firmware_version = "lab-7"
read_voltage_max_v = 0.25

[geometry]
tiles = 3
rows = 16
cols = 8

[conductance]
g_min_us = 2.0
g_max_us = 30.0

[converters]
dac_bits = 6
adc_bits = 9
adc_full_scale_ua = 80.0

[read_noise]
output_noise_ua = 0.1
conductance_model = "pcm-flicker"

[drift]
model = "pcm"
t0_s = 10.0

[programming]
tolerance_us = 0.3
max_iterations = 7
relaxation_poly_us = [0.1, 0.2]

[endurance]
write_budget = 500
policy = "warn"
"""


def _lab_profile() -> BoardProfile:
    # A version-1 file (written before stuck maps) reads unchanged under schema 2.
    return BoardProfile(
        schema_version=1,
        preset="lab-a",
        model="SIDRA-LAB-A",
        firmware_version="lab-7",
        read_voltage_max_v=0.25,
        geometry={"tiles": 3, "rows": 16, "cols": 8},
        conductance={"g_min_us": 2.0, "g_max_us": 30.0},
        converters={"dac_bits": 6, "adc_bits": 9, "adc_full_scale_ua": 80.0},
        read_noise={"output_noise_ua": 0.1, "conductance_model": "pcm-flicker"},
        drift={"model": "pcm", "t0_s": 10.0},
        programming={"tolerance_us": 0.3, "max_iterations": 7, "relaxation_poly_us": (0.1, 0.2)},
        endurance={"write_budget": 500, "policy": "warn"},
    )


def _write(tmp_path: Path, suffix: str) -> Path:
    path = tmp_path / f"lab-a{suffix}"
    if suffix == ".toml":
        path.write_text(LAB_TOML, encoding="utf-8")
    else:
        path.write_text(json.dumps(_lab_profile().model_dump(mode="json")), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_profile_file_loads_and_is_reported(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path, suffix)
    expected = _lab_profile()
    assert load_profile(path) == expected
    with open_board(f"emu://?profile={path}&seed=9") as board:
        info = board.info
        assert (info.tile_count, info.rows, info.cols) == (3, 16, 8)
        assert (info.g_min_us, info.g_max_us) == (2.0, 30.0)
        assert (info.dac_bits, info.adc_bits, info.read_voltage_max_v) == (6, 9, 0.25)
        assert info.model == "SIDRA-LAB-A" and info.serial_number == "EMU-LAB-A-9"
        assert info.firmware_version.endswith("lab-7")
        # The board really runs the profile: a 0.25 V input is legal, 16 rows drive 8 columns.
        out = board.mvm(2, np.full((1, 16), 0.25, np.float32))
        assert out.currents.shape == (1, 8)
        with serve(board) as (remote, stub):
            wire = stub.GetBoardInfo(pb.GetBoardInfoRequest()).info
            assert wire.emulator_preset == "lab-a"
            assert BoardProfile.model_validate_json(wire.profile_json) == expected
            assert remote.info.rows == 16


@pytest.mark.parametrize(
    "profiled",
    [
        "lab-7",
        f"{EMULATOR_VERSION}/lab-7",
        "sidra-emulator-0.1/lab-7",
        f"{EMULATOR_VERSION}/" * 2 + "lab-7",
    ],
)
def test_the_emulator_names_its_version_once(profiled: str) -> None:
    """A twin's profile, characterized from an emulated board, carries the firmware string
    that board reported (the emulator's version first): its emulator says the version once."""
    board = EmulatorDriver(_lab_profile().model_copy(update={"firmware_version": profiled}))
    assert board.info.firmware_version == f"{EMULATOR_VERSION}/lab-7"


def test_profile_without_preset_name_reports_custom(tmp_path: Path) -> None:
    path = tmp_path / "bare.toml"
    path.write_text("[geometry]\ntiles = 1\nrows = 4\ncols = 4\n", encoding="utf-8")
    with open_board(f"emu://?profile={path}") as board:
        assert board.info.emulator_preset == "custom"
        assert board.info.profile["schema_version"] == SCHEMA_VERSION


def _gain_map_toml(tile: int, gains: list[float] | str) -> str:
    """A 1 x 4 x 4 board's profile with one gain map (``gains`` as they are when a str)."""
    if isinstance(gains, str):
        text = gains
    else:
        text = base64.b64encode(np.asarray(gains, "<f2").tobytes()).decode("ascii")
    return (
        "[geometry]\ntiles = 1\nrows = 4\ncols = 4\n"
        f'[[variation.gain_maps]]\ntile = {tile}\ngains_f16 = "{text}"\n'
    )


REFUSED = {
    "unknown top-level field": ("speed_ghz = 3\n", "speed_ghz: unknown key (allowed: schema_v"),
    "unknown nested field": (
        "[drift]\nnu_sd = 0.002\n",
        "drift.nu_sd: unknown key (allowed: model, nu_mean, nu_std, t0_s)",
    ),
    "unknown field of a listed table": (
        "[geometry]\ntiles = 1\nrows = 4\ncols = 4\n"
        "[[variation.stuck_maps]]\ntile = 0\ncells = []\n",
        "variation.stuck_maps.0.cells: unknown key (allowed: tile, at_min, at_max)",
    ),
    "newer schema": (f"schema_version = {SCHEMA_VERSION + 1}\n", "schema_version"),
    "bad value": ("[geometry]\nrows = 0\n", "rows"),
    "bad enum": ('[drift]\nmodel = "linear"\n', "model"),
    "gain map before schema 3": (
        "schema_version = 2\n" + _gain_map_toml(0, [1.0] * 16),
        "variation.gain_maps needs schema_version >= 3",
    ),
    "gain map of another size": (
        _gain_map_toml(0, [1.0] * 15),
        "variation.gain_maps tile 0: 15 gains, expected 4x4 = 16",
    ),
    "gain map off the board": (_gain_map_toml(1, [1.0] * 16), "variation.gain_maps tile: got 1"),
    "negative gain": (
        _gain_map_toml(0, [1.0] * 15 + [-1.0]),
        "gains_f16: got -1.0 at cell 15, expected gains in (0, 4]",
    ),
    "gain map not base64": (_gain_map_toml(0, "***"), "gains_f16: not base64"),
    "infinite number": (
        "[conductance]\ng_max_us = inf\n",
        "conductance.g_max_us: input should be a finite number; got inf",
    ),
    "NaN": (
        "[programming]\npulse_gain = nan\n",
        "programming.pulse_gain: input should be a finite",
    ),
    "beyond float32": (  # raised OverflowError when the board was made
        "[read_noise]\noutput_noise_ua = 1e308\n",
        "read_noise.output_noise_ua: got 1e+308, expected a magnitude of at most 3.403e+38",
    ),
    "a boolean for a count": (
        "[geometry]\ntiles = true\n",
        "geometry.tiles: input should be a valid integer; got True",
    ),
    "a text for a number": (
        '[read_noise]\noutput_noise_ua = "0.1"\n',
        "read_noise.output_noise_ua: input should be a valid number; got '0.1'",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_invalid_profile_is_refused_with_a_clear_error(
    tmp_path: Path, case: str, suffix: str
) -> None:
    """Unknown fields (anywhere), a newer schema_version and invalid values are refused
    when the board is opened, naming the profile option and the offending field."""
    toml_text, offending = REFUSED[case]
    path = tmp_path / f"bad{suffix}"
    if suffix == ".toml":
        path.write_text(toml_text, encoding="utf-8")
    else:
        path.write_text(json.dumps(tomllib.loads(toml_text)), encoding="utf-8")
    with pytest.raises(InvalidArgument) as info:
        open_board(f"emu://?profile={path}")
    assert info.value.field == "url profile"
    assert offending in str(info.value)
    # One line naming the key, not pydantic's report with its links.
    assert "\n" not in str(info.value) and "pydantic" not in str(info.value)
    if case == "bad value":
        assert "geometry.rows: input should be greater than or equal to 1; got 0" in str(info.value)
    if case == "newer schema":
        assert f"newer than this emulator supports ({SCHEMA_VERSION})" in str(info.value)


def test_a_board_too_large_for_memory_is_refused_naming_its_geometry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1024 tiles of 4096 x 4096 cells (about 1 TiB) are refused when the board is made,
    naming the geometry and the machine's room, not killed by the kernel at a pass."""
    path = tmp_path / "huge.toml"
    path.write_text("[geometry]\ntiles = 1024\nrows = 4096\ncols = 4096\n", encoding="utf-8")
    with pytest.raises(OutOfRange) as info:
        open_board(f"emu://?profile={path}")
    assert info.value.field == "geometry"
    assert info.value.value == "1024 tiles of 4096 x 4096 cells"
    assert "cells in all on this machine" in info.value.allowed
    # The bound is the machine's: with 1 GiB available a 64 MiB board is made, 2 GiB are not.
    monkeypatch.setattr(emulator_board, "available_memory_bytes", lambda: 2**30)
    fits = BoardProfile(geometry=Geometry(tiles=16, rows=256, cols=256))
    EmulatorDriver(fits).close()
    with pytest.raises(OutOfRange, match="at most 16,777,216 cells in all"):
        EmulatorDriver(BoardProfile(geometry=Geometry(tiles=512, rows=256, cols=256)))


def test_a_gain_map_gives_each_cell_its_gain_and_only_on_its_tile(tmp_path: Path) -> None:
    gains = np.random.default_rng(3).uniform(0.5, 1.5, (4, 4))
    profile = BoardProfile(
        geometry=Geometry(tiles=2, rows=4, cols=4),
        variation=Variation(gain_spread=0.1, gain_maps=(GainMap.of(1, gains),)),
    )
    drawn = EmulatorDriver(profile.model_copy(update={"variation": Variation(gain_spread=0.1)}), 8)
    mapped = EmulatorDriver(profile, 8)
    np.testing.assert_allclose(mapped.board.tiles[1].gain, gains, rtol=1e-3)  # half precision
    # Tile 0 draws its gains as before: the map changes no other random number.
    np.testing.assert_array_equal(mapped.board.tiles[0].gain, drawn.board.tiles[0].gain)
    np.testing.assert_array_equal(mapped.board.tiles[1].stuck_min, drawn.board.tiles[1].stuck_min)
    path = tmp_path / "mapped.toml"
    path.write_text(dumps(profile.model_dump(mode="json"), "gain map"), encoding="utf-8")
    assert load_profile(path) == profile
    # Without maps a profile is written as schema 2 wrote it (no gain_maps key at all).
    assert "gain_maps" not in drawn.info.profile["variation"]
    assert "gain_maps" not in json.loads(
        profile.variation.model_copy(update={"gain_maps": ()}).model_dump_json()
    )


def test_unreadable_or_unknown_format_profile_is_refused(tmp_path: Path) -> None:
    yaml = tmp_path / "lab.yaml"
    yaml.write_text("geometry: {}\n", encoding="utf-8")
    for path, words in ((yaml, ".toml or .json"), (tmp_path / "missing.toml", "missing.toml")):
        with pytest.raises(InvalidArgument) as info:
            open_board(f"emu://?profile={path}")
        assert info.value.field == "url profile"
        assert words in str(info.value)
    with pytest.raises(InvalidArgument):
        open_board(f"emu://?profile={_write(tmp_path, '.toml')}&preset=ideal")
    broken = tmp_path / "broken.toml"
    broken.write_text("rows = [4\n", encoding="utf-8")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        open_board(f"emu://?profile={broken}")
