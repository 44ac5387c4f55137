"""``sidra token``: a new token is printed once and only its hash is stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import run_sidra, unwrapped

from sidra.server.security import Role, TokensFile, add_principal, hash_token, read_tokens
from sidra.server.security.tokens import expiry_note


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
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert [row[:2] for row in rows] == [["carol", "admin"], ["dave", "operator"]]
    assert all(row[2].startswith("made 20") and row[3] == "expires never" for row in rows)
    removed = run_sidra("token", "remove", "dave", "--tokens-file", str(tokens_file))
    assert removed.returncode == 0
    assert set(read_tokens(tokens_file)) == {"carol"}
    assert "warning" not in removed.stderr
    missing = run_sidra("token", "remove", "dave", "--tokens-file", str(tokens_file))
    assert missing.returncode == 1 and "'dave' is not in" in missing.stderr
    # The last one: a server on this file now refuses everyone, which the admin is told.
    last = run_sidra("token", "remove", "carol", "--tokens-file", str(tokens_file))
    assert last.returncode == 0 and read_tokens(tokens_file) == {}
    said = " ".join(last.stderr.split())
    assert f"warning: {tokens_file} names no principal now" in said
    assert "refuses every call that needs a token" in said


def test_a_token_may_expire_and_the_list_says_when(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    add(tokens_file, "student", "operator", "--expires-in-days", "30")
    add_principal(tokens_file, "visitor", Role.VIEWER, valid_for=timedelta(hours=1),
                  now=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    entry = read_tokens(tokens_file)["student"]
    assert entry.created_utc is not None and entry.expires_utc is not None
    assert entry.expires_utc - entry.created_utc == timedelta(days=30)
    text = run_sidra("token", "list", "--tokens-file", str(tokens_file)).stdout
    student, visitor = text.splitlines()
    assert "(in 30.0 days)" in student or "(in 29.9 days)" in student
    assert visitor.split("\t")[3].startswith("EXPIRED ")
    listed = json.loads(run_sidra("token", "list", "--tokens-file", str(tokens_file),
                                  "--json").stdout)  # fmt: skip
    assert [(p["principal"], p["expired"]) for p in listed] == [
        ("student", False),
        ("visitor", True),
    ]
    for days in ("0", "-1", "nan", "40000"):
        refused = run_sidra("token", "add", "x", "--role", "viewer", "--tokens-file",
                            str(tokens_file), "--expires-in-days", days)  # fmt: skip
        assert refused.returncode == 2 and "--expires-in-days" in refused.stderr, days
    assert set(read_tokens(tokens_file)) == {"student", "visitor"}  # nothing added


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("expires_utc = 2027-03-05T10:00:00", "principals.a.expires_utc: got"),
        ('expires_utc = "2027-03-05"', "expected a TOML date-time with its UTC offset"),
        ("created_utc = 2027-03-05", "principals.a.created_utc: got"),
        ("colour = 1", "unknown key 'colour'"),
    ],
)
def test_a_token_date_without_its_offset_or_an_unknown_key_is_refused(
    tmp_path: Path, line: str, problem: str
) -> None:
    tokens_file = tmp_path / "tokens.toml"
    tokens_file.write_text(
        f'[principals."a"]\nrole = "viewer"\ntoken_sha256 = "{"0" * 64}"\n{line}\n'
    )
    with pytest.raises(ValueError, match=problem):
        read_tokens(tokens_file)


def test_a_file_written_before_tokens_had_dates_reads_as_never_expiring(tmp_path: Path) -> None:
    tokens_file = tmp_path / "tokens.toml"
    tokens_file.write_text(f'[principals."old"]\nrole = "admin"\ntoken_sha256 = "{"a" * 64}"\n')
    entry = read_tokens(tokens_file)["old"]
    assert entry.created_utc is None and entry.expires_utc is None
    assert not entry.expired(datetime.now(UTC))


def test_the_service_log_names_expired_tokens_and_those_about_to_expire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokens_file = tmp_path / "tokens.toml"
    now = datetime.now(UTC)
    add_principal(tokens_file, "lasting", Role.ADMIN)
    add_principal(tokens_file, "far", Role.VIEWER, valid_for=timedelta(days=60))
    caplog.set_level("WARNING", logger="sidra.server.security.tokens")
    TokensFile(tokens_file)
    assert not caplog.records  # nothing to say
    add_principal(tokens_file, "visitor", Role.VIEWER, valid_for=timedelta(hours=1),
                  now=now - timedelta(days=1))  # fmt: skip
    add_principal(tokens_file, "student", Role.OPERATOR, valid_for=timedelta(days=3), now=now)
    TokensFile(tokens_file)
    (warning,) = [r.getMessage() for r in caplog.records]
    when = (now.replace(microsecond=0) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M")
    assert warning == (
        f"tokens expired: visitor; expiring within 14 days: student ({when} UTC) "
        "(sidra token add NAME --replace gives a new one)"
    )
    assert expiry_note(list(read_tokens(tokens_file).values()), now + timedelta(days=90)) == (
        "expired: far, student, visitor"
    )


def test_the_tokens_file_is_the_one_the_servers_settings_name(tmp_path: Path) -> None:
    """Without --tokens-file: SIDRA_AUTH__TOKENS_FILE, else [auth] tokens_file of --config
    (or SIDRA_CONFIG), as sidra serve finds it; with none of them, said so."""
    tokens_file = tmp_path / "tokens.toml"
    config = tmp_path / "serve.toml"
    config.write_text(f'[auth]\ntokens_file = "{tokens_file}"\n')
    made = run_sidra("token", "add", "alice", "--role", "viewer", "--config", str(config))
    assert made.returncode == 0, made.stderr
    assert f"added to {tokens_file}" in made.stderr and "alice" in read_tokens(tokens_file)

    by_file = run_sidra("token", "list", "--json", env={"SIDRA_CONFIG": str(config)})
    assert [p["principal"] for p in json.loads(by_file.stdout)] == ["alice"]
    other = tmp_path / "other.toml"
    add(other, "bob", "viewer")
    by_variable = run_sidra(
        "token", "list", "--json",
        env={"SIDRA_CONFIG": str(config), "SIDRA_AUTH__TOKENS_FILE": str(other)},
    )  # fmt: skip
    assert [p["principal"] for p in json.loads(by_variable.stdout)] == ["bob"]
    gone = run_sidra("token", "remove", "alice", "--config", str(config))
    assert gone.returncode == 0, gone.stderr
    assert "alice" not in read_tokens(tokens_file)

    unnamed = tmp_path / "no-auth.toml"
    unnamed.write_text('listen = "127.0.0.1:0"\n')
    refused = run_sidra("token", "list", "--config", str(unnamed))
    assert refused.returncode == 2
    assert "--tokens-file:notgiven,andnosettingnamesone" in unwrapped(refused.stderr)
