"""Characterization recovers the profile a board was built from, on every preset and on
one no preset describes: converter bits exactly; read noise, pulse and perturbation
noise, gain spread and drift exponent within 20 % (for a parameter that is zero: within a
small absolute floor or three of its standard errors); stuck-cell maps with at least 95 % of stuck
cells found and at most 0.1 % of healthy cells marked.

Each board is its profile on small tiles (2 tiles of 32 × 32) so the file stays fast; the
estimators see only board operations (the driver's reported profile is never read: the
serial test in test_characterize_cli.py runs on a board that reports none).
"""

from __future__ import annotations

import numpy as np
import pytest

from sidra.characterize import Characterization, characterize
from sidra.characterize.budget import MeteredBoard
from sidra.characterize.ir_drop import measure_ir_drop
from sidra.emulator import PRESETS, BoardProfile, preset
from sidra.emulator.config import (
    ConductanceRange,
    Converters,
    Drift,
    DriftModel,
    Geometry,
    PerturbationWrites,
    Programming,
    ReadNoise,
    Variation,
)
from sidra.emulator.driver import EmulatorDriver

SMALL = Geometry(tiles=2, rows=32, cols=32)

UNLISTED = BoardProfile(
    preset="lab-unlisted",
    model="SIDRA-LAB",
    geometry=SMALL,
    conductance=ConductanceRange(g_min_us=2.0, g_max_us=50.0),
    read_voltage_max_v=0.25,
    converters=Converters(dac_bits=6, adc_bits=9, adc_full_scale_ua=120.0),
    read_noise=ReadNoise(output_noise_ua=0.12, sigma_g_fraction=0.015),
    programming=Programming(
        tolerance_us=0.3, max_iterations=15, pulse_gain=0.75, pulse_gain_spread=0.15,
        pulse_noise_us=0.15,
    ),
    perturbation=PerturbationWrites(write_noise_us=0.1),
    drift=Drift(model=DriftModel.CONSTANT, nu_mean=0.02, nu_std=0.008, t0_s=5.0),
    variation=Variation(gain_spread=0.02, stuck_at_min_fraction=0.004, stuck_at_max_fraction=0.003),
)  # fmt: skip
"""A board none of the presets describes: other window, converters and physics."""

BOARDS = {name: preset(name).model_copy(update={"geometry": SMALL}) for name in PRESETS}
BOARDS["unlisted"] = UNLISTED


def _pcm_nu_mean(profile: BoardProfile) -> float:
    """Mean ν of the PCM drift model at the levels drift is read at (30 % and 85 % of the
    window): μ_ν is clipped to 0.049 there, σ_ν to about 0.008."""
    return 0.049


def _within(found: float, true: float, floor: float, rel: float = 0.2) -> bool:
    return abs(found - true) <= max(rel * abs(true), floor)


@pytest.fixture(scope="module", params=sorted(BOARDS))
def characterized(
    request: pytest.FixtureRequest,
) -> tuple[BoardProfile, EmulatorDriver, Characterization]:
    profile = BOARDS[request.param]
    driver = EmulatorDriver(profile, seed=11)
    return profile, driver, characterize(driver, seed=3)


def test_converter_bits_are_exact(
    characterized: tuple[BoardProfile, EmulatorDriver, Characterization],
) -> None:
    profile, _, result = characterized
    found = result.profile.converters
    assert (found.dac_bits, found.adc_bits) == (
        profile.converters.dac_bits,
        profile.converters.adc_bits,
    )
    if profile.converters.adc_bits:
        full = profile.converters.adc_full_scale_ua
        assert found.adc_full_scale_ua == pytest.approx(full, rel=1e-4)


def test_noise_variation_and_drift_within_20_percent(
    characterized: tuple[BoardProfile, EmulatorDriver, Characterization],
) -> None:
    profile, _, result = characterized
    found = result.profile
    lsb = (
        profile.converters.adc_full_scale_ua / ((1 << (profile.converters.adc_bits - 1)) - 1)
        if profile.converters.adc_bits
        else 0.0
    )
    span = profile.conductance.g_max_us - profile.conductance.g_min_us
    checks = {
        "read_noise.output_noise_ua": (
            found.read_noise.output_noise_ua, profile.read_noise.output_noise_ua, 0.03 * lsb + 1e-3,
        ),
        "read_noise.sigma_g_fraction": (
            found.read_noise.sigma_g_fraction, profile.read_noise.sigma_g_fraction, 1e-4,
        ),
        "programming.pulse_noise_us": (
            found.programming.pulse_noise_us, profile.programming.pulse_noise_us, 0.002 * span,
        ),
        "perturbation.write_noise_us": (
            found.perturbation.write_noise_us, profile.perturbation.write_noise_us, 0.002 * span,
        ),
        "variation.gain_spread": (found.variation.gain_spread, profile.variation.gain_spread, 2e-3),
    }  # fmt: skip
    assert found.read_noise.conductance_model == profile.read_noise.conductance_model
    if profile.read_noise.conductance_model.value == "pcm-flicker":
        checks["read_noise.flicker_scale"] = (found.read_noise.flicker_scale, 1.0, 0.0)
    drift = profile.drift
    true_nu = _pcm_nu_mean(profile) if drift.model is DriftModel.PCM else drift.nu_mean
    nu = found.drift.nu_mean if found.drift.model is not DriftModel.NONE else 0.0
    checks["drift.nu_mean"] = (nu, true_nu, 2e-4)
    se = {name: e.uncertainty for name, e in result.estimates.items()}
    # On 32 x 32 tiles the wires drop 64 times less than on 256 x 256: three standard
    # errors (full-size tiles: test_ir_drop_on_full_size_tiles).
    for name in ("wordline_segment_ohm", "bitline_segment_ohm"):
        key = f"ir_drop.{name}"
        estimate = result.estimates[key]
        truth = getattr(profile.ir_drop, name)
        assert abs(estimate.value - truth) <= max(0.2 * truth, 3 * estimate.uncertainty), key
    wrong = {
        name: (round(f, 6), t)
        for name, (f, t, floor) in checks.items()
        if not _within(f, t, floor if t else max(floor, 3 * se[name]))
    }
    assert not wrong, wrong


