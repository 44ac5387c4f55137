"""A tokens file others may write is refused: at start and by ``--check`` (a configuration
error naming ``auth.tokens_file``, the mode and the chmod that mends it), and while
serving, where it refuses every token as a broken file does until it is mended. One
everyone may read is only warned of: it holds digests, not tokens. One emptied while
serving refuses everyone, said at ERROR."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import grpc
import pytest
from security_support import served

from sidra.server.security import Role, add_principal, remove_principal
from sidra.server.servicer import SERVICE_NAME
from sidra.server.settings import ConfigError, load_settings
from tests.cli_support import SIDRA

INFO = f"/{SERVICE_NAME}/GetBoardInfo"


@pytest.fixture(autouse=True)
def no_sidra_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SIDRA_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("mode", "whom"), [(0o666, "everyone"), (0o620, "its group")], ids=["666", "620"]
)
def test_a_tokens_file_others_may_write_is_refused_at_start(
    tmp_path: Path, mode: int, whom: str
) -> None:
    tokens = tmp_path / "tokens.toml"
    add_principal(tokens, "alice", Role.ADMIN)
    tokens.chmod(mode)
    with pytest.raises(ConfigError) as refused:
        load_settings(auth={"tokens_file": tokens})
    said = str(refused.value)
    assert f"auth.tokens_file: {tokens} is writable by {whom} (mode {mode:o})" in said
    assert f"chmod 600 {tokens}" in said and "admin included" in said


def check(tmp_path: Path, tokens: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "sidra.toml"
    path.write_text(
        f'board = "emu://?preset=ideal"\nlisten = "127.0.0.1:0"\n[state]\n'
        f'path = "{tmp_path / "state.sqlite3"}"\n[auth]\ntokens_file = "{tokens}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDRA_")}
    return subprocess.run(
        [*SIDRA, "serve", "--config", str(path), "--check"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


def test_check_refuses_a_writable_file_and_warns_of_a_readable_one(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    add_principal(tokens, "alice", Role.ADMIN)
    tokens.chmod(0o644)
    readable = check(tmp_path, tokens)
    assert readable.returncode == 0, readable.stderr
    assert f"warning: auth.tokens_file: {tokens} is readable by everyone (mode 644)" in (
        readable.stdout
    )
    assert "give no token back" in readable.stdout
    tokens.chmod(0o646)
    writable = check(tmp_path, tokens)
    assert writable.returncode == 2
    assert "is writable by everyone (mode 646)" in " ".join(writable.stderr.split())
    tokens.chmod(0o600)
    assert "warning: auth.tokens_file" not in check(tmp_path, tokens).stdout


def test_a_file_made_writable_while_serving_refuses_every_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A chmod changes neither the file's time nor its size: it is noticed all the same,
    every token refused and the reason logged at ERROR; chmod 600 lets them in again."""
    tokens = tmp_path / "tokens.toml"
    token = add_principal(tokens, "alice", Role.VIEWER)
    metadata = (("authorization", f"Bearer {token}"),)
    with served(tokens_file=tokens) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        ch.unary_unary(INFO)(b"", timeout=10, metadata=metadata)
        tokens.chmod(0o666)
        with caplog.at_level(logging.ERROR), pytest.raises(grpc.RpcError) as refused:
            ch.unary_unary(INFO)(b"", timeout=10, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "its tokens file is unusable" in (refused.value.details() or "")
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any(f"{tokens} is writable by everyone (mode 666)" in e for e in errors), errors
        tokens.chmod(0o600)
        ch.unary_unary(INFO)(b"", timeout=10, metadata=metadata)


def test_a_file_emptied_while_serving_refuses_everyone_and_says_so_at_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A start refuses a file that names no principal; a running server that sees its last
    principal removed refuses every call (a removed token must not come back) and logs it
    at ERROR, not as a routine "re-read: 0 principals"."""
    tokens = tmp_path / "tokens.toml"
    token = add_principal(tokens, "alice", Role.VIEWER)
    metadata = (("authorization", f"Bearer {token}"),)
    with served(tokens_file=tokens) as port, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        ch.unary_unary(INFO)(b"", timeout=10, metadata=metadata)
        remove_principal(tokens, "alice")
        with caplog.at_level(logging.INFO), pytest.raises(grpc.RpcError) as refused:
            ch.unary_unary(INFO)(b"", timeout=10, metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "names no principal now, so every call that needs a token is refused" in e for e in errors
    ), caplog.text
