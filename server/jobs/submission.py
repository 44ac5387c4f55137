"""A SubmitJob checked whole before anything happens: kind, data set (a bundled one's
name, or a file sent with the job or kept on the server), the lease wait, the options,
the checkpoint it goes on from, and the tiles it needs on this board. A refused
submission raises the typed error naming its field and leaves no trace."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sidra.drivers import BoardInfo, InvalidArgument, OutOfRange, TileUse
from sidra.server.jobs.runner import CHECKPOINT_FILE, HeldDataset, JobRunner
from sidra.server.sessions.registry import WAIT_LIMIT_S

__all__ = [
    "DATASET_FILE_FIELD",
    "DEFAULT_DATASET",
    "MAX_DATASET_NAME",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "RESUME_FIELD",
    "Submission",
    "check_dataset_file",
    "checked_submission",
]

DEFAULT_DATASET = "digits"
"""The data set of a job that names none (as ``sidra train``'s default)."""

DATASET_FILE_FIELD = "dataset_file"
"""SubmitJob's field carrying a data set file's content (its name in ``dataset``)."""

MAX_DATASET_NAME = 255
"""The longest data set file name, characters (as most file systems allow)."""

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
    dataset_file: HeldDataset | None = None
    """The data set file ``dataset`` names, hashed once here (None: a bundled set)."""


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
    dataset_file: bytes | HeldDataset = b"",
) -> Submission:
    """The submission, or InvalidArgument / OutOfRange naming the first field refused.
    ``use``: which tiles others use now (a job given no tiles takes the others first).
    ``dataset_file``: the content of the file ``dataset`` names (empty: ``dataset`` is a
    bundled data set; a HeldDataset when its digest is known already)."""
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise OutOfRange("priority", priority, f"{MIN_PRIORITY} .. {MAX_PRIORITY}")
    if kind not in runner.kinds:
        raise InvalidArgument("kind", kind, f"one of {', '.join(runner.kinds)}")
    if isinstance(dataset_file, HeldDataset):
        data: HeldDataset | None = dataset_file
    else:
        data = HeldDataset(dataset_file) if dataset_file else None
    if data is not None:
        check_dataset_file(runner, dataset, data)
    else:
        dataset = dataset or DEFAULT_DATASET
        if dataset not in runner.datasets:
            raise InvalidArgument(
                "dataset", dataset, f"one of {', '.join(runner.datasets)} (bundled data sets), "
                f"or a file's name ({_suffixes(runner)}) with its content in {DATASET_FILE_FIELD}",
            )  # fmt: skip
    if not math.isfinite(lease_wait_s):  # as AcquireLease's wait_s: no number at all
        raise InvalidArgument("lease_wait_s", lease_wait_s, f"0 .. {WAIT_LIMIT_S:g} s")
    if not 0 <= lease_wait_s <= WAIT_LIMIT_S:
        raise OutOfRange("lease_wait_s", lease_wait_s, f"0 .. {WAIT_LIMIT_S:g} s")
    try:
        options = runner.options(kind, options_json)
    except InvalidArgument:
        raise  # names the option (options_json.steps) already
    except ValueError as exc:
        raise InvalidArgument("options_json", options_json, f"{kind} options: {exc}") from exc
    if resume_checkpoint:
        _check_resume(
            runner,
            kind,
            options,
            dataset,
            resume_checkpoint,
            None if data is None else data.content,
        )
    try:
        tiles, whole_board = runner.claim(
            kind, options, dataset, info, use, resume_checkpoint or None, data
        )
    except InvalidArgument:
        raise  # names its field already (a tune job's data set that its model does not take)
    except ValueError as exc:  # the network does not fit the tiles it may use
        raise InvalidArgument("options_json", options_json, f"{kind} options: {exc}") from exc
    count = info.tile_count
    if any(not 0 <= t < count for t in tiles):
        raise InvalidArgument(
            "options_json", options_json, f"tiles in 0 .. {count - 1} (tile_count); the "
            f"{kind} options name tiles {list(tiles)}",
        )  # fmt: skip
    resume = resume_checkpoint or None
    return Submission(kind, options, dataset, tiles, whole_board, resume, priority, data)


def _suffixes(runner: JobRunner) -> str:
    return " or ".join(runner.dataset_files)


def check_dataset_file(
    runner: JobRunner,
    name: str,
    content: HeldDataset | None = None,
    fields: tuple[str, str] = ("dataset", DATASET_FILE_FIELD),
) -> None:
    """InvalidArgument naming ``fields[0]`` when ``name`` is not a plain file name of a
    data set file, or ``fields[1]`` when ``content`` (None: the name alone is checked)
    cannot be read as one."""
    name_field, content_field = fields
    plain = PurePosixPath(name).name == name and "\\" not in name
    printable = not any(unicodedata.category(c) in ("Cc", "Cf") for c in name)
    if not (plain and printable and 0 < len(name) <= MAX_DATASET_NAME):
        raise InvalidArgument(
            name_field, name, f"the sent file's name without its folder (up to "
            f"{MAX_DATASET_NAME} characters, ending in {_suffixes(runner)})",
        )  # fmt: skip
    if PurePosixPath(name).suffix.lower() not in runner.dataset_files:
        raise InvalidArgument(
            name_field, name, f"the sent file's name, ending in {_suffixes(runner)} (the "
            "file types a data set is read from)",
        )  # fmt: skip
    if content is None:
        return
    try:
        runner.check_dataset(name, content)
    except ValueError as exc:
        raise InvalidArgument(
            content_field, f"{len(content.content)} bytes", f"a data set file as training reads "
            f"it: {str(exc).removeprefix('dataset: ')}",
        ) from exc  # fmt: skip


def _check_resume(
    runner: JobRunner,
    kind: str,
    options: Any,
    dataset: str,
    checkpoint: bytes,
    dataset_file: bytes | None = None,
) -> None:
    given = f"{len(checkpoint)} bytes"
    if kind not in runner.resumable:
        kinds = ", ".join(runner.resumable)
        raise InvalidArgument(
            RESUME_FIELD, given, f"empty: a {kind} job keeps no checkpoint to go on from "
            f"(the kinds that do: {kinds})",
        )  # fmt: skip
    try:
        runner.check_resume(kind, options, dataset, checkpoint, dataset_file)
    except ValueError as exc:
        raise InvalidArgument(
            RESUME_FIELD, given,
            f"a {kind} run's {CHECKPOINT_FILE} of these options and data set; {exc}",
        ) from exc  # fmt: skip
