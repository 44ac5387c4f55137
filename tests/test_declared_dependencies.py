"""Every third-party module the package imports is a distribution pyproject.toml declares.

A module the dev extra happens to bring along (click, which typer no longer installs:
it carries its own copy) passed every test here and failed on the install the README
makes (`pip install -e '.[training]'`): ``sidra status`` died with ModuleNotFoundError.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("proto/sidra", "server", "drivers", "client", "emulator")
"""The folders setup.py maps into ``sidra.*`` (PACKAGE_DIRS)."""


def _name(requirement: str) -> str:
    """The distribution a requirement names, normalised (PEP 503)."""
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert found, requirement
    return re.sub(r"[-_.]+", "-", found.group(0)).lower()


def _declared() -> set[str]:
    """The distributions a runtime install gets: dependencies and the training extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    return {_name(r) for r in [*project["dependencies"], *extras["training"]]}


def _imported_top_levels() -> dict[str, Path]:
    """Each absolute import's top-level module in the package, with a file importing it."""
    found: dict[str, Path] = {}
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path)
    return found


def test_every_third_party_import_is_a_declared_distribution() -> None:
    declared = _declared()
    owners = packages_distributions()
    undeclared = []
    for module, path in sorted(_imported_top_levels().items()):
        if module in sys.stdlib_module_names or module in ("sidra", "__future__"):
            continue
        distributions = {_name(d) for d in owners.get(module, [module])}
        if not distributions & declared:
            undeclared.append(f"{module} ({', '.join(sorted(distributions))}; {path})")
    assert undeclared == [], f"imported but not declared in pyproject.toml: {undeclared}"
