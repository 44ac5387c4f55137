"""Who counts as "on the server's host" for shared memory (sidra.server.shared_memory)."""

from __future__ import annotations

import pytest

from sidra.server.shared_memory import is_local_peer


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("unix:/run/sidra.sock", True),
        ("unix-abstract:sidra", False),
        ("ipv4:127.0.0.1:50000", True),
        ("ipv4:127.8.9.10:1", True),
        ("ipv6:[::1]:50000", True),
        ("ipv4:10.0.0.7:50000", False),
        ("ipv4:128.0.0.1:50000", False),
        ("ipv6:[::ffff:10.0.0.1]:50000", False),
        ("ipv6:[fe80::1]:50000", False),
        ("", False),
    ],
)
def test_local_peers(peer: str, local: bool) -> None:
    assert is_local_peer(peer) is local
