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

from sidra.drivers.pcie.bar import SYSFS_DEVICES, bound_driver, sysfs_bar0_bytes, sysfs_text
from sidra.drivers.pcie.registers import BAR_SIZE

__all__ = ["MAPPABLE_BY", "PcieCandidate", "pcie_candidates", "sidra_sized_devices"]

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

    @property
    def mappable(self) -> bool:
        """Whether a user-space host may map its BAR0 as it is bound."""
        return self.driver is None or self.driver in MAPPABLE_BY


def pcie_candidates(root: Path = SYSFS_DEVICES) -> list[PcieCandidate]:
    """The devices under ``root`` (sysfs' PCI devices) whose BAR0 has the SIDRA size
    and that are bound to a driver user space maps through, or to none; by address."""
    return [c for c in sidra_sized_devices(root) if c.mappable]


def sidra_sized_devices(root: Path = SYSFS_DEVICES) -> list[PcieCandidate]:
    """Every device under ``root`` whose BAR0 has the SIDRA size, whatever it is bound
    to (a board bound to vfio-pci, or another vendor's device of that size); by address."""
    found = []
    try:
        devices = sorted(os.listdir(root))
    except OSError:  # no PCI bus here (a container)
        return []
    for bdf in devices:
        device = root / bdf
        if sysfs_bar0_bytes(device) != BAR_SIZE:
            continue
        found.append(
            PcieCandidate(bdf, sysfs_text(device / "vendor"), sysfs_text(device / "device"),
                          bound_driver(device))
        )  # fmt: skip
    return found