def test_stuck_maps_find_95_percent_and_mark_at_most_0_1_percent_healthy(
    characterized: tuple[BoardProfile, EmulatorDriver, Characterization],
) -> None:
    profile, driver, result = characterized
    stuck_true = found_true = healthy = false_marks = 0
    for index, tile in enumerate(driver.board.tiles):
        for found, true in (
            (result.stuck.at_min[index], tile.stuck_min),
            (result.stuck.at_max[index], tile.stuck_max),
        ):
            stuck_true += int(true.sum())
            found_true += int((found & true).sum())
        truly = tile.stuck_min | tile.stuck_max
        marked = result.stuck.at_min[index] | result.stuck.at_max[index]
        healthy += int((~truly).sum())
        false_marks += int((marked & ~truly).sum())
    if stuck_true:
        assert found_true >= 0.95 * stuck_true
    assert false_marks <= 0.001 * healthy
    # The profile carries the maps, and a twin built from it has exactly those cells stuck.
    twin = EmulatorDriver(result.profile, seed=99)
    for index, tile in enumerate(twin.board.tiles):
        np.testing.assert_array_equal(tile.stuck_min, result.stuck.at_min[index])
        np.testing.assert_array_equal(tile.stuck_max, result.stuck.at_max[index])


@pytest.mark.parametrize("name", ["sidra-y1", "unlisted"])
@pytest.mark.parametrize("spread", [0.02, 0.1])
def test_gain_maps_recover_each_cells_gain_and_say_how_well(name: str, spread: float) -> None:
    """``gain_maps=True`` measures every tile's cells: the map errs by far less than the
    spread (so a twin with it is closer to the board than one drawing its own gains), the
    error the characterization reports is the one found, and a twin built from the
    profile has those gains. Without it the profile carries no maps."""
    base = BOARDS[name]
    profile = base.model_copy(
        update={"variation": base.variation.model_copy(update={"gain_spread": spread})}
    )
    driver = EmulatorDriver(profile, seed=5)
    result = characterize(driver, seed=3, drift=False, gain_maps=True)
    reported = result.estimates["variation.gain_maps"].value
    twin = EmulatorDriver(result.profile, seed=99)
    for index, tile in enumerate(driver.board.tiles):
        healthy = ~(tile.stuck_min | tile.stuck_max)
        found = twin.board.tiles[index].gain
        error = float(np.sqrt(np.mean((found - tile.gain)[healthy] ** 2)))
        assert error < 0.5 * spread
        assert error < 0.012
        # The reported error comes from the two programmings' disagreement: what both
        # share (a cell's own write-verify residual at g_max) is not in it.
        assert _within(reported, error, 0.001, rel=0.5)
        # The map is the profile's, to half precision, stuck cells at 1.
        assert np.all(found[~healthy] == 1.0)
    plain = characterize(EmulatorDriver(profile, seed=5), drift=False)
    assert not plain.profile.variation.gain_maps


@pytest.mark.parametrize("name", ["sidra-y1", "stress", "ideal"])
def test_ir_drop_on_full_size_tiles(name: str) -> None:
    """Word- and bit-line resistances within 5 % (0 Ω: within three standard errors, and
    0 in the profile) on a 256 x 256 tile; the board's ADC and DAC as they are (stress:
    a 6-bit ADC at 50 µA and a 4-bit DAC, so only some lines are driven)."""
    profile = preset(name)
    board = MeteredBoard(EmulatorDriver(profile, seed=2))
    info = board.info
    step = info.read_voltage_max_v / ((1 << (info.dac_bits - 1)) - 1) if info.dac_bits else 0.0
    found = measure_ir_drop(board, 1, info.adc_full_scale_ua or None, step)
    for estimate, truth in (
        (found.wordline_ohm, profile.ir_drop.wordline_segment_ohm),
        (found.bitline_ohm, profile.ir_drop.bitline_segment_ohm),
    ):
        if truth:
            assert abs(estimate.value - truth) <= 0.05 * truth, estimate
            assert found.profile_value(estimate) == estimate.value
        else:
            assert abs(estimate.value) <= max(3 * estimate.uncertainty, 1e-9), estimate
            assert found.profile_value(estimate) == 0.0
