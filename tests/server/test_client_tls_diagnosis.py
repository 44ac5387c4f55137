"""A TLS client says what is wrong, not only that the handshake may have failed: its own
files checked before connecting (each PEM of its kind, the key the certificate's), and,
when a server accepts the connection but the channel never becomes ready, what one TLS
handshake with the same files finds there. Real servers: gRPC with trustme
certificates, a plaintext gRPC server, an HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from security_support import Pki, make_pki, served, tls_credentials

from sidra.client import BoardUnavailable, InvalidArgument, TlsCredentials, connect
from sidra.server.security import server_credentials

WAIT_S = 2.0
"""How long a client waits for a handshake that must fail, s."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize(
    ("given", "field", "said"),
    [
        ({"root_ca": "server_key"}, "tls.root_ca", "server_key.pem (a private key)"),
        ({"cert": "client_key", "key": "client_key"}, "tls.cert", "client_key.pem (a private key)"),
        (
            {"cert": "client_cert", "key": "client_cert"},
            "tls.key",
            "client_cert.pem (a certificate)",
        ),
        ({"cert": "client_cert", "key": "server_key"}, "tls.key", "(this key is another's)"),
    ],
    ids=["ca-is-a-key", "cert-is-a-key", "key-is-a-cert", "key-of-another"],
)
def test_client_files_are_checked_before_connecting(
    pki: Pki, given: dict[str, str], field: str, said: str
) -> None:
    files = {name: getattr(pki, attribute) for name, attribute in given.items()}
    # Nothing listens on port 9: the refusal comes before any connection.
    with pytest.raises(InvalidArgument) as refused:
        connect("127.0.0.1:9", tls=TlsCredentials(**files), wait_ready_s=None)
    assert refused.value.field == field
    assert said in str(refused.value)


def refusal(port: int, tls: TlsCredentials) -> str:
    with pytest.raises(BoardUnavailable) as caught:
        connect(f"127.0.0.1:{port}", tls=tls, wait_ready_s=WAIT_S)
    said = str(caught.value)
    assert "a TLS handshake there finds" in said, said
    return said


def test_mutual_tls_without_a_client_certificate(pki: Pki) -> None:
    with served(credentials=tls_credentials(pki, mutual=True)) as port:
        said = refusal(port, TlsCredentials(root_ca=pki.ca))
    assert "the server asked for a client certificate (mutual TLS)" in said
    assert "this client sent none" in said


def test_mutual_tls_with_a_certificate_of_another_ca(pki: Pki) -> None:
    tls = TlsCredentials(root_ca=pki.ca, cert=pki.stranger_cert, key=pki.stranger_key)
    with served(credentials=tls_credentials(pki, mutual=True)) as port:
        said = refusal(port, tls)
    assert "the server refused this client's certificate" in said
    assert "client_ca" in said


def test_a_server_certificate_of_another_ca(pki: Pki) -> None:
    with served(credentials=tls_credentials(pki, mutual=False)) as port:
        said = refusal(port, TlsCredentials(root_ca=pki.other_ca))
    assert "the server's certificate is not signed by the CA in root_ca" in said
    assert "unknown issuer" in said


def test_an_expired_server_certificate(tmp_path: Path) -> None:
    """The server here is made without the settings check, which would refuse it."""
    ca, now = trustme.CA(), datetime.now(UTC)
    leaf = ca.issue_cert("127.0.0.1", not_before=now - timedelta(days=30),
                         not_after=now - timedelta(days=1))  # fmt: skip
    for name, blob in (("ca", ca.cert_pem), ("cert", leaf.cert_chain_pems[0]),
                       ("key", leaf.private_key_pem)):  # fmt: skip
        blob.write_to_path(str(tmp_path / f"{name}.pem"))
    credentials = server_credentials(tmp_path / "cert.pem", tmp_path / "key.pem", None)
    with served(credentials=credentials) as port:
        said = refusal(port, TlsCredentials(root_ca=tmp_path / "ca.pem"))
    assert "the server's certificate has expired" in said


def test_a_plaintext_server(pki: Pki) -> None:
    with served() as port:
        said = refusal(port, TlsCredentials(root_ca=pki.ca))
    assert "the server answered in plaintext, not TLS" in said


