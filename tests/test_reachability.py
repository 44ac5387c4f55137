"""A connect that waited in vain says what a TCP connection finds there: refused (nothing
listens), an unknown host, or a connection that opens (then the handshake is to blame)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sidra.client import BoardUnavailable, connect
from sidra.client.aio import connect as aio_connect
from sidra.client.reachability import host_port, tcp_refusal


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
