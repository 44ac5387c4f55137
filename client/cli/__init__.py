"""The ``sidra`` command line."""

from sidra.cli.main import app, main

__all__ = ["app", "main"]
