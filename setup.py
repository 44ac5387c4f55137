"""Computes the package list for the folder-to-namespace mapping in pyproject.toml.

A static ``packages`` list silently drops new sub-folders from the wheel, so
every mapped folder is walked here and each sub-package is named under its
``sidra.*`` prefix.
"""

from setuptools import find_packages, setup

PACKAGE_DIRS = {
    "sidra.hil": "proto/sidra/hil",
    "sidra.server": "server",
    "sidra.drivers": "drivers",
    "sidra.client": "client",
    "sidra.emulator": "emulator",
}


def _packages() -> list[str]:
    names: list[str] = []
    for prefix, folder in PACKAGE_DIRS.items():
        names.append(prefix)
        names.extend(f"{prefix}.{sub}" for sub in find_packages(folder))
    return names


setup(packages=_packages(), package_dir=PACKAGE_DIRS)
