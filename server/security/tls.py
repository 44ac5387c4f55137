"""Server TLS credentials from PEM files: TLS, or mutual TLS with a client CA."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from sidra.server.relative_paths import path_text

__all__ = ["key_pair_problem", "pem_problem", "server_credentials"]


def pem_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` cannot serve as a PEM ``kind`` ("CERTIFICATE", "PRIVATE KEY"); None if it can.

    gRPC reports a bad file only when the first client connects, with a message
    naming neither the file nor the setting; checking here lets start-up name both.
    """
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return f"file not found {path_text(path)}"
    except OSError as exc:
        return f"cannot read {str(path)!r} ({exc.strerror})"
    if b"-----BEGIN " not in text or kind.encode() not in text:
        return f"{str(path)!r} holds no PEM {kind.lower()}"
    return None


def key_pair_problem(cert: Path, key: Path) -> str | None:
    """Why ``key`` cannot serve ``cert`` (not its key, encrypted, unreadable); None if it can.

    gRPC's own message for a mismatch is "failed to bind", which sends people
    looking at the address instead of the files.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        return f"{str(key)!r} is not the private key of {str(cert)!r} ({exc.reason})"
    except OSError as exc:
        return f"cannot load {str(key)!r} with {str(cert)!r} ({exc})"
    return None


def server_credentials(cert: Path, key: Path, client_ca: Path | None) -> grpc.ServerCredentials:
    """TLS credentials of the server: its certificate chain and key.

    With ``client_ca`` every client must present a certificate signed by that CA
    (mutual TLS); the handshake fails for any other, before any RPC runs.
    """
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )
