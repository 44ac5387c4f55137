"""numpy <-> ``sidra.hil.v1.Tensor``: little-endian, row-major bytes (see board.proto).

Decoding checks dtype, shape and byte length and raises ``InvalidArgument``
naming the field; it never trusts the sender, nor echoes more of a shape than
:data:`ECHO_DIMS` dimensions (a request may declare millions). A request's tensor
is decoded with ``ndim=None``: its shape is then left to the request's own checks,
which word the error as a local driver does for the same array. Reading a Tensor's
``data`` copies its bytes out of the message, so it is read once: decoded arrays
are read-only views of that copy (``copy=True``: a writable array, one more copy).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from sidra.drivers.errors import InvalidArgument
from sidra.hil.v1 import board_pb2 as pb

__all__ = [
    "ARRAY_MAX_DIMS",
    "CODE_DTYPES",
    "DTYPES",
    "ECHO_DIMS",
    "SHARED_DTYPES",
    "SHARED_DTYPES_ALLOWED",
    "decode",
    "decode_codes",
    "encode",
    "encode_codes_into",
    "encode_into",
]

DTYPES: dict[int, np.dtype[Any]] = {
    pb.DTYPE_FLOAT32: np.dtype("<f4"),
    pb.DTYPE_FLOAT64: np.dtype("<f8"),
    pb.DTYPE_INT8: np.dtype("i1"),
    pb.DTYPE_UINT8: np.dtype("u1"),
    pb.DTYPE_INT16: np.dtype("<i2"),
    pb.DTYPE_INT32: np.dtype("<i4"),
    pb.DTYPE_UINT32: np.dtype("<u4"),
}
SHARED_DTYPES: frozenset[int] = frozenset(
    {pb.DTYPE_FLOAT32, pb.DTYPE_INT8, pb.DTYPE_INT16, pb.DTYPE_INT32}
)
"""What a tensor in shared memory may hold (board.proto SharedTensor): float32 voltages
and currents, and the converters' codes."""
SHARED_DTYPES_ALLOWED = "DTYPE_FLOAT32, DTYPE_INT8, DTYPE_INT16 or DTYPE_INT32"
""":data:`SHARED_DTYPES` as an error names them."""
_CODES = {dtype: code for code, dtype in DTYPES.items()}
CODE_DTYPES = (pb.DTYPE_INT8, pb.DTYPE_INT16, pb.DTYPE_INT32)
"""Wire types of converter codes (board.proto, "Converter codes")."""
_CODES_ALLOWED = "DTYPE_INT8, DTYPE_INT16 or DTYPE_INT32"

ECHO_DIMS = 8
"""Most dimensions of a rejected shape an error repeats; the rest are counted."""

ARRAY_MAX_DIMS = 64
"""Most dimensions a numpy array has (numpy >= 2). A request's tensor may declare any
number up to it (its request's checks refuse all but 2); more, and no array, local
or remote, has that shape."""
_ARRAY_MAX_BYTES = int(np.iinfo(np.intp).max)
"""Most bytes numpy lets an array's sizes multiply to, its zero sizes left out: an
empty array of sizes [0, 2^32 - 1, 2^32 - 1, 2^32 - 1] is "too big" all the same."""


def encode(array: npt.ArrayLike, dtype: int = pb.DTYPE_FLOAT32) -> pb.Tensor:
    """``array`` as a Tensor of wire type ``dtype`` (float32 by default)."""
    tensor = pb.Tensor()
    encode_into(tensor, array, dtype)
    return tensor


def encode_into(tensor: pb.Tensor, array: npt.ArrayLike, dtype: int = pb.DTYPE_FLOAT32) -> None:
    """Writes ``array`` into ``tensor`` (a message's field, filled in place rather than
    built apart and copied in) as wire type ``dtype``, its shape as it is (a scalar has
    none: ``np.ascontiguousarray`` would make it [1], and the board's error about it
    would then name a shape the caller never passed)."""
    data = np.asarray(array, dtype=DTYPES[dtype], order="C")
    tensor.dtype = dtype  # type: ignore[assignment]
    tensor.shape.extend(data.shape)
    tensor.data = data.tobytes()


