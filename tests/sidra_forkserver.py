"""A process that imports what ``sidra`` commands import once, then forks each command
line a test runs (:func:`tests.cli_support.run_sidra`) from that state.

Half a second of every ``sidra`` the suite runs went to importing numpy, gRPC, typer,
rich, pydantic and SIDRA HIL's own packages, and more for the commands that import
scikit-learn and matplotlib: with about 500 commands, the suite took 11:18 on a 2-CPU
machine; forked from here, 9:03 (a command's start 0.10-0.14 s instead of 0.33-0.68 s).
A command forked from here is still a process of its own, as a user's: its own stdout
and stderr (the test's pipes), environment, working folder, exit status and signals;
only its imports are done already. ``python -m sidra.cli`` itself, and every command a
test signals or reads while it runs (``interrupted``, ``process``, ``sidra serve``),
still starts from nothing.

Protocol, over a Unix SEQPACKET socket (one connection a command): the test sends a
JSON object ``{"args", "env", "cwd"}`` with two file descriptors, the write ends of
the command's stdout and stderr. A waiter process forked from here forks the command,
sends ``{"pid": N}``, waits for it and sends ``{"status": CODE}`` (a negative signal
number when a signal ended it, as :attr:`subprocess.Popen.returncode`).

The server ends when its stdin does (the test process that started it holds the other
end). Each command is forked from a process that has run nothing: a command cannot see
what another did. Nothing here runs a command itself (it would leave state behind for
the next), and nothing here starts a thread or a gRPC channel (a fork copies neither;
OpenBLAS, whose threads numpy starts, starts them again in a child). A command's stdin
is /dev/null.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback

PRELOAD = (
    "numpy", "grpc", "typer", "rich.console", "rich.table", "rich.progress", "pydantic",
    "pydantic_settings", "sklearn.datasets", "sklearn.model_selection",
    "sklearn.preprocessing", "matplotlib.figure", "matplotlib.backends.backend_agg",
    "sidra.cli.main", "sidra.cli.commands", "sidra.client", "sidra.training",
    "sidra.training.records", "sidra.training.figures", "sidra.cli.train",
    "sidra.cli.model", "sidra.cli.board_group", "sidra.cli.jobs",
)  # fmt: skip
"""Modules imported before the first fork: what most commands import, none of which
reads the environment, the working folder or the terminal at import."""


def serve(path: str) -> dict[str, object]:
    """Answers connections on ``path`` until killed; returns only in a command's process,
    with its request, its stdout and stderr in place."""
    for name in PRELOAD:
        importlib.import_module(name)
    # What is loaded stays out of every collection: a child's collections neither
    # walk it nor copy the pages it lies on.
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    print("ready", flush=True)
    while True:
        # The test process holds stdin's other end: it ends when the test process does.
        readable, _, _ = select.select([listener, sys.stdin.buffer], [], [])
        if sys.stdin.buffer in readable and not os.read(0, 1):
            os._exit(0)
        if listener not in readable:
            continue
        conn, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
        if os.fork() == 0:
            listener.close()
            return _wait_for_command(conn, json.loads(message), fds)
        conn.close()
        for fd in fds:
            os.close(fd)


def _wait_for_command(
    conn: socket.socket, request: dict[str, object], fds: list[int]
) -> dict[str, object]:
    """In the waiter: forks the command, reports its pid and status, and exits; returns
    only in the command's process."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # as a fresh process has it
    pid = os.fork()
    if pid == 0:
        conn.close()
        _become_command(request, fds)
        return request
    for fd in fds:
        os.close(fd)
    try:
        conn.send(json.dumps({"pid": pid}).encode())
        _, status = os.waitpid(pid, 0)
        conn.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
    finally:
        os._exit(0)


def _become_command(request: dict[str, object], fds: list[int]) -> None:
    """The command's process as ``python -m sidra.cli ARGS`` would start: its streams,
    working folder, environment and command line."""
    stdin = os.open(os.devnull, os.O_RDONLY)
    for target, fd in ((0, stdin), (1, fds[0]), (2, fds[1])):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(str(request["cwd"]))
    env = request["env"]
    assert isinstance(env, dict)
    os.environ.clear()
    os.environ.update(env)
    args = request["args"]
    assert isinstance(args, list)
    sys.path[0] = os.getcwd()  # as `python -m` puts it first (here: this script's folder)
    package = os.path.dirname(sys.modules["sidra.cli"].__file__ or "")
    sys.argv = [os.path.join(package, "__main__.py"), *args]
    sys.orig_argv = [sys.executable, "-m", "sidra.cli", *args]


if __name__ == "__main__":
    serve(sys.argv[1])
    # Only a command's process gets here: it runs, then ends as the interpreter ends a
    # process (threads joined, exit handlers run, streams flushed, an uncaught
    # exception's traceback printed) without tearing down each module imported here:
    # with SciPy and matplotlib that took longer than the command.
    from sidra.cli.main import main

    try:
        main()
        code = 0
    except SystemExit as end:
        if end.code is None or isinstance(end.code, int):
            code = end.code or 0
        else:
            print(end.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        # As CPython ends on an uncaught Ctrl-C: the traceback, then killed by SIGINT.
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
