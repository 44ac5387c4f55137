"""Where, when and by what a run ran: ``run.json`` beside its record.

A record's settings say how to run it again (``sidra train --like``); its summary says
what it reached. Neither says on which board, when, for how long, from which command or
with which SIDRA HIL: what tells two runs of the same settings apart when their
figures differ (another board, a firmware update, a new release), and what ``sidra runs``
sorts and lists by. Kept in a file of its own so that the settings stay what a run
needs and nothing else.

A run from here writes it when its record is saved (:class:`RunClock`); a job run in a
server gets it when its record is saved on the client (:func:`job_provenance`), from
what the server says of the job and of the machine and software that ran it (a
``run.json`` among the job's record files); the software that saved it is named apart.
Records saved before this file existed have none: readers take the folder's time
instead (``sidra runs``).
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sidra.drivers import Board
from sidra.drivers.host_machine import software

__all__ = [
    "MACHINE_KEYS",
    "RUN_FILE",
    "RunClock",
    "going_on_from",
    "job_provenance",
    "provenance_bytes",
    "read_provenance",
    "utc_text",
]

RUN_FILE = "run.json"
"""The file of a run's record that says where, when and by what it ran."""


def utc_text(unix_s: float) -> str:
    """``unix_s`` as an ISO 8601 date-time in UTC with its offset, to the second."""
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds")


def _command() -> list[str]:
    """The ``sidra`` command line that ran it (as ``sidra``, however it was started:
    its entry point in some environment, ``python -m sidra.cli``)."""
    return ["sidra", *sys.argv[1:]]


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no name
        return ""


@dataclass
class RunClock:
    """A run from here, timed from its creation (before its board is opened) to
    :meth:`provenance`. ``board_url``: the board as the command named it (``--board``),
    or None when it ran over ``server``."""

    board_url: str | None
    server: str | None
    command: list[str] = field(default_factory=_command)
    started_unix_s: float = field(default_factory=time.time)
    board: dict[str, Any] | None = None
    _started_monotonic_s: float = field(default_factory=time.monotonic)

    def on(self, board: Board) -> None:
        """Notes which board the run is on (once it is open)."""
        self.board = board.info.identity()

    def provenance(self) -> dict[str, Any]:
        """What ``run.json`` holds for the run, ended now."""
        return {
            "started_utc": utc_text(self.started_unix_s),
            "ended_utc": utc_text(time.time()),
            "wall_s": round(time.monotonic() - self._started_monotonic_s, 3),
            "where": "here",
            "board_url": self.board_url,
            "server": self.server,
            "board": self.board,
            "host": socket.gethostname(),
            "user": _user(),
            "command": self.command,
        } | software()


MACHINE_KEYS = ("host", "sidra_hil", "commit", "python", "numpy", "blas", "cpu", "cpus")
"""What a server says of the machine and software that ran a job (the ``run.json`` among
the job's record files), kept in the ``run.json`` the client saves as a run from here
keeps its own."""


def job_provenance(
    *,
    server: str,
    job_id: str,
    principal: str,
    submitted_unix_s: float,
    started_unix_s: float,
    ended_unix_s: float,
    board: dict[str, Any] | None,
    ran_on: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``run.json`` holds for a job run inside ``server``: the server's times of the
    job, who submitted it, on which board, and (``ran_on``: the ``run.json`` the server
    keeps with the job's record) the server's host, SIDRA HIL, commit, Python, numpy,
    BLAS and CPU, as a run from here names its own; a server that names none (an earlier
    SIDRA HIL) leaves them out. The host, user, command and software under ``saved_by``
    are those of the client that saved the record."""
    ran = bool(ended_unix_s and started_unix_s)
    machine = {} if ran_on is None else {k: ran_on[k] for k in MACHINE_KEYS if k in ran_on}
    return {
        "started_utc": utc_text(started_unix_s or submitted_unix_s),
        "ended_utc": utc_text(ended_unix_s) if ended_unix_s else None,
        "wall_s": round(ended_unix_s - started_unix_s, 3) if ran else None,
        "where": "job",
        "board_url": None,
        "server": server,
        "board": board,
        "job_id": job_id,
        "principal": principal,
        "submitted_utc": utc_text(submitted_unix_s),
        **machine,
        "saved_by": {
            "host": socket.gethostname(), "user": _user(), "command": _command(),
        } | software(),
    }  # fmt: skip


def going_on_from(earlier: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    """``run.json`` of a run in parts: ``part`` (what the part saving now says of itself)
    with ``parts``, every part in order (a run stopped, then gone on with ``--resume``,
    perhaps on another board or in a server), ``started_utc`` the first's start and
    ``wall_s`` their sum. ``earlier``: the folder's ``run.json`` before this save; when
    its last part is this same part (a comparison saved run by run, a job's record
    fetched again) it is replaced, and a run of one part is ``part`` alone."""
    before = _parts(earlier)
    if before and _same_part(before[-1], part):
        before = before[:-1]
    if not before:
        return part
    parts = [*before, part]
    walls = [p.get("wall_s") for p in parts]
    known = [float(w) for w in walls if isinstance(w, int | float)]
    wall = round(sum(known), 3) if len(known) == len(walls) else None
    started = parts[0].get("started_utc") or part["started_utc"]
    return part | {"started_utc": started, "wall_s": wall, "parts": parts}


def _parts(provenance: dict[str, Any] | None) -> list[dict[str, Any]]:
    if provenance is None:
        return []
    parts = provenance.get("parts")
    if isinstance(parts, list) and all(isinstance(p, dict) for p in parts):
        return parts
    return [provenance]


def _same_part(saved: dict[str, Any], part: dict[str, Any]) -> bool:
    """Whether ``saved`` is ``part`` saved before: the same job, or the same run from here
    (its start to the second on the same host)."""
    if part.get("where") == "job":
        return bool(saved.get("job_id")) and saved.get("job_id") == part.get("job_id")
    keys = ("where", "started_utc", "host", "command")
    return all(saved.get(k) == part.get(k) for k in keys)


def provenance_bytes(provenance: dict[str, Any]) -> bytes:
    """``run.json``'s content."""
    return json.dumps(provenance, indent=2).encode()


def read_provenance(folder: Path) -> dict[str, Any] | None:
    """The ``run.json`` of the record in ``folder``; None when it has none or it cannot be
    read as a JSON object (a record is still a record without it)."""
    try:
        saved = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None
