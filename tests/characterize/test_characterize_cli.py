"""``sidra board characterize`` on boards that report no profile, and what it refuses.

The board a lab brings reports no profile: here the virtual board firmware is served by
``sidra board serve --tcp --profile FILE --no-report-profile`` (a real transport, the
SIDRA wire protocol over TCP), so characterize sees only the operations and HELLO.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_support import process, run_sidra

from sidra.characterize import characterize
from sidra.characterize.toml import dumps
from sidra.cli.consoles import PIPED_WIDTH
from sidra.drivers import Unsupported, open_board
from sidra.drivers.requests import AdvanceClockRequest, Request
from sidra.emulator import BoardProfile, load_profile, preset
from sidra.emulator.config import (
    Converters,
    Drift,
    DriftModel,
    Geometry,
    Programming,
    ReadNoise,
    Variation,
)
from sidra.emulator.driver import EmulatorDriver

LAB = BoardProfile(
    preset="lab-b",
    model="SIDRA-LAB-B",
    geometry=Geometry(tiles=1, rows=32, cols=32),
    converters=Converters(dac_bits=7, adc_bits=11, adc_full_scale_ua=140.0),
    read_noise=ReadNoise(output_noise_ua=0.1, sigma_g_fraction=0.02),
    programming=Programming(
        tolerance_us=0.25, max_iterations=12, pulse_gain=0.7, pulse_noise_us=0.1
    ),
    drift=Drift(model=DriftModel.CONSTANT, nu_mean=0.03, nu_std=0.01),
    variation=Variation(gain_spread=0.02, stuck_at_min_fraction=0.01),
)  # fmt: skip


def _write_profile(path: Path, profile: BoardProfile) -> Path:
    from sidra.characterize.toml import dumps

    path.write_text(dumps(profile.model_dump(mode="json")), encoding="utf-8")
    return path


def test_a_board_reporting_no_profile_is_characterized_into_a_loadable_twin(
    tmp_path: Path,
) -> None:
    source = _write_profile(tmp_path / "lab-b.toml", LAB)
    out = tmp_path / "twin.toml"
    with process(
        "board", "serve", "--tcp", "127.0.0.1:0", "--profile", str(source), "--seed", "4",
        "--no-report-profile",
    ) as (url, _):  # fmt: skip
        with open_board(url) as board:  # what the command will see: no profile at all
            assert board.info.profile == {} and board.info.emulator_preset == ""
            assert board.info.adc_full_scale_ua == 0.0
        result = run_sidra("board", "characterize", url, "--out", str(out), "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert "Budget spent" in result.stdout and "profile written to" in result.stdout
    twin = load_profile(out)
    assert twin.schema_version == 2 and twin.preset == "characterized"
    assert (twin.converters.dac_bits, twin.converters.adc_bits) == (7, 11)
    assert abs(twin.converters.adc_full_scale_ua - 140.0) < 1e-3
    assert abs(twin.read_noise.sigma_g_fraction - 0.02) < 0.004
    assert abs(twin.read_noise.output_noise_ua - 0.1) < 0.02
    assert abs(twin.drift.nu_mean - 0.03) < 0.006
    assert twin.variation.stuck_maps and twin.variation.stuck_maps[0].at_min
    # The file is what emu:// and sidra board serve --profile load.
    with open_board(f"emu://?profile={out}&seed=1") as emulated:
        assert emulated.info.emulator_preset == "characterized"
    header = out.read_text(encoding="utf-8").splitlines()[:3]
    assert header[0].startswith("# Board profile measured by `sidra board characterize")
    assert ", drift measured, gain maps not measured, " in header[1]  # how it was made
    assert tomllib.loads(out.read_text(encoding="utf-8"))["schema_version"] == 2


class NoClockBoard(EmulatorDriver):
    """An emulated board without a virtual clock, as hardware: AdvanceClock is refused at
    the transport's one seam, like a physical board's driver refuses it."""

    def _handle(self, request: Request) -> Any:
        if isinstance(request, AdvanceClockRequest):
            raise Unsupported("AdvanceClock: this board has no virtual clock")
        return super()._handle(request)


def test_without_a_virtual_clock_drift_is_not_measured_and_said_so() -> None:
    board = NoClockBoard(LAB, seed=2)
    result = characterize(board, seed=1)
    nu = result.estimates["drift.nu_mean"]
    assert not nu.measured and "no virtual clock" in nu.note
    assert any(line.startswith("drift.nu_mean: not measured") for line in result.not_measured)
    assert result.profile.drift.model is DriftModel.NONE
    assert result.budget.clock_advanced_s == 0.0
    # Everything else was measured as usual.
    assert result.profile.converters.adc_bits == 11
    assert np.isclose(board.stats().clock_s, 0.0)


def test_out_must_be_toml_and_a_bad_url_fails_with_a_message(tmp_path: Path) -> None:
    bad = run_sidra(
        "board", "characterize", "emu://?preset=ideal", "--out", str(tmp_path / "x.json")
    )
    assert bad.returncode != 0 and "expected a .toml file" in bad.stderr
    missing = run_sidra(
        "board", "characterize", "emu://?preset=nope", "--out", str(tmp_path / "x.toml")
    )
    assert missing.returncode == 1 and "preset" in missing.stderr
    assert not (tmp_path / "x.toml").exists()


def test_an_out_folder_that_does_not_exist_is_refused_before_measuring(tmp_path: Path) -> None:
    out = tmp_path / "no-such-folder" / "x.toml"
    result = run_sidra("board", "characterize", "emu://?preset=ideal", "--out", str(out))
    assert result.returncode == 2
    message = " ".join(result.stderr.replace("│", " ").split())  # the box unwrapped
    assert "Invalid value: --out" in message and "does not exist" in message
    assert "Characterized" not in result.stdout  # nothing was measured


@pytest.mark.parametrize("command", ["characterize", "compare"])
def test_a_tile_the_board_lacks_is_refused_naming_the_option(command: str, tmp_path: Path) -> None:
    """Both said it as a runtime error in two wordings ("expected 0 <= tile < 4", "an
    integer in 0 .. 3 (tile_count)"), neither naming --tile; now one usage error."""
    profile = tmp_path / "twin.toml"
    profile.write_text(dumps(preset("ideal").model_dump(mode="json")), encoding="utf-8")
    out = tmp_path / "x.toml"
    given = ("--out", str(out)) if command == "characterize" else ("--profile", str(profile))
    result = run_sidra("board", command, "emu://?preset=ideal", *given, "--tile", "9")
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.replace("│", " ").split())
    assert "Invalid value for '--tile': got 9; the board has 4 tile(s), 0 .. 3" in message
    assert not out.exists()


