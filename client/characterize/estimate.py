"""A measured parameter: value, standard uncertainty, unit and how it was obtained."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Estimate", "declared", "not_measured"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """One parameter of the board as characterization found it.

    ``uncertainty`` is one standard error in the unit of ``value`` (0 when the value
    is exact, e.g. a converter resolution decided by model selection, or declared by
    the board). ``measured`` False: the value is what the board declares or a
    default, and ``note`` says why it could not be measured.
    """

    name: str
    """Profile field it fills, dotted (``read_noise.output_noise_ua``)."""
    value: float
    uncertainty: float
    unit: str
    note: str = ""
    """How it was measured (the estimator), or why it was not."""
    measured: bool = True


def declared(name: str, value: float, unit: str, why: str) -> Estimate:
    """A value the board states (BoardInfo) rather than one measured."""
    return Estimate(name, value, 0.0, unit, f"declared by the board: {why}", measured=False)


def not_measured(name: str, value: float, unit: str, why: str) -> Estimate:
    """A parameter this board does not let us measure; ``value`` is the profile default."""
    return Estimate(name, value, 0.0, unit, f"not measured: {why}", measured=False)
