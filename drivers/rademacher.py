"""The Perturb matrix generator of the wire contract (``PerturbRequest`` in board.proto).

SplitMix64 words, bits least-significant first, bit 1 -> +1 and bit 0 -> -1,
laid out row-major over the perturbed region. Board firmware, the emulator
and the client all regenerate the same matrix from a seed, so it never
crosses the wire. This module is the reference implementation.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["rademacher", "seed_from_bit", "splitmix64"]

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(seed: int, count: int) -> npt.NDArray[np.uint64]:
    """Returns the first ``count`` SplitMix64 outputs for a 64-bit ``seed``."""
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed: got {seed}, expected an unsigned 64-bit integer")
    # state_k = seed + k * gamma (mod 2^64), k = 1..count; numpy uint64 wraps.
    steps = np.arange(1, count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + steps * _GOLDEN_GAMMA
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def rademacher(seed: int, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    """The +1/-1 perturbation matrix of ``seed`` for a region of ``shape`` (rows, cols).

    Any shape is filled in row-major order from the same sign stream, so a
    parameter vector and the tile region it is mapped to see the same signs.
    """
    n = int(np.prod(shape, dtype=np.int64))
    words = splitmix64(seed, -(-n // 64))
    # Little-endian bytes with little-endian bit order put stream bit n at
    # position n: bit (n mod 64) of word n // 64.
    bits = np.unpackbits(words.astype("<u8").view(np.uint8), bitorder="little")[:n]
    return (bits.astype(np.float32) * 2.0 - 1.0).reshape(shape)


def seed_from_bit(seed: int, bit: int) -> int:
    """The seed whose sign stream is ``seed``'s from stream bit ``bit`` on (a multiple of
    64: SplitMix64's state after k words is seed + k·gamma, so the stream can start at
    any word). A block of rows of a perturbed matrix is then a region of its own:
    rows r0.. of a C-column Δ(seed) are Δ(seed_from_bit(seed, r0·C)) when r0·C is a
    multiple of 64."""
    if bit % 64:
        raise ValueError(f"bit: got {bit}, expected a multiple of 64 (a word boundary)")
    return (seed + (bit // 64) * int(_GOLDEN_GAMMA)) % 2**64
