"""The MVM fast paths answer exactly as the generic paths do, results and errors alike.

Board side: two virtual PCIe boards with the same seed and the same history, one
with its pass fast path, one with it switched off (every command decoded by its
wire entry and run by ``EmulatorDriver.run``), get the same commands written into
their input windows; their answers (status, response head, result bytes) must be
identical byte for byte, on a noisy preset too, and for payloads a host's checks
would never let through (the board checks again). Host side: ``PcieDriver.mvm``
and the generic ``run_many`` give the same currents.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from pcie_support import G, board, driver

from sidra.drivers import Region
from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.queues import Command, Completion
from sidra.drivers.requests import MVMRequest, TransposeMVMRequest
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.messages import Feature, Msg, Status
from sidra.emulator import preset
from sidra.emulator.pcie.device import PcieDevice, _Entry

SLOT = 3


@pytest.fixture
def twins(tmp_path: os.PathLike[str]) -> Iterator[tuple[PcieDevice, PcieDevice]]:
    """(fast, generic): two noisy boards (preset sidra-y1) alike in seed and state."""
    profile = preset("sidra-y1")
    devices = [PcieDevice(os.path.join(tmp_path, name), profile, seed=5) for name in "ab"]
    g = np.random.default_rng(6).uniform(5.0, 30.0, (profile.geometry.rows, profile.geometry.cols))
    for device in devices:
        device.driver.program(0, g.astype(np.float32))
    devices[1]._passes = {}  # every command through its wire entry and EmulatorDriver.run
    try:
        yield devices[0], devices[1]
    finally:
        for device in devices:
            device.close()


def _answer(device: PcieDevice, opcode: int, payload: bytes) -> tuple[int, bytes, bytes]:
    device.bar.write_bytes(r.in_window(SLOT), payload)
    entry = _Entry(1, opcode, device.boot_count, len(payload), SLOT, 0)
    answer = device._run(entry)
    assert answer is not None
    return answer.status, bytes(answer.head), bytes(answer.data)


def _pass(
    tile: int,
    voltages: np.ndarray,
    source: int = 0,
    crc: int = 0,
    region: tuple[int, int, int, int] | None = None,
    flags: int | None = None,
) -> bytes:
    """A pass payload; ``region`` (row_offset, col_offset, rows, cols) after the head."""
    if flags is None:
        flags = 0 if region is None else m.PASS_REGION_FLAG
    head = m.MVM_REQ.pack(tile, source, flags, len(voltages), 0, 0, crc)
    if region is not None:
        head += m.MVM_REGION.pack(*region)
    return head + np.ascontiguousarray(voltages, "<f4").tobytes()


def test_good_passes_are_answered_bit_for_bit_alike(twins: tuple[PcieDevice, PcieDevice]) -> None:
    fast, generic = twins
    taken = []
    fast_pass = fast._pass
    fast._pass = lambda *args: taken.append(args[0].opcode) or fast_pass(*args)  # type: ignore[method-assign]
    rng = np.random.default_rng(7)
    for opcode, batch in ((Msg.MVM, 1), (Msg.MVM, 5), (Msg.TRANSPOSE_MVM, 3), (Msg.MVM, 300)):
        v = rng.uniform(-0.2, 0.2, (batch, 256)).astype(np.float32)
        answers = [_answer(device, opcode, _pass(0, v)) for device in twins]
        assert answers[0][0] == Status.OK
        assert answers[0] == answers[1], (opcode, batch)
        assert len(answers[0][2]) == 4 * batch * 256
    assert fast.driver.board.stats() == generic.driver.board.stats()
    assert taken == [Msg.MVM, Msg.MVM, Msg.TRANSPOSE_MVM, Msg.MVM], "the fast path was not taken"


def test_good_region_passes_are_answered_bit_for_bit_alike(
    twins: tuple[PcieDevice, PcieDevice],
) -> None:
    """Region passes (inline, flags bit 0): the fast path answers as the generic one, on a
    noisy board, with the region's outputs only; a whole-tile region as a plain pass."""
    fast, generic = twins
    rng = np.random.default_rng(17)
    cases = [
        (Msg.MVM, 1, (3, 5, 65, 10), 65, 10),
        (Msg.MVM, 200, (3, 5, 65, 10), 65, 10),
        (Msg.TRANSPOSE_MVM, 4, (3, 5, 65, 10), 10, 65),
        (Msg.MVM, 2, (250, 251, 0, 0), 6, 5),  # open extents: to the tile edge
        (Msg.TRANSPOSE_MVM, 3, (0, 0, 256, 256), 256, 256),  # the whole tile
    ]
    for opcode, batch, region, inputs, outputs in cases:
        v = rng.uniform(-0.2, 0.2, (batch, inputs)).astype(np.float32)
        answers = [_answer(device, opcode, _pass(1, v, region=region)) for device in twins]
        assert answers[0][0] == Status.OK, m.decode_error(answers[0][1])
        assert answers[0] == answers[1], (opcode, batch, region)
        assert len(answers[0][2]) == 4 * batch * outputs
    assert fast.driver.board.stats() == generic.driver.board.stats()


def _bad_payloads() -> list[tuple[str, int, bytes]]:
    v = np.full((2, 256), 0.1, np.float32)
    nan, inf, high = v.copy(), v.copy(), v.copy()
    nan[1, 7] = np.nan
    inf[0, 3] = -np.inf
    high[1, 200] = 9.0
    return [
        ("NaN", Msg.MVM, _pass(0, nan)),
        ("-Inf", Msg.TRANSPOSE_MVM, _pass(0, inf)),
        ("beyond the read voltage", Msg.MVM, _pass(0, high)),
        ("tile out of range", Msg.MVM, _pass(9, v)),
        ("batch 0", Msg.MVM, _pass(0, v[:0])),
        ("short inline array", Msg.MVM, _pass(0, v)[:-4]),
        ("long inline array", Msg.MVM, _pass(0, v) + bytes(4)),
        ("head cut short", Msg.MVM, _pass(0, v)[:10]),
        ("staged source", Msg.MVM, _pass(0, v, source=1, crc=1234)),
        ("region past the edge", Msg.MVM, _pass(0, v[:, :10], region=(250, 0, 10, 4))),
        ("region offset outside", Msg.TRANSPOSE_MVM, _pass(0, v[:, :4], region=(0, 256, 2, 4))),
        ("region, tile-wide inputs", Msg.MVM, _pass(0, v, region=(0, 0, 10, 4))),
        ("region, NaN", Msg.MVM, _pass(0, nan[:, :10], region=(0, 0, 10, 4))),
        ("region cut short", Msg.MVM, _pass(0, v[:0], region=(0, 0, 10, 4))[:20]),
        ("unknown flag", Msg.MVM, _pass(0, v, flags=0x04)),
        ("region, tile out of range", Msg.MVM, _pass(7, v[:, :10], region=(0, 0, 10, 4))),
    ]


@pytest.mark.parametrize(("case", "opcode", "payload"), _bad_payloads(), ids=lambda x: str(x))
def test_bad_passes_are_refused_alike(
    twins: tuple[PcieDevice, PcieDevice], case: str, opcode: int, payload: bytes
) -> None:
    """Payloads a host's own checks never send: the board refuses them itself, with
    the generic path's status and error payload, and its totals do not move."""
    fast, generic = twins
    before = fast.driver.board.stats()
    answers = [_answer(device, opcode, payload) for device in twins]
    assert answers[0][0] != Status.OK, case
    assert answers[0] == answers[1], case
    assert fast.driver.board.stats() == before


def test_the_error_names_field_value_and_what_is_allowed(
    twins: tuple[PcieDevice, PcieDevice],
) -> None:
    v = np.full((1, 256), 0.1, np.float32)
    v[0, 5] = 9.0
    status, head, _ = _answer(twins[0], Msg.MVM, _pass(0, v))
    assert status == Status.OUT_OF_RANGE
    field, value, allowed = m.decode_error(head)
    assert field == "voltages" and "9 V at [0, 5]" in str(value) and "read_voltage_max_v" in allowed


