"""The client's TLS files checked before connecting: each PEM of the kind its field
names, and the client key the one of the client certificate.

gRPC takes any bytes and fails only in the handshake, after the whole wait, with the
same words for a CA file that holds a key, a certificate given as the key and a key of
another certificate; read here, each is an InvalidArgument naming its field at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from sidra.drivers import InvalidArgument

__all__ = ["checked_tls_files"]

PathLike = str | os.PathLike[str]


def checked_tls_files(
    root_ca: PathLike | None, cert: PathLike | None, key: PathLike | None
) -> tuple[bytes | None, bytes | None, bytes | None]:
    """The PEM bytes of the CA, the client certificate and its key (None where not
    given), each checked as above; InvalidArgument naming the field at fault."""
    ca_pem = _read("tls.root_ca", root_ca)
    if ca_pem is not None:
        _certificates("tls.root_ca", root_ca, ca_pem, "a PEM file of CA certificate(s)")
    cert_pem, key_pem = _read("tls.cert", cert), _read("tls.key", key)
    if cert_pem is not None and key_pem is not None:
        (leaf, *_) = _certificates("tls.cert", cert, cert_pem, "a PEM client certificate")
        private = _private_key(key, key_pem)
        if leaf.public_key().public_bytes(*_SPKI) != private.public_key().public_bytes(*_SPKI):
            raise InvalidArgument(
                "tls.key", str(key), f"the private key of {str(cert)!r} (this key is another's)"
            )
    return ca_pem, cert_pem, key_pem


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(field: str, path: PathLike | None) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()  # a str too: a notebook's habit
    except OSError as exc:
        raise InvalidArgument(field, str(path), f"a readable PEM file ({exc.strerror})") from exc


def _certificates(
    field: str, path: PathLike | None, pem: bytes, allowed: str
) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidArgument(field, f"{path} ({_holds(pem)})", allowed) from None


def _private_key(path: PathLike | None, pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except TypeError:  # a password: gRPC has no way to ask for one
        raise InvalidArgument(
            "tls.key", f"{path} (encrypted)", "an unencrypted PEM private key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidArgument(
            "tls.key", f"{path} ({_holds(pem)})", "a PEM private key (BEGIN PRIVATE KEY)"
        ) from None


def _holds(pem: bytes) -> str:
    """What a PEM file that is not of its field's kind holds, in a few words."""
    if b"PRIVATE KEY-----" in pem:
        return "a private key"
    if b"BEGIN CERTIFICATE" in pem:
        return "a certificate"
    if b"-----BEGIN " in pem:
        return "PEM of another kind"
    return "no PEM data"
