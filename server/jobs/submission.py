"""A SubmitJob checked whole before anything happens: kind, data set, the lease wait,
the options, the checkpoint it goes on from, and the tiles it needs on this board. A
refused submission raises the typed error naming its field and leaves no trace."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sidra.drivers import BoardInfo, InvalidArgument, OutOfRange, TileUse
from sidra.server.jobs.runner import CHECKPOINT_FILE, JobRunner
from sidra.server.sessions.registry import WAIT_LIMIT_S

__all__ = [
    "DEFAULT_DATASET",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "RESUME_FIELD",
    "Submission",
    "checked_submission",
]

DEFAULT_DATASET = "digits"
"""The data set of a job that names none (as ``sidra train``'s default)."""

RESUME_FIELD = "resume_checkpoint"
"""SubmitJob's field carrying the checkpoint a job goes on from."""

MIN_PRIORITY, MAX_PRIORITY = -10, 10
"""The priorities a job may have (SubmitJob priority; above 0 only an admin's)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """What a checked SubmitJob asks for."""

    kind: str
    options: Any
    """The job's options, parsed by the runner's option model."""
    dataset: str
    tiles: tuple[int, ...]
    """The tiles it leases (every tile with ``whole_board``)."""
    whole_board: bool
    resume: bytes | None
    """The checkpoint it goes on from (None: none)."""
    priority: int = 0
    """Its place in the queue before turns, higher first."""


def checked_submission(
    runner: JobRunner,
    info: BoardInfo,
    kind: str,
    options_json: str,
    dataset: str,
    lease_wait_s: float,
    resume_checkpoint: bytes,
    priority: int = 0,
    use: TileUse | None = None,
) -> Submission:
    """The submission, or InvalidArgument / OutOfRange naming the first field refused.
    ``use``: which tiles others use now (a job given no tiles takes the others first)."""
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise OutOfRange("priority", priority, f"{MIN_PRIORITY} .. {MAX_PRIORITY}")
    if kind not in runner.kinds:
        raise InvalidArgument("kind", kind, f"one of {', '.join(runner.kinds)}")
    dataset = dataset or DEFAULT_DATASET
    if dataset not in runner.datasets:
        raise InvalidArgument(
            "dataset", dataset, f"one of {', '.join(runner.datasets)} (bundled data sets)"
        )
    if not (math.isfinite(lease_wait_s) and 0 <= lease_wait_s <= WAIT_LIMIT_S):
        raise OutOfRange("lease_wait_s", lease_wait_s, f"0 .. {WAIT_LIMIT_S:g} s")
    try:
        options = runner.options(kind, options_json)
    except InvalidArgument:
        raise  # names the option (options_json.steps) already
    except ValueError as exc:
        raise InvalidArgument("options_json", options_json, f"{kind} options: {exc}") from exc
    if resume_checkpoint:
        _check_resume(runner, kind, options, dataset, resume_checkpoint)
    try:
        tiles, whole_board = runner.claim(
            kind, options, dataset, info, use, resume_checkpoint or None
        )
    except ValueError as exc:  # the network does not fit the tiles it may use
        raise InvalidArgument("options_json", options_json, f"{kind} options: {exc}") from exc
    count = info.tile_count
    if any(not 0 <= t < count for t in tiles):
        raise InvalidArgument(
            "options_json", options_json, f"tiles in 0 .. {count - 1} (tile_count); the "
            f"{kind} options name tiles {list(tiles)}",
        )  # fmt: skip
    resume = resume_checkpoint or None
    return Submission(kind, options, dataset, tiles, whole_board, resume, priority)


def _check_resume(
    runner: JobRunner, kind: str, options: Any, dataset: str, checkpoint: bytes
) -> None:
    given = f"{len(checkpoint)} bytes"
    if kind not in runner.resumable:
        kinds = ", ".join(runner.resumable)
        raise InvalidArgument(
            RESUME_FIELD, given, f"empty: a {kind} job keeps no checkpoint to go on from "
            f"(the kinds that do: {kinds})",
        )  # fmt: skip
    try:
        runner.check_resume(kind, options, dataset, checkpoint)
    except ValueError as exc:
        raise InvalidArgument(
            RESUME_FIELD, given,
            f"a {kind} run's {CHECKPOINT_FILE} of these options and data set; {exc}",
        ) from exc  # fmt: skip
