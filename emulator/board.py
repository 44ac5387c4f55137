"""The emulated board: tiles, one seeded random source, cost and usage accounting."""

from __future__ import annotations

import numpy as np

from sidra.drivers.types import (
    BoardInfo,
    BoardStats,
    Cost,
    MVMResult,
    PerturbReport,
    ProgramReport,
    ReadResult,
    Region,
)
from sidra.emulator.config import BoardProfile
from sidra.emulator.tile import CrossbarTile, FloatArray

__all__ = ["EmulatedBoard"]

EMULATOR_VERSION = "sidra-emulator-0.1"


class EmulatedBoard:
    """A SIDRA board in software.

    Inputs are trusted: the driver layer (``sidra.drivers.emu``) validates every
    request against :attr:`info` before it reaches the board, as firmware would.
    One ``seed`` drives every random source; each tile gets an independent
    stream spawned from it, so the same seed and call sequence reproduce
    bit-identical results and tiles never share random numbers.
    """

    def __init__(self, profile: BoardProfile, seed: int = 0) -> None:
        self.profile = profile
        self.seed = seed
        streams = np.random.SeedSequence(seed).spawn(profile.geometry.tiles)
        self.tiles = [
            CrossbarTile(profile, np.random.Generator(np.random.SFC64(s))) for s in streams
        ]
        self._cost = Cost()
        self._mvm_passes = 0
        self._cell_writes = 0
        self.info = BoardInfo(
            model=profile.model,
            serial_number=f"EMU-{seed}",
            firmware_version=f"{EMULATOR_VERSION}/{profile.firmware_version}",
            tile_count=profile.geometry.tiles,
            rows=profile.geometry.rows,
            cols=profile.geometry.cols,
            g_min_us=profile.conductance.g_min_us,
            g_max_us=profile.conductance.g_max_us,
            dac_bits=0,
            adc_bits=0,
            read_voltage_max_v=profile.read_voltage_max_v,
            emulated=True,
            emulator_preset=profile.preset,
            profile=profile.model_dump(mode="json"),
        )

    def stats(self) -> BoardStats:
        return BoardStats(self._cost, self._mvm_passes, self._cell_writes)

    def program(self, tile: int, region: Region, targets: FloatArray) -> ProgramReport:
        outcome = self.tiles[tile].program(region, targets)
        t = self.profile.timing
        cost = self._spend(outcome.iterations * (t.write_pass_ns + t.verify_read_ns))
        self._cell_writes += outcome.pulses
        return ProgramReport(
            cells_written=region.rows * region.cols,
            verify_iterations=outcome.iterations,
            pulses=outcome.pulses,
            rms_error_us=outcome.rms_error_us,
            max_error_us=outcome.max_error_us,
            unconverged_cells=outcome.unconverged,
            cost=cost,
        )

    def read_conductance(self, tile: int, region: Region) -> ReadResult:
        # Conductances are read row by row: one pass per row with a one-hot input.
        cost = self._spend(region.rows * self.profile.timing.mvm_pass_ns)
        return ReadResult(self.tiles[tile].read(region), cost)

    def mvm(self, tile: int, voltages: FloatArray) -> MVMResult:
        return MVMResult(self.tiles[tile].mvm(voltages), 0, self._passes(len(voltages)))

    def transpose_mvm(self, tile: int, voltages: FloatArray) -> MVMResult:
        return MVMResult(self.tiles[tile].transpose_mvm(voltages), 0, self._passes(len(voltages)))

    def perturb(
        self, tile: int, region: Region, seed: int, amplitude_us: float, sign: int
    ) -> PerturbReport:
        clipped = self.tiles[tile].perturb(region, seed, amplitude_us, sign)
        return self._write_pass(region, clipped)

    def restore(self, tile: int, region: Region) -> PerturbReport:
        self.tiles[tile].restore(region)
        return self._write_pass(region, 0)

    def _write_pass(self, region: Region, clipped: int) -> PerturbReport:
        cells = region.rows * region.cols
        self._cell_writes += cells
        return PerturbReport(cells, clipped, self._spend(self.profile.timing.write_pass_ns))

    def _passes(self, n: int) -> Cost:
        self._mvm_passes += n
        return self._spend(n * self.profile.timing.mvm_pass_ns)

    def _spend(self, time_ns: float) -> Cost:
        # ns × W = nJ
        cost = Cost(time_ns, time_ns * self.profile.timing.board_power_w)
        self._cost = self._cost + cost
        return cost
