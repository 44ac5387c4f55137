"""What a benchmark's figures were measured on: the machine and its load.

A ratio is comparable with another run's only on a like machine at a like load. The
CPU's family and model are kept with its name: virtual machines of one cloud name
different CPU generations alike ("AMD EPYC"), and their figures differ by a generation.
"""

from __future__ import annotations

import os
import platform
import sys

from sidra.drivers.host_machine import cpu_name

__all__ = ["load_1min", "machine"]


def machine() -> str:
    """``AMD EPYC (family 25, model 17), 2 CPUs, Python 3.11.7, linux``."""
    return (
        f"{cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {sys.platform}"
    )


def load_1min() -> float:
    """The 1-minute load average now (0 where the system does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0
