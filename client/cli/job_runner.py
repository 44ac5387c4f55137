"""The jobs ``sidra serve`` runs (the ``sidra.jobs`` entry point): every training job,
and physics-aware training, whose twin is built from a board profile.

The training package runs every kind but ``pat`` (:class:`~sidra.training.jobs.
TrainingJobs`); a ``pat`` job also needs its twin: the profile read as the emulator
reads it, the twin emulator opened next to the board, neither of which the training
package may import (pyproject's contracts). This module, above both, adds the kind.
The twin's profile comes with the options (:class:`~sidra.training.PATJobOptions`:
the server cannot read the client's file) and is checked when the job is submitted;
a job sent without one characterizes the board first, next to it, on a lease of the
whole board (characterization programs every tile).
"""

from __future__ import annotations

import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from sidra.cli.twin import measured_twin, twin_emulator, twin_physics
from sidra.drivers import Board, BoardInfo, TileUse
from sidra.emulator.config import BoardProfile, parse_profile
from sidra.training import PATJobOptions, train_pat
from sidra.training.datasets import Dataset
from sidra.training.epoch_checkpoint import EXTRAS
from sidra.training.jobs import (
    KINDS,
    RESUMABLE,
    DigestedFile,
    JobReporter,
    Outcome,
    RecordKept,
    TrainingJobs,
    claim_order,
    placed_shape,
    with_plot,
)
from sidra.training.mlp import mlp_placement
from sidra.training.options import JobOptions
from sidra.training.pat import TWIN_PART
from sidra.training.records import STOPPED_AT, TrainingRecord
from sidra.training.stopping import RunInterrupted
from sidra.training.twin import TwinPhysics

__all__ = ["ServerJobs"]

PAT = "pat"


class ServerJobs(TrainingJobs):
    """:class:`TrainingJobs` and ``pat``."""

    models: dict[str, type[JobOptions]] = KINDS | {PAT: PATJobOptions}
    kinds: tuple[str, ...] = tuple(models)
    resumable: tuple[str, ...] = (*RESUMABLE, PAT)

    def options(self, kind: str, options_json: str) -> JobOptions:
        options = super().options(kind, options_json)
        if isinstance(options, PATJobOptions) and options.twin_profile_toml:
            _profile(options)  # a profile the emulator cannot read is refused now, not at start
        return options

    def claim(
        self,
        kind: str,
        options: JobOptions,
        dataset: str,
        info: BoardInfo,
        use: TileUse | None = None,
        resume: bytes | None = None,
        dataset_file: DigestedFile | None = None,
    ) -> tuple[tuple[int, ...], bool]:
        if not isinstance(options, PATJobOptions):
            return super().claim(kind, options, dataset, info, use, resume, dataset_file)
        order = claim_order(info.tile_count, use, resume)
        shape = placed_shape(dataset, dataset_file)
        placed = mlp_placement(info, shape, options, order).used  # it must fit
        if not options.twin_profile_toml:
            return (), True  # characterized first: its stuck-cell scan programs every tile
        geometry = _profile(options).geometry
        twin_shape = (geometry.tiles, geometry.rows, geometry.cols)
        if twin_shape != (info.tile_count, info.rows, info.cols):
            raise ValueError(
                f"twin_profile_toml: a board of {geometry.tiles} tiles of {geometry.rows} "
                f"× {geometry.cols}, expected this board's {info.tile_count} tiles of "
                f"{info.rows} × {info.cols} (characterize the board this server serves)"
            )
        return placed, False

    def check_resume(
        self,
        kind: str,
        options: JobOptions,
        dataset: str,
        checkpoint: bytes,
        dataset_file: bytes | None = None,
    ) -> None:
        if isinstance(options, PATJobOptions):
            if options.in_silico:
                raise ValueError(
                    "an in-silico pat run trains on the twin and is deployed once; it has no "
                    "board epochs to go on from: submit it again without a checkpoint"
                )
            if not options.twin_profile_toml:
                raise ValueError(
                    "a pat job going on needs the twin it trained with: send its profile "
                    "(twin_profile_toml: the run's record holds it as twin.toml)"
                )
        super().check_resume(kind, options, dataset, checkpoint, dataset_file)

    def _extras(self, options: JobOptions) -> tuple[str, ...] | None:
        if isinstance(options, PATJobOptions) and options.twin_epochs:
            return (*EXTRAS[PAT], TWIN_PART)  # the twin's epochs are in the checkpoint
        return super()._extras(options)

    def _train(
        self,
        board: Board,
        data: Dataset,
        options: JobOptions,
        reporter: JobReporter,
        stop: threading.Event,
        going_on: dict[str, Any],
    ) -> Outcome:
        if not isinstance(options, PATJobOptions):
            return super()._train(board, data, options, reporter, stop, going_on)
        return _pat(board, data, options, reporter, stop, going_on)


