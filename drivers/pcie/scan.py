"""Which PCI devices may be SIDRA boards, from sysfs alone (``sidra board scan``).

Nothing is mapped or read from a device: a register read of another vendor's device
can have side effects. A candidate is a device whose BAR0 has the SIDRA BAR size (the
register map's) and that a user-space host can map: bound to ``uio_pci_generic`` or
``pci-stub``, or to no driver (docs/pcie.md, "Giving a process the BAR"). ``sidra board
probe pcie://BDF`` then says whether it is a SIDRA board (it reads MAGIC and BOARD_ID).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sidra.drivers.pcie.bar import SYSFS_DEVICES
from sidra.drivers.pcie.registers import BAR_SIZE

__all__ = ["MAPPABLE_BY", "PcieCandidate", "pcie_candidates"]

MAPPABLE_BY = ("uio_pci_generic", "pci-stub")
"""Kernel drivers under which a user-space host maps a device's BAR0 (as SysfsBar
accepts them)."""


@dataclass(frozen=True, slots=True)
class PcieCandidate:
    """A PCI device whose BAR0 has the SIDRA size."""

    bdf: str
    vendor: str
    """``0x1234`` as sysfs gives it."""
    device: str
    driver: str | None
    """The kernel driver it is bound to (None: none)."""

    @property
    def url(self) -> str:
        return f"pcie://{self.bdf}"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _bar0_bytes(device: Path) -> int:
    """BAR0's size from sysfs ``resource`` (its first line: start, end, flags); 0 when
    there is none."""
    first = _read(device / "resource").splitlines()[:1]
    try:
        start, end, _ = (int(field, 16) for field in first[0].split())
    except (IndexError, ValueError):
        return 0
    return end - start + 1 if end > start else 0


def pcie_candidates(root: Path = SYSFS_DEVICES) -> list[PcieCandidate]:
    """The devices under ``root`` (sysfs' PCI devices) whose BAR0 has the SIDRA size
    and that are bound to a driver user space maps through, or to none; by address."""
    found = []
    try:
        devices = sorted(os.listdir(root))
    except OSError:  # no PCI bus here (a container)
        return []
    for bdf in devices:
        device = root / bdf
        if _bar0_bytes(device) != BAR_SIZE:
            continue
        bound = device / "driver"
        driver = os.path.basename(os.readlink(bound)) if bound.is_symlink() else None
        if driver is not None and driver not in MAPPABLE_BY:
            continue  # another vendor's device with its own driver
        found.append(PcieCandidate(bdf, _read(device / "vendor"), _read(device / "device"), driver))
    return found
