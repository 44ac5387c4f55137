"""The board a job sees: the served board, reached through the same turns and leases
as every client's calls.

A job runs in the server, so it could call the driver directly; it must not, or
its calls would interleave with clients' calls and ignore their leases. Each call
of a :class:`JobBoard` goes through :meth:`BoardServicer.run_in_turn` in the job's
session, exactly as an RPC carrying that session id would, and is recorded in the
state store like one. Before each call it asks ``check`` whether the job may go
on, so a cancelled job stops at its next board call. What the store keeps of its
calls is recorded behind the job (:mod:`~sidra.server.jobs.recorder`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidra.drivers import Board, BoardInfo, TileUse
from sidra.drivers.operations import operation_of
from sidra.drivers.requests import Request
from sidra.server.jobs.recorder import BehindRecorder
from sidra.server.servicer import BoardServicer

__all__ = ["JobBoard"]


class JobBoard(Board):
    """``servicer``'s board, as ``principal``'s session ``session_id`` uses it."""

    def __init__(
        self,
        servicer: BoardServicer,
        *,
        tiles: frozenset[int] = frozenset(),
        whole_board: bool = False,
        principal: str,
        caller: str,
        session_id: str,
        check: Callable[[], None],
        recorder: BehindRecorder,
    ) -> None:
        self.servicer = servicer
        self.tiles = tiles
        """The tiles the job leases (its claim, placed when it was submitted)."""
        self.whole_board = whole_board
        self.principal = principal
        self.caller = caller
        """Whose turn the job's calls take (sidra.server.limits.caller_key)."""
        self.session_id = session_id
        self.check = check
        """Raises to stop the job (it was cancelled); called before every board call."""
        self.recorder = recorder

    @property
    def info(self) -> BoardInfo:
        return self.servicer.board.info

    @property
    def instance_id(self) -> str:
        return self.servicer.board.instance_id

    def tile_use(self) -> TileUse:
        """Every tile but the job's own as another's: the placement inside the job, given
        no tiles, then finds the tiles its claim placed it on when it was submitted."""
        if self.whole_board:
            return TileUse()
        return TileUse(leased=frozenset(range(self.info.tile_count)) - self.tiles)

    def run(self, request: Request) -> Any:
        self.check()
        self.recorder.check()
        rpc = operation_of(request).rpc
        return self.servicer.run_in_turn(
            rpc, request, self.principal, self.caller, self.session_id, admin=False,
            record_later=self.recorder.record,
        )  # fmt: skip

    def close(self) -> None:
        """Nothing to release: the served board outlives every job."""
