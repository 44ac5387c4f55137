"""Pass results written into host memory (register map 1.2, FEATURES bit 3).

A large batch's currents are written by the virtual board into a chunk of a region
the host shares with it, and handed to the caller as an array over that chunk. These
tests hold the contract that makes that safe: the results are the emulator's, bit for
bit; a chunk is lent again only once the caller's array and every view of it are gone,
so the board never overwrites a result still held; a refused batch lends nothing; a
board reset or a region the board cannot reach leaves the caller's arrays intact and
the next calls answering (from the output windows if need be); the board never writes
outside the region it was given.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from board_data import dyadic_v
from pcie_support import G, board, driver

from sidra.drivers import open_board
from sidra.drivers.errors import BoardReset, InvalidArgument, OutOfRange, SidraError
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.bar import FileBar, host_memory_path
from sidra.drivers.pcie.driver import PcieDriver
from sidra.drivers.pcie.host_memory import CHUNKS, HostMemory
from sidra.drivers.requests import MVMRequest
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.messages import Feature, Msg, Status
from sidra.emulator import preset
from sidra.emulator.pcie import VirtualPcieBoard
from sidra.emulator.pcie.device import PcieDevice, _Entry

BATCH = 1024
X = dyadic_v(np.random.default_rng(9), (BATCH, 256))
"""Dyadic (as pcie_support's G): a batch and its pieces sum exactly, in any order."""


@pytest.fixture(scope="module")
def served() -> Iterator[VirtualPcieBoard]:
    with board() as b:
        yield b


@pytest.fixture
def pcie(served: VirtualPcieBoard) -> Iterator[PcieDriver]:
    d = driver(served)
    d.program(0, G)
    try:
        yield d
    finally:
        d.close()


def _host(d: PcieDriver) -> HostMemory:
    queues = d._queues
    assert queues is not None and queues.host is not None, "no host memory attached"
    return queues.host


def _expected(x: np.ndarray = X) -> np.ndarray:
    with open_board("emu://?preset=ideal&seed=1") as local:
        local.program(0, G)
        return local.mvm(0, x).currents


def test_the_board_announces_it_and_a_large_batch_lands_in_host_memory(pcie: PcieDriver) -> None:
    assert pcie.features & Feature.HOST_RESULTS
    host = _host(pcie)
    assert host.free_chunks == CHUNKS
    currents = pcie.mvm(0, X).currents
    assert host.free_chunks == CHUNKS - 1  # held by the caller's array
    assert np.array_equal(currents, _expected())
    small = pcie.mvm(0, X[:1]).currents  # a single vector is copied out of its window
    assert host.free_chunks == CHUNKS - 1 and np.array_equal(small, _expected(X[:1]))


def test_a_chunk_is_lent_again_only_after_the_array_and_its_views_are_gone(
    pcie: PcieDriver,
) -> None:
    host = _host(pcie)
    currents = pcie.mvm(0, X).currents
    view = currents[100:200, 3]
    del currents
    gc.collect()
    assert host.free_chunks == CHUNKS - 1  # the view keeps the chunk
    kept = view.copy()
    for _ in range(3):
        pcie.mvm(0, -X)  # results not held: their chunks come back at once
    assert np.array_equal(view, kept)  # never overwritten while held
    del view
    gc.collect()
    assert host.free_chunks == CHUNKS


def test_results_held_beyond_the_region_come_from_the_windows_and_all_stay_right(
    pcie: PcieDriver,
) -> None:
    host = _host(pcie)
    inputs = [X * (1.0 - k / 40) for k in range(CHUNKS + 4)]
    held = [pcie.mvm(0, x).currents for x in inputs]
    assert host.free_chunks == 0
    with open_board("emu://?preset=ideal&seed=1") as local:
        local.program(0, G)
        for x, currents in zip(inputs, held, strict=True):
            assert np.array_equal(currents, local.mvm(0, x).currents)
    del held
    gc.collect()
    assert host.free_chunks == CHUNKS


def test_passes_in_flight_together_land_in_host_memory_each_in_its_own_chunk(
    pcie: PcieDriver,
) -> None:
    """run_many of six 512-vector passes (several in flight at once) and a batch of 4096
    (four window-sized pieces in flight, each written into its place of one span): every
    result the emulator's; the six hold a chunk each while they live."""
    host = _host(pcie)
    xs = [X[:512] * (1.0 - k / 10) for k in range(6)]
    results = pcie.run_many([MVMRequest(0, x) for x in xs])
    assert host.free_chunks == CHUNKS - 6
    with open_board("emu://?preset=ideal&seed=1") as local:
        local.program(0, G)
        for x, result in zip(xs, results, strict=True):
            assert np.array_equal(result.currents, local.mvm(0, x).currents)
        big = np.concatenate([X, -X, X / 2, -X / 2])
        assert np.array_equal(pcie.mvm(0, big).currents, local.mvm(0, big).currents)
    del results, result  # (the loop's name holds the last one too)
    gc.collect()
    assert host.free_chunks == CHUNKS


def test_a_batch_larger_than_a_window_lands_whole_in_consecutive_chunks(
    pcie: PcieDriver,
) -> None:
    """A 3000-vector batch goes as three window-sized pieces in flight together; the board
    writes each into its place of one span of consecutive chunks, and the caller's array
    is that span (no join copies it): its chunks are held while the array or a view of it
    lives. With no such run of chunks free, the pieces are lent a chunk each and joined:
    the same currents."""
    host = _host(pcie)
    big = np.concatenate([X, -X, X[:952] / 2])
    expected = _expected(big)
    currents = pcie.mvm(0, big).currents
    assert np.array_equal(currents, expected)
    span = -(-big.nbytes // r.SLOT_WINDOW_BYTES)  # 3 chunks for 3000 x 256 float32
    assert host.free_chunks == CHUNKS - span  # held, as one array, by the caller
    tail = currents[2500:]
    del currents
    gc.collect()
    assert host.free_chunks == CHUNKS - span  # the view holds the span
    assert np.array_equal(tail, expected[2500:])
    del tail
    gc.collect()
    assert host.free_chunks == CHUNKS
    # Every other chunk held: no run of three is free.
    held = [pcie.mvm(0, X * (1 - k / 50)).currents for k in range(CHUNKS)]
    for k in range(0, CHUNKS, 2):
        held[k] = None  # type: ignore[call-overload]
    gc.collect()
    assert host.free_chunks == CHUNKS // 2
    assert np.array_equal(pcie.mvm(0, big).currents, expected)
    del held
    gc.collect()
    assert host.free_chunks == CHUNKS


def test_a_failed_piece_gives_the_whole_span_back() -> None:
    """The second piece of a 2048-vector batch answers INTERNAL (an injected fault): the
    call raises and none of the span's chunks stays lent."""
    with board(faults="error=4") as served:  # 1 GET_PROFILE, 2 Program, then the pieces
        d = driver(served)
        try:
            d.program(0, G)
            host = _host(d)
            big = np.concatenate([X, -X])
            with pytest.raises(SidraError, match="injected fault"):
                d.mvm(0, big)
            gc.collect()
            assert host.free_chunks == CHUNKS
            assert np.array_equal(d.mvm(0, big).currents, _expected(big))
        finally:
            d.close()


def test_completions_out_of_order_each_find_their_own_result() -> None:
    """The reverse fault answers each burst of submissions backwards: every result in
    host memory is still its own command's."""
    with board(faults="reverse=1") as served:
        d = driver(served)
        try:
            d.program(0, G)
            xs = [X[:256] * (1.0 - k / 10) for k in range(5)]
            results = d.run_many([MVMRequest(0, x) for x in xs])
            with open_board("emu://?preset=ideal&seed=1") as local:
                local.program(0, G)
                for x, result in zip(xs, results, strict=True):
                    assert np.array_equal(result.currents, local.mvm(0, x).currents)
        finally:
            d.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1.5])
