"""Computes the package list for the folder-to-namespace mapping.

The top-level folders map into one ``sidra.*`` namespace; two sub-folders of
``client/`` are packages of their own because they do not need the gRPC client:
``client/training`` (training loops over any board) is ``sidra.training``,
``client/characterize`` (a board measured into an emulator profile) is
``sidra.characterize`` and ``client/cli`` (the ``sidra`` command line) is ``sidra.cli``. A static
``packages`` list silently drops new sub-folders from the wheel, so every
mapped folder is walked here and each sub-package is named under its prefix.
"""

from setuptools import find_packages, setup

PACKAGE_DIRS = {
    "sidra.hil": "proto/sidra/hil",
    "sidra.server": "server",
    "sidra.drivers": "drivers",
    "sidra.client": "client",
    "sidra.training": "client/training",
    "sidra.characterize": "client/characterize",
    "sidra.cli": "client/cli",
    "sidra.emulator": "emulator",
}


def _packages() -> list[str]:
    names: list[str] = []
    for prefix, folder in PACKAGE_DIRS.items():
        # Folders mapped under a name of their own are not also sub-packages here.
        nested = [
            other[len(folder) + 1 :]
            for other in PACKAGE_DIRS.values()
            if other.startswith(folder + "/")
        ]
        exclude = [n for name in nested for n in (name, name + ".*")]
        names.append(prefix)
        names.extend(f"{prefix}.{sub}" for sub in find_packages(folder, exclude=exclude))
    return names


setup(packages=_packages(), package_dir=PACKAGE_DIRS)
