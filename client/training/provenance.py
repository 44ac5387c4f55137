"""Where, when and by what a run ran: ``run.json`` beside its record.

A record's settings say how to run it again (``sidra train --like``); its summary says
what it reached. Neither says on which board, when, for how long, from which command or
with which SIDRA HIL: what tells two runs of the same settings apart when their
figures differ (another board, a firmware update, a new release), and what ``sidra runs``
sorts and lists by. Kept in a file of its own so that the settings stay what a run
needs and nothing else.

A run from here writes it when its record is saved (:class:`RunClock`); a job run in a
server gets it when its record is saved on the client (:func:`job_provenance`), from
what the server says of the job (the software that saved it is named apart: the
server does not report its own). Records saved before this file existed have none:
readers take the folder's time instead (``sidra runs``).
"""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sidra.drivers import Board
from sidra.drivers.host_machine import cpu_name

__all__ = [
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

PACKAGE = "sidra-hil"


def utc_text(unix_s: float) -> str:
    """``unix_s`` as an ISO 8601 date-time in UTC with its offset, to the second."""
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="seconds")


def _software() -> dict[str, Any]:
    """The code and machine a run's figures came from: a noisy emulated run repeats
    exactly only on the same commit, CPU and BLAS (docs/training-results.md), and a
    record that named none of them could not say why two runs differed."""
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # run from a tree not installed
        version = "unknown"
    return {
        "sidra_hil": version,
        "commit": _commit(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
    }


def _commit() -> str | None:
    """The git commit of the checkout this package runs from (``+changes`` when its
    tracked files differ from it); None for a package installed from a wheel, or no git."""
    source = Path(os.path.realpath(__file__)).parent  # an editable install links here
    try:
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if changed else "") if head else None


def _blas() -> str:
    """numpy's BLAS, named and versioned (``scipy-openblas 0.3.31``): its kernels set the
    last bits of every float32 sum."""
    try:
        found = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (KeyError, TypeError, ValueError):
        return "unknown"
    return f"{found.get('name', 'unknown')} {found.get('version', '')}".strip()


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
        } | _software()


def job_provenance(
    *,
    server: str,
    job_id: str,
    principal: str,
    submitted_unix_s: float,
    started_unix_s: float,
    ended_unix_s: float,
    board: dict[str, Any] | None,
) -> dict[str, Any]:
    """What ``run.json`` holds for a job run inside ``server``: the server's times of the
    job, who submitted it, on which board. The host, user, command and software under
    ``saved_by`` are those of the client that saved the record (the server does not
    report its own)."""
    ran = bool(ended_unix_s and started_unix_s)
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
        "saved_by": {
            "host": socket.gethostname(), "user": _user(), "command": _command(),
        } | _software(),
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
