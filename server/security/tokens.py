"""Principals and their bearer tokens, kept in a TOML file as SHA-256 digests.

A tokens file names each principal, its role and the SHA-256 of its token, and may
say when the token was made and when it stops working (TOML date-times with their UTC
offset)::

    [principals."alice"]
    role = "programmer"
    token_sha256 = "5e88...42d8"
    created_utc = 2026-12-05T10:00:00+00:00
    expires_utc = 2027-03-05T10:00:00+00:00

The token itself is never stored: ``sidra token add`` prints it once and
writes only its digest. A plain (unsalted, single-round) SHA-256 is enough
because every token is 256 random bits from :func:`secrets.token_urlsafe`;
slow salted hashes defend guessable passwords, which these are not.

:class:`TokensFile` re-reads the file when it changes, so a token added,
rotated or removed takes effect without restarting the service. A file that
stops parsing, or that others than its owner may write, refuses every token until it
is mended (logged): a revoked token must never come back because the file holding
its revocation is broken, and a principal another local user wrote in must not
get in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import tempfile
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sidra.server.security.roles import Role

__all__ = [
    "LOCAL",
    "Principal",
    "TokenEntry",
    "TokensFile",
    "add_principal",
    "expiry_note",
    "hash_token",
    "new_token",
    "read_tokens",
    "remove_principal",
    "tokens_file_problem",
    "tokens_file_warning",
]

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
"""Principal names: what appears in logs and history, so short and printable."""
NAME_ALLOWED = "1-64 of A-Z a-z 0-9 _ . @ -, starting with a letter or digit"

MISSING = (-1, -1, -1, -1)
"""The change stamp of a tokens file that cannot be found."""

TOKEN_BYTES = 32
"""Random bytes per token (256 bits; 43 URL-safe characters)."""

HEADER = """\
# SIDRA HIL tokens file: each principal's role and the SHA-256 of its bearer token.
# Written by `sidra token add` / `sidra token remove`; the tokens themselves are never stored.
"""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a call: a tokens file name (or ``local`` with auth off) and its role."""

    name: str
    role: Role


LOCAL = Principal("local", Role.ADMIN)
"""The principal of every call when the service runs without ``[auth]`` (loopback only)."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One principal of a tokens file and the SHA-256 (hex) of its token."""

    principal: Principal
    token_sha256: str
    created_utc: datetime | None = None
    """When the token was made (None in a file written before SIDRA HIL kept it)."""
    expires_utc: datetime | None = None
    """From when the token is refused (None: it does not expire)."""

    def expired(self, now: datetime) -> bool:
        """Whether the token is refused at ``now`` (an aware datetime)."""
        return self.expires_utc is not None and now >= self.expires_utc


def new_token() -> str:
    """A fresh random bearer token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 of ``token`` as 64 lowercase hex digits: what a tokens file stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def file_mode(path: Path) -> int | None:
    """``path``'s permission bits; None when it cannot be looked at (reading it says
    why). What the checks of secret and trusted files below and in sidra.server.settings
    start from."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


def tokens_file_problem(path: Path) -> str | None:
    """Why the tokens file ``path`` cannot be trusted: others (its group, everyone) may
    write it, so any local user could have added a principal of any role; None when
    only its owner may (or it cannot be looked at: reading it says why)."""
    mode = file_mode(path)
    if mode is None or not mode & 0o022:
        return None
    whom = "everyone" if mode & 0o002 else "its group"
    return (
        f"{path} is writable by {whom} (mode {mode:o}): whoever can write it can add a "
        f"principal of any role, admin included; chmod 600 {path}, and check that it names "
        "only the principals it should (sidra token list)"
    )


def tokens_file_warning(path: Path) -> str | None:
    """A warning when everyone may read the tokens file ``path``; None otherwise. It holds
    only SHA-256 digests of random 256-bit tokens, which give no token back, so this
    is no hole: but it shows every principal's name, role and expiry."""
    mode = file_mode(path)
    if mode is None or not mode & 0o004:
        return None
    return (
        f"{path} is readable by everyone (mode {mode:o}): its token digests give no token "
        f"back, but it shows every principal's name, role and expiry; chmod 600 {path}"
    )


