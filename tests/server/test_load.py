"""Sixteen clients at once, each a principal of its own, while another re-programs the
tile they read and another floods it with large MVM batches: no call fails, and no
answer shows part of a Program (load_support.py says how that is known).

Two boards: the ideal emulator in process, and the virtual board on a pty with a
stage of one tile, where a Program is staged in many frames and a flood batch runs
as 22 passes, each its own exchange on the link. Without the board lock (tried by
making BoardTurns.turn a no-op) flood batches mix states on both, and on the
serial board calls fail by the dozen as well. Tiles of 64 x 48 keep the serial
transfers short.

The short form of scripts/soak_load.py (16 x 1,000 calls and a flood of 64 MiB
batches, with latencies): here correctness only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from load_support import Contest, Flooder, Reader, Writer, client, run_all

from sidra.drivers import Board, open_board
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.emulator.firmware import serve_virtual_board
from sidra.server import create_server
from sidra.server.security import Role, TokensFile, add_principal

READERS = 16
CALLS = 40
PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=4, rows=64, cols=48)})
FLOOD_BATCH = 1024
"""Vectors per flood MVM: 256 KiB on a 64-row tile (the soak sends 64 MiB)."""
STAGE_BYTES = 64 * 48 * 4
"""The serial board's stage: one tile; a flood batch runs as 22 passes of 48 vectors."""


PRINCIPALS = ["setup", "writer", "flooder", *(f"reader-{i}" for i in range(READERS))]


@contextmanager
def ideal_board(kind: str) -> Iterator[Board]:
    """The ideal board in process, or the virtual board over a pty with a stage of one
    tile."""
    if kind == "emu":
        yield EmulatorDriver(PROFILE, seed=3)
        return
    virtual = serve_virtual_board(PROFILE, seed=3, stage_capacity=STAGE_BYTES)
    with virtual as link, open_board(link.url) as board:
        yield board


@pytest.fixture(params=["emu", "pty"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The ideal board served on loopback with tokens, and an admin token (AdvanceClock
    needs one) per principal: every
    client below is one, so the board is shared out in turns between them
    (sidra.server.turns). Yields the address and the tokens by principal."""
    path = tmp_path / "tokens.toml"
    tokens = {name: add_principal(path, name, Role.ADMIN) for name in PRINCIPALS}
    with ideal_board(request.param) as board:
        server, port = create_server(board, "127.0.0.1:0", tokens=TokensFile(path))
        server.start()
        try:
            yield f"127.0.0.1:{port}", tokens
        finally:
            server.stop(grace=None)


def test_readers_never_see_part_of_a_program(served: tuple[str, dict[str, str]]) -> None:
    address, tokens = served
    boards = {name: client(address, secret) for name, secret in tokens.items()}
    try:
        contest = Contest.make(boards["setup"].info, seed=10)
        contest.program_start(boards["setup"])
        readers = [Reader(boards[f"reader-{i}"], contest, i, seed=11) for i in range(READERS)]
        writer = Writer(boards["writer"], contest)
        flooder = Flooder(boards["flooder"], contest, FLOOD_BATCH, seed=12)

        tallies, (written, flooded) = run_all(
            [lambda r=r: r.run(CALLS) for r in readers], [writer, flooder]
        )
    finally:
        for board in boards.values():
            board.close()

    everyone = [*tallies, written, flooded]
    assert [e for t in everyone for e in t.errors] == []
    assert [e for t in everyone for e in t.torn] == []
    assert sum(t.calls for t in tallies) >= READERS * CALLS
    # The test could have failed: the tile changed under the readers many times, and
    # they saw both states.
    assert written.calls >= 4
    seen = sum((t.seen for t in tallies), start=type(tallies[0].seen)())
    assert seen["a"] > 0 and seen["b"] > 0, seen
    assert flooded.calls >= 1
