"""The host end of a serial link: one request, one response, whatever the wire does.

Stop-and-wait (docs/wire-protocol.md §4): each request gets a fresh 16-bit id
and is retransmitted with the *same* id when its response is lost, damaged or
NAKed, so the board answers a retry from its response cache instead of running
the command twice. Responses to anything but the outstanding request are
duplicates and are dropped. Every response carries the board's boot epoch; a
new epoch means the board restarted and lost its state, which is reported as
:class:`BoardReset` rather than papered over (the link says HELLO at once, so the
new boot counter, and with it the board's instance, is known when the reset is
reported). One request outstanding at a time is also what lets the smallest
board work: it needs to keep only ``cache_depth`` ≥ 1 responses for replay
(HELLO says how many it keeps).

On a line that damages frames the link lowers the payload it negotiates (HELLO again,
between exchanges) to the size that carries the most per byte sent, and raises it again
once frames come through clean (:mod:`~sidra.drivers.serial.frame_size`, §4.6).

Every HELLO answer passes the owner's identity check (``check_identity``) before
the link uses it: a device that answers as another board is closed again before
anything else is written to it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, TypeVar

from sidra.drivers.errors import (
    BoardReset,
    BoardUnavailable,
    DeadlineExceeded,
    InvalidArgument,
    SidraError,
)
from sidra.drivers.serial.frame_size import FrameSizer
from sidra.drivers.serial.port_hints import open_hint
from sidra.drivers.serial.retransmit import RetransmitTimer
from sidra.drivers.types import LinkStats
from sidra.drivers.wire.device_times import REFERENCE_TIMES, DeviceTimes
from sidra.drivers.wire.framing import (
    MIN_PAYLOAD,
    PROTOCOL_VERSION,
    Flag,
    Frame,
    FrameError,
    FrameSplitter,
    decode_frame,
    encode_frame,
    max_wire_bytes,
)
from sidra.drivers.wire.messages import (
    HELLO_REQ,
    Hello,
    Msg,
    Status,
    decode_error,
    unpack_hello,
)

__all__ = ["IdentityCheck", "LineDamage", "Link", "LinkSettings", "Port", "check_hello"]

T = TypeVar("T")

_TIMEOUT, _BAD = "timeout", "bad"
# State, or the sizer's and the timer's own figures: not counters.
_NOT_COUNTED = {"up", "payload_limit", "payload_changes", "timeout_base_s"}
_COUNTERS = [f.name for f in dataclasses.fields(LinkStats) if f.name not in _NOT_COUNTED]


class LineDamage(DeadlineExceeded):
    """An exchange whose every attempt the line damaged (the board NAKed the request, or
    its answer arrived corrupt): the board is there, the frames did not get through. A
    request that writes nothing twice (a stage chunk, a result read, a read) may go again,
    in smaller frames once the link has lowered them (§4.6)."""


class Port(Protocol):
    """What the link needs of a pyserial port (``serial.Serial`` or a URL handler)."""

    baudrate: int

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def fileno(self) -> int: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


IdentityCheck = Callable[[Hello], None]
"""Called with every HELLO answer before the link uses it; raises (a SidraError) to
refuse the device, which the link then closes without writing anything more to it."""


@dataclasses.dataclass(frozen=True, slots=True)
class LinkSettings:
    """Timing and retry policy of a link (URL options of ``serial://``)."""

    baud: int = 921_600
    """Line rate used to scale timeouts (10 bits per byte on the wire), Bd. A pty or TCP
    link has no line rate: the timeouts then assume this nominal one."""
    timeout_s: float = 0.25
    """Most the fixed part of an attempt's timeout (host and board latency) may be, s: the
    link learns it from the board's answers, starting here (§4.5, sidra.drivers.serial.
    retransmit)."""
    retries: int = 3
    """Retransmissions per round; after a round fails the link resyncs and tries once more."""
    max_payload: int = 0xFFFF
    """Largest payload the host offers in HELLO, bytes; the board may lower it, and so
    may the link itself on a line that damages long frames (§4.6)."""
    want_baud: int = 0
    """Line rate to switch to after HELLO (0 keeps ``baud``)."""

    def attempt_timeout(
        self, out_bytes: int, in_bytes: int, device_s: float = 0.0, base_s: float | None = None
    ) -> float:
        """base (``timeout_s`` unless given) + twice the wire time both ways + the board's
        own time for the command."""
        base = self.timeout_s if base_s is None else base_s
        return base + 2 * self.wire_s(out_bytes + in_bytes) + device_s

    def wire_s(self, wire_bytes: int) -> float:
        """Time ``wire_bytes`` take on the line at ``baud`` (10 bits a byte), s."""
        return 10 * wire_bytes / self.baud


class Link:
    """Request/response engine over one port; thread-safe (one exchange at a time)."""

    def __init__(
        self,
        opener: Callable[[], Port],
        name: str,
        settings: LinkSettings = LinkSettings(),
        check_identity: IdentityCheck | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._opener = opener
        self._check_identity = check_identity
        self._port: Port | None = None
        self._splitter = FrameSplitter()
        self._inbox: deque[bytes] = deque()
        self._lock = threading.RLock()
        self._listeners: list[Callable[[bool], None]] = []
        self._counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._sizer = FrameSizer(settings.max_payload)
        self._timer = RetransmitTimer(settings.timeout_s)
        self.timeout_base_s = settings.timeout_s
        """T_base of the latest attempt, s (§4.5): what it waited besides wire and board time."""
        # The longest request payload (bytes) that has crossed intact (its answer came
        # back) since the link was made: a write stakes itself only on such frames (§4.6).
        self.carried_out = 0
        self._up = True
        self._req_id = int.from_bytes(os.urandom(2), "little")  # no reuse across host restarts
        self.epoch = 0
        self.hello: Hello | None = None
        self.device_times: DeviceTimes = REFERENCE_TIMES
        """The times the board may take over its commands: the reference figures, or the
        longer ones its last HELLO declared (§3.1; a firmware update may change them).
        Worked out once a HELLO, not at every exchange."""
        self._known_boot: int | None = None  # None: no board yet, or its reset was reported
        self._needs_hello = True
        self._reset_notice: str | None = None
        self.down_reason: str | None = None
        """Why the link went down (the error its calls got), None while it is up."""
        self.closed = False
        self.last_exchange = 0.0

    # -- public ----------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up

    @property
    def boot_counter(self) -> int:
        """The boot counter of the board's last accepted HELLO (0 before the first)."""
        hello = self.hello
        return hello.boot_counter if hello is not None else 0

    @property
    def payload_limit(self) -> int:
        """The largest payload to put in a request now, bytes: the negotiated one, or less
        while a HELLO that lowers it for a noisy line is due (before the next exchange)."""
        return min(self._sizer.limit, self._negotiated())

    def stats(self) -> LinkStats:
        return LinkStats(
            up=self._up,
            payload_limit=self.payload_limit,
            payload_changes=self._sizer.changes,
            timeout_base_s=self.timeout_base_s,
            **self._counts,
        )

    def add_listener(self, listener: Callable[[bool], None]) -> None:
        """Calls ``listener(up)`` whenever the link goes down or comes back."""
        self._listeners.append(listener)

    def connect(self) -> Hello:
        """Opens the port if needed and says HELLO; raises BoardUnavailable if nobody answers."""
        with self._lock:
            self._ensure_connected()
            assert self.hello is not None
            return self.hello

    def exchange(
        self,
        msg: Msg,
        payload: bytes = b"",
        *,
        expect: int = 0,
        device_s: float = 0.0,
        resendable: bool = False,
    ) -> Frame:
        """Sends one request and returns its response (any status).

        ``expect`` is the size of the expected response payload and ``device_s``
        the board's time for the command; both stretch the timeout. ``resendable``:
        the caller sends the request again as a new one after a LineDamage (it writes
        nothing twice), so once the line's damage has lowered the frames below this
        request or its answer, the rest of its attempts are not spent (§4.6).
        """
        with self._lock:
            self._ensure_connected()
            if self._sizer.limit != self._negotiated():
                # The frame size moved for the line's damage (§4.6). The board is there,
                # but may still be replaying long answers the line damaged: a second
                # round (a resync first) gives its backlog time to drain.
                self._say_hello(rounds=2)
            if self._reset_notice is not None:
                notice, self._reset_notice = self._reset_notice, None
                raise BoardReset(notice)
            return self._exchange(msg, payload, expect, device_s, rounds=2, resendable=resendable)

    def take_reset_notice(self) -> str | None:
        """The reset found and not reported yet, taken (the next exchange runs)."""
        with self._lock:
            notice, self._reset_notice = self._reset_notice, None
            return notice

    def keeping_reset_notice(self, call: Callable[[], T]) -> T:
        """Runs ``call``, exchanges whose answers depend on no cell (GET_STATS, the
        board's totals), without spending a reset notice on them: a reset found before
        or on the way is kept for the next exchange that depends on the array. A viewer's
        ``sidra status`` must not take the notice from whoever's tiles were lost."""
        with self._lock:
            kept, self._reset_notice = self._reset_notice, None
            try:
                try:
                    return call()
                except BoardReset as exc:  # found on the way: the link knows the new boot
                    kept = kept or str(exc)
                    self._reset_notice = None
                    return call()
            finally:
                if kept is not None and self._reset_notice is None:
                    self._reset_notice = kept

    def probe(self, idle_s: float = 0.5) -> bool:
        """Health check for a watcher thread: reconnects a lost link, pings an idle one.

        Never waits for a busy link (a call in progress proves it either way).
        """
        if self.closed or not self._lock.acquire(blocking=False):
            return self.up and not self.closed
        try:
            if self._port is None or self._needs_hello or not self.up:
                self._ensure_connected()
            elif time.monotonic() - self.last_exchange >= idle_s:
                self._exchange(Msg.PING, b"", 0, 0.0, rounds=1)
        except BoardReset as exc:
            self._reset_notice = str(exc)  # the next call reports it
        except SidraError:
            pass
        finally:
            self._lock.release()
        return self.up

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._close_port()

    # -- connection ------------------------------------------------------------------------

    def _ensure_connected(self) -> None:
        if self.closed:
            raise BoardUnavailable(f"the link to {self.name} is closed")
        if self._port is None:
            try:
                self._port = self._opener()
            except SidraError as exc:  # the opener's own verdict (no such board, a refused device)
                self._set_up(False, str(exc))
                raise
            except (OSError, ValueError) as exc:  # SerialException is an OSError
                hint = open_hint(self.name, exc)
                self._set_up(False, f"cannot open {self.name}: {exc}{hint}")
                raise BoardUnavailable(f"cannot open {self.name}: {exc}{hint}") from exc
            self._splitter.clear()
            self._inbox.clear()
            if self.hello is not None:
                self._count(reconnects=1)
            self._needs_hello = True
        if self._needs_hello:
            self._say_hello()

    def _negotiated(self) -> int:
        """The max_payload the last HELLO settled on (the sizer's limit once said)."""
        hello = self.hello
        return hello.max_payload if hello is not None else MIN_PAYLOAD

    def _say_hello(self, rounds: int = 1) -> None:
        offered = self._sizer.limit
        payload = HELLO_REQ.pack(PROTOCOL_VERSION, 0, offered, 0)
        reply = self._exchange(Msg.HELLO, payload, 256, 0.0, rounds=rounds, check_epoch=False)
        if reply.status != Status.OK:
            raise BoardUnavailable(
                f"{self.name} refused HELLO (status {_status_name(reply.status)}): "
                f"{decode_error(reply.payload)[2]}"
            )
        try:
            hello = unpack_hello(reply.payload)
        except (struct.error, UnicodeDecodeError) as exc:
            raise BoardUnavailable(f"{self.name} sent a malformed HELLO response: {exc}") from exc
        check_hello(hello, offered, self.name)
        if self._check_identity is not None:
            try:
                self._check_identity(hello)
            except SidraError as exc:
                self._close_port()  # refused: not one more byte to that device
                self._set_up(False, str(exc))
                raise
        if self._known_boot is not None and hello.boot_counter != self._known_boot:
            self._count(resets=1)
            self._reset_notice = (
                f"board at {self.name} restarted while the link was down (boot counter "
                f"{self._known_boot} -> {hello.boot_counter}); its state is lost"
            )
        self.hello, self.epoch, self._needs_hello = hello, hello.epoch, False
        self.device_times = REFERENCE_TIMES.declared(hello.command_times)
        self._known_boot = hello.boot_counter
        self._sizer.fit(hello.board_max_payload, hello.max_payload)
        self._splitter = FrameSplitter(hello.max_payload)
        if self.settings.want_baud and self.settings.want_baud != self.settings.baud:
            self._switch_baud(self.settings.want_baud)
        self._set_up(True)

    def _switch_baud(self, baud: int) -> None:
        """esptool's CHANGE_BAUDRATE: ask at the old rate, both switch, then PING."""
        assert self.hello is not None and self._port is not None
        if baud not in self.hello.bauds:
            raise BoardUnavailable(
                f"{self.name} cannot run at {baud} Bd (it offers {list(self.hello.bauds)})"
            )
        payload = HELLO_REQ.pack(PROTOCOL_VERSION, 0, self._negotiated(), baud)
        reply = self._exchange(Msg.HELLO, payload, 256, 0.0, rounds=1)
        if reply.status != Status.OK:  # refused: the board kept its rate, so must we
            raise BoardUnavailable(
                f"{self.name} refused {baud} Bd (status {_status_name(reply.status)}): "
                f"{decode_error(reply.payload)[2]}"
            )
        self._port.baudrate = baud
        self.settings = dataclasses.replace(self.settings, baud=baud)
        time.sleep(0.05)
        self._flush_input()
        self._exchange(Msg.PING, b"", 0, 0.0, rounds=1)

    # -- one exchange ----------------------------------------------------------------------

    def _exchange(
        self,
        msg: Msg,
        payload: bytes,
        expect: int,
        device_s: float,
        *,
        rounds: int,
        check_epoch: bool = True,
        resendable: bool = False,
    ) -> Frame:
        limit = MIN_PAYLOAD if self._needs_hello or self.hello is None else self.hello.max_payload
        if len(payload) > limit:  # the board would drop it as damaged: a bug of the caller
            raise InvalidArgument(
                f"{msg.name} payload", f"{len(payload)} bytes",
                f"at most {limit} bytes (the max_payload negotiated with {self.name})",
            )  # fmt: skip
        self._req_id = (self._req_id + 1) & 0xFFFF
        request = Frame(msg, self._req_id, payload, epoch=self.epoch)
        first = encode_frame(request)
        # Retransmissions lead with a delimiter: it flushes whatever partial frame
        # the error left in the board's receiver.
        again = b"\x00" + encode_frame(dataclasses.replace(request, flags=Flag.RETRY))
        wire_bytes = len(first) + max_wire_bytes(expect)
        device_s += self.device_times.command_s  # the firmware's own handling, declared
        attempts = damaged = 0
        timeout = 0.0  # each attempt's own, set as it is sent
        for round_ in range(rounds):
            if round_:
                self._resync()
            for _ in range(1 + self.settings.retries):
                sent = time.monotonic()
                self._send(first if attempts == 0 else again)
                if attempts:
                    self._count(retries=1)
                attempts += 1
                self.timeout_base_s = self._timer.base_s(msg)
                timeout = self.settings.attempt_timeout(
                    len(first), max_wire_bytes(expect), device_s, self.timeout_base_s
                )
                reply = self._await(request, timeout)
                if reply == _TIMEOUT:
                    self._timer.timed_out(msg)
                else:  # a lost frame says nothing of the line's bit errors
                    self._sizer.record(wire_bytes, damaged=reply == _BAD)
                    damaged += reply == _BAD
                if resendable and reply == _BAD and self._sizer.limit < max(len(payload), expect):
                    return self._give_up(msg, attempts, damaged, timeout)  # go again, shorter
                if isinstance(reply, Frame):
                    if attempts == 1:  # Karn: a resent request's answer times no attempt
                        took = time.monotonic() - sent
                        wire = self.settings.wire_s(len(first) + max_wire_bytes(len(reply.payload)))
                        self._timer.answered(msg, took - wire - device_s)
                    self.carried_out = max(self.carried_out, len(payload))
                    self._count(exchanges=1)
                    self.last_exchange = time.monotonic()
                    if msg is not Msg.HELLO:  # up once the answer passes its checks
                        self._set_up(True)
                    if check_epoch:
                        self._check_epoch(reply)
                    return reply
        return self._give_up(msg, attempts, damaged, timeout)

    def _give_up(self, msg: Msg, attempts: int, damaged: int, timeout: float) -> Frame:
        what = f"{msg.name} to {self.name}: no valid response after {attempts} attempts"
        if damaged and msg not in (Msg.HELLO, Msg.PING):
            # NAKs or damaged answers: a board that spoke HELLO is there and the line
            # corrupts long frames (a PING now may wait behind the board's backlog of them)
            raise LineDamage(
                f"{what}, {damaged} of them damaged on the line; frames are now at most "
                f"{self._sizer.limit} bytes of payload (§4.6)"
            )
        if self._ping_once():
            raise DeadlineExceeded(
                f"{what} (the last waited {timeout:.3f} s); the board answers PING"
            )
        # Answers that came but damaged say something is there: on a UART, a line rate
        # other than the board's looks like this (a silent line is a board not there).
        heard = (
            f", {damaged} of them answered but damaged on the line (another line rate than "
            "the board's, ?baud=...; or a noisy line)"
            if damaged
            else ""
        )
        if not damaged and self.name.startswith("socket://"):
            # The connection is taken but waits, unanswered, behind the host being served.
            heard = " (a board on TCP answers one host at a time: is another host, a sidra "
            heard += "serve, connected to it?)"
        lost = f"{what}{heard} and a resync; the link is down"
        self._set_up(False, lost)
        raise BoardUnavailable(lost)

    def _ping_once(self) -> bool:
        self._req_id = (self._req_id + 1) & 0xFFFF
        ping = Frame(Msg.PING, self._req_id, epoch=self.epoch)
        self._send(b"\x00" + encode_frame(ping))
        return isinstance(self._await(ping, self.settings.attempt_timeout(32, 32)), Frame)

    def _resync(self) -> None:
        """Flush both directions, then make sure the board answers at all."""
        self._count(resyncs=1)
        self._send(b"\x00\x00\x00")
        self._flush_input()

    def _flush_input(self) -> None:
        port = self._require_port()
        try:
            port.reset_input_buffer()
        except OSError as exc:
            raise self._lost(exc) from exc
        self._splitter.clear()
        self._inbox.clear()

    def _check_epoch(self, reply: Frame) -> None:
        if reply.epoch != self.epoch or reply.status == Status.STALE_EPOCH:
            old_epoch, old_boot = self.epoch, self.boot_counter
            self._needs_hello = True
            self._known_boot = None  # reported here; the next HELLO must not report it again
            self._count(resets=1)
            self._relearn_boot()
            boot = (
                f"boot counter {old_boot} -> {self.boot_counter}"
                if not self._needs_hello
                else f"boot epoch {old_epoch} -> {reply.epoch}"
            )
            raise BoardReset(
                f"board at {self.name} restarted ({boot}): "
                "its conductances and any transfer in progress are lost"
            )

    def _relearn_boot(self) -> None:
        """HELLO right after a detected reset: the new boot counter (the board's new
        instance) is then known when the reset is reported, so whoever reads it learns of
        one reset, not of a second one at the next call. A board that does not answer now
        is asked again before the next request."""
        with contextlib.suppress(SidraError):
            self._say_hello()

    def _await(self, request: Frame, timeout: float) -> Frame | str:
        """The response to ``request``, or _BAD (retransmit now) or _TIMEOUT."""
        deadline = time.monotonic() + timeout
        while True:
            damaged = False
            while self._inbox:
                outcome = self._classify(self._inbox.popleft(), request)
                if isinstance(outcome, Frame):
                    return outcome
                damaged = damaged or outcome == _BAD
            if damaged:
                return _BAD
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._count(timeouts=1)
                return _TIMEOUT
            self._inbox.extend(self._splitter.feed(self._read(remaining)))

    def _classify(self, raw: bytes, request: Frame) -> Frame | str | None:
        try:
            frame = decode_frame(raw)
        except FrameError as exc:
            if exc.kind == "crc":
                self._count(crc_errors=1)
            else:
                self._count(framing_errors=1)
            return _BAD
        self._count(frames_received=1)
        if frame.version != PROTOCOL_VERSION or not frame.is_response:
            self._count(framing_errors=1)
            return None
        if frame.flags & Flag.NAK:
            self._count(naks=1)
            return _BAD
        if frame.msg == Msg.BOOT or frame.flags & Flag.BOOT:  # never an answer to a request
            # While a HELLO is due (a reset already reported, a link being re-made) the
            # HELLO's boot counter tells; the notice adds nothing.
            if self.hello is not None and not self._needs_hello and frame.epoch != self.epoch:
                self._check_epoch(frame)  # raises BoardReset
            return None
        if frame.req_id != request.req_id or frame.msg != request.msg:
            self._count(duplicates=1)
            return None
        return frame

    # -- port I/O --------------------------------------------------------------------------

    def _require_port(self) -> Port:
        if self._port is None:
            raise BoardUnavailable(f"the link to {self.name} is not open")
        return self._port

    def _send(self, data: bytes) -> None:
        port = self._require_port()
        try:
            port.write(data)
        except OSError as exc:
            raise self._lost(exc) from exc
        self._count(frames_sent=1, bytes_sent=len(data))

    def _read(self, timeout: float) -> bytes:
        port = self._require_port()
        try:
            ready, _, _ = select.select([port.fileno()], [], [], timeout)
            data = port.read(1 << 16) if ready else b""
        except (OSError, ValueError) as exc:
            raise self._lost(exc) from exc
        self._count(bytes_received=len(data))
        return data

    def _lost(self, exc: Exception) -> BoardUnavailable:
        """The port failed (unplugged, closed by the far end): drop it, report the link down."""
        self._close_port()
        lost = f"serial link to {self.name} lost: {exc}"
        self._set_up(False, lost)
        return BoardUnavailable(lost)

    def _close_port(self) -> None:
        port, self._port = self._port, None
        self._needs_hello = True
        if port is not None:
            # pyserial's socket:// close() skips socket.close() when shutdown() fails
            # on a connection the peer already dropped: close the socket ourselves.
            sock = getattr(port, "_socket", None)
            with contextlib.suppress(OSError):  # already gone
                port.close()
            if sock is not None:
                sock.close()

    # -- bookkeeping -----------------------------------------------------------------------

    def _count(self, **deltas: int) -> None:
        for key, delta in deltas.items():
            self._counts[key] += delta

    def _set_up(self, up: bool, reason: str | None = None) -> None:
        if not up:
            self._needs_hello = True  # whoever talks next must re-establish the link
        if up == self._up:
            return
        self._up = up
        self.down_reason = None if up else reason
        for listener in list(self._listeners):
            listener(up)


def check_hello(hello: Hello, offered: int, name: str) -> None:
    """Refuses (BoardUnavailable) a HELLO answer this host cannot work with: a payload
    limit outside what both ends can handle, or no response cache to replay from."""
    allowed = min(offered, hello.board_max_payload)
    problems = []
    if hello.proto_version != PROTOCOL_VERSION:
        problems.append(f"proto_version {hello.proto_version}, expected {PROTOCOL_VERSION}")
    if not MIN_PAYLOAD <= hello.max_payload <= allowed:
        problems.append(
            f"max_payload {hello.max_payload} bytes, expected {MIN_PAYLOAD} .. {allowed} "
            f"(offered {offered}, board_max_payload {hello.board_max_payload})"
        )
    if hello.cache_depth < 1:
        problems.append("cache_depth 0, expected >= 1 (retransmissions replay from it)")
    if problems:
        raise BoardUnavailable(f"{name} answered HELLO with " + "; ".join(problems))


def _status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:04x}"
