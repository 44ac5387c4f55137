"""A served ideal board with TLS and tokens as a test asks, and the files that takes.

Everything is real: certificates from a throwaway CA (trustme), tokens files
written by the same code ``sidra token add`` runs, a gRPC server on 127.0.0.1:0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import trustme

from sidra.drivers import open_board
from sidra.server.app import create_server
from sidra.server.security import Role, TokensFile, add_principal, server_credentials

IDEAL_URL = "emu://?preset=ideal&seed=1"


@dataclass(frozen=True)
class Pki:
    """PEM files of a server certificate, a client certificate of the same CA, and a
    client certificate of another CA, each with its key."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    stranger_cert: Path
    stranger_key: Path


def make_pki(folder: Path) -> Pki:
    """Two CAs and three certificates in ``folder``: the lab's CA signs the server's
    (for 127.0.0.1 and localhost) and a client's; another CA signs a stranger's."""
    folder.mkdir(parents=True, exist_ok=True)
    lab, other = trustme.CA(), trustme.CA()
    files = {
        "ca": lab.cert_pem,
        "other_ca": other.cert_pem,
    }
    for name, ca, identity in (
        ("server", lab, "127.0.0.1"),
        ("client", lab, "alice@lab.example"),
        ("stranger", other, "mallory@elsewhere.example"),
    ):
        issued = (
            ca.issue_cert(identity, "localhost") if name == "server" else ca.issue_cert(identity)
        )
        files[f"{name}_cert"] = issued.cert_chain_pems[0]
        files[f"{name}_key"] = issued.private_key_pem
    paths = {}
    for name, blob in files.items():
        paths[name] = folder / f"{name}.pem"
        blob.write_to_path(str(paths[name]))
    return Pki(**paths)


def principals(path: Path, **roles: Role) -> dict[str, str]:
    """A tokens file with the principals named, each of its role; their tokens by name."""
    return {name: add_principal(path, name, role) for name, role in roles.items()}


def tokens_for_every_role(path: Path) -> dict[Role, str]:
    """A tokens file with one principal per role (named after it); the tokens by role."""
    return {role: add_principal(path, role.label, role) for role in Role}


@contextmanager
def served(
    *,
    credentials: grpc.ServerCredentials | None = None,
    tokens_file: Path | None = None,
    reflection: bool = True,
    extra: tuple[grpc.GenericRpcHandler, ...] = (),
) -> Iterator[int]:
    """An ideal board served on 127.0.0.1 as asked; yields the port."""
    with open_board(IDEAL_URL) as board:
        server, port = create_server(
            board,
            "127.0.0.1:0",
            credentials=credentials,
            tokens=TokensFile(tokens_file) if tokens_file else None,
            reflection_enabled=reflection,
        )
        server.add_generic_rpc_handlers(extra)
        server.start()
        try:
            yield port
        finally:
            server.stop(grace=None).wait()


def tls_credentials(pki: Pki, *, mutual: bool) -> grpc.ServerCredentials:
    """The server's credentials: TLS, or mutual TLS requiring a certificate of the lab's CA."""
    return server_credentials(pki.server_cert, pki.server_key, pki.ca if mutual else None)
