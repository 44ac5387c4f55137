"""Board profiles: the emulator's behaviour as frozen, versioned data.

A profile is everything that distinguishes one emulated board from another.
Presets (``sidra.emulator.presets``) only change defaults; a lab can load its
own from a JSON or TOML file with :func:`load_profile`. Every field documents
its unit and physical meaning.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "BoardProfile",
    "ConductanceRange",
    "Geometry",
    "PerturbationWrites",
    "Programming",
    "ReadNoise",
    "Timing",
    "load_profile",
]

SCHEMA_VERSION = 1
"""Profile schema this emulator reads; files declaring a newer one are refused."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Geometry(_Frozen):
    """How many crossbar tiles the board has and their size."""

    tiles: int = Field(4, ge=1, le=1024)
    """Number of independent crossbar tiles on the board."""
    rows: int = Field(256, ge=1, le=4096)
    """Rows per tile: MVM inputs (word lines), TransposeMVM outputs."""
    cols: int = Field(256, ge=1, le=4096)
    """Columns per tile: MVM outputs (bit lines), TransposeMVM inputs."""


class ConductanceRange(_Frozen):
    """Programmable conductance window of one cell."""

    g_min_us: float = Field(1.0, ge=0.0)
    """Lowest programmable conductance, µS (the high-resistance state)."""
    g_max_us: float = Field(40.0, gt=0.0)
    """Highest programmable conductance, µS (the low-resistance state)."""

    @model_validator(mode="after")
    def _ordered(self) -> ConductanceRange:
        if self.g_max_us <= self.g_min_us:
            raise ValueError(f"g_max_us ({self.g_max_us}) must exceed g_min_us ({self.g_min_us})")
        return self


class ReadNoise(_Frozen):
    """Fresh Gaussian noise on every analog pass (MVM, TransposeMVM, conductance read)."""

    sigma_g_fraction: float = Field(0.0, ge=0.0, le=1.0)
    """Conductance-referred read noise: each pass sees every cell at G + σ·ξ with
    σ = sigma_g_fraction · g_max_us (µS) and ξ ~ N(0, 1) independent per cell and
    pass. On an output this is Gaussian with std σ·‖V‖₂ (µA), which is how it is
    computed."""


class Programming(_Frozen):
    """Write-verify programming: pulse, read back, repeat until within tolerance."""

    tolerance_us: float = Field(0.0, ge=0.0)
    """A cell is accepted once |G − target| ≤ tolerance_us (µS)."""
    max_iterations: int = Field(1, ge=1, le=10_000)
    """Pulse budget per cell per Program call; cells still off target are reported."""
    pulse_gain: float = Field(1.0, gt=0.0, le=2.0)
    """Fraction of the remaining error one pulse corrects on average (1 = exact)."""
    pulse_gain_spread: float = Field(0.0, ge=0.0, le=1.0)
    """Cycle-to-cycle relative spread (std) of pulse_gain, dimensionless."""
    pulse_noise_us: float = Field(0.0, ge=0.0)
    """Additive programming noise per pulse, std in µS."""


class PerturbationWrites(_Frozen):
    """Single-pulse (no verify) writes used by Perturb APPLY."""

    write_noise_us: float = Field(0.0, ge=0.0)
    """Std of the error a perturbation write leaves on a cell, µS."""


class Timing(_Frozen):
    """Modeled hardware cost of operations; energy = time × board power."""

    mvm_pass_ns: float = Field(10.0, ge=0.0)
    """One analog MVM pass (one input vector, either direction), ns."""
    write_pass_ns: float = Field(100.0, ge=0.0)
    """One parallel write pass over a tile region (a perturbation or a program pulse), ns."""
    verify_read_ns: float = Field(10.0, ge=0.0)
    """One verify read pass during write-verify programming, ns."""
    board_power_w: float = Field(3.0, ge=0.0)
    """Board power while operating, W (ns × W = nJ)."""


class BoardProfile(_Frozen):
    """A complete emulated board: identity, geometry and physics."""

    schema_version: int = Field(SCHEMA_VERSION, ge=1)
    """Version of this profile schema; newer versions than SCHEMA_VERSION are refused."""
    preset: str = "custom"
    """Name of the preset this profile came from ("custom" when loaded from a file)."""
    model: str = "SIDRA-Y1"
    """Board model reported by GetBoardInfo."""
    firmware_version: str = "emulator-1"
    """Firmware version string reported by GetBoardInfo."""
    geometry: Geometry = Geometry()
    """Tile count and size."""
    conductance: ConductanceRange = ConductanceRange()
    """Programmable conductance window."""
    read_voltage_max_v: float = Field(0.2, gt=0.0)
    """Read voltages must lie in [−read_voltage_max_v, +read_voltage_max_v], V."""
    read_noise: ReadNoise = ReadNoise()
    """Per-pass read noise."""
    programming: Programming = Programming()
    """Write-verify programming loop."""
    perturbation: PerturbationWrites = PerturbationWrites()
    """Perturbation writes."""
    timing: Timing = Timing()
    """Time and energy model."""

    @model_validator(mode="after")
    def _supported(self) -> BoardProfile:
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is newer than this emulator "
                f"supports ({SCHEMA_VERSION})"
            )
        return self


def load_profile(path: str | Path) -> BoardProfile:
    """Reads a profile from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data: dict[str, Any]
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"profile: got {path.name!r}, expected a .toml or .json file")
    return BoardProfile.model_validate(data)
