"""``sidra board characterize``'s tables: what the command prints beside the profile."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from sidra.characterize import Budget, Characterization, Estimate
from sidra.characterize.run import Part
from sidra.characterize.variation import StuckFinding
from sidra.cli.board_characterize import block_cut, format_tables
from sidra.emulator import BoardProfile
from sidra.emulator.config import IRDrop


def _printed(result: Characterization) -> dict[str, str]:
    """Each parameter's row of the first table, its cells joined by ``|``."""
    console = Console(record=True, width=400)
    console.print(format_tables(result)[0])
    rows = {}
    for line in console.export_text().splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if len(cells) == 5:
            rows[cells[0]] = "|".join(cells)
    return rows


def _result(estimates: tuple[Estimate, ...], profile: BoardProfile) -> Characterization:
    none = (np.zeros((2, 2), dtype=bool),)
    window = Estimate("conductance.g_min_us", 1.0, 0.0, "µS")
    stuck = StuckFinding(none, none, window, window, window, window, 0.0, Budget())
    return Characterization((Part("IR drop", estimates, Budget()),), profile, stuck)


def test_a_value_the_profile_does_not_hold_is_named_with_what_it_holds() -> None:
    faint = Estimate("ir_drop.wordline_segment_ohm", 0.001715, 0.004451, "Ω", "fitted")
    clear = Estimate("ir_drop.bitline_segment_ohm", 0.0102, 0.0002, "Ω", "fitted")
    profile = BoardProfile(ir_drop=IRDrop(wordline_segment_ohm=0.0, bitline_segment_ohm=0.0102))
    rows = _printed(_result((faint, clear), profile))
    # Within two standard errors of 0: the table shows the fit and says the file has 0.
    assert rows["ir_drop.wordline_segment_ohm"].endswith(
        "fitted; the profile gets 0 Ω (not told apart from 0)"
    )
    assert rows["ir_drop.bitline_segment_ohm"].endswith("|fitted")  # as written: nothing added


def test_a_block_larger_than_the_tile_is_said_to_be_cut_to_it() -> None:
    assert block_cut(32, 256, 256) == "" and block_cut(64, 64, 64) == ""
    assert block_cut(128, 64, 32) == (
        "--block 128: the tile is 64 × 32, so the block used is 64 × 32"
    )
