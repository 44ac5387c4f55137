"""The virtual PCIe board: the emulator behind BAR0's rings in a shared mapped file.

``sidra board serve --pcie-file PATH`` (or :func:`serve_virtual_pcie_board`)
runs it; ``open_board("pcie+file://PATH")`` drives it with the same
:class:`~sidra.drivers.pcie.driver.PcieDriver` a real board gets.
"""

from sidra.emulator.pcie.device import PcieDevice
from sidra.emulator.pcie.faults import PcieFaults
from sidra.emulator.pcie.serve import VirtualPcieBoard, run_device, serve_virtual_pcie_board

__all__ = ["PcieDevice", "PcieFaults", "VirtualPcieBoard", "run_device", "serve_virtual_pcie_board"]
