"""A host that writes submission entries the register map does not allow (a bug in a
third-party driver, or a hostile process with the BAR): the virtual board answers each
with an error status and serves on. It died of an IndexError on a slot it does not have.

The entries are written raw into the submission ring of a driver's rings (its positions
kept in step), as such a host would; the board runs in a thread of this process.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from pcie_in_process import pcie_board_in_thread

from sidra.drivers.pcie import registers as r
from sidra.drivers.pcie.driver import PcieDriver
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.messages import Msg, Status


def _raw(board: PcieDriver, opcode: int, payload_len: int, slot: int, **extra: int) -> tuple:
    """Submits one entry as written, waits for its completion and consumes it; returns
    (command id, status, slot, head_len, result_len) and the head's bytes."""
    queues = board._queues
    assert queues is not None
    bar, depth = queues.bar, queues.depth
    entry = r.SUBMISSION.pack(
        0xBEEF, opcode, queues.boot_count, payload_len, slot,
        extra.get("head_len", 0), extra.get("room", 0), extra.get("addr", 0),
    )  # fmt: skip
    bar.write_bytes(r.SQ_OFFSET + (queues.sq_tail % depth) * r.SUBMISSION.size, entry)
    queues.sq_tail = (queues.sq_tail + 1) & 0xFFFF_FFFF
    bar.write32(r.OFFSET["SQ_TAIL"], queues.sq_tail)
    bar.kick(r.OFFSET["SQ_TAIL"])
    at = r.CQ_OFFSET + (queues.cq_head % depth) * r.COMPLETION.size
    phase = 1 ^ ((queues.cq_head // depth) & 1)
    deadline = time.monotonic() + 5
    while bar.read32(at + 4) & 1 != phase:
        assert time.monotonic() < deadline, "no completion: the board stopped serving"
        time.sleep(0.001)
    cid, status, phase_slot, head_len, result_len, _, _ = r.COMPLETION.unpack(
        bar.read_bytes(at, r.COMPLETION.size)
    )
    head = bar.read_bytes(r.out_window(slot), head_len) if slot < depth else b""
    queues.cq_head = (queues.cq_head + 1) & 0xFFFF_FFFF
    bar.write32(r.OFFSET["CQ_HEAD"], queues.cq_head)
    return (cid, status, phase_slot >> 8, head_len, result_len), head


@pytest.mark.parametrize(
    ("entry", "status", "says"),
    [
        ({"opcode": Msg.CALIBRATE, "payload_len": 4, "slot": 9}, Status.BAD_PAYLOAD, ""),
        ({"opcode": Msg.CALIBRATE, "payload_len": 4, "slot": 2**31}, Status.BAD_PAYLOAD, ""),
        (
            {"opcode": Msg.CALIBRATE, "payload_len": r.SLOT_WINDOW_BYTES + 1, "slot": 0},
            Status.BAD_PAYLOAD, "a slot window holds",
        ),
        ({"opcode": 0x7FFF, "payload_len": 0, "slot": 1}, Status.UNKNOWN_MESSAGE, ""),
        ({"opcode": Msg.MVM, "payload_len": 3, "slot": 2}, Status.BAD_PAYLOAD, ""),
        (
            {"opcode": Msg.MVM, "payload_len": 0, "slot": 3, "room": 2**32 - 1, "addr": 2**63},
            Status.BAD_PAYLOAD, "",
        ),
    ],
    ids=["slot-9", "slot-2^31", "payload-past-window", "unknown-opcode", "short-head",
         "room-outside-host-memory"],
)  # fmt: skip
def test_a_submission_the_map_does_not_allow_is_refused_and_the_board_serves_on(
    entry: dict[str, int], status: Status, says: str
) -> None:
    with pcie_board_in_thread(seed=5) as (board, device):
        done, head = _raw(board, **entry)
        assert done[:2] == (0xBEEF, status)
        if entry["slot"] >= r.QUEUE_DEPTH:  # no window of its own: nothing written in any
            assert done[3:] == (0, 0)
        if says:
            assert says in m.decode_error(head)[2]
        if status == Status.UNKNOWN_MESSAGE:  # named as the serial board names it (§8.2)
            assert m.decode_error(head)[:2] == ("msg", entry["opcode"])
        assert device.is_alive()
        v = np.full((2, 256), 0.1, np.float32)
        assert board.mvm(0, v).currents.shape == (2, 256)  # the next host call is answered
