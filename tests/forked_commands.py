"""``sidra`` command lines run as processes forked from a server that has imported what
they import (:mod:`tests.sidra_forkserver`): one a test process, started at its first
command and stopped when it ends."""

from __future__ import annotations

import atexit
import json
import locale
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["run_forked"]

STARTUP_KEYS = ("PYTHON", "LC_", "LANG", "MPL", "OPENBLAS", "OMP_", "GRPC_", "SKLEARN")
"""Prefixes of the variables a process reads as it starts or imports: a command whose
environment changes one of them starts from nothing instead."""

SERVER_SCRIPT = Path(__file__).with_name("sidra_forkserver.py")


class _ForkServer:
    """The server process and its socket."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="sidra-forks-")
        self.path = os.path.join(self.folder, "socket")
        self.started_env = dict(os.environ)
        self.log = open(os.path.join(self.folder, "log"), "wb")  # noqa: SIM115 (kept open)
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            cwd=Path(__file__).parent.parent,
        )  # fmt: skip
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready.strip() != b"ready":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"the fork server did not start: {self._log_text()}")

    def _log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def serves(self, env: dict[str, str]) -> bool:
        """Whether a command with ``env`` starts here as it would from nothing."""
        keys = {k for k in env.keys() | self.started_env.keys() if k.startswith(STARTUP_KEYS)}
        return all(env.get(k) == self.started_env.get(k) for k in keys)

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> tuple[int, bytes, bytes]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            conn.connect(self.path)
            request = {"args": args, "env": env, "cwd": os.getcwd()}
            socket.send_fds(conn, [json.dumps(request).encode()], [out_w, err_w])
            os.close(out_w)
            os.close(err_w)
            out_w = err_w = -1
            pid = json.loads(conn.recv(4096))["pid"]
            deadline = time.monotonic() + timeout
            stdout, stderr, timed_out = _read_until_closed(out_r, err_r, deadline)
            if timed_out:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(args, timeout, output=stdout, stderr=stderr)
            status = json.loads(conn.recv(4096))["status"]
            return int(status), stdout, stderr
        finally:
            conn.close()
            for fd in (out_r, err_r, out_w, err_w):
                if fd >= 0:
                    os.close(fd)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            assert stream is not None
            stream.close()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _read_until_closed(out_r: int, err_r: int, deadline: float) -> tuple[bytes, bytes, bool]:
    """Both streams to their end (every writer closed them: the command and anything it
    started), or what came before ``deadline``; True when the deadline came first."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in selector.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
        timed_out = bool(selector.get_map())
    return b"".join(chunks[out_r]), b"".join(chunks[err_r]), timed_out


_server: _ForkServer | None = None
_server_pid = 0
_lock = threading.Lock()


def _fork_server() -> _ForkServer:
    """This process's server, started at its first command (again if it has ended)."""
    global _server, _server_pid
    with _lock:
        if _server is None or _server_pid != os.getpid() or _server.proc.poll() is not None:
            _server, _server_pid = _ForkServer(), os.getpid()
            atexit.register(_server.stop)
        return _server


def _text(data: bytes) -> str:
    """As :func:`subprocess.run` with ``text=True`` decodes (universal newlines)."""
    decoded = data.decode(locale.getpreferredencoding(False))
    return decoded.replace("\r\n", "\n").replace("\r", "\n")


def run_forked(
    command: list[str], args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``sidra ARGS`` (``command``: how it would be started from nothing, for its
    record) forked when it can be, else started from nothing; as :func:`subprocess.run`
    with ``capture_output=True, text=True``."""
    server = _fork_server()
    if not server.serves(env):
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=timeout, check=False,
            env=env,
        )  # fmt: skip
    try:
        code, stdout, stderr = server.run(args, env, timeout)
    except subprocess.TimeoutExpired as exc:
        raise subprocess.TimeoutExpired(
            [*command, *args], timeout, output=_text(exc.output or b""),
            stderr=_text(exc.stderr or b""),
        ) from None  # fmt: skip
    return subprocess.CompletedProcess([*command, *args], code, _text(stdout), _text(stderr))
