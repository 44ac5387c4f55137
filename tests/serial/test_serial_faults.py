"""The serial link under fire: bit errors, lost and duplicated frames through the fault shim.

The board is the noisy sidra-y1 preset on a small tile, so every MVM draws
fresh random numbers: a command executed twice would shift the board's random
stream and every later result would differ from the fault-free reference. The
reference is the same profile and seed in process (emu://).
"""

from __future__ import annotations

import numpy as np
import pytest

from sidra.drivers import BoardDriver, MVMResult, Region, open_board
from sidra.drivers.serial import SerialDriver
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.driver import EmulatorDriver
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.faults import FaultConfig

SEED = 11
GEOMETRY = Geometry(tiles=2, rows=32, cols=16)
PROFILE = preset("sidra-y1").model_copy(update={"geometry": GEOMETRY})
FAULTS = FaultConfig(ber=1e-4, drop=0.01, dup=0.01, seed=5)
LINK = "timeout=0.02&retries=6&max_payload=256"
EXCHANGES = 10_000


def session_step(board: BoardDriver, step: int, rng: np.random.Generator) -> list[object]:
    """One step of a fixed workload; returns what it observed."""
    v = rng.uniform(-0.2, 0.2, (1 + step % 3, GEOMETRY.rows)).astype(np.float32)
    tile = step % 2
    out: list[object] = [board.mvm(tile, v)]
    if step % 50 == 7:
        region = Region(step % 8, 0, 8, 16)
        out.append(board.perturb(tile, seed=step, amplitude_us=0.5, sign=1, region=region))
    if step % 50 == 31:
        out.append(board.restore(tile))
    if step % 97 == 0:
        u = rng.uniform(-0.2, 0.2, (2, GEOMETRY.cols)).astype(np.float32)
        out.append(board.transpose_mvm(tile, u))
    if step % 500 == 250:
        g = rng.uniform(2.0, 38.0, (GEOMETRY.rows, GEOMETRY.cols)).astype(np.float32)
        out.append(board.program(tile, g))  # 2 KiB: a staged transfer of 9 chunks
    return out


def same(a: object, b: object) -> bool:
    if isinstance(a, MVMResult) and isinstance(b, MVMResult):
        return np.array_equal(a.currents, b.currents) and (a.saturated_outputs, a.cost) == (
            b.saturated_outputs,
            b.cost,
        )
    return a == b


@pytest.mark.timeout(240)
def test_ten_thousand_exchanges_through_a_faulty_link_stay_exact() -> None:
    """BER 1e-4, 1 % dropped and 1 % duplicated frames each way: ≥ 10,000 exchanges, every
    result bit-identical to the fault-free run, no write applied twice, no failure."""
    reference = EmulatorDriver(PROFILE, SEED)
    with serve_virtual_board(PROFILE, SEED, faults=FAULTS) as server:
        with open_board(f"{server.url}?{LINK}") as board:
            assert isinstance(board, SerialDriver)
            g = np.random.default_rng(0).uniform(2.0, 38.0, (32, 16)).astype(np.float32)
            for driver in (board, reference):
                driver.program(0, g)
                driver.program(1, g[::-1].copy())
            rng_serial, rng_ref = np.random.default_rng(1), np.random.default_rng(1)
            step = mismatches = 0
            while board.link_stats().exchanges < EXCHANGES:
                got = session_step(board, step, rng_serial)
                want = session_step(reference, step, rng_ref)
                mismatches += sum(not same(x, y) for x, y in zip(got, want, strict=True))
                step += 1
            link = board.link_stats()
            counts = [board.read_write_counts(t).counts for t in range(2)]
            stats = board.stats()
            device = board.device_link_stats()
        shim = server.shim
        assert shim is not None

    assert mismatches == 0
    for tile in range(2):
        assert np.array_equal(counts[tile], reference.read_write_counts(tile).counts)
    assert stats == reference.stats()  # same passes, writes, cost: nothing ran twice
    # The faults really happened and the link recovered from each kind.
    assert shim.counts["bits_flipped"] > 100
    assert shim.counts["dropped"] > 50 and shim.counts["duplicated"] > 50
    assert link.crc_errors + link.framing_errors > 0 and link.naks > 0
    assert link.timeouts > 0 and link.retries > 0 and link.duplicates > 0
    assert device["replays"] > 0  # retried requests were answered from the cache
    assert link.exchanges >= EXCHANGES
    print(f"\n{step} steps, {link}\nshim {shim.counts}\nboard {device}")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("drop=abc", "fault spec drop: got 'abc', expected a number 0 .. 1 (a probability per"),
        ("reset_after=1.5", "fault spec reset_after: got '1.5', expected an integer >= 0 (host"),
        ("ber=2", "fault ber: got 2.0, expected 0 .. 1 (a probability per bit on the wire)"),
        ("unplug_s=-1", "fault unplug_s: got -1.0, expected >= 0 (seconds an unplug lasts"),
    ],
)  # fmt: skip
def test_a_bad_fault_value_names_the_key_the_value_and_what_is_allowed(
    spec: str, message: str
) -> None:
    """At the bench, ``--faults 'drop=abc'`` said only "'abc' is not a number": no range,
    no unit. Every refusal names the key, the value, the range and what the key counts."""
    with pytest.raises(ValueError) as refused:
        FaultConfig.parse(spec)
    assert str(refused.value).startswith(message), str(refused.value)
