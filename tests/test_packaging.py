"""The repository folders install as one ``sidra.*`` namespace, and generated code is fresh."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {
    "server": "sidra/server",
    "drivers": "sidra/drivers",
    "client": "sidra/client",
    "client/training": "sidra/training",
    "client/characterize": "sidra/characterize",
    "client/cli": "sidra/cli",
    "emulator": "sidra/emulator",
    "proto/sidra/hil": "sidra/hil",
}


def installed_name(path: Path) -> str:
    """Where a repository file lands in the wheel: under its most specific mapped folder."""
    folder = max(
        (f for f in MAPPED if path.is_relative_to(ROOT / f)), key=lambda f: len(Path(f).parts)
    )
    return f"{MAPPED[folder]}/{path.relative_to(ROOT / folder).as_posix()}"


def test_generated_code_is_not_stale() -> None:
    """Regenerating with the pinned grpcio-tools reproduces the committed files byte for byte."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["server", "client", "drivers", "emulator"])
def test_bare_folder_names_are_not_installed(name: str) -> None:
    """Only ``sidra`` is a top-level name; a fresh interpreter outside the repo cannot import
    the bare folder names (``proto`` is left out: another PyPI package owns it)."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {name}"],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    assert "ModuleNotFoundError" in result.stderr


def test_public_surfaces_are_listed() -> None:
    for module in (
        "sidra.client",
        "sidra.drivers",
        "sidra.emulator",
        "sidra.server",
        "sidra.training",
        "sidra.characterize",
    ):
        mod = importlib.import_module(module)
        missing = [name for name in mod.__all__ if not hasattr(mod, name)]
        assert not missing, f"{module}.__all__ names missing attributes: {missing}"


def test_wheel_holds_every_module_under_sidra(tmp_path: Path) -> None:
    """Every .py of every mapped folder, the proto, stubs and py.typed markers, nothing else."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sidra_hil-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {n for n in names if not n.startswith("sidra_hil-")}
    assert all(n.startswith("sidra/") for n in packaged), sorted(packaged)[:5]
    expected = set()
    for folder in MAPPED:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".pyi", ".proto"} or path.name == "py.typed":
                expected.add(installed_name(path))
    assert expected - packaged == set()
    nested = ("sidra/client/training/", "sidra/client/characterize/", "sidra/client/cli/")
    assert not any(n.startswith(nested) for n in packaged)
    assert "sidra/hil/v1/board.proto" in packaged


def test_service_and_board_packages_load_no_training_dependencies() -> None:
    """The service, client, drivers and emulator run without scikit-learn and matplotlib
    (the optional ``training`` extra); training code runs without gRPC."""
    script = (
        "import sys, sidra.server, sidra.client, sidra.drivers, sidra.emulator\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'matplotlib'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    script = "import sys, sidra.training\nassert 'grpc' not in sys.modules, 'grpc loaded'\n"
    subprocess.run([sys.executable, "-c", script], check=True)


def test_board_schemes_come_from_entry_points() -> None:
    """emu:// and grpc:// are registered by their own packages, not imported by the drivers."""
    from sidra.drivers import schemes

    assert {"emu", "grpc", "serial", "socket"} <= set(schemes())
