"""The PCIe transport: a SIDRA board's BAR0 mapped into this process.

:mod:`~sidra.drivers.pcie.registers` is the one definition of BAR0 (registers,
submission and completion rings, data windows); docs/pcie-register-map.md is
generated from it.
"""
