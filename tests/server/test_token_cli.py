"""``sidra token``: a new token is printed once and only its hash is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import run_sidra

from sidra.server.security import Role, add_principal, hash_token, read_tokens


def add(tokens_file: Path, name: str, role: str, *extra: str) -> str:
    result = run_sidra(
        "token", "add", name, "--role", role, "--tokens-file", str(tokens_file), *extra
    )
    assert result.returncode == 0, result.stderr
    assert "shown only this once" in result.stderr
    (token,) = result.stdout.split()
    return token


def test_add_prints_the_token_and_stores_its_hash(tmp_path: Path) -> None:
    tokens_file = tmp_path / "lab" / "tokens.toml"
    token = add(tokens_file, "alice", "programmer")
    assert len(token) >= 43  # 256 random bits
    text = tokens_file.read_text(encoding="utf-8")
    assert token not in text and hash_token(token) in text
    entry = read_tokens(tokens_file)["alice"]
    assert entry.principal.role == Role.PROGRAMMER and entry.token_sha256 == hash_token(token)


def test_add_refuses_an_existing_name_unless_replacing(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    first = add(tokens_file, "bob", "viewer")
    again = run_sidra("token", "add", "bob", "--role", "admin", "--tokens-file", str(tokens_file))
    assert again.returncode == 1 and "'bob' is already in" in again.stderr
    rotated = add(tokens_file, "bob", "operator", "--replace")
    assert rotated != first
    entry = read_tokens(tokens_file)["bob"]
    assert entry.token_sha256 == hash_token(rotated) and entry.principal.role == Role.OPERATOR


def test_add_names_the_roles_allowed(tmp_path: Path) -> None:
    result = run_sidra(
        "token", "add", "eve", "--role", "root", "--tokens-file", str(tmp_path / "t")
    )
    assert result.returncode != 0
    assert "role 'root' is not one of viewer, operator, programmer, admin" in result.stderr


def test_a_tokens_file_that_cannot_be_written_is_named_as_given(tmp_path: Path) -> None:
    """Not as the temporary file beside it that the atomic write makes first."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(OSError, match=f"cannot write the tokens file {blocked}/tokens.toml"):
        add_principal(blocked / "tokens.toml", "eve", Role.VIEWER)


@pytest.mark.parametrize("name", ["local", "has space", "_underscore_first", "x" * 65])
def test_names_must_be_short_printable_identifiers(tmp_path: Path, name: str) -> None:
    """Names appear in logs and history; "local" is the principal of a service without auth."""
    with pytest.raises(ValueError, match="principal: "):
        add_principal(tmp_path / "tokens.toml", name, Role.VIEWER)


def test_list_and_remove(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    add(tokens_file, "carol", "admin")
    add(tokens_file, "dave", "operator")
    listed = run_sidra("token", "list", "--tokens-file", str(tokens_file))
    assert listed.stdout.splitlines() == ["carol\tadmin", "dave\toperator"]
    removed = run_sidra("token", "remove", "dave", "--tokens-file", str(tokens_file))
    assert removed.returncode == 0
    assert set(read_tokens(tokens_file)) == {"carol"}
    missing = run_sidra("token", "remove", "dave", "--tokens-file", str(tokens_file))
    assert missing.returncode == 1 and "'dave' is not in" in missing.stderr
