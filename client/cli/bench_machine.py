"""What a benchmark's figures were measured on: the machine and its load.

A ratio is comparable with another run's only on a like machine at a like load. The
CPU's family and model are kept with its name: virtual machines of one cloud name
different CPU generations alike ("AMD EPYC"), and their figures differ by a generation.
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["load_1min", "machine"]


def machine() -> str:
    """``AMD EPYC (family 25, model 17), 2 CPUs, Python 3.11.7, linux``."""
    cpu = platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    try:  # platform.processor() is often empty on Linux; the kernel knows the model
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name", cpu)
    if "cpu family" in fields and "model" in fields:
        cpu += f" (family {fields['cpu family']}, model {fields['model']})"
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {sys.platform}"


def load_1min() -> float:
    """The 1-minute load average now (0 where the system does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return 0.0
