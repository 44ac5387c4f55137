"""``characterize(board)``: every measurement in a safe order, and the profile they make.

Order matters because measurements leave state behind: stuck cells first (they
program every tile and every later estimate excludes them), then the converters,
variation, read noise, perturbation and programming on one block of one tile, and
drift last (it advances the board's clock, which ages every cell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sidra.characterize.blocks import block_of
from sidra.characterize.budget import Budget, MeteredBoard
from sidra.characterize.converters import measure_adc, measure_dac
from sidra.characterize.drift import DriftFinding, measure_drift
from sidra.characterize.estimate import Estimate, declared, not_measured
from sidra.characterize.ir_drop import IRDropFinding, measure_ir_drop
from sidra.characterize.perturbation import measure_perturbation_noise
from sidra.characterize.programming import measure_programming
from sidra.characterize.read_noise import (
    DEFAULT_T0_S,
    T_READ_S,
    measure_conductance_noise,
    measure_output_noise,
)
from sidra.characterize.variation import (
    GainMaps,
    StuckFinding,
    cell_gain_maps,
    measure_gain_spread,
    measure_stuck_cells,
)
from sidra.drivers import Board
from sidra.emulator.config import (
    GAIN_MAPS_SINCE,
    STUCK_MAPS_SINCE,
    BoardProfile,
    ConductanceNoiseModel,
    DriftModel,
    EndurancePolicy,
    GainMap,
)

__all__ = ["GAIN_READS", "Characterization", "Part", "characterize"]

GAIN_READS = 8
"""Reads of each tile after each of its two programmings to g_max, for its gain map."""


@dataclass(frozen=True, slots=True)
class Part:
    """One measurement: what it found and what it cost."""

    name: str
    estimates: tuple[Estimate, ...]
    budget: Budget


@dataclass(frozen=True, slots=True)
class Characterization:
    """Everything ``characterize`` found, and the profile of the board's twin."""

    parts: tuple[Part, ...]
    profile: BoardProfile
    stuck: StuckFinding
    not_measured: tuple[str, ...] = field(default=())
    """Quantities this board did not let us measure, each with the reason."""

    @property
    def budget(self) -> Budget:
        total = Budget()
        for part in self.parts:
            total = total + part.budget
        return total

    @property
    def estimates(self) -> dict[str, Estimate]:
        return {e.name: e for part in self.parts for e in part.estimates}


def characterize(
    board: Board,
    *,
    tile: int = 0,
    block_size: int = 32,
    seed: int = 0,
    drift: bool = True,
    gain_maps: bool = False,
) -> Characterization:
    """Measures ``board`` through its operations and builds its emulator profile.

    ``tile``: the tile the block statistics run on (stuck maps cover every tile);
    ``block_size``: rows and columns of that block; ``seed``: the random inputs and
    offsets; ``drift`` False skips the drift measurement (it advances the clock);
    ``gain_maps`` measures each cell's gain on every tile into the profile
    (``variation.gain_maps``, 175 kB per 256 × 256 tile) instead of the spread alone.
    The board is left programmed with test patterns: characterize a board before
    putting a workload on it.
    """
    info = board.info
    if not 0 <= tile < info.tile_count:
        raise ValueError(f"tile: got {tile}, expected 0 <= tile < {info.tile_count}")
    metered = MeteredBoard(board)
    rng = np.random.default_rng(seed)
    block = block_of(board, block_size, block_size)
    parts: list[Part] = []
    stuck_found = measure_stuck_cells(metered, gain_reads=GAIN_READS if gain_maps else 0)
    parts.append(Part("stuck cells and window", stuck_found.estimates, stuck_found.budget))
    stuck = stuck_found.stuck(tile)
    adc = measure_adc(metered, tile, rng)
    dac = measure_dac(metered, tile, block, adc, rng)
    parts.append(Part("converters", adc.estimates + dac.estimates, adc.budget + dac.budget))
    full_scale = adc.full_scale_ua.value if adc.bits.value > 0 else None
    wires = measure_ir_drop(metered, tile, full_scale, dac.step_v)
    parts.append(Part("IR drop", wires.estimates, wires.budget))
    gain = measure_gain_spread(metered, tile, block, stuck)
    maps = cell_gain_maps(stuck_found, gain.gain_spread.value) if gain_maps else None
    found = gain.estimates if maps is None else (*gain.estimates, maps.error)
    parts.append(Part("gain variation", found, gain.budget))
    conductance = measure_conductance_noise(metered, tile, block, stuck)
    output = measure_output_noise(metered, tile, block, conductance, dac.step_v, adc.lsb_ua, rng)
    parts.append(
        Part(
            "read noise",
            conductance.estimates + output.estimates,
            conductance.budget + output.budget,
        )
    )
    perturbation = measure_perturbation_noise(metered, tile, block, stuck, gain.gain_spread.value)
    parts.append(Part("perturbation writes", perturbation.estimates, perturbation.budget))
    programming = measure_programming(metered, tile, block, stuck, rng)
    parts.append(Part("write-verify programming", programming.estimates, programming.budget))
    with metered.spend() as spent:
        budget = metered.read_write_counts(tile, block).write_budget
    if drift:
        drifted = measure_drift(metered, tile, block, stuck)
    else:
        why = "skipped (drift=False)"
        drifted = DriftFinding(
            not_measured("drift.nu_mean", 0.0, "", why),
            not_measured("drift.nu_std", 0.0, "", why),
            not_measured("drift.t0_s", DEFAULT_T0_S, "s", why),
            Budget(),
        )
    parts.append(Part("drift", drifted.estimates, drifted.budget))
    endurance = declared("endurance.write_budget", budget, "writes", "ReadWriteCounts")
    parts.append(Part("declared", (endurance,), spent[0]))
    flicker_t0 = drifted.t0_s.value if drifted.measured else DEFAULT_T0_S
    profile = _profile(board, parts, stuck_found, maps, wires, conductance.model, flicker_t0)
    skipped = tuple(
        f"{e.name}: {e.note}" for part in parts for e in part.estimates if not e.measured
    )
    return Characterization(tuple(parts), profile, stuck_found, skipped)


