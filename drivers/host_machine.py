"""The CPU this process runs on, named as a run's figures need it named.

A benchmark's ratio or a noisy emulated run's accuracy is comparable with another's only
on a like CPU: virtual machines of one cloud name different CPU generations alike ("AMD
EPYC"), and their figures differ by a generation (numpy's kernels, the emulator's
noise drawn through them). The family and model are kept with the name.
"""

from __future__ import annotations

import platform

__all__ = ["cpu_name"]


def cpu_name() -> str:
    """``AMD EPYC (family 25, model 17)``; the platform's word where the kernel says none."""
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
    return cpu
