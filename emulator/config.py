"""Board profiles: the emulator's behaviour as frozen, versioned data.

A profile is everything that distinguishes one emulated board from another.
Presets (``sidra.emulator.presets``) only change defaults; a lab can load its
own from a JSON or TOML file with :func:`load_profile`. Every field documents
its unit and physical meaning.
"""

from __future__ import annotations

import base64
import json
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from sidra.drivers.errors import refused_setting

__all__ = [
    "SCHEMA_VERSION",
    "BoardProfile",
    "ConductanceNoiseModel",
    "ConductanceRange",
    "Converters",
    "Drift",
    "DriftModel",
    "Endurance",
    "EndurancePolicy",
    "GainMap",
    "Geometry",
    "IRDrop",
    "PerturbationWrites",
    "Programming",
    "ReadNoise",
    "StuckCells",
    "Timing",
    "Variation",
    "load_profile",
    "parse_profile",
]

SCHEMA_VERSION = 3
"""Profile schema this emulator reads; files declaring a newer one are refused.
Version 2 added measured stuck-cell maps (``variation.stuck_maps``), version 3
measured per-cell gain maps (``variation.gain_maps``); every earlier file reads
unchanged."""

STUCK_MAPS_SINCE = 2
"""First schema version that may carry ``variation.stuck_maps``."""
GAIN_MAPS_SINCE = 3
"""First schema version that may carry ``variation.gain_maps``."""


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest magnitude a profile's number may have: the emulator computes in float32."""


def _within_float32(value: float) -> float:
    if abs(value) > FLOAT32_MAX:
        raise ValueError(
            f"got {value!r}, expected a magnitude of at most {FLOAT32_MAX:.4g} "
            "(the emulator computes in float32)"
        )
    return value


