"""An independent host written only from docs/wire-protocol.md, against the virtual board.

Nothing from ``sidra`` is imported: COBS, CRC-32, header and payload packing are
re-implemented here from the spec, and the board is a separate
``sidra board serve --pty`` process reached through raw ``os.read``/``os.write``
on its pty. If this test passes, the spec is complete enough to interoperate.
"""

from __future__ import annotations

import os
import re
import select
import signal
import struct
import subprocess
import sys
import tty
from collections.abc import Iterator

import numpy as np
import pytest

# -- §2.2 CRC-32, table-driven from the spec's constants ------------------------------------

_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# -- §2.3 COBS -------------------------------------------------------------------------------


def cobs_encode(data: bytes) -> bytes:
    out = bytearray([0])
    code_at, code = 0, 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 255:
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        if code == 0 or i + code > len(data):
            raise ValueError("bad COBS")
        out += data[i + 1 : i + code]
        i += code
        if code < 255 and i < len(data):
            out.append(0)
    return bytes(out)


# -- §2.1 header, §3 HELLO, §6 payloads ------------------------------------------------------

HEADER = "<BBHHHHH"
RESP, NAK, RETRY, BOOT = 0x01, 0x02, 0x04, 0x08
HELLO, PING, RESULT_READ = 0x01, 0x02, 0x06
STAGE_BEGIN, STAGE_DATA, STAGE_VERIFY, PROGRAM_COMMIT = 0x10, 0x11, 0x12, 0x20
READ_CONDUCTANCE, MVM, PERTURB = 0x21, 0x22, 0x24
STALE_EPOCH, BAD_FRAME, OUT_OF_RANGE = 0x0004, 0x0003, 0x0021


def frame(msg: int, req_id: int, payload: bytes, epoch: int, flags: int = 0) -> bytes:
    header = struct.pack(HEADER, 1, flags, msg, req_id, 0, len(payload), epoch)
    body = header + payload
    return cobs_encode(body + struct.pack("<I", crc32(body))) + b"\x00"


def parse(wire: bytes) -> tuple[tuple[int, ...], bytes]:
    body = cobs_decode(wire)
    assert struct.unpack("<I", body[-4:])[0] == crc32(body[:-4])
    header = struct.unpack_from(HEADER, body)
    assert header[5] == len(body) - 16
    return header, body[12:-4]


def splitmix_signs(seed: int, n: int) -> np.ndarray:
    """§7: the Rademacher stream of ``seed``, n signs."""
    mask, state, signs = (1 << 64) - 1, seed, []
    while len(signs) < n:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        signs += [1.0 if (z >> bit) & 1 else -1.0 for bit in range(64)]
    return np.array(signs[:n], np.float32)


