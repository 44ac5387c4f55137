"""Frame codec and fault-spec parsing, without any I/O."""

from __future__ import annotations

import pytest

from sidra.drivers.errors import (
    WIRE_STATUS,
    BoardFault,
    BoardReset,
    FailedPrecondition,
    InvalidArgument,
    OutOfRange,
    SidraError,
    Unsupported,
)
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.framing import (
    Flag,
    Frame,
    FrameError,
    FrameSplitter,
    decode_frame,
    encode_frame,
    max_wire_bytes,
)
from sidra.drivers.wire.messages import Msg, Status
from sidra.emulator.firmware.faults import FaultConfig
from sidra.emulator.pcie import PcieFaults

PING_VECTOR = bytes.fromhex("02 01 02 02 03 02 01 01 01 01 01 01 04 f4 56 d7 01 00")


def test_spec_test_vector() -> None:
    """The PING request of docs/wire-protocol.md §2.4, byte for byte."""
    assert encode_frame(Frame(Msg.PING, 0x0102, b"")) == PING_VECTOR
    assert decode_frame(PING_VECTOR[:-1]) == Frame(Msg.PING, 0x0102, b"")


@pytest.mark.parametrize("payload", [b"", b"\x00" * 300, bytes(range(256)) * 3, b"\xff" * 1000])
def test_round_trip_and_no_zero_inside(payload: bytes) -> None:
    frame = Frame(Msg.MVM, 65535, payload, Flag.RESP | Flag.RETRY, 0x21, 0xBEEF)
    wire = encode_frame(frame)
    assert wire.index(b"\x00") == len(wire) - 1  # 0x00 only as the delimiter
    assert len(wire) <= max_wire_bytes(len(payload))
    assert decode_frame(wire[:-1]) == frame


def test_every_single_bit_flip_is_detected() -> None:
    wire = encode_frame(Frame(Msg.PERTURB, 9, bytes(range(40)), epoch=3))[:-1]
    for bit in range(8 * len(wire)):
        damaged = bytearray(wire)
        damaged[bit // 8] ^= 1 << (bit % 8)
        if 0 in damaged:
            continue  # would split the frame at the receiver: two damaged pieces
        with pytest.raises(FrameError):
            decode_frame(bytes(damaged))


def test_splitter_reassembles_and_skips_garbage() -> None:
    a, b = encode_frame(Frame(1, 1, b"abc")), encode_frame(Frame(2, 2, b"\x00" * 5))
    splitter = FrameSplitter(max_payload=256)
    stream = b"\x00\x00" + a + b
    out = [piece for i in range(len(stream)) for piece in splitter.feed(stream[i : i + 1])]
    assert [decode_frame(p).msg for p in out] == [1, 2]
    assert splitter.feed(b"\x11" * 2000 + b"\x00" + a) == [a[:-1]]  # oversize run dropped
    assert splitter.oversize == 1


def test_fault_spec_parsing() -> None:
    config = FaultConfig.parse("ber=1e-4, drop=0.01,dup=0.01,reset_after=5,seed=3")
    assert (config.ber, config.drop, config.dup, config.reset_after, config.seed) == (
        1e-4, 0.01, 0.01, 5, 3,
    )  # fmt: skip
    for bad, message in [
        ("ber=2", "0 .. 1"), ("wobble=1", "key one of"), ("drop=x", "number"),
        ("ber=1e-4,ber=1e-3", "ber: given twice"), ("reset_after=1.5", "expected an integer >= 0"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            FaultConfig.parse(bad)
    for bad, message in [
        ("hang=1,hang=2", "hang: given twice"), ("reverse=2", "reverse: got 2, expected 0 or 1"),
        ("hang=x", "key=N"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            PcieFaults.parse(bad)
    assert PcieFaults.parse("hang=3,reverse=1") == PcieFaults(hang=3, reverse=1)


@pytest.mark.parametrize(
    "exc",
    [
        OutOfRange("tile", 9, "an integer in 0 .. 3"),
        InvalidArgument("amplitude_us", float("inf"), "a finite value"),
        FailedPrecondition("the board is busy"),
        Unsupported("no virtual clock"),
        BoardReset("rebooted"),
        BoardFault("adc stuck"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_wire_errors_round_trip_through_the_table(exc: SidraError) -> None:
    """Board side and host side read one table (WIRE_STATUS) in opposite directions."""
    status, payload = m.error_reply(exc)
    assert status.name == dict((cls, name) for cls, name in WIRE_STATUS)[type(exc)]
    back = m.error_exception("MVM", status, payload)
    assert type(back) is type(exc)
    if isinstance(exc, InvalidArgument):
        assert isinstance(back, InvalidArgument)
        assert (back.field, back.value, back.allowed) == (exc.field, exc.value, exc.allowed)
    else:
        assert str(exc) in str(back)


def test_protocol_statuses_and_unknown_codes_are_board_faults() -> None:
    text = m.encode_error("no open stage 7")
    for status in (Status.NO_STAGE, Status.BAD_PAYLOAD, Status.UNKNOWN_MESSAGE, 0x7777):
        back = m.error_exception("STAGE_DATA", status, text)
        assert type(back) is BoardFault and "STAGE_DATA" in str(back)
    assert all(name in Status.__members__ for _, name in WIRE_STATUS)