Real = Annotated[float, Field(strict=True), AfterValidator(_within_float32)]
"""A profile's number: an int or a float (strict: ``true`` or ``"40"`` is no number),
finite (NaN and Inf are no device's value: ``allow_inf_nan`` of the models) and within
float32's range, since the emulator holds it in float32 (an output noise of 1e308 µA
overflowed when the board was made)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Geometry(_Frozen):
    """How many crossbar tiles the board has and their size."""

    tiles: int = Field(4, ge=1, le=1024, strict=True)
    """Number of independent crossbar tiles on the board."""
    rows: int = Field(256, ge=1, le=4096, strict=True)
    """Rows per tile: MVM inputs (word lines), TransposeMVM outputs."""
    cols: int = Field(256, ge=1, le=4096, strict=True)
    """Columns per tile: MVM outputs (bit lines), TransposeMVM inputs."""


class ConductanceRange(_Frozen):
    """Programmable conductance window of one cell."""

    g_min_us: Real = Field(1.0, ge=0.0)
    """Lowest programmable conductance, µS (the high-resistance state)."""
    g_max_us: Real = Field(40.0, gt=0.0)
    """Highest programmable conductance, µS (the low-resistance state)."""

    @model_validator(mode="after")
    def _ordered(self) -> ConductanceRange:
        if self.g_max_us <= self.g_min_us:
            raise ValueError(f"g_max_us ({self.g_max_us}) must exceed g_min_us ({self.g_min_us})")
        return self


class Converters(_Frozen):
    """Input DAC and output ADC of every analog pass (both directions)."""

    dac_bits: int = Field(0, ge=0, le=24, strict=True)
    """Signed input resolution, bits; 0 = ideal. Inputs are rounded to
    max(2^(bits−1) − 1, 1) levels per polarity over ±read_voltage_max_v
    (aihwkit's inp_res = 1/126 is 7 bits in this convention)."""
    adc_bits: int = Field(0, ge=0, le=24, strict=True)
    """Signed output resolution, bits; 0 = ideal (no quantisation, no clipping)."""
    adc_full_scale_ua: Real = Field(100.0, gt=0.0)
    """Output bound, µA, when adc_bits > 0: outputs are clipped to
    ±adc_full_scale_ua and every output whose code reaches full scale is
    counted as saturated."""


class ConductanceNoiseModel(StrEnum):
    """How conductance-referred read noise depends on the cell."""

    CONSTANT = "constant"
    """Same σ for every cell: σ = sigma_g_fraction · g_max_us."""
    PCM_FLICKER = "pcm-flicker"
    """Accumulated 1/f noise of PCM (Nandakumar et al. 2019, aihwkit PCMLikeNoiseModel):
    σ = G·Q_s·sqrt(ln((t + t0 + t_read)/(2·t_read))), Q_s = min(0.0088/max(x^0.65,
    10⁻³), 0.2), x = G/g_max, t = time since the cell was last written (any write
    resets it), t0 = drift.t0_s."""


class ReadNoise(_Frozen):
    """Fresh Gaussian noise on every analog pass.

    MVM and TransposeMVM see both forms; ReadConductance sees the
    conductance-referred form only (it reads cells, not column sums).
    """

    output_noise_ua: Real = Field(0.0, ge=0.0)
    """Output-referred noise: std of Gaussian noise added to each output current, µA
    (sense amplifier and ADC input noise)."""
    sigma_g_fraction: Real = Field(0.0, ge=0.0, le=1.0)
    """Conductance-referred noise of the CONSTANT model: every pass sees each cell at
    G + σ·ξ, σ = sigma_g_fraction · g_max_us (µS), ξ ~ N(0, 1) per cell and pass.
    On an output this is Gaussian with std σ·‖V‖₂ (µA), which is how it is computed."""
    conductance_model: ConductanceNoiseModel = ConductanceNoiseModel.CONSTANT
    """Which conductance-referred model applies."""
    flicker_scale: Real = Field(1.0, ge=0.0)
    """Multiplier of the PCM_FLICKER σ (1 = the published statistics)."""
    t_read_s: Real = Field(250e-9, gt=0.0)
    """Read pulse duration of the PCM_FLICKER model, s."""


class Programming(_Frozen):
    """Write-verify programming: pulse, read back, repeat until within tolerance."""

    tolerance_us: Real = Field(0.0, ge=0.0)
    """A cell is accepted once |G − target| ≤ tolerance_us (µS)."""
    max_iterations: int = Field(1, ge=1, le=10_000, strict=True)
    """Pulse budget per cell per Program call; cells still off target are reported."""
    pulse_gain: Real = Field(1.0, gt=0.0, le=2.0)
    """Fraction of the remaining error one pulse corrects on average (1 = exact)."""
    pulse_gain_spread: Real = Field(0.0, ge=0.0, le=1.0)
    """Cycle-to-cycle relative spread (std) of pulse_gain, dimensionless."""
    pulse_noise_us: Real = Field(0.0, ge=0.0)
    """Additive programming noise per pulse, std in µS."""
    relaxation_poly_us: tuple[Real, ...] = ()
    """Noise the verify loop cannot see (conductance relaxation right after the
    last pulse): std σ(x) = Σ_k c_k·x^k µS with x = target/g_max, applied once
    per programmed cell. Empty = none. PCM: (0.26348, 1.9650, −1.1731)·g_max/25
    (Nandakumar 2019); RRAM: (0.01122, 0.01129·g_max) (ReRamCMO, 2 % acceptance)."""


class PerturbationWrites(_Frozen):
    """Single-pulse (no verify) writes used by Perturb APPLY."""

    write_noise_us: Real = Field(0.0, ge=0.0)
    """Std of the error a perturbation write leaves on a cell, µS."""


class DriftModel(StrEnum):
    """How the drift exponent ν of a cell is drawn at programming."""

    NONE = "none"
    """No drift."""
    CONSTANT = "constant"
    """ν = |nu_mean + nu_std·ξ| for every cell (aihwkit StateIndependent: 0.1 ± 0.05)."""
    PCM = "pcm"
    """State-dependent PCM statistics (Nandakumar 2019, aihwkit PCMLikeNoiseModel):
    μ_ν = clip(−0.0155·ln x + 0.0244, 0.049, 0.1), σ_ν = clip(−0.0125·ln x − 0.0059,
    0.008, 0.045), x = G/g_max; ν = |μ_ν + σ_ν·ξ|."""


class Drift(_Frozen):
    """Conductance decay G(t) = G_w·((t + t0)/t0)^(−ν) on the board's virtual clock.

    G_w is the conductance a write left in the cell and t the time since that
    write (Program, Perturb and RESTORE all write, so each resets t to 0).
    """

    model: DriftModel = DriftModel.NONE
    """How ν is drawn per cell at programming time."""
    nu_mean: Real = Field(0.0, ge=0.0, le=1.0)
    """Mean drift exponent of the CONSTANT model, dimensionless."""
    nu_std: Real = Field(0.0, ge=0.0, le=1.0)
    """Device-to-device std of ν in the CONSTANT model."""
    t0_s: Real = Field(20.0, gt=0.0)
    """Time scale of the decay, s: G has fallen by the factor 2^(−ν) once t = t0."""


Cell = tuple[int, int]
"""(row, column) of a cell within its tile."""


class StuckCells(_Frozen):
    """The stuck cells of one tile, listed (a measured map, ``sidra board characterize``).

    A tile with a map has exactly these stuck cells; the stuck fractions of
    :class:`Variation` only draw the defects of tiles without one.
    """

    tile: int = Field(ge=0, strict=True)
    """Tile index the map belongs to."""
    at_min: tuple[Cell, ...] = ()
    """Cells stuck at g_min_us, as (row, column)."""
    at_max: tuple[Cell, ...] = ()
    """Cells stuck at g_max_us, as (row, column)."""

    @model_validator(mode="after")
    def _disjoint(self) -> StuckCells:
        both = set(self.at_min) & set(self.at_max)
        if both:
            cell = min(both)
            raise ValueError(
                f"stuck_maps tile {self.tile}: cell {list(cell)} listed both at_min and "
                "at_max (a cell is stuck at one bound)"
            )
        return self


class GainMap(_Frozen):
    """Each cell's conductance gain on one tile, measured (``sidra board characterize``).

    A tile with a map conducts G·gain[row, col] for the G its write-verify loop left,
    instead of drawing the gains from ``gain_spread``.
    """

    tile: int = Field(ge=0, strict=True)
    """Tile index the map belongs to."""
    gains_f16: str
    """The gains, dimensionless: rows × cols little-endian IEEE half floats, row-major,
    base64-encoded (a 256 × 256 tile is 175 kB of text; half precision resolves a
    gain near 1 to 0.05 %)."""

    @field_validator("gains_f16")
    @classmethod
    def _decodes(cls, text: str) -> str:
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise ValueError(f"gains_f16: not base64 ({exc})") from None
        if len(raw) % 2:
            raise ValueError(f"gains_f16: {len(raw)} bytes, expected 2 per cell")
        gains = np.frombuffer(raw, "<f2")
        bad = ~(np.isfinite(gains) & (gains > 0.0) & (gains <= 4.0))
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"gains_f16: got {float(gains[at])} at cell {at}, expected gains in (0, 4]"
            )
        return text

    @classmethod
    def of(cls, tile: int, gains: npt.ArrayLike) -> GainMap:
        """The map of ``tile`` for the gains [rows, cols]."""
        half = np.ascontiguousarray(gains, "<f2")
        return cls(tile=tile, gains_f16=base64.b64encode(half.tobytes()).decode("ascii"))

    def gains(self, rows: int, cols: int) -> npt.NDArray[np.float32]:
        """The gains as float32 [rows, cols]; ValueError when the map has another size."""
        flat = np.frombuffer(base64.b64decode(self.gains_f16), "<f2")
        if flat.size != rows * cols:
            raise ValueError(
                f"variation.gain_maps tile {self.tile}: {flat.size} gains, expected "
                f"{rows}x{cols} = {rows * cols}"
            )
        return flat.astype(np.float32).reshape(rows, cols)


