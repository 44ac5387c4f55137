"""StateStore against a model, over random sequences of Programs and reopenings.

Programs come one at a time or in batches (a job's recorder), a batch sometimes
holding one bad write (targets with a NaN, or a region off the tile): a batch is
stored all or nothing, so then nothing of it is. Now and then the file is closed and
opened again. After every step each tile's golden targets and programmed mask are
the model's bit for bit (last write wins per cell; never programmed cells 0 and
unmarked), the summary counts its programmed cells and Programs, and the history
counts every stored Program, in order: a Program of the same region and principal as
one of its tile's latest records, with no overlapping record after it, is counted into
that record, which moves to the end (sidra.server.state.history). The store keeps
Programs as patches over the tile's map and folds them in now and then: a second
machine folds after every two.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from state_support import REPORT, TEST_BOARD

from sidra.drivers import InvalidArgument
from sidra.server.state import StateStore
from sidra.server.state import store as store_module
from sidra.server.state.history import COALESCE_WINDOW
from sidra.server.state.records import ProgramWrite

SERIAL = TEST_BOARD.serial_number
TILES, ROWS, COLS = TEST_BOARD.tile_count, TEST_BOARD.rows, TEST_BOARD.cols


FEW_REGIONS = [(0, 0, 4, 4), (0, 4, 4, 4), (2, 2, 4, 4), (10, 10, 2, 3)]
"""Regions drawn again and again (row_offset, col_offset, rows, cols), as a training
loop programs its layer: the history counts such runs in one record."""


@st.composite
def regions(draw: st.DrawFn) -> tuple[int, int, int, int]:
    rows, cols = draw(st.integers(1, ROWS)), draw(st.integers(1, COLS))
    return draw(st.integers(0, ROWS - rows)), draw(st.integers(0, COLS - cols)), rows, cols


@st.composite
def writes(draw: st.DrawFn) -> ProgramWrite:
    row_offset, col_offset, rows, cols = draw(st.sampled_from(FEW_REGIONS) | regions())
    g = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(1.0, 40.0, (rows, cols))
    return ProgramWrite(
        SERIAL,
        draw(st.integers(0, TILES - 1)),
        row_offset,
        col_offset,
        g.astype(np.float32),
        REPORT,
        draw(st.sampled_from(["alice", "bob"])),
        "boot-a",
    )


def _overlap(a: list[Any], b: list[Any]) -> bool:
    """Whether the regions of records ``a`` and ``b`` share a cell."""
    return bool(
        a[1] < b[1] + b[3] and b[1] < a[1] + a[3] and a[2] < b[2] + b[4] and b[2] < a[2] + a[4]
    )


def _spoiled(write: ProgramWrite, how: str) -> ProgramWrite:
    """``write`` made one the store must refuse."""
    if how == "nan":
        targets = write.targets_us.copy()
        targets[-1, -1] = np.nan
        return replace(write, targets_us=targets)
    return replace(write, row_offset=ROWS)  # off the tile


class Store(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="sidra-store-model-"))
        self.store = StateStore(self.folder / "state.sqlite3")
        self.store.note_board(TEST_BOARD, "boot-a")
        self.golden = np.zeros((TILES, ROWS, COLS), np.float32)
        self.programmed = np.zeros((TILES, ROWS, COLS), np.bool_)
        self.history: list[list[Any]] = []
        """[tile, row_offset, col_offset, rows, cols, principal, programs] per record."""

    def _stored(self, write: ProgramWrite) -> None:
        rows, cols = write.targets_us.shape
        cells = np.s_[write.tile, write.row_offset : write.row_offset + rows,
                      write.col_offset : write.col_offset + cols]  # fmt: skip
        self.golden[cells] = write.targets_us
        self.programmed[cells] = True
        key = [write.tile, write.row_offset, write.col_offset, rows, cols, write.principal]
        window = [r for r in self.history if r[0] == write.tile][-COALESCE_WINDOW:]
        for record in reversed(window):
            if record[:6] == key:  # counted into it, which moves to the end
                at = next(i for i, r in enumerate(self.history) if r is record)
                self.history.append([*key, self.history.pop(at)[6] + 1])
                return
            if _overlap(record, key):
                break
        self.history.append([*key, 1])

    @rule(write=writes())
    def program(self, write: ProgramWrite) -> None:
        self.store.record_program(
            SERIAL, write.tile, write.row_offset, write.col_offset, write.targets_us,
            REPORT, write.principal, "boot-a",
        )  # fmt: skip
        self._stored(write)

    @rule(
        batch=st.lists(writes(), min_size=1, max_size=6),
        bad=st.none() | st.tuples(st.integers(0, 5), st.sampled_from(["nan", "offset"])),
    )
    def program_batch(self, batch: list[ProgramWrite], bad: tuple[int, str] | None) -> None:
        if bad is not None and bad[0] < len(batch):
            batch[bad[0]] = _spoiled(batch[bad[0]], bad[1])
            try:
                self.store.record_programs(batch)
            except InvalidArgument:
                return  # nothing of the batch stored: the invariant checks it
            raise AssertionError(f"a batch with a bad write ({bad[1]}) was stored")
        self.store.record_programs(batch)
        for write in batch:
            self._stored(write)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = StateStore(self.folder / "state.sqlite3")

    @invariant()
    def the_store_is_the_model(self) -> None:
        for tile in range(TILES):
            golden, programmed = self.store.golden(SERIAL, tile)
            assert golden.tobytes() == self.golden[tile].tobytes()
            assert np.array_equal(programmed, self.programmed[tile])
        stored = [
            [
                r.tile,
                r.region.row_offset,
                r.region.col_offset,
                r.region.rows,
                r.region.cols,
                r.principal,
                r.programs,
            ]
            for r in self.store.history(SERIAL)
        ]
        assert stored == self.history
        (board,) = self.store.summary()
        counted = [tile.programmed_cells for tile in board.tiles]
        assert counted == [int(self.programmed[t].sum()) for t in range(TILES)]
        programs = [tile.programs for tile in board.tiles]
        assert programs == [sum(r[6] for r in self.history if r[0] == t) for t in range(TILES)]

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class StoreFoldingOften(Store):
    """The same with the patches folded into the map after every two Programs."""

    def __init__(self) -> None:
        self.fold_patches = store_module.FOLD_PATCHES
        store_module.FOLD_PATCHES = 2
        super().__init__()

    def teardown(self) -> None:
        store_module.FOLD_PATCHES = self.fold_patches
        super().teardown()


Store.TestCase.settings = settings(max_examples=60, stateful_step_count=15, deadline=None)
StoreFoldingOften.TestCase.settings = Store.TestCase.settings
test_the_store_follows_the_model = Store.TestCase
test_the_store_folding_often_follows_the_model = StoreFoldingOften.TestCase