def _profile(options: PATJobOptions) -> BoardProfile:
    """The options' profile; ValueError naming the option and what is wrong."""
    return _parsed(options.twin_profile_toml)


@lru_cache(maxsize=4)
def _parsed(text: str) -> BoardProfile:
    # Submission, the lease and the run each ask for the profile of the same text: read
    # once (a profile with gain maps is hundreds of kB of TOML).
    try:
        return parse_profile(text)
    except ValueError as exc:
        raise ValueError(f"twin_profile_toml: not a board profile: {exc}") from exc


def _twin(options: PATJobOptions) -> TwinPhysics:
    """The twin of the options' profile (what training's backward pass takes)."""
    return twin_physics(_profile(options))


def _written(options: PATJobOptions, folder: Path) -> Path:
    """The options' profile as a file in ``folder`` (what the twin emulator opens)."""
    path = folder / "twin.toml"
    path.write_text(options.twin_profile_toml, encoding="utf-8")
    return path


def _pat(
    board: Board,
    data: Dataset,
    options: PATJobOptions,
    reporter: JobReporter,
    stop: threading.Event,
    going_on: dict[str, Any] | None = None,
) -> Outcome:
    """``sidra train pat``, next to the board: the twin emulator in this process, its
    profile the one sent or, without one, measured on the board first. A stop asked
    while it is measured ends the job once the profile is complete, before training,
    with the profile as its record (``stopped_at_epoch`` 0): the board time it cost
    is not lost, and the profile sent with a new job trains without measuring again."""
    source = "sent with the job"
    if not options.twin_profile_toml:
        reporter.log("characterizing the board for its twin (no profile sent; drift skipped)")
        text, wall_s = measured_twin(board)
        reporter.log(f"twin profile measured in {wall_s:.1f} s")
        if stop.is_set():
            reporter.log("stopped before training: the record holds the twin's profile")
            summary = {
                f"{STOPPED_AT}epoch": 0,
                "twin_profile": "twin.toml (characterized in the job)",
                "twin_characterization_s": round(wall_s, 3),
            }
            return summary, {"twin.toml": text.encode("utf-8")}
        reporter.keep_tiles(mlp_placement(board.info, data, options).used)  # all training needs
        options = options.model_copy(update={"twin_profile_toml": text})
        source = "characterized in the job"

    def on_epoch(epoch: int, test: float) -> None:
        reporter.progress(epoch, options.epochs, f"test {100 * test:.2f} %")

    twin = _twin(options)
    reporter.log(f"twin: {twin.stuck_cells} stuck cells known, epochs on it "
                 f"{options.twin_epochs} of {options.epochs}")  # fmt: skip
    with (
        tempfile.TemporaryDirectory(prefix="sidra-pat-") as folder,
        twin_emulator(_written(options, Path(folder)), options) as twin_board,
    ):
        try:
            record = train_pat(
                board, twin, data, options, twin_board=twin_board, on_epoch=on_epoch, stop=stop,
                **(going_on or {}),
            )  # fmt: skip
        except RunInterrupted as lost:  # the board went away: the epochs made are kept
            assert lost.record is not None
            outcome = _outcome(lost.record, data, options, source)
            raise RecordKept(lost, outcome) from lost.cause
    return _outcome(record, data, options, source)


def _outcome(record: TrainingRecord, data: Dataset, options: PATJobOptions, source: str) -> Outcome:
    """A pat job's summary and files: its record and its twin's profile."""
    record.settings["dataset"] = data.named_as
    record.settings["twin_profile"] = f"twin.toml ({source})"
    files = with_plot(record.files(), record)
    files["twin.toml"] = options.twin_profile_toml.encode("utf-8")
    return record.summary(), files
