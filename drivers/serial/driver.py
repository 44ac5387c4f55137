"""``serial://`` and ``socket://`` transports: a SIDRA board over a serial link.

URLs (options in the query string)::

    serial:///dev/ttyUSB0?baud=921600
    serial:///dev/serial/by-id/usb-SIDRA_Y1_0007-if00
    serial://?serial_number=SIDRA-Y1-0007     (the port that answers as that board)
    serial:///dev/pts/7?timeout=0.05&retries=5
    socket://127.0.0.1:7000           (pyserial's TCP "serial port")

Options: ``baud`` (line rate, default 921600; scales timeouts), ``timeout``
(fixed part of each attempt's timeout, s, default 0.25), ``retries``
(retransmissions per round, default 3), ``max_payload`` (largest frame
payload offered in HELLO, default 65535), ``switch_baud`` (rate to switch to
after HELLO), ``exclusive`` (flock the port, serial:// only, default 1),
``serial_number`` (the board's; the driver talks only to the board that answers
HELLO with it, and serial:// searches the ports for it whenever the link is
made) and ``search_ptys`` (1: the search includes pseudo-terminals, where the
virtual board lives; default 0).

Without ``serial_number`` the first board that answers is the board: a device
answering later with another serial number is refused
(:class:`~sidra.drivers.serial.finder.IdentityMismatch`, the link stays down).
The driver's :attr:`SerialDriver.instance_id` is ``<serial>/boot-<boot counter>``
from HELLO; it changes when the driver detects that the board restarted.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import SplitResult

import serial

from sidra.drivers.base import BoardDriver, boot_instance_id
from sidra.drivers.batches import cut, cut_points, joined
from sidra.drivers.errors import BoardFault, BoardUnavailable, InvalidArgument
from sidra.drivers.requests import (
    GetBoardInfoRequest,
    MVMRequest,
    PerturbedMVMRequest,
    Request,
    TransposeMVMRequest,
)
from sidra.drivers.serial.finder import BoardFinder, SameBoard
from sidra.drivers.serial.link import LineDamage, Link, LinkSettings, Port
from sidra.drivers.types import BoardDescription, BoardInfo, LinkStats
from sidra.drivers.url import as_typed, query_options
from sidra.drivers.wire import messages as m
from sidra.drivers.wire.device_times import STAGE_S_PER_BYTE, DeviceTimes
from sidra.drivers.wire.framing import MAX_PAYLOAD_LIMIT, MIN_PAYLOAD, Frame, max_wire_bytes
from sidra.drivers.wire.messages import Feature, Hello, Msg, Status
from sidra.drivers.wire.operations import (
    StagedData,
    WireEntry,
    entry_of,
    padded_to_tile,
    perturbed_per_command,
    region_outputs,
    vectors_per_command,
)

__all__ = ["SerialDriver", "port_opener"]

_OPTIONS = {"baud", "timeout", "retries", "max_payload", "switch_baud", "serial_number"}
_SERIAL_ONLY = {"exclusive", "search_ptys"}
_SERIAL_NUMBER_BYTES = 255  # a str8 in HELLO
_TRIES_AT_ONE_SIZE = 3
"""Times a request that writes nothing twice goes again at one frame size after the line
damaged it, before the error is the caller's (§4.6)."""
T = TypeVar("T")


def port_opener(settings: LinkSettings, **extra: Any) -> Callable[[str], Port]:
    """Opens a serial port (a path or a pyserial URL) with ``settings``' line rate,
    non-blocking reads and a write timeout that covers the largest frame; ``extra``:
    pyserial's options (``exclusive=True`` flocks the port)."""
    write_timeout = settings.attempt_timeout(max_wire_bytes(settings.max_payload), 0) + 1.0

    def open_port(path: str) -> Port:
        port: Port = serial.serial_for_url(
            path, baudrate=settings.baud, timeout=0, write_timeout=write_timeout, **extra
        )
        return port

    return open_port