class SpecHost:
    """Stop-and-wait host over a raw pty fd."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buffer = b""
        self.req_id = 0x7FF0  # wraps past 0xFFFF during the test
        self.epoch = 0

    def send(self, wire: bytes) -> None:
        view = memoryview(wire)
        while view:
            view = view[os.write(self.fd, view) :]

    def receive(self, timeout: float = 5.0) -> tuple[tuple[int, ...], bytes]:
        while b"\x00" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            assert ready, "no response"
            self.buffer += os.read(self.fd, 65536)
        wire, self.buffer = self.buffer.split(b"\x00", 1)
        if not wire:
            return self.receive(timeout)
        return parse(wire)

    def call(
        self, msg: int, payload: bytes = b"", expect: int = 0
    ) -> tuple[tuple[int, ...], bytes]:
        self.req_id = (self.req_id + 1) & 0xFFFF
        self.send(frame(msg, self.req_id, payload, self.epoch))
        header, reply = self.receive()
        version, flags, rmsg, rid, status, _, epoch = header
        assert (version, flags & RESP, rmsg, rid) == (1, RESP, msg, self.req_id)
        assert status == expect, (hex(status), reply)
        return header, reply

    def result(self, req_id: int, block: bytes) -> bytes:
        """§5.2: inline part, then RESULT_READ in pieces, CRC-checked."""
        total, crc = struct.unpack_from("<II", block)
        data = block[8:]
        while len(data) < total:
            _, part = self.call(RESULT_READ, struct.pack("<HHII", req_id, 0, len(data), 1000))
            data += part
        assert crc32(data) == crc
        return data


@pytest.fixture
def host() -> Iterator[SpecHost]:
    command = [sys.executable, "-m", "sidra.cli", "board", "serve", "--pty"]
    proc = subprocess.Popen(
        [*command, "--preset", "ideal", "--seed", "3", "--max-payload", "1024"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    assert url.startswith("serial://")
    spec_host = SpecHost(url.removeprefix("serial://"))
    yield spec_host
    os.close(spec_host.fd)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    proc.stdout.close()


def test_independent_host_talks_to_the_virtual_board(host: SpecHost) -> None:
    """HELLO, a staged Program (begin, chunks, verify, commit), MVM, Perturb, a chunked read,
    a retransmission answered from the cache, and a stale epoch, all from the spec."""
    assert crc32(b"123456789") == 0xCBF43926
    # §3.1 HELLO
    header, hello = host.call(HELLO, struct.pack("<HHII", 1, 0, 1024, 0))
    (proto, features, boot, max_payload, capacity, _, tiles, rows, cols, _, _,
     g_min, g_max, v_max, n_bauds) = struct.unpack_from("<HHIIIIHHHBBdddB", hello)  # fmt: skip
    assert (proto, max_payload, tiles, rows, cols) == (1, 1024, 4, 256, 256)
    assert features & 1 and (g_min, g_max, v_max) == (1.0, 40.0, 0.2)
    assert header[6] == (boot & 0xFFFF or 1)
    host.epoch = header[6]
    offset = 53 + 4 * n_bauds
    names = []
    for _ in range(4):
        names.append(hello[offset + 1 : offset + 1 + hello[offset]].decode())
        offset += 1 + hello[offset]
    # A board served from seed 3 answers a serial of its own: EMU-IDEAL-3-<8 hex digits>
    assert re.fullmatch(r"EMU-IDEAL-3-[0-9a-f]{8}", names[1]) and names[3] == "ideal"

    # §5.1 Program a 20 x 30 region at (5, 7) of tile 2, in chunks of 1016 bytes.
    g = (np.random.default_rng(2).integers(24, 624, (20, 30)) / 16).astype("<f4")  # 1.5..39
    image = g.tobytes()
    _, begun = host.call(STAGE_BEGIN, struct.pack("<I", len(image)))
    stage_id, _, stage_capacity = struct.unpack("<HHI", begun)
    assert stage_capacity == capacity >= len(image)
    for at in range(0, len(image), max_payload - 8):
        host.call(STAGE_DATA, struct.pack("<HHI", stage_id, 0, at) + image[at : at + 1016])
    _, verified = host.call(STAGE_VERIFY, struct.pack("<HHI", stage_id, 0, crc32(image)))
    assert struct.unpack("<I", verified)[0] == crc32(image)
    commit = struct.pack("<HHHHHHI", 2, 5, 7, 20, 30, stage_id, crc32(image))
    _, report = host.call(PROGRAM_COMMIT, commit)
    assert struct.unpack_from("<I", report)[0] == 600  # cells_written

    # MVM: one vector driving rows 5..24 of tile 2. 16 + 1024 B exceeds max_payload, so the
    # inputs go through the stage (§6: source = 1)...
    v = np.zeros((1, 256), "<f4")
    v[0, 5:25] = np.arange(20) / 256
    tile = np.full((256, 256), g_min, np.float32)  # power-up state: every cell at g_min
    tile[5:25, 7:37] = g
    expected = v[0] @ tile
    inputs = v.tobytes()
    _, begun = host.call(STAGE_BEGIN, struct.pack("<I", len(inputs)))
    stage_id = struct.unpack_from("<H", begun)[0]
    host.call(STAGE_DATA, struct.pack("<HHI", stage_id, 0, 0) + inputs[:1000])
    host.call(STAGE_DATA, struct.pack("<HHI", stage_id, 0, 1000) + inputs[1000:])
    host.call(STAGE_VERIFY, struct.pack("<HHI", stage_id, 0, crc32(inputs)))
    mvm = struct.pack("<HBBIHHI", 2, 1, 0, 1, stage_id, 0, crc32(inputs))
    _, reply = host.call(MVM, mvm)
    saturated, _, time_ns, energy = struct.unpack_from("<IIdd", reply)
    currents = np.frombuffer(host.result(host.req_id, reply[24:]), "<f4")
    assert saturated == 0 and time_ns > 0 and energy > 0
    assert np.array_equal(currents, expected)  # dyadic values: exact in float32
    # ... while an oversize inline request is refused as damaged (NAK), never half-read.
    host.req_id += 1
    host.send(
        frame(MVM, host.req_id, struct.pack("<HBBIHHI", 2, 0, 0, 1, 0, 0, 0) + inputs, host.epoch)
    )
    header, _ = host.receive()
    assert header[1] & NAK

    # §6.1 the same pass scoped to the programmed block (the board says REGION_PASS): flags
    # bit 0, the region after the head, 20 inputs inline (16 + 8 + 80 B), 30 currents back.
    assert features & 4
    region_pass = struct.pack("<HBBIHHI", 2, 0, 1, 1, 0, 0, 0) + struct.pack("<HHHH", 5, 7, 20, 30)
    _, reply = host.call(MVM, region_pass + v[:, 5:25].tobytes())
    scoped = np.frombuffer(host.result(host.req_id, reply[24:]), "<f4")
    assert scoped.shape == (30,) and np.array_equal(scoped, expected[7:37])

    # PERTURB sign -1, amplitude 0.5, seed 12 over the programmed region; read it back in
    # pieces (2400 B result > 1024 B frames).
    request = struct.pack("<HHHHHbxQd", 2, 5, 7, 20, 30, -1, 12, 0.5)
    _, report = host.call(PERTURB, request)
    assert struct.unpack_from("<II", report) == (600, 0)
    _, reply = host.call(READ_CONDUCTANCE, struct.pack("<HHHHH", 2, 5, 7, 20, 30))
    read = np.frombuffer(host.result(host.req_id, reply[16:]), "<f4").reshape(20, 30)
    assert np.array_equal(read, g - np.float32(0.5) * splitmix_signs(12, 600).reshape(20, 30))

    # §4.2: the same request twice (a retransmission) gets the cached response, not a second
    # execution: byte-identical answers, and the perturbation is still exactly one.
    again = frame(PERTURB, host.req_id + 1, request, host.epoch)
    host.send(again)
    first = host.receive()
    host.send(b"\x00" + again)
    assert host.receive() == first
    host.req_id += 1

    # §3.2 stale epoch: not executed.
    host.send(frame(PERTURB, host.req_id + 1, request, (host.epoch + 1) & 0xFFFF or 1))
    header, _ = host.receive()
    assert header[4] == STALE_EPOCH

    # §4.4 a damaged frame is NAKed.
    bad = bytearray(frame(PING, 1, b"", host.epoch))
    bad[3] ^= 0x40
    host.send(bytes(bad))
    header, _ = host.receive()
    assert header[1] & NAK and header[4] == BAD_FRAME

    # §8 an argument error names the field (value 50 µS out of range via Program).
    image = np.full((1, 1), 50.0, "<f4").tobytes()
    _, begun = host.call(STAGE_BEGIN, struct.pack("<I", 4))
    stage_id = struct.unpack_from("<H", begun)[0]
    host.call(STAGE_DATA, struct.pack("<HHI", stage_id, 0, 0) + image)
    host.call(STAGE_VERIFY, struct.pack("<HHI", stage_id, 0, crc32(image)))
    commit = struct.pack("<HHHHHHI", 0, 0, 0, 1, 1, stage_id, crc32(image))
    _, error = host.call(PROGRAM_COMMIT, commit, expect=OUT_OF_RANGE)
    n = struct.unpack_from("<H", error)[0]
    assert error[2 : 2 + n] == b"conductances"