def read_tokens(path: Path) -> dict[str, TokenEntry]:
    """The principals of the tokens file at ``path``, by name.

    Raises ValueError naming the file and the entry at fault (``principals.bob.role:
    role 'boss' is not one of viewer, ...``); OSError when it cannot be read.
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid TOML ({exc})") from None
    unknown = set(document) - {"principals"}
    if unknown:
        raise ValueError(f"{str(path)!r}: unknown key {sorted(unknown)[0]!r}; allowed: principals")
    principals = document.get("principals", {})
    if not isinstance(principals, dict):
        raise ValueError(f"{str(path)!r}: principals must be a table of principals")
    return {name: _entry(path, name, fields) for name, fields in principals.items()}


def _entry(path: Path, name: str, fields: Any) -> TokenEntry:
    where = f"{str(path)!r}: principals.{name}"
    problem = _name_problem(name)
    if problem:
        raise ValueError(f"{where}: {problem}")
    if not isinstance(fields, dict) or not {"role", "token_sha256"} <= set(fields):
        raise ValueError(f"{where}: needs the keys role and token_sha256")
    unknown = set(fields) - {"role", "token_sha256", *_TIMES}
    if unknown:
        raise ValueError(
            f"{where}: unknown key {sorted(unknown)[0]!r}; allowed: role, token_sha256, "
            + ", ".join(_TIMES)
        )
    digest = fields["token_sha256"]
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"{where}.token_sha256: not 64 lowercase hex digits (a SHA-256)")
    try:
        role = Role.from_label(str(fields["role"]))
    except ValueError as exc:
        raise ValueError(f"{where}.role: {exc}") from None
    created, expires = (_time(where, key, fields.get(key)) for key in _TIMES)
    return TokenEntry(Principal(name, role), digest, created, expires)


_TIMES = ("created_utc", "expires_utc")
"""The optional date-times of an entry."""


def _time(where: str, key: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(
            f"{where}.{key}: got {value!r}, expected a TOML date-time with its UTC offset "
            "(2027-03-05T10:00:00+00:00)"
        )
    return value.astimezone(UTC)


def _name_problem(name: str) -> str | None:
    if name == LOCAL.name:
        return f"the name {LOCAL.name!r} is reserved for calls on a service without [auth]"
    if not NAME_PATTERN.fullmatch(name):
        return f"name {name!r} is not {NAME_ALLOWED}"
    return None


def write_tokens(path: Path, entries: Mapping[str, TokenEntry]) -> None:
    """Writes ``entries`` to ``path`` atomically, readable by its owner only.

    A service reading the file meanwhile sees the old or the new file, never half
    of one (the new file is renamed over the old).
    """
    lines = [HEADER]
    for name, entry in sorted(entries.items()):
        # TOML basic strings are JSON strings for the printable ASCII names allow.
        lines.append(f"\n[principals.{json.dumps(name)}]\n")
        lines.append(f"role = {json.dumps(entry.principal.role.label)}\n")
        lines.append(f"token_sha256 = {json.dumps(entry.token_sha256)}\n")
        for key, when in (("created_utc", entry.created_utc), ("expires_utc", entry.expires_utc)):
            if when is not None:  # a TOML offset date-time, bare
                lines.append(f"{key} = {when.astimezone(UTC).isoformat(timespec='seconds')}\n")
    try:  # named as the caller named it, not as the temporary file beside it
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the tokens file {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write("".join(lines))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_principal(
    path: Path,
    name: str,
    role: Role,
    *,
    replace: bool = False,
    valid_for: timedelta | None = None,
    now: datetime | None = None,
) -> str:
    """Adds ``name`` with ``role`` and a new token to the tokens file; returns the token.

    The file is created when missing. An existing name is refused unless
    ``replace`` (which rotates its token and sets its role). ``valid_for``: the token
    is refused from ``now`` (default: the current time) plus that on (None: never).
    """
    problem = _name_problem(name)
    if problem:
        raise ValueError(f"principal: {problem}")
    if valid_for is not None and valid_for <= timedelta(0):
        raise ValueError(f"valid_for: got {valid_for}, expected a positive duration")
    entries = read_tokens(path) if path.exists() else {}
    if name in entries and not replace:
        raise ValueError(f"principal: {name!r} is already in {str(path)!r} (--replace rotates)")
    token = new_token()
    made = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    expires = None if valid_for is None else made + valid_for
    entries[name] = TokenEntry(Principal(name, role), hash_token(token), made, expires)
    write_tokens(path, entries)
    return token


def remove_principal(path: Path, name: str) -> int:
    """Removes ``name`` from the tokens file; its token stops working at once. Returns
    how many principals the file holds now (0: a running server refuses every call)."""
    entries = read_tokens(path)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise ValueError(f"principal: {name!r} is not in {str(path)!r} (it has: {known})")
    del entries[name]
    write_tokens(path, entries)
    return len(entries)


class TokensFile:
    """The principals of a tokens file, re-read whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp = self._stamp_now()
        self._problem: str | None = None
        self._entries: tuple[TokenEntry, ...] = tuple(_trusted_tokens(path).values())
        _log_expiry(self._entries)

    def __len__(self) -> int:
        return len(self._current())

    def entry_for(self, token: str) -> TokenEntry | None:
        """The entry whose token is ``token`` (expired or not); None for an unknown one."""
        digest = hash_token(token)
        found = None
        # Every entry is compared, in constant time each: how long this takes
        # tells nothing about which digest came close.
        for entry in self._current():
            if hmac.compare_digest(digest, entry.token_sha256):
                found = entry
        return found

    def _stamp_now(self) -> tuple[int, int, int, int]:
        try:
            stat = self.path.stat()
        except OSError:
            return MISSING
        # The mode too: a chmod that lets others write the file changes nothing else.
        return stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_mode

    def _current(self) -> tuple[TokenEntry, ...]:
        with self._lock:
            stamp = self._stamp_now()
            if stamp != self._stamp:  # re-read (and log) once per change, not per call
                self._stamp = stamp
                self._entries = self._reread()
            return self._entries

    def no_longer_allowed(self, name: str, needed: Role, now: datetime) -> str | None:
        """Why principal ``name`` may no longer do what needs role ``needed`` (its token
        removed, expired, or its role lowered since), in words; None while it may, and
        while the file cannot be read (a file mid-edit must not fail what it admitted)."""
        entries = [e for e in self._current() if e.principal.name == name]
        if self._problem is not None:
            return None
        if not entries:
            return f"principal {name!r} is no longer in the tokens file"
        live = [e for e in entries if not e.expired(now)]
        if not live:
            return f"the token of {name!r} has expired"
        best = max(e.principal.role for e in live)
        if best < needed:
            return f"{name!r} has role {best.label} now, and this needs {needed.label} or above"
        return None

    @property
    def problem(self) -> str | None:
        """Why the tokens file cannot be read now (every token is refused meanwhile);
        None while it can."""
        self._current()
        return self._problem

    def _reread(self) -> tuple[TokenEntry, ...]:
        try:
            entries = tuple(_trusted_tokens(self.path).values())
        except (OSError, ValueError) as exc:
            log.error("tokens file unusable, every token refused until it is mended: %s", exc)
            self._problem = str(exc)
            return ()
        self._problem = None
        if entries:
            log.info("tokens file %s re-read: %d principals", self.path, len(entries))
        else:  # as a start refuses it; a removed token must not come back meanwhile
            log.error(
                "tokens file %s re-read: it names no principal now, so every call that "
                "needs a token is refused until one is added (sidra token add NAME --role "
                "ROLE --tokens-file %s)",
                self.path,
                self.path,
            )
        readable = tokens_file_warning(self.path)
        if readable:
            log.warning("tokens file %s", readable)
        _log_expiry(entries)
        return entries


