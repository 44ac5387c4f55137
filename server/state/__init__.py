"""Durable board state: golden targets, program history, write counts, boot ids.

:class:`StateStore` is an embedded SQLite file (default
:func:`default_store_path`); the servicer records every Program in it before
answering, and :func:`restore` writes the golden targets back onto a board.
"""

from sidra.server.state.errors import ProgramNotRecorded, StateStoreError
from sidra.server.state.paths import default_store_path
from sidra.server.state.records import (
    SERVER_PRINCIPAL,
    BoardRecord,
    BoardSummary,
    GoldenMap,
    ProgramKind,
    ProgramRecord,
    ProgramWrite,
    StoreUsage,
    TileSummary,
    WriteCountMap,
)
from sidra.server.state.restore import RestoreReport, TileRestore, restore
from sidra.server.state.schema import SCHEMA_VERSION
from sidra.server.state.store import StateStore

__all__ = [
    "SCHEMA_VERSION",
    "SERVER_PRINCIPAL",
    "BoardRecord",
    "BoardSummary",
    "GoldenMap",
    "ProgramKind",
    "ProgramNotRecorded",
    "ProgramRecord",
    "ProgramWrite",
    "RestoreReport",
    "StateStore",
    "StateStoreError",
    "StoreUsage",
    "TileRestore",
    "TileSummary",
    "WriteCountMap",
    "default_store_path",
    "restore",
]
