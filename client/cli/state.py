"""``sidra state``: what the service's state store holds, read without the service.

``show`` lists boards and, per tile, the programmed cells and the last program;
``history`` prints the program history (``--json`` for scripts); ``usage`` says what
the store holds and takes on disk; ``export`` writes a board's golden targets, masks
and write counts to an ``.npz`` file; ``check`` reads the whole file for damage;
``backup`` writes a consistent copy of the store.
These open the store read-only, so they are safe while a server runs. ``restore``
(a backup in the store's place) and ``compact`` (the file rewritten without its free
pages) change the file: they refuse while a server has it open.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from sidra.cli import serve_files
from sidra.cli.consoles import output_console
from sidra.cli.options import AsJson
from sidra.cli.serve_files import ServeConfig, StorePlace
from sidra.cli.tables import columns_that_fit
from sidra.cli.texts import count_text, size_text
from sidra.server.state import (
    BoardSummary,
    ProgramRecord,
    StateStore,
    StateStoreError,
)
from sidra.server.state.deployments import DeploymentRecords, DeploymentRow
from sidra.server.state.serving import store_served_by
from sidra.server.state.upkeep import backup_store, check_store, compact_store, restore_backup

__all__ = ["state_app"]

state_app = typer.Typer(
    no_args_is_help=True,
    help="The service's durable board state: show, history, usage, export, check, backup, "
    "restore, compact.",
)

StorePath = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="State store file (SQLite); default: the one sidra serve uses (SIDRA_STATE__PATH, "
        "\\[state] path of --config), else the user data folder's sidra-hil/state.sqlite3.",
    ),
]
BoardSerial = Annotated[
    str | None,
    typer.Option("--board", help="Board serial number (needed when the store holds several)."),
]


@contextmanager
def _opened(place: StorePlace) -> Iterator[StateStore]:
    """The store at ``place``, read-only; errors as BadParameter under what named it."""
    try:
        with StateStore(place.path, read_only=True) as store:
            yield store
    except StateStoreError as exc:
        raise place.refused(str(exc)) from exc


def _time(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


@state_app.command("show")
def show(store_path: StorePath = None, config: ServeConfig = None, as_json: AsJson = False) -> None:
    """Boards in the store: programmed cells and programs per tile, the models deployed.

    Per tile: cells programmed, Programs counted and the last one's time; per board, the
    trained models deployed on it by name and whether each is still intact."""
    place = serve_files.store_place(store_path, config)
    with _opened(place) as store:
        summaries = store.summary()
        records = DeploymentRecords(store)
        deployed = {
            s.board.serial_number: records.of_board(s.board.serial_number) for s in summaries
        }
    if as_json:
        typer.echo(
            json.dumps(
                [
                    _summary_json(s)
                    | {
                        "deployments": [
                            _deployment_json(d) for d in deployed[s.board.serial_number]
                        ]
                    }
                    for s in summaries
                ]
            )
        )
        return
    console = output_console()
    # Which store: a server's --config may name another than this user's default.
    console.print(f"store {place.path}", highlight=False)
    if not summaries:
        console.print("the state store holds no board yet")
    for summary in summaries:
        board = summary.board
        # A line of its own: a table title would wrap to the table's width.
        console.print(
            f"{board.serial_number} ({board.model}), last seen {_time(board.last_seen_utc)} UTC\n"
            f"  boot {board.last_boot_id or 'unknown'}",
            highlight=False,
        )
        table = Table()
        for column in ("tile", "programmed cells", "programs", "last program (UTC)"):
            table.add_column(column)
        for tile in summary.tiles:
            table.add_row(
                str(tile.tile),
                f"{tile.programmed_cells:,} / {tile.cells:,}",
                f"{tile.programs:,}",
                _time(tile.last_program_utc),
            )
        console.print(table)
        if deployed[board.serial_number]:
            console.print(_deployments_table(deployed[board.serial_number]))


def _deployments_table(found: list[DeploymentRow]) -> Table:
    table = Table(title="deployed models (sidra model list)")
    for column in ("name", "by", "registered (UTC)", "tiles", "intact"):
        table.add_column(column)
    for d in found:
        tiles = dict.fromkeys(r.tile for r in d.regions)
        rewritten = sorted(
            {f"tile {r.tile} by {r.rewritten_by or '?'}" for r in d.regions if not r.intact}
        )
        table.add_row(
            d.name, d.principal, _time(datetime.fromtimestamp(d.created_unix_s, UTC)),
            " ".join(map(str, tiles)), "yes" if d.intact else "no: " + ", ".join(rewritten),
        )  # fmt: skip
    return table


def _deployment_json(d: DeploymentRow) -> dict[str, Any]:
    return {
        "name": d.name,
        "principal": d.principal,
        "created_unix_s": d.created_unix_s,
        "model_sha256": d.model_sha256.hex(),
        "model_bytes": d.model_bytes,
        "description": d.description,
        "intact": d.intact,
        "protected": d.protected,
        "regions": [
            {
                "tile": r.tile,
                **dataclasses.asdict(r.region),
                "intact": r.intact,
                "rewritten_by": r.rewritten_by,
            }
            for r in d.regions
        ],  # fmt: skip
    }


HISTORY_DROPPED_FIRST = ("#", "cells", "unconv.", "rms µS", "kind")
"""The columns of ``sidra state history`` a terminal too narrow for all leaves out, first
to last."""


@state_app.command("history")
def history(
    store_path: StorePath = None,
    config: ServeConfig = None,
    board: BoardSerial = None,
    tile: Annotated[int | None, typer.Option(min=0, help="Only this tile.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the latest N records.")] = None,
    as_json: AsJson = False,
) -> None:
    """The program history, oldest first: who programmed which region when, and how well.

    A run of Programs of one region by one principal (a training loop's) is one record:
    how many, the last's time (--json: the first's too), their cells written, the worst
    errors. A terminal too narrow for every column leaves out the record's number, then
    the cells written, unconverged cells, rms error and kind (--json has them all)."""
    with _opened(serve_files.store_place(store_path, config)) as store:
        if board is not None:
            _known_board(store, board)  # a misspelt serial is no empty history
        if tile is not None:
            _known_tile(store, board, tile)
        records = store.history(board, tile, limit)
    if as_json:
        typer.echo(json.dumps([_program_json(r) for r in records]))
        return
    boards = sorted({r.board_serial for r in records})
    several = len(boards) > 1  # one board: named in the title, not on every row
    programs = sum(r.programs for r in records)
    title = (
        f"program history of {', '.join(boards)} "
        f"({count_text(len(records), 'record')} of {programs:,} Programs)"
    )
    if not records:  # what was asked for, not "of no board"
        asked = [f"board {board}"] * (board is not None) + [f"tile {tile}"] * (tile is not None)
        typer.echo(f"no Programs recorded{' on ' + ', '.join(asked) if asked else ''}")
        return
    columns = ["#", "time (UTC)", *(["board"] if several else []), "tile", "rows, cols",
               "principal", "kind", "programs", "cells", "rms µS", "max µS", "unconv."]  # fmt: skip
    # The cells as messages name them (rows 0..64 cols 0..9, inclusive), kept short.
    cells = [
        {
            "#": str(r.id), "time (UTC)": _time(r.time_utc), "board": r.board_serial,
            "tile": str(r.tile),
            "rows, cols": f"{rows.start}..{rows.stop - 1}, {cols.start}..{cols.stop - 1}",
            "principal": r.principal, "kind": r.kind.value, "programs": f"{r.programs:,}",
            "cells": f"{r.cells_written:,}", "rms µS": f"{r.rms_error_us:.3g}",
            "max µS": f"{r.max_error_us:.3g}", "unconv.": str(r.unconverged_cells),
        }
        for r in records
        for rows, cols in [r.region.slices]
    ]  # fmt: skip
    console = output_console()
    shown = columns_that_fit(cells, columns, HISTORY_DROPPED_FIRST, console.width)
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in shown:
        table.add_column(column, no_wrap=True)
    for line in cells:
        table.add_row(*(line[c] for c in shown))
    console.print(table)


@state_app.command("usage")
def usage(
    store_path: StorePath = None, config: ServeConfig = None, as_json: AsJson = False
) -> None:
    r"""What the store holds (boards, history, jobs, deployments) and what it takes on disk.

    Jobs stay until deleted (sidra jobs delete, \[state] job_retention_days); the space
    they leave goes back to the file system (a store made before SIDRA HIL did that
    keeps it for reuse until sidra state compact)."""
    place = serve_files.store_place(store_path, config)
    with _opened(place) as store:
        held = store.usage()
    if as_json:
        typer.echo(json.dumps({"store": str(place.path), **dataclasses.asdict(held)}))
        return
    free = (
        "being given back to the file system"
        if held.returns_free_space
        else "reused; sidra state compact, with the server stopped, gives it back"
    )
    typer.echo(
        f"{place.path}: {size_text(held.disk_bytes)} on disk ({size_text(held.free_bytes)} of it "
        f"free, {free})\n"
        f"  boards: {held.boards}\n"
        f"  program history: {count_text(held.history_records, 'record')} of "
        f"{held.programs:,} Programs\n"
        f"  jobs: {held.jobs:,}, {held.job_events:,} events, "
        f"{size_text(held.job_file_bytes)} of record files\n"
        f"  deployments: {held.deployments:,}, {held.deployment_checks:,} checks of their cells\n"
        f"  data set files for jobs: {held.dataset_files:,}, "
        f"{size_text(held.dataset_file_bytes)}"
    )


@state_app.command("export")
def export(
    out: Annotated[Path, typer.Argument(help="The .npz file to write.")],
    store_path: StorePath = None,
    config: ServeConfig = None,
    board: BoardSerial = None,
) -> None:
    """Write a board's golden targets (µS), programmed masks and write counts to an .npz file.

    Arrays: targets_us float32 \\[tiles, rows, cols] (0 where never programmed),
    programmed bool, write_counts uint32 (as last read; 0 where never read),
    counts_read bool, board_serial.
    """
    place = serve_files.store_place(store_path, config)
    with _opened(place) as store:
        serial = board if board is not None else _only_board(store, place)
        try:
            written = store.export_npz(serial, out)
        except StateStoreError as exc:
            raise typer.BadParameter(str(exc), param_hint="--board") from exc
        except OSError as exc:
            raise typer.BadParameter(f"{out}: {exc.strerror or exc}", param_hint="OUT") from exc
    typer.echo(f"wrote {written} ({serial})", err=True)


@state_app.command("check")
def check(
    store_path: StorePath = None, config: ServeConfig = None, as_json: AsJson = False
) -> None:
    """Read the whole store for damage (exit 1 if any), safe while servers run.

    SQLite's integrity_check (pages, indexes), foreign_key_check (rows naming rows that
    are not there) and the schema version: after a power cut, a full disk or a copy
    made with cp. A damaged store: restore a backup (sidra state restore)."""
    place = serve_files.store_place(store_path, config)
    try:
        found = check_store(place.path)
    except StateStoreError as exc:
        raise _named(exc, {}, place) from exc
    if as_json:
        result = {"store": str(found.path), "schema_version": found.schema_version,
                  "whole": found.whole, "problems": list(found.problems)}  # fmt: skip
        typer.echo(json.dumps(result))
    elif found.whole:
        typer.echo(f"{found.path}: whole (schema {found.schema_version}; integrity and "
                   "references checked)")  # fmt: skip
    else:
        typer.echo(f"{found.path}: {count_text(len(found.problems), 'problem')}", err=True)
        for problem in found.problems:
            typer.echo(f"  {problem}", err=True)
    if not found.whole:
        raise typer.Exit(1)


@state_app.command("backup")
def backup(
    out: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    store_path: StorePath = None,
    config: ServeConfig = None,
) -> None:
    """Write a consistent copy of the store, safe while servers run (not cp: see below).

    The copy holds what was committed when it started, compacted, checked with SQLite's
    integrity_check and fsynced before it takes its name. A file copied with cp while a
    server writes can mix pages of different moments and leave out the write-ahead log.
    Put a backup back with sidra state restore."""
    place = serve_files.store_place(store_path, config)
    try:
        made = backup_store(place.path, out)
    except StateStoreError as exc:  # "backup:" is the file being written: OUT
        raise _named(exc, {"out": "OUT", "backup": "OUT"}, place) from exc
    typer.echo(
        f"wrote {made.path}: {size_text(made.bytes)}, schema {made.schema_version}, "
        f"integrity ok, as committed at {made.taken_utc:%Y-%m-%d %H:%M:%S} UTC"
    )


@state_app.command("restore")
def restore(
    backup_path: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="A backup written by sidra state backup.")
    ],
    store_path: StorePath = None,
    config: ServeConfig = None,
    yes: Annotated[bool, typer.Option("--yes", help="Replace the store without asking.")] = False,
) -> None:
    """Put a backup in the store's place (every server using the store stopped first).

    The store it replaces is kept beside it (STORE.replaced-<UTC time>), whole. The
    board is not touched: start the server with --restore to program the backup's golden
    targets back onto it. Refused, with nothing changed, while a server has the store
    open or when the backup is not a whole store."""
    place = serve_files.store_place(store_path, config)
    path = place.path
    holder = store_served_by(path)
    if holder is not None:  # refused anyway below: said before asking, not after
        raise place.refused(
            f"{path} is served now by sidra serve ({holder}): stop that server first"
        )
    if not yes:
        asked = f"replace {path} with" if path.exists() else f"make {path} (no store there) from"
        typer.confirm(f"{asked} {backup_path}?", abort=True)
    try:
        done = restore_backup(backup_path, path)
    except StateStoreError as exc:
        raise _named(exc, {"backup": "BACKUP"}, place) from exc
    kept = f"; the store it replaced is {done.replaced}" if done.replaced else ""
    typer.echo(f"{path} is now {backup_path} (schema {done.schema_version}){kept}")
    with _opened(place) as store:  # which boards: the serve --restore that programs them back
        serials = _serials(store)
        held = store.usage()
    typer.echo(
        f"it holds {count_text(len(serials), 'board')}: "
        + (", ".join(serials) + "; sidra serve --restore on each programs its targets back"
           if serials else "none")
    )  # fmt: skip
    # What comes back, so a restore that lost something (an old backup) is seen at once.
    typer.echo(
        f"  program history: {count_text(held.history_records, 'record')} of "
        f"{held.programs:,} Programs; deployments: {held.deployments:,}; jobs: "
        f"{held.jobs:,}; data set files for jobs: {held.dataset_files:,}\n"
        "  not in a store, so not restored: the tokens file ([auth] tokens_file), the "
        "configuration file and the TLS files; restore those from their own copies"
    )


@state_app.command("compact")
def compact(store_path: StorePath = None, config: ServeConfig = None) -> None:
    """Rewrite the store without its free pages (every server using it stopped first).

    A store made by this version gives the space deleted jobs leave back as it goes;
    one made before keeps it for reuse: compact returns it once and switches the store
    to giving it back from then on. All or nothing, like every store write."""
    place = serve_files.store_place(store_path, config)
    try:
        done = compact_store(place.path)
    except StateStoreError as exc:
        raise _named(exc, {}, place) from exc
    typer.echo(
        f"{done.path}: {size_text(done.bytes_before)} → {size_text(done.bytes_after)} on disk"
        + ("" if done.was_returning_space else "; it now gives free space back as it goes")
    )


def _named(
    exc: StateStoreError, arguments: dict[str, str], place: StorePlace
) -> typer.BadParameter:
    """A store error under the argument it is about: one starting ``out: `` is OUT's
    (``Invalid value for OUT / --store`` left the admin to guess which); any other is
    the store's, under what named it (``store: `` dropped: the hint says which)."""
    head, sep, rest = str(exc).partition(": ")
    if sep and head in arguments:
        return typer.BadParameter(rest, param_hint=arguments[head])
    return place.refused(rest if sep and head == "store" else str(exc))


