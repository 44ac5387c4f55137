"""The ``sidra`` command line."""

import importlib
from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    # The command line is built when first asked for (PEP 562): importing one command's
    # module (sidra.cli.jobs, say) does not import every other command's first.
    if name not in __all__:
        raise AttributeError(f"module 'sidra.cli' has no attribute {name!r}")
    entry = importlib.import_module("sidra.cli.main")
    # Importing sidra.cli.main bound the name `main` here to that module: the entry point
    # (`sidra = "sidra.cli:main"`) and `from sidra.cli import app, main` want its function.
    globals().update(app=entry.app, main=entry.main)
    return globals()[name]
