"""Where the state store lives unless configured otherwise."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir

__all__ = ["APP_NAME", "STORE_FILE", "default_store_path"]

APP_NAME = "sidra-hil"
STORE_FILE = "state.sqlite3"


def default_store_path() -> Path:
    """``user_data_dir("sidra-hil")/state.sqlite3``: per user, surviving reboots
    (``~/.local/share/sidra-hil/state.sqlite3`` on Linux)."""
    return Path(user_data_dir(APP_NAME, appauthor=False)) / STORE_FILE
