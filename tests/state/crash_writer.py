"""The writer the crash tests kill: records Programs in a loop, one "ack N" line per commit.

Run as ``python crash_writer.py STORE``. Record N's tile, region and targets
depend on N alone (:func:`program_of`), so the test can replay what the store
must hold after any number of records. A run continues the numbering from the
records already in the store.
"""

from __future__ import annotations

import sys

import numpy as np
import numpy.typing as npt

from sidra.drivers import BoardInfo, ProgramReport
from sidra.server.state import StateStore

BOARD = BoardInfo(
    model="SIDRA-TEST", serial_number="CRASH-1", firmware_version="test", tile_count=2,
    rows=256, cols=256, g_min_us=1.0, g_max_us=40.0, dac_bits=0, adc_bits=0,
    read_voltage_max_v=0.2,
)  # fmt: skip
"""Full-size tiles, so a record's transaction (a 256 KiB golden map) takes a while to kill in."""

REPORT = ProgramReport(cells_written=0, verify_iterations=1, pulses=0, rms_error_us=0.0,
                       max_error_us=0.0, unconverged_cells=0)  # fmt: skip


def program_of(n: int) -> tuple[int, int, int, npt.NDArray[np.float32]]:
    """Record ``n``: (tile, row_offset, col_offset, targets µS); every fourth covers a tile."""
    rng = np.random.default_rng(n)
    tile = int(rng.integers(0, BOARD.tile_count))
    if n % 4 == 0:
        return tile, 0, 0, rng.uniform(1, 40, (BOARD.rows, BOARD.cols)).astype("f4")
    rows, cols = int(rng.integers(1, BOARD.rows)), int(rng.integers(1, BOARD.cols))
    r0 = int(rng.integers(0, BOARD.rows - rows + 1))
    c0 = int(rng.integers(0, BOARD.cols - cols + 1))
    return tile, r0, c0, rng.uniform(1, 40, (rows, cols)).astype(np.float32)


class Replay:
    """The golden maps the store must hold after its first ``n`` records."""

    def __init__(self) -> None:
        shape = (BOARD.tile_count, BOARD.rows, BOARD.cols)
        self.targets_us = np.zeros(shape, np.float32)
        self.programmed = np.zeros(shape, bool)
        self.applied = 0

    def after(self, n: int) -> Replay:
        for k in range(self.applied, n):
            tile, r0, c0, g = program_of(k)
            cells = (tile, slice(r0, r0 + g.shape[0]), slice(c0, c0 + g.shape[1]))
            self.targets_us[cells] = g
            self.programmed[cells] = True
        self.applied = n
        return self


def main(path: str) -> None:
    store = StateStore(path)
    store.note_board(BOARD, "crash-writer")
    n = len(store.history())
    while True:
        tile, r0, c0, targets = program_of(n)
        store.record_program(BOARD.serial_number, tile, r0, c0, targets, REPORT,
                             "writer", f"run-{n}")  # fmt: skip
        print(f"ack {n}", flush=True)  # only after record_program returned: committed
        n += 1


if __name__ == "__main__":
    main(sys.argv[1])