class SerialDriver(BoardDriver):
    """A board behind the SIDRA wire protocol (docs/wire-protocol.md).

    ``finder`` opens the port and checks each HELLO's serial number (``from_url``
    builds one); with a bare ``opener`` the first board met is the board.
    """

    def __init__(
        self,
        opener: Callable[[], Port],
        name: str,
        settings: LinkSettings,
        *,
        finder: BoardFinder | None = None,
    ) -> None:
        self._finder = finder
        if finder is not None:
            check = finder.check
        else:
            same = SameBoard(None)

            def check(hello: Hello) -> None:
                same.check(hello, name)

        self._link = Link(opener, name, settings, check_identity=check)
        hello = self._link.connect()
        self.features = hello.features
        profile: dict[str, object] = {}
        if hello.features & Feature.PROFILE:
            frame, payload = self._call(Msg.GET_PROFILE, b"", expect=4096)
            profile = json.loads(self._result(frame, payload, 0).decode("utf-8"))
        self._info = BoardInfo(
            model=hello.model,
            serial_number=hello.serial_number,
            firmware_version=hello.firmware_version,
            tile_count=hello.tile_count,
            rows=hello.rows,
            cols=hello.cols,
            g_min_us=hello.g_min_us,
            g_max_us=hello.g_max_us,
            dac_bits=hello.dac_bits,
            adc_bits=hello.adc_bits,
            read_voltage_max_v=hello.read_voltage_max_v,
            emulated=bool(hello.features & Feature.EMULATED),
            emulator_preset=hello.preset,
            profile=profile,
            timing=hello.timing,  # from HELLO: a real board reports it without a profile
            adc_full_scale_ua=_adc_full_scale_ua(profile, hello.adc_bits),
        )
        impossible = self._info.impossible()
        image = 4 * hello.rows * hello.cols  # a Program image is staged whole (§11.1)
        if hello.stage_capacity < image:
            impossible.append(
                f"stage_capacity: got {hello.stage_capacity} B, expected at least one tile's "
                f"Program image, 4 x {hello.rows} x {hello.cols} = {image} B"
            )
        if impossible:  # HELLO's own field names (wire-protocol.md §3.1)
            self._link.close()
            raise BoardUnavailable(
                f"{name} answered HELLO with capabilities no board can have: "
                f"{'; '.join(impossible)} (blank or wrong firmware?)"
            )

    @staticmethod
    def _parsed(
        url: SplitResult,
    ) -> tuple[LinkSettings, str | None, bool, str, dict[str, Any], str]:
        """The URL's link settings, serial number, search_ptys, device, port options and
        name; InvalidArgument for an option or a shape the driver does not take."""
        options = query_options(
            url, _OPTIONS | _SERIAL_ONLY if url.scheme == "serial" else _OPTIONS
        )
        settings = LinkSettings(
            baud=_int_option(options, "baud", 921_600, 50, 100_000_000),
            timeout_s=_float_option(options, "timeout", 0.25),
            retries=_int_option(options, "retries", 3, 0, 50),
            max_payload=_int_option(
                options, "max_payload", MAX_PAYLOAD_LIMIT, 256, MAX_PAYLOAD_LIMIT
            ),
            want_baud=_int_option(options, "switch_baud", 0, 0, 100_000_000),
        )
        serial_number = _serial_number_option(options)
        search_ptys = _int_option(options, "search_ptys", 0, 0, 1) == 1
        if search_ptys and serial_number is None:
            raise InvalidArgument("url search_ptys", "1", "search_ptys=1 only with serial_number=")
        if url.scheme == "serial":
            device = url.netloc + url.path
            # serial://dev/ttyUSB0 would open dev/ttyUSB0 in this folder (COM3: Windows').
            if url.netloc and not re.fullmatch(r"COM\d+", url.netloc, re.IGNORECASE):
                raise InvalidArgument(
                    "url", as_typed(url),
                    "serial:// and an absolute device path (three slashes), e.g. "
                    "serial:///dev/ttyUSB0",
                )  # fmt: skip
            if not device and serial_number is None:
                raise InvalidArgument(
                    "url", url.geturl(),
                    "serial://<device path> or serial://?serial_number=<the board's>, "
                    "e.g. serial:///dev/ttyUSB0",
                )  # fmt: skip
            exclusive = _int_option(options, "exclusive", 1, 0, 1) == 1
            extra: dict[str, Any] = {"exclusive": exclusive}
            name = f"serial://{device}" if device else f"serial://?serial_number={serial_number}"
        else:
            _check_socket_address(url)
            device, extra = f"{url.scheme}://{url.netloc}", {}
            name = device
        return settings, serial_number, search_ptys, device, extra, name

    @classmethod
    def check_url(cls, url: SplitResult) -> None:
        """Refuses (InvalidArgument) a URL :meth:`from_url` would refuse, opening nothing
        (``sidra serve --check`` asks while a running service holds the port)."""
        cls._parsed(url)

    @classmethod
    def from_url(cls, url: SplitResult) -> SerialDriver:
        settings, serial_number, search_ptys, device, extra, name = cls._parsed(url)
        open_port = port_opener(settings, **extra)
        finder = BoardFinder(
            device, serial_number, open_port, settings,
            search=url.scheme == "serial" and serial_number is not None,
            search_ptys=search_ptys,
        )  # fmt: skip
        return cls(finder.open, name, settings, finder=finder)

    # -- link ------------------------------------------------------------------------------

    @property
    def info(self) -> BoardInfo:
        return self._info

    @property
    def instance_id(self) -> str:
        """``<serial>/boot-<boot counter>`` of the board's last HELLO: a detected restart
        changes it at once (the link says HELLO as soon as it sees a new boot epoch)."""
        return boot_instance_id(self._info.serial_number, self._link.boot_counter)

    @property
    def device(self) -> str:
        """The device the board was found at last (a path, or a socket:// URL)."""
        return self._finder.device if self._finder is not None else self._link.name

    @property
    def name(self) -> str:
        """The board's URL as given (``serial:///dev/ttyUSB0``, ``socket://host:port``)."""
        return self._link.name

    @property
    def reconnects_at(self) -> str:
        """Where a lost link is made again: the device (``/dev/ttyUSB0``, a socket://
        URL); for a URL naming a serial number, the device the board was last found at,
        then the ports searched for it."""
        finder = self._finder
        if finder is None or not finder.search:
            return self.device
        ports = "serial ports and pseudo-terminals" if finder.search_ptys else "serial ports"
        return f"{finder.device}, then the {ports}, for serial number {self._info.serial_number}"

    @property
    def link_up(self) -> bool:
        return self._link.up

    @property
    def link_down_reason(self) -> str | None:
        """Why the link went down (the error its calls got); None while it is up."""
        return self._link.down_reason

    @property
    def device_times(self) -> DeviceTimes:
        """How long this host allows the board over each command: the reference times,
        raised to what the board declared in its last HELLO."""
        return self._link.device_times

    @property
    def closed(self) -> bool:
        return self._link.closed

    def add_link_listener(self, listener: Callable[[bool], None]) -> None:
        """``listener(up)`` runs when the link goes down or comes back."""
        self._link.add_listener(listener)

    def probe_link(self) -> bool:
        """Reconnects a lost link or pings an idle one; True when the board answers."""
        return self._link.probe()

    def link_stats(self) -> LinkStats:
        return self._link.stats()

    def device_link_stats(self) -> dict[str, int]:
        """The board's own link counters (GET_LINK_STATS)."""
        _, payload = self._call(Msg.GET_LINK_STATS, b"", expect=m.LINK_STATS_RESP.size)
        return dict(zip(m.LINK_STATS_FIELDS, m.LINK_STATS_RESP.unpack(payload), strict=True))

    @property
    def max_payload(self) -> int:
        """The largest payload a request may carry now, bytes (the link's limit, §4.6)."""
        return self._link.payload_limit

    def close(self) -> None:
        self._link.close()

    def _call(
        self,
        msg: Msg,
        payload: bytes,
        *,
        expect: int = 0,
        device_s: float = 0.0,
        resendable: bool = False,
    ) -> tuple[Frame, bytes]:
        """One exchange; ``resendable``: the caller sends it again as a new request when
        the line damaged it (it writes nothing twice), so the link may give it up as soon
        as it has lowered its frames below it (§4.6)."""
        frame = self._link.exchange(
            msg, payload, expect=expect, device_s=device_s, resendable=resendable
        )
        if frame.status != Status.OK:
            raise _error(msg, frame)
        return frame, frame.payload

    def take_reset_notice(self) -> str | None:
        return self._link.take_reset_notice()

    def _result(self, frame: Frame, payload: bytes, head: int) -> bytes:
        """The op's result array: the inline part, then RESULT_READs for the rest."""
        total, crc = m.RESULT_HEAD.unpack_from(payload, head)
        data = bytearray(payload[head + m.RESULT_HEAD.size :])

        def read(size: int) -> bytes:  # the next piece, as long as the link carries now
            n = min(total - len(data), size)
            request = m.RESULT_READ_REQ.pack(frame.req_id, 0, len(data), n)
            return self._call(Msg.RESULT_READ, request, expect=n, resendable=True)[1]

        while len(data) < total:
            part = self._through(read)
            if not part:
                raise BoardFault(f"RESULT_READ returned nothing at byte {len(data)} of {total}")
            data += part
        if zlib.crc32(data) != crc:
            raise BoardFault("result CRC mismatch after reassembly")
        return bytes(data)

    def _stage(self, data: bytes) -> tuple[int, int]:
        """Uploads ``data`` to the board's stage, offset-addressed, and verifies its CRC."""
        crc = zlib.crc32(data)
        _, reply = self._call(Msg.STAGE_BEGIN, m.STAGE_BEGIN_REQ.pack(len(data)))
        stage_id = m.STAGE_BEGIN_RESP.unpack(reply)[0]
        view = memoryview(data)

        def send(size: int) -> int:  # the next chunk, as long as the link carries now
            chunk = size - m.STAGE_DATA_HEAD.size
            head = m.STAGE_DATA_HEAD.pack(stage_id, 0, offset)
            self._call(Msg.STAGE_DATA, head + view[offset : offset + chunk], resendable=True)
            return chunk

        for _ in range(2):  # a failed verify means a board memory fault: send once more
            offset = 0
            while offset < len(data):
                offset += self._through(send)
            frame = self._link.exchange(
                Msg.STAGE_VERIFY, m.STAGE_VERIFY_REQ.pack(stage_id, 0, crc), expect=4,
                device_s=len(data) * STAGE_S_PER_BYTE,
            )  # fmt: skip
            if frame.status == Status.OK:
                return stage_id, crc
            if frame.status != Status.VERIFY_FAILED:
                raise _error(Msg.STAGE_VERIFY, frame)
        raise BoardFault("the staged image failed its CRC check twice")

    # -- board operations ------------------------------------------------------------------

    def _handle(self, request: Request) -> Any:
        """One request as its wire entry says (sidra.drivers.wire.operations); an MVM
        batch larger than the board's stage runs as consecutive passes, and a region pass
        on a board that takes no region as the whole-tile pass it stands for."""
        if isinstance(request, MVMRequest | TransposeMVMRequest):
            if request.region is not None and not self._takes_regions:
                whole = self._handle(padded_to_tile(request, self.info))
                return region_outputs(whole, request)
            per_call = vectors_per_command(request, self.info, self._stage_capacity)
            if request.voltages.shape[0] > per_call:
                return joined([self._exchange(part) for part in cut(request, per_call)])
        if isinstance(request, PerturbedMVMRequest):  # cut by its points first
            pieces = cut_points(
                request, *perturbed_per_command(request, self.info, self._stage_capacity)
            )
            if len(pieces.parts) > 1:
                return pieces.joined([self._exchange(part) for part in pieces.parts])
        if isinstance(request, GetBoardInfoRequest):  # GET_STATS: the totals, plus our link
            totals = self._link.keeping_reset_notice(lambda: self._exchange(request))
            return BoardDescription(self.info, replace(totals, link=self.link_stats()))
        return self._exchange(request)

    def _exchange(self, request: Request) -> Any:
        """One command; a read or a pass whose long answer the line kept damaging runs
        again once the link has lowered its frames (§4.6): it writes nothing, so running
        it twice is only a second read. A write is never sent again as a new request."""
        entry = entry_of(request)
        if not entry.writes_nothing:
            return self._exchange_once(request, entry)
        return self._through(lambda _: self._exchange_once(request, entry))

    def _through(self, send: Callable[[int], T]) -> T:
        """``send(size)`` (``size``: the payload the link carries now, bytes) until the line
        lets it through. For requests that write nothing twice (a stage chunk, a result
        read, a read or a pass): after a LineDamage it goes again, at once when the link
        has lowered its frames below ``size`` since, else up to _TRIES_AT_ONE_SIZE more
        times at that size (§4.6)."""
        failures = 0
        while True:
            size = self.max_payload
            try:
                return send(size)
            except LineDamage:
                failures = 1 if self.max_payload < size else failures + 1
                if failures > _TRIES_AT_ONE_SIZE:
                    raise

    def _exchange_once(self, request: Request, entry: WireEntry[Any, Any]) -> Any:
        # Arrays travel inline when the whole payload fits one frame, else staged first;
        # a write's only in a frame no longer than the line has carried intact: a write
        # is never sent again as a new request, while a stage chunk is (§4.6).
        payload = None if entry.always_staged else entry.pack_request(request, None)
        inline = self.max_payload
        if not entry.writes_nothing:
            inline = min(inline, max(self._link.carried_out, MIN_PAYLOAD))
        if payload is None or len(payload) > inline:
            staged = StagedData(*self._stage(entry.data(request)))
            payload = entry.pack_request(request, staged)
        expect = min(entry.result_bytes(request, self.info), self.max_payload)
        device_s = entry.device_seconds(request, self.info, self._link.device_times)
        frame, reply = self._call(
            entry.msg(request), payload, expect=expect, device_s=device_s,
            resendable=entry.writes_nothing,
        )  # fmt: skip
        if entry.result_at is None:
            return entry.decode_result(request, reply, None, self.info)
        data = self._result(frame, reply, entry.result_at)
        return entry.decode_result(request, reply[: entry.result_at], data, self.info)

    @property
    def _takes_regions(self) -> bool:
        """Whether the board, as its last HELLO described it, takes region passes (a
        firmware update may change that across a reboot; unknown while the link is down,
        and a pass padded to the whole tile is right on any board)."""
        hello = self._link.hello
        return hello is not None and bool(hello.features & Feature.REGION_PASS)

    @property
    def _stage_capacity(self) -> int:
        hello = self._link.hello
        return hello.stage_capacity if hello is not None else 0


