"""Which device is the board: found by path, or by serial number over the ports.

A board behind a serial link is a board, not a device path: USB re-enumeration,
a hub or an adapter's reboot moves it to another node (``ttyUSB0`` becomes
``ttyUSB1``; the virtual board comes back on a new ``/dev/pts/N``), and another
device can take the old one. :class:`BoardFinder` is the link's opener and its
identity check (docs/wire-protocol.md §3.5):

- opened by path (``serial:///dev/ttyUSB0``, ``serial:///dev/serial/by-id/...``),
  it opens that path, and the first board that answers HELLO there is the board (a path
  naming a pseudo-terminal only while its node is the one first opened: a pty number
  freed goes to the next pty opened, see :meth:`BoardFinder._refuse_other_terminal`);
- opened by serial number (``serial://?serial_number=SIDRA-Y1-0007``), whenever
  the link is made it asks the path given first (if any), then the serial ports
  (``serial.tools.list_ports``; with ``search_ptys`` also the pseudo-terminals
  ``/dev/pts/*``) for the one that answers HELLO with that serial number.

Either way, a device whose HELLO names another serial number is refused with
:class:`IdentityMismatch` and closed before anything but that HELLO is written
to it, and it is not asked again until its device node changes (another device
took the path). A port that did not answer is asked again after
:data:`SILENT_RETRY_S` (a board may power up behind an adapter that stays), the
path given and the device the board was last found at every time.
Searching writes nothing but HELLO to any port; it skips ports another process
holds (the driver opens ports with an exclusive lock) and, among
pseudo-terminals, every controlling terminal (someone's shell) and every one a
host already has open (see :func:`pseudo_terminals`; counted again just before the
HELLO, since a host may have opened it after the listing).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import select
import struct
import time
from collections.abc import Callable
from pathlib import Path

from serial.tools import list_ports

from sidra.drivers.errors import BoardUnavailable
from sidra.drivers.serial.link import LinkSettings, Port
from sidra.drivers.wire.framing import (
    PROTOCOL_VERSION,
    Flag,
    Frame,
    FrameError,
    FrameSplitter,
    decode_frame,
    encode_frame,
    max_wire_bytes,
)
from sidra.drivers.wire.messages import HELLO_REQ, Hello, Msg, Status, unpack_hello

__all__ = [
    "SILENT_RETRY_S",
    "BoardFinder",
    "IdentityMismatch",
    "SameBoard",
    "BUSY",
    "ask_hello",
    "candidate_ports",
    "device_stamp",
    "hello_at",
    "is_pseudo_terminal",
    "pseudo_terminals",
    "terminal_use",
]

SILENT_RETRY_S = 10.0
"""A port that did not answer HELLO is not asked again for this long, s (a search runs
at every reconnect attempt; a silent instrument must not get HELLO twice a second)."""

DeviceStamp = tuple[int, int, int]
"""(device number, inode, inode change time) of a device node: a new device at the
same path has a new stamp."""


class IdentityMismatch(BoardUnavailable):
    """A device answered HELLO as another board than the one this driver drives."""

    def __init__(self, device: str, expected: str, found: str, source: str) -> None:
        self.device = device
        self.expected = expected
        self.found = found
        self.source = source
        super().__init__(
            f"{device} answers HELLO as serial number {found!r}, not {expected!r} ({source}): "
            "refused; nothing but HELLO was written to it, and the link stays down until "
            f"board {expected!r} answers"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.device, self.expected, self.found, self.source))


class SameBoard:
    """Identity check of a link: the board named by serial number, or else the first
    board met, is the board; a HELLO from any other is refused."""

    def __init__(self, serial_number: str | None) -> None:
        self.serial_number = serial_number
        self.source = (
            "the serial_number the board URL names"
            if serial_number is not None
            else "the board this driver first met"
        )

    def check(self, hello: Hello, device: str) -> None:
        """Raises :class:`IdentityMismatch` when ``hello`` comes from another board."""
        if self.serial_number is None:
            self.serial_number = hello.serial_number
        elif hello.serial_number != self.serial_number:
            raise IdentityMismatch(device, self.serial_number, hello.serial_number, self.source)


@dataclasses.dataclass(frozen=True, slots=True)
class _Verdict:
    """What a device answered when last asked."""

    stamp: DeviceStamp
    serial_number: str | None
    """The serial number it answered HELLO with; None: it did not answer."""
    at: float
    """time.monotonic() of the answer."""


BUSY = "busy"
""":func:`hello_at`'s answer for a port not asked: it could not be opened (held by another
process) or a host holds it (a pseudo-terminal): nothing was written."""


class BoardFinder:
    """Opener and identity check of one board's link (see the module docstring).

    ``path``: the device path of the URL ("" when the board is named only by serial
    number). ``open_port(path)`` opens a port with the link's settings (exclusive).
    With ``search`` and a serial number the ports are searched whenever ``path`` does
    not answer as that board; otherwise only ``path`` is opened (a ``socket://`` URL).
    """

    def __init__(
        self,
        path: str,
        serial_number: str | None,
        open_port: Callable[[str], Port],
        settings: LinkSettings,
        *,
        search: bool = True,
        search_ptys: bool = False,
    ) -> None:
        self.path = path
        self.same = SameBoard(serial_number)
        self.search = search and serial_number is not None
        self.search_ptys = search_ptys
        self.device = path
        """The device the link opened last (the path the board was found at)."""
        self._open_port = open_port
        self._settings = settings
        self._verdicts: dict[str, _Verdict] = {}
        self._pty_stamp: DeviceStamp | None = None
        """The node of the pty ``path`` names, as the link first opened it."""

    def open(self) -> Port:
        """The board's port, open: the link's opener."""
        if not self.search:
            self._refuse_known(self.path)
            self._refuse_other_terminal(self.path)
            self.device = self.path
            port = self._open_port(self.path)
            if is_pseudo_terminal(self.path):
                self._pty_stamp = device_stamp(self.path)
            return port
        return self._find()

    def _refuse_other_terminal(self, path: str) -> None:
        """Refuses, before a byte is written, a pseudo-terminal that is not the board's.

        A virtual board's pty goes with its process, and the kernel gives its number to
        the next pty opened: a link reopening ``/dev/pts/N`` by name wrote HELLO frames
        into whatever took it (another board, a program's terminal, an ssh session). A
        path that names the pty itself is the board's only while its node is the one
        first opened; a link (``/dev/serial/by-id``-like, pointed anew by whoever
        started the board) is followed. Nobody's controlling terminal is ever written."""
        if not is_pseudo_terminal(path):
            return
        stamp = device_stamp(path)
        if stamp is None:
            return  # gone: opening it says so
        named = os.path.realpath(path) == os.path.abspath(path)
        if named and self._pty_stamp is not None and stamp != self._pty_stamp:
            raise BoardUnavailable(
                f"{path} is another pseudo-terminal now: the board's was closed (its "
                "process ended) and the kernel gave the number to a new one, which is not "
                "written to; a virtual board started again has a pty of its own (sidra "
                "board serve prints its URL), and ?serial_number=...&search_ptys=1 finds "
                "it wherever it is"
            )
        if stamp[0] in terminal_use()[0]:
            raise BoardUnavailable(
                f"{path} is a terminal (a shell's or an ssh session's), not a board: "
                "nothing was written to it"
            )

    def check(self, hello: Hello) -> None:
        """The link's identity check; a refused device is remembered until it changes."""
        try:
            self.same.check(hello, self.device)
        except IdentityMismatch:
            self._remember(self.device, hello.serial_number)
            raise

    # -- by path ---------------------------------------------------------------------------

    def _refuse_known(self, device: str) -> None:
        """Refuses, without writing to it, a device that already answered as another board
        (an address, which has no node to change: for :data:`SILENT_RETRY_S`)."""
        verdict = self._verdicts.get(device)
        if verdict is None or verdict.serial_number is None:
            return
        if verdict.stamp == NO_NODE and time.monotonic() - verdict.at >= SILENT_RETRY_S:
            return  # another board may have taken the address: asked again
        if verdict.stamp == _stamp(device) and self.same.serial_number is not None:
            raise IdentityMismatch(
                device, self.same.serial_number, verdict.serial_number, self.same.source
            )

    def _remember(self, device: str, serial_number: str | None) -> None:
        stamp = _stamp(device)
        if stamp is not None:
            self._verdicts[device] = _Verdict(stamp, serial_number, time.monotonic())

    # -- by serial number ------------------------------------------------------------------

    def _find(self) -> Port:
        wanted = self.same.serial_number
        assert wanted is not None  # search is on only with a serial number
        others: list[str] = []
        asked: list[str] = []
        for device in self._candidates():
            verdict = self._verdicts.get(device)
            stamp = device_stamp(device)
            if stamp is None:
                continue  # gone since it was listed
            if verdict is not None and verdict.stamp == stamp and not self._due(verdict, device):
                if verdict.serial_number is not None:
                    others.append(f"{device} is {verdict.serial_number!r}")
                continue
            answer = self._ask(device)
            if answer == BUSY:
                continue
            asked.append(device)
            if answer == wanted:
                self._verdicts.pop(device, None)
                self.device = device
                return self._open_port(device)
            self._remember(device, answer)
            if answer is not None:
                others.append(f"{device} is {answer!r}")
        raise BoardUnavailable(
            f"no serial port answers HELLO as serial number {wanted!r} (asked: "
            f"{', '.join(asked) or 'none'}; other boards: {', '.join(others) or 'none'}"
            f"{'' if self.search_ptys else PTYS_NOT_SEARCHED})"
        )

    def _candidates(self) -> list[str]:
        """The given path, where the board was last, then every port; each once."""
        seen: set[str] = set()
        ordered = []
        for device in [self.path, self.device, *candidate_ports(ptys=self.search_ptys)]:
            real = os.path.realpath(device) if device else ""
            if device and real not in seen:
                seen.add(real)
                ordered.append(device)
        return ordered

    def _due(self, verdict: _Verdict, device: str) -> bool:
        """Another board is asked again only when its device node changes; a silent port
        after SILENT_RETRY_S, except where the board is most likely to come back (the
        path given, the device it was found at last): those every time."""
        if verdict.serial_number is not None:
            return False
        return device in (self.path, self.device) or (
            time.monotonic() - verdict.at >= SILENT_RETRY_S
        )

    def _ask(self, device: str) -> str | None:
        """The serial number ``device`` answers HELLO with (None: no answer), or BUSY."""
        answer = hello_at(device, self._open_port, self._settings)
        return answer if answer is None or isinstance(answer, str) else answer.serial_number


def hello_at(
    device: str, open_port: Callable[[str], Port], settings: LinkSettings
) -> Hello | str | None:
    """What ``device`` answers HELLO with (None: no valid answer in time), or ``"busy"``
    when it was not asked: it cannot be opened (held by another process, no permission,
    gone) or it is a pseudo-terminal a host holds. Nothing but HELLO is written."""
    try:
        port = open_port(device)
    except (OSError, ValueError):  # held by another process, no permission, gone
        return BUSY
    try:
        # The candidates were listed a while ago: a host may have opened this pty
        # since. Counted again now, with our own end open, just before the HELLO.
        if is_pseudo_terminal(device) and pty_openers(device) > _BOARD_AND_US:
            return BUSY
        return ask_hello(port, settings)
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            port.close()


def ask_hello(port: Port, settings: LinkSettings) -> Hello | None:
    """Says HELLO on ``port`` (nothing else, retried at most once) and returns the
    answer; None when no valid HELLO answer comes in time."""
    req_id = int.from_bytes(os.urandom(2), "little")
    payload = HELLO_REQ.pack(PROTOCOL_VERSION, 0, settings.max_payload, 0)
    request = Frame(Msg.HELLO, req_id, payload)
    splitter = FrameSplitter()
    timeout = settings.attempt_timeout(len(encode_frame(request)), max_wire_bytes(256))
    for attempt in range(1 + min(settings.retries, 1)):
        if attempt:  # a delimiter first flushes whatever the board half-received
            port.write(b"\x00" + encode_frame(dataclasses.replace(request, flags=Flag.RETRY)))
        else:
            port.write(encode_frame(request))
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([port.fileno()], [], [], remaining)
            if not ready:
                break
            for raw in splitter.feed(port.read(1 << 16)):
                hello = _hello_answer(raw, req_id)
                if hello is not None:
                    return hello
    return None


def _hello_answer(raw: bytes, req_id: int) -> Hello | None:
    try:
        frame = decode_frame(raw)
    except FrameError:
        return None
    if not frame.is_response or frame.msg != Msg.HELLO or frame.req_id != req_id:
        return None
    if frame.status != Status.OK:
        return None
    try:
        return unpack_hello(frame.payload)
    except (struct.error, UnicodeDecodeError):
        return None


NO_NODE: DeviceStamp = (-1, -1, -1)
"""The stamp of an address (``socket://``): no device node says when another board took it."""


def _stamp(device: str) -> DeviceStamp | None:
    """:func:`device_stamp` of a path; :data:`NO_NODE` for an address."""
    return NO_NODE if "://" in device else device_stamp(device)


def device_stamp(path: str) -> DeviceStamp | None:
    """The stamp of the device node at ``path`` (symlinks followed); None if none is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_rdev, st.st_ino, st.st_ctime_ns)


PTYS_NOT_SEARCHED = (
    "; pseudo-terminals not searched: add search_ptys=1 to the URL for a virtual board's "
    "(sidra board serve --pty)"
)
"""How a search that found nothing says what it left out, and how to have it."""


def candidate_ports(*, ptys: bool) -> list[str]:
    """The serial ports to search: what ``serial.tools.list_ports`` finds, then, with
    ``ptys``, the pseudo-terminals no process has as its controlling terminal."""
    devices = sorted(info.device for info in list_ports.comports())
    return devices + pseudo_terminals() if ptys else devices


def pseudo_terminals() -> list[str]:
    """``/dev/pts/N`` in numeric order that may hold a board nobody is talking to.

    Left out: every controlling terminal (a shell's, an ssh session's: HELLO bytes
    must never land in someone's terminal) and every pty open more than once (a
    board server keeps one end of its own pty open; a second opener is a host
    talking to the board, which a HELLO in between would disturb, lock or no lock).
    """
    controlling, opened = terminal_use()
    found = []
    for path in sorted(glob.glob("/dev/pts/[0-9]*"), key=lambda p: int(p.rpartition("/")[2])):
        try:
            rdev = os.stat(path).st_rdev
        except OSError:
            continue
        if rdev not in controlling and opened.get(path, 0) <= 1:
            found.append(path)
    return found


_BOARD_AND_US = 2
"""Openers of a board's pty while only its server and the search hold it."""


def is_pseudo_terminal(device: str) -> bool:
    return os.path.realpath(device).startswith("/dev/pts/")


def pty_openers(device: str) -> int:
    """How many file descriptors of the processes visible here have ``device`` (a
    ``/dev/pts/N``) open now."""
    return terminal_use()[1].get(os.path.realpath(device), 0)


def terminal_use() -> tuple[set[int], dict[str, int]]:
    """What the processes visible here do with terminals (proc(5)): the device numbers
    of their controlling terminals (``tty_nr`` in ``/proc/<pid>/stat``) and, per
    ``/dev/pts/N``, how many of their file descriptors have it open."""
    controlling: set[int] = set()
    opened: dict[str, int] = {}
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            stat = Path(proc, "stat").read_text()
            fds = os.listdir(Path(proc, "fd"))
        except OSError:  # the process ended, or is not ours to look into
            continue
        fields = stat.rpartition(")")[2].split()  # after the command name (it may hold spaces)
        tty_nr = int(fields[4]) if len(fields) > 4 else 0
        if tty_nr:
            major = (tty_nr >> 8) & 0xFFF
            minor = (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
            controlling.add(os.makedev(major, minor))
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(Path(proc, "fd", fd))
                if target.startswith("/dev/pts/"):
                    opened[target] = opened.get(target, 0) + 1
    return controlling, opened
