"""Request checks every driver applies before a request reaches a board.

Each check raises :class:`InvalidArgument` (malformed) or :class:`OutOfRange`
(outside the board's limits) naming the request field, the value received and
what is allowed. Checks never modify the board, so a rejected request leaves
it unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers.errors import InvalidArgument, OutOfRange
from sidra.drivers.types import BoardInfo, Region

FloatArray = npt.NDArray[np.float32]

__all__ = [
    "CLOCK_LIMIT_S",
    "as_array",
    "check_amplitude",
    "check_conductances",
    "check_region",
    "check_seconds",
    "check_seed",
    "check_sign",
    "check_tile",
    "check_voltages",
    "pass_voltages",
    "float32_matrix",
    "is_integer",
    "is_real",
    "to_float32",
]


FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_integer(value: Any) -> bool:
    """A whole number as Python or numpy hold one; a bool is no number here."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_real(value: Any) -> bool:
    """A real number as Python or numpy hold one (an integer or a float; no bool)."""
    return is_integer(value) or isinstance(value, float | np.floating)


def check_tile(info: BoardInfo, tile: int) -> None:
    allowed = f"an integer in 0 .. {info.tile_count - 1} (tile_count)"
    if not is_integer(tile):
        raise InvalidArgument("tile", tile, allowed)
    if not 0 <= tile < info.tile_count:
        raise OutOfRange("tile", tile, allowed)


def as_array(field: str, value: Any) -> npt.NDArray[Any]:
    """``np.asarray(value)``, or an error naming ``field`` when ``value`` is no array
    (nested sequences of different lengths)."""
    try:
        return np.asarray(value)
    except ValueError as exc:  # "setting an array element with a sequence", ragged rows
        raise InvalidArgument(
            f"{field}.shape", f"{type(value).__name__} of rows of different lengths",
            "a 2-D array: every row the same length",
        ) from exc  # fmt: skip


def to_float32(field: str, value: Any) -> FloatArray:
    """``value`` as a float32 array; finite values beyond float32's range are OutOfRange.

    Casting them would silently turn a finite number into Inf.
    """
    array = as_array(field, value)
    if array.dtype.kind not in "fiu":  # strings, objects (None), booleans: no voltages
        raise InvalidArgument(f"{field}.dtype", array.dtype, "a real numeric array (float32)")
    if array.dtype.kind == "f" and array.dtype.itemsize > 4:
        big = np.isfinite(array) & (np.abs(array) > FLOAT32_MAX)
        if big.any():
            first = tuple(int(i) for i in np.argwhere(big)[0])
            raise OutOfRange(
                field,
                f"{float(array[first]):.9g} at {list(first)}",
                f"values representable as float32 (|value| <= {FLOAT32_MAX:.9g})",
            )
    return array.astype(np.float32, copy=False)


def float32_matrix(field: str, value: Any) -> FloatArray:
    """``value`` as a finite 2-D float32 array, or an error naming ``field``."""
    array = as_array(field, value)
    if array.dtype.kind not in "fiu":
        raise InvalidArgument(f"{field}.dtype", array.dtype, "a real numeric array (float32)")
    if array.ndim != 2:
        raise InvalidArgument(f"{field}.shape", list(array.shape), "a 2-D array")
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidArgument(
            field,
            f"{int(bad.sum())} NaN/Inf values (first {array[first]} at {list(first)})",
            "finite numbers",
        )
    return to_float32(field, array)


_REGION_FIELDS = ("row_offset", "col_offset", "rows", "cols")
# Program places its conductance tensor at the top-level row_offset/col_offset and takes
# the region's size from the tensor's shape; every other region is a Region message.
_TENSOR_PATHS = {
    "row_offset": "row_offset",
    "col_offset": "col_offset",
    "rows": "conductances.shape",
    "cols": "conductances.shape",
}