def _error(msg: Msg, frame: Frame) -> Exception:
    """The SIDRA exception for a non-OK response (the WIRE_STATUS table, read back)."""
    return m.error_exception(msg.name, frame.status, frame.payload)


def _serial_number_option(options: dict[str, str]) -> str | None:
    text = options.get("serial_number")
    if text is None:
        return None
    if not text or len(text.encode()) > _SERIAL_NUMBER_BYTES:
        raise InvalidArgument(
            "url serial_number", text, f"the board's serial number, 1 to {_SERIAL_NUMBER_BYTES} "
            "bytes of UTF-8 (as its HELLO answer says it)",
        )  # fmt: skip
    return text


def _int_option(options: dict[str, str], key: str, default: int, lo: int, hi: int) -> int:
    text = options.get(key)
    if text is None:
        return default
    if not text.isdecimal() or not lo <= int(text) <= hi:
        raise InvalidArgument(f"url {key}", text, f"an integer in {lo} .. {hi}")
    return int(text)


def _float_option(options: dict[str, str], key: str, default: float) -> float:
    text = options.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 600.0:
        raise InvalidArgument(f"url {key}", text, "seconds in (0, 600]")
    return value


def _adc_full_scale_ua(profile: dict[str, Any], adc_bits: int) -> float:
    """The ADC's output bound (µA) as the board's profile states it; 0 when the ADC is
    ideal or the board reports no profile (then it cannot answer in ADC codes)."""
    converters = profile.get("converters")
    value = converters.get("adc_full_scale_ua") if isinstance(converters, dict) else None
    return float(value) if adc_bits and isinstance(value, int | float) else 0.0


def _check_socket_address(url: SplitResult) -> None:
    """``socket://HOST:PORT`` names both, the port in 1 .. 65535: pyserial would fail later
    on with its own words (or wait on a port it defaulted)."""
    try:
        port = url.port
    except ValueError:  # not a number, or beyond 65535
        port = None
    if not url.hostname or port is None or not 0 < port <= 65535:
        raise InvalidArgument(
            "url",
            url.geturl(),
            "socket://HOST:PORT, PORT in 1 .. 65535, e.g. socket://127.0.0.1:7000",
        )
