"""The ``sidra`` command line."""

from sidra.server.cli.main import app, main

__all__ = ["app", "main"]
