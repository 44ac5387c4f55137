"""``sidra serve --check``: the settings checked as a start would check them, without
starting: what an admin runs after editing the configuration and before restarting the
service (as ``nginx -t`` does).

Loading the settings already checks every key, the TLS files (PEM, the key the
certificate's, the certificate valid now and for a server, the client CA a CA) and the
tokens file. This adds what a start would find later, as far as it
can be found without disturbing a service already running: the board URL's scheme and
whether its device is there, the state store (read only: its schema, whether a start
would migrate it, whether SQLite's quick_check finds it damaged, and which server serves
from it now), whose tokens have expired or
expire soon, and whether the ports can be bound now. It does not open the board or hold
the ports or the store: a running service holds them (a port or store in use is noted,
not counted a problem: the service being replaced holds it until it stops).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from sidra.drivers.errors import InvalidArgument
from sidra.drivers.pcie.bar import SYSFS_DEVICES
from sidra.drivers.url import check_board_url, schemes
from sidra.server.address import bind_problem, insecure_exposure, metrics_exposure
from sidra.server.relative_paths import path_text
from sidra.server.security.tokens import expiry_note, read_tokens
from sidra.server.settings import ServerSettings, unread_variables
from sidra.server.state.schema import SCHEMA_VERSION, schema_version, version_problem
from sidra.server.state.serving import store_served_by

__all__ = ["checked_settings"]


def checked_settings(settings: ServerSettings) -> tuple[list[str], list[str]]:
    """What a start with ``settings`` would do, a line each, and the problems that would
    stop it (empty: it would start)."""
    notes: list[str] = [f"warning: {w}" for w in unread_variables()]
    problems: list[str] = []
    board_note, board_problem = _board(settings.board)
    (problems if board_problem else notes).append(board_problem or board_note)
    tls = settings.tls
    transport = "plaintext" if tls is None else "mutual TLS" if tls.client_ca else "TLS"
    notes += [f"warning: {w}" for w in ([] if tls is None else tls.warnings(datetime.now(UTC)))]
    notes.append(f"listen: {settings.listen} ({transport}){_in_use(settings.listen)}")
    insecure = insecure_exposure(settings.listen, tls is not None, settings.auth is not None)
    notes += [f"warning: {w} (allow_insecure)" for w in insecure]
    if settings.auth is None:
        notes.append("auth: none (every call is the local admin's)")
    else:
        entries = read_tokens(settings.auth.tokens_file)  # loading the settings read it whole
        note = expiry_note(list(entries.values()), datetime.now(UTC))
        notes.append(
            f"auth: {len(entries)} principals in {settings.auth.tokens_file}"
            + (f"; tokens {note}" if note else "")
        )
        notes += [f"warning: {w}" for w in settings.auth.warnings()]
    store_note, store_problem = _store(settings.state.path)
    (problems if store_problem else notes).append(store_problem or store_note)
    if settings.metrics.listen is not None:
        metrics = settings.metrics.listen
        notes.append(f"metrics: http://{metrics}/metrics{_in_use(metrics)}")
        exposed = metrics_exposure(metrics)
        if exposed:
            notes.append(f"warning: {exposed}")
    return notes, problems


def _board(url: str) -> tuple[str, str]:
    """A note on the board URL, or the problem that would stop a start: a scheme no
    driver opens, a device path or PCI address that is not there (nothing is opened:
    a running service holds the board)."""
    parts = urlsplit(url)
    if "://" not in url or parts.scheme not in schemes():
        return "", (
            f"board: {url!r} has no scheme SIDRA HIL opens; expected one of "
            + ", ".join(f"{s}://" for s in schemes())
        )
    try:  # its options and shape, as the driver reads them at start (nothing opened)
        check_board_url(url)
    except InvalidArgument as exc:
        return "", f"board: {url}: {exc}"
    missing, checked = "", True
    if parts.scheme == "serial" and parts.netloc + parts.path:
        device = parts.netloc + parts.path
        if not os.path.exists(device):
            missing = (
                f"{device} does not exist (sidra board scan lists the boards on this "
                "machine's serial ports; serial://?serial_number=... finds one wherever "
                "it is)"
            )
    elif parts.scheme == "pcie" and not (SYSFS_DEVICES / parts.netloc).exists():
        missing = f"no PCI device {parts.netloc} (lspci -D lists the addresses)"
    elif parts.scheme == "pcie+file":
        if not Path(parts.path).exists():
            missing = f"{parts.path} does not exist (sidra board serve --pcie-file makes it)"
    elif parts.scheme != "pcie":
        checked = False  # emu://, socket://, serial:// by serial number: nothing to look at
    if missing:
        return "", f"board: {url}: {missing}"
    return f"board: {url} ({'there; ' if checked else ''}opened at start, not now)", ""


def _in_use(address: str) -> str:
    """What a start would meet at ``address`` now, when it could not listen there."""
    problem = bind_problem(address)
    return f"; cannot be bound now: {problem}" if problem else ""


def _store(path: Path) -> tuple[str, str]:
    """A note on the state store at ``path``, or the problem that would stop a start."""
    note, problem = _store_file(path)
    holder = store_served_by(path)
    if holder is not None and not problem:
        # Noted, not a problem, as a port in use: the server being replaced holds it.
        note += f"; in use now by {holder}: a start is refused until that server stops"
    return note, problem


def _store_file(path: Path) -> tuple[str, str]:
    if not path.exists():
        parent = next(p for p in path.parents if p.exists())
        if not parent.is_dir():
            return "", f"state.path: {path} cannot be made: {parent} is a file, not a folder"
        if not os.access(parent, os.W_OK | os.X_OK):
            return "", f"state.path: {path} does not exist and {parent} cannot be written"
        return f"state: {path_text(path, quoted=False)} (made at start)", ""
    try:  # read only: checking must not migrate, lock or write anything
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            version = schema_version(db)
            # Pages and records, not indexes (quick_check): a damaged store started and
            # acknowledged Programs, and only a --restore found the damage.
            found = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.Error as exc:
        return "", f"state.path: {path} cannot be read as a state store ({exc})"
    if found != "ok":
        return "", (
            f"state.path: {path} is damaged ({found}); sidra state check lists what is, "
            "sidra state restore BACKUP puts a backup in its place"
        )
    if version > SCHEMA_VERSION:
        return "", f"state.path: {path}: {version_problem(version)}"
    if version < SCHEMA_VERSION:
        return (
            f"state: {path}, schema {version}: a start migrates it to {SCHEMA_VERSION} "
            "(sidra state backup first keeps a copy an older SIDRA HIL reads)",
            "",
        )
    return f"state: {path}, schema {version}", ""
