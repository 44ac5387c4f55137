"""A TCP proxy on loopback that delays every byte by a fixed time each way: a long
network path (a WAN) between a client and a server on one machine, for benchmarks.

Each direction of each connection has a reader, which stamps every chunk it reads
with the time it may leave, and a writer, which sends each chunk once its time has
come. Latency is added without limiting throughput: chunks in flight overlap, as
on a long link, rather than waiting for one another.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from types import TracebackType
from typing import Self

__all__ = ["DelayProxy"]

CHUNK_BYTES = 256 * 1024


class DelayProxy:
    """Listens on ``127.0.0.1:<port>`` and forwards to ``upstream`` (``host:port``),
    each way ``delay_s`` later. Use as a context manager; :attr:`address` is where
    clients connect."""

    def __init__(self, upstream: str, delay_s: float) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.delay_s = delay_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="delay-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            self._pipe(client, server)
            self._pipe(server, client)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(CHUNK_BYTES):
                    chunks.put((time.monotonic() + self.delay_s, data))
            chunks.put((time.monotonic() + self.delay_s, b""))  # end of stream, delayed too

        def write() -> None:
            with contextlib.suppress(OSError):
                while True:
                    due, data = chunks.get()
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