def _trusted_tokens(path: Path) -> dict[str, TokenEntry]:
    """:func:`read_tokens`, refusing (ValueError) a file others may write: what it says
    cannot be told from what another local user wrote into it."""
    problem = tokens_file_problem(path)
    if problem:
        raise ValueError(problem)
    return read_tokens(path)


EXPIRY_WARNING = timedelta(days=14)
"""How long before its token expires a principal is named in the service's log."""


def expiry_note(entries: Sequence[TokenEntry], now: datetime) -> str:
    """Whose tokens have expired and whose expire within :data:`EXPIRY_WARNING` of
    ``now`` (and when), in a line; "" when none."""
    expired = sorted(e.principal.name for e in entries if e.expired(now))
    soon = sorted(
        (e.expires_utc, e.principal.name)
        for e in entries
        if e.expires_utc is not None and not e.expired(now) and e.expires_utc - now < EXPIRY_WARNING
    )
    parts = []
    if expired:
        parts.append(f"expired: {', '.join(expired)}")
    if soon:
        parts.append(
            f"expiring within {EXPIRY_WARNING.days} days: "
            + ", ".join(f"{name} ({when:%Y-%m-%d %H:%M} UTC)" for when, name in soon)
        )
    return "; ".join(parts)


def _log_expiry(entries: Sequence[TokenEntry]) -> None:
    note = expiry_note(entries, datetime.now(UTC))
    if note:  # refused calls name it too; this tells the admin before anyone calls
        log.warning("tokens %s (sidra token add NAME --replace gives a new one)", note)