def test_a_refused_batch_lends_nothing_and_names_the_value(pcie: PcieDriver, bad: float) -> None:
    host = _host(pcie)
    x = X.copy()
    x[700, 13] = bad
    with pytest.raises((InvalidArgument, OutOfRange)) as refused:
        pcie.mvm(0, x)
    assert refused.value.field == "voltages" and "[700, 13]" in str(refused.value.value)
    assert host.free_chunks == CHUNKS
    assert np.array_equal(pcie.mvm(0, X).currents, _expected())


def test_the_region_has_no_name_once_the_board_has_mapped_it(
    served: VirtualPcieBoard, pcie: PcieDriver
) -> None:
    pcie.mvm(0, X)
    leftovers = [p for p in os.listdir(os.path.dirname(served.path)) if ".iova-" in p]
    assert leftovers == []


def test_a_board_reset_leaves_held_results_intact_and_a_new_region_serves() -> None:
    with board(faults="reset_after=4") as served:  # open 1, program 2, mvm 3, the 4th resets
        d = driver(served)
        try:
            d.program(0, G)
            held = d.mvm(0, X).currents
            kept = held.copy()
            old = _host(d)
            with pytest.raises(BoardReset):
                d.mvm(0, X)
            assert old.free_chunks == CHUNKS - 1  # the failed command gave its chunk back
            d.program(0, G)
            again = d.mvm(0, X).currents
            assert _host(d) is not old and np.array_equal(again, kept)
            assert np.array_equal(held, kept)
        finally:
            d.close()