class Variation(_Frozen):
    """Static device-to-device variation and defects, drawn once per board from its seed."""

    gain_spread: Real = Field(0.0, ge=0.0, le=1.0)
    """Device-to-device relative std of each cell's conductance gain: a cell the
    write-verify loop leaves at G conducts G·(1 + s·ξ) in MVMs and reads (the
    verify path does not see the mismatch, so Program's reported errors do not
    include it). Dimensionless; drawn once per board, before the stuck map."""
    stuck_at_min_fraction: Real = Field(0.0, ge=0.0, le=1.0)
    """Fraction of cells stuck at g_min_us (open / never-formed devices)."""
    stuck_at_max_fraction: Real = Field(0.0, ge=0.0, le=1.0)
    """Fraction of cells stuck at g_max_us (shorted devices)."""
    stuck_maps: tuple[StuckCells, ...] = ()
    """Measured stuck cells, one map per listed tile (schema version 2): a listed tile
    has exactly its map's stuck cells, the other tiles draw theirs from the fractions
    above. The draw is made either way, so listing a map leaves every other random
    number of the board unchanged."""

    gain_maps: tuple[GainMap, ...] = ()
    """Measured gains, one map per listed tile (schema version 3): a listed tile's cells
    have exactly these gains, the other tiles draw theirs from ``gain_spread``. The draw
    is made either way, so listing a map leaves every other random number unchanged."""

    @model_serializer(mode="wrap")
    def _gain_maps_only_when_listed(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A profile without gain maps is written as schema 2 wrote it: readable by an
        # emulator that knows no gain maps.
        data = handler(self)
        if not self.gain_maps and isinstance(data, dict):
            data.pop("gain_maps", None)
        return data

    def gain_map(self, tile: int) -> GainMap | None:
        """The gain map of ``tile``, None when the profile lists none for it."""
        return next((m for m in self.gain_maps if m.tile == tile), None)

    def stuck_map(self, tile: int) -> StuckCells | None:
        """The map of ``tile``, None when the profile lists none for it."""
        return next((m for m in self.stuck_maps if m.tile == tile), None)


class IRDrop(_Frozen):
    """First-order wire-resistance (IR drop) model.

    Word lines run along rows with their periphery (drivers in MVM, sense in
    TransposeMVM) at column 0; bit lines run along columns with their
    periphery at the last row. To first order in the segment resistances the
    crossbar stays linear: each cell's effective conductance is reduced by
    G_ij·(r_wl·A_ij + r_bl·B_ij), with A_ij = Σ_m G_im·(min(m, j) + 1) and
    B_ij = Σ_n G_nj·(R − max(n, i)). By reciprocity the same effective matrix
    serves the transpose direction.
    """

    wordline_segment_ohm: Real = Field(0.0, ge=0.0)
    """Word-line resistance between adjacent cells (and periphery to first cell), Ω."""
    bitline_segment_ohm: Real = Field(0.0, ge=0.0)
    """Bit-line resistance between adjacent cells (and last cell to periphery), Ω."""


class EndurancePolicy(StrEnum):
    """What happens when a write would take a cell past its budget."""

    WARN = "warn"
    """Write anyway; the response counts the cells over budget."""
    REFUSE = "refuse"
    """Refuse the request with OUT_OF_RANGE (board unchanged); see Endurance.policy."""


class Endurance(_Frozen):
    """Per-cell write counting (programming pulses and perturbation writes)."""

    write_budget: int = Field(0, ge=0, strict=True)
    """Writes a cell may take; 0 = unlimited."""
    policy: EndurancePolicy = EndurancePolicy.REFUSE
    """Behaviour when a write would exceed write_budget. With REFUSE, Perturb
    is refused if any cell of its region is at the budget, and Program if any
    cell has no write left; otherwise Program caps each cell's pulses at what
    the cell has left (cells cut short are reported unconverged)."""


class Timing(_Frozen):
    """Modeled hardware cost of operations; energy = time × board power."""

    mvm_pass_ns: Real = Field(10.0, ge=0.0)
    """One analog MVM pass (one input vector, either direction), ns."""
    write_pass_ns: Real = Field(100.0, ge=0.0)
    """One parallel write pass over a tile region (a perturbation or a program pulse), ns."""
    verify_read_ns: Real = Field(10.0, ge=0.0)
    """One verify read pass during write-verify programming, ns."""
    host_loss_ns: Real = Field(100.0, ge=0.0)
    """Host (CMOS) computation of one loss from the outputs, ns; clients charge it."""
    board_power_w: Real = Field(3.0, ge=0.0)
    """Board power while operating, W (ns × W = nJ)."""


class BoardProfile(_Frozen):
    """A complete emulated board: identity, geometry and physics."""

    schema_version: int = Field(SCHEMA_VERSION, ge=1, strict=True)
    """Version of this profile schema; newer versions than SCHEMA_VERSION are refused."""
    preset: str = "custom"
    """Name reported as the emulator preset: the preset's name, or whatever a
    profile file says ("custom" if it says nothing)."""
    model: str = "SIDRA-Y1"
    """Board model reported by GetBoardInfo."""
    firmware_version: str = "emulator-1"
    """Firmware version string reported by GetBoardInfo."""
    geometry: Geometry = Geometry()
    """Tile count and size."""
    conductance: ConductanceRange = ConductanceRange()
    """Programmable conductance window."""
    read_voltage_max_v: Real = Field(0.2, gt=0.0)
    """Read voltages must lie in [−read_voltage_max_v, +read_voltage_max_v], V."""
    converters: Converters = Converters()
    """Input DAC and output ADC."""
    read_noise: ReadNoise = ReadNoise()
    """Per-pass read noise."""
    programming: Programming = Programming()
    """Write-verify programming loop."""
    perturbation: PerturbationWrites = PerturbationWrites()
    """Perturbation writes."""
    drift: Drift = Drift()
    """Conductance drift on the virtual clock."""
    variation: Variation = Variation()
    """Device-to-device variation and stuck cells."""
    ir_drop: IRDrop = IRDrop()
    """Wire resistance."""
    endurance: Endurance = Endurance()
    """Write budget per cell."""
    timing: Timing = Timing()
    """Time and energy model."""

    @model_validator(mode="after")
    def _supported(self) -> BoardProfile:
        if self.schema_version > SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is newer than this emulator "
                f"supports ({SCHEMA_VERSION})"
            )
        g = self.geometry
        self._check_tile_maps(
            "stuck_maps", [m.tile for m in self.variation.stuck_maps], STUCK_MAPS_SINCE
        )
        for stuck in self.variation.stuck_maps:
            for row, col in (*stuck.at_min, *stuck.at_max):
                if not (0 <= row < g.rows and 0 <= col < g.cols):
                    raise ValueError(
                        f"variation.stuck_maps tile {stuck.tile}: cell {[row, col]} outside "
                        f"the {g.rows}x{g.cols} tile"
                    )
        self._check_tile_maps(
            "gain_maps", [m.tile for m in self.variation.gain_maps], GAIN_MAPS_SINCE
        )
        for gains in self.variation.gain_maps:
            gains.gains(g.rows, g.cols)  # the size, or ValueError
        return self

    def _check_tile_maps(self, name: str, tiles: list[int], since: int) -> None:
        """Per-tile maps ``variation.<name>``: allowed from schema ``since``, each tile of
        the board listed at most once."""
        if tiles and self.schema_version < since:
            raise ValueError(
                f"variation.{name} needs schema_version >= {since}, got {self.schema_version}"
            )
        seen: set[int] = set()
        for tile in tiles:
            if tile >= self.geometry.tiles or tile in seen:
                raise ValueError(
                    f"variation.{name} tile: got {tile}, expected a tile index "
                    f"below {self.geometry.tiles} listed once"
                )
            seen.add(tile)


