"""Named board profiles. Presets only change defaults of :class:`BoardProfile`.

Each preset's docstring gives its sources; figures are collected in
docs/emulator.md.
"""

from __future__ import annotations

from collections.abc import Callable

from sidra.emulator.config import (
    BoardProfile,
    ConductanceNoiseModel,
    ConductanceRange,
    Converters,
    Drift,
    DriftModel,
    Endurance,
    EndurancePolicy,
    IRDrop,
    PerturbationWrites,
    Programming,
    ReadNoise,
    Variation,
)

__all__ = ["DEFAULT_PRESET", "PRESETS", "preset"]


def _ideal() -> BoardProfile:
    """Exact arithmetic: no noise, no quantisation, programming hits every target.

    For unit tests and for checking algorithms against numpy references.
    """
    return BoardProfile(preset="ideal", model="SIDRA-IDEAL")


def _sidra_y1() -> BoardProfile:
    """The SIDRA Y1 board, the default emulator, with every effect switched on.

    Timing from the SIDRA design notes (SPSA lab exercise): one MVM pass 10 ns,
    one write pass 100 ns, host loss 100 ns, 3 W board power. About 5 % noise
    per analog pass: conductance-referred read noise of 2.5 % of g_max per cell
    (≈ 4–5 % of a typical output) plus 0.05 µA sense-amplifier noise. 8-bit
    DAC and 12-bit ADC over ±160 µA (aihwkit defaults are 7/9 bits over
    normalised bounds). Write-verify to 0.2 µS; 1 % gain variation, 0.05 %
    stuck cells each way, weak drift (ν = 0.005 ± 0.002, t0 = 20 s), IR drop of
    0.01 Ω per segment, and a 10⁸-write endurance budget that warns.
    """
    return BoardProfile(
        preset="sidra-y1",
        model="SIDRA-Y1",
        converters=Converters(dac_bits=8, adc_bits=12, adc_full_scale_ua=160.0),
        read_noise=ReadNoise(output_noise_ua=0.05, sigma_g_fraction=0.025),
        programming=Programming(
            tolerance_us=0.2,
            max_iterations=20,
            pulse_gain=0.8,
            pulse_gain_spread=0.1,
            pulse_noise_us=0.1,
        ),
        perturbation=PerturbationWrites(write_noise_us=0.05),
        drift=Drift(model=DriftModel.CONSTANT, nu_mean=0.005, nu_std=0.002, t0_s=20.0),
        variation=Variation(
            gain_spread=0.01, stuck_at_min_fraction=0.0005, stuck_at_max_fraction=0.0005
        ),
        ir_drop=IRDrop(wordline_segment_ohm=0.01, bitline_segment_ohm=0.01),
        endurance=Endurance(write_budget=100_000_000, policy=EndurancePolicy.WARN),
    )


def _pcm() -> BoardProfile:
    """IBM phase-change memory statistics (Nandakumar et al., ICECS 2019; aihwkit
    PCMLikeNoiseModel): g_max 25 µS, programming noise σ = 0.26348 + 1.9650x −
    1.1731x² µS (x = G/g_max) left after verify, drift ν drawn from the
    state-dependent PCM distribution with t0 = 20 s, accumulated 1/f read
    noise with t_read = 250 ns. On/off ratio 100 (g_min 0.25 µS).
    """
    return BoardProfile(
        preset="pcm",
        model="SIDRA-PCM",
        conductance=ConductanceRange(g_min_us=0.25, g_max_us=25.0),
        converters=Converters(dac_bits=8, adc_bits=10, adc_full_scale_ua=100.0),
        read_noise=ReadNoise(conductance_model=ConductanceNoiseModel.PCM_FLICKER, t_read_s=250e-9),
        programming=Programming(
            tolerance_us=0.25,
            max_iterations=20,
            pulse_gain=0.7,
            pulse_gain_spread=0.2,
            pulse_noise_us=0.2,
            relaxation_poly_us=(0.26348, 1.9650, -1.1731),
        ),
        perturbation=PerturbationWrites(write_noise_us=0.3),
        drift=Drift(model=DriftModel.PCM, t0_s=20.0),
    )


def _rram() -> BoardProfile:
    """Single-device RRAM with an offset range (aihwkit ReRamCMONoiseModel, 9.0–88.2 µS):
    write-verify at 2 % acceptance then relaxation σ = 0.01122 + 0.01129·G µS,
    weak drift (ν = 0.01 ± 0.005) and 0.5 % conductance-referred read noise.
    """
    g_max = 88.2
    return BoardProfile(
        preset="rram",
        model="SIDRA-RRAM",
        conductance=ConductanceRange(g_min_us=9.0, g_max_us=g_max),
        converters=Converters(dac_bits=8, adc_bits=10, adc_full_scale_ua=400.0),
        read_noise=ReadNoise(sigma_g_fraction=0.005),
        programming=Programming(
            tolerance_us=0.02 * (g_max - 9.0) / 2,
            max_iterations=30,
            pulse_gain=0.6,
            pulse_gain_spread=0.3,
            pulse_noise_us=0.3,
            relaxation_poly_us=(0.01122, 0.01129 * g_max),
        ),
        perturbation=PerturbationWrites(write_noise_us=0.5),
        drift=Drift(model=DriftModel.CONSTANT, nu_mean=0.01, nu_std=0.005, t0_s=1.0),
        endurance=Endurance(write_budget=1_000_000, policy=EndurancePolicy.REFUSE),
    )


def _stress() -> BoardProfile:
    """A deliberately bad board for robustness tests: 1 % of cells stuck at each bound,
    strong IR drop (0.1 Ω per segment), 4-bit DAC, 6-bit ADC over ±50 µA, 5 %
    read noise, 5 % gain variation and a 1,000-write budget that refuses.
    """
    return BoardProfile(
        preset="stress",
        model="SIDRA-STRESS",
        converters=Converters(dac_bits=4, adc_bits=6, adc_full_scale_ua=50.0),
        read_noise=ReadNoise(output_noise_ua=0.2, sigma_g_fraction=0.05),
        programming=Programming(
            tolerance_us=0.5,
            max_iterations=10,
            pulse_gain=0.6,
            pulse_gain_spread=0.3,
            pulse_noise_us=0.3,
        ),
        perturbation=PerturbationWrites(write_noise_us=0.2),
        drift=Drift(model=DriftModel.CONSTANT, nu_mean=0.05, nu_std=0.02),
        variation=Variation(
            gain_spread=0.05, stuck_at_min_fraction=0.01, stuck_at_max_fraction=0.01
        ),
        ir_drop=IRDrop(wordline_segment_ohm=0.1, bitline_segment_ohm=0.1),
        endurance=Endurance(write_budget=1000, policy=EndurancePolicy.REFUSE),
    )


PRESETS: dict[str, Callable[[], BoardProfile]] = {
    "ideal": _ideal,
    "sidra-y1": _sidra_y1,
    "pcm": _pcm,
    "rram": _rram,
    "stress": _stress,
}
"""Preset name -> factory of its profile."""

DEFAULT_PRESET = "sidra-y1"


def preset(name: str) -> BoardProfile:
    """The profile of preset ``name``."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(
            f"preset: got {name!r}, expected one of {', '.join(sorted(PRESETS))}"
        ) from None
