"""``python -m sidra.emulator.pcie PATH [--preset P | --profile FILE] [--seed N] [--serial S]
[--faults S] [--program-cell-ns N] [--command-us N] [--no-declare-times]``:
the virtual PCIe board as its own process (what ``serve_virtual_pcie_board`` starts).
``sidra board serve --pcie-file PATH`` is the same board from the command line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sidra.drivers.wire.device_times import CommandTimes
from sidra.emulator import DEFAULT_PRESET, load_profile, preset
from sidra.emulator.pcie.faults import PcieFaults
from sidra.emulator.pcie.serve import run_device


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sidra.emulator.pcie")
    parser.add_argument("path", help="BAR file to create (BAR_SIZE bytes)")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--profile", help="board profile file (.toml/.json) instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--serial", help="serial number (default: EMU-<model>-<seed>)")
    parser.add_argument("--faults", default="", help="e.g. hang=3,reverse=1")
    parser.add_argument("--program-cell-ns", type=int, default=0, help="each cell a Program writes")
    parser.add_argument("--command-us", type=int, default=0, help="each command")
    parser.add_argument("--no-declare-times", action="store_true")
    args = parser.parse_args(argv)
    slow = CommandTimes(program_cell_ns=args.program_cell_ns, command_us=args.command_us)
    profile = load_profile(args.profile) if args.profile else preset(args.preset)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    faults = PcieFaults.parse(args.faults)
    run_device(
        args.path, profile, args.seed, faults, stop, sys.stdout,
        slow=slow, declare_times=not args.no_declare_times, serial_number=args.serial,
    )  # fmt: skip


if __name__ == "__main__":
    main()
