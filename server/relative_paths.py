"""A settings file path in a message, as the process will look for it.

A relative path in a configuration file is taken from the folder the server starts in,
not the file's own (as systemd's WorkingDirectory, ``/`` by default, makes it): an admin
who wrote ``cert = "tls/server.pem"`` beside the config read "file not found
'tls/server.pem'" and looked for it in the right folder, the config's.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["path_text"]


def path_text(path: Path, *, quoted: bool = True) -> str:
    """``path`` (quoted unless not ``quoted``), and when it is relative the absolute path
    it names from here."""
    named = repr(str(path)) if quoted else str(path)
    if path.is_absolute():
        return named
    return (
        f"{named} (that is {Path.cwd() / path}: a relative path is taken from the "
        f"folder the server starts in, {Path.cwd()}, not the config file's)"
    )