def _serials(store: StateStore) -> list[str]:
    return [board.serial_number for board in store.boards()]


def _only_board(store: StateStore, place: StorePlace) -> str:
    serials = _serials(store)
    if not serials:
        raise place.refused("the store holds no board yet: nothing to export")
    if len(serials) > 1:
        raise typer.BadParameter(
            f"not given; the store holds {len(serials)} boards ({', '.join(serials)}): name one",
            param_hint="--board",
        )
    return serials[0]


def _known_board(store: StateStore, serial: str) -> None:
    serials = _serials(store)
    if serial not in serials:
        seen = ", ".join(serials) or "none yet"
        raise typer.BadParameter(
            f"got {serial!r}, expected a board the store has seen ({seen})", param_hint="--board"
        )


def _known_tile(store: StateStore, serial: str | None, tile: int) -> None:
    """Refuses a tile none of the boards (or board ``serial``) has: not an empty history."""
    boards = [store.board(serial)] if serial is not None else store.boards()
    tiles = max((board.tile_count for board in boards), default=0)
    if tile >= tiles:
        which = f"board {serial}" if serial is not None else "the boards in the store"
        allowed = f"a tile in [0, {tiles - 1}] ({which})" if tiles else "no tile: no board yet"
        raise typer.BadParameter(f"got {tile}, expected {allowed}", param_hint="--tile")


