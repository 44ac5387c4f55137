"""Model files as commands take them: the MODEL argument, a file or a run's record folder
read and checked once. Light on purpose: ``sidra model show`` needs nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from sidra.training.model import MODEL_FILE, ModelFileError, TrainedModel

if TYPE_CHECKING:
    from sidra.client.deployments import Deployment

__all__ = ["ModelPath", "OptionalModelPath", "Target", "file_target", "model_file", "parsed_model"]

ModelPath = Annotated[
    Path,
    typer.Argument(
        help="A model file: model.npz in a training run's record (sidra train spsa, "
        "last-layer, mlp, pat, ff, eqprop; sidra jobs show --out), or the record's folder; "
        "or the --out of sidra model import or tune.",
        show_default=False,
    ),
]
OptionalModelPath = Annotated[
    Path | None,
    typer.Argument(
        help="A model file: model.npz in a training run's record (sidra train spsa, "
        "last-layer, mlp, pat, ff, eqprop; sidra jobs show --out), or the record's folder; "
        "or the --out of sidra model import or tune; none with --deployment.",
        show_default=False,
    ),
]


class Target(NamedTuple):
    """The model a command runs: from a file, or a server's deployment."""

    model: TrainedModel
    label: str
    """The file, or ``deployment NAME``, as reports name it."""
    data: bytes
    """The model file's bytes."""
    deployment: Deployment | None


def file_target(path: Path) -> Target:
    """The model file at ``path`` (a run's record folder: its model.npz), read and checked
    once; a usage error naming MODEL."""
    path = model_file(path)
    data = _read(path)
    return Target(parsed_model(data, str(path), "MODEL"), str(path), data, None)


def model_file(path: Path) -> Path:
    """``path``, or the model file a training run's record folder ``path`` keeps: the
    folder ``sidra train`` prints and ``sidra runs list`` lists names its model too."""
    if not path.is_dir():
        return path
    inside = path / MODEL_FILE
    if inside.is_file():
        return inside
    raise typer.BadParameter(
        f"{path} is a folder without a model file ({MODEL_FILE}): give a training run's "
        f"record (sidra runs list) or the {MODEL_FILE} in one",
        param_hint="MODEL",
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"{path}: {exc.strerror or exc}", param_hint="MODEL") from exc


def parsed_model(data: bytes, source: str, hint: str) -> TrainedModel:
    try:
        return TrainedModel.from_bytes(data, source)
    except ModelFileError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