def load_profile(path: str | Path) -> BoardProfile:
    """Reads a profile from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"profile: got {path.name!r}, expected a .toml or .json file")
    return parse_profile(path.read_text(encoding="utf-8"), path.suffix)


def parse_profile(text: str, suffix: str = ".toml") -> BoardProfile:
    """A profile from the text of a ``.toml`` (default) or ``.json`` file; ValueError
    (tomllib's, json's or pydantic's) saying what is wrong."""
    try:
        data: dict[str, Any] = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except ValueError as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"not valid {suffix.removeprefix('.').upper()}: {exc}") from None
    try:
        return BoardProfile.model_validate(data)
    except ValidationError as exc:  # one short line per refused value, not pydantic's report
        raise ValueError(
            "; ".join(refused_setting(e, _allowed_keys) for e in exc.errors())
        ) from None


def _allowed_keys(location: tuple[Any, ...]) -> str:
    """The keys of the section (or list item: ``variation.stuck_maps.0``) an unknown key
    at ``location`` stands in, as a profile file spells them."""
    model: Any = BoardProfile
    for part in location[:-1]:
        if isinstance(part, int):  # an item of a list of tables: its element type
            continue
        annotation = model.model_fields[str(part)].annotation
        model = next(
            (a for a in getattr(annotation, "__args__", (annotation,)) if a is not Ellipsis),
            annotation,
        )
    return ", ".join(getattr(model, "model_fields", ()))
