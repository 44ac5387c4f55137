"""Every preset end to end: program, MVM both ways, Perturb/RESTORE, and what GetBoardInfo says.

Presets use their full geometry (4 tiles of 256 × 256). Accuracy bounds are the
relative Frobenius error ‖I − V·G_target‖/‖V·G_target‖ of a 64-vector batch,
set at about twice what each preset's physics gives (measured over seeds):
ideal float32 only (3e-7); sidra-y1 2.5 % read noise per cell + programming
+ stuck cells ≈ 6 %; pcm relaxation σ ≈ 1 µS of 25 µS + flicker ≈ 8 %; rram
≈ 2 %; stress 2 % stuck cells, 5 % read noise and ≈ 13 % first-order IR drop
≈ 20 %.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from emu_support import matmul64, serve

from sidra.drivers import Region, rademacher
from sidra.emulator import PRESETS, BoardProfile, preset
from sidra.emulator.driver import EmulatorDriver
from sidra.hil.v1 import board_pb2 as pb

ACCURACY = {"ideal": 1e-6, "sidra-y1": 0.12, "pcm": 0.16, "rram": 0.05, "stress": 0.4}


def test_accuracy_table_covers_every_preset() -> None:
    assert set(ACCURACY) == set(PRESETS)


def _inputs(
    profile: BoardProfile, rng: np.random.Generator, g: np.ndarray, transpose: bool
) -> np.ndarray:
    """A ±uniform batch scaled so ideal outputs stay within half the ADC's full scale,
    then put on the DAC grid so the DAC itself adds no error."""
    vmax = profile.read_voltage_max_v
    matrix = g.T if transpose else g
    u = rng.uniform(-1.0, 1.0, (64, matrix.shape[0]))
    scale = vmax
    if profile.converters.adc_bits:
        scale = min(vmax, 0.5 * profile.converters.adc_full_scale_ua / np.abs(u @ matrix).max())
    v = u * scale
    if profile.converters.dac_bits:
        step = vmax / (2 ** (profile.converters.dac_bits - 1) - 1)
        v = np.rint(v / step) * step
    return v.astype(np.float32)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_mvm_transpose_and_perturb_round_trip(name: str) -> None:
    profile = preset(name)
    board = EmulatorDriver(profile, seed=3)
    rng = np.random.default_rng(61)
    lo, hi = profile.conductance.g_min_us, profile.conductance.g_max_us
    rows, cols = profile.geometry.rows, profile.geometry.cols
    g = rng.uniform(lo, hi, (rows, cols)).astype(np.float32)
    report = board.program(0, g)
    assert report.cells_written == rows * cols
    assert report.verify_iterations <= profile.programming.max_iterations

    for transpose in (False, True):
        v = _inputs(profile, rng, g, transpose)
        result = (board.transpose_mvm if transpose else board.mvm)(0, v)
        reference = matmul64(v, g.T if transpose else g)
        error = np.linalg.norm(result.currents - reference) / np.linalg.norm(reference)
        assert error < ACCURACY[name], (transpose, error)
        assert result.saturated_outputs == 0
        assert result.currents.shape == reference.shape

    # Perturb + RESTORE: the read-back difference is c·Δ (robustly: medians, since stuck
    # and clipped cells do not move), and after RESTORE nothing is left of it.
    amplitude = 0.1 * (hi - lo)
    region = Region(16, 32, 64, 96)
    inner = rng.uniform(lo + amplitude, hi - amplitude, region.shape).astype(np.float32)
    board.program(0, inner, row_offset=region.row_offset, col_offset=region.col_offset)
    before = board.read_conductance(0, region).conductances.astype(np.float64)
    board.perturb(0, seed=99, amplitude_us=amplitude, sign=-1, region=region)
    perturbed = board.read_conductance(0, region).conductances.astype(np.float64)
    board.restore(0, region)
    restored = board.read_conductance(0, region).conductances.astype(np.float64)
    delta = rademacher(99, region.shape)
    moved = (perturbed - before) * -delta
    assert float(np.median(moved)) == pytest.approx(amplitude, rel=0.1)
    assert abs(float(np.median(restored - before))) < 0.05 * amplitude
    assert abs(float(np.median((restored - before) * delta))) < 0.05 * amplitude
    if name == "ideal":
        np.testing.assert_array_equal(restored, before)
        np.testing.assert_allclose(perturbed, before - amplitude * delta, rtol=1e-6)


@pytest.mark.parametrize("name", PRESETS)
def test_get_board_info_reports_preset_and_profile_json(name: str) -> None:
    """GetBoardInfo over gRPC names the preset, and its profile_json validates back into
    exactly the preset's profile."""
    profile = preset(name)
    with serve(EmulatorDriver(profile, seed=4)) as (remote, stub):
        info = stub.GetBoardInfo(pb.GetBoardInfoRequest()).info
        assert info.emulated is True
        assert info.emulator_preset == name
        assert info.model == profile.model
        assert (info.dac_bits, info.adc_bits) == (
            profile.converters.dac_bits,
            profile.converters.adc_bits,
        )
        assert info.g_max_us == profile.conductance.g_max_us
        assert BoardProfile.model_validate_json(info.profile_json) == profile
        assert json.loads(info.profile_json)["schema_version"] == profile.schema_version
        assert BoardProfile.model_validate(remote.info.profile) == profile
        assert remote.info.emulator_preset == name
