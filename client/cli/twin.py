"""A board's twin for training: its profile from a file or measured now.

``sidra train pat`` takes the twin as a profile (``sidra board characterize``) or
characterizes the board itself; training sees only the plain
:class:`~sidra.training.twin.TwinPhysics` this module draws from the profile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import numpy as np
from rich.console import Console

from sidra.characterize import characterize
from sidra.characterize.toml import dumps
from sidra.cli.job_board import HOLDING_TTL_S
from sidra.client.remote import RemoteBoard
from sidra.drivers import Board, FailedPrecondition, Unsupported, open_board
from sidra.emulator.config import BoardProfile, load_profile
from sidra.training import PATOptions
from sidra.training.twin import TwinPhysics

__all__ = [
    "characterize_twin",
    "holding_every_tile",
    "load_twin",
    "measured_twin",
    "twin_emulator",
    "twin_physics",
    "twin_url",
]


def twin_physics(profile: BoardProfile) -> TwinPhysics:
    """What training's backward pass takes from ``profile``: the window, where the ADC
    clips, the measured stuck cells and gains (a profile without maps lists none)."""
    c = profile.converters
    maps = profile.variation.stuck_maps
    rows, cols = profile.geometry.rows, profile.geometry.cols
    return TwinPhysics(
        g_min_us=profile.conductance.g_min_us,
        g_max_us=profile.conductance.g_max_us,
        adc_full_scale_ua=c.adc_full_scale_ua if c.adc_bits > 0 else None,
        stuck_at_min={m.tile: np.array(m.at_min, np.int64).reshape(-1, 2) for m in maps},
        stuck_at_max={m.tile: np.array(m.at_max, np.int64).reshape(-1, 2) for m in maps},
        gains={m.tile: m.gains(rows, cols) for m in profile.variation.gain_maps},
    )


def load_twin(path: Path) -> TwinPhysics:
    """The twin of the profile in ``path``; ValueError naming the file and what is wrong."""
    try:
        return twin_physics(load_profile(path))
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


@contextmanager
def holding_every_tile(board: Board, label: str) -> Iterator[None]:
    """Every tile of a served ``board`` leased to a session of ``label`` for the block:
    characterizing programs every tile, so a tile another session leases, or a deployment
    another principal protects, refuses it here, before the first write (it was refused
    at that tile's first Program, the tiles before it overwritten). A board in this
    process is used as it is; a served board's open session (a run's) leases them."""
    if not isinstance(board, RemoteBoard):
        yield
        return
    refuse_protected(board)
    held = board.current_session
    with contextlib.ExitStack() as stack:
        if held is None:
            held = stack.enter_context(board.session(HOLDING_TTL_S, label=label))
        # LeaseHeld naming the holder, nothing written; given back after (a run's session
        # then leases the tiles it uses, as before)
        stack.enter_context(held.lease(whole_board=True))
        yield


def refuse_protected(board: RemoteBoard) -> None:
    """FailedPrecondition naming the first deployment another principal protects on the
    served board: a write to its cells would be refused, after the tiles before it."""
    try:
        deployments = board.deployments.list()
    except (FailedPrecondition, Unsupported):  # no state store: nothing is protected
        return
    caller = board.caller().principal
    for found in deployments:
        if found.protected and found.principal != caller:
            tiles = sorted({r.tile for r in found.regions})
            raise FailedPrecondition(
                f"tiles {', '.join(map(str, tiles))} hold deployment {found.name!r} of "
                f"{found.principal!r}, protected: characterizing writes every tile (ask "
                f"{found.principal!r} to undeploy it, or characterize another board)"
            )


def measured_twin(board: Board) -> tuple[str, float]:
    """Characterizes ``board`` (drift skipped: training needs none of it and it would
    age the board); returns its profile as TOML text and the wall time it took, s."""
    result = characterize(board, drift=False)
    header = "Board profile measured by `sidra train pat` before training (drift skipped)."
    return dumps(result.profile.model_dump(mode="json"), header), result.budget.wall_s


def characterize_twin(board: Board, out: Path, console: Console) -> Path:
    """Characterizes ``board`` (:func:`measured_twin`) and writes its profile to ``out``."""
    console.print("characterizing the board for its twin (no --profile given)")
    text, wall_s = measured_twin(board)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"twin profile written to {out} ({wall_s:.1f} s)")
    return out


def twin_url(profile: Path, seed: int) -> str:
    """The emulator URL of a twin with ``profile`` and devices drawn from ``seed``."""
    return f"emu://?profile={quote(str(profile.resolve()))}&seed={seed}"


@contextmanager
def twin_emulator(profile: Path, options: PATOptions) -> Iterator[Board | None]:
    """The emulator the first ``options.twin_epochs`` of pat run on: ``profile``, devices
    drawn from ``options.twin_device_seed``; None when the schedule runs none there."""
    if not options.twin_epochs:
        yield None
        return
    with open_board(twin_url(profile, options.twin_device_seed)) as board:
        yield board
