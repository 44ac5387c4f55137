"""The virtual board on a real pseudo-terminal or a TCP port.

A :class:`PtyServer` opens a pty in raw mode and serves the board on its
master end; hosts open the slave (``/dev/pts/N``) with the serial driver
exactly as they would a USB adapter. The server keeps its own slave fd open,
so a host closing the port is not a hang-up (reads on the master would fail
with EIO otherwise). A :class:`TcpServer` does the same for ``socket://``,
one connection at a time. Either can put a :class:`FaultShim` on the line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Iterator
from types import TracebackType
from typing import Self

from sidra.drivers.wire.device_times import NONE_DECLARED, CommandTimes
from sidra.emulator.config import BoardProfile
from sidra.emulator.firmware.device import DEVICE_MAX_PAYLOAD, RESPONSE_CACHE, VirtualBoard
from sidra.emulator.firmware.faults import FaultConfig, FaultShim

__all__ = ["LinkServer", "PtyServer", "TcpServer", "serve_virtual_board"]

WRITE_STALL_S = 2.0
"""A host that reads nothing for this long is gone: output is dropped, as a UART's would be."""


class LinkServer:
    """Moves bytes between one link and a :class:`VirtualBoard` on a thread."""

    def __init__(self, board: VirtualBoard, faults: FaultConfig | None = None) -> None:
        self.board = board
        self.shim = FaultShim(faults, on_reset=self._on_shim_reset) if faults else None
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._notices: list[bytes] = []
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self.dropped_output = 0

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset_board(self) -> None:
        """Power-cycles the board now; the host learns it from the boot epoch."""
        self._emit(self.board.reset())

    def _on_shim_reset(self) -> None:
        self._notices.append(self.board.reset())

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _fd(self) -> int | None:
        raise NotImplementedError

    def _serve_fd(self, fd: int) -> None:
        """Serves until ``fd`` fails (hang-up, disconnect) or the server stops."""
        while not self._stop.is_set():
            ready, _, _ = select.select([fd, self._wake_r], [], [], 0.5)
            if self._wake_r in ready:
                return
            if not ready:
                continue
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self._process(data)

    def _process(self, data: bytes) -> None:
        chunks = self.shim.to_device(data) if self.shim else [(0.0, data)]
        for wait, chunk in chunks:
            if wait:
                time.sleep(wait)
            self._emit(self.board.receive(chunk))
        notices, self._notices = self._notices, []
        for notice in notices:
            self._emit(notice)

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        chunks = self.shim.to_host(data) if self.shim else [(0.0, data)]
        for wait, chunk in chunks:
            if wait:
                time.sleep(wait)
            self._write_all(chunk)

    def _write_all(self, data: bytes) -> None:
        fd = self._fd()
        if fd is None:
            return
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_STALL_S
        with self._write_lock:
            while view and not self._stop.is_set():
                try:
                    _, writable, _ = select.select([], [fd], [], 0.1)
                    if writable:
                        view = view[os.write(fd, view) :]
                        deadline = time.monotonic() + WRITE_STALL_S
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EINTR):
                        break
                if time.monotonic() > deadline:
                    break
            self.dropped_output += len(view)


class PtyServer(LinkServer):
    """The board on a raw pseudo-terminal; :attr:`path` is the device to open."""

    def __init__(self, board: VirtualBoard, faults: FaultConfig | None = None) -> None:
        super().__init__(board, faults)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # termios lives on the slave: bytes pass unchanged
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._hung_up = False

    @property
    def url(self) -> str:
        return f"serial://{self.path}"

    def hangup(self) -> None:
        """Unplugs the board for good: the pty disappears, as a USB adapter does."""
        self._hung_up = True
        self.stop()

    def _fd(self) -> int | None:
        return None if self._hung_up and self._stop.is_set() else self._master

    def _run(self) -> None:
        self._serve_fd(self._master)

    def _close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1


class TcpServer(LinkServer):
    """The board on a TCP port (``socket://host:port``), one host connection at a time."""

    def __init__(
        self, board: VirtualBoard, host: str = "127.0.0.1", port: int = 0,
        faults: FaultConfig | None = None,
    ) -> None:  # fmt: skip
        super().__init__(board, faults)
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._conn: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def disconnect(self) -> None:
        """Drops the current host connection (the host sees the link lost)."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _fd(self) -> int | None:
        conn = self._conn
        return None if conn is None else conn.fileno()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._listener.fileno(), self._wake_r], [], [], 0.5)
            if self._wake_r in ready:
                return
            if not ready:
                continue
            conn, _ = self._listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
            try:
                self._serve_fd(conn.fileno())
            finally:
                self._conn = None
                conn.close()

    def _close(self) -> None:
        self.disconnect()
        self._listener.close()


@contextlib.contextmanager
def serve_virtual_board(
    profile: BoardProfile,
    seed: int = 0,
    *,
    faults: FaultConfig | None = None,
    tcp: tuple[str, int] | None = None,
    max_payload: int | None = None,
    cache_depth: int = RESPONSE_CACHE,
    stage_capacity: int | None = None,
    report_profile: bool = True,
    slow: CommandTimes = NONE_DECLARED,
    declare_times: bool = True,
    serial_number: str | None = None,
) -> Iterator[LinkServer]:
    """A virtual board served on a fresh pty (or TCP) in a background thread::

    with serve_virtual_board(preset("ideal"), seed=1) as server:
        board = open_board(server.url)

    ``max_payload`` (bytes), ``cache_depth`` (responses) and ``stage_capacity`` (bytes)
    size the board's buffers, down to those of a small microcontroller.
    ``report_profile`` False: the board reports no profile, as a physical board.
    ``slow``: the times a slow firmware takes over its commands, declared in HELLO unless
    ``declare_times`` is False (:class:`~sidra.emulator.firmware.device.VirtualBoard`).
    ``serial_number``: what the board answers (None: ``EMU-<model>-<seed>``, the same for
    every board of that seed; ``sidra board serve`` gives each start its own).
    """
    board = VirtualBoard(
        profile, seed, max_payload=max_payload or DEVICE_MAX_PAYLOAD,
        cache_depth=cache_depth, stage_capacity=stage_capacity, report_profile=report_profile,
        slow=slow, declare_times=declare_times, serial_number=serial_number,
    )  # fmt: skip
    server: LinkServer = TcpServer(board, *tcp, faults=faults) if tcp else PtyServer(board, faults)
    with server:
        yield server
