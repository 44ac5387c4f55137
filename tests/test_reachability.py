"""A connect that waited in vain says what a TCP connection finds there: refused (nothing
listens), an unknown host, or a connection that opens (then the handshake is to blame)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import pytest

from sidra.client import BoardUnavailable, connect, reachability
from sidra.client.aio import connect as aio_connect
from sidra.client.reachability import (
    GIVE_UP_AFTER_S,
    host_port,
    tcp_refusal,
    wait_for_server,
)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("lab-board-3:7000", ("lab-board-3", 7000)),
        ("[::1]:50051", ("::1", 50051)),
        ("unix:/run/sidra.sock", None),
        ("dns:///lab:50051", None),
        ("ipv4:127.0.0.1:50051", None),
        ("127.0.0.1", None),
        ("127.0.0.1:port", None),
        ("[::1:50051", None),
    ],
)
def test_host_port(address: str, expected: tuple[str, int] | None) -> None:
    assert host_port(address) == expected


def test_nothing_listening_is_said_to_refuse() -> None:
    port = _closed_port()
    with pytest.raises(BoardUnavailable, match=f"refused: nothing listens on port {port}"):
        connect(f"127.0.0.1:{port}", wait_ready_s=0.3)

    async def run() -> None:
        with pytest.raises(BoardUnavailable, match="connection was refused"):
            await aio_connect(f"127.0.0.1:{port}", wait_ready_s=0.3)

    asyncio.run(run())


def test_an_unknown_host_is_named() -> None:
    with pytest.raises(BoardUnavailable, match="host name 'no-such-board.invalid' is not known"):
        connect("no-such-board.invalid:50051", wait_ready_s=0.3)


def test_a_port_that_accepts_blames_the_handshake() -> None:
    """Something listens but speaks no gRPC: the connection opens, so the message is the
    handshake's, not a refusal."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        assert tcp_refusal(address) is None
        with pytest.raises(BoardUnavailable, match="or it serves TLS") as caught:
            connect(address, wait_ready_s=0.3)
        assert "refused" not in str(caught.value)


def test_other_targets_are_not_probed() -> None:
    assert tcp_refusal("unix:/nonexistent/sidra.sock") is None


def test_a_refusing_port_ends_a_long_wait_after_the_grace() -> None:
    """Nothing listens: a 60 s wait gives up once GIVE_UP_AFTER_S has passed, and says how
    long it waited (without the early end it would say 60 s)."""
    port = _closed_port()
    with pytest.raises(BoardUnavailable, match=r"within 2 s: the connection was refused"):
        connect(f"127.0.0.1:{port}", wait_ready_s=60)

    async def run() -> None:
        with pytest.raises(BoardUnavailable, match=r"within 2 s: the connection was refused"):
            await aio_connect(f"127.0.0.1:{port}", wait_ready_s=60)

    asyncio.run(run())
    assert GIVE_UP_AFTER_S == 2.0


def test_a_server_that_starts_while_the_client_waits_is_reached() -> None:
    """The port refuses when the wait begins; the server binds it a moment later, within
    the grace: the connect succeeds."""
    from sidra.drivers import open_board
    from sidra.server import create_server

    port = _closed_port()
    started: list[object] = []

    def start() -> None:
        server, _ = create_server(open_board("emu://?preset=ideal"), f"127.0.0.1:{port}")
        server.start()
        started.append(server)

    timer = threading.Timer(0.5, start)
    timer.start()
    try:
        with connect(f"127.0.0.1:{port}", wait_ready_s=30) as board:
            assert board.info.model == "SIDRA-IDEAL"
    finally:
        timer.join()
        for server in started:
            server.stop(grace=None)  # type: ignore[attr-defined]


def test_the_wait_asks_again_while_a_host_is_merely_silent() -> None:
    """A port that accepts (not hopeless) keeps the whole wait: ``ready`` is asked again
    until it is over."""
    asked: list[float] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        waited = wait_for_server(lambda s: asked.append(s) is not None, address, 0.05)
    assert waited == 0.05 and len(asked) >= 2
    refused = wait_for_server(lambda s: False, f"127.0.0.1:{_closed_port()}", 60)
    assert refused is not None and refused < 60


def test_a_silent_host_s_probe_does_not_outlast_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that answers nothing (here: a listener whose accept queue is full, so its
    kernel drops new connections' SYNs) keeps the wait going, and the probe made past
    the grace is given only what is left of the wait: the time every step was allowed
    (each channel wait, each probe) adds up to no more than the wait itself. Before, the
    probe took its whole second after a wait that had nearly run out."""
    real_probe = reachability._probe
    allowed: list[float] = []

    def probe(address: str, timeout_s: float) -> tuple[str | None, bool]:
        allowed.append(timeout_s)
        return real_probe(address, timeout_s)

    def channel_wait(timeout_s: float) -> bool:  # a channel that never becomes ready
        allowed.append(timeout_s)
        time.sleep(timeout_s)
        return False

    monkeypatch.setattr(reachability, "_probe", probe)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filling = [socket.socket() for _ in range(3)]
        try:
            for sock in filling:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(("127.0.0.1", port))
            time.sleep(0.2)
            assert real_probe(f"127.0.0.1:{port}", 0.3) == (
                f"127.0.0.1 did not answer a connection to port {port} within 0.3 s",
                False,
            )  # silent indeed, and not hopeless
            wait_s = GIVE_UP_AFTER_S + 0.4
            waited = wait_for_server(channel_wait, f"127.0.0.1:{port}", wait_s)
        finally:
            for sock in filling:
                sock.close()
    assert waited == wait_s
    assert len(allowed) >= 2 and sum(allowed) <= wait_s, allowed
