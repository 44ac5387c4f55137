"""NumPy files a command is given (--inputs, --targets, a model's weights): read without
pickles, and a file that is no NumPy file said to be one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_numpy"]

_MAGIC = (b"\x93NUMPY", b"PK\x03\x04")
"""How an .npy and an .npz (a zip archive) begin."""


def load_numpy(path: Path) -> Any:
    """``np.load(path, allow_pickle=False)``: an array (.npy) or an archive (.npz, to
    close). A file that begins as neither raises ValueError saying so; np.load would take
    it for a pickle and suggest loading it with ``allow_pickle=True``."""
    with path.open("rb") as held:
        head = held.read(6)
    if not head.startswith(_MAGIC):
        raise ValueError("not a NumPy file: it does not begin as an .npy or an .npz does")
    return np.load(path, allow_pickle=False)
