"""The Perturb matrix generator against board.proto: test vectors and an independent reference.

The reference below is written from the PerturbRequest comment in board.proto
with plain Python integers (no numpy), bit by bit, so it shares no code or
tricks (vectorised uint64 wrap-around, unpackbits bit order) with
``sidra.drivers.rademacher``.
"""

from __future__ import annotations

import numpy as np
import pytest

from sidra.client import rademacher as client_rademacher
from sidra.drivers import rademacher
from sidra.drivers.rademacher import splitmix64

MASK64 = (1 << 64) - 1


def reference_words(seed: int, count: int) -> list[int]:
    """SplitMix64 exactly as board.proto states it: unsigned 64-bit arithmetic mod 2^64."""
    state = seed
    words = []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        words.append(z ^ (z >> 31))
    return words


def reference_delta(seed: int, rows: int, cols: int) -> list[list[int]]:
    """Delta[r][c] = s_(r*C + c); stream bit n is bit (n mod 64) of word n // 64; 1 -> +1."""
    n = rows * cols
    words = reference_words(seed, (n + 63) // 64)
    signs = [1 if (words[i // 64] >> (i % 64)) & 1 else -1 for i in range(n)]
    return [signs[r * cols : (r + 1) * cols] for r in range(rows)]


def test_proto_test_vector_first_words() -> None:
    """The documented first words of seeds 0 and 1, from the library and from the reference."""
    assert int(splitmix64(0, 1)[0]) == 0xE220A8397B1DCDAF
    assert int(splitmix64(1, 1)[0]) == 0x910A2DEC89025CC1
    assert reference_words(0, 1) == [0xE220A8397B1DCDAF]
    assert reference_words(1, 1) == [0x910A2DEC89025CC1]


def test_proto_test_vector_1x8_region() -> None:
    """Seed 0 on a 1 x 8 region gives [+1, +1, +1, +1, -1, +1, -1, +1] (board.proto)."""
    expected = np.array([[1, 1, 1, 1, -1, 1, -1, 1]], dtype=np.float32)
    got = rademacher(0, (1, 8))
    assert got.dtype == np.float32
    assert got.shape == (1, 8)
    np.testing.assert_array_equal(got, expected)
    assert reference_delta(0, 1, 8) == expected.astype(int).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2, 12345, 2**32, 2**63, 2**64 - 2, 2**64 - 1])
def test_splitmix64_words_match_reference(seed: int) -> None:
    """The vectorised SplitMix64 equals the scalar reference for the first 20 words."""
    assert [int(w) for w in splitmix64(seed, 20)] == reference_words(seed, 20)


@pytest.mark.parametrize(
    ("seed", "shape"),
    [
        (0, (1, 1)),
        (0, (1, 64)),
        (1, (1, 65)),
        (7, (3, 37)),
        (2**64 - 1, (3, 37)),
        (2**64 - 1, (1, 8)),
        (99, (37, 3)),
        (0xDEADBEEF, (17, 23)),
        (2**63 + 5, (5, 128)),
        (42, (256, 256)),
    ],
)
def test_rademacher_matches_reference(seed: int, shape: tuple[int, int]) -> None:
    """Row-major layout and LSB-first bit order equal the proto's definition, for odd shapes too."""
    got = rademacher(seed, shape)
    assert got.shape == shape
    assert got.dtype == np.float32
    assert got.tolist() == reference_delta(seed, *shape)


def test_region_layout_is_prefix_of_stream() -> None:
    """Delta depends only on the region's shape: a 3 x 37 region is the first 111 stream signs."""
    flat = rademacher(5, (1, 111))
    np.testing.assert_array_equal(rademacher(5, (3, 37)).ravel(), flat.ravel())
    np.testing.assert_array_equal(rademacher(5, (37, 3)).ravel(), flat.ravel())


def test_client_regenerates_the_same_matrix() -> None:
    """sidra.client.rademacher is the same generator as the drivers' (both sides agree)."""
    np.testing.assert_array_equal(client_rademacher(2024, (9, 31)), rademacher(2024, (9, 31)))


@pytest.mark.parametrize("seed", [0, 1, 2**64 - 1])
def test_values_are_exactly_plus_minus_one_and_balanced(seed: int) -> None:
    """Entries are exactly +1.0 or -1.0 and about half are +1 (|mean| < 4 sigma)."""
    delta = rademacher(seed, (256, 256))
    assert set(np.unique(delta).tolist()) == {-1.0, 1.0}
    n = delta.size
    assert abs(float(delta.mean())) < 4.0 / np.sqrt(n)


def test_different_seeds_give_different_matrices() -> None:
    """Neighbouring seeds do not produce the same (or the negated) matrix."""
    a, b = rademacher(0, (16, 16)), rademacher(1, (16, 16))
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, -b)


def test_seed_outside_uint64_refused() -> None:
    """Seeds must be unsigned 64-bit: -1 and 2**64 raise ValueError naming the seed."""
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match="seed"):
            rademacher(seed, (1, 8))
