"""``sidra model list|pull|undeploy``, and the parts of ``sidra model deploy --name`` and
``eval|predict --deployment`` that talk to a server's DeploymentService: models kept on
a served board under a name (deployments.proto)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import typer

from sidra.cli.model_served import remote
from sidra.cli.texts import tiles_text, when_text
from sidra.client.deployments import DeployedRegion, Deployment
from sidra.drivers import (
    Board,
    FailedPrecondition,
    Region,
)
from sidra.training.deployment import DeployedModel
from sidra.training.model import MODEL_FILE, ModelFileError, TrainedModel

__all__ = [
    "Target",
    "check_registration",
    "describe",
    "file_target",
    "leased",
    "register",
    "target_of",
]


class Target(NamedTuple):
    """The model a command runs: from a file, or a server's deployment."""

    model: TrainedModel
    label: str
    """The file, or ``deployment NAME``, as reports name it."""
    data: bytes
    """The model file's bytes."""
    deployment: Deployment | None


def check_registration(
    board: Board, name: str, target: Target, tiles: Sequence[int], replace: bool, protect: bool
) -> list[tuple[int, Region]]:
    """Before anything is programmed: the server would register ``target`` deployed
    with ``tiles`` under ``name`` (the name free, or the caller's to replace; the regions
    inside their tiles), so that a refusal leaves the board unwritten. Returns the
    regions it will take."""
    planned = DeployedModel.planned_regions(target.model, board, tiles)
    remote(board, "'--name'").deployments.add(
        name, target.data, planned, description=describe(target),
        replace=replace, validate_only=True, protect=protect,
    )  # fmt: skip
    return planned


@contextmanager
def leased(board: Board, name: str, regions: Sequence[tuple[int, Region]]) -> Iterator[None]:
    """The tiles of ``regions`` leased to a session of this command while it programs
    and registers deployment ``name``: no other session writes them between the
    Programs and the registration, whose digests are then of this model's targets. A
    tile another session holds refuses the command at once, naming the holder."""
    server = remote(board, "'--name'")
    tiles = sorted({tile for tile, _ in regions})
    with server.session(label=f"sidra model deploy {name}") as session, session.lease(tiles):
        yield


def describe(target: Target) -> str:
    """A deployment's description: what the model is, how well it did when trained, and
    the file it came from (its folder and name: a run's record is a folder)."""
    model = target.model
    accuracy = model.trained.get("test_accuracy")
    score = f", {100 * accuracy:.2f} % test accuracy" if isinstance(accuracy, float) else ""
    source = "/".join(Path(target.label).parts[-2:])
    return f"{model.job} on {model.inputs.dataset}{score}, from {source}"[:1024]


def register(
    board: Board, name: str, target: Target, deployed: DeployedModel, replace: bool,
    protect: bool,
) -> Deployment:  # fmt: skip
    """Registers ``deployed`` (programmed just now) under ``name`` on the server."""
    return remote(board, "'--name'").deployments.add(
        name, target.data, deployed.regions(),
        description=describe(target), replace=replace,
        protect=protect,
    )  # fmt: skip


def file_target(path: Path) -> Target:
    """The model file at ``path`` (a run's record folder: its model.npz), read and checked
    once; a usage error naming MODEL."""
    path = model_file(path)
    data = _read(path)
    return Target(_parsed(data, str(path), "MODEL"), str(path), data, None)


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


def target_of(board: Board, file: Target | None, name: str | None) -> Target:
    """The model a command runs: ``file`` (read before any board was opened), or
    deployment ``name`` of the server ``board`` (its model fetched, or checked to be
    ``file``); a deployment whose tiles were written since it was registered is refused."""
    if name is None:
        if file is None:
            raise typer.BadParameter("give a MODEL file, or --deployment NAME with --server")
        return file
    found = remote(board, "'--deployment'").deployments.get(name, include_model=file is None)
    if not found.intact:
        changed = "; ".join(_rewritten(r) for r in found.regions if not r.intact)
        raise FailedPrecondition(
            f"deployment {name!r} is no longer what its tiles hold: {changed} since it was "
            "registered; deploy it again (or pull its model file and run it with --held "
            "--tiles on tiles of your choosing)"
        )
    label = f"deployment {name}"
    if file is None:
        assert found.model is not None
        return Target(_parsed(found.model, label, "'--deployment'"), label, found.model, found)
    if hashlib.sha256(file.data).hexdigest() != found.model_sha256:
        raise typer.BadParameter(
            f"{file.label} is not the model deployed as {name!r} (SHA-256 "
            f"{found.model_sha256[:16]}…); leave MODEL out to run the deployed one",
            param_hint="MODEL",
        )
    return Target(file.model, label, file.data, found)


def _rewritten(found: DeployedRegion) -> str:
    where = f"tile {found.tile} {found.region.cells_text()}"
    if not found.rewritten_by:
        return f"{where} programmed with other targets"
    return f"{where} programmed by {found.rewritten_by} at {when_text(found.rewritten_unix_s)}"


def check_regions(target: Target, deployed: DeployedModel) -> None:
    """The model placed on its deployment's tiles takes the regions registered."""
    if target.deployment is None:
        return
    placed = deployed.regions()
    registered = [(r.tile, r.region) for r in target.deployment.regions]
    if placed != registered:
        raise typer.BadParameter(
            f"{target.label}: the model placed on {tiles_text(target.deployment.tiles)} takes "
            f"{_regions_text(placed)}, but the deployment names {_regions_text(registered)}",
            param_hint="'--deployment'",
        )


def _regions_text(regions: Sequence[tuple[int, Region]]) -> str:
    return ", ".join(f"tile {tile} {region.cells_text()}" for tile, region in regions)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"{path}: {exc.strerror or exc}", param_hint="MODEL") from exc


def _parsed(data: bytes, source: str, hint: str) -> TrainedModel:
    try:
        return TrainedModel.from_bytes(data, source)
    except ModelFileError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
