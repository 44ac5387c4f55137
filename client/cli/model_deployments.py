"""``sidra model list|pull|undeploy``, and the parts of ``sidra model deploy --name`` and
``eval|predict --deployment`` that talk to a server's DeploymentService: models kept on
a served board under a name (deployments.proto)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from sidra.cli.options import AsJson
from sidra.cli.train.running import job_board
from sidra.client import RemoteBoard
from sidra.client.deployments import DeployedRegion, Deployment, DeploymentCheck
from sidra.drivers import (
    Board,
    FailedPrecondition,
    Region,
    SidraError,
)
from sidra.training.atomic_files import write_atomically
from sidra.training.deployment import MIN_HELD_CORRELATION, DeployedModel
from sidra.training.model import ModelFileError, TrainedModel

__all__ = [
    "DeploymentName",
    "RequiredServer",
    "Target",
    "check_deployment",
    "check_registration",
    "describe",
    "file_target",
    "leased",
    "list_deployments",
    "pull",
    "register",
    "target_of",
    "undeploy",
]

RequiredServer = Annotated[
    str,
    typer.Option(
        "--server",
        help="The sidra serve keeping the deployments: HOST:PORT, or grpcs://HOST:PORT?"
        "ca=PATH[&cert=PATH&key=PATH] for TLS (token from SIDRA_TOKEN).",
    ),
]
DeploymentName = Annotated[str, typer.Argument(help="The deployment's name (sidra model list).")]


class Target(NamedTuple):
    """The model a command runs: from a file, or a server's deployment."""

    model: TrainedModel
    label: str
    """The file, or ``deployment NAME``, as reports name it."""
    data: bytes
    """The model file's bytes."""
    deployment: Deployment | None


@contextmanager
def _server(address: str, what: str) -> Iterator[RemoteBoard]:
    """The server, or a usage error (a malformed address) or exit 1 naming the command and
    what went wrong."""
    with job_board("emu://", address, f"sidra model {what}") as board:
        yield remote(board, "'--server'")


def remote(board: Board, option: str) -> RemoteBoard:
    """``board`` as the server it must be for ``option``."""
    if not isinstance(board, RemoteBoard):
        raise typer.BadParameter(
            "deployments are kept by a server: give --server", param_hint=option
        )
    return board


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
    """The model file at ``path``, read and checked once; a usage error naming MODEL."""
    data = _read(path)
    return Target(_parsed(data, str(path), "MODEL"), str(path), data, None)


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
    return f"{where} programmed by {found.rewritten_by} at {_when(found.rewritten_unix_s)}"


