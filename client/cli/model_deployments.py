"""``sidra model list|pull|undeploy``, and the parts of ``sidra model deploy --name`` and
``eval|predict --deployment`` that talk to a server's DeploymentService: models kept on
a served board under a name (deployments.proto)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer

from sidra.cli.model_files import Target, parsed_model
from sidra.cli.model_served import remote
from sidra.cli.texts import tiles_text, when_text
from sidra.client.deployments import DeployedRegion, Deployment
from sidra.drivers import (
    Board,
    FailedPrecondition,
    Region,
)
from sidra.training.deployment import DeployedModel

__all__ = [
    "check_registration",
    "describe",
    "leased",
    "register",
    "target_of",
]


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
def leased(board: Board, name: str | None, regions: Sequence[tuple[int, Region]]) -> Iterator[None]:
    """The tiles of ``regions`` leased to a session of this command while it programs
    and registers deployment ``name`` (None: a model deployed unnamed): no other session
    writes them between the Programs and the registration, whose digests are then of this
    model's targets. A tile another session holds refuses the command at once, before
    any tile is written, naming the holder."""
    server = remote(board, "'--name'")
    tiles = sorted({tile for tile, _ in regions})
    label = "sidra model deploy" + (f" {name}" if name is not None else "")
    with server.session(label=label) as session, session.lease(tiles):
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
    board: Board, name: str, target: Target, regions: Sequence[tuple[int, Region]],
    replace: bool, protect: bool, *, validate_only: bool = False,
) -> Deployment:  # fmt: skip
    """Registers ``target`` under ``name`` on the server, as ``regions`` hold it (programmed
    just now: a deployed model's :meth:`~DeployedModel.regions`, or a tuned deployment's
    own regions); ``validate_only``: checks it all, keeping nothing (before the tiles are
    written)."""
    return remote(board, "'--name'").deployments.add(
        name, target.data, list(regions),
        description=describe(target), replace=replace,
        validate_only=validate_only, protect=protect,
    )  # fmt: skip


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
        return Target(parsed_model(found.model, label, "'--deployment'"), label, found.model, found)
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
