"""The CPU this process runs on, named as a run's figures need it named, and the software
it runs (:func:`software`): what a run's record (run.json) says it ran on, whether the
run was made by a client here or by a job in a server.

A benchmark's ratio or a noisy emulated run's accuracy is comparable with another's only
on a like CPU: virtual machines of one cloud name different CPU generations alike ("AMD
EPYC"), and their figures differ by a generation (numpy's kernels, the emulator's
noise drawn through them). The family and model are kept with the name.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["code_version", "cpu_name", "software"]

PACKAGE = "sidra-hil"


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


def code_version() -> dict[str, str | None]:
    """The SIDRA HIL version this process runs (``sidra_hil``) and its git ``commit``
    (None: installed from a wheel, or no git)."""
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # run from a tree not installed
        version = "unknown"
    return {"sidra_hil": version, "commit": _commit()}


def software() -> dict[str, Any]:
    """The code and machine a run's figures came from: a noisy emulated run repeats
    exactly only on the same commit, CPU and BLAS (docs/training-results.md), and a
    record that named none of them could not say why two runs differed."""
    return {
        **code_version(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
    }


def _commit() -> str | None:
    """The git commit of the checkout this package runs from (``+changes`` when its
    tracked files differ from it); None for a package installed from a wheel, or no git."""
    source = Path(os.path.realpath(__file__)).parent  # an editable install links here
    try:
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if changed else "") if head else None


def _blas() -> str:
    """numpy's BLAS, named and versioned (``scipy-openblas 0.3.31``): its kernels set the
    last bits of every float32 sum."""
    try:
        found = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except (KeyError, TypeError, ValueError):
        return "unknown"
    return f"{found.get('name', 'unknown')} {found.get('version', '')}".strip()
