"""A wire board's own refusals, frame by frame (docs/wire-protocol.md §2.4, §4.2, §8).

The rest of the conformance suite drives a board through the reference host, which
checks every argument against HELLO before it sends it: a board's refusals never run
there. Here a raw host sends hand-built frames (the framing codec and message layouts
are the only SIDRA code it uses) and checks each refusal's status, its error payload
(three str16: field, value as strict JSON, text) and that the board changed nothing.

Targets: ``serial://PATH`` and ``socket://HOST:PORT`` boards (``--board-url``), and by
default a fresh virtual board on a pty; other transports have no wire link and skip.
Run it alone against a board of your own, so that no driver holds its port meanwhile::

    pytest tests/conformance/test_wire_refusals.py --board-url socket://127.0.0.1:5000
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import serial
from board_checks import OPENED_URLS

from sidra.drivers.wire import messages as m
from sidra.drivers.wire.framing import Flag, Frame, FrameError, decode_frame, encode_frame
from sidra.drivers.wire.messages import Msg, Status
from tests.conformance.wire_payloads import error_parts, strict_json

_UNANSWERED: set[str] = set()
"""Board URLs whose HELLO went unanswered this run (held by the suite's driver)."""
RESENDS = 3
"""Times a request goes again when no whole answer came (a line with --faults ber=...)."""
ANSWER_S = 1.0
"""How long an answer is waited for before its request goes again, s."""
OFFER = 65535
"""host_max_payload offered in HELLO: the board's own limit then decides."""


@dataclass
class RawHost:
    """Single hand-built frames to a wire board, single frames back."""

    port: serial.SerialBase
    buffer: bytes = b""
    epoch: int = 0
    req_id: int = 0
    hello: m.Hello | None = None

    def send(self, wire: bytes) -> None:
        self.port.write(wire)
        self.port.flush()

    def receive(self, msg: int, req_id: int, timeout_s: float = 5.0) -> Frame:
        """The next frame answering (msg, req_id): a BOOT notice or a stray answer
        meanwhile is passed over, as a host discards them (§3.3, §4.1)."""
        frame = self.answer(msg, req_id, timeout_s)
        assert frame is not None, f"no answer to {msg:#04x} (req_id {req_id}) within {timeout_s} s"
        return frame

    def answer(self, msg: int, req_id: int, timeout_s: float) -> Frame | None:
        """:meth:`receive`'s frame, or None when none came whole in time: a frame the line
        damaged is passed over as a host drops it (§2.4), its request then asked again."""
        self.port.timeout = timeout_s
        while True:
            while b"\x00" not in self.buffer:
                chunk = self.port.read(max(1, self.port.in_waiting))
                if not chunk:
                    return None
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\x00", 1)
            if not raw:
                continue
            try:
                frame = decode_frame(raw)
            except FrameError:
                continue
            if (frame.msg, frame.req_id) == (msg, req_id) or frame.flags & Flag.NAK:
                return frame

    def call(
        self, msg: int, payload: bytes = b"", *, req_id: int | None = None,
        epoch: int | None = None, version: int = 1, flags: int = 0,
    ) -> Frame:  # fmt: skip
        if req_id is None:
            self.req_id = (self.req_id + 1) & 0xFFFF
            req_id = self.req_id
        frame = Frame(msg, req_id, payload, flags, version=version,
                      epoch=self.epoch if epoch is None else epoch)  # fmt: skip
        self.send(encode_frame(frame))
        for _ in range(RESENDS):  # the line damaged the request or its answer: asked again
            reply = self.answer(msg, req_id, ANSWER_S)
            if reply is not None and not (reply.flags & Flag.NAK and not flags & Flag.NAK):
                return reply
            # A delimiter first ends whatever the board half-received; the same request id
            # and RETRY: a board that ran it answers from its cache (§4.3).
            again = Frame(msg, req_id, payload, flags | Flag.RETRY, version=version,
                          epoch=frame.epoch)  # fmt: skip
            self.send(b"\x00" + encode_frame(again))
        return self.receive(msg, req_id)

    def say_hello(self) -> m.Hello:
        reply = self.call(Msg.HELLO, m.HELLO_REQ.pack(1, 0, OFFER, 0))
        assert reply.status == Status.OK, f"HELLO refused: status {reply.status}"
        self.epoch, self.hello = reply.epoch, m.unpack_hello(reply.payload)
        return self.hello

    def stats(self) -> tuple[float, ...]:
        reply = self.call(Msg.GET_STATS)
        assert reply.status == Status.OK
        return tuple(m.STATS_RESP.unpack_from(reply.payload))


def _raw_port(url: str) -> serial.SerialBase:
    parts = urlsplit(url)
    if parts.scheme == "socket":
        return serial.serial_for_url(url, timeout=5.0)
    if parts.query or not parts.path:
        pytest.skip(f"{url}: a raw host opens a device path (serial:///dev/...), no search")
    return serial.Serial(parts.path, timeout=5.0)


@pytest.fixture
def host(request: pytest.FixtureRequest, board_target: Any) -> Iterator[RawHost]:
    """A raw host on the target's wire link, after HELLO; a fresh virtual board on a pty
    for the default target."""
    with ExitStack() as stack:
        scheme = urlsplit(board_target.url).scheme
        if not board_target.url and board_target.virtual == "pty":
            from sidra.emulator import preset
            from sidra.emulator.firmware import serve_virtual_board

            server = stack.enter_context(serve_virtual_board(preset("ideal"), seed=1))
            url = server.url
        elif scheme in ("serial", "socket"):
            url = board_target.url
        else:
            pytest.skip(f"no wire link: {board_target.id} is not a serial or socket board")
        busy = (
            f"{url} serves one host at a time and this run's driver (or another host) holds "
            f"it: run this file alone (pytest {__file__} --board-url {url})"
        )
        # The run's driver holds the board (conftest's shared_board): on a pty both would
        # read the line (its link watcher's pings between these frames), on TCP the board
        # would not answer a second host.
        if url in _UNANSWERED or url in getattr(request.session, OPENED_URLS, ()):
            pytest.skip(busy)
        port = _raw_port(url)
        stack.callback(port.close)
        raw = RawHost(port, req_id=secrets.randbelow(0x8000))
        try:
            raw.say_hello()
        except AssertionError:
            if not board_target.url:
                raise
            # A TCP board serves one host at a time: another process's driver may hold it.
            # Asked once a run.
            _UNANSWERED.add(url)
            pytest.skip(busy)
        yield raw


def refusal(reply: Frame, status: Status, host: RawHost) -> tuple[bytes, Any, bytes]:
    """``reply``'s error payload, checked as §8.2 has it: the status, three str16 within
    the negotiated max_payload, the value empty or strict JSON; (field, value, text)."""
    assert reply.status == status, f"status {reply.status}, expected {status.name}"
    assert host.hello is not None and len(reply.payload) <= host.hello.max_payload
    field, value, text = error_parts(reply.payload)
    assert text, "an error says what is allowed or what went wrong"
    return field, (strict_json(value) if value else None), text


def test_a_damaged_frame_is_nak_ed_and_nothing_runs(host: RawHost) -> None:
    """§2.4: a frame whose CRC fails is answered NAK (status BAD_FRAME, empty payload)."""
    before = host.stats()
    host.req_id = (host.req_id + 1) & 0xFFFF
    wire = bytearray(encode_frame(Frame(Msg.GET_STATS, host.req_id, b"", epoch=host.epoch)))
    wire[3] = wire[3] ^ 0x5A or 0x01  # inside the header: the CRC no longer holds
    host.send(bytes(wire))
    nak = host.receive(Msg.GET_STATS, host.req_id)
    assert nak.flags & Flag.NAK and nak.status == Status.BAD_FRAME and nak.payload == b""
    assert host.stats()[2:4] == before[2:4]  # no pass, no write


def test_another_protocol_version_is_refused_echoing_msg_and_id_uncached(host: RawHost) -> None:
    for _ in range(2):  # asked twice with one id: answered twice, never from the cache
        reply = host.call(Msg.PING, version=2, req_id=0x4242)
        assert (reply.version, reply.msg, reply.req_id) == (1, Msg.PING, 0x4242)
        field, value, _ = refusal(reply, Status.UNSUPPORTED_VERSION, host)
        assert (field, value) == (b"", None)


def test_an_unknown_message_names_msg_and_its_id(host: RawHost) -> None:
    field, value, _ = refusal(host.call(0x7E), Status.UNKNOWN_MESSAGE, host)
    assert (field, value) == (b"msg", 126)


def test_another_epoch_and_an_older_id_are_refused_not_run(host: RawHost) -> None:
    """§4.2 steps 3 and 4: STALE_EPOCH for a request of another boot, STALE_REQUEST for an
    id older than one executed (never executed, never cached)."""
    before = host.stats()
    stale = host.call(Msg.GET_STATS, epoch=(host.epoch + 1) & 0xFF)
    assert refusal(stale, Status.STALE_EPOCH, host)[:2] == (b"", None)
    older = (host.req_id - 1000) & 0xFFFF
    refused = host.call(Msg.ADVANCE_CLOCK, m.CLOCK.pack(1.0), req_id=older)
    assert refusal(refused, Status.STALE_REQUEST, host)[:2] == (b"", None)
    assert host.stats()[4] == before[4]  # the clock did not move


def _mvm(tile: int, volts: np.ndarray) -> bytes:
    batch = volts.shape[0]
    return m.MVM_REQ.pack(tile, 0, 0, batch, 0, 0, 0) + volts.astype("<f4").tobytes()


def test_refused_passes_name_the_field_and_the_value_and_change_nothing(host: RawHost) -> None:
    """§6, §8.2: a tile past the board's, voltages past read_voltage_max_v and a payload
    shorter than its batch are refused naming what is wrong; nothing runs (no pass
    counted, no cell written); a refusal sent again (RETRY, same id) is replayed as it was."""
    hello = host.hello
    assert hello is not None
    if 16 + 4 * hello.rows > hello.max_payload:
        pytest.skip(f"one {hello.rows}-input vector does not fit a {hello.max_payload} B frame")
    before = host.stats()
    volts = np.zeros((1, hello.rows), np.float32)
    field, value, _ = refusal(
        host.call(Msg.MVM, _mvm(hello.tile_count, volts)), Status.OUT_OF_RANGE, host
    )
    assert (field, value) == (b"tile", hello.tile_count)
    high = volts.copy()
    high[0, 0] = 2 * hello.read_voltage_max_v
    reply = host.call(Msg.MVM, _mvm(0, high))
    field, value, _ = refusal(reply, Status.OUT_OF_RANGE, host)
    assert field == b"voltages" and isinstance(value, str)  # a tensor: described, not echoed
    again = host.call(Msg.MVM, _mvm(0, high), req_id=host.req_id, flags=Flag.RETRY)
    assert (again.status, again.payload) == (reply.status, reply.payload)
    short = host.call(Msg.MVM, _mvm(0, volts)[:-4])
    refusal(short, Status.BAD_PAYLOAD, host)
    after = host.stats()
    assert (after[2], after[3]) == (before[2], before[3])  # mvm_passes, cell_writes


def test_a_nan_amplitude_is_refused_as_the_json_string_nan(host: RawHost) -> None:
    before = host.stats()
    nan = m.PERTURB_REQ.pack(0, 0, 0, 0, 0, 1, 5, math.nan)
    field, value, _ = refusal(host.call(Msg.PERTURB, nan), Status.INVALID_ARGUMENT, host)
    assert (field, value) == (b"amplitude_us", "NaN")
    assert host.stats()[3] == before[3]  # no cell written


def test_stage_data_without_a_stage_is_refused(host: RawHost) -> None:
    head = m.STAGE_DATA_HEAD.pack(0xFFFF, 0, 0)
    refusal(host.call(Msg.STAGE_DATA, head + bytes(16)), Status.NO_STAGE, host)
