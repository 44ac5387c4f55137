"""The virtual board: the emulator behind the serial wire protocol.

:class:`VirtualBoard` is transport-free firmware: bytes in, bytes out. It
decodes frames, answers retried requests from a response cache instead of
running them again, refuses requests from before its last boot (stale epoch)
and requests older than the newest it ran (stale request id), and hands the
rest to :class:`~sidra.emulator.firmware.commands.Commands`. The pty and TCP
servers (``sidra.emulator.firmware.serve``) move its bytes.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections import OrderedDict

from sidra.drivers.errors import SidraError
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.device_times import NONE_DECLARED, CommandTimes
from sidra.drivers.wire.framing import (
    MAX_PAYLOAD_LIMIT,
    MIN_PAYLOAD,
    PROTOCOL_VERSION,
    Flag,
    Frame,
    FrameError,
    FrameSplitter,
    decode_frame,
    encode_frame,
)
from sidra.drivers.wire.messages import Feature, Hello, Msg, Status
from sidra.emulator.config import BoardProfile
from sidra.emulator.driver import EmulatorDriver
from sidra.emulator.firmware.commands import Commands, WireError

__all__ = ["DEFAULT_BAUDS", "DEVICE_MAX_PAYLOAD", "RESPONSE_CACHE", "VirtualBoard"]

DEVICE_MAX_PAYLOAD = MAX_PAYLOAD_LIMIT
"""Largest payload the virtual board accepts and sends (the 16-bit length limit)."""
RESPONSE_CACHE = 16
"""Responses kept for replay, by request id (advertised in HELLO as cache_depth)."""
DEFAULT_BAUDS = (115_200, 921_600, 3_000_000)


class VirtualBoard:
    """Firmware of an emulated SIDRA board; thread-safe (one frame at a time)."""

    def __init__(
        self,
        profile: BoardProfile,
        seed: int = 0,
        *,
        boot_counter: int | None = None,
        max_payload: int = DEVICE_MAX_PAYLOAD,
        stage_capacity: int | None = None,
        cache_depth: int = RESPONSE_CACHE,
        bauds: tuple[int, ...] = DEFAULT_BAUDS,
        report_profile: bool = True,
        slow: CommandTimes = NONE_DECLARED,
        declare_times: bool = True,
        serial_number: str | None = None,
    ) -> None:
        """``serial_number``: what HELLO says, the same across resets (None:
        ``EMU-<model>-<seed>``, :func:`~sidra.emulator.board.emulated_serial_number`).
        ``report_profile`` False: the board answers like a physical one, with no
        profile (no PROFILE feature, no GET_PROFILE) and no preset name; its virtual
        clock stays (EMULATED). ``slow``: the board takes that long over its commands, as
        a small microcontroller's firmware may (``command_us`` each, ``program_cell_ns``
        each cell a PROGRAM_COMMIT writes; the others are not slowed), and declares it in
        HELLO unless ``declare_times`` is False."""
        if cache_depth < 1:
            raise ValueError(f"cache_depth: got {cache_depth}, expected >= 1 (at-most-once)")
        self.profile, self.seed, self.serial_number = profile, seed, serial_number
        self.device_max_payload = max(MIN_PAYLOAD, min(max_payload, MAX_PAYLOAD_LIMIT))
        self.cache_depth = cache_depth
        geometry = profile.geometry
        # Room for a full tile image or a 64 MiB batch (the gRPC message limit).
        self.stage_capacity = stage_capacity or max(4 * geometry.rows * geometry.cols, 64 << 20)
        self.bauds = bauds
        self.baud = bauds[0]
        self.report_profile = report_profile
        self.slow, self.declare_times = slow, declare_times
        # A random first boot counter stands in for one kept in NVM: a restarted
        # emulator process must not look like the board the host knew.
        self.boot_counter = boot_counter or int.from_bytes(os.urandom(4), "little") or 1
        self.counters: dict[str, int] = dict.fromkeys(m.LINK_STATS_FIELDS, 0)
        self._lock = threading.Lock()
        self._splitter = FrameSplitter(self.device_max_payload)
        self._boot()

    def _boot(self) -> None:
        driver = EmulatorDriver(self.profile, self.seed, self.serial_number)
        self.commands = Commands(driver, self.stage_capacity)
        self.commands.max_payload = MIN_PAYLOAD  # what every host handles, until HELLO
        if not self.report_profile:  # as a physical board: no profile to give (§6)
            del self.commands.handlers[Msg.GET_PROFILE]
        self.cache: OrderedDict[int, tuple[int, bytes]] = OrderedDict()
        self.newest: int | None = None  # id of the newest request run since boot
        self.booted_at = time.monotonic()
        self._splitter.clear()

    @property
    def epoch(self) -> int:
        return m.epoch_of(self.boot_counter)

    @property
    def driver(self) -> EmulatorDriver:
        """The emulated board itself (tests inspect it)."""
        return self.commands.driver

    def reset(self) -> bytes:
        """Power-cycles the board: state, stage, cache lost, a new boot epoch. Returns
        the BOOT notice to send to the host: its own message id, so no host can take it
        for the answer to a request."""
        with self._lock:
            self.boot_counter = (self.boot_counter + 1) & 0xFFFFFFFF or 1
            self._boot()
            hello = m.pack_hello(self.hello())
            return self._send(Frame(Msg.BOOT, 0, hello, Flag.RESP | Flag.BOOT, 0, self.epoch))

    def receive(self, data: bytes) -> bytes:
        """Feeds bytes from the host; returns the bytes to send back."""
        with self._lock:
            self.counters["rx_bytes"] += len(data)
            oversize = self._splitter.oversize
            out = [self._handle(raw) for raw in self._splitter.feed(data)]
            for _ in range(self._splitter.oversize - oversize):  # too long: damaged too
                out.append(self._nak())
            return b"".join(r for r in out if r)

    # -- one frame -------------------------------------------------------------------------

    def _handle(self, raw: bytes) -> bytes | None:
        try:
            frame = decode_frame(raw)
        except FrameError:
            return self._nak()
        if len(frame.payload) > self.device_max_payload:  # would not fit a real receive buffer
            return self._nak()
        self.counters["rx_frames"] += 1
        if frame.is_response:
            return None  # our own output looped back; never answer it
        if frame.version != PROTOCOL_VERSION:
            text = f"protocol version {frame.version}; this board speaks {PROTOCOL_VERSION}"
            return self._reply(frame, Status.UNSUPPORTED_VERSION, self._text(text), False)
        digest = zlib.crc32(frame.payload, frame.msg)
        cached = self.cache.get(frame.req_id)
        if cached is not None and cached[0] == digest:
            self.counters["replays"] += 1
            return self._send_raw(cached[1])
        if frame.msg in (Msg.HELLO, Msg.PING):
            return self._control(frame, digest)
        if frame.epoch != self.epoch:
            self.counters["stale_epoch"] += 1
            text = f"request for boot epoch {frame.epoch}; this board booted as {self.epoch}"
            return self._reply(frame, Status.STALE_EPOCH, self._text(text), False)
        if self.newest is not None and not 0 < (frame.req_id - self.newest) & 0xFFFF < 0x8000:
            self.counters["stale_requests"] += 1
            text = f"request {frame.req_id} is not newer than {self.newest}"
            return self._reply(frame, Status.STALE_REQUEST, self._text(text), False)
        self.newest = frame.req_id
        status, payload = self._execute(frame)
        self._take_time(frame.msg, status, payload)
        return self._reply(frame, status, payload, digest=digest)

    def _take_time(self, msg: int, status: Status, payload: bytes) -> None:
        """Busy as long as ``slow`` says the command takes (the lock held: a slow
        firmware answers nothing meanwhile, PING included)."""
        seconds = 1e-6 * self.slow.command_us
        if status == Status.OK and msg == Msg.PROGRAM_COMMIT and self.slow.program_cell_ns:
            cells = m.PROGRAM_RESP.unpack_from(payload)[0]
            seconds += 1e-9 * self.slow.program_cell_ns * cells
        if seconds:
            time.sleep(seconds)

    def _control(self, frame: Frame, digest: int) -> bytes:
        """HELLO and PING work in any epoch: they are how a host (re)learns it. A refused
        HELLO changes nothing: not cached, request-id window and line rate kept."""
        if frame.msg == Msg.PING:
            return self._reply(frame, Status.OK, b"", cache=False)
        try:
            # unpack_from: a later host may append fields; this board reads its 12 bytes.
            _, _, host_max, want_baud = m.HELLO_REQ.unpack_from(frame.payload)
        except struct.error as exc:
            text = f"HELLO payload of {len(frame.payload)} bytes, need {m.HELLO_REQ.size}: {exc}"
            return self._reply(frame, Status.BAD_PAYLOAD, self._text(text), False)
        if want_baud and want_baud not in self.bauds:
            text = f"want_baud {want_baud} Bd not offered; bauds: {list(self.bauds)}"
            return self._reply(frame, Status.UNSUPPORTED, self._text(text), False)
        self.commands.max_payload = max(MIN_PAYLOAD, min(host_max, self.device_max_payload))
        self.newest = frame.req_id
        self.baud = want_baud or self.baud
        return self._reply(frame, Status.OK, m.pack_hello(self.hello()), digest=digest)

    def _nak(self) -> bytes:
        self.counters["bad_frames"] += 1
        self.counters["naks_sent"] += 1
        return self._send(Frame(0, 0, b"", Flag.RESP | Flag.NAK, Status.BAD_FRAME, self.epoch))

    def hello(self) -> Hello:
        info = self.driver.info
        return Hello(
            proto_version=PROTOCOL_VERSION,
            features=Feature.EMULATED
            | Feature.REGION_PASS
            | (Feature.PROFILE if self.report_profile else Feature(0)),
            boot_counter=self.boot_counter,
            max_payload=self.commands.max_payload,
            stage_capacity=self.stage_capacity,
            uptime_ms=int(1000 * (time.monotonic() - self.booted_at)) & 0xFFFFFFFF,
            tile_count=info.tile_count,
            rows=info.rows,
            cols=info.cols,
            dac_bits=info.dac_bits,
            adc_bits=info.adc_bits,
            g_min_us=info.g_min_us,
            g_max_us=info.g_max_us,
            read_voltage_max_v=info.read_voltage_max_v,
            bauds=self.bauds,
            model=info.model,
            serial_number=info.serial_number,
            firmware_version=info.firmware_version,
            preset=info.emulator_preset if self.report_profile else "",
            board_max_payload=self.device_max_payload,
            cache_depth=self.cache_depth,
            timing=info.timing,
            command_times=self.slow if self.declare_times else NONE_DECLARED,
        )

    def _execute(self, frame: Frame) -> tuple[Status, bytes]:
        self.counters["executed"] += 1
        if frame.msg == Msg.GET_LINK_STATS:
            values = (self.counters[k] for k in m.LINK_STATS_FIELDS)
            return Status.OK, m.LINK_STATS_RESP.pack(*values)
        try:
            handler = self.commands.handlers[Msg(frame.msg)]
        except (ValueError, KeyError):
            ids = {Msg.HELLO, Msg.PING, Msg.GET_LINK_STATS, *self.commands.handlers}
            text = "a request message id: " + ", ".join(f"0x{k:02x}" for k in sorted(ids))
            limit = self.commands.max_payload
            return Status.UNKNOWN_MESSAGE, m.encode_error(text, "msg", frame.msg, limit=limit)
        # A refused command leaves the board as it was: a consumed stage or a replaced
        # result buffer is put back (the emulator itself validates before it writes).
        stage, result = self.commands.stage, self.commands.result
        try:
            return handler(frame.req_id, frame.payload)
        except WireError as exc:  # protocol statuses: NO_STAGE, STAGE_OVERFLOW, ...
            status, payload = exc.status, self._text(str(exc))
        except struct.error as exc:
            status, payload = Status.BAD_PAYLOAD, self._text(f"malformed payload: {exc}")
        except SidraError as exc:
            status, payload = m.error_reply(exc, self.commands.max_payload)
        except ValueError as exc:  # a fault of this firmware, not of the request
            status, payload = Status.INTERNAL, self._text(f"{type(exc).__name__}: {exc}")
        self.commands.stage, self.commands.result = stage, result
        return status, payload

    def _text(self, text: str) -> bytes:
        """An error payload with only a message (no field, no value)."""
        return m.encode_error(text, limit=self.commands.max_payload)

    # -- output ----------------------------------------------------------------------------

    def _reply(
        self,
        request: Frame,
        status: Status,
        payload: bytes,
        cache: bool = True,
        digest: int | None = None,
    ) -> bytes:
        flags = Flag.RESP
        reply = Frame(request.msg, request.req_id, payload, flags, status, self.epoch)
        wire = encode_frame(reply)
        if cache and digest is not None:
            self.cache[request.req_id] = (digest, wire)
            self.cache.move_to_end(request.req_id)
            while len(self.cache) > self.cache_depth:
                self.cache.popitem(last=False)
        return self._send_raw(wire)

    def _send(self, frame: Frame) -> bytes:
        return self._send_raw(encode_frame(frame))

    def _send_raw(self, wire: bytes) -> bytes:
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(wire)
        return wire
