"""Named board profiles. Presets only change defaults of :class:`BoardProfile`."""

from __future__ import annotations

from sidra.emulator.config import (
    BoardProfile,
    PerturbationWrites,
    Programming,
    ReadNoise,
)

__all__ = ["DEFAULT_PRESET", "PRESETS", "preset"]


def _ideal() -> BoardProfile:
    """Exact arithmetic: no noise, programming hits every target in one pulse.

    For unit tests and for checking algorithms against numpy references.
    """
    return BoardProfile(preset="ideal", model="SIDRA-IDEAL")


def _sidra_y1() -> BoardProfile:
    """The SIDRA Y1 board as the default noisy emulator.

    256×256 tiles; one MVM pass 10 ns, one write pass 100 ns, 3 W board power
    (SIDRA design notes, SPSA lab exercise). Read noise 1 % of g_max per cell
    and pass (conductance-referred, the PCM_READ-style figure of aihwkit's
    hardware-aware preset is 1.75 %); write-verify to 0.2 µS with 0.1 µS
    pulse noise and 10 % cycle-to-cycle gain spread; perturbation writes
    without verify leave 0.05 µS error.
    """
    return BoardProfile(
        preset="sidra-y1",
        model="SIDRA-Y1",
        read_noise=ReadNoise(sigma_g_fraction=0.01),
        programming=Programming(
            tolerance_us=0.2,
            max_iterations=20,
            pulse_gain=0.8,
            pulse_gain_spread=0.1,
            pulse_noise_us=0.1,
        ),
        perturbation=PerturbationWrites(write_noise_us=0.05),
    )


PRESETS = {
    "ideal": _ideal,
    "sidra-y1": _sidra_y1,
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
