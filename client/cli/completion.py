"""What the shell completes for a board URL (``sidra --install-completion`` sets it up).

Completion runs on every Tab: it names the URL schemes the drivers take, each emulator
preset and the serial devices present, and opens nothing."""

from __future__ import annotations

import glob

from sidra.drivers.url import schemes
from sidra.emulator import PRESETS

__all__ = ["board_urls"]

SERIAL_DEVICES = ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/serial/by-id/*")
"""Where a USB-serial board shows up on Linux (globbed, not opened)."""


def board_urls(incomplete: str) -> list[str]:
    """The board URLs that start with ``incomplete``: ``emu://?preset=NAME`` for every
    preset, ``serial://DEVICE`` for every serial device present, and every scheme's
    ``SCHEME://`` for the rest to be typed."""
    candidates = [f"emu://?preset={name}" for name in PRESETS]
    candidates += [f"serial://{device}" for pattern in SERIAL_DEVICES
                   for device in sorted(glob.glob(pattern))]  # fmt: skip
    candidates += [f"{scheme}://" for scheme in schemes() if scheme != "emu"]
    return [url for url in candidates if url.startswith(incomplete)]