def _cells(mask: np.ndarray[Any, Any]) -> list[list[int]]:
    return [[int(r), int(c)] for r, c in zip(*np.nonzero(mask), strict=True)]


def _profile(
    board: Board,
    parts: list[Part],
    stuck: StuckFinding,
    gains: GainMaps | None,
    wires: IRDropFinding,
    noise_model: str,
    flicker_t0_s: float,
) -> BoardProfile:
    """The emulator profile of the measured board, in the oldest schema version that
    carries it (2: stuck maps; 3: gain maps too)."""
    info = board.info
    e = {est.name: est for part in parts for est in part.estimates}

    def value(name: str) -> float:
        return float(e[name].value)

    flicker_scale = value("read_noise.flicker_scale")
    if noise_model == "pcm-flicker":  # measured at t0 = 20 s: rescale to the measured t0
        flicker_scale *= float(
            np.sqrt(np.log((DEFAULT_T0_S + T_READ_S) / (2 * T_READ_S)))
            / np.sqrt(np.log((flicker_t0_s + T_READ_S) / (2 * T_READ_S)))
        )
    nu = e["drift.nu_mean"]
    drifting = nu.measured and nu.value > 3 * nu.uncertainty and nu.value > 1e-5
    data: dict[str, Any] = {
        # The oldest schema that carries what was measured: readable by older versions.
        "schema_version": STUCK_MAPS_SINCE if gains is None else GAIN_MAPS_SINCE,
        "preset": "characterized",
        "model": info.model,
        "firmware_version": info.firmware_version,
        "geometry": {"tiles": info.tile_count, "rows": info.rows, "cols": info.cols},
        "conductance": {"g_min_us": info.g_min_us, "g_max_us": info.g_max_us},
        "read_voltage_max_v": info.read_voltage_max_v,
        "converters": {
            "dac_bits": int(value("converters.dac_bits")),
            "adc_bits": int(value("converters.adc_bits")),
            "adc_full_scale_ua": max(value("converters.adc_full_scale_ua"), 1e-6),
        },
        "read_noise": {
            "output_noise_ua": value("read_noise.output_noise_ua"),
            "sigma_g_fraction": min(value("read_noise.sigma_g_fraction"), 1.0),
            "conductance_model": ConductanceNoiseModel(noise_model).value,
            "flicker_scale": flicker_scale,
            "t_read_s": T_READ_S,
        },
        "programming": {
            "tolerance_us": value("programming.tolerance_us"),
            "max_iterations": int(value("programming.max_iterations")),
            "pulse_gain": float(np.clip(value("programming.pulse_gain"), 1e-3, 2.0)),
            "pulse_gain_spread": float(np.clip(value("programming.pulse_gain_spread"), 0, 1)),
            "pulse_noise_us": value("programming.pulse_noise_us"),
        },
        "perturbation": {"write_noise_us": value("perturbation.write_noise_us")},
        "drift": {
            "model": (DriftModel.CONSTANT if drifting else DriftModel.NONE).value,
            "nu_mean": float(np.clip(nu.value, 0, 1)) if drifting else 0.0,
            "nu_std": float(np.clip(value("drift.nu_std"), 0, 1)) if drifting else 0.0,
            "t0_s": max(flicker_t0_s, 1e-6),
        },
        "variation": {
            "gain_spread": float(np.clip(value("variation.gain_spread"), 0, 1)),
            "stuck_at_min_fraction": value("variation.stuck_at_min_fraction"),
            "stuck_at_max_fraction": value("variation.stuck_at_max_fraction"),
            "stuck_maps": [
                {"tile": t, "at_min": _cells(stuck.at_min[t]), "at_max": _cells(stuck.at_max[t])}
                for t in range(info.tile_count)
            ],
        },
        "ir_drop": {
            "wordline_segment_ohm": wires.profile_value(wires.wordline_ohm),
            "bitline_segment_ohm": wires.profile_value(wires.bitline_ohm),
        },
        "endurance": {
            "write_budget": int(value("endurance.write_budget")),
            "policy": EndurancePolicy.WARN.value,
        },
        "timing": {
            "mvm_pass_ns": info.timing.mvm_pass_ns,
            "write_pass_ns": info.timing.write_pass_ns,
            "verify_read_ns": info.timing.verify_read_ns,
            "host_loss_ns": info.timing.host_loss_ns,
            "board_power_w": info.timing.board_power_w,
        },
    }
    if gains is not None:
        data["variation"]["gain_maps"] = [
            GainMap.of(t, tile_gains).model_dump() for t, tile_gains in enumerate(gains.gains)
        ]
    return BoardProfile.model_validate(data)