def check_regions(target: Target, deployed: DeployedModel) -> None:
    """The model placed on its deployment's tiles takes the regions registered."""
    if target.deployment is None:
        return
    placed = deployed.regions()
    registered = [(r.tile, r.region) for r in target.deployment.regions]
    if placed != registered:
        raise typer.BadParameter(
            f"{target.label}: the model placed on tiles {list(target.deployment.tiles)} takes "
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


def _when(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(unix_s))


def _intact_text(deployment: Deployment) -> str:
    if deployment.intact:
        return "yes, protected" if deployment.protected else "yes"
    rewritten = {(r.tile, r.rewritten_by): r for r in deployment.regions if not r.intact}
    return "no: " + "; ".join(
        f"tile {tile} rewritten" + (f" by {by}, {_when(r.rewritten_unix_s)}" if by else "")
        for (tile, by), r in sorted(rewritten.items())
    )


def list_deployments(server: RequiredServer, as_json: AsJson = False) -> None:
    """Models deployed on a server's board by name: where, by whom, whether intact.

    Also what its cells read at its latest check (sidra model check, or the server's own
    at a metrics scrape): their correlation with the targets, and when."""
    with _server(server, "list") as board:
        found = board.deployments.list()
    if as_json:
        typer.echo(json.dumps([d.as_dict() for d in found]))
        return
    if not found:
        typer.echo("no deployment (sidra model deploy --name NAME --server ... keeps one)")
        return
    # One block a deployment, not a table: eight fields do not fit 80 columns, and a
    # description is free text of any length.
    for d in found:
        tiles = " ".join(map(str, d.tiles))
        typer.echo(f"{d.name}: by {d.principal}, {_when(d.created_unix_s)}, tiles {tiles}")
        typer.echo(f"  intact: {_intact_text(d)}")
        typer.echo(f"  cells read: {_check_text(d.last_check)}")
        typer.echo(f"  model {d.model_sha256[:8]}: {d.description}")


def _check_text(check: DeploymentCheck | None) -> str:
    """A deployment's latest check in a few words: the correlation, and when."""
    if check is None:
        return "not checked since the server started (sidra model check)"
    held = "" if check.correlation >= MIN_HELD_CORRELATION else ", NOT HELD"
    return f"correlation {check.correlation:.2f}{held} at {_when(check.checked_unix_s)}"


def check_deployment(
    server: RequiredServer,
    name: Annotated[
        str | None,
        typer.Argument(help="The deployment's name (sidra model list); every one when left out."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Have the server read a deployment's cells now and compare them with its targets.

    Per region and over all: the correlation of the conductances read with the targets
    registered, and how far they moved (µS). Without NAME every deployment, one line
    each (for cron). Exit 1 when a correlation is under the held check's least (the
    tiles no longer hold the model: written around the server, another board, drift
    past recall) or a deployment cannot be checked."""
    with _server(server, "check") as board:
        if name is not None:
            checked = board.deployments.check(name)
            _print_check(checked, as_json)
            failed = [] if _held(checked) else [_not_held(checked)]
        else:
            failed = _check_every(board, as_json)
    for line in failed:
        typer.echo(f"sidra model check: {line}", err=True)
    if failed:
        raise typer.Exit(1)


def _held(checked: DeploymentCheck) -> bool:
    return checked.correlation >= MIN_HELD_CORRELATION


def _not_held(checked: DeploymentCheck) -> str:
    return (
        f"deployment {checked.name!r} correlates {checked.correlation:.3f} with its targets, "
        f"expected >= {MIN_HELD_CORRELATION}: its tiles no longer hold the model (written "
        "around this server, another board, or drift); deploy it again"
    )


def _check_every(board: RemoteBoard, as_json: bool) -> list[str]:
    """Checks every deployment of the server; what failed, a line each."""
    failed: list[str] = []
    reports: list[dict[str, Any]] = []
    for deployment in board.deployments.list():
        try:
            checked = board.deployments.check(deployment.name)
        except SidraError as exc:  # not intact, a lease: the others are still checked
            failed.append(f"deployment {deployment.name!r} not checked: {exc}")
            reports.append({"name": deployment.name, "error": str(exc)})
            if not as_json:
                typer.echo(f"{deployment.name}: not checked ({type(exc).__name__})")
            continue
        reports.append({**checked.as_dict(), "held": _held(checked)})
        if not _held(checked):
            failed.append(_not_held(checked))
        if not as_json:
            typer.echo(
                f"{checked.name}: correlation {checked.correlation:.3f}"
                f"{'' if _held(checked) else ' NOT HELD'}, rms deviation "
                f"{checked.rms_deviation_us:.2f} µS, mean {checked.mean_deviation_us:+.2f} µS"
            )
    if as_json:
        typer.echo(json.dumps(reports))
    elif not reports:
        typer.echo("no deployment (sidra model deploy --name NAME --server ... keeps one)")
    return failed


def _print_check(checked: DeploymentCheck, as_json: bool) -> None:
    """One deployment's check: a row per region, then over all."""
    if as_json:
        typer.echo(json.dumps({**checked.as_dict(), "held": _held(checked)}))
        return
    table = Table(
        box=box.SIMPLE, title=f"deployment {checked.name}, read {_when(checked.checked_unix_s)}"
    )
    for column in ("tile", "cells", "correlation", "rms deviation", "mean deviation"):
        table.add_column(column, justify="left" if column == "cells" else "right")
    for r in checked.regions:
        table.add_row(
            str(r.tile), r.region.cells_text(), f"{r.correlation:.3f}",
            f"{r.rms_deviation_us:.2f} µS", f"{r.mean_deviation_us:+.2f} µS",
        )  # fmt: skip
    Console().print(table)
    typer.echo(
        f"over all: correlation {checked.correlation:.3f}, rms deviation "
        f"{checked.rms_deviation_us:.2f} µS, mean {checked.mean_deviation_us:+.2f} µS; "
        f"reads {checked.cost.time_ns:,.0f} ns, {checked.cost.energy_nj:,.0f} nJ"
    )


def undeploy(name: DeploymentName, server: RequiredServer) -> None:
    """Forget a deployment (yours, or as an admin anyone's); its tiles keep what they hold."""
    with _server(server, "undeploy") as board:
        gone = board.deployments.delete(name)
    typer.echo(
        f"deployment {gone.name!r} forgotten; tiles {list(gone.tiles)} keep what they hold",
        err=True,
    )


def pull(
    name: DeploymentName,
    server: RequiredServer,
    out: Annotated[
        Path, typer.Option(help="The model file to write; an existing file is not written over.")
    ],
) -> None:
    """Fetch a deployment's model file from a server (to run elsewhere or keep)."""
    if out.exists():
        raise typer.BadParameter(f"got {out}, which exists; name a new file", param_hint="'--out'")
    with _server(server, "pull") as board:
        found = board.deployments.get(name, include_model=True)
    assert found.model is not None
    if hashlib.sha256(found.model).hexdigest() != found.model_sha256:
        typer.echo(f"sidra model pull: {name}: the model file arrived damaged", err=True)
        raise typer.Exit(1)
    write_atomically(out, found.model)
    typer.echo(f"{out}: deployment {name!r} ({found.model_bytes} bytes)", err=True)
