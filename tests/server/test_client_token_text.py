"""The bearer token a client sends: surrounding whitespace dropped (a token read with
``Path(f).read_text()`` or set with a trailing newline got "Invalid metadata" from gRPC
at the first call), any other character metadata cannot carry refused before any call,
with an error that describes the token without showing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from security_support import served

from sidra.client import InvalidArgument, connect
from sidra.client.aio import connect as aio_connect
from sidra.server.security import Role, add_principal


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.delenv("SIDRA_TOKEN", raising=False)
    tokens = tmp_path / "tokens.toml"
    token = add_principal(tokens, "alice", Role.VIEWER)
    (tmp_path / "alice.token").write_text(token + "\n")  # as `echo $TOKEN > file` leaves it
    return tokens, token


def test_a_token_read_from_a_file_with_its_newline_works(
    tmp_path: Path, token_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens, _ = token_file
    read = (tmp_path / "alice.token").read_text()
    with served(tokens_file=tokens) as port:
        with connect(f"127.0.0.1:{port}", token=read) as board:
            assert board.caller().principal == "alice"
        monkeypatch.setenv("SIDRA_TOKEN", f"  {read}\r\n")
        with connect(f"127.0.0.1:{port}") as board:
            assert board.caller().principal == "alice"


async def _aio_whoami(port: int, token: str) -> str:
    async with await aio_connect(f"127.0.0.1:{port}", token=token) as board:
        return (await board.caller()).principal


def test_the_asyncio_client_strips_it_too(tmp_path: Path, token_file: tuple[Path, str]) -> None:
    import asyncio

    tokens, _ = token_file
    with served(tokens_file=tokens) as port:
        assert asyncio.run(_aio_whoami(port, (tmp_path / "alice.token").read_text())) == "alice"


@pytest.mark.parametrize(
    ("inside", "named"),
    [
        (" ", "a space"),
        ("\n", "whitespace (U+000A)"),
        ("\x07", "U+0007"),
        ("é", "U+00E9 (not ASCII)"),
    ],
    ids=["space", "newline", "bell", "accent"],
)
def test_a_character_metadata_cannot_carry_is_refused_before_any_call(
    token_file: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, inside: str, named: str
) -> None:
    _, token = token_file
    bad = token[:10] + inside + token[10:]
    # Nothing listens on port 9 here: the refusal comes before any connection.
    with pytest.raises(InvalidArgument) as refused:
        connect("127.0.0.1:9", token=bad, wait_ready_s=None)
    said = str(refused.value)
    assert refused.value.field == "token" and "printable ASCII without spaces" in said
    assert f"with {named} at position 11" in said
    assert token[:10] not in said and token[10:] not in said  # the token is never shown
    monkeypatch.setenv("SIDRA_TOKEN", bad)
    with pytest.raises(InvalidArgument, match="from SIDRA_TOKEN"):
        connect("127.0.0.1:9", wait_ready_s=None)