def check_region(info: BoardInfo, region: Region, field: str = "region") -> Region:
    """The region with sizes resolved, if it lies inside a tile.

    ``field`` says where the region came from: a Region message's path (``"region"``,
    ``"regions[2].region"``) or ``"conductances"`` (Program: offsets plus the tensor's
    shape); errors name the matching request paths (``region.rows``; ``row_offset``,
    ``conductances.shape``).
    """
    if not isinstance(region, Region):  # a tuple, say: which number is which is not said
        raise InvalidArgument(
            field, repr(region)[:80], "a Region(row_offset, col_offset, rows, cols)"
        )
    path = (
        _TENSOR_PATHS
        if field == "conductances"
        else {name: f"{field}.{name}" for name in _REGION_FIELDS}
    )
    for name in _REGION_FIELDS:
        value = getattr(region, name)
        if not is_integer(value):
            raise InvalidArgument(path[name], value, "an integer >= 0")
        if value < 0:
            raise OutOfRange(path[name], value, "an integer >= 0")
    if region.row_offset >= info.rows:
        raise OutOfRange(path["row_offset"], region.row_offset, f"0 .. {info.rows - 1}")
    if region.col_offset >= info.cols:
        raise OutOfRange(path["col_offset"], region.col_offset, f"0 .. {info.cols - 1}")
    resolved = region.resolve(info.rows, info.cols)
    if resolved.row_offset + resolved.rows > info.rows:
        raise OutOfRange(
            path["rows"],
            _size(field, resolved, "rows"),
            f"{_size_allowed(field, 'rows', info.rows - resolved.row_offset)} (tile has "
            f"{info.rows} rows, region starts at row {resolved.row_offset})",
        )
    if resolved.col_offset + resolved.cols > info.cols:
        raise OutOfRange(
            path["cols"],
            _size(field, resolved, "cols"),
            f"{_size_allowed(field, 'cols', info.cols - resolved.col_offset)} (tile has "
            f"{info.cols} columns, region starts at column {resolved.col_offset})",
        )
    return resolved


def _size(field: str, region: Region, name: str) -> Any:
    # A Region field is one number; a tensor's shape is [rows, cols].
    return [region.rows, region.cols] if field == "conductances" else getattr(region, name)


def _size_allowed(field: str, name: str, room: int) -> str:
    if field == "conductances":
        return f"{name} in 1 .. {room}"
    return f"1 .. {room}"


def check_conductances(info: BoardInfo, g: FloatArray, field: str = "conductances") -> None:
    if g.size == 0:
        raise InvalidArgument(f"{field}.shape", list(g.shape), "[rows >= 1, cols >= 1]")
    outside = (g < info.g_min_us) | (g > info.g_max_us)
    if outside.any():
        first = tuple(int(i) for i in np.argwhere(outside)[0])
        raise OutOfRange(
            field,
            f"{float(g[first]):.9g} µS at {list(first)} ({int(outside.sum())} cells outside)",
            f"values in [{info.g_min_us:g}, {info.g_max_us:g}] µS (g_min_us .. g_max_us)",
        )


def check_voltages(info: BoardInfo, v: FloatArray, inputs: int, what: str) -> None:
    """``v`` must be [batch >= 1, inputs] within the read voltage range."""
    if v.shape[0] == 0 or v.shape[1] != inputs:
        raise InvalidArgument("voltages.shape", list(v.shape), f"[batch >= 1, {inputs}] ({what})")
    limit = info.read_voltage_max_v
    peak = np.abs(v)
    worst = np.unravel_index(int(np.argmax(peak)), v.shape)
    if peak[worst] > limit:
        raise OutOfRange(
            "voltages",
            f"{float(v[worst]):.9g} V at {[int(i) for i in worst]}",
            f"values in [-{limit:g}, +{limit:g}] V (read_voltage_max_v)",
        )


