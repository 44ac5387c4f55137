"""Converter codes: analog passes in and out as the DAC's and ADC's own integers.

A board with an N-bit signed converter has codes -L .. +L with L = 2^(N-1) - 1
(L = 1 for N = 1). An input (DAC) code k drives k · dac_step_v volts, with
dac_step_v = read_voltage_max_v / L; an output (ADC) code m stands for
m · adc_step_ua microamperes, with adc_step_ua = adc_full_scale_ua / L times the
tile's calibration gain (Calibrate; 1 until the tile is calibrated, and again after a
Program into it). These are
exactly the numbers the converters see and produce: the board rounds each
voltage to a DAC code, and each current it reports is an ADC code times the
LSB and the gain, so a pass given codes equals the pass given their voltages,
and the codes it answers are the ones its ADC produced.

Codes travel as the narrowest signed integer that holds them: INT8 up to 8
bits, INT16 up to 16, INT32 above. A board with an ideal converter (0 bits)
has no codes: a request for them is refused, naming the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers.errors import InvalidArgument, OutOfRange
from sidra.drivers.types import BoardInfo
from sidra.drivers.validation import as_array

__all__ = [
    "CODE_DTYPES",
    "adc_step_ua",
    "code_dtype",
    "currents_to_codes",
    "dac_step_v",
    "input_codes",
    "levels",
    "narrowest_codes",
    "voltages_of",
]

CodeArray = npt.NDArray[np.signedinteger[Any]]

CODE_DTYPES = (np.dtype("i1"), np.dtype("<i2"), np.dtype("<i4"))
"""The integer types codes travel as (board.proto: DTYPE_INT8, DTYPE_INT16, DTYPE_INT32)."""


def levels(bits: int) -> int:
    """Largest code of a signed ``bits``-bit converter: 2^(bits-1) - 1 (1 for one bit)."""
    return (1 << (bits - 1)) - 1 if bits > 1 else 1


def code_dtype(bits: int) -> np.dtype[Any]:
    """The narrowest signed integer type holding every code of a ``bits``-bit converter."""
    return CODE_DTYPES[0] if bits <= 8 else CODE_DTYPES[1] if bits <= 16 else CODE_DTYPES[2]


def dac_step_v(info: BoardInfo, field: str = "input_codes") -> float:
    """Volts per input code of ``info``'s DAC; refuses a board with an ideal DAC."""
    if info.dac_bits == 0:
        raise InvalidArgument(
            field, "codes", "voltages: the board's DAC is ideal (dac_bits 0) and has no codes"
        )
    return info.read_voltage_max_v / levels(info.dac_bits)


def adc_step_ua(info: BoardInfo, gain: float = 1.0, field: str = "output_codes") -> float:
    """Microamperes per output code of ``info``'s ADC with a tile's calibration ``gain``
    (the same product the board scales its codes by); refuses a board with an ideal ADC
    or one that does not report the ADC's full scale."""
    if info.adc_bits == 0:
        raise InvalidArgument(
            field, "true", "false: the board's ADC is ideal (adc_bits 0) and has no codes"
        )
    if info.adc_full_scale_ua <= 0.0:
        raise InvalidArgument(
            field, "true", "false: the board does not report its ADC full scale (adc_full_scale_ua)"
        )
    return info.adc_full_scale_ua / levels(info.adc_bits) * gain


def input_codes(info: BoardInfo, value: Any, inputs: int, what: str) -> CodeArray:
    """``value`` as DAC codes [batch >= 1, inputs] of ``info``'s DAC, or the error naming
    ``input_codes`` (dtype: a signed integer type; values within ±levels)."""
    dac_step_v(info)  # an ideal DAC has no codes
    array = as_array("input_codes", value)
    if array.dtype not in CODE_DTYPES:
        raise InvalidArgument(
            "input_codes.dtype", array.dtype, "a signed integer type: int8, int16 or int32"
        )
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != inputs:
        raise InvalidArgument(
            "input_codes.shape", list(array.shape), f"[batch >= 1, {inputs}] ({what})"
        )
    top = levels(info.dac_bits)
    high, low = int(array.max()), int(array.min())
    if high > top or low < -top:
        bad = np.unravel_index(int(np.argmax(np.abs(array.astype(np.int64)))), array.shape)
        raise OutOfRange(
            "input_codes",
            f"{int(array[bad])} at {[int(i) for i in bad]}",
            f"codes in [-{top}, +{top}] (a {info.dac_bits}-bit DAC)",
        )
    return array


def voltages_of(codes: CodeArray, step_v: float) -> npt.NDArray[np.float32]:
    """The float32 voltages DAC ``codes`` drive (code · step_v); the board's DAC rounds
    each back to the same code."""
    v = codes.astype(np.float32)
    v *= np.float32(step_v)
    return v


def currents_to_codes(currents: npt.NDArray[np.float32], step_ua: float, bits: int) -> CodeArray:
    """The ADC codes behind ``currents`` (each a code times ``step_ua``), as the code type
    of a ``bits``-bit ADC. Exact: a code is at most 2^23 in magnitude, so the float32
    product and this quotient differ from it by far less than half a code."""
    scaled = currents * np.float32(1.0 / step_ua)
    np.rint(scaled, out=scaled)
    return scaled.astype(code_dtype(bits))


def narrowest_codes(value: Any) -> Any:
    """Converter codes as an integer type the wire carries (int8, int16, int32: the
    narrowest that holds them, so codes of a small DAC take a byte each whatever array
    type they came in: numpy's int64 of ``np.arange``, unsigned codes); their range is the
    board's to judge. What a client (local or remote) does with the codes it is given;
    the wire itself takes int8, int16 and int32 only."""
    array = np.asarray(value)
    if array.dtype in CODE_DTYPES:
        return array
    if array.dtype.kind not in "iu":
        allowed = "a signed integer type: int8, int16 or int32"
        raise InvalidArgument("input_codes.dtype", array.dtype, allowed)
    if array.size == 0:
        return array.astype(np.int8)
    low, high = int(array.min()), int(array.max())
    for dtype in CODE_DTYPES:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return array.astype(dtype)
    raise OutOfRange("input_codes", f"{high if high > -low else low}", "codes within int32")
