"""The X.509 content of ``[tls]`` files, checked at start and by ``--check``: an expired
or not yet valid server certificate, one made for clients only, a client CA that is no CA
are refused naming ``tls.cert`` / ``tls.client_ca``; a certificate expiring within 30 days
is warned of. gRPC loaded them all, and clients saw only a failed handshake.

Real certificates: a throwaway CA (trustme), and for an extendedKeyUsage trustme does not
make, a certificate that CA signs with ``cryptography``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sidra.server.security import Role, add_principal
from sidra.server.settings import ConfigError, load_settings
from tests.cli_support import SIDRA, unwrapped

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def no_sidra_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIDRA_"):
            monkeypatch.delenv(name)


def issued(folder: Path, ca: trustme.CA, name: str, **dates: datetime) -> tuple[Path, Path]:
    """A certificate of ``ca`` for 127.0.0.1 (valid between ``dates``) and its key."""
    leaf = ca.issue_cert("127.0.0.1", "localhost", **dates)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(0o600)
    return cert, key


def signed_by(
    folder: Path, ca: trustme.CA, name: str, *, usage: list[x509.ObjectIdentifier] | None
) -> tuple[Path, Path]:
    """A certificate ``ca`` signs with the extendedKeyUsage ``usage`` (None: without the
    extension) and no basicConstraints, and its key."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(
        builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def refusal(**tls: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(tls=tls)
    return str(caught.value)


def test_an_expired_server_certificate_is_refused_naming_its_date(tmp_path: Path) -> None:
    ended = (NOW - timedelta(days=2)).replace(microsecond=0)
    cert, key = issued(tmp_path, trustme.CA(), "old", not_before=NOW - timedelta(days=90),
                       not_after=ended)  # fmt: skip
    said = refusal(cert=cert, key=key)
    assert f"tls.cert: '{cert}' expired at {ended:%Y-%m-%d %H:%M} UTC (its notAfter)" in said
    assert 'issue a new one (docs/operations.md, "Certificates")' in said


def test_a_server_certificate_not_valid_yet_is_refused(tmp_path: Path) -> None:
    starts = (NOW + timedelta(days=3)).replace(microsecond=0)
    cert, key = issued(tmp_path, trustme.CA(), "early", not_before=starts,
                       not_after=NOW + timedelta(days=90))  # fmt: skip
    said = refusal(cert=cert, key=key)
    assert f"tls.cert: '{cert}' is not valid before {starts:%Y-%m-%d %H:%M} UTC" in said
    assert "check this machine's clock" in said


def test_a_client_certificate_as_the_servers_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key = signed_by(tmp_path, ca, "alice", usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    said = refusal(cert=cert, key=key)
    assert f"tls.cert: '{cert}' is a certificate for clientAuth only" in said
    assert "extendedKeyUsage lacks serverAuth" in said
    # No extendedKeyUsage at all allows every purpose: served as before.
    cert, key = signed_by(tmp_path, ca, "plain", usage=None)
    assert load_settings(tls={"cert": cert, "key": key}).tls is not None


def test_a_client_ca_that_is_no_ca_is_refused(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert, key = issued(tmp_path, ca, "server")
    said = refusal(cert=cert, key=key, client_ca=cert)  # the server's own, by mistake
    assert f"tls.client_ca: '{cert}' holds a certificate that is not a CA's" in said
    assert "CA:FALSE" in said
    bare, _ = signed_by(tmp_path, ca, "bare", usage=None)
    assert "no basicConstraints" in refusal(cert=cert, key=key, client_ca=bare)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings = load_settings(tls={"cert": cert, "key": key, "client_ca": tmp_path / "ca.pem"})
    assert settings.tls is not None and settings.tls.client_ca == tmp_path / "ca.pem"


def config(folder: Path, cert: Path, key: Path) -> Path:
    tokens = folder / "tokens.toml"
    add_principal(tokens, "alice", Role.ADMIN, replace=True)
    path = folder / "sidra.toml"
    path.write_text(
        f'board = "emu://?preset=ideal"\nlisten = "127.0.0.1:0"\n'
        f'[state]\npath = "{folder / "state.sqlite3"}"\n[auth]\ntokens_file = "{tokens}"\n'
        f'[tls]\ncert = "{cert}"\nkey = "{key}"\n'
    )
    return path


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIDRA, "serve", "--config", str(path), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")},
    )  # fmt: skip


def test_a_certificate_expiring_within_30_days_is_warned_of(tmp_path: Path) -> None:
    """--check and a start both say it, with the date; 60 days left is quiet."""
    ends = (NOW + timedelta(days=10)).replace(microsecond=0)
    cert, key = issued(tmp_path, trustme.CA(), "soon", not_after=ends)
    path = config(tmp_path, cert, key)
    checked = check(path)
    assert checked.returncode == 0, checked.stderr
    expected = f"warning: tls.cert: '{cert}' expires at {ends:%Y-%m-%d %H:%M} UTC (in 9 days)"
    assert expected in checked.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    proc = subprocess.Popen([*SIDRA, "serve", "--config", str(path)], stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if re.match(r"serving .* on \S+:\d+ \[", line):
                break
        said = unwrapped("".join(lines))
        assert "WARNING" in said and unwrapped(expected.removeprefix("warning: ")) in said
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert proc.stderr is not None
        proc.stderr.close()
    later, key = issued(tmp_path, trustme.CA(), "later", not_after=NOW + timedelta(days=60))
    quiet = check(config(tmp_path, later, key))
    assert quiet.returncode == 0 and "warning: tls.cert" not in quiet.stdout


def test_check_exits_2_naming_an_expired_certificate(tmp_path: Path) -> None:
    cert, key = issued(tmp_path, trustme.CA(), "old", not_before=NOW - timedelta(days=90),
                       not_after=NOW - timedelta(days=1))  # fmt: skip
    checked = check(config(tmp_path, cert, key))
    assert checked.returncode == 2
    assert f"tls.cert: '{cert}' expired at" in " ".join(checked.stderr.split())
    assert "these settings would start" not in checked.stderr