def test_host_fast_path_equals_the_generic_path() -> None:
    """``mvm`` / ``transpose_mvm`` (one command, straight onto the rings) and
    ``run_many`` (requests encoded by their wire entries) give equal currents."""
    rng = np.random.default_rng(8)
    with board() as served, driver(served) as d:
        d.program(0, G)
        for batch in (1, 7, 1024):
            v = rng.uniform(-0.2, 0.2, (batch, 256)).astype(np.float32)
            fast, generic = d.mvm(0, v), d.run_many([MVMRequest(0, v)])[0]
            assert np.array_equal(fast.currents, generic.currents)
            assert (fast.saturated_outputs, fast.cost) == (generic.saturated_outputs, generic.cost)
            t_fast = d.transpose_mvm(0, v)
            t_generic = d.run_many([TransposeMVMRequest(0, v)])[0]
            assert np.array_equal(t_fast.currents, t_generic.currents)
        # a region pass: one command, as run_many's generic encoding sends it
        region = Region(3, 5, 65, 10)
        for batch in (1, 7, 5000):  # 5000: more than a slot window of 65-wide vectors
            v = rng.uniform(-0.2, 0.2, (batch, 65)).astype(np.float32)
            fast, generic = d.mvm(0, v, region), d.run_many([MVMRequest(0, v, region)])[0]
            assert fast.currents.shape == (batch, 10)
            assert np.array_equal(fast.currents, generic.currents)
            assert (fast.saturated_outputs, fast.cost) == (generic.saturated_outputs, generic.cost)
            vt = v[:, :10]
            t_fast = d.transpose_mvm(0, vt, region)
            t_generic = d.run_many([TransposeMVMRequest(0, vt, region)])[0]
            assert np.array_equal(t_fast.currents, t_generic.currents)
        # through run() too (the server's way in), and a float64 list is converted alike
        listed = [[0.1] * 256]
        assert np.array_equal(d.run(MVMRequest(0, listed)).currents, d.mvm(0, listed).currents)


def test_a_board_without_region_passes_gets_the_whole_tile_padded() -> None:
    """A board whose FEATURES lack REGION_PASS (built before regions) never sees a region:
    the host sends the whole-tile pass, 0 V outside the region's lines, and keeps the
    region's outputs; the same currents as the board's own region pass (ideal board)."""
    rng = np.random.default_rng(9)
    region = Region(3, 5, 65, 10)
    with board() as served, driver(served) as d:
        d.program(0, G)
        v = rng.uniform(-0.2, 0.2, (6, 65)).astype(np.float32)
        native, native_t = d.mvm(0, v, region), d.transpose_mvm(0, v[:, :10], region)
        d.features &= ~Feature.REGION_PASS
        queues = d._queues
        assert queues is not None
        sent: list[Command] = []
        run = queues.run

        def recording(commands: Sequence[Command]) -> list[Completion]:
            sent.extend(commands)
            return run(commands)

        queues.run = recording  # type: ignore[method-assign]
        padded = d.mvm(0, v, region)
        padded_t = d.run_many([TransposeMVMRequest(0, v[:, :10], region)])[0]
        assert padded.currents.shape == (6, 10) and padded_t.currents.shape == (6, 65)
        np.testing.assert_allclose(padded.currents, native.currents, rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(padded_t.currents, native_t.currents, rtol=1e-5, atol=1e-3)
        assert len(sent) == 2
        for command, width in zip(sent, (256, 256), strict=True):
            head = bytes(command.parts[0])
            assert m.MVM_REQ.unpack_from(head)[2] == 0, "a flag sent to a board without regions"
            assert command.payload_len == m.MVM_REQ.size + 4 * 6 * width


def test_pass_head_layout_is_mvm_resp_then_cost() -> None:
    """The fast paths pack and unpack the response head in one struct: the wire's two."""
    from sidra.emulator.pcie import device

    assert device._PASS_HEAD.size == m.MVM_RESP.size + m.COST.size
    packed = device._PASS_HEAD.pack(3, 0, 1.5, 2.5)
    assert packed == m.MVM_RESP.pack(3, 0) + m.COST.pack(1.5, 2.5)
    assert struct.calcsize(device._PASS_HEAD.format) == len(packed)


def test_a_pass_whose_answer_outgrows_the_window_is_refused_before_it_runs(
    tmp_path: os.PathLike[str],
) -> None:
    """On a tile with 4× more columns than rows a payload can fit its input window while
    its currents would not fit the output window: refused (BAD_PAYLOAD) before the pass,
    the board's totals unchanged, nothing written past the window."""
    base = preset("ideal")
    profile = base.model_copy(update={"geometry": base.geometry.model_copy(update={"rows": 64})})
    device = PcieDevice(os.path.join(tmp_path, "bar0"), profile, seed=1)
    try:
        next_slot = r.in_window(SLOT + 1)
        before = (device.driver.board.stats(), device.bar.read_bytes(next_slot, 64))
        v = np.full((2000, 64), 0.1, np.float32)  # 512 KiB in, 2 MiB of currents out
        status, head, _ = _answer(device, Msg.MVM, _pass(0, v))
        assert status == Status.BAD_PAYLOAD
        assert "output window holds" in str(m.decode_error(head))
        assert (device.driver.board.stats(), device.bar.read_bytes(next_slot, 64)) == before
        ok = _answer(device, Msg.MVM, _pass(0, v[:100]))
        assert ok[0] == Status.OK and len(ok[2]) == 4 * 100 * 256
    finally:
        device.close()
