"""``sidra board serve``: the virtual board firmware on a pty, a TCP port or a PCIe BAR file.

The first line on stdout is what to give ``sidra serve --board``: the pty's
``serial:///dev/pts/N`` URL, ``socket://host:port`` or ``pcie+file://PATH``. The
board serves until SIGINT/SIGTERM (the PCIe board then removes its file). Its console
(stderr) has lines as ``sidra serve`` prints them, ``time LEVEL logger: message``: the
board it serves, and one line for each fault ``--faults`` injects, as it fires.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from sidra.cli.options import AsJson, BoardArg
from sidra.cli.presets import Preset
from sidra.drivers import SidraError
from sidra.drivers.wire.device_times import CommandTimes
from sidra.drivers.wire.framing import MAX_PAYLOAD_LIMIT, MIN_PAYLOAD
from sidra.emulator import DEFAULT_PRESET, load_profile, preset
from sidra.emulator.board import (
    check_fits_in_memory,
    checked_serial_number,
    started_serial_number,
)
from sidra.emulator.config import BoardProfile
from sidra.emulator.firmware import serve_virtual_board
from sidra.emulator.firmware.device import DEVICE_MAX_PAYLOAD, RESPONSE_CACHE
from sidra.emulator.firmware.faults import FaultConfig
from sidra.emulator.pcie import PcieDevice, PcieFaults, run_device

__all__ = ["characterize_board", "compare_board", "serve"]

log = logging.getLogger(__name__)


def _profile(preset_name: str, profile_path: str | None) -> BoardProfile:
    if profile_path is None:
        return preset(preset_name)  # a known one: --preset is checked while parsing
    try:
        profile = load_profile(profile_path)
        check_fits_in_memory(profile)  # before a pty, socket or BAR file is made for it
    except (OSError, ValueError) as exc:  # parse_profile's one-line-per-value ValueError
        raise typer.BadParameter(f"profile {profile_path!r}: {exc}") from exc
    return profile


def _serial_number(given: str | None, profile: BoardProfile, seed: int) -> str:
    """The serial number the served board answers: ``--serial`` as given, else one of
    its own for this start (two boards served from one seed must not share one: a store
    would restore one's targets onto the other, and list its deployments as the other's)."""
    if given is None:
        return started_serial_number(profile.model, seed)
    try:
        return checked_serial_number(given)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--serial'") from exc


def _log_to_console() -> None:
    """The board's lines on stderr as ``sidra serve`` prints its own (``time LEVEL
    logger: message``, at INFO): the board served, and the line of each injected fault as
    it fires (``sidra.emulator.faults``), so whoever watches sees when each one did."""
    from sidra.server.observability.logs import configure_logging

    configure_logging("text", logging.INFO)


def _tcp_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdecimal() or int(port) > 65535:
        raise typer.BadParameter(f"--tcp {text!r}: expected HOST:PORT")
    return host or "127.0.0.1", int(port)


def serve(
    ctx: typer.Context,
    pty: Annotated[bool, typer.Option("--pty", help="Serve on a new pseudo-terminal.")] = False,
    tcp: Annotated[
        str | None, typer.Option(help="Serve on HOST:PORT (socket:// URLs) instead.")
    ] = None,
    pcie_file: Annotated[
        str | None,
        typer.Option(help="Serve a virtual PCIe board whose BAR0 is this file (pcie+file://)."),
    ] = None,
    preset_name: Preset = DEFAULT_PRESET,
    profile: Annotated[
        str | None, typer.Option(help="Board profile file (.toml/.json) instead of a preset.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the emulated board.")] = 0,
    serial: Annotated[
        str | None,
        typer.Option(
            help="The board's serial number (HELLO, the PCIe identity), 1 to 64 bytes. "
            "Default: EMU-<model>-<seed>-<8 random hex digits>, new at each start, so two "
            "boards served from one seed are two boards to a state store and to "
            "serial://?serial_number=. Give the same one again to serve the board a store "
            "knows (sidra serve --restore) or a search should find after a restart."
        ),
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(
            help="Fault shim on the line, e.g. 'ber=1e-4,drop=0.01,dup=0.01'; with "
            "--pcie-file: 'hang=N', 'error=N', 'remove_after=N', 'reset_after=N', 'reverse=1'. "
            "Each fault that fires prints a timestamped line on stderr: which, on what "
            "command, and the counted faults still to come."
        ),
    ] = None,
    max_payload: Annotated[
        int,
        typer.Option(
            min=MIN_PAYLOAD,
            max=MAX_PAYLOAD_LIMIT,
            help="Largest frame payload the board accepts, bytes.",
        ),
    ] = DEVICE_MAX_PAYLOAD,
    cache_depth: Annotated[
        int,
        typer.Option(min=1, max=256, help="Responses the board keeps for replay (HELLO)."),
    ] = RESPONSE_CACHE,
    stage_capacity: Annotated[
        int | None,
        typer.Option(min=1024, help="Stage size, bytes (default: a full tile or a 64 MiB batch)."),
    ] = None,
    report_profile: Annotated[
        bool,
        typer.Option(
            help="Report the profile (GET_PROFILE); --no-report-profile answers as a "
            "physical board, with no profile and no preset name (serial and TCP)."
        ),
    ] = True,
    program_cell_us: Annotated[
        int,
        typer.Option(
            min=0,
            max=4_000_000,
            help="The board takes this long over each cell a Program writes, µs, as a "
            "slow firmware's write-verify may (declared in HELLO, or in PROGRAM_CELL_NS "
            "on a --pcie-file board).",
        ),
    ] = 0,
    command_us: Annotated[
        int,
        typer.Option(
            min=0,
            max=2**32 - 1,
            help="The board takes this long over every command, µs (declared in HELLO, or "
            "in COMMAND_US).",
        ),
    ] = 0,
    declare_times: Annotated[
        bool,
        typer.Option(
            help="Declare --program-cell-us and --command-us (in HELLO, or in the PCIe "
            "registers); --no-declare-times keeps them quiet, as a firmware that declares none.",
        ),
    ] = True,
) -> None:
    """Serve an emulated board over the SIDRA wire protocol or a PCIe BAR until interrupted."""
    if [pty, tcp is not None, pcie_file is not None].count(True) != 1:
        raise typer.BadParameter("give exactly one of --pty or --tcp HOST:PORT or --pcie-file PATH")
    preset_source = ctx.get_parameter_source("preset_name")
    if profile is not None and preset_source is not None and preset_source.name == "COMMANDLINE":
        raise typer.BadParameter(  # the profile is the whole board: the preset was ignored
            f"got --preset {preset_name} with --profile {profile}; give one of them",
            param_hint="'--preset'",
        )
    if pcie_file is not None:
        line_only = {  # what the wire protocol's boards take and a PCIe board has not
            "--no-report-profile": not report_profile,
            "--max-payload": max_payload != DEVICE_MAX_PAYLOAD,
            "--cache-depth": cache_depth != RESPONSE_CACHE,
            "--stage-capacity": stage_capacity is not None,
        }
        for option, given in line_only.items():
            if given:  # the virtual PCIe board always reports its profile; no frames
                raise typer.BadParameter(
                    f"got {option} with --pcie-file; it applies to --pty and --tcp boards only",
                    param_hint=f"'{option}'",
                )
    board_profile = _profile(preset_name, profile)
    serial_number = _serial_number(serial, board_profile, seed)
    _log_to_console()
    if pcie_file is not None:
        slow = CommandTimes(program_cell_ns=1000 * program_cell_us, command_us=command_us)
        _serve_pcie(pcie_file, board_profile, seed, serial_number, faults, slow, declare_times)
        return
    try:
        fault_config = FaultConfig.parse(faults) if faults else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--faults'") from exc
    running = serve_virtual_board(
        board_profile,
        seed,
        serial_number=serial_number,
        faults=fault_config,
        tcp=None if tcp is None else _tcp_address(tcp),
        max_payload=max_payload,
        cache_depth=cache_depth,
        stage_capacity=stage_capacity,
        report_profile=report_profile,
        slow=CommandTimes(program_cell_ns=1000 * program_cell_us, command_us=command_us),
        declare_times=declare_times,
    )
    stop = _stop_on_signals()
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running)
        except OSError as exc:
            link = "--pty" if tcp is None else f"--tcp {tcp}"
            raise typer.BadParameter(f"{link}: {exc}") from exc
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        info = server.board.driver.info
        log.info(
            "virtual board %s (%s, boot counter %d) on %s%s",
            info.model, info.serial_number, server.board.boot_counter, server.url,
            f", faults {faults}" if faults else "",
        )  # fmt: skip
        while not stop.wait(timeout=0.5):  # wake up regularly: signals are handled promptly
            pass


def characterize_board(
    url: BoardArg,
    out: Annotated[Path, typer.Option(help="Where to write the profile (.toml).")],
    tile: Annotated[int, typer.Option(min=0, help="Tile the block statistics run on.")] = 0,
    block: Annotated[
        int, typer.Option(min=8, max=256, help="Rows and columns of the measured block.")
    ] = 32,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the test inputs.")] = 0,
    drift: Annotated[
        bool, typer.Option(help="Measure drift (advances the board's virtual clock).")
    ] = True,
    gain_maps: Annotated[
        bool,
        typer.Option(
            help="Measure each cell's gain on every tile into the profile "
            "(variation.gain_maps, 175 kB per 256 x 256 tile), not only their spread."
        ),
    ] = False,
) -> None:
    """Measure a board through its operations and write its emulator profile (its twin).

    The board is left programmed with test patterns and, with --drift, its clock
    advanced by 65 536 s: characterize a board before putting work on it."""
    from sidra.cli.board_characterize import run_characterize
    from sidra.cli.consoles import output_console

    if out.suffix != ".toml":
        raise typer.BadParameter(f"--out {str(out)!r}: expected a .toml file")
    # Checked before the board is measured, which takes minutes on a real one.
    folder = out.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        what = "does not exist" if not folder.is_dir() else "cannot be written by this user"
        raise typer.BadParameter(f"--out {str(out)!r}: the folder {str(folder)!r} {what}")
    if out.is_file():  # a profile CI or a twin relies on is not written over unasked
        raise typer.BadParameter(
            f"--out {str(out)!r}: exists; name another file, or remove that one first"
        )
    try:
        run_characterize(url, out, tile, block, seed, drift, output_console(), gain_maps=gain_maps)
    except (SidraError, ValueError, OSError) as exc:
        typer.echo(f"sidra board characterize {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        typer.echo(
            f"sidra board characterize {url}: stopped; no profile written, and the board "
            "is left with some of its tiles programmed with test patterns",
            err=True,
        )
        raise typer.Exit(130) from None


def compare_board(
    url: BoardArg,
    profile: Annotated[Path, typer.Option(help="The twin's profile (sidra board characterize).")],
    tile: Annotated[int, typer.Option(min=0, help="Tile the workload runs on.")] = 0,
    block: Annotated[int, typer.Option(min=1, max=256, help="Rows and columns used.")] = 32,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the workload.")] = 0,
    twin_seed: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seed of the emulated twin's own per-cell draws. The default is no seed an "
            "emulated board of the docs has: one of the same seed would share the twin's "
            "draws and look closer to it than a real board can.",
        ),
    ] = 1_000_000,
    inputs: Annotated[int, typer.Option(min=1, max=256, help="Distinct input vectors.")] = 8,
    repeats: Annotated[int, typer.Option(min=2, max=4096, help="Passes per input.")] = 256,
    cycles: Annotated[
        int, typer.Option(min=0, max=10_000, help="Program + perturb cycles before 'after'.")
    ] = 10,
    as_json: AsJson = False,
) -> None:
    """How far a board's outputs are from its twin's (emu://?profile=PROFILE), per column.

    The same workload runs on both; the distance of their outputs' mean and spread per
    column is printed for MVM and TransposeMVM, at the start and after a
    programmed-and-perturbed workload."""
    from sidra.cli.board_compare import run_compare
    from sidra.cli.consoles import output_console

    options = {
        "tile": tile, "block_size": block, "seed": seed, "inputs": inputs,
        "repeats": repeats, "cycles": cycles,
    }  # fmt: skip
    try:
        run_compare(url, profile, twin_seed, options, as_json, output_console())
    except (SidraError, ValueError) as exc:
        typer.echo(f"sidra board compare {url}: {exc}", err=True)
        raise typer.Exit(1) from exc


def _serve_pcie(
    path: str,
    profile: BoardProfile,
    seed: int,
    serial_number: str,
    faults: str | None,
    slow: CommandTimes,
    declare_times: bool,
) -> None:
    """The virtual PCIe board in this process until SIGINT/SIGTERM."""
    try:
        fault_config = PcieFaults.parse(faults) if faults else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--faults'") from exc
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise typer.BadParameter(
            f"{path}: the folder {folder} does not exist", param_hint="'--pcie-file'"
        )
    stop = _stop_on_signals()

    def published(device: PcieDevice) -> None:  # as the pty and TCP boards say it
        info = device.driver.info
        log.info(
            "virtual board %s (%s, boot count %d) on pcie+file://%s%s",
            info.model, info.serial_number, device.boot_count, os.path.abspath(path),
            f", faults {faults}" if faults else "",
        )  # fmt: skip

    try:
        device = run_device(
            path, profile, seed, fault_config, stop, sys.stdout, published,
            slow=slow, declare_times=declare_times, serial_number=serial_number,
        )  # fmt: skip
    except OSError as exc:
        raise typer.BadParameter(_os_error_text(exc), param_hint="'--pcie-file'") from exc
    if device.removed:  # the fault's surprise removal, as a host saw it
        log.info(  # the command past remove_after found it gone, unanswered: not counted
            "virtual board removed after %d commands (--faults remove_after): its "
            "registers read all ones and %s is gone",
            device.executed - 1, path,
        )  # fmt: skip
    if device.orphaned:
        log.error(
            "virtual board stopped: %s was removed or is another board's file now, so no "
            "host could reach this one",
            path,
        )
        raise typer.Exit(1)


def _os_error_text(exc: OSError) -> str:
    """An OSError as a sentence: ours carry their own (with the path), the system's say
    what failed on which file, without "[Errno N]"."""
    if exc.filename is None:
        return str(exc.strerror or exc)
    return f"{exc.filename}: {exc.strerror or exc}"


def _stop_on_signals() -> threading.Event:
    """An event SIGINT and SIGTERM set: a served board stops cleanly on either."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