@contextmanager
def http_server() -> Iterator[int]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_http_server(pki: Pki) -> None:
    with http_server() as port:
        said = refusal(port, TlsCredentials(root_ca=pki.ca))
    assert "an HTTP server answered, not a SIDRA server" in said


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_a_plaintext_client_at_a_tls_server(pki: Pki, mutual: bool) -> None:
    """The reverse mistake: a client without TLS at a TLS server is told the server speaks
    TLS and what to give, within the grace (it waited the whole 30 s before and said only
    that the server might serve TLS); sync and asyncio alike."""
    import asyncio
    import re

    from sidra.client.aio import connect as aio_connect

    with served(credentials=tls_credentials(pki, mutual=mutual)) as port:
        with pytest.raises(BoardUnavailable) as caught:
            connect(f"127.0.0.1:{port}", wait_ready_s=30.0)

        async def aio() -> None:
            await aio_connect(f"127.0.0.1:{port}", wait_ready_s=30.0)

        with pytest.raises(BoardUnavailable) as caught_aio:
            asyncio.run(aio())
    for said in (str(caught.value), str(caught_aio.value)):
        assert "the server there speaks TLS, which this plaintext client cannot reach" in said
        assert "grpcs://HOST:PORT?ca=PATH" in said
        waited = re.search(r"answered at 127\.0\.0\.1:\d+ within ([\d.]+) s", said)
        assert waited is not None and float(waited[1]) < 30.0, said


def test_a_plaintext_client_at_an_http_server() -> None:
    with http_server() as port, pytest.raises(BoardUnavailable) as caught:
        connect(f"127.0.0.1:{port}", wait_ready_s=WAIT_S)
    assert "an HTTP server answered, not a SIDRA server" in str(caught.value)


def test_a_plaintext_server_is_no_problem_for_a_plaintext_client() -> None:
    from sidra.client.tls_diagnosis import plaintext_problem

    with served() as port:
        assert plaintext_problem(f"127.0.0.1:{port}") is None
    assert plaintext_problem("unix:/run/sidra.sock") is None


def test_a_handshake_that_succeeds_says_so(pki: Pki) -> None:
    """A server that completes the handshake but never serves gRPC (here: TLS with the
    right files, nothing wrong with them) is not blamed on the files."""
    from sidra.client.tls_diagnosis import handshake_problem

    with served(credentials=tls_credentials(pki, mutual=True)) as port:
        address = f"127.0.0.1:{port}"
        assert handshake_problem(address, pki.ca, pki.client_cert, pki.client_key) is None


def test_silence_after_a_completed_handshake_is_not_blamed_on_tls(pki: Pki) -> None:
    """A TLS server that completes the handshake and then says nothing for longer than the
    probe waits: the handshake is not said to have failed."""
    import socket
    import ssl

    from sidra.client.tls_diagnosis import HANDSHAKE_S, handshake_problem

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    done = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve_silently() -> None:
            accepted, _ = listener.accept()
            with context.wrap_socket(accepted, server_side=True):
                done.wait(HANDSHAKE_S + 3)

        thread = threading.Thread(target=serve_silently, daemon=True)
        thread.start()
        try:
            address = f"127.0.0.1:{listener.getsockname()[1]}"
            assert handshake_problem(address, pki.ca, None, None) is None
        finally:
            done.set()
            thread.join(timeout=10)


def test_the_command_line_says_it_once_without_grpc_s_handshake_lines(
    pki: Pki, tmp_path: Path
) -> None:
    """gRPC's C core printed each failed handshake (``ssl_transport_security.cc ...
    Handshake failed``, five times over one command) before the command's own line."""
    import os
    import subprocess

    from tests.cli_support import SIDRA

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDRA_", "GRPC_"))}
    with served(credentials=tls_credentials(pki, mutual=False)) as port:
        result = subprocess.run(
            [*SIDRA, "whoami", f"grpcs://127.0.0.1:{port}?ca={pki.other_ca}"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**env, "SIDRA_STATE__PATH": str(tmp_path / "state.sqlite3")},
        )  # fmt: skip
    assert result.returncode == 1
    assert "not signed by the CA in root_ca" in result.stderr
    assert "Handshake failed" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_handshake_that_cannot_succeed_ends_the_wait_early(pki: Pki) -> None:
    """A server certificate of another CA: no wait mends it, and the client waited the
    whole wait_ready_s (10 s by default) before saying so; sync and asyncio alike."""
    import asyncio
    import re

    from sidra.client.aio import connect as aio_connect

    tls = TlsCredentials(root_ca=pki.other_ca)
    with served(credentials=tls_credentials(pki, mutual=False)) as port:
        with pytest.raises(BoardUnavailable) as caught:
            connect(f"127.0.0.1:{port}", tls=tls, wait_ready_s=30.0)

        async def aio() -> None:
            await aio_connect(f"127.0.0.1:{port}", tls=tls, wait_ready_s=30.0)

        with pytest.raises(BoardUnavailable) as caught_aio:
            asyncio.run(aio())
    for said in (str(caught.value), str(caught_aio.value)):
        waited = re.search(r"answered at 127\.0\.0\.1:\d+ within ([\d.]+) s", said)
        assert waited is not None and float(waited[1]) < 30.0, said
        assert "not signed by the CA in root_ca" in said
