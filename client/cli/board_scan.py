"""``sidra board scan``: the SIDRA boards on this machine's serial ports, each with the URL
that finds it (sidra.drivers.serial.scan), and the PCI devices that may be SIDRA boards
(sidra.drivers.pcie.scan)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sidra.cli.options import AsJson
from sidra.drivers.pcie.scan import PcieCandidate, sidra_sized_devices
from sidra.drivers.serial.link import LinkSettings
from sidra.drivers.serial.scan import PortFound, scan_serial_ports

__all__ = ["scan"]

WHY = {
    "busy": "not asked: another process holds it (a running sidra serve, a terminal program)",
    "silent": "no SIDRA board answered HELLO at this line rate",
}


def _found(port: PortFound) -> dict[str, Any]:
    hello = port.hello
    return {
        "device": port.device,
        "stable_name": port.stable_name,
        "state": port.state,
        "url": port.url,
        "serial_number": None if hello is None else hello.serial_number,
        "model": None if hello is None else hello.model,
        "firmware_version": None if hello is None else hello.firmware_version,
        "preset": None if hello is None else hello.preset,
        "tiles": None if hello is None else hello.tile_count,
        "boot_counter": None if hello is None else hello.boot_counter,
    }


def _pcie(candidate: PcieCandidate) -> dict[str, Any]:
    return {
        "device": candidate.bdf,
        # pcie-bound: a kernel driver holds it (vfio-pci, or another vendor's device of
        # the same BAR size): user space cannot map it as it is bound
        "state": "pcie-candidate" if candidate.mappable else "pcie-bound",
        "url": candidate.url,
        "vendor": candidate.vendor,
        "pci_device": candidate.device,
        "driver": candidate.driver,
    }


def scan(
    ptys: Annotated[
        bool,
        typer.Option(
            "--ptys",
            help="Also the pseudo-terminals nobody uses (where sidra board serve --pty puts "
            "a virtual board).",
        ),
    ] = False,
    baud: Annotated[
        int, typer.Option(min=50, max=100_000_000, help="Line rate to say HELLO at, Bd.")
    ] = 921_600,
    as_json: AsJson = False,
) -> None:
    """Find the SIDRA boards on this machine's serial ports and PCI bus, each with its URL.

    Says HELLO (a few bytes, nothing else) to every serial port no other process holds
    and prints each board's serial number, model and firmware with the URL that finds
    it wherever its port moves (serial://?serial_number=...); ports held by another
    process are not opened. PCI devices are read from sysfs only (nothing mapped): those
    whose BAR0 has the SIDRA size and that user space may map are listed for sidra board
    probe pcie://BDF to identify, those a kernel driver holds with the driver to unbind.
    Exit 1 when no board answered and no device can be probed."""
    found = scan_serial_ports(LinkSettings(baud=baud), ptys=ptys)
    pcie = [_pcie(c) for c in sidra_sized_devices()]
    rows = [_found(p) for p in found]
    for row in rows:  # emulated boards of one seed share their serial number
        row["same_serial_as"] = [
            other["device"] for other in rows
            if other is not row and row["serial_number"] is not None
            and other["serial_number"] == row["serial_number"]
        ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows + pcie))
    else:
        _print(rows, ptys)
        for c in pcie:
            what = (
                f"{c['device']}: PCI device {c['vendor']}:{c['pci_device']} with a BAR0 of "
                "the SIDRA size"
            )
            if c["state"] == "pcie-bound":
                typer.echo(
                    f"{what}, bound to kernel driver {c['driver']}: if it is a SIDRA board, "
                    "unbind it and bind uio_pci_generic (docs/pcie.md, 'Giving a process "
                    "the BAR')"
                )
                continue
            typer.echo(
                f"{what}, {c['driver'] or 'no driver'}: sidra board probe {c['url']} says "
                "whether it is a SIDRA board"
            )
    probeable = [c for c in pcie if c["state"] == "pcie-candidate"]
    if not any(p.state == "board" for p in found) and not probeable:
        raise typer.Exit(1)


def _print(rows: list[dict[str, Any]], ptys: bool) -> None:
    boards = [r for r in rows if r["state"] == "board"]
    for r in boards:
        where = r["device"] + (f" ({r['stable_name']})" if r["stable_name"] else "")
        typer.echo(
            f"{where}: {r['model']} {r['serial_number']}, firmware {r['firmware_version']}, "
            f"{r['tiles']} tiles" + (f", preset {r['preset']}" if r["preset"] else "")
        )
        typer.echo(f"    {r['url']}")
        if r["same_serial_as"]:
            typer.echo(
                f"    (also answered by {', '.join(r['same_serial_as'])}: by serial number "
                "the first found is taken; name the device instead)"
            )
    for r in rows:
        if r["state"] != "board":
            typer.echo(f"{r['device']}: {WHY[r['state']]}")
    if not rows:
        searched = "serial ports or unused pseudo-terminals" if ptys else "serial ports"
        typer.echo(f"no {searched} found" + ("" if ptys else " (--ptys: virtual boards too)"))
    elif not boards:
        typer.echo("no SIDRA board answered" + ("" if ptys else " (--ptys: virtual boards too)"))
