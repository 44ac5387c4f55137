"""PCI devices that may be SIDRA boards, from sysfs alone (sidra.drivers.pcie.scan).

No PCI device of ours exists here: the sysfs tree the scan reads is built in a temporary
folder, with the files the kernel gives each device (``resource``, ``vendor``,
``device``, the ``driver`` link)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidra.cli import app, board_scan
from sidra.drivers.pcie.registers import BAR_SIZE
from sidra.drivers.pcie.scan import pcie_candidates, sidra_sized_devices
from sidra.drivers.serial import finder


def device(root: Path, bdf: str, bar0: int, driver: str | None, vendor: str = "0x1234") -> None:
    """A device as sysfs shows it: BAR0 of ``bar0`` bytes (0: none), bound to ``driver``."""
    folder = root / "devices" / bdf
    folder.mkdir(parents=True)
    start = 0xF000_0000
    end = start + bar0 - 1 if bar0 else 0
    lines = [f"0x{start if bar0 else 0:016x} 0x{end:016x} 0x0000000000040200"]
    lines += ["0x0000000000000000 0x0000000000000000 0x0000000000000000"] * 5
    (folder / "resource").write_text("\n".join(lines) + "\n")
    (folder / "vendor").write_text(f"{vendor}\n")
    (folder / "device").write_text("0x5678\n")
    if driver is not None:
        target = root / "drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        (folder / "driver").symlink_to(target)


def test_only_devices_of_the_bar_size_that_user_space_may_map(tmp_path: Path) -> None:
    device(tmp_path, "0000:01:00.0", BAR_SIZE, "uio_pci_generic")
    device(tmp_path, "0000:02:00.0", BAR_SIZE, None)  # bound to nothing yet
    device(tmp_path, "0000:03:00.0", BAR_SIZE, "nvidia", vendor="0x10de")  # its own driver
    device(tmp_path, "0000:04:00.0", BAR_SIZE // 2, "uio_pci_generic")  # another size
    device(tmp_path, "0000:05:00.0", 0, None)  # no BAR0 at all
    device(tmp_path, "0000:06:00.0", BAR_SIZE, "pci-stub")
    found = pcie_candidates(tmp_path / "devices")
    assert [(c.bdf, c.driver, c.url) for c in found] == [
        ("0000:01:00.0", "uio_pci_generic", "pcie://0000:01:00.0"),
        ("0000:02:00.0", None, "pcie://0000:02:00.0"),
        ("0000:06:00.0", "pci-stub", "pcie://0000:06:00.0"),
    ]
    assert (found[0].vendor, found[0].device) == ("0x1234", "0x5678")


def test_no_pci_bus_is_no_candidate(tmp_path: Path) -> None:
    assert pcie_candidates(tmp_path / "nowhere") == []


def test_the_command_lists_a_candidate_to_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    device(tmp_path, "0000:01:00.0", BAR_SIZE, "uio_pci_generic")
    monkeypatch.setattr(finder.list_ports, "comports", list)  # no serial port asked
    monkeypatch.setattr(
        board_scan, "sidra_sized_devices", lambda: sidra_sized_devices(tmp_path / "devices")
    )
    shown = CliRunner().invoke(app, ["board", "scan"])
    assert shown.exit_code == 0, shown.output  # something found: a candidate
    assert (
        "0000:01:00.0: PCI device 0x1234:0x5678 with a BAR0 of the SIDRA size, "
        "uio_pci_generic: sidra board probe pcie://0000:01:00.0 says whether it is a SIDRA "
        "board"
    ) in " ".join(shown.output.split())
    listed = CliRunner().invoke(app, ["board", "scan", "--json"])
    assert json.loads(listed.output) == [
        {"device": "0000:01:00.0", "state": "pcie-candidate", "url": "pcie://0000:01:00.0",
         "vendor": "0x1234", "pci_device": "0x5678", "driver": "uio_pci_generic"},
    ]  # fmt: skip


def test_a_device_of_the_size_a_kernel_driver_holds_is_shown_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A board bound to vfio-pci (or another vendor's device of the size) is not silently
    skipped: listed with its driver, not counted as something found to probe."""
    device(tmp_path, "0000:03:00.0", BAR_SIZE, "vfio-pci")
    monkeypatch.setattr(finder.list_ports, "comports", list)
    monkeypatch.setattr(
        board_scan, "sidra_sized_devices", lambda: sidra_sized_devices(tmp_path / "devices")
    )
    shown = CliRunner().invoke(app, ["board", "scan"])
    assert shown.exit_code == 1, shown.output  # nothing a host can map as it is bound
    assert (
        "0000:03:00.0: PCI device 0x1234:0x5678 with a BAR0 of the SIDRA size, bound to "
        "kernel driver vfio-pci: if it is a SIDRA board, unbind it and bind uio_pci_generic"
    ) in " ".join(shown.output.split())
    listed = CliRunner().invoke(app, ["board", "scan", "--json"])
    assert [(row["state"], row["driver"]) for row in json.loads(listed.output)] == [
        ("pcie-bound", "vfio-pci")
    ]