def test_a_host_removes_the_region_files_of_hosts_that_died(tmp_path: Path) -> None:
    """A host killed before the board acknowledged its region leaves the file behind; the
    next host to announce one removes it (the file's bus address names the dead process)
    and leaves a live process's file alone."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    bar = str(tmp_path / "bar")
    stale = host_memory_path(bar, dead.pid << 32)
    live = host_memory_path(bar, os.getppid() << 32)
    for path in (stale, live):
        Path(path).write_bytes(b"")
    region = HostMemory(lambda base: host_memory_path(bar, base))
    try:
        assert not os.path.exists(stale) and os.path.exists(live)
    finally:
        region.remove_name()


class _NoRoomBar(FileBar):
    """A BAR whose host memory cannot be created (its directory does not exist)."""

    def host_memory_file(self, base: int) -> str | None:
        return f"/nonexistent-dir/{os.path.basename(self.path)}.iova-{base:016x}"


def test_without_host_memory_results_come_from_the_windows(served: VirtualPcieBoard) -> None:
    d = PcieDriver(lambda: _NoRoomBar(served.path), 0.3)
    try:
        d.program(0, G)
        assert d._queues is not None and d._queues.host is None
        assert np.array_equal(d.mvm(0, X).currents, _expected())
    finally:
        d.close()


# -- the device end, in process ---------------------------------------------------------


@pytest.fixture
def device(tmp_path: Path) -> Iterator[PcieDevice]:
    d = PcieDevice(str(tmp_path / "bar"), preset("ideal"), seed=1)
    d.publish()
    d.driver.program(0, G)
    try:
        yield d
    finally:
        d.close()


def _pass_entry(d: PcieDevice, room: int, address: int) -> tuple[int, bytes]:
    x = X[:64]
    payload = m.MVM_REQ.pack(0, 0, 0, len(x), 0, 0, 0) + x.tobytes()
    d.bar.write_bytes(r.in_window(2), payload)
    answer = d._run(_Entry(1, int(Msg.MVM), d.boot_count, len(payload), 2, 0, room, address))
    assert answer is not None
    return answer.status, bytes(answer.head)


def _announce(d: PcieDevice, region: HostMemory | None, base: int = 0, size: int = 0) -> None:
    if region is not None:
        base, size = region.base, region.size
    d.bar.write64(r.OFFSET["HOST_MEM_BASE"], base)
    d.bar.write64(r.OFFSET["HOST_MEM_BYTES"], size)
    d._reset_rings()


def test_the_board_refuses_a_result_address_outside_the_region(device: PcieDevice) -> None:
    status, head = _pass_entry(device, 64 * 256 * 4, 0x1000)  # no region announced
    assert status == Status.BAD_PAYLOAD and b"outside the host memory" in head
    region = HostMemory(lambda base: host_memory_path(device.path, base))
    try:
        _announce(device, region)
        assert device.bar.read64(r.OFFSET["HOST_MEM_BYTES"]) == region.size
        end = region.base + region.size
        for address in (region.base - 4096, end - 1024):  # before it; running past its end
            status, head = _pass_entry(device, 64 * 256 * 4, address)
            assert status == Status.BAD_PAYLOAD, address
        # Room lent past the region's end is refused even where the result would fit.
        status, _ = _pass_entry(device, region.size, region.address(3))
        assert status == Status.BAD_PAYLOAD
        status, _ = _pass_entry(device, 64 * 256 * 4, region.address(3))
        assert status == Status.OK
        with open_board("emu://?preset=ideal&seed=1") as local:
            local.program(0, G)
            expected = local.mvm(0, X[:64]).currents
        assert np.array_equal(region.array(3, (64, 256), np.dtype(np.float32)), expected)
    finally:
        region.remove_name()


def test_a_region_the_board_cannot_map_reads_back_as_none(device: PcieDevice) -> None:
    _announce(device, None, base=0x5000_0000, size=1 << 20)  # no such file
    assert device.bar.read64(r.OFFSET["HOST_MEM_BYTES"]) == 0
    status, _ = _pass_entry(device, 64 * 256 * 4, 0x5000_0000)
    assert status == Status.BAD_PAYLOAD
