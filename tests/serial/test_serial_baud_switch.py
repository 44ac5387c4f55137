"""The host's baud switch (``serial://...?switch_baud=N``, esptool's CHANGE_BAUDRATE): after
HELLO at the opening rate the host asks for N, both ends switch, and a PING at the new
rate confirms it; a rate the board does not offer is refused naming the rates it
offers, before either end switches. A pty carries any rate, so the board's own record
of its rate is what shows the switch."""

from __future__ import annotations

import numpy as np
import pytest

from sidra.drivers import BoardUnavailable, open_board
from sidra.emulator import preset
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.device import DEFAULT_BAUDS


def test_the_link_switches_to_an_offered_rate_and_works_there() -> None:
    opening, faster = DEFAULT_BAUDS[0], DEFAULT_BAUDS[1]
    with (
        serve_virtual_board(preset("ideal"), 3) as server,
        open_board(f"{server.url}?baud={opening}&switch_baud={faster}") as board,
    ):
        assert server.board.baud == faster
        g = np.full((board.info.rows, board.info.cols), 10.0, np.float32)
        board.program(0, g)
        v = np.full((2, board.info.rows), 0.01, np.float32)
        np.testing.assert_allclose(board.mvm(0, v).currents, v @ g, rtol=1e-5)
        assert board.link_stats().up


def test_a_rate_the_board_does_not_offer_is_refused_naming_its_rates() -> None:
    with serve_virtual_board(preset("ideal"), 3) as server:
        with pytest.raises(BoardUnavailable, match=r"cannot run at 12345 Bd \(it offers \[115200"):
            open_board(f"{server.url}?baud={DEFAULT_BAUDS[0]}&switch_baud=12345")
        assert server.board.baud == DEFAULT_BAUDS[0]  # neither end switched
        with open_board(f"{server.url}?baud={DEFAULT_BAUDS[0]}") as board:  # still usable
            assert board.info.rows > 0
