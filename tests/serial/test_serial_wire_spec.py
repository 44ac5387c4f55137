"""The virtual board answers exactly as docs/wire-protocol.md says, frame by frame.

A raw host on the board's real pty sends hand-built frames (the framing codec is
the only sidra code it uses) and checks headers, statuses and error payloads
byte for byte: the cases a firmware author reads in the spec and cannot see in
a happy-path session.
"""

from __future__ import annotations

import os
import select
import tty
import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from sidra.drivers.wire import messages as m
from sidra.drivers.wire.framing import Flag, Frame, decode_frame, encode_frame
from sidra.drivers.wire.messages import Msg, Status
from sidra.emulator import preset
from sidra.emulator.config import Geometry
from sidra.emulator.firmware import PtyServer, VirtualBoard
from tests.conformance.wire_payloads import error_parts, strict_json

PROFILE = preset("ideal").model_copy(update={"geometry": Geometry(tiles=2, rows=32, cols=16)})


class RawHost:
    """Sends single frames on the pty and reads single frames back."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        self.buffer = b""
        self.stray = b""
        self.epoch = 0
        self.req_id = 100

    def send(self, wire: bytes) -> None:
        view = memoryview(wire)
        while view:
            view = view[os.write(self.fd, view) :]

    def receive(self, timeout: float = 5.0) -> Frame:
        while b"\x00" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            assert ready, "no frame from the board"
            self.buffer += os.read(self.fd, 1 << 16)
        raw, self.buffer = self.buffer.split(b"\x00", 1)
        return decode_frame(raw) if raw else self.receive(timeout)

    def quiet(self, timeout: float = 0.2) -> bool:
        """Nothing more arrives within ``timeout`` (what did is kept in :attr:`stray`, for
        the assertion's message)."""
        if not self.buffer and not select.select([self.fd], [], [], timeout)[0]:
            return True
        if select.select([self.fd], [], [], 0)[0]:
            self.buffer += os.read(self.fd, 1 << 16)
        self.stray = self.buffer
        return False

    def call(self, msg: int, payload: bytes = b"", *, req_id: int | None = None) -> Frame:
        if req_id is None:
            self.req_id = (self.req_id + 1) & 0xFFFF
            req_id = self.req_id
        self.send(encode_frame(Frame(msg, req_id, payload, epoch=self.epoch)))
        reply = self.receive()
        assert (reply.msg, reply.req_id) == (msg, req_id)
        return reply

    def hello(self, offer: int = 1024, want_baud: int = 0, **kw: int) -> Frame:
        reply = self.call(Msg.HELLO, m.HELLO_REQ.pack(1, 0, offer, want_baud), **kw)
        if reply.status == Status.OK:
            self.epoch = reply.epoch
        return reply


@pytest.fixture
def board() -> Iterator[tuple[PtyServer, RawHost]]:
    server = PtyServer(VirtualBoard(PROFILE, 1, max_payload=1024, stage_capacity=4096))
    with server:
        host = RawHost(server.path)
        try:
            yield server, host
        finally:
            os.close(host.fd)


def test_error_value_is_empty_without_one_and_json_with_one(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§8: a protocol error has empty field and value (not `null`); UNKNOWN_MESSAGE names
    `msg` and the id; an argument error carries its value as strict JSON, NaN as "NaN"."""
    _, host = board
    stale = host.call(Msg.GET_STATS)  # epoch 0 before HELLO
    assert stale.status == Status.STALE_EPOCH
    field, value, text = error_parts(stale.payload)
    assert (field, value) == (b"", b"") and b"epoch" in text

    host.hello()
    unknown = host.call(0x7E)
    assert unknown.status == Status.UNKNOWN_MESSAGE
    field, value, text = error_parts(unknown.payload)
    assert (field, strict_json(value)) == (b"msg", 126) and b"0x22" in text

    nan = m.PERTURB_REQ.pack(0, 0, 0, 0, 0, 1, 5, float("nan"))
    refused = host.call(Msg.PERTURB, nan)
    assert refused.status == Status.INVALID_ARGUMENT
    field, value, text = error_parts(refused.payload)
    assert (field, strict_json(value)) == (b"amplitude_us", "NaN")
    assert m.decode_error(refused.payload)[1] != m.decode_error(refused.payload)[1]  # NaN back


def test_echoed_values_are_capped_and_errors_fit_the_payload_limit() -> None:
    """An error about a huge value stays small: value ≤ ERROR_VALUE_LIMIT bytes of valid
    JSON, the whole payload ≤ the negotiated max_payload."""
    huge = list(range(5000))
    for limit in (256, 65535):
        payload = m.encode_error("x" * 5000, "voltages.shape", huge, limit=limit)
        field, value, text = error_parts(payload)
        assert len(payload) <= min(limit, 6 + 64 + m.ERROR_VALUE_LIMIT + m.ERROR_TEXT_LIMIT)
        assert len(value) <= m.ERROR_VALUE_LIMIT
        shown = strict_json(value)
        assert isinstance(shown, str) and shown.startswith("[0,1,2") and shown.endswith("...")
    assert m.encode_error("only a message") == b"\x00\x00\x00\x00\x0e\x00only a message"


def test_unsupported_version_echoes_msg_and_id_and_is_not_cached(
    board: tuple[PtyServer, RawHost],
) -> None:
    _, host = board
    host.hello()
    frame = Frame(Msg.PING, 0x4242, b"", version=2, epoch=host.epoch)
    for _ in range(2):  # asked twice: answered twice, never replayed from the cache
        host.send(encode_frame(frame))
        reply = host.receive()
        assert (reply.version, reply.msg, reply.req_id) == (1, Msg.PING, 0x4242)
        assert reply.status == Status.UNSUPPORTED_VERSION
        assert b"version 2" in error_parts(reply.payload)[2]
    assert 0x4242 not in board[0].board.cache


def test_a_response_frame_is_never_answered_whatever_its_version(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§2.4 steps 4 and 5: RESP is looked at before the version, so a looped-back frame of
    another version is dropped too, not answered UNSUPPORTED_VERSION."""
    _, host = board
    host.hello()
    for version in (1, 2):
        looped = Frame(Msg.PING, 0x4343, b"", Flag.RESP, version=version, epoch=host.epoch)
        host.send(encode_frame(looped))
        assert host.quiet(), f"version {version}: answered {host.stray.hex()}"


def test_executed_counts_the_requests_run_not_hello_ping_or_replays(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§6 GET_LINK_STATS: `executed` counts what reached §4.2 step 5, a refusal too."""
    _, host = board
    host.hello()

    def executed() -> int:
        stats = m.LINK_STATS_RESP.unpack(host.call(Msg.GET_LINK_STATS).payload)
        return int(stats[m.LINK_STATS_FIELDS.index("executed")])

    before = executed()  # counts itself
    host.hello()
    host.call(Msg.PING)
    unknown = host.call(0x7E)
    host.send(encode_frame(Frame(0x7E, host.req_id, b"", Flag.RETRY, epoch=host.epoch)))
    assert host.receive() == unknown  # replayed
    assert executed() == before + 2  # the unknown message and this GET_LINK_STATS


def test_a_hello_replayed_from_the_cache_moves_no_window(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§3.1: a host restarting with the id and payload of a cached HELLO gets the cached
    answer; the window stays at the newest request run, so the ids it reuses are
    answered from the cache (the previous run's answers) or refused STALE_REQUEST."""
    _, host = board
    first = host.hello()
    start = host.req_id
    stats = [host.call(Msg.GET_STATS) for _ in range(3)]
    one_pass = host.call(Msg.MVM, m.MVM_REQ.pack(0, 0, 0, 1, 0, 0, 0) + bytes(4 * 32))
    assert one_pass.status == Status.OK  # the totals move on: mvm_passes + 1
    again = host.hello(req_id=start)  # a restarted host with a fixed first id
    assert again == first
    assert host.call(Msg.GET_STATS, req_id=start + 1) == stats[0]  # an old answer
    refused = host.call(Msg.GET_LINK_STATS, req_id=start + 2)
    assert refused.status == Status.STALE_REQUEST


def test_refused_hello_keeps_the_id_window(board: tuple[PtyServer, RawHost]) -> None:
    """§3.1: a refused HELLO is not cached and moves nothing: had it set the window to its
    id (newest + 1000), the next ordinary request (newest + 1) would be STALE_REQUEST."""
    server, host = board
    host.hello()
    newest = host.req_id
    refused = host.hello(want_baud=12_345, req_id=newest + 1000)
    assert refused.status == Status.UNSUPPORTED
    assert newest + 1000 not in server.board.cache
    assert host.call(Msg.GET_STATS, req_id=newest + 1).status == Status.OK
    short = host.call(Msg.HELLO, b"\x01\x00", req_id=newest + 2000)
    assert short.status == Status.BAD_PAYLOAD
    assert host.call(Msg.GET_STATS, req_id=newest + 2).status == Status.OK


def test_receive_limit_is_the_board_maximum_before_and_after_hello(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§2.4: the board reads any frame up to board_max_payload (1024 here), HELLO or not;
    a longer one is damaged (NAK)."""
    _, host = board
    fits = host.call(Msg.STAGE_DATA, bytes(1024))  # before HELLO: read, refused by epoch
    assert fits.status == Status.STALE_EPOCH
    host.send(encode_frame(Frame(Msg.STAGE_DATA, 7, bytes(1025))))
    nak = host.receive()
    assert nak.flags & Flag.NAK and nak.status == Status.BAD_FRAME
    host.hello(offer=256)  # negotiated 256; the receive buffer stays 1024
    assert host.call(Msg.STAGE_DATA, bytes(1000)).status == Status.NO_STAGE


def test_result_read_at_and_past_the_end(board: tuple[PtyServer, RawHost]) -> None:
    """§5.2: reads are clipped at the end, empty at result_len, BAD_PAYLOAD past it."""
    _, host = board
    host.hello(offer=256)
    reply = host.call(Msg.READ_CONDUCTANCE, m.REGION_REQ.pack(0, 0, 0, 0, 0))
    total, crc = m.RESULT_HEAD.unpack_from(reply.payload, m.COST.size)
    assert total == 4 * 32 * 16
    rid = host.req_id

    def read(offset: int, length: int) -> Frame:
        return host.call(Msg.RESULT_READ, m.RESULT_READ_REQ.pack(rid, 0, offset, length))

    tail = read(total - 10, 200)
    assert tail.status == Status.OK and len(tail.payload) == 10
    end = read(total, 200)
    assert end.status == Status.OK and end.payload == b""
    past = read(total + 1, 1)
    assert past.status == Status.BAD_PAYLOAD and b"offset" in error_parts(past.payload)[2]
    assert read(0, 257).status == Status.BAD_PAYLOAD  # longer than max_payload
    whole = b"".join(read(at, 256).payload for at in range(0, total, 256))
    assert zlib.crc32(whole) == crc


def test_refused_staged_mvm_keeps_its_stage(board: tuple[PtyServer, RawHost]) -> None:
    """§5.1: a command that fails leaves the stage as it was; only success consumes it."""
    _, host = board
    host.hello()
    v = np.full((4, 32), 0.1, "<f4").tobytes()
    sid = m.STAGE_BEGIN_RESP.unpack(
        host.call(Msg.STAGE_BEGIN, m.STAGE_BEGIN_REQ.pack(512)).payload
    )[0]
    host.call(Msg.STAGE_DATA, m.STAGE_DATA_HEAD.pack(sid, 0, 0) + v)
    crc = zlib.crc32(v)
    assert host.call(Msg.STAGE_VERIFY, m.STAGE_VERIFY_REQ.pack(sid, 0, crc)).status == Status.OK
    bad_tile = host.call(Msg.MVM, m.MVM_REQ.pack(9, 1, 0, 4, sid, 0, crc))
    assert bad_tile.status == Status.OUT_OF_RANGE
    assert error_parts(bad_tile.payload)[:2] == (b"tile", b"9")
    good = host.call(Msg.MVM, m.MVM_REQ.pack(1, 1, 0, 4, sid, 0, crc))
    assert good.status == Status.OK
    again = host.call(Msg.MVM, m.MVM_REQ.pack(1, 1, 0, 4, sid, 0, crc))
    assert again.status == Status.NO_STAGE  # consumed by the successful one


def _staged(host: RawHost, data: bytes) -> tuple[int, int]:
    """``data`` staged and verified; its stage id and CRC-32."""
    begin = host.call(Msg.STAGE_BEGIN, m.STAGE_BEGIN_REQ.pack(len(data)))
    sid = m.STAGE_BEGIN_RESP.unpack(begin.payload)[0]
    if data:
        host.call(Msg.STAGE_DATA, m.STAGE_DATA_HEAD.pack(sid, 0, 0) + data)
    crc = zlib.crc32(data)
    assert host.call(Msg.STAGE_VERIFY, m.STAGE_VERIFY_REQ.pack(sid, 0, crc)).status == Status.OK
    return sid, crc


def test_program_commit_checks_its_stage_then_tile_then_targets_then_region(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§6: PROGRAM_COMMIT's order is stage, tile, the targets' values, the region; a
    refused one keeps its stage and writes nothing."""
    _, host = board
    tiles = m.unpack_hello(host.hello().payload).tile_count

    def commit(tile: int, row_offset: int, sid: int, crc: int, rows: int = 4) -> Frame:
        return host.call(
            Msg.PROGRAM_COMMIT, m.PROGRAM_REQ.pack(tile, row_offset, 0, rows, 4, sid, crc)
        )

    assert commit(tiles, 30, 999, 0).status == Status.NO_STAGE
    nan = np.full((4, 4), 5.0, "<f4")
    nan[1, 2] = np.nan
    sid, crc = _staged(host, nan.tobytes())
    bad_tile = commit(tiles, 30, sid, crc)
    assert bad_tile.status == Status.OUT_OF_RANGE
    assert error_parts(bad_tile.payload)[:2] == (b"tile", str(tiles).encode())
    past_edge = commit(0, 30, sid, crc)  # rows 30..33 of 32, and a NaN target
    assert past_edge.status == Status.INVALID_ARGUMENT
    assert error_parts(past_edge.payload)[0] == b"conductances"
    sid, crc = _staged(host, np.full((4, 4), 5.0, "<f4").tobytes())
    shape = commit(0, 30, sid, crc)
    assert shape.status == Status.OUT_OF_RANGE
    assert error_parts(shape.payload)[:2] == (b"conductances.shape", b"[4,4]")
    sid, crc = _staged(host, b"")
    empty = commit(0, 0, sid, crc, rows=0)
    assert empty.status == Status.INVALID_ARGUMENT
    assert error_parts(empty.payload)[:2] == (b"conductances.shape", b"[0,4]")
    writes = m.STATS_RESP.unpack(host.call(Msg.GET_STATS).payload)[3]
    assert writes == 0


def test_boot_notice_has_its_own_message_id(board: tuple[PtyServer, RawHost]) -> None:
    """§3.3: msg BOOT (0x07), flags RESP|BOOT, req_id 0, the new epoch, a HELLO payload
    with nothing negotiated (max_payload 256)."""
    server, host = board
    host.hello(offer=1024)
    old_epoch = host.epoch
    server.reset_board()
    notice = host.receive()
    assert (notice.msg, notice.req_id, notice.status) == (Msg.BOOT, 0, Status.OK)
    assert notice.flags == Flag.RESP | Flag.BOOT and notice.epoch != old_epoch
    hello = m.unpack_hello(notice.payload)
    assert (hello.max_payload, hello.board_max_payload) == (256, 1024)
    assert hello.epoch == notice.epoch
    assert host.quiet(), f"more after the BOOT notice: {host.stray!r}"
    assert host.call(Msg.BOOT).status == Status.STALE_EPOCH  # a host never sends it
    host.epoch = notice.epoch
    assert host.call(Msg.BOOT).status == Status.UNKNOWN_MESSAGE


def _result(reply: Frame, batch: int, outputs: int) -> np.ndarray:
    """A pass's currents from its response (all inline here: small results)."""
    assert reply.status == Status.OK, m.decode_error(reply.payload)
    total, crc = m.RESULT_HEAD.unpack_from(reply.payload, 24)
    data = reply.payload[24 + m.RESULT_HEAD.size :]
    assert (total, zlib.crc32(data)) == (4 * batch * outputs, crc)
    return np.frombuffer(data, "<f4").reshape(batch, outputs)


def test_region_passes_take_and_give_the_region_only(board: tuple[PtyServer, RawHost]) -> None:
    """§6.1: HELLO says REGION_PASS; flags bit 0 puts an 8-byte region after the head; MVM
    takes f32[batch][region rows] (inline or staged) and answers f32[batch][region cols],
    TRANSPOSE_MVM the other way round: the whole-tile pass of the same voltages, cut."""
    _, host = board
    hello = m.unpack_hello(host.hello().payload)
    assert hello.features & m.Feature.REGION_PASS
    region = m.MVM_REGION.pack(4, 3, 5, 2)  # rows 4..8, columns 3..4
    v = (np.arange(10, dtype="<f4").reshape(2, 5) - 4) / 64  # dyadic: exact sums
    head = m.MVM_REQ.pack(1, 0, m.PASS_REGION_FLAG, 2, 0, 0, 0)
    got = _result(host.call(Msg.MVM, head + region + v.tobytes()), 2, 2)
    whole_v = np.zeros((2, 32), "<f4")
    whole_v[:, 4:9] = v
    plain = m.MVM_REQ.pack(1, 0, 0, 2, 0, 0, 0) + whole_v.tobytes()
    whole = _result(host.call(Msg.MVM, plain), 2, 16)
    assert np.array_equal(got, whole[:, 3:5])

    vt = v[:, :2].copy()  # staged: f32[batch][region cols]
    sid = m.STAGE_BEGIN_RESP.unpack(
        host.call(Msg.STAGE_BEGIN, m.STAGE_BEGIN_REQ.pack(vt.nbytes)).payload
    )[0]
    host.call(Msg.STAGE_DATA, m.STAGE_DATA_HEAD.pack(sid, 0, 0) + vt.tobytes())
    crc = zlib.crc32(vt.tobytes())
    assert host.call(Msg.STAGE_VERIFY, m.STAGE_VERIFY_REQ.pack(sid, 0, crc)).status == Status.OK
    staged = m.MVM_REQ.pack(1, 1, m.PASS_REGION_FLAG, 2, sid, 0, crc) + region
    got_t = _result(host.call(Msg.TRANSPOSE_MVM, staged), 2, 5)
    whole_vt = np.zeros((2, 16), "<f4")
    whole_vt[:, 3:5] = vt
    plain_t = m.MVM_REQ.pack(1, 0, 0, 2, 0, 0, 0) + whole_vt.tobytes()
    assert np.array_equal(got_t, _result(host.call(Msg.TRANSPOSE_MVM, plain_t), 2, 32)[:, 4:9])


def test_bad_region_passes_are_refused(board: tuple[PtyServer, RawHost]) -> None:
    """§6.1: a region past the tile edge is OUT_OF_RANGE naming the region field; an
    unknown flag bit, or inputs sized for the whole tile, BAD_PAYLOAD; nothing runs."""
    _, host = board
    host.hello()
    passes = m.STATS_RESP.unpack(host.call(Msg.GET_STATS).payload)[2]
    head = m.MVM_REQ.pack(0, 0, m.PASS_REGION_FLAG, 1, 0, 0, 0)
    past = host.call(Msg.MVM, head + m.MVM_REGION.pack(30, 0, 4, 2) + bytes(16))
    assert past.status == Status.OUT_OF_RANGE
    field, value, text = error_parts(past.payload)
    assert (field, value) == (b"region.rows", b"4") and b"1 .. 2" in text
    unknown = m.MVM_REQ.pack(0, 0, 0x02, 1, 0, 0, 0) + bytes(4 * 32)
    assert host.call(Msg.MVM, unknown).status == Status.BAD_PAYLOAD
    wide = head + m.MVM_REGION.pack(0, 0, 4, 2) + bytes(4 * 32)  # 32 inputs for 4 rows
    assert host.call(Msg.MVM, wide).status == Status.BAD_PAYLOAD
    assert m.STATS_RESP.unpack(host.call(Msg.GET_STATS).payload)[2] == passes


def test_a_pass_head_is_checked_in_one_order_with_a_region_or_without(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§6: source, then tile, then the inputs' size. A bad tile with short inputs was
    BAD_PAYLOAD without a region and OUT_OF_RANGE `tile` with one; a `source` of 2 was
    looked for as a stage (NO_STAGE) instead of refused as a head the board cannot read."""
    _, host = board
    tiles = m.unpack_hello(host.hello().payload).tile_count
    for flags, region in ((0, b""), (m.PASS_REGION_FLAG, m.MVM_REGION.pack(0, 0, 4, 2))):
        short = m.MVM_REQ.pack(tiles, 0, flags, 1, 0, 0, 0) + region + bytes(4)
        refused = host.call(Msg.MVM, short)
        assert refused.status == Status.OUT_OF_RANGE, (flags, refused.status)
        assert error_parts(refused.payload)[:2] == (b"tile", str(tiles).encode())
        staged_2 = m.MVM_REQ.pack(0, 2, flags, 1, 0, 0, 0) + region
        bad_source = host.call(Msg.MVM, staged_2)
        assert bad_source.status == Status.BAD_PAYLOAD and b"source 2" in bad_source.payload
    point = m.POINT.pack(1, 0.5, 1)
    perturbed = m.PERTURBED_MVM_REQ.pack(0, 0, 0, 4, 2, 3, 0, 1, 1, 0, 0, 0) + point
    assert host.call(Msg.PERTURBED_MVM, perturbed + bytes(16)).status == Status.BAD_PAYLOAD


def test_after_the_inputs_size_come_the_points_then_the_voltages(
    board: tuple[PtyServer, RawHost],
) -> None:
    """§6 and §6.2: the inputs' size before `points`, each point's sign before its
    amplitude, point by point, then the voltages (a batch of 0 is `voltages.shape`)."""
    _, host = board
    host.hello()
    passes = m.STATS_RESP.unpack(host.call(Msg.GET_STATS).payload)[2]

    def perturbed(points: list[bytes], voltages: list[float], count: int | None = None) -> Frame:
        n = len(points) if count is None else count
        head = m.PERTURBED_MVM_REQ.pack(0, 0, 0, 2, 2, 0, 0, n, len(voltages) // 2, 0, 0, 0)
        body = b"".join(points) + np.asarray(voltages, "<f4").tobytes()
        return host.call(Msg.PERTURBED_MVM, head + body)

    def refusal(reply: Frame) -> tuple[int, bytes, bytes]:
        return (reply.status, *error_parts(reply.payload)[:2])

    good, v = m.POINT.pack(1, 0.5, 1), [0.1, 0.1]
    assert perturbed([], v[:1], count=0).status == Status.BAD_PAYLOAD  # size, not points
    assert refusal(perturbed([], v, count=0)) == (Status.INVALID_ARGUMENT, b"points", b"0")
    bad_amplitude, bad_sign = m.POINT.pack(1, -1.0, 1), m.POINT.pack(1, float("nan"), 3)
    assert refusal(perturbed([bad_amplitude, bad_sign], [9.0, 0.0]))[:2] == (
        Status.OUT_OF_RANGE,
        b"points[0].amplitude_us",
    )
    assert refusal(perturbed([good, bad_sign], [9.0, 0.0])) == (
        Status.INVALID_ARGUMENT,
        b"points[1].sign",
        b"3",
    )
    assert refusal(perturbed([good], [9.0, 0.0]))[:2] == (Status.OUT_OF_RANGE, b"voltages")
    assert refusal(perturbed([good], [])) == (Status.INVALID_ARGUMENT, b"voltages.shape", b"[0,2]")
    empty_batch = host.call(Msg.MVM, m.MVM_REQ.pack(0, 0, 0, 0, 0, 0, 0))
    assert refusal(empty_batch) == (Status.INVALID_ARGUMENT, b"voltages.shape", b"[0,32]")
    assert m.STATS_RESP.unpack(host.call(Msg.GET_STATS).payload)[2] == passes


def test_a_board_without_a_profile_does_not_answer_get_profile() -> None:
    """§6: GET_PROFILE is the PROFILE feature's. A virtual board answering as a physical
    one (report_profile=False) left the feature out of HELLO and still gave its whole
    profile to whoever asked."""
    server = PtyServer(VirtualBoard(PROFILE, 1, report_profile=False))
    with server:
        host = RawHost(server.path)
        try:
            hello = m.unpack_hello(host.hello().payload)
            assert not hello.features & m.Feature.PROFILE
            assert host.call(Msg.GET_PROFILE).status == Status.UNKNOWN_MESSAGE
        finally:
            os.close(host.fd)