def test_an_existing_profile_is_not_written_over(tmp_path: Path) -> None:
    out = tmp_path / "y1-twin.toml"
    out.write_text("# the twin CI relies on\n")
    result = run_sidra("board", "characterize", "emu://?preset=ideal", "--out", str(out))
    assert result.returncode == 2
    message = " ".join(result.stderr.replace("│", " ").split())
    assert "exists; name another file, or remove that one first" in message
    assert out.read_text() == "# the twin CI relies on\n"


def test_a_profile_that_cannot_be_written_is_kept_elsewhere_and_said_so(tmp_path: Path) -> None:
    out = tmp_path / "taken.toml"
    out.mkdir()  # a folder where the file should go: the write fails after measuring
    result = run_sidra("board", "characterize", "emu://?preset=ideal", "--out", str(out))
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "Is a directory" in message and "the profile is kept in " in message
    kept = Path(message.split("the profile is kept in ")[1].split()[0])
    try:
        assert load_profile(kept).converters == preset("ideal").converters
    finally:
        kept.unlink()


def test_a_served_board_another_session_leases_is_refused_before_the_first_write(
    tmp_path: Path,
) -> None:
    """Characterizing programs every tile: over a server it leases them all first, so a
    tile another session holds refuses it naming the holder with nothing written (it was
    refused at that tile's first Program, the tiles before it overwritten)."""
    from sidra.client import connect
    from sidra.server import create_server

    with open_board("emu://?preset=ideal&seed=3") as board:
        server, port = create_server(board, "127.0.0.1:0")
        server.start()
        try:
            with connect(f"127.0.0.1:{port}") as other, other.session(label="bench") as bench:
                bench.lease([2])
                writes = other.stats().cell_writes
                out = tmp_path / "p.toml"
                result = run_sidra("board", "characterize", f"grpc://127.0.0.1:{port}",
                                   "--out", str(out), "--no-drift", timeout=120)  # fmt: skip
                assert result.returncode == 1, result.stderr
                said = " ".join(result.stderr.split())
                assert "cannot lease the whole board: held by local's session 'bench'" in said
                assert other.stats().cell_writes == writes and not out.exists()
                assert [lease.tile for lease in other.leases()] == [2]  # its own lease went
        finally:
            server.stop(grace=None)


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each body line of the tables in ``text`` (lines between │ edges)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def test_piped_tables_keep_a_row_a_line(tmp_path: Path) -> None:
    """Through a pipe (a log, | less) rich folded the tables at 80 columns: a parameter's
    note over five lines. Now a row is a line, as wide as its cells, and so are the
    comparison's title and what sampling alone scores."""
    url = "emu://?preset=ideal&seed=1"
    out = tmp_path / "twin.toml"
    piped = {"COLUMNS": None}  # no terminal, and no width asked for
    made = run_sidra("board", "characterize", url, "--out", str(out), "--block", "8",
                     "--no-drift", env=piped)  # fmt: skip
    assert made.returncode == 0, made.stderr
    rows = _table_rows(made.stdout)
    # A folded row goes on in a line whose value cell (never long) is empty.
    assert rows and all(cells[1] for cells in rows), made.stdout
    parameters = {cells[0] for cells in rows}
    assert {"conductance.g_max_us", "ir_drop.wordline_segment_ohm", "total"} <= parameters
    assert any(
        cells[4].startswith("256 rows, then 256 columns, driven at 50 mV") and "fitted" in cells[4]
        for cells in rows
    )
    assert all(len(line) < PIPED_WIDTH for line in made.stdout.splitlines())  # not padded
    assert "\nstuck cells: 0 at g_min, 0 at g_max over 4 tiles (healthy cells " in made.stdout

    compared = run_sidra("board", "compare", url, "--profile", str(out), "--block", "8",
                         "--inputs", "2", "--repeats", "4", "--cycles", "1", env=piped)  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert lines[0] == (
        "Board vs twin (tile 0, block 8 × 8; 2 inputs × 4 repeats; 'after' = 1 program + "
        "perturb cycles)"
    )
    assert [cells[:2] for cells in _table_rows(compared.stdout)] == [
        ["start", "MVM"], ["start", "TransposeMVM"], ["after", "MVM"], ["after", "TransposeMVM"],
    ]  # fmt: skip
    assert lines[-1].startswith("Sampling alone (a twin identical to the board, these inputs")
    assert lines[-1].endswith("well above them, what the twin does not know.")
