"""TLS and mutual TLS with real certificates: who gets through the handshake."""

from __future__ import annotations

from pathlib import Path

import pytest
from security_support import Pki, make_pki, served, tls_credentials

from sidra.client import BoardUnavailable, InvalidArgument, TlsCredentials, connect
from sidra.drivers import open_board
from sidra.server.security import Role, add_principal

REFUSED_WITHIN_S = 2.0
"""How long a client waits for a handshake that must fail."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_tls_without_client_certificates_works(pki: Pki) -> None:
    with (
        served(credentials=tls_credentials(pki, mutual=False)) as port,
        connect(f"127.0.0.1:{port}", tls=TlsCredentials(root_ca=pki.ca)) as board,
    ):
        assert board.info.rows == 256


def test_tls_refuses_a_plaintext_client(pki: Pki) -> None:
    """The handshake fails, and the client's error says the server speaks TLS (one
    handshake of its own finds it: sidra.client.tls_diagnosis.plaintext_problem)."""
    with (
        served(credentials=tls_credentials(pki, mutual=False)) as port,
        pytest.raises(BoardUnavailable, match="speaks TLS, which this plaintext client"),
    ):
        connect(f"127.0.0.1:{port}", wait_ready_s=REFUSED_WITHIN_S)


def test_client_refuses_a_server_its_ca_did_not_sign(pki: Pki) -> None:
    with (
        served(credentials=tls_credentials(pki, mutual=False)) as port,
        pytest.raises(BoardUnavailable, match="TLS handshake"),
    ):
        connect(
            f"127.0.0.1:{port}",
            tls=TlsCredentials(root_ca=pki.other_ca),
            wait_ready_s=REFUSED_WITHIN_S,
        )


def test_mutual_tls_admits_a_client_of_the_lab_ca(pki: Pki) -> None:
    tls = TlsCredentials(root_ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    with (
        served(credentials=tls_credentials(pki, mutual=True)) as port,
        connect(f"127.0.0.1:{port}", tls=tls) as board,
    ):
        assert board.info.rows == 256


@pytest.mark.parametrize("who", ["another CA's certificate", "no certificate"])
def test_mutual_tls_refuses_other_clients(pki: Pki, who: str) -> None:
    if who == "no certificate":
        tls = TlsCredentials(root_ca=pki.ca)
    else:
        tls = TlsCredentials(root_ca=pki.ca, cert=pki.stranger_cert, key=pki.stranger_key)
    with (
        served(credentials=tls_credentials(pki, mutual=True)) as port,
        pytest.raises(BoardUnavailable),
    ):
        connect(f"127.0.0.1:{port}", tls=tls, wait_ready_s=REFUSED_WITHIN_S)


def test_grpcs_url_carries_ca_client_certificate_and_token(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_board("grpcs://...") reaches a server with mutual TLS and tokens: what
    training jobs and ``sidra board probe`` use."""
    tokens_file = tmp_path / "tokens.toml"
    monkeypatch.setenv("SIDRA_TOKEN", add_principal(tokens_file, "prober", Role.VIEWER))
    credentials = tls_credentials(pki, mutual=True)
    with served(credentials=credentials, tokens_file=tokens_file) as port:
        query = f"ca={pki.ca}&cert={pki.client_cert}&key={pki.client_key}"
        with open_board(f"grpcs://127.0.0.1:{port}?{query}") as board:
            assert board.info.rows == 256


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("grpcs://127.0.0.1:1?pin=x", "board url option"),
        ("grpc://127.0.0.1:1?ca=/x.pem", "board url"),
        ("grpcs://127.0.0.1:1?ca=/no/such/ca.pem", "tls.root_ca"),
        ("grpcs://127.0.0.1:1?cert=/x.pem", "tls.cert"),
    ],
)
def test_bad_grpcs_urls_name_what_is_wrong(url: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        open_board(url)
    assert caught.value.field == field


def test_cli_server_options_take_a_grpcs_url(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--server`` of ``sidra jobs`` and ``sidra train`` reaches a mutual-TLS server with
    tokens as ``--board`` does; a scheme it cannot serve is refused naming --server."""
    from typer.testing import CliRunner

    from sidra.cli.main import app

    tokens_file = tmp_path / "tokens.toml"
    monkeypatch.setenv("SIDRA_TOKEN", add_principal(tokens_file, "viewer", Role.VIEWER))
    with served(credentials=tls_credentials(pki, mutual=True), tokens_file=tokens_file) as port:
        query = f"ca={pki.ca}&cert={pki.client_cert}&key={pki.client_key}"
        result = CliRunner().invoke(
            app, ["jobs", "list", "--server", f"grpcs://127.0.0.1:{port}?{query}", "--json"]
        )
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "[]"
    result = CliRunner().invoke(app, ["jobs", "list", "--server", "serial:///dev/null"])
    assert result.exit_code == 1
    assert "--server: got 'serial:///dev/null', expected HOST:PORT" in result.output