def _summary_json(summary: BoardSummary) -> dict[str, Any]:
    board = summary.board
    return {
        "serial_number": board.serial_number,
        "model": board.model,
        "tile_count": board.tile_count,
        "rows": board.rows,
        "cols": board.cols,
        "first_seen_utc": board.first_seen_utc.isoformat(),
        "last_seen_utc": board.last_seen_utc.isoformat(),
        "last_boot_id": board.last_boot_id,
        "tiles": [
            {
                "tile": t.tile,
                "cells": t.cells,
                "programmed_cells": t.programmed_cells,
                "programs": t.programs,
                "last_program_utc": None
                if t.last_program_utc is None
                else t.last_program_utc.isoformat(),
            }
            for t in summary.tiles
        ],
    }


def _program_json(record: ProgramRecord) -> dict[str, Any]:
    region = record.region
    return {
        "id": record.id,
        "board_serial": record.board_serial,
        "tile": record.tile,
        "region": {
            "row_offset": region.row_offset,
            "col_offset": region.col_offset,
            "rows": region.rows,
            "cols": region.cols,
        },
        "principal": record.principal,
        "time_utc": record.time_utc.isoformat(),
        "programs": record.programs,
        "first_utc": (record.first_utc or record.time_utc).isoformat(),
        "boot_id": record.boot_id,
        "kind": record.kind.value,
        "cells_written": record.cells_written,
        "verify_iterations": record.verify_iterations,
        "pulses": record.pulses,
        "rms_error_us": record.rms_error_us,
        "max_error_us": record.max_error_us,
        "unconverged_cells": record.unconverged_cells,
        "cells_over_budget": record.cells_over_budget,
    }