def encode_codes_into(tensor: pb.Tensor, array: npt.NDArray[Any]) -> None:
    """Writes converter codes into ``tensor`` as their own integer type (int8, int16 or
    int32: the caller chose the narrowest that holds them)."""
    code = _CODES.get(array.dtype)
    if code not in CODE_DTYPES:
        raise InvalidArgument(f"{array.dtype}", "codes", "int8, int16 or int32 codes")
    data = np.asarray(array, dtype=DTYPES[code], order="C")
    tensor.dtype = code  # type: ignore[assignment]
    tensor.shape.extend(data.shape)
    tensor.data = data.tobytes()


def decode_codes(
    tensor: pb.Tensor, field: str, *, ndim: int | None = 2, copy: bool = False
) -> npt.NDArray[Any]:
    """The converter codes a Tensor holds: of any code type (INT8, INT16, INT32),
    checked as :func:`decode` checks (2-D, or any shape for ``ndim`` None); read-only
    unless ``copy``."""
    if tensor.dtype not in CODE_DTYPES:
        name = pb.DType.Name(tensor.dtype) if tensor.dtype in pb.DType.values() else tensor.dtype
        raise InvalidArgument(f"{field}.dtype", name, _CODES_ALLOWED)
    return decode(tensor, field, dtype=tensor.dtype, ndim=ndim, copy=copy)


def decode(
    tensor: pb.Tensor,
    field: str,
    *,
    dtype: int = pb.DTYPE_FLOAT32,
    ndim: int | None = 2,
    copy: bool = False,
) -> npt.NDArray[Any]:
    """The array a Tensor holds, checked to be of wire type ``dtype``, of ``ndim``
    dimensions of at least 1 each, and of the bytes its shape takes; read-only unless
    ``copy``.

    ``ndim`` None: any shape an array can have, empty ones too. A request's tensors are
    decoded so, and the request's own checks (``checked(info)``) judge the shape: a
    remote caller gets the error a local driver gives for the same array
    ("voltages.shape: got [256], expected a 2-D array"). What only the wire can get
    wrong is refused here either way: the element type, a byte count that is not the
    shape's, a shape no array has.
    """
    if tensor.dtype != dtype:
        name = pb.DType.Name(tensor.dtype) if tensor.dtype in pb.DType.values() else tensor.dtype
        raise InvalidArgument(f"{field}.dtype", name, pb.DType.Name(dtype))
    shape = tuple(tensor.shape[:])  # a slice first: iterating the field itself is slower
    element = DTYPES[dtype]
    if ndim is None:
        _check_rank(field, shape)
    elif len(shape) != ndim or 0 in shape:
        dims = ", ".join(["n >= 1"] * ndim)
        raise InvalidArgument(f"{field}.shape", _echo(shape), f"{ndim} dimensions [{dims}]")
    expected = math.prod(shape) * element.itemsize  # Python ints: no overflow for huge shapes
    data = tensor.data  # a copy out of the message: taken once
    if len(data) != expected:
        raise InvalidArgument(
            f"{field}.data",
            f"{len(data)} bytes",
            f"{expected} bytes (shape {_echo(shape)} x {element.itemsize} bytes per element)",
        )
    if 0 in shape:  # only with ndim None: no bytes, and other sizes of any size
        _check_empty_shape(field, shape, element.itemsize)
    array = np.frombuffer(data, element).reshape(shape)
    return array.copy() if copy else array


# Shapes no numpy array has, and so no local call could have passed: refused as the
# wire's own fault, before the request's checks would build an array of them.


def _check_rank(field: str, shape: tuple[int, ...]) -> None:
    if len(shape) > ARRAY_MAX_DIMS:
        allowed = f"at most {ARRAY_MAX_DIMS} dimensions (the most an array has)"
        raise InvalidArgument(f"{field}.shape", _echo(shape), allowed)


def _check_empty_shape(field: str, shape: tuple[int, ...], itemsize: int) -> None:
    if math.prod(n for n in shape if n) * itemsize > _ARRAY_MAX_BYTES:
        raise InvalidArgument(
            f"{field}.shape",
            _echo(shape),
            f"sizes whose product (zeros left out) x {itemsize} bytes is at most "
            f"{_ARRAY_MAX_BYTES} bytes (the most an array addresses)",
        )


def _echo(shape: tuple[int, ...]) -> list[int] | str:
    # Short shapes are echoed whole; a long one as its first dimensions and a count,
    # so the error stays small without building the text of the whole shape.
    if len(shape) <= ECHO_DIMS:
        return list(shape)
    head = ", ".join(str(n) for n in shape[:ECHO_DIMS])
    return f"[{head}, ...] ({len(shape)} dimensions)"