def pass_voltages(info: BoardInfo, value: Any, inputs: int, what: str) -> FloatArray:
    """``value`` as the float32 voltages [batch >= 1, inputs] of an analog pass, or the
    error :func:`float32_matrix` and :func:`check_voltages` give.

    Every MVM goes through here, on the host and again on the board, so the common
    case is decided in one reduction: the largest magnitude is NaN when any value
    is NaN and above the limit when any is infinite or too large. Anything that
    fails it takes the detailed checks, which name the first bad value.
    """
    # Every MVM comes here with an array already: no call to make it one.
    array = value if type(value) is np.ndarray else as_array("voltages", value)
    shape, limit = array.shape, info.read_voltage_max_v
    if array.dtype.kind in "fiu" and len(shape) == 2 and shape[0] >= 1 and shape[1] == inputs:
        v = array
        # The limit applies to the float32 values the board gets; another dtype is
        # checked before the cast too, so that the cast cannot overflow.
        if v.dtype != np.float32 and _peak(v) <= limit:
            v = v.astype(np.float32)
        if v.dtype == np.float32 and _peak(v) <= limit:  # False for NaN
            return v
    v = float32_matrix("voltages", array)
    check_voltages(info, v, inputs, what)
    return v


_MAX_OF = np.maximum.reduce
"""The ufunc reduction itself: ``ndarray.max`` reaches it through a Python wrapper."""


def _peak(array: npt.NDArray[Any]) -> float:
    # Two reductions allocate nothing; np.abs would copy a large batch first.
    if array.size <= 4096:
        return float(_MAX_OF(np.abs(array), axis=None))
    return max(float(_MAX_OF(array, axis=None)), -float(np.minimum.reduce(array, axis=None)))


# Scalars follow one rule: a value of the wrong kind, not representable in its
# wire type (a seed outside uint64), NaN/Inf, or not one of a fixed set of choices
# (sign, like an enum) is malformed -> InvalidArgument; a finite number the wire
# can carry but outside the board's limits is OutOfRange.


def check_seed(seed: int, field: str = "seed") -> None:
    if not is_integer(seed) or not 0 <= seed < 2**64:
        raise InvalidArgument(field, seed, "an unsigned 64-bit integer")


def check_sign(sign: int, field: str = "sign") -> None:
    if not is_integer(sign) or sign not in (1, -1):
        raise InvalidArgument(field, sign, "+1 or -1")


CLOCK_LIMIT_S = 1e12
"""Latest reading a virtual board clock may reach, seconds (about 31,700 years).

Each advance is finite, but their sum need not be: two advances of 1.7e308 s
make the clock Inf and drift (log t, t^-nu) then turns every read into NaN. No
experiment needs more than a few decades; the bound keeps every reading finite."""


def check_seconds(seconds: float, clock_s: float = 0.0) -> None:
    """``seconds`` must be a finite advance >= 0 that keeps a clock now at ``clock_s``
    within :data:`CLOCK_LIMIT_S`."""
    headroom = CLOCK_LIMIT_S - clock_s
    allowed = (
        f"seconds in [0, {headroom:.9g}] (the clock is at {clock_s:.9g} s and may not "
        f"pass {CLOCK_LIMIT_S:g} s)"
    )
    if not is_real(seconds) or not np.isfinite(seconds):
        raise InvalidArgument("seconds", seconds, f"finite {allowed}")
    if not 0 <= seconds <= headroom:
        raise OutOfRange("seconds", seconds, allowed)


def check_amplitude(info: BoardInfo, amplitude_us: float, field: str = "amplitude_us") -> None:
    span = info.g_max_us - info.g_min_us
    if not is_real(amplitude_us) or not np.isfinite(amplitude_us):
        raise InvalidArgument(field, amplitude_us, f"a finite value in (0, {span:g}] µS")
    if not 0.0 < amplitude_us <= span:
        raise OutOfRange(field, amplitude_us, f"(0, {span:g}] µS (g_max_us - g_min_us)")
